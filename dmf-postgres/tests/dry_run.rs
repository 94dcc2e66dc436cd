//! `SyncJob::dry_run` on PostgreSQL writes nothing (fingerprints unchanged, no `dmf` schema
//! created) and its counts, step by step, are the counts of the real run that follows.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunSummary};

fn sorted_counts(summary: &RunSummary) -> Vec<(String, (u64, u64, u64))> {
    let mut counts: Vec<_> = summary
        .migrations
        .iter()
        .map(|m| (m.migration.to_string(), (m.counts.inserted, m.counts.updated, m.counts.deleted)))
        .collect();
    counts.sort();
    counts
}

async fn dmf_schema_exists(target: &TestDb) -> bool {
    let client = target.client().await;
    client.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'dmf'", &[]).await.unwrap().get::<_, i64>(0) > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_equal_the_real_run_and_nothing_is_written() {
    let (source, target) = rich_pair("dry_run").await;
    for (round, mode) in [SyncMode::Full, SyncMode::Upsert, SyncMode::Diff, SyncMode::Full].into_iter().enumerate() {
        if round == 1 {
            source.client().await.batch_execute(CHANGES).await.unwrap();
            let drift = "UPDATE shop.customers SET name = 'local edit' WHERE id % 50 = 7";
            target.client().await.batch_execute(drift).await.unwrap();
        }
        let job = SyncJob::new(source.database(), target.database(), mode.clone())
            .engine(EngineConfig::builder().batch_size(313).build().unwrap())
            .jobs(2);
        let client = target.client().await;
        let before = fingerprints(&client).await;
        let had_schema = dmf_schema_exists(&target).await;
        assert!(round > 0 || !had_schema, "a fresh target has no control tables");

        let report = job.dry_run().await.unwrap();
        assert!(report.preflight.passed(), "{}", report.preflight);
        assert_eq!(fingerprints(&client).await, before, "a dry run writes nothing ({mode})");
        assert_eq!(dmf_schema_exists(&target).await, had_schema, "not even the control tables ({mode})");

        let summary = job.run(RunRequest::all().force()).await.unwrap();
        assert!(summary.succeeded(), "{summary}");
        let mut planned: Vec<_> = report
            .steps
            .iter()
            .map(|s| (s.migration.to_string(), (s.counts.inserted, s.counts.updated, s.counts.deleted)))
            .collect();
        planned.sort();
        assert_eq!(planned, sorted_counts(&summary), "{mode}: dry run\n{report}\nreal run\n{summary}");
        assert!(planned.iter().any(|(_, (i, u, d))| i + u + d > 0), "{mode}: the run wrote something");
    }
}
