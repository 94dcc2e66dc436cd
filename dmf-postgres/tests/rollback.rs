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
