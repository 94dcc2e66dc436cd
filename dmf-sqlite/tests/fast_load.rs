//! The fast path of a full sync: the loading connections skip per-row foreign-key checks
//! (`PRAGMA foreign_keys = OFF`) and the sync proves every foreign key with one set-based query
//! each. The copy is exact; an orphan fails the run naming the foreign key and the key, and a
//! rollback restores the target.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::sync::{CATCH_UP, FK_CHECK, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{RunRequest, RunSummary};
use dmf_sqlite::{SqliteBackup, SqliteDatabase};

fn job(source: &Path, target: &Path, checks: ForeignKeyChecks) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(
        Arc::new(SqliteDatabase::open(source).unwrap()),
        Arc::new(SqliteDatabase::open(target).unwrap()),
        SyncMode::Full,
    )
    .engine(engine(150))
    .jobs(2)
    .foreign_key_checks(checks)
}

fn fk_line(summary: &RunSummary) -> String {
    summary.preflight.outcomes.iter().find(|o| o.check == FK_CHECK).map(|o| o.detail.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_copies_exactly_and_pre_flight_says_which_path() {
    let dir = Dir::new("fast-load");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 800);
    empty_database(&target);

    let summary = job(&source, &target, ForeignKeyChecks::Auto).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(fk_line(&summary).starts_with("deferred to a set-based proof"), "{}", fk_line(&summary));
    assert_eq!(content(&target), content(&source), "the fast path copies exactly");
    assert_eq!(summary.migration(CATCH_UP).unwrap().counts, Default::default(), "no orphan, no catch-up");

    let summary = job(&source, &target, ForeignKeyChecks::PerRow).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(fk_line(&summary), "per row, because --fk-checks per-row was asked for");
    assert_eq!(content(&target), content(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_fails_the_run_naming_the_foreign_key_and_rollback_restores_the_target() {
    let dir = Dir::new("fast-load-orphan");
    let (source, target, backups) = (dir.file("source.db"), dir.file("target.db"), dir.file("backups"));
    fill(&mut empty_database(&source), 300);
    empty_database(&target);
    assert!(job(&source, &target, ForeignKeyChecks::Auto).run(RunRequest::all().force()).await.unwrap().succeeded());
    // The source has an orphan its own checks let in (foreign keys off on that connection).
    let orphan = rusqlite::Connection::open(&source).unwrap();
    orphan
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO orders (customer_id, order_no, total, updated_at) VALUES (999999, 1, '1.00', '2024-01-01');
             UPDATE customers SET note = 'changed' WHERE id <= 5;",
        )
        .unwrap();
    let before = content(&target);

    let job = job(&source, &target, ForeignKeyChecks::Auto).backup(SqliteBackup::new(&target, &backups));
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(!summary.succeeded(), "an orphan never passes\n{summary}");
    let error = summary.migration(CATCH_UP).unwrap().error.clone().unwrap();
    assert!(error.contains("foreign key `"), "{error}");
    assert!(error.contains("of orders: 1 row(s) reference no row"), "{error}");
    assert!(error.contains("customer_id=999999"), "{error}");
    assert_ne!(content(&target), before, "the failed run wrote");

    let (_, undone) = job.rollback(None, false).await.unwrap();
    assert!(!undone.undone.is_empty());
    assert_eq!(content(&target), before, "rollback restores the target exactly");
}
