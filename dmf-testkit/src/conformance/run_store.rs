//! The run store's behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use dmf_core::{
    BackupRecord, Counts, MigrationName, MigrationRecord, MigrationStatus, Reject, RunId, RunStatus, RunStore, Stage,
};

fn record(run: RunId, migration: &str, status: MigrationStatus) -> MigrationRecord {
    MigrationRecord::new(run, MigrationName::new(migration), status)
}

/// Runs, migration records, backups and rejects round-trip through `store`, which must have
/// no runs yet: records come back in plan order and are replaced in place, a skipped or
/// pending record never hides an earlier one that ran, finishing an unknown run fails naming
/// it, and rejects page in the order recorded, per migration or all together.
pub async fn run_store(store: &dyn RunStore) {
    let (a, b) = (MigrationName::new("a"), MigrationName::new("b \"quoted\" ]]'x"));
    let b_name = b.as_str();
    let run = store.start_run(&[a.clone(), b.clone()], "host-1").await.unwrap();
    let recorded = store.run(run).await.unwrap().expect("the run just started is there");
    assert_eq!(
        (recorded.status, recorded.plan.clone(), recorded.host.as_str()),
        (RunStatus::Running, vec![a.clone(), b.clone()], "host-1")
    );
    assert_eq!(recorded.finished_at, None);
    let age = SystemTime::now().duration_since(recorded.started_at).unwrap_or_default();
    assert!(age < Duration::from_secs(600), "started_at is now, not {:?}", recorded.started_at);

    // Records come back in plan order whatever order they were saved in, replaced in place.
    store.save_migration_record(&record(run, b_name, MigrationStatus::Pending)).await.unwrap();
    store.save_migration_record(&record(run, "a", MigrationStatus::Running)).await.unwrap();
    store.save_migration_record(&record(run, "a (deferred keys)", MigrationStatus::Completed)).await.unwrap();
    let mut done = record(run, "a", MigrationStatus::Completed);
    done.started_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    done.finished_at = Some(SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_005_123_456));
    done.counts =
        Counts { read: 10, inserted: 4, updated: 3, unchanged: 1, deleted: 2, skipped: 1, rejected: 1, deferred: 0 };
    done.duration = Duration::from_millis(5123);
    done.resumed = true;
    done.error = Some("none really\ncaused by: 'x' ]".into());
    store.save_migration_record(&done).await.unwrap();
    let records = store.migration_records(run).await.unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.migration.as_str()).collect();
    assert_eq!(names, ["a", b_name, "a (deferred keys)"], "plan order, then what the plan does not name");
    assert_eq!(records[0], done, "every field round-trips, and the record was replaced, not duplicated");

    // A second run skips `a` (already completed) and leaves `b` pending: neither hides run 1.
    let second = store.start_run(&[a.clone(), b.clone()], "host-2").await.unwrap();
    assert!(second.0 > run.0, "run ids grow");
    store.save_migration_record(&record(second, "a", MigrationStatus::Skipped)).await.unwrap();
    store.save_migration_record(&record(second, b_name, MigrationStatus::Pending)).await.unwrap();
    assert_eq!(store.latest_record(&a).await.unwrap(), Some(done.clone()));
    assert_eq!(store.latest_record(&b).await.unwrap(), None);
    store.save_migration_record(&record(second, b_name, MigrationStatus::Failed)).await.unwrap();
    assert_eq!(store.latest_record(&b).await.unwrap().unwrap().run, second);
    assert_eq!(store.latest_record(&MigrationName::new("never")).await.unwrap(), None);

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
    assert!(finished.finished_at.unwrap() >= finished.started_at);
    let unknown = RunId(second.0 + 1000);
    let error = store.finish_run(unknown, RunStatus::Failed, None).await.unwrap_err().to_string();
    assert!(error.contains(&format!("no run {unknown}")), "{error}");
    let latest: Vec<RunId> = store.runs(1).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(latest, [second]);
    let all: Vec<RunId> = store.runs(10).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(all, [second, run], "newest first");
    assert_eq!(store.run(unknown).await.unwrap(), None);

    let rejects: Vec<Reject> = (1..=5)
        .map(|i| Reject {
            stage: if i % 2 == 0 { Stage::Validate } else { Stage::Load },
            key: format!("id={i}"),
            reason: format!("reason {i} 🦀 it's a 'dup' ]"),
            payload: serde_json::json!({"id": i, "nested": {"ok": i > 2}, "text": "Zoë\n\"q\""}),
        })
        .collect();
    store.record_rejects(run, &a, &rejects[..3]).await.unwrap();
    store.record_rejects(run, &b, &rejects[3..]).await.unwrap();
    store.record_rejects(run, &b, &[]).await.unwrap();
    let page = store.rejects(run, Some(&a), 2, 1).await.unwrap();
    assert_eq!(page.iter().map(|r| r.reject.clone()).collect::<Vec<_>>(), rejects[1..3]);
    assert!(page.iter().all(|r| r.run == run && r.migration == a));
    let all = store.rejects(run, None, 100, 0).await.unwrap();
    assert_eq!(all.iter().map(|r| r.reject.clone()).collect::<Vec<_>>(), rejects, "in the order recorded");
    assert_eq!(all[4].migration, b);
    assert!(store.rejects(run, None, 100, 5).await.unwrap().is_empty());
    assert!(store.rejects(second, None, 100, 0).await.unwrap().is_empty());

    // Many rejects at once (more than one statement's worth of parameters on every dialect).
    let many: Vec<Reject> = (0..1200)
        .map(|i| Reject {
            stage: Stage::Transform,
            key: format!("k{i}"),
            reason: "r".into(),
            payload: serde_json::Value::Null,
        })
        .collect();
    store.record_rejects(second, &a, &many).await.unwrap();
    let tail = store.rejects(second, Some(&a), 10, 1195).await.unwrap();
    let keys: Vec<&str> = tail.iter().map(|r| r.reject.key.as_str()).collect();
    assert_eq!(keys, ["k1195", "k1196", "k1197", "k1198", "k1199"]);
}
