//! The loader's statements, in order, and what it makes of the answers: the stage created by
//! a plain batch, rows bulk-loaded in the target's exact types, one MERGE batch with the
//! checkpoint whose counts come from `OUTPUT $action`, identity and undo-log handling, and a
//! fresh session with a fresh stage after any error; and the MERGE-free upsert
//! (`UpsertStrategy::UpdateInsert`): the same stage and one batch of `UPDATE`, then `INSERT …
//! WHERE NOT EXISTS`, counted by `@@ROWCOUNT`, with the same undo log and checkpoint; and the
//! session given back to the pool once the migration is done or rolled back.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use dmf_core::catalog::{Column, DataType, TableName};
use dmf_core::sync::{Database, LoadSpec, WriteMode};
use dmf_core::{
    Checkpoint, ErrorKind, LoadBatch, LoadReport, Loader, MigrationName, Position, Row, RowShape, RunId, Value,
};
use dmf_mssql::executor::{RecordedKind, Response, Script};
use dmf_mssql::{BulkOptions, MssqlOptions, SqlError, UpsertStrategy};
use tiberius::ColumnData;
use tiberius::numeric::Numeric;

fn table() -> TableName {
    TableName::new(Some("dbo"), "Orders")
}

fn spec(write: WriteMode, names: &[&str]) -> LoadSpec {
    let all = [
        Column::new("id", DataType::Int32, "int").not_null(),
        Column::new("name", DataType::Text { max_len: Some(50) }, "nvarchar(50)"),
        Column::new("amount", DataType::Decimal { precision: Some(19), scale: Some(4) }, "money"),
        Column::new("parent_id", DataType::Int32, "int"),
        Column::new("total", DataType::Int32, "int"),
    ];
    LoadSpec {
        table: table(),
        columns: names.iter().map(|n| all.iter().find(|c| c.name == *n).unwrap().clone()).collect(),
        key: vec!["id".into()],
        write,
        null_columns: BTreeSet::new(),
        undo: false,
        trust_foreign_keys: false,
    }
}

/// The target's columns: identity id, a case-sensitive name, money, a parent, a computed
/// total and a rowversion.
fn target_columns(script: &Script) {
    script.always(
        pattern::TABLE_COLUMNS,
        Response::rows(vec![
            column("id", "int", 4, 10, 0, false, true, false, None),
            column("name", "nvarchar", 100, 0, 0, true, false, false, Some("Latin1_General_CS_AS")),
            column("amount", "money", 8, 19, 4, true, false, false, None),
            column("parent_id", "int", 4, 10, 0, true, false, false, None),
            column("total", "int", 4, 10, 0, true, false, true, None),
            column("rv", "timestamp", 8, 0, 0, false, false, true, None),
        ]),
    );
}

fn rows(names: &[&str], values: Vec<Vec<Value>>) -> Vec<Row> {
    let shape =
        Arc::new(RowShape { table: table(), columns: names.iter().map(|n| (*n).to_owned()).collect(), key: vec![0] });
    values.into_iter().map(|v| Row::new(Arc::clone(&shape), v)).collect()
}

fn order(id: i64, name: &str, amount: &str) -> Vec<Value> {
    vec![Value::Int(id), Value::Text(name.into()), Value::Decimal(amount.into())]
}

async fn load(loader: &mut impl Loader<Item = Row>, records: &[Row], position: &str) -> dmf_core::Result<LoadReport> {
    let migration = MigrationName::new("dbo.Orders");
    let checkpoint = Checkpoint::at(Position::new(position));
    loader.load(LoadBatch { migration: &migration, run: RunId(7), records, checkpoint: &checkpoint }).await
}

fn merge_counts(counts: &[(&str, i64)]) -> Response {
    Response::rows(counts.iter().map(|(action, n)| vec![text(action), big(*n)]).collect())
}

const STAGE: &str = "DROP TABLE IF EXISTS #dmf_stage; DROP TABLE IF EXISTS #dmf_merge_log; \
CREATE TABLE #dmf_stage ([id] int NOT NULL, [name] nvarchar(50) COLLATE Latin1_General_CS_AS NULL, [amount] money NULL, \
PRIMARY KEY CLUSTERED ([id])); CREATE TABLE #dmf_merge_log ([action] nvarchar(10) NOT NULL, [new_0] int NULL);";

const UPSERT: &str = "SET XACT_ABORT ON; BEGIN TRANSACTION; SET IDENTITY_INSERT [dbo].[Orders] ON; \
MERGE INTO [dbo].[Orders] AS t USING #dmf_stage AS s ON t.[id] = s.[id] \
WHEN MATCHED AND EXISTS (SELECT s.[name], s.[amount] EXCEPT SELECT t.[name], t.[amount]) THEN UPDATE SET t.[name] = s.[name], t.[amount] = s.[amount] \
WHEN NOT MATCHED BY TARGET THEN INSERT ([id], [name], [amount]) VALUES (s.[id], s.[name], s.[amount]) \
OUTPUT $action, inserted.[id] INTO #dmf_merge_log ([action], [new_0]); SET IDENTITY_INSERT [dbo].[Orders] OFF; \
SET XACT_ABORT ON; BEGIN TRANSACTION; UPDATE [dmf].[checkpoints] WITH (UPDLOCK, SERIALIZABLE) SET [position] = @P2, \
[skip] = @P3, [done] = @P4, [updated_at] = @P5 WHERE [migration] = @P1; IF @@ROWCOUNT = 0 INSERT INTO [dmf].[checkpoints] \
([migration], [position], [skip], [done], [updated_at]) VALUES (@P1, @P2, @P3, @P4, @P5); COMMIT TRANSACTION; \
COMMIT TRANSACTION; SELECT [action], COUNT_BIG(*) AS n FROM #dmf_merge_log GROUP BY [action]; \
TRUNCATE TABLE #dmf_stage; TRUNCATE TABLE #dmf_merge_log;";

/// The checkpoint's parameters as dmf-core's statement binds them: migration, position,
/// skip, done, and the time it was written (now, in UTC); then whatever follows them.
fn assert_checkpoint_params(params: &[Value], position: &str) -> Vec<Value> {
    assert_eq!(
        params[..4],
        [Value::Text("dbo.Orders".into()), Value::Text(position.into()), Value::Int(0), Value::Bool(false)]
    );
    let Value::TimestampTz(written) = &params[4] else { panic!("the checkpoint's time: {:?}", params[4]) };
    let age = chrono::Utc::now() - *written;
    assert!(age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::minutes(10), "written now, not {written}");
    params[5..].to_vec()
}

#[tokio::test]
async fn upserts_stage_then_merge_with_exact_counts_and_the_checkpoint_in_one_batch() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, merge_counts(&[("INSERT", 2), ("UPDATE", 1)]));
    let names = ["id", "name", "amount"];
    let mut loader = db.loader(spec(WriteMode::Upsert, &names));
    let batch =
        rows(&names, vec![order(1, "a", "1.5"), order(2, "Zoë 🦀", "-2"), order(3, "c", "0"), order(4, "d", "9.99")]);
    let report = load(&mut loader, &batch, "[4]").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 2, updated: 1, unchanged: 1, deleted: 0, skipped: 0 });

    let log = script.log();
    let kinds: Vec<&RecordedKind> = log.iter().map(|r| &r.kind).collect();
    assert_eq!(kinds[0], &RecordedKind::Session);
    assert!(log[1].sql.contains(pattern::INSPECT), "control tables first");
    assert!(log[2].sql.contains(pattern::TABLE_COLUMNS));
    assert_eq!(log[2].params, vec![Value::Text("[dbo].[Orders]".into())]);
    assert_eq!(
        (&log[3].kind, log[3].sql.as_str()),
        (&RecordedKind::Batch, STAGE),
        "the stage is made by a plain batch"
    );
    assert_eq!(log[4].sql, "INSERT BULK #dmf_stage ([id], [name], [amount])");
    let RecordedKind::BulkInsert { options, rows } = &log[4].kind else { panic!("{:?}", log[4].kind) };
    assert_eq!(
        *options,
        BulkOptions {
            keep_identity: false,
            keep_nulls: true,
            check_constraints: false,
            table_lock: true,
            fire_triggers: false
        },
        "the stage is a #temp table: the MERGE checks the target's constraints and fires its triggers"
    );
    assert_eq!(
        rows[1],
        vec![
            ColumnData::I32(Some(2)),
            ColumnData::String(Some("Zoë 🦀".into())),
            ColumnData::Numeric(Some(Numeric::new_with_scale(-20_000, 4)))
        ],
        "values take the target's exact types: int as I32, money as a numeric of scale 4"
    );
    assert_eq!((&log[5].kind, log[5].sql.as_str()), (&RecordedKind::Query, UPSERT));
    assert!(assert_checkpoint_params(&log[5].params, "[4]").is_empty());
    assert_eq!(log.len(), 6);

    // The next batch reuses the session and its stage.
    script.on(pattern::MERGE_BATCH, merge_counts(&[]));
    let report = load(&mut loader, &batch[..2], "[2]").await.unwrap();
    assert_eq!(
        report,
        LoadReport { inserted: 0, updated: 0, unchanged: 2, deleted: 0, skipped: 0 },
        "an unchanged re-run writes nothing"
    );
    let log = script.log();
    assert_eq!(log.len(), 8);
    assert!(log[6].sql.starts_with("INSERT BULK #dmf_stage"));
    assert_eq!(log[7].sql, UPSERT);
}

#[tokio::test]
async fn after_a_deadlock_the_session_is_dropped_and_the_retry_rebuilds_the_stage() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, Response::Fail(SqlError::server(1205, "Transaction was deadlocked")));
    script.on(pattern::MERGE_BATCH, merge_counts(&[("INSERT", 1)]));
    let names = ["id", "name", "amount"];
    let mut loader = db.loader(spec(WriteMode::Upsert, &names));
    let batch = rows(&names, vec![order(1, "a", "1")]);
    let error = load(&mut loader, &batch, "[1]").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient);
    assert!(
        error.to_string().contains("upserting 1 rows of dbo.Orders in sa@test:1433/Sales: SQL Server error 1205"),
        "{error}"
    );
    assert_eq!(sessions(&script), 1);

    let report = load(&mut loader, &batch, "[1]").await.unwrap();
    assert_eq!(report.inserted, 1);
    assert_eq!(sessions(&script), 2, "a new session after the error");
    let second: Vec<String> = script.log().iter().filter(|r| r.session == 2).map(|r| r.sql.clone()).collect();
    assert_eq!(second.len(), 5, "{second:#?}");
    assert_eq!(second[0], "", "session opened");
    assert!(second[1].contains(pattern::TABLE_COLUMNS), "control tables are checked once per process");
    assert_eq!(second[2], STAGE, "the stage is created again on the new session");
    assert!(second[3].starts_with("INSERT BULK #dmf_stage"));
    assert_eq!(second[4], UPSERT);
}

#[tokio::test]
async fn full_loads_bulk_insert_into_the_table_with_the_checkpoint_in_the_same_transaction() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    let names = ["id", "name", "amount"];
    let mut loader = db.loader(spec(WriteMode::Insert, &names));
    let batch = rows(&names, vec![order(1, "a", "1"), order(2, "b", "2")]);
    let report = load(&mut loader, &batch, "[2]").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 2, ..LoadReport::default() });
    let log = script.log();
    assert_eq!((&log[3].kind, log[3].sql.as_str()), (&RecordedKind::Batch, "SET XACT_ABORT ON; BEGIN TRANSACTION;"));
    assert_eq!(log[4].sql, "INSERT BULK [dbo].[Orders] ([id], [name], [amount])");
    let RecordedKind::BulkInsert { options, .. } = &log[4].kind else { panic!() };
    assert_eq!(
        *options,
        BulkOptions {
            keep_identity: true,
            keep_nulls: true,
            check_constraints: true,
            table_lock: false,
            fire_triggers: true
        },
        "identity values are kept, constraints checked so they stay trusted, insert triggers fired"
    );
    assert_eq!(log[5].kind, RecordedKind::Execute);
    assert!(log[5].sql.contains(pattern::SAVE_CHECKPOINT), "{}", log[5].sql);
    assert!(assert_checkpoint_params(&log[5].params, "[2]").is_empty());
    assert_eq!((&log[6].kind, log[6].sql.as_str()), (&RecordedKind::Batch, "COMMIT TRANSACTION;"));
    assert_eq!(log.len(), 7);
    assert!(!statements(&script).iter().any(|s| s.contains("#dmf_stage")), "no stage for plain inserts");
}

#[tokio::test]
async fn a_value_that_does_not_fit_its_column_is_a_data_error_naming_row_and_column() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    let names = ["id", "name", "amount"];
    let mut loader = db.loader(spec(WriteMode::Upsert, &names));
    let batch = rows(&names, vec![order(1, "a", "1"), vec![Value::Int(1 << 40), Value::Null, Value::Null]]);
    let error = load(&mut loader, &batch, "[2]").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Data, "the engine bisects and rejects the row");
    assert_eq!(
        error.to_string(),
        "load failed: loading dbo.Orders row id=1099511627776: column `id` (int): 1099511627776 is out of the range of int"
    );
    assert!(!statements(&script).iter().any(|s| s.starts_with("INSERT BULK")), "nothing was sent");
}

#[tokio::test]
async fn computed_and_rowversion_columns_are_never_written() {
    for column in ["total", "rv"] {
        let (script, db) = scripted(MssqlOptions::default());
        control_tables(&script, true, true);
        target_columns(&script);
        script.on(pattern::MERGE_BATCH, merge_counts(&[("UPDATE", 1)]));
        let mut spec = spec(WriteMode::Update, &["id", "name"]);
        spec.columns.push(Column::new(column, DataType::Int64, "bigint"));
        let mut loader = db.loader(spec);
        let names = ["id", "name", column];
        let batch = rows(&names, vec![vec![Value::Int(1), Value::Text("a".into()), Value::Int(2003)]]);
        let report = load(&mut loader, &batch, "[2003, 1]").await.unwrap();
        assert_eq!(report.updated, 1);
        let log = script.log();
        let stage = log.iter().find(|r| r.sql.contains(pattern::CREATE_STAGE)).unwrap();
        assert!(!stage.sql.contains(&format!("[{column}]")), "{}", stage.sql);
        let bulk = log.iter().find(|r| r.sql.starts_with("INSERT BULK")).unwrap();
        assert_eq!(bulk.sql, "INSERT BULK #dmf_stage ([id], [name])");
        let RecordedKind::BulkInsert { rows, .. } = &bulk.kind else { panic!() };
        assert_eq!(rows[0], vec![ColumnData::I32(Some(1)), ColumnData::String(Some("a".into()))]);
        let merge = log.iter().find(|r| r.sql.contains(pattern::MERGE_BATCH)).unwrap();
        assert!(!merge.sql.contains(&format!("[{column}]")), "{}", merge.sql);
    }
}

#[tokio::test]
async fn deferred_columns_are_inserted_as_null_and_never_updated() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, merge_counts(&[("INSERT", 1)]));
    let names = ["id", "name", "parent_id"];
    let mut spec = spec(WriteMode::Upsert, &names);
    spec.null_columns.insert("parent_id".into());
    let mut loader = db.loader(spec);
    let batch = rows(&names, vec![vec![Value::Int(1), Value::Text("a".into()), Value::Int(99)]]);
    load(&mut loader, &batch, "[1]").await.unwrap();
    let log = script.log();
    let bulk = log.iter().find(|r| r.sql.starts_with("INSERT BULK")).unwrap();
    let RecordedKind::BulkInsert { rows, .. } = &bulk.kind else { panic!() };
    assert_eq!(rows[0][2], ColumnData::I32(None), "the deferred foreign key is loaded as NULL");
    let merge = log.iter().find(|r| r.sql.contains(pattern::MERGE_BATCH)).unwrap();
    assert!(merge.sql.contains("THEN UPDATE SET t.[name] = s.[name] WHEN NOT MATCHED"), "{}", merge.sql);
    assert!(merge.sql.contains("INSERT ([id], [name], [parent_id])"), "{}", merge.sql);
}

#[tokio::test]
async fn deletes_join_the_staged_keys_without_merge_and_count_from_the_log() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, merge_counts(&[("DELETE", 2)]));
    let mut loader = db.loader(spec(WriteMode::Delete, &["id"]));
    let batch = rows(&["id"], vec![vec![Value::Int(1)], vec![Value::Int(2)], vec![Value::Int(3)]]);
    let report = load(&mut loader, &batch, "[3]").await.unwrap();
    assert_eq!(report, LoadReport { deleted: 2, unchanged: 1, ..LoadReport::default() });
    let merge = script.log().into_iter().find(|r| r.sql.contains(pattern::MERGE_BATCH)).unwrap();
    assert!(
        merge.sql.contains(
            "DELETE t OUTPUT N'DELETE' INTO #dmf_merge_log ([action]) FROM [dbo].[Orders] AS t \
             JOIN #dmf_stage AS s ON t.[id] = s.[id];"
        ),
        "{}",
        merge.sql
    );
    assert!(!merge.sql.contains("IDENTITY_INSERT"), "deletes insert nothing");
    assert!(!merge.sql.contains("MERGE"), "Babelfish has no MERGE");
}

#[tokio::test]
async fn with_the_undo_log_the_merge_logs_before_images_in_the_same_transaction() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, merge_counts(&[("UPDATE", 1)]));
    let names = ["id", "name", "amount"];
    let mut spec = spec(WriteMode::Upsert, &names);
    spec.undo = true;
    let mut loader = db.loader(spec);
    let batch = rows(&names, vec![order(1, "a", "1")]);
    load(&mut loader, &batch, "[1]").await.unwrap();
    let log = script.log();
    let stage = log.iter().find(|r| r.sql.contains(pattern::CREATE_STAGE)).unwrap();
    assert!(
        stage.sql.ends_with(
            "CREATE TABLE #dmf_merge_log ([action] nvarchar(10) NOT NULL, [new_0] int NULL, [old_0] int NULL, \
             [old_1] nvarchar(50) COLLATE Latin1_General_CS_AS NULL, [old_2] money NULL, [old_3] int NULL);"
        ),
        "the log holds every writable column (not the computed one nor the rowversion): {}",
        stage.sql
    );
    let merge = log.iter().find(|r| r.sql.contains(pattern::MERGE_BATCH)).unwrap();
    assert!(merge.sql.contains(
        "OUTPUT $action, inserted.[id], deleted.[id], deleted.[name], deleted.[amount], deleted.[parent_id] INTO #dmf_merge_log"
    ));
    let undo = merge.sql.find("INSERT INTO dmf.undo_log").expect("undo log written");
    let commit = merge.sql.find("COMMIT TRANSACTION").unwrap();
    assert!(undo < commit, "in the batch's transaction");
    assert_eq!(
        assert_checkpoint_params(&merge.params, "[1]"),
        [Value::Int(7), Value::Text("dbo.Orders".into())],
        "run id and table name for the undo rows"
    );

    script.on(
        "INSERT INTO [dbo].[Orders] ([id], [name], [amount], [parent_id]) SELECT",
        Response::rows(vec![vec![big(1), big(2)]]),
    );
    let report = loader.rollback(&MigrationName::new("dbo.Orders"), RunId(7)).await.unwrap();
    assert_eq!((report.deleted, report.restored), (1, 2));
    let undo = script.log().into_iter().last().unwrap();
    assert!(undo.sql.starts_with("SET XACT_ABORT ON; BEGIN TRANSACTION; DECLARE @deleted bigint = 0"), "{}", undo.sql);
    assert!(undo.sql.contains("SET IDENTITY_INSERT [dbo].[Orders] ON;"), "deleted rows come back with their ids");
    assert_eq!(undo.params, vec![Value::Int(7), Value::Text("dbo.Orders".into())]);
}

#[tokio::test]
async fn full_loads_with_an_undo_log_insert_through_the_stage_to_record_the_keys() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on("INSERT INTO [dbo].[Orders] ([id], [name]) OUTPUT", merge_counts(&[("INSERT", 2)]));
    let names = ["id", "name"];
    let mut spec = spec(WriteMode::Insert, &names);
    spec.undo = true;
    let mut loader = db.loader(spec);
    let batch = rows(&names, vec![vec![Value::Int(1), Value::Text("a".into())], vec![Value::Int(2), Value::Null]]);
    let report = load(&mut loader, &batch, "[2]").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 2, ..LoadReport::default() });
    let log = script.log();
    assert!(log.iter().any(|r| r.sql.starts_with("INSERT BULK #dmf_stage")), "through the stage");
    let insert = log.last().unwrap();
    assert!(
        insert.sql.starts_with(
            "SET XACT_ABORT ON; BEGIN TRANSACTION; SET IDENTITY_INSERT [dbo].[Orders] ON; INSERT INTO [dbo].[Orders] ([id], [name]) \
             OUTPUT N'INSERT', inserted.[id] INTO #dmf_merge_log ([action], [new_0]) SELECT s.[id], s.[name] FROM #dmf_stage AS s; \
             SET IDENTITY_INSERT [dbo].[Orders] OFF; INSERT INTO dmf.undo_log"
        ),
        "{}",
        insert.sql
    );
}

#[tokio::test]
async fn a_loader_gives_its_session_back_when_its_migration_is_done_or_rolled_back() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.always(pattern::MERGE_BATCH, merge_counts(&[]));
    script.always("SELECT @deleted AS deleted, @restored AS restored", Response::rows(vec![vec![big(0), big(0)]]));
    let names = ["id", "name", "amount"];
    let mut spec = spec(WriteMode::Upsert, &names);
    spec.undo = true;
    let mut loader = db.loader(spec);
    let migration = MigrationName::new("dbo.Orders");
    load(&mut loader, &rows(&names, vec![order(1, "a", "1")]), "[1]").await.unwrap();
    assert_eq!(script.open_sessions(), 1, "the session and its stage stay for the next batch");

    // The engine's last, empty batch marks the migration done.
    let done = Checkpoint { position: Some(Position::new("[1]")), skip: 0, done: true };
    loader.load(LoadBatch { migration: &migration, run: RunId(7), records: &[], checkpoint: &done }).await.unwrap();
    assert_eq!(script.open_sessions(), 0, "the migration is done: its session went back to the pool");
    load(&mut loader, &rows(&names, vec![order(2, "b", "2")]), "[2]").await.unwrap();
    assert_eq!(sessions(&script), 2, "a later batch opens a new session");
    let second: Vec<String> = script.log().iter().filter(|r| r.session == 2).map(|r| r.sql.clone()).collect();
    assert!(second.iter().any(|s| s == STAGE_WITH_UNDO), "with a new stage: {second:#?}");

    loader.rollback(&migration, RunId(7)).await.unwrap();
    assert_eq!(script.open_sessions(), 0, "a rolled-back table's session goes back at once");
    loader.clear_checkpoint(&migration).await.unwrap();
    assert_eq!(script.open_sessions(), 0, "clearing the checkpoint borrows a session and gives it back");
    let last = script.log().into_iter().last().unwrap();
    assert_eq!(last.sql, "DELETE FROM [dmf].[checkpoints] WHERE [migration] = @P1");
}

const STAGE_WITH_UNDO: &str = "DROP TABLE IF EXISTS #dmf_stage; DROP TABLE IF EXISTS #dmf_merge_log; \
CREATE TABLE #dmf_stage ([id] int NOT NULL, [name] nvarchar(50) COLLATE Latin1_General_CS_AS NULL, [amount] money NULL, \
PRIMARY KEY CLUSTERED ([id])); CREATE TABLE #dmf_merge_log ([action] nvarchar(10) NOT NULL, [new_0] int NULL, [old_0] int NULL, \
[old_1] nvarchar(50) COLLATE Latin1_General_CS_AS NULL, [old_2] money NULL, [old_3] int NULL);";

#[tokio::test]
async fn checkpoints_are_read_and_cleared_in_the_control_table() {
    let (script, db) = scripted(MssqlOptions::default());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::CHECKPOINT, Response::rows(vec![vec![text("[42]"), big(3), flag(true)]]));
    let mut loader = db.loader(spec(WriteMode::Upsert, &["id", "name"]));
    let migration = MigrationName::new("dbo.Orders");
    let checkpoint = loader.checkpoint(&migration).await.unwrap().unwrap();
    assert_eq!(checkpoint, Checkpoint { position: Some(Position::new("[42]")), skip: 3, done: true });
    loader.clear_checkpoint(&migration).await.unwrap();
    let last = script.log().into_iter().last().unwrap();
    assert_eq!(
        (last.sql.as_str(), last.params),
        ("DELETE FROM [dmf].[checkpoints] WHERE [migration] = @P1", vec![Value::Text("dbo.Orders".into())])
    );
}

fn merge_free() -> MssqlOptions {
    MssqlOptions { upsert: UpsertStrategy::UpdateInsert, ..MssqlOptions::default() }
}

/// The MERGE-free upsert of `UPSERT`'s batch: the rows that differ updated, the absent keys
/// inserted (identity values kept), both under key-range locks, each counted at once.
const UPDATE_INSERT: &str = "SET XACT_ABORT ON; DECLARE @inserted bigint = 0, @updated bigint = 0, @deleted bigint = 0; \
BEGIN TRANSACTION; \
UPDATE t SET [name] = s.[name], [amount] = s.[amount] \
FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON t.[id] = s.[id] \
WHERE EXISTS (SELECT s.[name], s.[amount] EXCEPT SELECT t.[name], t.[amount]); \
SET @updated = @@ROWCOUNT; SET IDENTITY_INSERT [dbo].[Orders] ON; \
INSERT INTO [dbo].[Orders] ([id], [name], [amount]) SELECT s.[id], s.[name], s.[amount] FROM #dmf_stage AS s \
WHERE NOT EXISTS (SELECT 1 FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) WHERE t.[id] = s.[id]); \
SET @inserted = @@ROWCOUNT; SET IDENTITY_INSERT [dbo].[Orders] OFF; \
SET XACT_ABORT ON; BEGIN TRANSACTION; UPDATE [dmf].[checkpoints] WITH (UPDLOCK, SERIALIZABLE) SET [position] = @P2, \
[skip] = @P3, [done] = @P4, [updated_at] = @P5 WHERE [migration] = @P1; IF @@ROWCOUNT = 0 INSERT INTO [dmf].[checkpoints] \
([migration], [position], [skip], [done], [updated_at]) VALUES (@P1, @P2, @P3, @P4, @P5); COMMIT TRANSACTION; \
COMMIT TRANSACTION; SELECT N'INSERT' AS [action], @inserted AS n UNION ALL SELECT N'UPDATE' AS [action], @updated AS n \
UNION ALL SELECT N'DELETE' AS [action], @deleted AS n; \
TRUNCATE TABLE #dmf_stage; TRUNCATE TABLE #dmf_merge_log;";

/// The counts the MERGE-free batch returns: one row per action, always all three.
fn merge_free_counts(inserted: i64, updated: i64, deleted: i64) -> Response {
    merge_counts(&[("INSERT", inserted), ("UPDATE", updated), ("DELETE", deleted)])
}

#[tokio::test]
async fn the_merge_free_upsert_updates_then_inserts_in_one_batch_with_exact_counts_and_the_checkpoint() {
    let (script, db) = scripted(merge_free());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, merge_free_counts(2, 1, 0));
    let names = ["id", "name", "amount"];
    let mut loader = db.loader(spec(WriteMode::Upsert, &names));
    let batch =
        rows(&names, vec![order(1, "a", "1.5"), order(2, "Zoë 🦀", "-2"), order(3, "c", "0"), order(4, "d", "9.99")]);
    let report = load(&mut loader, &batch, "[4]").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 2, updated: 1, unchanged: 1, deleted: 0, skipped: 0 });

    let log = script.log();
    assert_eq!((&log[3].kind, log[3].sql.as_str()), (&RecordedKind::Batch, STAGE), "the same stage as the MERGE's");
    assert_eq!(log[4].sql, "INSERT BULK #dmf_stage ([id], [name], [amount])");
    assert_eq!((&log[5].kind, log[5].sql.as_str()), (&RecordedKind::Query, UPDATE_INSERT));
    assert!(assert_checkpoint_params(&log[5].params, "[4]").is_empty());
    assert_eq!(log.len(), 6);

    // Nothing differs and nothing is new: the counts are zero, every row unchanged.
    script.on(pattern::MERGE_BATCH, merge_free_counts(0, 0, 0));
    let report = load(&mut loader, &batch[..2], "[2]").await.unwrap();
    assert_eq!(report, LoadReport { unchanged: 2, ..LoadReport::default() });
    assert_eq!(script.log().last().unwrap().sql, UPDATE_INSERT, "the session and its stage are reused");
}

#[tokio::test]
async fn the_merge_free_upsert_writes_the_same_undo_log_as_the_merge() {
    let names = ["id", "name", "amount"];
    let mut sent = Vec::new();
    for (options, counts) in
        [(MssqlOptions::default(), merge_counts(&[("UPDATE", 1)])), (merge_free(), merge_free_counts(0, 1, 0))]
    {
        let (script, db) = scripted(options);
        control_tables(&script, true, true);
        target_columns(&script);
        script.on(pattern::MERGE_BATCH, counts);
        let mut spec = spec(WriteMode::Upsert, &names);
        spec.undo = true;
        let mut loader = db.loader(spec);
        let report = load(&mut loader, &rows(&names, vec![order(1, "a", "1")]), "[1]").await.unwrap();
        assert_eq!(report, LoadReport { updated: 1, ..LoadReport::default() });
        let batch = script.log().into_iter().find(|r| r.sql.contains(pattern::MERGE_BATCH)).unwrap();
        assert_eq!(
            assert_checkpoint_params(&batch.params, "[1]"),
            [Value::Int(7), Value::Text("dbo.Orders".into())],
            "run id and table name for the undo rows"
        );
        let stage = script.log().into_iter().find(|r| r.sql.contains(pattern::CREATE_STAGE)).unwrap();
        sent.push((stage.sql, batch.sql));
    }
    let [(merge_stage, merge), (stage, batch)] = &sent[..] else { panic!() };
    assert_eq!(stage, merge_stage, "the same stage and merge log (with every writable column's before-image)");
    let undo_log = |sql: &str| {
        let from = sql.find("INSERT INTO dmf.undo_log").expect("undo log written");
        let to = sql.find(pattern::SAVE_CHECKPOINT).unwrap();
        sql[from..to].to_owned()
    };
    assert_eq!(undo_log(batch), undo_log(merge), "the same copy of the merge log into dmf.undo_log");
    assert!(!batch.contains("OUTPUT"), "the log is filled by SELECTs, not by OUTPUT: {batch}");
    // What the MERGE's OUTPUT logs, each selected just before its write, under the same locks.
    let order = [
        "INSERT INTO #dmf_merge_log ([action], [new_0], [old_0], [old_1], [old_2], [old_3]) \
         SELECT N'UPDATE', t.[id], t.[id], t.[name], t.[amount], t.[parent_id] \
         FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON t.[id] = s.[id] WHERE EXISTS",
        "UPDATE t SET",
        "INSERT INTO #dmf_merge_log ([action], [new_0]) SELECT N'INSERT', s.[id] FROM #dmf_stage AS s \
         WHERE NOT EXISTS (SELECT 1 FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE) WHERE t.[id] = s.[id]);",
        "INSERT INTO [dbo].[Orders]",
        "INSERT INTO dmf.undo_log",
        "COMMIT TRANSACTION; SELECT",
    ];
    let at: Vec<usize> =
        order.iter().map(|s| batch.find(s).unwrap_or_else(|| panic!("{s}\nnot in\n{batch}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "in this order: {batch}");
}

#[tokio::test]
async fn the_merge_free_upsert_retries_a_deadlock_on_a_new_session_with_a_new_stage() {
    let (script, db) = scripted(merge_free());
    control_tables(&script, true, true);
    target_columns(&script);
    script.on(pattern::MERGE_BATCH, Response::Fail(SqlError::server(1205, "Transaction was deadlocked")));
    script.on(pattern::MERGE_BATCH, merge_free_counts(1, 0, 0));
    let names = ["id", "name", "amount"];
    let mut loader = db.loader(spec(WriteMode::Upsert, &names));
    let batch = rows(&names, vec![order(1, "a", "1")]);
    let error = load(&mut loader, &batch, "[1]").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "key-range locks can deadlock: the batch is retried");
    let report = load(&mut loader, &batch, "[1]").await.unwrap();
    assert_eq!(report, LoadReport { inserted: 1, ..LoadReport::default() });
    let second: Vec<String> = script.log().iter().filter(|r| r.session == 2).map(|r| r.sql.clone()).collect();
    assert_eq!(second[2], STAGE, "the stage is created again on the new session");
    assert_eq!(second[4], UPDATE_INSERT);
}

#[tokio::test]
async fn merge_free_deletes_updates_and_logged_inserts_count_by_rowcount_without_output() {
    for (mode, counts, expected) in [
        (
            WriteMode::Delete,
            merge_free_counts(0, 0, 2),
            LoadReport { deleted: 2, unchanged: 1, ..LoadReport::default() },
        ),
        (
            WriteMode::Update,
            merge_free_counts(0, 1, 0),
            LoadReport { updated: 1, unchanged: 2, ..LoadReport::default() },
        ),
        (WriteMode::Insert, merge_free_counts(3, 0, 0), LoadReport { inserted: 3, ..LoadReport::default() }),
    ] {
        for undo in [false, true] {
            if mode == WriteMode::Insert && !undo {
                continue; // a plain bulk load into the table, with no stage
            }
            let (script, db) = scripted(merge_free());
            control_tables(&script, true, true);
            target_columns(&script);
            script.on(pattern::MERGE_BATCH, counts.clone());
            let names: &[&str] = if mode == WriteMode::Delete { &["id"] } else { &["id", "name"] };
            let mut spec = spec(mode, names);
            spec.undo = undo;
            let mut loader = db.loader(spec);
            let values =
                (1..=3)
                    .map(|id| {
                        if mode == WriteMode::Delete { vec![Value::Int(id)] } else { vec![Value::Int(id), Value::Null] }
                    })
                    .collect();
            let report = load(&mut loader, &rows(names, values), "[3]").await.unwrap();
            assert_eq!(report, expected, "{mode:?}, undo {undo}");
            let batch = script.log().into_iter().find(|r| r.sql.contains(pattern::MERGE_BATCH)).unwrap().sql;
            assert!(!batch.contains("MERGE INTO") && !batch.contains("OUTPUT"), "{mode:?}, undo {undo}: {batch}");
            let (statement, count) = match mode {
                WriteMode::Delete => {
                    ("DELETE t FROM [dbo].[Orders] AS t JOIN #dmf_stage AS s ON t.[id] = s.[id];", "@deleted")
                }
                WriteMode::Update => {
                    ("UPDATE t SET [name] = s.[name] FROM [dbo].[Orders] AS t WITH (UPDLOCK, SERIALIZABLE)", "@updated")
                }
                _ => (
                    "INSERT INTO [dbo].[Orders] ([id], [name]) SELECT s.[id], s.[name] FROM #dmf_stage AS s;",
                    "@inserted",
                ),
            };
            assert!(batch.contains(statement), "{mode:?}, undo {undo}: {batch}");
            assert!(batch.contains(&format!("SET {count} = @@ROWCOUNT;")), "{mode:?}, undo {undo}: {batch}");
            assert_eq!(batch.contains("INSERT INTO #dmf_merge_log"), undo, "{mode:?}: logged only with an undo log");
            assert_eq!(batch.contains("INSERT INTO dmf.undo_log"), undo, "{mode:?}");
        }
    }
}
