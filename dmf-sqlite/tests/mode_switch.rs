//! A run resumes only an unfinished run of the same plan. After an `upsert` that failed half
//! way, a `full` sync starts from the beginning (empties the tables, loads everything) instead
//! of resuming the upsert's checkpoints and skipping the emptying that an earlier `full` run
//! completed; a `diff` after a failed `diff` resumes it. Both end equal to the source.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::orchestrator::LastRun;
use dmf_core::sync::{CLEAR, SyncJob, SyncMode};
use dmf_core::{MigrationName, MigrationStatus, RunRequest, RunStatus, RunSummary};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase};

/// A full sync, then a change of the source, then a sync in `mode` whose `call`-th load of
/// `migration` fails (a fatal error: the run stops there).
async fn failed(mode: SyncMode, migration: &str, call: u64, source: &Path, target: &Path) -> RunSummary {
    let first = sync(source, target, SyncMode::Full, RunRequest::all().force()).await;
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    change_source(source);
    let faulty = FaultyDatabase::new(SqliteDatabase::open(target).unwrap())
        .faults_for_migration(migration, FaultPlan::new().fail_at(call));
    let job = SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(faulty), mode)
        .engine(engine(50))
        .jobs(1);
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Failed, "{summary}");
    summary
}

/// What the latest run means for `mode`, and that mode's run with the request it implies.
async fn next_run(source: &Path, target: &Path, mode: SyncMode) -> (LastRun, RunSummary) {
    let job = SyncJob::new(
        Arc::new(SqliteDatabase::open(source).unwrap()),
        Arc::new(SqliteDatabase::open(target).unwrap()),
        mode,
    )
    .engine(engine(50))
    .jobs(2);
    let orchestrator = job.orchestrator(&job.plan().await.unwrap()).await.unwrap();
    let last = orchestrator.last_run().await.unwrap();
    let summary = orchestrator.run(last.request(false)).await.unwrap();
    (last, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_after_a_failed_upsert_starts_from_the_beginning() {
    let dir = Dir::new("mode-switch-full");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 400);
    empty_database(&target);
    // The upsert stops with `orders` half written.
    let failed = failed(SyncMode::Upsert, "orders", 3, &source, &target).await;

    let (last, summary) = next_run(&source, &target, SyncMode::Full).await;
    match &last {
        LastRun::Different { run, only_here, .. } => {
            assert_eq!(run.id, failed.run);
            assert!(only_here.contains(&MigrationName::new(CLEAR)), "{last}");
        }
        other => panic!("the failed upsert is not resumed by a full sync: {other:?}"),
    }
    assert!(last.to_string().contains("starting this one from the beginning"), "{last}");
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let clear = summary.migration(CLEAR).expect("the tables were emptied");
    assert!(clear.counts.deleted > 0, "{summary}");
    assert!(summary.migrations.iter().all(|m| !m.resumed && m.counts.rejected == 0), "{summary}");
    assert!(content(&target) == content(&source), "the target differs from the source\n{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_after_a_failed_diff_resumes_it() {
    let dir = Dir::new("mode-switch-upsert");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 400);
    empty_database(&target);
    // The diff reads only changed rows: it stops at its first delete from `orders`, after every
    // table's loads completed.
    let failed = failed(SyncMode::Diff, "orders (deletes)", 1, &source, &target).await;

    let (last, summary) = next_run(&source, &target, SyncMode::Diff).await;
    assert!(matches!(&last, LastRun::Resumable(run) if run.id == failed.run), "{last:?}");
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    let customers = summary.migration("customers").expect("customers planned");
    assert_eq!(customers.status, MigrationStatus::Skipped, "completed in the failed run\n{summary}");
    assert_eq!(summary.migration("orders (deletes)").map(|m| m.counts.deleted), Some(8), "{summary}");
    assert!(summary.migration(CLEAR).is_none(), "a diff empties nothing\n{summary}");
    assert!(content(&target) == content(&source), "the target differs from the source\n{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_after_a_completed_one_copies_the_source_again() {
    let dir = Dir::new("mode-switch-again");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 200);
    empty_database(&target);
    let first = sync(&source, &target, SyncMode::Full, RunRequest::all()).await;
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    change_source(&source);

    // Not forced: the completed run is not resumed (which would skip every table as done).
    let again = sync(&source, &target, SyncMode::Full, RunRequest::all()).await;
    assert_eq!(again.status, RunStatus::Completed, "{again}");
    assert_eq!(again.migration("customers").map(|m| m.status), Some(MigrationStatus::Completed), "{again}");
    assert!(content(&target) == content(&source), "the target differs from the source\n{again}");
}
