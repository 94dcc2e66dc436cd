//! Bad requests get clear 4xx JSON errors (`{"error": "..."}`) and change nothing: malformed
//! JSON 400, JSON of the wrong shape 422, a non-JSON body 415, an oversized body 413, bad ids
//! and parameters 400, unknown runs and migrations 404, conflicting actions 409.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Copy, Sse, TOKEN, client, get, memory_orchestrator, post, serve};
use dmf_core::RunRequest;
use dmf_testkit::Gate;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

async fn post_raw(client: &reqwest::Client, url: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .header(CONTENT_TYPE, content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json", "errors are JSON");
    common::json(response).await
}

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("an `error` text: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_the_reason() {
    let copy = Copy::new(5);
    let orchestrator = memory_orchestrator(&copy, None);
    let served = serve(Arc::clone(&orchestrator)).await;
    let client = client();
    let runs = served.url("/api/runs");
    let json_type = "application/json";

    let (status, body) = post_raw(&client, &runs, json_type, r#"{"force": "#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&body).starts_with("the request body is not valid JSON: EOF while parsing"), "{body}");

    let (status, body) = post_raw(&client, &runs, json_type, r#"{"force": "yes"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error(&body).starts_with(r#"invalid request body: invalid type: string "yes", expected a boolean"#),
        "{body}"
    );

    let (status, body) = post_raw(&client, &runs, json_type, r#"{"migration": ["customers"]}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).contains("unknown field `migration`, expected `migrations` or `force`"), "{body}");

    let (status, body) = post_raw(&client, &runs, json_type, "[1, 2]").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, body) = post_raw(&client, &runs, json_type, r#"{"migrations": []}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&body), "`migrations` is empty: name at least one migration, or leave it out to run them all");

    let (status, body) = post_raw(&client, &runs, json_type, r#"{"migrations": ["customers", "nope"]}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&body), "no migration named `nope` is registered");

    let (status, body) = post_raw(&client, &runs, "text/plain", r#"{"force": true}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error(&body), "send the request body as `Content-Type: application/json`");

    let huge = format!(r#"{{"migrations": ["{}"]}}"#, "x".repeat(20_000));
    let (status, body) = post_raw(&client, &runs, json_type, &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error(&body), "the request body is larger than 16384 bytes");

    let rollback = served.url("/api/migrations/customers/rollback");
    let (status, body) = post_raw(&client, &rollback, json_type, r#"{"everything": true}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error(&body).contains("unknown field `everything`"), "{body}");

    let (status, body) = post(&client, &served.url("/api/migrations/nope/rollback"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&body), "no migration named `nope` is registered");

    let (status, body) = post(&client, &served.url("/api/migrations/customers/rollback"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error(&body).contains("has never run"), "{body}");

    assert!(orchestrator.store().runs(10).await.unwrap().is_empty(), "nothing was started");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_parameters_are_refused_and_unknown_runs_are_404() {
    let copy = Copy::new(5);
    let served = serve(memory_orchestrator(&copy, None)).await;
    let client = client();
    let run = common::run_to_end(&client, &served, json!({})).await;

    for path in ["/api/runs/abc", "/api/runs/1.5/rejects", "/api/runs/x/cancel"] {
        let (status, body) = if path.ends_with("cancel") {
            post(&client, &served.url(path), None).await
        } else {
            get(&client, &served.url(path)).await
        };
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(error(&body).ends_with("is not a run id (a whole number)"), "{path}: {body}");
    }
    for path in ["/api/runs/999", "/api/runs/999/rejects"] {
        let (status, body) = get(&client, &served.url(path)).await;
        assert_eq!((status, error(&body)), (StatusCode::NOT_FOUND, "there is no run 999"), "{path}");
    }
    let (status, body) = post(&client, &served.url("/api/runs/999/cancel"), None).await;
    assert_eq!((status, error(&body)), (StatusCode::NOT_FOUND, "there is no run 999"));

    let rejects = |query: &str| served.url(&format!("/api/runs/{run}/rejects?{query}"));
    for query in ["limit=0", "limit=-1", "limit=many", "offset=-3", "colour=blue"] {
        let (status, body) = get(&client, &rejects(query)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(!error(&body).is_empty());
    }
    let (status, body) = get(&client, &rejects("migration=nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error(&body), format!("no migration named `nope` is registered or in run {run}"));
    for query in ["limit=0", "limit=x"] {
        let (status, _) = get(&client, &served.url(&format!("/api/runs?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_actions_are_refused_with_409() {
    let copy = Copy::new(200);
    // The run's first batch read waits at this gate: the run is in progress until it opens.
    let gate = Gate::new();
    let orchestrator = memory_orchestrator(&copy, Some(&gate));
    let served = serve(Arc::clone(&orchestrator)).await;
    let client = client();
    let mut events = Sse::open(&client, &served.url("/api/events")).await;

    // A run started by the program itself, not through the dashboard.
    let cancel = dmf_core::CancellationToken::new();
    let outside = Arc::clone(&orchestrator);
    let token = cancel.clone();
    let task = tokio::spawn(async move { outside.run(RunRequest::all().with_cancel(token)).await });
    let first = events.next().await.unwrap();
    let run = first.data["run"].as_i64().unwrap();
    assert_eq!((first.data["phase"].as_str(), first.data["migration"].is_null()), (Some("preflight"), true));

    let (status, body) = post(&client, &served.url(&format!("/api/runs/{run}/cancel")), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error(&body).contains("was not started from this dashboard"), "{body}");
    let (status, body) = post(&client, &served.url("/api/runs"), Some(json!({"force": true}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error(&body), format!("run {run} is in progress in this process: wait for it to finish or cancel it"));
    let (status, body) = post(&client, &served.url("/api/migrations/customers/rollback"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error(&body).starts_with(&format!("run {run} is in progress")), "{body}");

    cancel.cancel();
    gate.open();
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.migrations[0].status, dmf_core::MigrationStatus::Cancelled);
    events.until_run_ends(run).await;
    // Over now: a new run may start.
    let (status, body) = post(&client, &served.url("/api/runs"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    served.stop().await;
}
