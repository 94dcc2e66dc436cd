//! The extractor reads keyset pages (`SELECT TOP (@P1) … WHERE (k > @P2) … ORDER BY k`),
//! decodes SQL Server's cells into neutral values, resumes from positions, reads a rowversion
//! watermark it does not write, drops its session after an error, and gives it back when it
//! has read to the end.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;

use common::*;
use dmf_core::catalog::{Column, DataType, TableName};
use dmf_core::sync::{Database, ExtractSpec, ReadOrder, key_position};
use dmf_core::{ErrorKind, Extractor, RowShape, Value};
use dmf_mssql::executor::{RecordedKind, Response};
use dmf_mssql::{MssqlOptions, SqlError};
use futures::StreamExt;
use tiberius::ColumnData;
use tiberius::numeric::Numeric;

fn spec(order: ReadOrder, extra: Option<Column>) -> ExtractSpec {
    let table = TableName::new(Some("dbo"), "Orders");
    let mut columns = vec![
        Column::new("id", DataType::Int32, "int").not_null(),
        Column::new("name", DataType::Text { max_len: Some(50) }, "nvarchar(50)"),
        Column::new("price", DataType::Decimal { precision: Some(19), scale: Some(4) }, "money"),
    ];
    columns.extend(extra);
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    ExtractSpec {
        table: table.clone(),
        shape: Arc::new(RowShape { table, columns: names, key: vec![0] }),
        columns,
        key: vec!["id".into()],
        order,
        range: None,
        query: None,
    }
}

fn row(id: i32, name: &str, price_ten_thousandths: i128) -> Vec<ColumnData<'static>> {
    vec![int(id), text(name), ColumnData::Numeric(Some(Numeric::new_with_scale(price_ten_thousandths, 4)))]
}

const FIRST: &str = "SELECT TOP (@P1) t.[id], t.[name], CAST(t.[price] AS decimal(19,4)) AS [price] FROM [dbo].[Orders] AS t ORDER BY t.[id]";
const AFTER: &str = "SELECT TOP (@P1) t.[id], t.[name], CAST(t.[price] AS decimal(19,4)) AS [price] FROM [dbo].[Orders] AS t \
WHERE ((t.[id] > CAST(@P2 AS int))) ORDER BY t.[id]";

#[tokio::test]
async fn pages_follow_the_last_key_and_stop_at_a_short_page() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on(pattern::PAGE, Response::rows(vec![row(1, "a", 15_000), row(2, "Zoë", -1), row(3, "c", 0)]));
    script.on(pattern::PAGE, Response::rows(vec![row(4, "d", 99_900)]));
    let mut extractor = db.extractor(spec(ReadOrder::Key, None));
    let batches: Vec<_> = extractor.extract(None, NonZeroUsize::new(3).unwrap()).collect().await;
    let batches: Vec<_> = batches.into_iter().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].position, key_position(&[Value::Int(3)]).unwrap());
    assert_eq!(batches[1].position, key_position(&[Value::Int(4)]).unwrap());
    assert_eq!(
        batches[0].records[1].values(),
        &[Value::Int(2), Value::Text("Zoë".into()), Value::Decimal("-0.0001".into())],
        "money comes as an exact decimal"
    );

    assert_eq!(script.open_sessions(), 0, "read to the end: the session went back to the pool");
    let log = script.log();
    let queries: Vec<_> = log.iter().filter(|r| r.kind == RecordedKind::Query).collect();
    assert_eq!(queries.len(), 2, "the short second page ends the read");
    assert_eq!((queries[0].sql.as_str(), queries[0].params.clone()), (FIRST, vec![Value::Int(3)]));
    assert_eq!((queries[1].sql.as_str(), queries[1].params.clone()), (AFTER, vec![Value::Int(3), Value::Int(3)]));
}

#[tokio::test]
async fn a_resumed_read_starts_after_the_stored_key() {
    let (script, db) = scripted(MssqlOptions::default());
    let mut extractor = db.extractor(spec(ReadOrder::Key, None));
    let from = key_position(&[Value::Int(41)]).unwrap();
    let batches: Vec<_> = extractor.extract(Some(from), NonZeroUsize::new(100).unwrap()).collect().await;
    assert!(batches.is_empty(), "no rows left");
    let query = script.log().into_iter().find(|r| r.kind == RecordedKind::Query).unwrap();
    assert_eq!((query.sql.as_str(), query.params), (AFTER, vec![Value::Int(100), Value::Int(41)]));
}

#[tokio::test]
async fn a_rowversion_watermark_is_read_but_not_carried_and_bounded_by_open_transactions() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on(
        pattern::TABLE_COLUMNS,
        Response::rows(vec![
            column("id", "int", 4, 10, 0, false, false, false, None),
            column("rv", "timestamp", 8, 0, 0, false, false, true, None),
        ]),
    );
    script.on(pattern::PAGE, Response::rows(vec![[row(7, "g", 1), vec![big(2003)]].concat()]));
    let order = ReadOrder::Watermark { column: "rv".into() };
    let mut extractor = db.extractor(spec(order, None));
    assert!(extractor.continues_after_completion());
    assert_eq!(extractor.scope().as_deref(), Some("watermark:rv"));
    let from = key_position(&[Value::Int(2000), Value::Int(3)]).unwrap();
    let batches: Vec<_> = extractor.extract(Some(from), NonZeroUsize::new(10).unwrap()).collect().await;
    let batch = batches.into_iter().next().unwrap().unwrap();
    assert_eq!(batch.records[0].values().len(), 3, "the rowversion is not among the row's values");
    assert_eq!(batch.position, key_position(&[Value::Int(2003), Value::Int(7)]).unwrap());

    let log = script.log();
    assert!(log[1].sql.contains(pattern::TABLE_COLUMNS), "the watermark's type is looked up");
    let page = log.iter().find(|r| r.sql.contains(pattern::PAGE)).unwrap();
    assert_eq!(
        page.sql,
        "SELECT TOP (@P1) t.[id], t.[name], CAST(t.[price] AS decimal(19,4)) AS [price], CAST(t.[rv] AS bigint) AS [rv] \
         FROM [dbo].[Orders] AS t WHERE ((t.[rv] > CAST(@P2 AS binary(8))) OR (t.[rv] = CAST(@P2 AS binary(8)) AND t.[id] > CAST(@P3 AS int))) \
         AND t.[rv] < MIN_ACTIVE_ROWVERSION() ORDER BY t.[rv], t.[id]"
    );
    assert_eq!(page.params, vec![Value::Int(10), Value::Int(2000), Value::Int(3)]);
}

#[tokio::test]
async fn a_datetime_watermark_is_compared_as_datetime() {
    let (script, db) = scripted(MssqlOptions::default());
    let modified = Column::new("modified_at", DataType::Timestamp, "datetime");
    let mut extractor = db.extractor(spec(ReadOrder::Watermark { column: "modified_at".into() }, Some(modified)));
    let at = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(10, 0, 0).unwrap();
    let from = key_position(&[Value::Timestamp(at), Value::Int(3)]).unwrap();
    let _: Vec<_> = extractor.extract(Some(from), NonZeroUsize::new(10).unwrap()).collect().await;
    let page = script.log().into_iter().find(|r| r.sql.contains(pattern::PAGE)).unwrap();
    assert!(
        page.sql.contains("WHERE ((t.[modified_at] > CAST(@P2 AS datetime)) OR (t.[modified_at] = CAST(@P2 AS datetime) AND t.[id] > CAST(@P3 AS int)))"),
        "{}",
        page.sql
    );
    assert_eq!(page.params, vec![Value::Int(10), Value::Timestamp(at), Value::Int(3)]);

    // Rows without a watermark sort first; a position inside them resumes there.
    script.clear_log();
    let from = key_position(&[Value::Null, Value::Int(5)]).unwrap();
    let _: Vec<_> = extractor.extract(Some(from), NonZeroUsize::new(10).unwrap()).collect().await;
    let page = script.log().into_iter().find(|r| r.sql.contains(pattern::PAGE)).unwrap();
    assert!(
        page.sql.contains(
            "WHERE ((t.[modified_at] IS NULL AND ((t.[id] > CAST(@P2 AS int)))) OR t.[modified_at] IS NOT NULL)"
        ),
        "{}",
        page.sql
    );
    assert_eq!(page.params, vec![Value::Int(10), Value::Int(5)]);
}

#[tokio::test]
async fn a_failed_page_is_classified_and_the_next_read_uses_a_new_session() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on(
        pattern::PAGE,
        Response::Fail(SqlError::Io { kind: std::io::ErrorKind::ConnectionReset, message: "reset".into() }),
    );
    script.on(pattern::PAGE, Response::rows(vec![row(1, "a", 0)]));
    let mut extractor = db.extractor(spec(ReadOrder::Key, None));
    let first: Vec<_> = extractor.extract(None, NonZeroUsize::new(10).unwrap()).collect().await;
    let error = first.into_iter().next().unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(error.to_string().contains("reading the first rows of dbo.Orders from sa@test:1433/Sales"), "{error}");
    let second: Vec<_> = extractor.extract(None, NonZeroUsize::new(10).unwrap()).collect().await;
    assert_eq!(second.len(), 1);
    assert_eq!(sessions(&script), 2);
}

#[tokio::test]
async fn sql_variant_columns_are_refused_before_anything_is_read() {
    let (script, db) = scripted(MssqlOptions::default());
    let variant = Column::new("v", DataType::Other("sql_variant".into()), "sql_variant");
    let mut extractor = db.extractor(spec(ReadOrder::Key, Some(variant)));
    let result: Vec<_> = extractor.extract(None, NonZeroUsize::new(10).unwrap()).collect().await;
    let error = result.into_iter().next().unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal);
    assert!(
        error.to_string().contains("reading column `v` of dbo.Orders: sql_variant holds values of many types"),
        "{error}"
    );
    assert!(statements(&script).is_empty());
}

#[tokio::test]
async fn estimates_come_from_the_partition_row_counts() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("FROM sys.partitions AS p", Response::rows(vec![vec![big(12_345)]]));
    let mut extractor = db.extractor(spec(ReadOrder::Key, None));
    assert_eq!(extractor.estimate(None).await.unwrap(), Some(12_345));
    let query = script.log().into_iter().last().unwrap();
    assert_eq!(query.params, vec![Value::Text("[dbo].[Orders]".into())]);
}
