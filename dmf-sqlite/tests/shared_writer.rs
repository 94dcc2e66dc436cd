//! The loaders of one SQLite database write through one connection, taking turns: each turn
//! sets per-row foreign-key checks as its own loader needs them, whatever the previous turn
//! (another loader's) left.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use dmf_core::catalog::{Column, DataType, TableName};
use dmf_core::sync::{Database, LoadSpec, WriteMode};
use dmf_core::{Checkpoint, LoadBatch, LoadReport, Loader, MigrationName, Position, Row, RowShape, RunId, Value};
use dmf_sqlite::SqliteDatabase;

fn child() -> TableName {
    TableName::new(None::<&str>, "child")
}

fn spec(trust_foreign_keys: bool) -> LoadSpec {
    LoadSpec {
        table: child(),
        columns: vec![
            Column::new("id", DataType::Int64, "INTEGER").not_null(),
            Column::new("parent_id", DataType::Int64, "INTEGER"),
        ],
        key: vec!["id".into()],
        write: WriteMode::Insert,
        null_columns: BTreeSet::new(),
        undo: false,
        trust_foreign_keys,
    }
}

/// One child row whose parent does not exist.
fn orphan(id: i64) -> Vec<Row> {
    let shape = Arc::new(RowShape { table: child(), columns: vec!["id".into(), "parent_id".into()], key: vec![0] });
    vec![Row::new(shape, vec![Value::Int(id), Value::Int(1000 + id)])]
}

async fn load(loader: &mut impl Loader<Item = Row>, migration: &str, id: i64) -> dmf_core::Result<LoadReport> {
    let migration = MigrationName::new(migration);
    let checkpoint = Checkpoint::at(Position::new(id.to_string()));
    let records = orphan(id);
    loader.load(LoadBatch { migration: &migration, run: RunId(1), records: &records, checkpoint: &checkpoint }).await
}

/// An empty `parent` and `child` in a new file of `dir`.
fn target(dir: &common::Dir) -> SqliteDatabase {
    let db = SqliteDatabase::create(dir.file("target.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));",
    )
    .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_turn_on_the_shared_connection_checks_foreign_keys_as_its_loader_asks() {
    let dir = common::Dir::new("shared-writer");
    let db = target(&dir);
    // A clone shares the writer too.
    let mut trusting = db.loader(spec(true));
    let mut checking = db.clone().loader(spec(false));

    assert_eq!(
        load(&mut trusting, "trusting", 1).await.unwrap().inserted,
        1,
        "no per-row check: the orphan is written"
    );
    let refused = load(&mut checking, "checking", 2).await.expect_err("the per-row loader must refuse an orphan");
    assert!(refused.chain().contains("FOREIGN KEY"), "{}", refused.chain());
    assert_eq!(
        load(&mut trusting, "trusting", 3).await.unwrap().inserted,
        1,
        "the next turn turns the checks off again"
    );
    // The checkpoints of both loaders live in the same file, written on the same connection;
    // reading one commits the open group of batches first.
    let saved = trusting.checkpoint(&MigrationName::new("trusting")).await.unwrap().unwrap();
    assert_eq!(saved.position.unwrap().as_str(), "3");
    assert!(
        checking.checkpoint(&MigrationName::new("checking")).await.unwrap().is_none(),
        "the refused batch saved none"
    );
    assert_eq!(common::count(db.path(), "child"), 2, "rows 1 and 3, not the refused row 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaders_of_one_database_write_concurrently_without_busy_errors() {
    let dir = common::Dir::new("shared-writer");
    let db = target(&dir);
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let mut loader = db.loader(spec(true));
            tokio::spawn(async move {
                for i in 0..50 {
                    let id = task * 1000 + i;
                    load(&mut loader, &format!("task {task}"), id).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Commits the open group of batches, as a migration's last batch does.
    db.loader(spec(true)).checkpoint(&MigrationName::new("task 0")).await.unwrap();
    assert_eq!(common::count(db.path(), "child"), 200);
}
