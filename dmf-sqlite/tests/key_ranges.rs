//! Large tables read by several key-range readers at once: a full sync with three ranges per
//! table (an integer key, a composite key and a text key) copies exactly the source, its ranges
//! load side by side and the tables that reference a split table wait for all its ranges; a run
//! stopped in the middle of its ranges resumes them, even after the source changed and with
//! another reader count, with no row lost or loaded twice.
//!
//! "Side by side" is proved by events, not timing: the first load of each range of `customers`
//! waits at a gate ([`FaultyDatabase`] on the target) until every range's first load has reached
//! its own ([`rendezvous`]), which can only happen if all three load at the same time. The run
//! that is stopped is cancelled while a chosen load of one range waits at a gate ([`cancel_at`]).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmf_core::sync::{Database, ForeignKeyChecks, KeyRange, SyncJob, SyncMode};
use dmf_core::{
    CancellationToken, MigrationName, MigrationStatus, Phase, ProgressEvent, ProgressHub, RunRequest, RunStatus, Value,
};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, cancel_at, rendezvous};

/// A table with a text key (unicode, mixed case: byte order differs from most collations),
/// referencing `customers`, so it waits for all of the customers' ranges.
const LABELS: &str = "CREATE TABLE labels (code TEXT PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id), \
                      note TEXT)";

fn fill_labels(path: &Path, rows: i64) {
    let connection = connect(path);
    connection
        .execute_batch(&format!(
            "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < {rows})
             INSERT INTO labels SELECT (CASE v % 4 WHEN 0 THEN 'a' WHEN 1 THEN 'B' WHEN 2 THEN 'é' ELSE '🦀' END) || v,
                                       1 + v % 3000, 'label ' || v FROM n"
        ))
        .unwrap();
}

fn pair(dir: &Dir) -> (std::path::PathBuf, std::path::PathBuf) {
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    let mut connection = empty_database(&source);
    connection.execute_batch(LABELS).unwrap();
    fill(&mut connection, 3000);
    fill_labels(&source, 2400);
    empty_database(&target).execute_batch(LABELS).unwrap();
    (source, target)
}

fn labels(path: &Path) -> Vec<(String, i64, String)> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection.prepare("SELECT code, customer_id, note FROM labels ORDER BY code").unwrap();
    statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn job(source: &Path, target: &Path, hub: &ProgressHub) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    job_into(source, SqliteDatabase::open(target).unwrap(), hub)
}

fn job_into<T: Database>(source: &Path, target: T, hub: &ProgressHub) -> SyncJob<SqliteDatabase, T> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(target), SyncMode::Full)
        .engine(engine(50))
        .jobs(3)
        .range_readers(3)
        .range_min_rows(1000)
        .progress(hub.clone())
}

/// Collects every event of the hub until the returned handle is awaited after the run.
fn record(hub: &ProgressHub) -> tokio::task::JoinHandle<Vec<ProgressEvent>> {
    let mut events = hub.subscribe();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(event) = events.recv().await {
            let run_ended = event.migration.is_none() && matches!(event.phase, Phase::Completed | Phase::Failed);
            seen.push(event);
            if run_ended {
                break;
            }
        }
        seen
    })
}

/// Asserts both files hold the same rows, naming the first table and key that differ (the
/// rows themselves are too large to print).
fn assert_same_content(target: &Path, source: &Path) {
    for ((table, ours), (_, theirs)) in content(target).into_iter().zip(content(source)) {
        let first_key = |rows: &[Vec<rusqlite::types::Value>]| rows.first().map(|r| format!("{:?}", r[0]));
        if ours != theirs {
            let differ = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            panic!(
                "table {table}: target has {} rows, source {}; first difference at row {differ:?} (first keys {:?} / {:?})",
                ours.len(),
                theirs.len(),
                first_key(&ours),
                first_key(&theirs)
            );
        }
    }
}

fn migration(event: &ProgressEvent) -> &str {
    event.migration.as_ref().map_or("", |m| m.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sync_in_key_ranges_copies_the_source_with_ranges_loading_side_by_side() {
    let dir = Dir::new("ranges");
    let (source, target) = pair(&dir);
    let hub = ProgressHub::new();
    let events = record(&hub);
    // The first load of each range of customers waits at its gate until all three are there.
    let gates = [Gate::new(), Gate::new(), Gate::new()];
    let mut gated = FaultyDatabase::new(SqliteDatabase::open(&target).unwrap());
    for (i, gate) in (1..=3).zip(&gates) {
        gated = gated.faults_for_migration(&format!("customers [range {i}/3]"), FaultPlan::new().hold_before(1, gate));
    }
    // Per-row checks: tables wait for their parents (into SQLite they do on the fast path too:
    // tests/concurrent_tables.rs).
    let job = job_into(&source, gated, &hub).foreign_key_checks(ForeignKeyChecks::PerRow);
    let plan = job.plan().await.unwrap();
    let split: BTreeMap<String, usize> =
        plan.tables.iter().map(|t| (t.target.name.to_string(), t.ranges.len())).collect();
    assert_eq!(split["customers"], 3, "{split:?}");
    assert_eq!(split["orders"], 3, "a composite key is split from its ranks");
    assert_eq!(split["labels"], 3, "a text key is split from its ranks");
    assert_eq!(split["players"], 0, "200 rows: under the threshold");
    // A dry run counts per range, like the real run's migrations.
    let dry = job.dry_run().await.unwrap();
    let planned: u64 = (1..=3).map(|i| dry.step(&format!("customers [range {i}/3]")).unwrap().inserted).sum();
    assert_eq!(planned, 3000, "{dry}");

    // Ranges of one table load at the same time (taking turns on SQLite's one writer): all three
    // first loads of customers are in flight together, or the rendezvous fails.
    let orchestrator = job.orchestrator(&plan).await.unwrap();
    let summary = rendezvous(&gates, orchestrator.run(RunRequest::all()), Duration::from_secs(120))
        .await
        .unwrap_or_else(|apart| panic!("the ranges of customers did not load side by side: {apart}"))
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_same_content(&target, &source);
    assert_eq!(labels(&target), labels(&source));
    let inserted: u64 = (1..=3)
        .map(|i| summary.migration(&format!("customers [range {i}/3]")).unwrap())
        .inspect(|r| assert!(r.counts.inserted > 500, "balanced ranges: {r:?}"))
        .map(|r| r.counts.inserted)
        .sum();
    assert_eq!(inserted, 3000);

    let events = events.await.unwrap();
    // A table referencing a split table starts when all its ranges are done.
    let position = |wanted: &dyn Fn(&ProgressEvent) -> bool| events.iter().position(wanted).unwrap();
    let labels_started = position(&|e| e.phase == Phase::Started && migration(e).starts_with("labels [range"));
    for i in 1..=3 {
        let name = format!("customers [range {i}/3]");
        let done = position(&|e| e.phase == Phase::Completed && migration(e) == name);
        assert!(done < labels_started, "{name} completed after labels started");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stopped_inside_its_ranges_resumes_them_even_after_the_source_changed() {
    let dir = Dir::new("ranges-resume");
    let (source, target) = pair(&dir);

    // Stop the run while the eighth load of the second range of customers waits at a gate:
    // that range has then loaded exactly 400 rows, the others whatever they had.
    let gate = Gate::new();
    let gated = FaultyDatabase::new(SqliteDatabase::open(&target).unwrap())
        .faults_for_migration("customers [range 2/3]", FaultPlan::new().hold_before(8, &gate));
    let job = job_into(&source, gated, &ProgressHub::new());
    let plan = job.plan().await.unwrap();
    let planned = plan.tables.iter().find(|t| t.target.name.name == "customers").unwrap().ranges.clone();
    let cancel = CancellationToken::new();
    let orchestrator = job.orchestrator(&plan).await.unwrap();
    let run = orchestrator.run(RunRequest::all().with_cancel(cancel.clone()));
    let stopped = cancel_at(&gate, &cancel, run).await.unwrap_or_else(|unreached| panic!("{unreached}")).unwrap();
    assert_eq!(stopped.status, RunStatus::Failed, "{stopped}");
    let stopped_ranges: Vec<_> =
        (1..=3).filter_map(|i| stopped.migration(&format!("customers [range {i}/3]"))).collect();
    let second = stopped.migration("customers [range 2/3]").unwrap();
    assert_eq!((second.status, second.counts.inserted), (MigrationStatus::Cancelled, 400), "{stopped}");
    let first: u64 = stopped_ranges.iter().map(|r| r.counts.inserted).sum();
    assert!(first < 3000, "stopped midway, after {first} rows");

    // The source changes: new keys past the maximum and below the minimum move every boundary
    // a new split would draw.
    connect(&source)
        .execute_batch(
            "INSERT INTO customers (id, name, created_at, updated_at)
                 WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 900)
                 SELECT 3000 + v * 3, 'Late ' || v, '2024-06-01 00:00:00', '2024-06-01 00:00:00' FROM n;
             INSERT INTO customers (id, name, created_at, updated_at) VALUES (-50, 'Early', '2024-06-01 00:00:00', '2024-06-01 00:00:00');",
        )
        .unwrap();
    let fresh = SqliteDatabase::open(&source)
        .unwrap()
        .key_ranges(
            &plan.tables.iter().find(|t| t.target.name.name == "customers").unwrap().extract_spec(
                &["id".to_owned()],
                dmf_core::sync::ReadOrder::Key,
                false,
            ),
            NonZeroUsize::new(3).unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(fresh, planned, "a new split would cut elsewhere");

    // The next run (not forced) reads the stored ranges: exactly the rest, then the new rows;
    // even when it is asked for one reader (another --jobs, another machine).
    let hub = ProgressHub::new();
    let job = self::job(&source, &target, &hub).range_readers(1);
    let replanned = job.plan().await.unwrap();
    let summary = job.orchestrator(&replanned).await.unwrap().run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert!((1..=3).any(|i| summary.migration(&format!("customers [range {i}/3]")).unwrap().resumed), "{summary}");
    assert_same_content(&target, &source);
    assert_eq!(labels(&target), labels(&source));
    assert_eq!(count(&target, "customers"), 3901);
    let target_db = SqliteDatabase::open(&target).unwrap();
    let store = target_db.run_store().await.unwrap();
    let mut stored = Vec::new();
    for i in 1..=3 {
        let checkpoint =
            store.checkpoint(&MigrationName::new(format!("customers [range {i}/3]"))).await.unwrap().unwrap();
        stored.push(KeyRange::from_scope(&checkpoint.unscoped().0.unwrap()).unwrap());
    }
    // The ranges that had committed a batch kept their bounds; with another reader count the
    // ones that had not started share the gap between them.
    for i in 0..3 {
        let range = stopped.migration(&format!("customers [range {}/3]", i + 1));
        if range.is_some_and(|r| r.counts.inserted > 0) {
            assert_eq!(stored[i], planned[i], "range {} kept the bounds of the interrupted run", i + 1);
        }
    }
    assert!(stored.windows(2).all(|pair| pair[0].up_to == pair[1].after), "contiguous: {stored:?}");
    assert_eq!(stored[2].up_to, None);
    assert!(stored[0].after.is_none() && stored[0].contains(&[Value::Int(-50)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upsert_in_key_ranges_is_rolled_back_range_by_range() {
    let dir = Dir::new("ranges-rollback");
    let (source, target) = pair(&dir);
    let before = content(&target);
    let job = job(&source, &target, &ProgressHub::new());
    let upsert = SyncJob::new(
        Arc::new(SqliteDatabase::open(&source).unwrap()),
        Arc::new(SqliteDatabase::open(&target).unwrap()),
        SyncMode::Upsert,
    )
    .engine(engine(50))
    .jobs(3)
    .range_readers(3)
    .range_min_rows(1000)
    .undo(true);
    let summary = upsert.run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert!(summary.migration("customers [range 2/3]").is_some(), "{summary}");
    assert_same_content(&target, &source);

    let (run, undone) = job.rollback(None, false).await.unwrap();
    assert_eq!(run, summary.run);
    let ranges = undone.undone.iter().filter(|(m, _, _)| m.as_str().starts_with("customers [range")).count();
    assert_eq!(ranges, 3, "every range's undo log replayed");
    assert_eq!(content(&target), before);
    assert_eq!(count(&target, "labels"), 0);
}
