//! Tables with no foreign-key path between them load at the same time (`jobs`): seen in the
//! progress events, where one table commits batches while the other is between its first and
//! last batch (not timing), and with one job they never overlap.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
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
    let hub = ProgressHub::new();
    let mut events = hub.subscribe();
    let job = SyncJob::new(source.database(), target.database(), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(100).build().unwrap())
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
