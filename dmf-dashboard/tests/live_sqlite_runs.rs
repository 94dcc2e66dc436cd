//! The dashboard over real SQLite migrations: the event stream delivers a run's progress in
//! order while it goes; `POST /api/runs` answers the id while the run is still going, and the
//! run can be cancelled and resumed; runs recorded by another process in the same control
//! tables show up.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::{PATIENCE, Served, Sse, client, engine, get, post, serve};
use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, ExtractSpec, LoadSpec, SyncMode, SyncPlan, WriteMode, sync_migrations};
use dmf_core::{Identity, Orchestrator, Pipeline, Row, RunRequest};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyLoader, Gate};
use reqwest::StatusCode;
use serde_json::json;

const TABLES: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL, qty INTEGER NOT NULL);
                      CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);";

/// `source.db` with `items` rows in `items` and `notes` rows in `notes`, and an empty
/// `target.db` with the same tables.
fn databases(dir: &Path, items: u32, notes: u32) -> (Arc<SqliteDatabase>, Arc<SqliteDatabase>) {
    let source = SqliteDatabase::create(dir.join("source.db")).unwrap();
    source
        .execute_batch(&format!(
            "{TABLES}
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {items})
             INSERT INTO items SELECT i, 'item ' || i, i % 13 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {notes})
             INSERT INTO notes SELECT i, 'note ' || i FROM n;"
        ))
        .unwrap();
    let target = SqliteDatabase::create(dir.join("target.db")).unwrap();
    target.execute_batch(TABLES).unwrap();
    (Arc::new(source), Arc::new(target))
}

/// A sync of every table of `source` into `target` (upsert), batches of `batch_size`.
async fn sync_orchestrator(
    source: &Arc<SqliteDatabase>,
    target: &Arc<SqliteDatabase>,
    batch_size: usize,
) -> Orchestrator {
    let plan = SyncPlan::build(
        &source.read_catalog().await.unwrap(),
        &target.read_catalog().await.unwrap(),
        None,
        SyncMode::Upsert,
    )
    .unwrap();
    let mut builder = Orchestrator::builder(target.run_store().await.unwrap()).engine(engine(batch_size));
    for migration in sync_migrations(source, target, &plan) {
        builder = builder.shared_migration(migration);
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_while_a_sqlite_sync_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = databases(dir.path(), 2000, 500);
    let orchestrator = Arc::new(sync_orchestrator(&source, &target, 100).await);
    let served = serve(orchestrator).await;
    let client = client();

    let mut stream = Sse::open(&client, &served.url("/api/events")).await;
    let (status, started) = post(&client, &served.url("/api/runs"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["run"].as_i64().unwrap();
    assert_eq!(started["links"]["run"], format!("api/runs/{run}"));
    let events = stream.until_run_ends(run).await;

    // Only this run's progress, numbered 1, 2, 3… in the order emitted, in time order.
    assert!(events.iter().all(|e| e.name == "progress" && e.data["run"] == run), "{events:?}");
    let ids: Vec<u64> = events.iter().map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    let times: Vec<&str> = events.iter().map(|e| e.data["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let first = &events[0].data;
    assert_eq!((first["migration"].is_null(), first["phase"].as_str()), (true, Some("preflight")));
    let last = &events.last().unwrap().data;
    assert_eq!((last["migration"].is_null(), last["phase"].as_str()), (true, Some("completed")));
    assert_eq!(last["counts"]["read"], 2500);

    // Per table: started (with the estimate), batches with growing row counts, completed.
    let mut phases: BTreeMap<String, Vec<(String, u64, Option<u64>)>> = BTreeMap::new();
    for event in &events {
        if let Some(migration) = event.data["migration"].as_str() {
            phases.entry(migration.to_owned()).or_default().push((
                event.data["phase"].as_str().unwrap().to_owned(),
                event.data["rows_done"].as_u64().unwrap(),
                event.data["rows_estimated"].as_u64(),
            ));
        }
    }
    for (table, rows) in [("items", 2000_u64), ("notes", 500)] {
        let seen = &phases[table];
        assert_eq!(seen.first().unwrap(), &("started".to_owned(), 0, Some(rows)), "{table}: {seen:?}");
        let loading: Vec<u64> = seen.iter().filter(|(p, ..)| p == "loading").map(|(_, done, _)| *done).collect();
        assert_eq!(loading, (1..=rows / 100).map(|b| b * 100).collect::<Vec<_>>(), "{table}: one event per batch");
        assert_eq!(seen.last().unwrap().0, "completed", "{table}");
        assert_eq!(seen.last().unwrap().1, rows, "{table}");
        assert_eq!(seen.len(), loading.len() + 2, "{table}: {seen:?}");
    }
    let percents: Vec<f64> =
        events.iter().filter(|e| e.data["migration"] == "items").filter_map(|e| e.data["percent"].as_f64()).collect();
    assert_eq!((percents.first(), percents.last()), (Some(&0.0), Some(&100.0)));

    let (_, detail) = get(&client, &served.url(&format!("/api/runs/{run}"))).await;
    assert_eq!(detail["run"]["status"], "completed");
    assert_eq!(detail["run"]["totals"]["inserted"], 2500);
    assert_eq!(detail["rejects"]["total"], 0);
    served.stop().await;
}

/// A copy of `items` whose load `held` waits at `gate`.
async fn held_items(
    source: &SqliteDatabase,
    target: &SqliteDatabase,
    held: u64,
    gate: &Gate,
) -> impl dmf_core::DataMigration + 'static {
    let catalog = source.read_catalog().await.unwrap();
    let items = catalog.table(&TableName::new(None, "items")).unwrap().clone();
    let extractor = source.extractor(ExtractSpec::whole_table(&items).unwrap());
    let loader = FaultyLoader::new(
        target.loader(LoadSpec::whole_table(&items, WriteMode::Upsert).unwrap()),
        FaultPlan::new().hold_before(held, gate),
    );
    Pipeline::new(extractor, Identity::<Row>::default(), loader).named("items")
}

/// Asks `GET /api/migrations` until `ready` accepts the answer; fails after [`PATIENCE`]. The
/// dashboard's live view follows the progress events on its own task: what it shows is awaited,
/// not given time.
async fn migrations_once(
    client: &reqwest::Client,
    served: &Served,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let asking = async {
        loop {
            let (_, migrations) = get(client, &served.url("/api/migrations")).await;
            if ready(&migrations) {
                return migrations;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(PATIENCE, asking).await.expect("the live view caught up within the patience")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_answers_its_id_at_once_and_can_be_cancelled_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = databases(dir.path(), 3000, 1);
    // Load 5 (rows 201 to 250) waits at the gate: the run is in progress until it opens.
    let gate = Gate::new();
    let orchestrator = Orchestrator::builder(target.run_store().await.unwrap())
        .engine(engine(50))
        .migration(held_items(&source, &target, 5, &gate).await)
        .build()
        .unwrap();
    let served = serve(Arc::new(orchestrator)).await;
    let client = client();
    let mut stream = Sse::open(&client, &served.url("/api/events")).await;

    let (status, started) = post(&client, &served.url("/api/runs"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = started["run"].as_i64().unwrap();
    // The answer came before the end: the run cannot pass the gate yet.
    let (_, detail) = get(&client, &served.url(&format!("/api/runs/{run}"))).await;
    assert_eq!(detail["run"]["status"], "running");
    assert_eq!(detail["run"]["cancellable"], true);
    tokio::time::timeout(PATIENCE, gate.reached()).await.expect("load 5 is reached");
    // Four batches were loaded and their events sent; the live view shows them with a rate.
    let migrations =
        migrations_once(&client, &served, |m| m["migrations"][0]["progress"]["rows_done"].as_u64() == Some(200)).await;
    let progress = &migrations["migrations"][0]["progress"];
    assert_eq!((progress["run"].as_i64(), progress["rows_estimated"].as_u64()), (Some(run), Some(3000)));
    assert!(progress["eta_seconds"].as_f64().unwrap() > 0.0, "{progress}");
    assert!(progress["rows_per_sec"].as_f64().unwrap() > 0.0, "{progress}");

    let (status, body) = post(&client, &served.url(&format!("/api/runs/{run}/cancel")), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["cancelled"], true);
    gate.open();
    let events = stream.until_run_ends(run).await;
    assert_eq!(events.last().unwrap().data["phase"], "failed");

    let (_, detail) = get(&client, &served.url(&format!("/api/runs/{run}"))).await;
    assert_eq!(
        (detail["run"]["status"].as_str(), detail["run"]["cancellable"].as_bool()),
        (Some("failed"), Some(false))
    );
    let record = &detail["migrations"][0];
    assert_eq!(record["status"], "cancelled");
    assert!(record["error"].as_str().unwrap().contains("resumable from its last checkpoint"), "{record}");
    let done_before = record["counts"]["inserted"].as_u64().unwrap();
    assert_eq!(done_before, 250, "stopped after the load in flight when cancelled");

    // Run again: it resumes from the checkpoint and moves only the rest.
    let (status, again) = post(&client, &served.url("/api/runs"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = again["run"].as_i64().unwrap();
    stream.until_run_ends(second).await;
    let (_, detail) = get(&client, &served.url(&format!("/api/runs/{second}"))).await;
    let record = &detail["migrations"][0];
    assert_eq!((record["status"].as_str(), record["resumed"].as_bool()), (Some("completed"), Some(true)));
    assert_eq!(record["counts"]["inserted"].as_u64(), Some(2750));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_recorded_by_another_process_show_up() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = databases(dir.path(), 300, 30);
    let served = serve(Arc::new(sync_orchestrator(&source, &target, 100).await)).await;
    let client = client();

    // Another process: its own connections to the same files, its own orchestrator.
    let other_source = Arc::new(SqliteDatabase::open(dir.path().join("source.db")).unwrap());
    let other_target = Arc::new(SqliteDatabase::open(dir.path().join("target.db")).unwrap());
    let other = sync_orchestrator(&other_source, &other_target, 100).await;
    let summary = other.run(RunRequest::all()).await.unwrap().into_result().unwrap();

    let (status, body) = get(&client, &served.url("/api/runs")).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &body["runs"][0];
    assert_eq!(listed["id"], summary.run.0);
    assert_eq!(listed["status"], "completed");
    assert_eq!(listed["totals"]["read"], 330);
    assert_eq!((listed["in_process"].as_bool(), listed["cancellable"].as_bool()), (Some(false), Some(false)));
    let (_, body) = get(&client, &served.url("/api/migrations")).await;
    for migration in body["migrations"].as_array().unwrap() {
        assert_eq!(migration["latest"]["run"], summary.run.0, "{migration}");
        assert_eq!(migration["latest"]["status"], "completed");
        assert!(migration["progress"].is_null(), "no live progress for another process's run");
    }
    let (status, body) = post(&client, &served.url(&format!("/api/runs/{}/cancel", summary.run.0)), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    served.stop().await;
}
