//! A sync of the rich schema with the undo log on can be rolled back: the target's content is
//! then exactly what it was before the run, compared with plain rusqlite; a full sync is rolled
//! back from its backup. The rollbacks every adapter refuses are dmf-testkit's sync conformance
//! suite, run in `tests/sync_conformance.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{MigrationStatus, RollbackTarget, RunRequest, RunStatus};
use dmf_sqlite::SqliteDatabase;

fn job(source: &std::path::Path, target: &std::path::Path, mode: SyncMode) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .engine(engine(100))
        .jobs(2)
        .undo(true)
}

fn undo_entries(target: &std::path::Path, run: dmf_core::RunId) -> i64 {
    rusqlite::Connection::open(target)
        .unwrap()
        .query_row("SELECT count(*) FROM dmf_undo_log WHERE run_id = ?", [run.0], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_from_the_undo_log_restores_the_pre_run_content_exactly() {
    for mode in [SyncMode::Diff, SyncMode::Upsert] {
        let dir = Dir::new("rollback");
        let (source, target) = (dir.file("source.db"), dir.file("target.db"));
        fill(&mut empty_database(&source), 700);
        empty_database(&target);
        assert!(job(&source, &target, SyncMode::Full).run(RunRequest::all()).await.unwrap().succeeded());
        // The target drifts from production: local edits that the next sync overwrites.
        connect(&target)
            .execute_batch(
                "UPDATE customers SET note = 'local edit', balance = NULL WHERE id % 50 = 1;
                 DELETE FROM orders WHERE customer_id = 5;",
            )
            .unwrap();
        change_source(&source);
        let before = content(&target);

        let job = job(&source, &target, mode.clone());
        let plan = job.plan().await.unwrap();
        let orchestrator = job.orchestrator(&plan).await.unwrap();
        let summary = orchestrator.run(RunRequest::all().force()).await.unwrap();
        assert!(summary.succeeded(), "{summary}");
        assert_ne!(content(&target), before, "the sync changed the target ({mode})");
        assert!(undo_entries(&target, summary.run) > 0);

        let undone = orchestrator.rollback(RollbackTarget::Run(summary.run)).await.unwrap();
        assert_eq!(content(&target), before, "rollback restores the pre-run content exactly ({mode})");
        assert!(undone.undone.iter().any(|(_, _, report)| report.deleted > 0 && report.restored == 0));
        assert!(undone.undone.iter().any(|(_, _, report)| report.restored > 0));
        assert_eq!(undo_entries(&target, summary.run), 0, "the replayed entries are gone");
        let store = orchestrator.store();
        assert_eq!(store.run(summary.run).await.unwrap().unwrap().status, RunStatus::RolledBack);
        for record in store.migration_records(summary.run).await.unwrap() {
            assert!(
                matches!(record.status, MigrationStatus::RolledBack | MigrationStatus::Skipped),
                "{}: {:?}",
                record.migration,
                record.status
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_is_rolled_back_from_the_backup_taken_before_it() {
    let dir = Dir::new("rollback-backup");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 300);
    empty_database(&target);
    fill(&mut connect(&target), 40); // the test environment's own rows, different from the source's
    connect(&target).execute_batch("UPDATE customers SET note = 'test env'").unwrap();
    let before = content(&target);

    let job = job(&source, &target, SyncMode::Full).backup(dmf_sqlite::SqliteBackup::new(&target, dir.file("backups")));
    let summary = job.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let taken = summary.backup.clone().expect("a backup before the first write");
    assert!(std::path::Path::new(&taken.location).exists());
    assert_eq!(content(&target), content(&source));

    let (run, undone) = job.rollback(None, false).await.unwrap();
    assert_eq!(run, summary.run);
    assert!(undone.order().contains(&"customers"));
    assert_eq!(content(&target), before, "the pre-run content, restored from the backup");
    let store = dmf_sqlite::SqliteDatabase::open(&target).unwrap().sqlite_run_store().unwrap();
    assert_eq!(dmf_core::RunStore::run(&store, run).await.unwrap().unwrap().status, RunStatus::RolledBack);
}
