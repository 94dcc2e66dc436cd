//! A sync with the undo log on, rolled back: every target table's fingerprint (count and md5 of
//! its rows' text, computed by PostgreSQL) is exactly what it was before the run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_from_the_undo_log_restores_every_table_exactly() {
    for mode in [SyncMode::Diff, SyncMode::Upsert] {
        let (source_db, target_db) = common::rich_pair("rollback").await;
        let (source, target) = (source_db.database(), target_db.database());
        let full = common::sync(&source, &target, SyncMode::Full, false).await;
        assert_eq!(full.status, RunStatus::Completed, "{full}");
        source_db.client().await.batch_execute(common::CHANGES).await.unwrap();
        // The target drifted too: local edits the sync overwrites or deletes.
        target_db
            .client()
            .await
            .batch_execute("UPDATE shop.customers SET name = 'local edit' WHERE id % 50 = 7")
            .await
            .unwrap();
        let before = common::fingerprints(&target_db.client().await).await;

        let job = SyncJob::new(source.clone(), target.clone(), mode.clone())
            .engine(EngineConfig::builder().batch_size(400).build().unwrap())
            .jobs(2)
            .undo(true);
        let summary = job.run(RunRequest::all().force()).await.unwrap();
        assert!(summary.succeeded(), "{summary}");
        assert_ne!(common::fingerprints(&target_db.client().await).await, before, "the sync changed the target");

        let (run, undone) = job.rollback(None, false).await.unwrap();
        assert_eq!(run, summary.run, "`last` is the latest run");
        assert!(undone.undone.iter().any(|(_, _, report)| report.restored > 0));
        assert_eq!(
            common::fingerprints(&target_db.client().await).await,
            before,
            "exactly the pre-run content ({mode})"
        );
        let left: i64 = target_db
            .client()
            .await
            .query_one("SELECT count(*) FROM dmf.undo_log WHERE run_id = $1", &[&run.0])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
        let store = dmf_core::sync::Database::run_store(target.as_ref()).await.unwrap();
        assert_eq!(store.run(run).await.unwrap().unwrap().status, RunStatus::RolledBack);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sync_is_rolled_back_from_the_pg_dump_taken_before_it() {
    let (source_db, target_db) = common::rich_pair("pgdump").await;
    let (source, target) = (source_db.database(), target_db.database());
    // The test environment holds its own rows before the sync replaces them.
    let seeded = common::sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(seeded.status, RunStatus::Completed, "{seeded}");
    target_db
        .client()
        .await
        .batch_execute("UPDATE shop.customers SET name = 'test env' WHERE id % 3 = 0")
        .await
        .unwrap();
    let before = common::fingerprints(&target_db.client().await).await;

    let dir = std::env::temp_dir().join(format!("dmf-pgdump-{}", std::process::id()));
    let job = SyncJob::new(source.clone(), target.clone(), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(400).build().unwrap())
        .backup(dmf_postgres::PgBackup::new(&target_db.url, &dir).unwrap());
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let taken = summary.backup.clone().expect("a pg_dump before the first write");
    assert_eq!(taken.method, "pg_dump");
    assert!(std::path::Path::new(&taken.location).exists());
    assert_ne!(common::fingerprints(&target_db.client().await).await, before);

    let (run, _) = job.rollback(None, false).await.unwrap();
    assert_eq!(run, summary.run);
    assert_eq!(common::fingerprints(&target_db.client().await).await, before, "the pre-run content, from the dump");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_keeps_no_undo_log_of_its_table_loads() {
    let (source_db, target_db) = common::rich_pair("full_undo").await;
    let (source, target) = (source_db.database(), target_db.database());
    let job = SyncJob::new(source.clone(), target.clone(), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(400).build().unwrap())
        .undo(true);
    let summary = job.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(
        common::fingerprints(&target_db.client().await).await,
        common::fingerprints(&source_db.client().await).await
    );
    let logged: Vec<String> = target_db
        .client()
        .await
        .query("SELECT DISTINCT migration FROM dmf.undo_log WHERE run_id = $1 ORDER BY 1", &[&summary.run.0])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The tables were emptied: only a backup undoes the run. The passes filling the foreign
    // keys deferred to break cycles still log what they update, and the sequences' values
    // before the run are recorded.
    assert_eq!(
        logged,
        ["sequences (before the load)", "shop.customers (deferred keys)", "shop.departments (deferred keys)"]
    );
    let error = job.rollback(None, false).await.unwrap_err();
    assert!(error.to_string().contains("emptied the target tables (full mode): only a backup"), "{error}");
}
