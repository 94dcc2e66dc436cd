//! Tables with no foreign-key path between them load at the same time (`jobs`), taking turns on
//! SQLite's one writer, and with one job they never overlap. A child table waits for its parent,
//! on the fast path of a `full` sync too: SQLite writes one transaction at a time.
//!
//! "At the same time" is proved by events, never by timing: each table's first load waits at a
//! gate ([`FaultyDatabase`] on the target) that opens only once both tables' first loads have
//! reached theirs, so the sync can only finish if those loads were in flight together; run one
//! after the other, the first would wait for ever, and [`rendezvous`] fails instead. "Never
//! overlap" is read from the progress events: no batch of one table committed between the first
//! and last of the other.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Dir, connect};
use dmf_core::sync::{Database, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, Phase, ProgressEvent, ProgressHub, RunRequest};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, rendezvous};

const SCHEMA: &str = "CREATE TABLE left_side (id INTEGER PRIMARY KEY, v TEXT);
                      CREATE TABLE right_side (id INTEGER PRIMARY KEY, v TEXT);";
const FILL: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
                    INSERT INTO left_side SELECT i, 'l' || i FROM n;
                    INSERT INTO right_side SELECT id, 'r' || id FROM left_side;";

const FAMILY: &str = "CREATE TABLE parent (id INTEGER PRIMARY KEY, v TEXT);
                      CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id));";
const FAMILY_FILL: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
                           INSERT INTO parent SELECT i, 'p' || i FROM n;
                           INSERT INTO child SELECT id, id FROM parent;";

/// Where in `events` `table` committed a batch.
fn batches(events: &[ProgressEvent], table: &str) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.phase == Phase::Loading && e.migration.as_ref().is_some_and(|m| m.as_str() == table))
        .map(|(i, _)| i)
        .collect()
}

/// True when `other` committed a batch after `table`'s first batch and before its last.
fn overlapped(events: &[ProgressEvent], table: &str, other: &str) -> bool {
    let mine = batches(events, table);
    let (Some(first), Some(last)) = (mine.first(), mine.last()) else { return false };
    batches(events, other).iter().any(|i| i > first && i < last)
}

/// A source filled by `fill` and an empty target, both with `schema`.
fn files(dir: &Dir, schema: &str, fill: &str) -> (PathBuf, PathBuf) {
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source).execute_batch(schema).unwrap();
    connect(&source).execute_batch(fill).unwrap();
    connect(&target).execute_batch(schema).unwrap();
    (source, target)
}

fn job<T: Database>(
    source: &Path,
    target: T,
    mode: SyncMode,
    checks: ForeignKeyChecks,
    jobs: usize,
) -> SyncJob<SqliteDatabase, T> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(target), mode)
        .engine(EngineConfig::builder().batch_size(100).build().unwrap())
        .foreign_key_checks(checks)
        .jobs(jobs)
}

async fn sync_tables(
    schema: &str,
    fill: &str,
    mode: SyncMode,
    checks: ForeignKeyChecks,
    jobs: usize,
) -> Vec<ProgressEvent> {
    let dir = Dir::new("concurrent-tables");
    let (source, target) = files(&dir, schema, fill);
    let hub = ProgressHub::new();
    let mut events = hub.subscribe();
    let job = job(&source, SqliteDatabase::open(&target).unwrap(), mode, checks, jobs).progress(hub);
    let collect = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(event) = events.recv().await {
            let end = event.migration.is_none() && matches!(event.phase, Phase::Completed | Phase::Failed);
            seen.push(event);
            if end {
                break;
            }
        }
        seen
    });
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(rows(&target), rows(&source), "the target holds the source's rows");
    collect.await.unwrap()
}

/// Every row of the tables the tests sync (those of them that `path` has), by table, in key order.
fn rows(path: &Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let connection = connect(path);
    let mut all = Vec::new();
    for table in ["left_side", "right_side", "parent", "child"] {
        let Ok(mut statement) = connection.prepare(&format!("SELECT * FROM {table} ORDER BY id")) else { continue };
        let width = statement.column_count();
        let found = statement
            .query_map([], |row| (0..width).map(|i| row.get::<_, rusqlite::types::Value>(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<Vec<Vec<_>>>>()
            .unwrap();
        all.push((table.to_owned(), found));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_tables_load_at_the_same_time_with_two_jobs_and_one_after_the_other_with_one() {
    // Two jobs: each table's first load waits at its gate until the other's is at its own.
    let dir = Dir::new("concurrent-tables");
    let (source, target) = files(&dir, SCHEMA, FILL);
    let gates = [Gate::new(), Gate::new()];
    let gated = FaultyDatabase::new(SqliteDatabase::open(&target).unwrap())
        .faults_for("left_side", FaultPlan::new().hold_before(1, &gates[0]))
        .faults_for("right_side", FaultPlan::new().hold_before(1, &gates[1]));
    let job = job(&source, gated, SyncMode::Upsert, ForeignKeyChecks::Auto, 2);
    let summary = rendezvous(&gates, job.run(RunRequest::all().force()), Duration::from_secs(120))
        .await
        .unwrap_or_else(|apart| panic!("the two tables did not load at the same time: {apart}"))
        .unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(rows(&target), rows(&source), "the target holds the source's rows");

    let events = sync_tables(SCHEMA, FILL, SyncMode::Upsert, ForeignKeyChecks::Auto, 1).await;
    assert!(
        batches(&events, "left_side").len() >= 2 && batches(&events, "right_side").len() >= 2,
        "both tables loaded in batches"
    );
    assert!(!overlapped(&events, "left_side", "right_side") && !overlapped(&events, "right_side", "left_side"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_table_loads_after_its_parent_on_the_fast_path_too_since_sqlite_writes_one_transaction_at_a_time() {
    // Its loaders only take turns on the one writer: a child loading beside its parent would
    // gain nothing and hold its rows in memory beside the parent's.
    let dir = Dir::new("parallel-writes");
    let file = dir.file("any.db");
    connect(&file).execute_batch(FAMILY).unwrap();
    assert!(!SqliteDatabase::open(&file).unwrap().parallel_writes());
    for checks in [ForeignKeyChecks::Auto, ForeignKeyChecks::PerRow] {
        let events = sync_tables(FAMILY, FAMILY_FILL, SyncMode::Full, checks, 2).await;
        // At least two batches each, so that an overlap could be seen.
        assert!(
            batches(&events, "parent").len() >= 2 && batches(&events, "child").len() >= 2,
            "{checks:?}: both tables loaded in batches"
        );
        assert!(
            !overlapped(&events, "parent", "child") && !overlapped(&events, "child", "parent"),
            "{checks:?}: the child waits for its parent"
        );
    }
}
