//! Tables with no foreign-key path between them load at the same time (`jobs`): seen in the
//! progress events, where one table commits batches while the other is between its first and
//! last batch (not timing), and with one job they never overlap. A child table waits for its
//! parent, on the fast path of a `full` sync too: SQLite writes one transaction at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{Dir, connect};
use dmf_core::sync::{Database, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, Phase, ProgressEvent, ProgressHub, RunRequest};
use dmf_sqlite::SqliteDatabase;

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

async fn sync(jobs: usize) -> Vec<ProgressEvent> {
    sync_tables(SCHEMA, FILL, SyncMode::Upsert, ForeignKeyChecks::Auto, jobs).await
}

async fn sync_tables(
    schema: &str,
    fill: &str,
    mode: SyncMode,
    checks: ForeignKeyChecks,
    jobs: usize,
) -> Vec<ProgressEvent> {
    let dir = Dir::new("concurrent-tables");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source).execute_batch(schema).unwrap();
    connect(&source).execute_batch(fill).unwrap();
    connect(&target).execute_batch(schema).unwrap();
    let hub = ProgressHub::new();
    let mut events = hub.subscribe();
    let job = SyncJob::new(
        Arc::new(SqliteDatabase::open(&source).unwrap()),
        Arc::new(SqliteDatabase::open(&target).unwrap()),
        mode,
    )
    .engine(EngineConfig::builder().batch_size(100).build().unwrap())
    .foreign_key_checks(checks)
    .jobs(jobs)
    .progress(hub);
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
    collect.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_tables_load_at_the_same_time_with_two_jobs_and_one_after_the_other_with_one() {
    let events = sync(2).await;
    assert!(
        overlapped(&events, "left_side", "right_side") || overlapped(&events, "right_side", "left_side"),
        "two jobs: the tables' batches interleave"
    );
    let events = sync(1).await;
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
