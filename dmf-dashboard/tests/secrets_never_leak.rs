//! Passwords quoted in errors, reject reasons, payloads, host and database names never reach a
//! response, the page, the event stream or the dashboard's log: they are masked as `***`, and
//! the rest of each message still gets through.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{Served, Sse, builder, client, engine, post};
use dmf_core::{
    DataMigration, Error, ErrorKind, MigrationContext, MigrationName, MigrationResult, Orchestrator, Pipeline, Record,
    RollbackReport, Stage,
};
use dmf_testkit::{MemoryRunStore, MemoryTable};
use reqwest::StatusCode;
use serde_json::json;

const SECRET: &str = "s3cr3t-pw";

/// A source row that carries a password column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Account {
    id: i64,
    login: String,
    password: String,
}

impl Record for Account {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// Fails the way a driver does: quoting the connection string it was given.
struct Unreachable {
    name: MigrationName,
}

#[async_trait]
impl DataMigration for Unreachable {
    fn name(&self) -> &MigrationName {
        &self.name
    }

    async fn execute(&self, _ctx: &MigrationContext) -> dmf_core::Result<MigrationResult> {
        Err(Error::with_source(
            Stage::Extract,
            ErrorKind::Fatal,
            format!("cannot connect to postgres://app:{SECRET}@db.internal:5432/shop"),
            std::io::Error::other(format!("authentication failed: host=db.internal user=app password={SECRET}")),
        ))
    }

    async fn rollback(&self, _ctx: &MigrationContext) -> dmf_core::Result<RollbackReport> {
        Err(Error::fatal(Stage::Rollback, format!("cannot restore: Server=db;User Id=app;Password={SECRET};")))
    }
}

/// Collects what the dashboard logs.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_masked_everywhere_the_dashboard_speaks() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("dmf_dashboard=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let accounts = MemoryTable::new("accounts");
    accounts.insert_rows((1..=6).map(|id| Account { id, login: format!("user{id}"), password: SECRET.into() }));
    let copy = Pipeline::new(
        accounts,
        dmf_core::transform_fn(|a: &Account| {
            if a.id % 2 == 0 {
                dmf_core::Transformed::Rejected { reason: format!("lookup in mysql://crm:{SECRET}@crm/db failed") }
            } else {
                dmf_core::Transformed::Mapped(a.clone())
            }
        }),
        MemoryTable::<Account>::new("copy"),
    )
    .named("accounts");
    let orchestrator = Orchestrator::builder(Arc::new(MemoryRunStore::new()))
        .engine(engine(10))
        .host(format!("worker-1 PGPASSWORD={SECRET}"))
        .migration(copy)
        .migration(Unreachable { name: MigrationName::new("crm") })
        .on_error(dmf_core::OnError::Continue)
        .build()
        .unwrap();
    let dashboard = builder(Arc::new(orchestrator))
        .database("source", format!("postgres://app:{SECRET}@db.internal/shop"))
        .prometheus()
        .build()
        .unwrap();
    let served = Served::start(dashboard).await;
    let client = client();

    let mut stream = Sse::open(&client, &served.url("/api/events")).await;
    let (status, started) = post(&client, &served.url("/api/runs"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = started["run"].as_i64().unwrap();
    let events = stream.until_run_ends(run).await;
    let mut seen = serde_json::to_string(&events.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();

    let (status, refused) = post(&client, &served.url("/api/migrations/crm/rollback"), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{refused}");
    seen.push_str(&refused.to_string());

    for path in [
        "/".to_owned(),
        "/assets/dashboard.js".to_owned(),
        "/api/info".to_owned(),
        "/api/migrations".to_owned(),
        "/api/runs".to_owned(),
        format!("/api/runs/{run}"),
        format!("/api/runs/{run}/rejects"),
        "/metrics".to_owned(),
    ] {
        let response = client.get(served.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        seen.push_str(&response.text().await.unwrap());
    }
    served.stop().await;
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();

    for (what, text) in [("responses and events", &seen), ("the dashboard's log", &logged)] {
        assert!(!text.contains(SECRET), "{what} show the password:\n{text}");
    }
    // Masked, not dropped: the messages still say what failed and where.
    for expected in [
        "cannot connect to postgres://app:***@db.internal:5432/shop",
        "authentication failed: host=db.internal user=app password=***",
        "lookup in mysql://crm:***@crm/db failed",
        r#""password":"***""#,
        "worker-1 PGPASSWORD=***",
        "postgres://app:***@db.internal/shop",
        "cannot restore: Server=db;User Id=app;Password=***;",
    ] {
        assert!(seen.contains(expected), "`{expected}` missing from the responses:\n{seen}");
    }
    assert!(logged.contains("Password=***"), "the failed rollback was logged, masked:\n{logged}");
    assert_eq!(json!(refused["error"].as_str().unwrap().contains("the rollback failed")), json!(true));
}
