//! dmf-core's control plane on SQL Server, against a scripted server: the statements
//! [`SqlRunStore`](dmf_core::control::SqlRunStore) sends in [`MssqlDialect`] with every value
//! bound, rows decoded from SQL Server's types, transactions rolled back after an error, and
//! errors that keep their classification. The live suite (`tests/live_server.rs`) runs the
//! conformance suites over TDS.
//!
//! dmf-testkit's conformance suites do not run here: the scripted executor answers each
//! statement with a canned response chosen by a fragment of its text, and keeps no tables,
//! so it cannot hand back what an earlier call stored (generated run ids, records replaced in
//! place, rejects paged in the order recorded), which is all the suites check. A script that
//! could would be a second SQL engine written for the test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use common::*;
use dmf_core::control::{ControlDialect, SqlConnector};
use dmf_core::sync::Database;
use dmf_core::{
    Counts, ErrorKind, MigrationName, MigrationRecord, MigrationStatus, Reject, RunId, RunStatus, Stage, Value,
};
use dmf_mssql::executor::{RecordedKind, Response};
use dmf_mssql::{MssqlConnector, MssqlDialect, MssqlOptions, SqlError};
use tiberius::ColumnData;
use tiberius::time::{Date, DateTime2, Time};

/// A `datetime2(7)` cell `seconds` after midnight on 1 January of `year`.
fn datetime2(year: i32, seconds: u32) -> ColumnData<'static> {
    let days = NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .signed_duration_since(NaiveDate::from_ymd_opt(1, 1, 1).unwrap())
        .num_days();
    ColumnData::DateTime2(Some(DateTime2::new(Date::new(days as u32), Time::new(u64::from(seconds) * 10_000_000, 7))))
}

fn is_now(value: &Value) -> bool {
    let Value::TimestampTz(time) = value else { return false };
    let age = chrono::Utc::now() - *time;
    age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::minutes(10)
}

#[tokio::test]
async fn runs_are_started_finished_and_read_back_in_tsql() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    assert!(!statements(&script).iter().any(|s| s.contains(pattern::CREATE_CONTROL)), "they exist: nothing created");

    script.on(pattern::START_RUN, Response::rows(vec![vec![big(12)]]));
    let plan = [MigrationName::new("dbo.a"), MigrationName::new("dbo.b")];
    let run = store.start_run(&plan, "host-1").await.unwrap();
    assert_eq!(run, RunId(12));
    let start = script.log().into_iter().last().unwrap();
    assert_eq!(
        (&start.kind, start.sql.as_str()),
        (
            &RecordedKind::Query,
            "INSERT INTO [dmf].[runs] ([status], [plan], [host], [started_at]) OUTPUT INSERTED.[id] \
             VALUES (@P1, @P2, @P3, @P4)"
        )
    );
    assert_eq!(
        start.params[..3],
        [Value::Text("running".into()), Value::Json(r#"["dbo.a","dbo.b"]"#.into()), Value::Text("host-1".into())]
    );
    assert!(is_now(&start.params[3]), "started now, in UTC: {:?}", start.params[3]);

    script.on(pattern::UPDATE_RUN, Response::Affected(1));
    store.finish_run(run, RunStatus::Completed, None).await.unwrap();
    let finish = script.log().into_iter().last().unwrap();
    assert_eq!(
        finish.sql,
        "UPDATE [dmf].[runs] SET [status] = @P1, [finished_at] = @P2, [error] = @P3 WHERE [id] = @P4"
    );
    assert_eq!(
        (&finish.params[0], &finish.params[2..]),
        (&Value::Text("completed".into()), &[Value::Null, Value::Int(12)][..])
    );
    let missing = store.finish_run(RunId(99), RunStatus::Failed, Some("x")).await.unwrap_err();
    assert!(missing.to_string().contains("there is no run 99 to finish"), "{missing}");

    script.on(
        "FROM [dmf].[runs] WHERE [id] = @P1",
        Response::rows(vec![vec![
            big(12),
            text("completed"),
            text(r#"["dbo.a","dbo.b"]"#),
            text("host-1"),
            datetime2(2026, 10),
            datetime2(2026, 70),
            text(r#"{"method":"mssql-copy-only","location":"/b/x.bak","taken_at":{"secs_since_epoch":1,"nanos_since_epoch":0},"size_bytes":5}"#),
            null(),
        ]]),
    );
    let record = store.run(run).await.unwrap().unwrap();
    assert_eq!((record.status, record.plan.as_slice()), (RunStatus::Completed, &plan[..]));
    assert_eq!(record.backup.unwrap().location, "/b/x.bak");
    let started = record.started_at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let finished = record.finished_at.unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(finished - started, Duration::from_secs(60), "UTC datetime2 back to SystemTime");
    assert_eq!(started.as_secs(), 1_767_225_610, "2026-01-01 00:00:10 UTC");

    store.runs(3).await.unwrap();
    let runs = script.log().into_iter().last().unwrap();
    assert!(runs.sql.ends_with("FROM [dmf].[runs] ORDER BY [id] DESC OFFSET 0 ROWS FETCH NEXT @P1 ROWS ONLY"));
    assert_eq!(runs.params, [Value::Int(3)]);
}

#[tokio::test]
async fn migration_records_are_upserted_without_merge_and_read_from_bits_and_bigints() {
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
    assert_eq!(save.kind, RecordedKind::Execute);
    assert!(
        save.sql.starts_with(
            "SET XACT_ABORT ON; BEGIN TRANSACTION; UPDATE [dmf].[migration_runs] WITH (UPDLOCK, SERIALIZABLE) \
             SET [status] = @P3, [started_at] = @P4,"
        ),
        "{}",
        save.sql
    );
    assert!(
        save.sql.contains(
            " WHERE [run_id] = @P1 AND [migration] = @P2; IF @@ROWCOUNT = 0 INSERT INTO [dmf].[migration_runs]"
        )
    );
    assert!(!save.sql.contains("MERGE"), "Babelfish has no MERGE");
    assert_eq!(save.params.len(), 15);
    assert_eq!(save.params[..3], [Value::Int(3), Value::Text("dbo.Orders".into()), Value::Text("completed".into())]);
    assert_eq!(
        save.params[5..14],
        [10, 4, 3, 2, 1, 0, 0, 1500].map(Value::Int).into_iter().chain([Value::Bool(true)]).collect::<Vec<_>>()[..]
    );

    let big_or_null = |n: i64| ColumnData::I64(Some(n));
    script.on(
        "FROM [dmf].[migration_runs] WHERE [migration] = @P1",
        Response::rows(vec![vec![
            big(3),
            text("dbo.Orders"),
            text("completed"),
            datetime2(2026, 0),
            ColumnData::DateTime2(None),
            big_or_null(10),
            big_or_null(4),
            big_or_null(3),
            big_or_null(2),
            big_or_null(1),
            ColumnData::I64(None),
            big_or_null(0),
            big_or_null(1500),
            ColumnData::Bit(Some(true)),
            null(),
        ]]),
    );
    let latest = store.latest_record(&MigrationName::new("dbo.Orders")).await.unwrap().unwrap();
    assert_eq!((latest.counts, latest.duration, latest.resumed), (record.counts, record.duration, true));
    assert_eq!(latest.finished_at, None);
    let query = script.log().into_iter().last().unwrap();
    assert!(query.sql.ends_with(
        "WHERE [migration] = @P1 AND [status] NOT IN (@P2, @P3) ORDER BY [run_id] DESC OFFSET 0 ROWS FETCH NEXT @P4 ROWS ONLY"
    ));
    assert_eq!(query.params[1..], [Value::Text("pending".into()), Value::Text("skipped".into()), Value::Int(1)]);
}

#[tokio::test]
async fn rejects_are_inserted_in_statements_under_the_parameter_limit_in_one_transaction() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    script.clear_log();
    let rejects: Vec<Reject> = (0..1200)
        .map(|i| Reject {
            stage: Stage::Load,
            key: format!("id={i}"),
            reason: "duplicate 'key'".into(),
            payload: serde_json::json!({"id": i}),
        })
        .collect();
    store.record_rejects(RunId(3), &MigrationName::new("dbo.T"), &rejects).await.unwrap();
    let log = script.log();
    let sent: Vec<_> = log.iter().filter(|r| r.kind != RecordedKind::Session).collect();
    assert_eq!(
        (sent[0].kind.clone(), sent[0].sql.as_str()),
        (RecordedKind::Batch, "SET XACT_ABORT ON; BEGIN TRANSACTION;")
    );
    let last = sent.last().unwrap();
    assert_eq!((last.kind.clone(), last.sql.as_str()), (RecordedKind::Batch, "COMMIT TRANSACTION;"));
    let inserts = &sent[1..sent.len() - 1];
    assert_eq!(inserts.len(), 5, "1,200 rows of 7 parameters, at most 2,000 parameters a statement");
    for insert in inserts {
        assert!(insert.params.len() <= MssqlDialect.max_params() && insert.params.len() % 7 == 0);
        assert!(insert.sql.starts_with(
            "INSERT INTO [dmf].[rejects] ([run_id], [migration], [stage], [source_key], [reason], [payload], [created_at]) \
             VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7), (@P8,"
        ));
    }
    assert_eq!(inserts.iter().map(|i| i.params.len() / 7).sum::<usize>(), 1200);
    assert_eq!(
        inserts[0].params[..6],
        [
            Value::Int(3),
            Value::Text("dbo.T".into()),
            Value::Text("load".into()),
            Value::Text("id=0".into()),
            Value::Text("duplicate 'key'".into()),
            Value::Json(r#"{"id":0}"#.into())
        ],
        "every value bound, none spliced"
    );

    script.on(
        "FROM [dmf].[rejects]",
        Response::rows(vec![vec![
            big(3),
            text("dbo.T"),
            text("load"),
            text("id=2"),
            text("duplicate 'key'"),
            text(r#"{"id":2}"#),
        ]]),
    );
    let read = store.rejects(RunId(3), Some(&MigrationName::new("dbo.T")), 10, 20).await.unwrap();
    assert_eq!(
        read[0].reject,
        Reject { key: "id=2".into(), payload: serde_json::json!({"id": 2}), ..rejects[0].clone() }
    );
    let query = script.log().into_iter().last().unwrap();
    assert!(query.sql.ends_with(
        "WHERE [run_id] = @P1 AND [migration] = @P2 ORDER BY [id] OFFSET @P4 ROWS FETCH NEXT @P3 ROWS ONLY"
    ));
    assert_eq!(query.params, [Value::Int(3), Value::Text("dbo.T".into()), Value::Int(10), Value::Int(20)]);
}

#[tokio::test]
async fn a_failing_statement_rolls_back_its_transaction_and_keeps_its_kind() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    let rejects: Vec<Reject> = (0..300)
        .map(|i| Reject {
            stage: Stage::Load,
            key: format!("{i}"),
            reason: "r".into(),
            payload: serde_json::Value::Null,
        })
        .collect();
    script.on("INSERT INTO [dmf].[rejects]", Response::Affected(285));
    script.on("INSERT INTO [dmf].[rejects]", Response::Fail(SqlError::server(1205, "deadlock victim")));
    let error = store.record_rejects(RunId(1), &MigrationName::new("m"), &rejects).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "a deadlock is worth a retry: {error}");
    assert!(error.to_string().contains("recording 300 rejects of `m` in run 1 in sa@test:1433/Sales"), "{error}");
    assert!(error.chain().contains("SQL Server error 1205"), "{}", error.chain());
    assert_eq!(statements(&script).last().unwrap(), "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;");

    script.on("FROM [dmf].[runs]", Response::Fail(SqlError::server(208, "Invalid object name 'dmf.runs'.")));
    let error = store.runs(5).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal, "a missing table is not worth a retry: {error}");
}

#[tokio::test]
async fn the_control_tables_are_created_when_missing_and_a_failing_store_reconnects() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, false, true);
    let store = db.run_store().await.unwrap();
    let create = statements(&script).into_iter().find(|s| s.contains(pattern::CREATE_CONTROL)).unwrap();
    assert!(create.contains("IF SCHEMA_ID(N'dmf') IS NULL EXEC sp_executesql N'CREATE SCHEMA dmf AUTHORIZATION dbo';"));

    script.on(
        "FROM [dmf].[runs]",
        Response::Fail(SqlError::Io { kind: std::io::ErrorKind::BrokenPipe, message: "gone".into() }),
    );
    let error = store.runs(5).await.unwrap_err();
    assert!(error.is_transient());
    assert!(error.to_string().contains("reading the latest runs in sa@test:1433/Sales"), "{error}");
    let before = sessions(&script);
    assert!(store.runs(5).await.unwrap().is_empty());
    assert_eq!(sessions(&script), before + 1, "a new session after the error");
    assert!(store.runs(5).await.unwrap().is_empty());
    assert_eq!(sessions(&script), before + 1, "kept while it works");
}

#[tokio::test]
async fn a_session_that_cannot_open_is_a_transient_run_store_error_naming_the_server() {
    let (script, db) = scripted(MssqlOptions::default());
    script.fail_next_session(SqlError::Io { kind: std::io::ErrorKind::ConnectionRefused, message: "refused".into() });
    let error = match db.control_connector().session().await {
        Ok(_) => panic!("the session opened"),
        Err(error) => error,
    };
    assert_eq!((error.kind(), error.stage_of()), (ErrorKind::Transient, Some(Stage::RunStore)));
    assert!(error.to_string().contains("cannot connect to SQL Server at sa@test:1433/Sales"), "{error}");
    let connector = MssqlConnector::new(std::sync::Arc::new(script.connector("sa@test:1433/Sales", "Sales")));
    assert_eq!(connector.name(), "sa@test:1433/Sales");
    assert_eq!(connector.dialect().table("checkpoints"), "[dmf].[checkpoints]");
}

#[tokio::test]
async fn a_row_the_store_cannot_read_is_fatal() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    let store = db.run_store().await.unwrap();
    script.on("FROM [dmf].[runs] WHERE [id] = @P1", Response::rows(vec![vec![big(1), text("exploded")]]));
    let error = store.run(RunId(1)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{error}");
}
