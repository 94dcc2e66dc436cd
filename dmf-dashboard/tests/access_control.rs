//! Who may do what: mutating routes need the bearer token (401 without, 403 when wrong, and
//! nothing happens); read routes are open on a loopback bind to loopback host names only, and
//! need the token when the dashboard is bound elsewhere or told so; a generated token is
//! random and shown only in the start-up banner.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Copy, TOKEN, builder, client, get, get_with_token, json, memory_orchestrator, serve};
use dmf_dashboard::{Dashboard, ReadAccess, TokenSource};
use reqwest::StatusCode;
use reqwest::header::{HOST, WWW_AUTHENTICATE};
use serde_json::json;

const MUTATIONS: [&str; 3] = ["/api/runs", "/api/runs/1/cancel", "/api/migrations/customers/rollback"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_routes_refuse_a_missing_or_wrong_token_and_do_nothing() {
    let copy = Copy::new(20);
    let orchestrator = memory_orchestrator(&copy, None);
    let served = serve(Arc::clone(&orchestrator)).await;
    let client = client();

    for path in MUTATIONS {
        let response = client.post(served.url(path)).json(&json!({})).send().await.unwrap();
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer", "{path}");
        let (status, body) = json(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer <token>"), "{body}");

        let (status, body) =
            json(client.post(served.url(path)).bearer_auth("not-the-token").json(&json!({})).send().await.unwrap())
                .await;
        assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"error": "wrong token"})), "{path}");

        let (status, body) =
            json(client.post(served.url(path)).basic_auth("admin", Some(TOKEN)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "the Authorization header must be `Bearer <token>`");
    }
    assert!(orchestrator.store().runs(10).await.unwrap().is_empty(), "no run was started");
    assert_eq!(copy.target.len(), 0);

    let run = common::run_to_end(&client, &served, json!({})).await;
    assert_eq!(run, 1);
    assert_eq!(copy.target.len(), 14);
    // A refused rollback leaves the rows where they are.
    let response = client.post(served.url("/api/migrations/customers/rollback")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(copy.target.len(), 14);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_open_on_loopback_only_to_loopback_host_names() {
    let copy = Copy::new(5);
    let served = serve(memory_orchestrator(&copy, None)).await;
    assert_eq!(served.dashboard.read_access(), ReadAccess::Loopback);
    let client = client();

    for path in ["/api/runs", "/api/migrations", "/api/info", "/api/runs/1/rejects"] {
        let (status, _) = get(&client, &served.url(path)).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}");
        // A page of another site whose name was rebound to 127.0.0.1 sends its own host name.
        let response = client.get(served.url(path)).header(HOST, "attacker.example:80").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let response =
            client.get(served.url(path)).header(HOST, "attacker.example:80").bearer_auth(TOKEN).send().await.unwrap();
        assert_ne!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let response = client.get(served.url("/api/runs")).header(HOST, "localhost:1234").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    served.stop().await;
}

/// Serves `dashboard`'s router on a loopback port (as an embedding service would), whatever
/// address the dashboard was told it is bound to.
async fn serve_router(dashboard: &Dashboard) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = dashboard.router();
    let ended = dashboard.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                ended.shutdown();
            })
            .await
    });
    (base, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_the_token_when_bound_to_a_non_loopback_address() {
    let copy = Copy::new(5);
    // 192.0.2.0/24 is reserved for documentation: never bound here, only declared.
    let dashboard = builder(memory_orchestrator(&copy, None)).bind("192.0.2.10:8080".parse().unwrap()).build().unwrap();
    assert_eq!(dashboard.read_access(), ReadAccess::TokenRequired);
    let (base, stop) = serve_router(&dashboard).await;
    let client = client();

    for path in
        ["/api/runs", "/api/runs/1", "/api/runs/1/rejects", "/api/migrations", "/api/info", "/api/events", "/metrics"]
    {
        let (status, body) = get(&client, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let wrong = client.get(format!("{base}{path}")).bearer_auth("nope").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["/api/runs", "/api/migrations"] {
        let (status, _) = get_with_token(&client, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, info) = get_with_token(&client, &format!("{base}/api/info")).await;
    assert_eq!(info["read_access"], "token");
    // The page, its assets, health and the API description hold no data: always open.
    for path in ["/", "/assets/dashboard.js", "/assets/dashboard.css", "/healthz", "/api/openapi.json"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    stop.send(()).unwrap();

    let tightened = builder(memory_orchestrator(&copy, None)).require_token_for_reads().build().unwrap();
    assert_eq!(tightened.read_access(), ReadAccess::TokenRequired);
    let (base, stop) = serve_router(&tightened).await;
    assert_eq!(get(&client, &format!("{base}/api/runs")).await.0, StatusCode::UNAUTHORIZED);
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_token_is_random_and_shown_only_in_the_banner() {
    let copy = Copy::new(5);
    let build =
        || Dashboard::builder(memory_orchestrator(&copy, None)).bind("127.0.0.1:0".parse().unwrap()).build().unwrap();
    let (first, second) = (build(), build());
    match std::env::var(dmf_dashboard::TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        Some(from_env) => {
            assert_eq!(first.token_source(), TokenSource::Environment);
            assert_eq!(first.token(), from_env);
        }
        None => {
            assert_eq!(first.token_source(), TokenSource::Generated);
            assert_eq!(first.token().len(), 64);
            assert!(first.token().bytes().all(|b| b.is_ascii_hexdigit()));
            assert_ne!(first.token(), second.token());
        }
    }
    assert!(!format!("{first:?}").contains(first.token()), "Debug never shows the token");

    let token = first.token().to_owned();
    let server = first.listen().await.unwrap();
    let banner = server.banner();
    assert!(banner.starts_with(&format!("dmf-dashboard: serving http://{}/", server.local_addr())));
    assert_eq!(banner.contains(&token), first.token_source() == TokenSource::Generated, "{banner}");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let client = client();
    for path in ["/", "/api/info", "/api/migrations", "/api/openapi.json", "/assets/dashboard.js"] {
        let text = client.get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains(&token), "{path} shows the token");
    }
    let (status, _) = json(
        client.post(format!("{base}/api/runs")).bearer_auth(&token).json(&json!({"force": true})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "the generated token opens the mutating routes");
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
