//! `SyncJob::dry_run` writes nothing (the target file's bytes are unchanged, no control table
//! appears) and its counts, step by step, are the counts of the real run that follows.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{RunRequest, RunSummary};
use dmf_sqlite::SqliteDatabase;

fn job(source: &Path, target: &Path, mode: SyncMode) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .engine(engine(97))
        .jobs(2)
}

fn control_tables(path: &Path) -> i64 {
    connect(path).query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'dmf%'", [], |r| r.get(0)).unwrap()
}

/// The (inserted, updated, deleted) of every migration of a real run.
fn run_counts(summary: &RunSummary) -> Vec<(String, (u64, u64, u64))> {
    let mut counts: Vec<_> = summary
        .migrations
        .iter()
        .map(|m| (m.migration.to_string(), (m.counts.inserted, m.counts.updated, m.counts.deleted)))
        .collect();
    counts.sort();
    counts
}

async fn dry_run_then_run(source: &Path, target: &Path, mode: SyncMode) {
    let job = job(source, target, mode.clone());
    let bytes = std::fs::read(target).unwrap();
    let tables = control_tables(target);
    let report = job.dry_run().await.unwrap();
    assert!(report.preflight.passed(), "{}", report.preflight);
    assert_eq!(std::fs::read(target).unwrap(), bytes, "a dry run writes nothing ({mode})");
    assert_eq!(control_tables(target), tables, "not even control tables ({mode})");

    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let mut planned: Vec<_> = report
        .steps
        .iter()
        .map(|s| (s.migration.to_string(), (s.counts.inserted, s.counts.updated, s.counts.deleted)))
        .collect();
    planned.sort();
    assert_eq!(planned, run_counts(&summary), "{mode}: dry run\n{report}\nreal run\n{summary}");
    assert!(planned.iter().any(|(_, (i, u, d))| i + u + d > 0), "{mode}: the run wrote something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_equal_the_real_run_and_nothing_is_written() {
    let dir = Dir::new("dry-run");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 600);
    empty_database(&target);
    // Into an empty target with no control tables yet.
    assert_eq!(control_tables(&target), 0);
    dry_run_then_run(&source, &target, SyncMode::Full).await;
    // A drifted target and a changed source, in every mode that compares.
    change_source(&source);
    for mode in [SyncMode::Upsert, SyncMode::Diff, SyncMode::Full] {
        connect(&target)
            .execute_batch(
                "UPDATE customers SET note = 'local edit' WHERE id % 40 = 3;
                 DELETE FROM orders WHERE customer_id = 7;
                 UPDATE employees SET manager_id = NULL WHERE id % 9 = 4;
                 INSERT OR REPLACE INTO docs (id, body, updated_at) VALUES (100000, 'only here', '2024-01-01 00:00:00');",
            )
            .unwrap();
        dry_run_then_run(&source, &target, mode).await;
    }
}
