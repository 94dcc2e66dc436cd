//! The run store's statements and parameters, and how it reads records back, against a
//! scripted server (the live suite runs the same calls against SQL Server).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use common::*;
use dmf_core::sync::Database;
use dmf_core::{Counts, MigrationName, MigrationRecord, MigrationStatus, Reject, RunId, RunStatus, Stage, Value};
use dmf_mssql::executor::Response;
use dmf_mssql::{MssqlOptions, SqlError};
use tiberius::ColumnData;
use tiberius::time::{Date, DateTime2, Time};

fn datetime2(year: i32, seconds: u32) -> ColumnData<'static> {
    let days = NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .signed_duration_since(NaiveDate::from_ymd_opt(1, 1, 1).unwrap())
        .num_days();
    ColumnData::DateTime2(Some(DateTime2::new(Date::new(days as u32), Time::new(u64::from(seconds) * 10_000_000, 7))))
}

#[tokio::test]
async fn runs_are_started_finished_and_read_back() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    assert!(!statements(&script).iter().any(|s| s.contains(pattern::CREATE_CONTROL)), "they exist: nothing created");

    script.on("INSERT INTO dmf.runs", Response::rows(vec![vec![big(12)]]));
    let plan = [MigrationName::new("dbo.a"), MigrationName::new("dbo.b")];
    let run = store.start_run(&plan, "host-1").await.unwrap();
    assert_eq!(run, RunId(12));
    let start = script.log().into_iter().last().unwrap();
    assert_eq!(
        start.params,
        vec![Value::Text("running".into()), Value::Text(r#"["dbo.a","dbo.b"]"#.into()), Value::Text("host-1".into())]
    );

    script.on("UPDATE dmf.runs SET status", dmf_mssql::executor::Response::Affected(1));
    store.finish_run(run, RunStatus::Completed, None).await.unwrap();
    let finish = script.log().into_iter().last().unwrap();
    assert_eq!(finish.params, vec![Value::Int(12), Value::Text("completed".into()), Value::Null]);
    let missing = store.finish_run(RunId(99), RunStatus::Failed, Some("x")).await.unwrap_err();
    assert!(missing.to_string().contains("there is no run 99 in dmf.runs to finish"), "{missing}");

    script.on(
        "FROM dmf.runs WHERE id = @P1",
        Response::rows(vec![vec![
            big(12),
            text("completed"),
            text(r#"["dbo.a","dbo.b"]"#),
            text("host-1"),
            datetime2(2026, 10),
            datetime2(2026, 70),
            text(r#"{"method":"mssql-copy-only","location":"/b/x.bak","taken_at":{"secs_since_epoch":1,"nanos_since_epoch":0},"size_bytes":5}"#),
            ColumnData::String(None),
        ]]),
    );
    let record = store.run(run).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.plan, plan);
    assert_eq!(record.backup.unwrap().location, "/b/x.bak");
    let started = record.started_at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let finished = record.finished_at.unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(finished - started, Duration::from_secs(60), "UTC datetime2 back to SystemTime");
}

#[tokio::test]
async fn migration_records_are_upserted_with_every_count() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    let mut record = MigrationRecord::new(RunId(3), MigrationName::new("dbo.Orders"), MigrationStatus::Completed);
    record.counts =
        Counts { read: 10, inserted: 4, updated: 3, unchanged: 2, deleted: 1, skipped: 0, rejected: 0, deferred: 0 };
    record.duration = Duration::from_millis(1500);
    record.resumed = true;
    store.save_migration_record(&record).await.unwrap();
    let save = script.log().into_iter().last().unwrap();
    assert!(save.sql.starts_with("UPDATE dmf.migration_runs SET status = @P3"));
    assert!(save.sql.contains("IF @@ROWCOUNT = 0 INSERT INTO dmf.migration_runs"));
    assert_eq!(save.params.len(), 15);
    assert_eq!(&save.params[..3], &[Value::Int(3), Value::Text("dbo.Orders".into()), Value::Text("completed".into())]);
    assert_eq!(
        &save.params[5..14],
        &[10, 4, 3, 2, 1, 0, 0, 1500].map(Value::Int).into_iter().chain([Value::Bool(true)]).collect::<Vec<_>>()[..]
    );
}

#[tokio::test]
async fn rejects_travel_as_one_json_parameter_and_come_back_in_order() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    let reject = Reject {
        stage: Stage::Load,
        key: "id=2".into(),
        reason: "duplicate 'key'".into(),
        payload: serde_json::json!({"id": 2}),
    };
    store.record_rejects(RunId(3), &MigrationName::new("dbo.T"), std::slice::from_ref(&reject)).await.unwrap();
    let sent = script.log().into_iter().last().unwrap();
    assert!(sent.sql.contains("FROM OPENJSON(@P3) AS j CROSS APPLY OPENJSON(j.[value]) WITH"));
    assert_eq!(&sent.params[..2], &[Value::Int(3), Value::Text("dbo.T".into())]);
    let Value::Text(json) = &sent.params[2] else { panic!() };
    assert_eq!(json, r#"[{"key":"id=2","payload":{"id":2},"reason":"duplicate 'key'","stage":"load"}]"#);

    script.on(
        "FROM dmf.rejects",
        Response::rows(vec![vec![
            big(3),
            text("dbo.T"),
            text("load"),
            text("id=2"),
            text("duplicate 'key'"),
            text(r#"{"id":2}"#),
        ]]),
    );
    let read = store.rejects(RunId(3), None, 10, 0).await.unwrap();
    assert_eq!(read[0].reject, reject);
    let query = script.log().into_iter().last().unwrap();
    assert_eq!(query.params, vec![Value::Int(3), Value::Null, Value::Int(10), Value::Int(0)]);
}

#[tokio::test]
async fn the_control_tables_are_created_when_missing_and_a_failing_store_reconnects() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, false, true);
    let store = db.run_store().await.unwrap();
    let create = statements(&script).into_iter().find(|s| s.contains(pattern::CREATE_CONTROL)).unwrap();
    assert!(create.contains("IF SCHEMA_ID(N'dmf') IS NULL EXEC sp_executesql N'CREATE SCHEMA dmf AUTHORIZATION dbo';"));

    script.on(
        "FROM dmf.runs",
        Response::Fail(SqlError::Io { kind: std::io::ErrorKind::BrokenPipe, message: "gone".into() }),
    );
    let error = store.runs(5).await.unwrap_err();
    assert!(error.is_transient());
    assert!(error.to_string().contains("reading the latest runs in sa@test:1433/Sales"), "{error}");
    let before = sessions(&script);
    assert!(store.runs(5).await.unwrap().is_empty());
    assert_eq!(sessions(&script), before + 1, "a new session after the error");
}
