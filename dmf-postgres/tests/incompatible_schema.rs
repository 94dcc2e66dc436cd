//! A target missing a column fails pre-flight and nothing is written: the control tables hold
//! only the failed run's record, and the target's tables are untouched.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::RunStatus;
use dmf_core::sync::SyncMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_missing_a_column_fails_preflight_and_nothing_is_written() {
    let (source_db, target_db) = common::rich_pair("incompatible").await;
    let target_client = target_db.client().await;
    target_client
        .batch_execute(
            "ALTER TABLE shop.customers DROP COLUMN bio;
             INSERT INTO shop.departments VALUES (999, 'kept', NULL, now());
             INSERT INTO shop.employees VALUES (999, 'kept', 999, now());",
        )
        .await
        .unwrap();
    let before = common::fingerprints(&target_client).await;

    let summary = common::sync(&source_db.database(), &target_db.database(), SyncMode::Full, false).await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.clone().unwrap();
    assert!(error.starts_with("pre-flight failed, nothing was written"), "{error}");
    assert!(error.contains("shop.customers.bio: missing in the target; its values would be lost"), "{error}");
    assert!(summary.migrations.is_empty(), "no migration started:\n{summary}");

    assert_eq!(common::fingerprints(&target_client).await, before, "the target's tables are untouched");
    let runs: Vec<(String, Option<String>)> = target_client
        .query("SELECT status, error FROM dmf.runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "failed");
    assert!(runs[0].1.as_deref().unwrap().contains("shop.customers.bio"));
    for table in ["migration_runs", "checkpoints", "rejects", "undo_log"] {
        let rows: i64 =
            target_client.query_one(&format!("SELECT count(*) FROM dmf.{table}"), &[]).await.unwrap().get(0);
        assert_eq!(rows, 0, "dmf.{table} is empty");
    }
}
