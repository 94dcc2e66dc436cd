//! The error classification drives dmf-core's engine: a deadlock (1205) is retried on a new
//! session, a unique-key violation (2627) is bisected down to the offending row, which is
//! rejected, while the rest of the batch loads. Source and target are scripted SQL Servers;
//! the engine is dmf-core's, unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmf_core::catalog::{Column, DataType, TableName};
use dmf_core::sync::{Database, ExtractSpec, LoadSpec, ReadOrder, WriteMode};
use dmf_core::{
    DataMigration, EngineConfig, Identity, MigrationContext, Pipeline, RejectLimit, RetryPolicy, Row, RowShape, RunId,
    RunStore,
};
use dmf_mssql::executor::Response;
use dmf_mssql::{MssqlOptions, SqlError};
use dmf_testkit::MemoryRunStore;

fn table() -> TableName {
    TableName::new(Some("dbo"), "T")
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("id", DataType::Int32, "int").not_null(),
        Column::new("name", DataType::Text { max_len: Some(20) }, "nvarchar(20)"),
    ]
}

/// Source rows 1..=n in one page.
fn source(n: i32) -> Arc<dmf_mssql::MssqlDatabase> {
    let (script, db) = scripted(MssqlOptions::default());
    script.on(pattern::PAGE, Response::rows((1..=n).map(|i| vec![int(i), text(&format!("row {i}"))]).collect()));
    db
}

fn pipeline(source: &dmf_mssql::MssqlDatabase, target: &dmf_mssql::MssqlDatabase) -> impl DataMigration + use<> {
    let spec = ExtractSpec {
        table: table(),
        shape: Arc::new(RowShape { table: table(), columns: vec!["id".into(), "name".into()], key: vec![0] }),
        columns: columns(),
        key: vec!["id".into()],
        order: ReadOrder::Key,
        range: None,
        query: None,
    };
    let load = LoadSpec {
        table: table(),
        columns: columns(),
        key: vec!["id".into()],
        write: WriteMode::Upsert,
        null_columns: BTreeSet::new(),
        undo: false,
        trust_foreign_keys: false,
    };
    Pipeline::new(source.extractor(spec), Identity::<Row>::default(), target.loader(load)).named("dbo.T")
}

fn context(store: Arc<dyn RunStore>) -> MigrationContext {
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        factor: 2.0,
        jitter: false,
    };
    let config =
        EngineConfig::builder().batch_size(10).retry(retry).reject_limit(RejectLimit::Unlimited).build().unwrap();
    MigrationContext::new(RunId(1), Arc::new(config), store)
}

fn target_script() -> (dmf_mssql::executor::Script, Arc<dmf_mssql::MssqlDatabase>) {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    script.always(
        pattern::TABLE_COLUMNS,
        Response::rows(vec![
            column("id", "int", 4, 10, 0, false, false, false, None),
            column("name", "nvarchar", 40, 0, 0, true, false, false, None),
        ]),
    );
    (script, db)
}

#[tokio::test]
async fn a_deadlock_is_retried_on_a_new_session() {
    let (script, target) = target_script();
    script.on(pattern::MERGE_BATCH, Response::Fail(SqlError::server(1205, "deadlock victim")));
    script.on(pattern::MERGE_BATCH, Response::rows(vec![vec![text("INSERT"), big(3)]]));
    let migration = pipeline(&source(3), &target);
    let result = migration.execute(&context(Arc::new(MemoryRunStore::new()))).await.unwrap();
    assert_eq!(result.retries, 1);
    assert_eq!((result.counts.read, result.counts.inserted), (3, 3));
    let merges = statements(&script).iter().filter(|s| s.contains(pattern::MERGE_BATCH)).count();
    assert!(merges >= 2, "the failed batch was sent again");
    assert!(sessions(&script) >= 2, "on a new session");
}

#[tokio::test]
async fn a_unique_violation_is_bisected_and_only_the_bad_row_is_rejected() {
    let (script, target) = target_script();
    let duplicate = || Response::Fail(SqlError::server(2627, "Violation of PRIMARY KEY constraint 'PK_T'"));
    // The batch of 2 fails; then row 1 alone loads and row 2 alone fails again.
    script.on(pattern::MERGE_BATCH, duplicate());
    script.on(pattern::MERGE_BATCH, Response::rows(vec![vec![text("INSERT"), big(1)]]));
    script.on(pattern::MERGE_BATCH, duplicate());
    let store = Arc::new(MemoryRunStore::new());
    let migration = pipeline(&source(2), &target);
    let result = migration.execute(&context(store.clone())).await.unwrap();
    assert_eq!((result.counts.inserted, result.counts.rejected), (1, 1), "{result:?}");
    let rejects = store.rejects(RunId(1), None, 10, 0).await.unwrap();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].reject.key, "id=2");
    assert!(rejects[0].reject.reason.contains("SQL Server error 2627"), "{}", rejects[0].reject.reason);
    assert_eq!(result.retries, 0, "data errors are not retried");
}
