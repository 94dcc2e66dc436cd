//! The run store keeps runs, migration records, rejects and checkpoints in the `dmf` control
//! tables with the same semantics as the in-memory store; the tables are created once even
//! when several processes start at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, SystemTime};

use dmf_core::sync::Database;
use dmf_core::{
    BackupRecord, Counts, MigrationName, MigrationRecord, MigrationStatus, Reject, RunId, RunStatus, Stage,
};
use dmf_postgres::PgDatabase;

fn record(run: i64, migration: &str, status: MigrationStatus) -> MigrationRecord {
    MigrationRecord::new(RunId(run), MigrationName::new(migration), status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_runs_migrations_rejects_and_checkpoints() {
    let db = common::TestDb::create("store").await;
    let store = db.database().run_store().await.unwrap();
    let (a, b) = (MigrationName::new("a"), MigrationName::new("b \"quoted\""));

    let run = store.start_run(&[a.clone(), b.clone()], "host-1").await.unwrap();
    assert_eq!(run, RunId(1));
    let recorded = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (recorded.status, recorded.plan.clone(), recorded.host.as_str()),
        (RunStatus::Running, vec![a.clone(), b.clone()], "host-1")
    );
    assert_eq!(recorded.finished_at, None);

    // Records come back in plan order whatever order they were saved in, replaced in place.
    store.save_migration_record(&record(1, "b \"quoted\"", MigrationStatus::Pending)).await.unwrap();
    store.save_migration_record(&record(1, "a", MigrationStatus::Running)).await.unwrap();
    let mut done = record(1, "a", MigrationStatus::Completed);
    done.started_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    done.finished_at = Some(SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_005_123_456));
    done.counts =
        Counts { read: 10, inserted: 4, updated: 3, unchanged: 1, deleted: 2, skipped: 1, rejected: 1, deferred: 0 };
    done.duration = Duration::from_millis(5123);
    done.resumed = true;
    done.error = Some("none really".into());
    store.save_migration_record(&done).await.unwrap();
    let records = store.migration_records(run).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0], done);
    assert_eq!(records[1].migration, b);

    // A second run skips `a` (already completed) and leaves `b` pending: neither hides run 1.
    let second = store.start_run(&[a.clone(), b.clone()], "host-2").await.unwrap();
    store.save_migration_record(&record(2, "a", MigrationStatus::Skipped)).await.unwrap();
    store.save_migration_record(&record(2, "b \"quoted\"", MigrationStatus::Pending)).await.unwrap();
    assert_eq!(store.latest_record(&a).await.unwrap(), Some(done.clone()));
    assert_eq!(store.latest_record(&b).await.unwrap(), None);
    store.save_migration_record(&record(2, "b \"quoted\"", MigrationStatus::Failed)).await.unwrap();
    assert_eq!(store.latest_record(&b).await.unwrap().unwrap().run, second);

    let backup = BackupRecord {
        method: "pg_dump".into(),
        location: "/backups/1.dump".into(),
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        size_bytes: Some(1234),
    };
    store.record_backup(run, &backup).await.unwrap();
    store.finish_run(run, RunStatus::RolledBack, Some("undone\nby hand")).await.unwrap();
    let finished = store.run(run).await.unwrap().unwrap();
    assert_eq!(finished.status, RunStatus::RolledBack);
    assert_eq!(finished.backup, Some(backup));
    assert_eq!(finished.error.as_deref(), Some("undone\nby hand"));
    assert!(finished.finished_at.is_some());
    assert!(store.finish_run(RunId(99), RunStatus::Failed, None).await.unwrap_err().to_string().contains("no run 99"));
    let latest: Vec<RunId> = store.runs(1).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(latest, [second]);
    assert_eq!(store.runs(10).await.unwrap().len(), 2);
    assert_eq!(store.run(RunId(42)).await.unwrap(), None);

    let rejects: Vec<Reject> = (1..=5)
        .map(|i| Reject {
            stage: if i % 2 == 0 { Stage::Validate } else { Stage::Load },
            key: format!("id={i}"),
            reason: format!("reason {i} 🦀"),
            payload: serde_json::json!({"id": i, "nested": {"ok": i > 2}}),
        })
        .collect();
    store.record_rejects(run, &a, &rejects[..3]).await.unwrap();
    store.record_rejects(run, &b, &rejects[3..]).await.unwrap();
    let page = store.rejects(run, Some(&a), 2, 1).await.unwrap();
    assert_eq!(page.iter().map(|r| r.reject.clone()).collect::<Vec<_>>(), rejects[1..3]);
    assert!(page.iter().all(|r| r.run == run && r.migration == a));
    let all = store.rejects(run, None, 100, 0).await.unwrap();
    assert_eq!(all.iter().map(|r| r.reject.clone()).collect::<Vec<_>>(), rejects);
    assert!(store.rejects(second, None, 100, 0).await.unwrap().is_empty());

    // Checkpoints written by loaders are visible to the store.
    assert_eq!(store.checkpoint(&a).await.unwrap(), None);
    db.client().await.batch_execute("INSERT INTO dmf.checkpoints VALUES ('a', '[1]', 3, false, now())").await.unwrap();
    let checkpoint = store.checkpoint(&a).await.unwrap().unwrap();
    assert_eq!((checkpoint.position.unwrap().as_str(), checkpoint.skip, checkpoint.done), ("[1]", 3, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_tables_are_created_once_when_processes_start_together() {
    let db = common::TestDb::create("race").await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PgDatabase::lazy(&url).unwrap().create_control_tables().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let tables: Vec<String> = db
        .client()
        .await
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'dmf' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["checkpoints", "migration_runs", "rejects", "runs", "undo_log"]);
}
