//! The webhook notifier against a real HTTP server on a loopback port: delivery (JSON body,
//! headers, counts), retries on 5xx and 429, no retry on other 4xx, timeouts, connection
//! refused, and a real orchestrator run whose webhook is down or whose migration fails.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use dmf_core::{
    Error, MigrationStatus, Notifier, Orchestrator, RunRequest, RunStatus, RunSummary, WebhookEvent, WebhookNotifier,
    WebhookPayload,
};
use dmf_testkit::{FaultPlan, FaultyLoader, MemoryTable, RecordingNotifier};

/// What the test server answers to one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    content_type: Option<String>,
    authorization: Option<String>,
    query: Option<String>,
    body: Bytes,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn payload(&self) -> WebhookPayload {
        serde_json::from_slice(&self.body).expect("the body is a WebhookPayload")
    }
}

struct Script {
    answers: Mutex<Vec<Answer>>,
    then: Answer,
    received: Mutex<Vec<Received>>,
}

/// A webhook endpoint on 127.0.0.1 answering POST /hook with `answers` in order, then `then`
/// for ever.
struct Endpoint {
    addr: SocketAddr,
    script: Arc<Script>,
}

impl Endpoint {
    async fn start(answers: impl IntoIterator<Item = Answer>, then: Answer) -> Self {
        let mut answers: Vec<Answer> = answers.into_iter().collect();
        answers.reverse();
        let script = Arc::new(Script { answers: Mutex::new(answers), then, received: Mutex::default() });
        let router = Router::new().route("/hook", post(answer)).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { addr, script }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.script.received.lock().unwrap().clone()
    }
}

async fn answer(
    State(script): State<Arc<Script>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    script.received.lock().unwrap().push(Received {
        content_type: header("content-type"),
        authorization: header("authorization"),
        query: uri.query().map(str::to_owned),
        body,
    });
    let next = script.answers.lock().unwrap().pop().unwrap_or(script.then);
    match next {
        Answer::Status(code) => (StatusCode::from_u16(code).unwrap(), "endpoint says hello"),
        Answer::Hang => std::future::pending().await,
    }
}

/// A port nothing listens on: bound, then released.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

/// A webhook with fast retries.
fn webhook(url: &str) -> WebhookNotifier {
    WebhookNotifier::new(url).unwrap().backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// The summary of a real run: 10 rows, 3 skipped (3, 6, 9), 2 rejected (5, 10), 5 inserted.
async fn completed_summary() -> RunSummary {
    let orchestrator = Orchestrator::builder(store())
        .migration(pipeline(
            "customers",
            source(10),
            Rules { reject_every: 5, skip_every: 3 },
            MemoryTable::new("target"),
        ))
        .engine(config(4))
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    summary
}

#[tokio::test]
async fn a_completed_run_is_posted_once_as_json_with_its_counts_and_headers() {
    let endpoint = Endpoint::start([], Answer::Status(200)).await;
    let summary = completed_summary().await;
    webhook(&endpoint.url()).header("Authorization", "Bearer t0ken").unwrap().notify(&summary).await.unwrap();

    let received = endpoint.received();
    assert_eq!(received.len(), 1, "exactly one POST");
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer t0ken"));

    // The wire format, as documented.
    let json = received[0].json();
    assert_eq!(json["event"], "run.completed");
    assert_eq!(json["run"], summary.run.0);
    assert_eq!(json["status"], "completed");
    assert_eq!(json["migrations"][0]["name"], "customers");
    assert_eq!(json["migrations"][0]["status"], "completed");
    assert_eq!(json["migrations"][0]["rows_read"], 10);
    assert!(json["migrations"][0]["started_at"].is_string(), "{json}");
    assert_eq!(json["totals"]["rows_rejected"], 2);
    assert!(json["error"].is_null());

    // And the typed view of it.
    let payload = received[0].payload();
    assert_eq!(payload, WebhookPayload::from(&summary));
    assert_eq!(payload.event, WebhookEvent::RunCompleted);
    assert_eq!(payload.run, summary.run);
    let totals = payload.totals;
    assert_eq!(
        (totals.rows_read, totals.rows_inserted, totals.rows_skipped, totals.rows_rejected, totals.rows_updated),
        (10, 5, 3, 2, 0)
    );
    assert_eq!(payload.migrations[0].counts, totals);
    assert_eq!(payload.text, summary.to_string());
    assert!(payload.text.contains("customers"), "{}", payload.text);
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let endpoint = Endpoint::start([Answer::Status(500), Answer::Status(500)], Answer::Status(200)).await;
    let summary = completed_summary().await;
    webhook(&endpoint.url()).notify(&summary).await.unwrap();
    let received = endpoint.received();
    assert_eq!(received.len(), 3, "delivered on the third attempt");
    assert!(received.iter().all(|r| r.body == received[0].body), "every attempt sends the same payload");
}

#[tokio::test]
async fn too_many_requests_is_retried() {
    let endpoint = Endpoint::start([Answer::Status(429)], Answer::Status(204)).await;
    webhook(&endpoint.url()).notify(&completed_summary().await).await.unwrap();
    assert_eq!(endpoint.received().len(), 2);
}

#[tokio::test]
async fn a_server_that_keeps_failing_exhausts_the_retries_naming_url_and_status() {
    let endpoint = Endpoint::start([], Answer::Status(503)).await;
    let url = format!("{}?token=s3cret", endpoint.url());
    let error = webhook(&url).retries(2).notify(&completed_summary().await).await.unwrap_err();

    assert_eq!(endpoint.received().len(), 3, "the first attempt and 2 retries");
    assert_eq!(endpoint.received()[0].query.as_deref(), Some("token=s3cret"), "the query is sent");
    assert!(matches!(error, Error::RetriesExhausted { attempts: 3, .. }), "{error:?}");
    let chain = error.chain();
    assert!(chain.starts_with("notify still failing after 3 attempts"), "{chain}");
    assert!(
        chain.contains(&format!("webhook {}?<redacted> answered 503 Service Unavailable", endpoint.url())),
        "{chain}"
    );
    assert!(chain.contains("endpoint says hello"), "the answer's body is quoted: {chain}");
    assert!(!chain.contains("s3cret"), "the query is not shown: {chain}");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let endpoint = Endpoint::start([], Answer::Status(400)).await;
    let error = webhook(&endpoint.url()).notify(&completed_summary().await).await.unwrap_err();
    assert_eq!(endpoint.received().len(), 1);
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(text.contains(&endpoint.url()) && text.contains("answered 400 Bad Request"), "{text}");
    assert!(text.contains("not retried"), "{text}");
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_is_a_timeout_error() {
    let endpoint = Endpoint::start([], Answer::Hang).await;
    let summary = completed_summary().await;
    let notifier = webhook(&endpoint.url()).timeout(Duration::from_millis(200)).retries(1);
    // A guard, so that a missing timeout fails the test instead of hanging it.
    let error = tokio::time::timeout(Duration::from_secs(30), notifier.notify(&summary))
        .await
        .expect("the webhook's own timeout fires first")
        .unwrap_err();
    assert_eq!(endpoint.received().len(), 2, "each attempt reached the server");
    assert!(matches!(error, Error::RetriesExhausted { attempts: 2, .. }), "{error:?}");
    let chain = error.chain();
    assert!(chain.contains(&format!("webhook {} did not answer within 200ms", endpoint.url())), "{chain}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let url = dead_url();
    let error = webhook(&url).retries(1).notify(&completed_summary().await).await.unwrap_err();
    assert!(matches!(error, Error::RetriesExhausted { attempts: 2, .. }), "{error:?}");
    let chain = error.chain();
    assert!(chain.contains(&format!("could not connect to webhook {url}")), "{chain}");
}

#[tokio::test]
async fn a_run_succeeds_when_its_webhook_is_down() {
    let target = MemoryTable::new("target");
    let failing = Endpoint::start([], Answer::Status(503)).await;
    let after = RecordingNotifier::new();
    let orchestrator = Orchestrator::builder(store())
        .migration(pipeline("customers", source(10), plain(), target.clone()))
        .engine(config(4))
        .notifier(webhook(&dead_url()).retries(1))
        .notifier(webhook(&failing.url()).retries(1))
        .notifier(after.clone())
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(target.len(), 10);
    assert_eq!(failing.received().len(), 2, "the failing webhook was tried, and retried, during the run");
    assert_eq!(after.sent().len(), 1, "the notifier after the failing webhooks is still told");
}

#[tokio::test]
async fn a_failed_run_posts_run_failed_with_the_error() {
    let endpoint = Endpoint::start([], Answer::Status(200)).await;
    let target = MemoryTable::new("target");
    let orchestrator = Orchestrator::builder(store())
        .migration(pipeline("customers", source(10), plain(), FaultyLoader::new(target, FaultPlan::new().fail_at(1))))
        .engine(config(4))
        .notifier(webhook(&endpoint.url()))
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(!summary.succeeded());

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["event"], "run.failed");
    let payload = received[0].payload();
    assert_eq!((payload.event, payload.status, payload.run), (WebhookEvent::RunFailed, RunStatus::Failed, summary.run));
    let error = payload.error.as_deref().expect("a failed run carries its error");
    assert!(error.contains("injected Fatal failure at call 1"), "{error}");
    assert_eq!(payload.migrations[0].status, MigrationStatus::Failed);
    assert!(payload.migrations[0].error.as_deref().unwrap().contains("injected Fatal failure"), "{payload:?}");
    assert!(payload.text.contains("injected Fatal failure at call 1"), "{}", payload.text);
}
