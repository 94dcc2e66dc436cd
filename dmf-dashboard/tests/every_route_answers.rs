//! Every route of the dashboard answers as the OpenAPI document says, over real HTTP: the
//! page and its assets, health, info, migrations, runs (start, detail, rejects paging,
//! cancel), rollback, metrics; the document lists exactly the routes served; the router
//! works nested under a prefix.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;

use common::{Copy, Served, Sse, builder, client, get, memory_orchestrator, post, run_to_end, serve};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::{Value, json};

fn content_type(response: &reqwest::Response) -> String {
    response.headers()[CONTENT_TYPE].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_its_assets_and_the_system_routes_answer() {
    let copy = Copy::new(20);
    let served = serve(memory_orchestrator(&copy, None)).await;
    let client = client();

    assert_eq!(get(&client, &served.url("/healthz")).await, (StatusCode::OK, json!({"status": "ok"})));

    let page = client.get(served.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(content_type(&page), "text/html; charset=utf-8");
    let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<base href="/">"#), "{html}");
    assert!(html.contains(r#"<script src="assets/dashboard.js" defer></script>"#));

    for (path, kind, marker) in [
        ("/assets/dashboard.js", "text/javascript", "api/events"),
        ("/assets/dashboard.css", "text/css", ".status-completed"),
    ] {
        let asset = client.get(served.url(path)).send().await.unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert!(content_type(&asset).starts_with(kind), "{path}");
        assert!(asset.text().await.unwrap().contains(marker), "{path}");
    }

    let (status, doc) = get(&client, &served.url("/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");

    let (status, info) = get(&client, &served.url("/api/info")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["read_access"], "loopback");
    assert_eq!(info["token_source"], "given");
    assert_eq!(info["migrations"], 1);
    assert_eq!(info["metrics"], false);

    // Built without a recorder: /metrics says how to turn it on.
    let (status, body) = get(&client, &served.url("/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains(".prometheus()"), "{body}");

    let (status, body) = get(&client, &served.url("/api/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no route for GET /api/nothing-here; see /api/openapi.json");
    let (status, body) = json_of(client.delete(served.url("/api/runs")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "DELETE is not allowed on /api/runs; see /api/openapi.json");
    served.stop().await;
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    common::json(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_over_http_is_recorded_paged_and_rolled_back() {
    let copy = Copy::new(100);
    let served = serve(memory_orchestrator(&copy, None)).await;
    let client = client();

    let (status, body) = get(&client, &served.url("/api/migrations")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["migrations"][0]["name"], "customers");
    assert_eq!(body["migrations"][0]["description"], "copies legacy customers (customers)");
    assert!(body["migrations"][0]["latest"].is_null());

    let run = run_to_end(&client, &served, json!({})).await;

    // 100 rows: multiples of 5 rejected by the transformer (20), other multiples of 7 by
    // validation (12), 68 copied.
    let (_, body) = get(&client, &served.url("/api/migrations")).await;
    let customers = &body["migrations"][0];
    assert_eq!(customers["latest"]["run"], run);
    assert_eq!(customers["latest"]["status"], "completed");
    assert_eq!(customers["latest"]["counts"]["read"], 100);
    assert_eq!(customers["latest"]["counts"]["inserted"], 68);
    assert_eq!(customers["latest"]["counts"]["rejected"], 32);
    assert_eq!(customers["progress"]["percent"], 100.0);
    assert_eq!(customers["progress"]["rows_estimated"], 100);
    assert!(customers["latest"]["started_at"].as_str().unwrap().ends_with('Z'));

    let (status, body) = get(&client, &served.url("/api/runs")).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &body["runs"][0];
    assert_eq!((listed["id"].as_i64(), listed["status"].as_str()), (Some(run), Some("completed")));
    assert_eq!(listed["totals"]["inserted"], 68);
    assert_eq!(listed["plan"], json!(["customers"]));
    assert_eq!((listed["in_process"].as_bool(), listed["cancellable"].as_bool()), (Some(true), Some(false)));

    let (status, detail) = get(&client, &served.url(&format!("/api/runs/{run}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["run"]["id"], run);
    assert_eq!(detail["migrations"][0]["status"], "completed");
    assert_eq!(detail["migrations"][0]["progress"]["phase"], "completed");
    assert_eq!(
        detail["rejects"],
        json!({"total": 32, "complete": true, "by_migration": {"customers": {"total": 32, "by_stage": {"transform": 20, "validate": 12}}}})
    );

    // Rejects, a page at a time, in the order they were recorded; large limits are capped.
    let rejects = |query: &str| served.url(&format!("/api/runs/{run}/rejects{query}"));
    let (status, page) = get(&client, &rejects("?limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((page["limit"].as_u64(), page["offset"].as_u64()), (Some(10), Some(0)));
    assert_eq!(page["rejects"].as_array().unwrap().len(), 10);
    assert_eq!(page["next_offset"], 10);
    let first = &page["rejects"][0];
    assert_eq!((first["migration"].as_str(), first["stage"].as_str()), (Some("customers"), Some("transform")));
    assert_eq!((first["key"].as_str(), first["reason"].as_str()), (Some("5"), Some("id 5 is a multiple of 5")));
    assert_eq!(first["payload"]["id"], 5);
    let (_, page) = get(&client, &rejects("?limit=10&offset=30")).await;
    assert_eq!(page["rejects"].as_array().unwrap().len(), 2);
    assert!(page["next_offset"].is_null());
    let (_, page) = get(&client, &rejects("?limit=100000&migration=customers")).await;
    assert_eq!(page["limit"], 500);
    assert_eq!(page["migration"], "customers");
    assert_eq!(page["rejects"].as_array().unwrap().len(), 32);
    let (_, page) = get(&client, &rejects("")).await;
    assert_eq!(page["limit"], 50);

    let (status, body) = post(&client, &served.url(&format!("/api/runs/{run}/cancel")), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], format!("run {run} is over (completed); nothing to cancel"));

    assert_eq!(copy.target.len(), 68);
    let (status, body) = post(&client, &served.url("/api/migrations/customers/rollback"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"undone": [{"migration": "customers", "run": run, "deleted": 68, "restored": 0}]}));
    assert_eq!(copy.target.len(), 0);
    let (_, body) = get(&client, &served.url("/api/migrations")).await;
    assert_eq!(body["migrations"][0]["latest"]["status"], "rolled_back");
    let (status, body) = post(&client, &served.url("/api/migrations/customers/rollback"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left to roll back: {body}");

    // A second run shows first; `limit` bounds the list.
    let second = run_to_end(&client, &served, json!({"migrations": ["customers"], "force": true})).await;
    assert!(second > run);
    let (_, body) = get(&client, &served.url("/api/runs?limit=1")).await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 1);
    assert_eq!(body["runs"][0]["id"], second);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_in_prometheus_text() {
    let copy = Copy::new(30);
    let dashboard = builder(memory_orchestrator(&copy, None)).prometheus().build().unwrap();
    let served = Served::start(dashboard).await;
    let client = client();
    run_to_end(&client, &served, json!({})).await;

    let response = client.get(served.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    for expected in [
        "# HELP dmf_rows_total",
        "dmf_rows_total{migration=\"customers\",outcome=\"read\"}",
        "dmf_batch_seconds_bucket{",
        "dmf_migrations_total{status=\"completed\"}",
        "dmf_runs_total{status=\"completed\"}",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
    served.stop().await;
}

/// Black-box half of the OpenAPI check (the unit test compares the document with the route
/// table): every documented operation is served, and every other method on a documented path
/// is refused with 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let copy = Copy::new(20);
    let served = serve(memory_orchestrator(&copy, None)).await;
    let client = client();
    let run = run_to_end(&client, &served, json!({})).await;
    let (_, doc) = get(&client, &served.url("/api/openapi.json")).await;

    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &run.to_string()).replace("{name}", "customers");
        let documented: BTreeSet<String> = item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = client.request(method.clone(), served.url(&concrete)).bearer_auth(common::TOKEN);
            if method == reqwest::Method::POST {
                request = request.json(&json!({}));
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            if documented.contains(method.as_str()) {
                operations.insert(format!("{method} {path}"));
                if path == "/api/events" {
                    assert_eq!(status, StatusCode::OK);
                    continue; // an endless stream
                }
                let (_, body) = common::json(response).await;
                let error = body["error"].as_str().unwrap_or_default();
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED && !error.starts_with("no route"),
                    "{method} {concrete} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete} is not documented");
            }
        }
    }
    assert_eq!(operations.len(), 15, "{operations:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_works_nested_under_a_prefix() {
    let copy = Copy::new(20);
    let dashboard = builder(memory_orchestrator(&copy, None)).build().unwrap();
    let app = axum::Router::new().nest("/dmf", dashboard.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = dashboard.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                shutdown.shutdown();
            })
            .await
    });
    let client = client();

    // axum serves a nested router's `/` at `/dmf`; the page's links then resolve under `/dmf/`.
    let html = client.get(format!("{base}/dmf")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"<base href="/dmf/">"#), "{html}");
    let (status, body) = get(&client, &format!("{base}/dmf/api/migrations")).await;
    assert_eq!((status, body["migrations"][0]["name"].as_str()), (StatusCode::OK, Some("customers")));
    let script = client.get(format!("{base}/dmf/assets/dashboard.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    // An open event stream does not hold the shutdown up once the dashboard is told.
    let _events = Sse::open(&client, &format!("{base}/dmf/api/events")).await;
    stop.send(()).unwrap();
    tokio::time::timeout(common::PATIENCE, server).await.unwrap().unwrap().unwrap();
}
