//! The control plane's sessions on PostgreSQL bind each value by the type the server infers
//! for its placeholder and decode result columns by their types; a value that does not fit is
//! refused naming the parameter and both types; server errors keep their classification, and
//! the run store reconnects after losing its connection.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chrono::{NaiveDate, TimeZone, Utc};
use dmf_core::control::{SqlConnector, SqlSession};
use dmf_core::sync::Database;
use dmf_core::{ErrorKind, MigrationName, Value};

#[tokio::test]
async fn values_bind_by_the_inferred_type_and_columns_decode_by_theirs() {
    let db = common::TestDb::create("ctl_bind").await;
    let mut session = db.database().control_connector().session().await.unwrap();
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let noon = day.and_hms_micro_opt(12, 0, 0, 250).unwrap();
    let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let sent = vec![
        Value::Int(-2),
        Value::Int(70_000),
        Value::Text("7".into()),
        Value::Text("é'\"".into()),
        Value::Json(r#"{"a": [1, "x"]}"#.into()),
        Value::Json(r#"{"b":2}"#.into()),
        Value::TimestampTz(Utc.from_utc_datetime(&noon)),
        Value::Timestamp(noon),
        Value::Bool(true),
        Value::Bytes(vec![0, 0xff]),
        Value::Int(3),
        Value::Decimal("-12.3400".into()),
        Value::Uuid(uuid),
        Value::Date(day),
        Value::Null,
    ];
    let rows = session
        .query(
            "SELECT $1::int2, $2::int4, $3::int8, $4::varchar, $5::jsonb, $6::json, $7::timestamptz, \
             $8::timestamp, $9::bool, $10::bytea, $11::float8, $12::numeric, $13::uuid, $14::date, $15::text",
            &sent,
        )
        .await
        .unwrap();
    // As sent, but for values of another kind than their parameter's type.
    let mut expected = sent.clone();
    expected[2] = Value::Int(7);
    expected[10] = Value::Float(3.0);
    assert_eq!(rows, [expected]);
    // Types of their own: `oid` an integer, `name` text.
    let rows = session.query("SELECT 'pg_class'::regclass::oid, current_user", &[]).await.unwrap();
    assert!(matches!(rows[0][0], Value::Int(1259)), "{rows:?}");
    assert!(matches!(&rows[0][1], Value::Text(user) if !user.is_empty()), "{rows:?}");
}

/// The error of `sql` with parameters 1 and `value`: fatal; its text.
async fn refused(session: &mut dyn SqlSession, sql: &str, value: Value) -> String {
    let error = session.query(sql, &[Value::Int(1), value]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{error}");
    error.chain()
}

#[tokio::test]
async fn a_value_that_does_not_fit_names_the_parameter_and_both_types() {
    let db = common::TestDb::create("ctl_refuse").await;
    let mut session = db.database().control_connector().session().await.unwrap();
    let text = refused(session.as_mut(), "SELECT $1::int8, $2::int2", Value::Int(40_000)).await;
    assert!(text.contains("cannot bind a Int value to parameter $2 of type int2: the value is out of"), "{text}");
    let text = refused(session.as_mut(), "SELECT $1::int8, $2::uuid", Value::Bool(true)).await;
    assert!(text.contains("cannot bind a Bool value to parameter $2 of type uuid: no value of that kind"), "{text}");
    let text = refused(session.as_mut(), "SELECT $1::int8, $2::interval", Value::Text("1 day".into())).await;
    assert!(text.contains("cannot bind a Text value to parameter $2 of type interval: DMF binds no value"), "{text}");
    let error = session.query("SELECT $1::int8", &[]).await.unwrap_err();
    assert!(error.chain().contains("the statement has 1 parameters, but 0 values were given"), "{error}");
    // A column DMF has no value for is named, not misread.
    let error = session.query("SELECT '1 day'::interval", &[]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal);
    assert!(error.chain().contains("interval"), "{error}");
    // The session still works after refusing.
    assert_eq!(session.query("SELECT $1::int4", &[Value::Null]).await.unwrap(), [vec![Value::Null]]);
}

#[tokio::test]
async fn server_errors_keep_their_kind_and_the_store_reconnects() {
    let db = common::TestDb::create("ctl_errors").await;
    let database = db.database();
    let store = database.run_store().await.unwrap();
    let mut session = database.control_connector().session().await.unwrap();

    let missing_skip = "INSERT INTO dmf.checkpoints (migration) VALUES ($1)";
    let error = session.execute(missing_skip, &[Value::Text("m".into())]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Data, "{error}");
    assert!(error.chain().contains("SQLSTATE 23502"), "{error}");
    let error = session.query("SELECT * FROM dmf.nothing", &[]).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{error}");

    // The store's connection is cut: the next call fails as worth retrying, the one after
    // that reconnects.
    let run = store.start_run(&[MigrationName::new("a")], "host").await.unwrap();
    let admin = db.client().await;
    let cut = "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
               WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'dmf'";
    assert!(!admin.query(cut, &[]).await.unwrap().is_empty());
    let error = store.run(run).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{}", error.chain());
    assert_eq!(store.run(run).await.unwrap().unwrap().id, run);
}
