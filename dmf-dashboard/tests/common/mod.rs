//! Shared by the dashboard's integration tests: a dashboard served on a loopback port, an HTTP
//! client, a Server-Sent Events reader, and migrations over dmf-testkit's memory tables.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use dmf_core::{EngineConfig, MigrationName, Orchestrator, Pipeline, RejectLimit, Rules, Transformed, transform_fn};
use dmf_dashboard::{Dashboard, DashboardBuilder, DashboardError};
use dmf_testkit::{FaultPlan, FaultyExtractor, Gate, LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The token every test dashboard is built with.
pub const TOKEN: &str = "test-token-4f1c9a";

/// How long any single wait may take before the test fails (instead of hanging).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A builder bound to a free loopback port, with [`TOKEN`].
pub fn builder(orchestrator: Arc<Orchestrator>) -> DashboardBuilder {
    Dashboard::builder(orchestrator).bind("127.0.0.1:0".parse().unwrap()).token(TOKEN)
}

/// A dashboard serving on a loopback port until [`Served::stop`].
pub struct Served {
    pub base: String,
    pub dashboard: Dashboard,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DashboardError>>,
}

impl Served {
    pub async fn start(dashboard: Dashboard) -> Self {
        let server = dashboard.listen().await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        Self { base, dashboard, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and checks it ended cleanly (open event streams included).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task).await.expect("the server stops").unwrap().unwrap();
    }
}

/// Serves a dashboard of `orchestrator` (built with [`builder`]).
pub async fn serve(orchestrator: Arc<Orchestrator>) -> Served {
    Served::start(builder(orchestrator).build().unwrap()).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(PATIENCE).build().unwrap()
}

/// The status and JSON body of an answer (`Value::Null` when the body is not JSON).
pub async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    json(client.get(url).send().await.unwrap()).await
}

pub async fn get_with_token(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    json(client.get(url).bearer_auth(TOKEN).send().await.unwrap()).await
}

/// POSTs `body` (none: an empty body) with [`TOKEN`].
pub async fn post(client: &reqwest::Client, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = client.post(url).bearer_auth(TOKEN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    json(request.send().await.unwrap()).await
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
}

/// Reads `GET /api/events` event by event.
pub struct Sse {
    body: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    /// Bytes received and not parsed yet (a chunk may end inside a character).
    buffer: Vec<u8>,
}

impl Sse {
    /// Opens the stream and waits for its `ready` event (after which nothing is missed).
    pub async fn open(client: &reqwest::Client, url: &str) -> Self {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let mut sse = Self { body: response.bytes_stream().boxed(), buffer: Vec::new() };
        let ready = sse.next().await.expect("the stream starts");
        assert_eq!(ready.name, "ready", "the first event says the stream is ready: {ready:?}");
        sse
    }

    /// The next event, `None` when the stream ended; fails the test after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(PATIENCE, self.next_event()).await.expect("an event within the patience")
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).unwrap();
                let (mut name, mut id, mut data) = ("message".to_owned(), None, String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(SseEvent { name, id, data: serde_json::from_str(&data).unwrap() });
            }
            let chunk = self.body.next().await?.unwrap();
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Progress events until the run-level end (`completed` or `failed`) of `run`, that one
    /// included.
    pub async fn until_run_ends(&mut self, run: i64) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await.expect("the stream goes on until the run ends");
            let end = event.name == "progress"
                && event.data["run"] == run
                && event.data["migration"].is_null()
                && matches!(event.data["phase"].as_str(), Some("completed" | "failed"));
            events.push(event);
            if end {
                return events;
            }
        }
    }
}

/// Source and target of a copy of `rows` legacy customers, in memory.
pub struct Copy {
    pub source: MemoryTable<LegacyCustomer>,
    pub target: MemoryTable<LegacyCustomer>,
}

impl Copy {
    pub fn new(rows: i64) -> Self {
        let source = MemoryTable::new("legacy");
        source.insert_rows(LegacyGenerator::new(7).rows(1..=rows));
        Self { source, target: MemoryTable::new("copy") }
    }

    /// A migration copying the rows; ids divisible by 5 are rejected by the transformer,
    /// other ids divisible by 7 by validation. With `hold`, the first batch read waits at that
    /// gate: the run stays in progress until the test opens it.
    pub fn migration(&self, name: &str, hold: Option<&Gate>) -> impl dmf_core::DataMigration + 'static {
        let plan = match hold {
            Some(gate) => FaultPlan::new().hold_before(1, gate),
            None => FaultPlan::new(),
        };
        Pipeline::new(
            FaultyExtractor::new(self.source.clone(), plan),
            transform_fn(|c: &LegacyCustomer| {
                if c.id % 5 == 0 {
                    Transformed::Rejected { reason: format!("id {} is a multiple of 5", c.id) }
                } else {
                    Transformed::Mapped(c.clone())
                }
            }),
            self.target.clone(),
        )
        .named(MigrationName::new(name))
        .describe(format!("copies legacy customers ({name})"))
        .validate(Rules::new().field("id", |c: &LegacyCustomer| {
            if c.id % 7 == 0 { Err(format!("{} is a multiple of 7", c.id)) } else { Ok(()) }
        }))
    }
}

/// Small batches, any number of rejects.
pub fn engine(batch_size: usize) -> EngineConfig {
    EngineConfig::builder().batch_size(batch_size).reject_limit(RejectLimit::Unlimited).build().unwrap()
}

/// An orchestrator over a memory run store with `copy` registered as `customers` (its first
/// batch read waiting at `hold`, if given).
pub fn memory_orchestrator(copy: &Copy, hold: Option<&Gate>) -> Arc<Orchestrator> {
    Arc::new(
        Orchestrator::builder(Arc::new(MemoryRunStore::new()))
            .engine(engine(10))
            .migration(copy.migration("customers", hold))
            .build()
            .unwrap(),
    )
}

/// Starts a run through the API and waits, on the event stream, for it to end; returns its id.
pub async fn run_to_end(client: &reqwest::Client, served: &Served, body: Value) -> i64 {
    let mut events = Sse::open(client, &served.url("/api/events")).await;
    let (status, started) = post(client, &served.url("/api/runs"), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["run"].as_i64().unwrap();
    events.until_run_ends(run).await;
    run
}
