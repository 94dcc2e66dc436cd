//! Key ranges on SQL Server, against a scripted server: an integer key is split from its
//! `MIN`/`MAX`, a text key from the last key of each `NTILE`; a ranged extractor starts after
//! the range's lower bound (or the resume position past it), stops at its upper bound with
//! `… <= @Pn`, and scopes its checkpoints by the range.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;

use common::*;
use dmf_core::catalog::{Column, DataType, TableName};
use dmf_core::sync::{Database, ExtractSpec, KeyRange, ReadOrder, key_position};
use dmf_core::{Extractor, RowShape, Value};
use dmf_mssql::MssqlOptions;
use dmf_mssql::executor::{RecordedKind, Response};
use futures::StreamExt;
use tiberius::ColumnData;

fn spec(key: Column) -> ExtractSpec {
    let table = TableName::new(Some("dbo"), "Orders");
    let columns = vec![key.clone(), Column::new("note", DataType::Text { max_len: None }, "nvarchar(max)")];
    ExtractSpec {
        table: table.clone(),
        shape: Arc::new(RowShape { table, columns: vec![key.name.clone(), "note".into()], key: vec![0] }),
        columns,
        key: vec![key.name],
        order: ReadOrder::Key,
        range: None,
        query: None,
    }
}

fn id() -> Column {
    Column::new("id", DataType::Int32, "int").not_null()
}

fn code() -> Column {
    Column::new("code", DataType::Text { max_len: Some(20) }, "nvarchar(20)").not_null()
}

fn parts(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

#[tokio::test]
async fn an_integer_key_is_split_at_equal_widths_between_its_minimum_and_maximum() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("CAST(MIN(t.[id]) AS bigint)", Response::rows(vec![vec![big(1), big(300)]]));
    let ranges = db.key_ranges(&spec(id()), parts(3)).await.unwrap();
    assert_eq!(ranges, KeyRange::split_integers(1, 300, parts(3)));
    assert_eq!(ranges[0].up_to, Some(vec![Value::Int(100)]));
    let query = script.log().into_iter().find(|r| r.kind == RecordedKind::Query).unwrap();
    assert_eq!(query.sql, "SELECT CAST(MIN(t.[id]) AS bigint), CAST(MAX(t.[id]) AS bigint) FROM [dbo].[Orders] AS t");

    // An empty table: one range.
    script.on("CAST(MIN(t.[id]) AS bigint)", Response::rows(vec![vec![ColumnData::I64(None), ColumnData::I64(None)]]));
    assert_eq!(db.key_ranges(&spec(id()), parts(3)).await.unwrap(), vec![KeyRange::all()]);
}

#[tokio::test]
async fn a_text_key_is_split_at_the_last_key_of_each_tile() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("NTILE(@P1)", Response::rows(vec![vec![text("Bob")], vec![text("émile")]]));
    let ranges = db.key_ranges(&spec(code()), parts(3)).await.unwrap();
    let key = |s: &str| Some(vec![Value::Text(s.into())]);
    assert_eq!(
        ranges,
        vec![
            KeyRange { after: None, up_to: key("Bob") },
            KeyRange { after: key("Bob"), up_to: key("émile") },
            KeyRange { after: key("émile"), up_to: None },
        ]
    );
    let query = script.log().into_iter().find(|r| r.kind == RecordedKind::Query).unwrap();
    assert_eq!(query.params, vec![Value::Int(3)]);
    assert!(query.sql.contains("NTILE(@P1) OVER (ORDER BY t.[code] COLLATE Latin1_General_100_BIN2)"), "{}", query.sql);
}

#[tokio::test]
async fn a_ranged_extractor_reads_from_its_lower_bound_to_its_upper_bound() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on(pattern::PAGE, Response::rows(vec![vec![int(101), text("a")], vec![int(102), text("b")]]));
    let range = KeyRange { after: Some(vec![Value::Int(100)]), up_to: Some(vec![Value::Int(200)]) };
    let mut extractor = db.extractor(spec(id()).within(range.clone()));
    assert_eq!(extractor.scope(), range.scope(), "checkpoints are scoped by the range");
    assert_eq!(extractor.estimate(None).await.unwrap(), None, "no whole-table estimate for a range");
    let batches: Vec<_> = extractor.extract(None, parts(5)).collect().await;
    assert_eq!(batches.len(), 1, "a short page is the last");
    let pages: Vec<_> = script.log().into_iter().filter(|r| r.sql.contains(pattern::PAGE)).collect();
    assert_eq!(
        pages[0].sql,
        "SELECT TOP (@P1) t.[id], t.[note] FROM [dbo].[Orders] AS t WHERE ((t.[id] > CAST(@P2 AS int))) \
         AND ((t.[id] <= CAST(@P3 AS int))) ORDER BY t.[id]"
    );
    assert_eq!(pages[0].params, vec![Value::Int(5), Value::Int(100), Value::Int(200)]);

    // Resumed: after the stored key, still bounded.
    script.clear_log();
    let from = key_position(&[Value::Int(150)]).unwrap();
    let _: Vec<_> = extractor.extract(Some(from), parts(5)).collect().await;
    let page = script.log().into_iter().find(|r| r.sql.contains(pattern::PAGE)).unwrap();
    assert_eq!(page.params, vec![Value::Int(5), Value::Int(150), Value::Int(200)]);

    // The first range: no lower bound.
    script.clear_log();
    let mut first = db.extractor(spec(id()).within(KeyRange { after: None, up_to: Some(vec![Value::Int(100)]) }));
    let _: Vec<_> = first.extract(None, parts(5)).collect().await;
    let page = script.log().into_iter().find(|r| r.sql.contains(pattern::PAGE)).unwrap();
    assert_eq!(
        page.sql,
        "SELECT TOP (@P1) t.[id], t.[note] FROM [dbo].[Orders] AS t WHERE ((t.[id] <= CAST(@P2 AS int))) ORDER BY t.[id]"
    );
    assert_eq!(page.params, vec![Value::Int(5), Value::Int(100)]);
}

#[tokio::test]
async fn a_range_in_watermark_order_is_refused_before_anything_is_read() {
    let (script, db) = scripted(MssqlOptions::default());
    let mut watermark = spec(id()).within(KeyRange { after: Some(vec![Value::Int(1)]), up_to: None });
    watermark.order = ReadOrder::Watermark { column: "note".into() };
    let mut extractor = db.extractor(watermark);
    let result: Vec<_> = extractor.extract(None, parts(5)).collect().await;
    let error = result.into_iter().next().unwrap().unwrap_err();
    assert!(error.to_string().contains("ranges are for reads in key order"), "{error}");
    assert!(statements(&script).is_empty());
}
