//! Tables with no foreign-key path between them load at the same time (`jobs`), and with one job
//! they never overlap. On the fast path of a `full` sync a child table loads beside its parent
//! too; with per-row checks it waits for it.
//!
//! "At the same time" is proved by events, never by timing: each table's first load waits at a
//! gate ([`FaultyDatabase`] on the target) that opens only once every table's first load has
//! reached its own, so the sync can only finish if those loads were in flight together; run one
//! after the other, the first would wait for ever, and [`rendezvous`] fails instead. "Never
//! overlap" is read from the progress events: no batch of one table committed between the first
//! and last of the other.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmf_core::sync::{Database, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, Phase, ProgressEvent, ProgressHub, RunRequest};
use dmf_postgres::PgDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, rendezvous};

/// Only turns a hang into a failure: nothing is measured against it.
const PATIENCE: Duration = Duration::from_secs(120);

const SCHEMA: &str = "CREATE TABLE left_side (id bigint PRIMARY KEY, v text);
                      CREATE TABLE right_side (id bigint PRIMARY KEY, v text);";

/// Where in `events` `table` committed a batch.
fn loading(events: &[ProgressEvent], table: &str) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.phase == Phase::Loading && e.migration.as_ref().is_some_and(|m| m.as_str() == table))
        .map(|(i, _)| i)
        .collect()
}

/// How many batches `table` committed.
fn batches(events: &[ProgressEvent], table: &str) -> usize {
    loading(events, table).len()
}

/// True when `other` committed a batch after `table`'s first batch and before its last.
fn overlapped(events: &[ProgressEvent], table: &str, other: &str) -> bool {
    let mine = loading(events, table);
    let (Some(first), Some(last)) = (mine.first(), mine.last()) else { return false };
    loading(events, other).iter().any(|i| i > first && i < last)
}

fn job<T: Database>(source: &TestDb, target: T, checks: ForeignKeyChecks, jobs: usize) -> SyncJob<PgDatabase, T> {
    SyncJob::new(source.database(), Arc::new(target), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(100).build().unwrap())
        .foreign_key_checks(checks)
        .jobs(jobs)
}

/// Syncs with `jobs` while the first load into each of `tables` waits at a gate until all of
/// them have reached theirs: succeeds only if those loads were in flight at the same time.
async fn sync_side_by_side(source: &TestDb, target: &TestDb, checks: ForeignKeyChecks, jobs: usize, tables: [&str; 2]) {
    let gates = tables.map(|_| Gate::new());
    let mut faulty = FaultyDatabase::new(PgDatabase::lazy(&target.url).unwrap());
    for (table, gate) in tables.iter().zip(&gates) {
        faulty = faulty.faults_for(table, FaultPlan::new().hold_before(1, gate));
    }
    let job = job(source, faulty, checks, jobs);
    let summary = rendezvous(&gates, job.run(RunRequest::all().force()), PATIENCE)
        .await
        .unwrap_or_else(|apart| panic!("{tables:?} did not load at the same time: {apart}"))
        .unwrap();
    assert!(summary.succeeded(), "{summary}");
}

/// Syncs with `jobs`, returning the progress events.
async fn sync_recorded(source: &TestDb, target: &TestDb, checks: ForeignKeyChecks, jobs: usize) -> Vec<ProgressEvent> {
    let hub = ProgressHub::new();
    let mut events = hub.subscribe();
    let job = job(source, PgDatabase::lazy(&target.url).unwrap(), checks, jobs).progress(hub);
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
    let (source, target) = (TestDb::create("concurrent_src").await, TestDb::create("concurrent_dst").await);
    let client = source.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO left_side SELECT g, 'l' || g FROM generate_series(1, 4000) g;
             INSERT INTO right_side SELECT g, 'r' || g FROM generate_series(1, 4000) g;",
        )
        .await
        .unwrap();
    target.client().await.batch_execute(SCHEMA).await.unwrap();

    let (left, right) = ("public.left_side", "public.right_side");
    sync_side_by_side(&source, &target, ForeignKeyChecks::Auto, 2, [left, right]).await;
    assert_eq!(fingerprint(&source).await, fingerprint(&target).await);
    let events = sync_recorded(&source, &target, ForeignKeyChecks::Auto, 1).await;
    assert!(batches(&events, left) >= 2 && batches(&events, right) >= 2, "both tables loaded in batches");
    assert!(!overlapped(&events, left, right) && !overlapped(&events, right, left), "one job: one table at a time");
    assert_eq!(fingerprint(&source).await, fingerprint(&target).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_fast_path_a_child_table_loads_beside_its_parent_and_after_it_with_per_row_checks() {
    const FAMILY: &str = "CREATE TABLE parent (id bigint PRIMARY KEY, v text);
                          CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent (id));";
    let (source, target) = (TestDb::create("family_src").await, TestDb::create("family_dst").await);
    let client = source.client().await;
    client.batch_execute(FAMILY).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 4000) g;
             INSERT INTO child SELECT g, g FROM generate_series(1, 4000) g;",
        )
        .await
        .unwrap();
    target.client().await.batch_execute(FAMILY).await.unwrap();

    let (parent, child) = ("public.parent", "public.child");
    // Fast path: the child's first load runs while its parent's first load is still waiting.
    sync_side_by_side(&source, &target, ForeignKeyChecks::Auto, 2, [parent, child]).await;
    assert_eq!(family_fingerprint(&source).await, family_fingerprint(&target).await);
    let events = sync_recorded(&source, &target, ForeignKeyChecks::PerRow, 2).await;
    assert!(batches(&events, parent) >= 2 && batches(&events, child) >= 2, "both tables loaded in batches");
    assert!(
        !overlapped(&events, parent, child) && !overlapped(&events, child, parent),
        "per row: the child waits for its parent"
    );
    assert_eq!(family_fingerprint(&source).await, family_fingerprint(&target).await);
}

async fn fingerprint(db: &TestDb) -> (i64, String) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM left_side) + (SELECT count(*) FROM right_side),
                    md5((SELECT string_agg(t::text, '|' ORDER BY id) FROM left_side t)
                        || (SELECT string_agg(t::text, '|' ORDER BY id) FROM right_side t))",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn family_fingerprint(db: &TestDb) -> (i64, String) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM parent) + (SELECT count(*) FROM child),
                    md5((SELECT string_agg(t::text, '|' ORDER BY id) FROM parent t)
                        || (SELECT string_agg(t::text, '|' ORDER BY id) FROM child t))",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}
