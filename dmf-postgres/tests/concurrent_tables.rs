//! Tables with no foreign-key path between them load at the same time (`jobs`): seen in the
//! progress events, where one table commits batches while the other is between its first and
//! last batch (not timing), and with one job they never overlap. On the fast path of a `full`
//! sync a child table loads beside its parent too; with per-row checks it waits for it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::sync::{ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, Phase, ProgressEvent, ProgressHub, RunRequest};

const SCHEMA: &str = "CREATE TABLE left_side (id bigint PRIMARY KEY, v text);
                      CREATE TABLE right_side (id bigint PRIMARY KEY, v text);";

/// True when `other` committed a batch after `table`'s first batch and before its last.
fn overlapped(events: &[ProgressEvent], table: &str, other: &str) -> bool {
    let loading = |name: &str| -> Vec<usize> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.phase == Phase::Loading && e.migration.as_ref().is_some_and(|m| m.as_str() == name))
            .map(|(i, _)| i)
            .collect()
    };
    let mine = loading(table);
    let (Some(first), Some(last)) = (mine.first(), mine.last()) else { return false };
    loading(other).iter().any(|i| i > first && i < last)
}

async fn sync(source: &TestDb, target: &TestDb, jobs: usize) -> Vec<ProgressEvent> {
    sync_checked(source, target, ForeignKeyChecks::Auto, jobs).await
}

async fn sync_checked(source: &TestDb, target: &TestDb, checks: ForeignKeyChecks, jobs: usize) -> Vec<ProgressEvent> {
    let hub = ProgressHub::new();
    let mut events = hub.subscribe();
    let job = SyncJob::new(source.database(), target.database(), SyncMode::Full)
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

    let events = sync(&source, &target, 2).await;
    let (left, right) = ("public.left_side", "public.right_side");
    assert!(overlapped(&events, left, right) || overlapped(&events, right, left), "two jobs: the batches interleave");
    let events = sync(&source, &target, 1).await;
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
    let events = sync_checked(&source, &target, ForeignKeyChecks::Auto, 2).await;
    assert!(
        overlapped(&events, parent, child) || overlapped(&events, child, parent),
        "fast path: the child's batches interleave with its parent's"
    );
    let events = sync_checked(&source, &target, ForeignKeyChecks::PerRow, 2).await;
    assert!(
        !overlapped(&events, parent, child) && !overlapped(&events, child, parent),
        "per row: the child waits for its parent"
    );
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
