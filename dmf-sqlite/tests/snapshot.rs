//! A snapshot handle reads every table as it was when the snapshot was taken, while other
//! connections insert, update and delete parents and children: its extractors return exactly the
//! rows of that moment, a plain extractor sees the new ones, a full sync from the snapshot copies
//! it exactly in one pass, and dropping the handle ends the read transaction.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{Dir, connect, engine};
use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, ExtractSpec, SyncJob, SyncMode};
use dmf_core::{Extractor, RunRequest, Value};
use dmf_sqlite::SqliteDatabase;
use futures::StreamExt;
use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE children (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parents (id),
    note TEXT
);";

/// A WAL-mode file with `parents` parents and three children each.
fn source_with(path: &Path, parents: i64) {
    let mut connection = connect(path);
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    connection.execute_batch(SCHEMA).unwrap();
    let tx = connection.transaction().unwrap();
    for id in 1..=parents {
        tx.execute("INSERT INTO parents (id, name) VALUES (?, ?)", rusqlite::params![id, format!("parent {id}")])
            .unwrap();
        for n in 0..3 {
            let child = id * 10 + n;
            tx.execute(
                "INSERT INTO children (id, parent_id, note) VALUES (?, ?, ?)",
                rusqlite::params![child, id, format!("child {child}")],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Both tables' rows, ordered by id, read with plain rusqlite.
fn content(path: &Path) -> Vec<Vec<Vec<rusqlite::types::Value>>> {
    let connection = Connection::open(path).unwrap();
    ["parents", "children"]
        .iter()
        .map(|table| {
            let mut statement = connection.prepare(&format!("SELECT * FROM {table} ORDER BY id")).unwrap();
            let width = statement.column_count();
            statement
                .query_map([], |row| (0..width).map(|i| row.get(i)).collect())
                .unwrap()
                .collect::<rusqlite::Result<Vec<Vec<_>>>>()
                .unwrap()
        })
        .collect()
}

async fn spec(database: &SqliteDatabase, table: &str) -> ExtractSpec {
    let catalog = database.read_catalog().await.unwrap();
    ExtractSpec::whole_table(catalog.table(&TableName::new(None, table)).unwrap()).unwrap()
}

/// Every row an extractor reads, in batches of 50.
async fn read_all(extractor: &mut impl Extractor<Item = dmf_core::Row>) -> Vec<Vec<Value>> {
    let batches: Vec<_> = extractor.extract(None, NonZeroUsize::new(50).unwrap()).collect().await;
    batches.into_iter().flat_map(|b| b.unwrap().records).map(|r| r.values().to_vec()).collect()
}

/// One writer transaction: a new parent with two children, a renamed parent, a deleted child.
fn write_once(connection: &mut Connection, n: i64) {
    let tx = connection.transaction().unwrap();
    let parent = 1_000_000 + n;
    tx.execute("INSERT INTO parents (id, name) VALUES (?, 'new')", [parent]).unwrap();
    tx.execute(
        "INSERT INTO children (id, parent_id, note) VALUES (?, ?, 'new'), (?, ?, 'new')",
        [parent * 10, parent, parent * 10 + 1, parent],
    )
    .unwrap();
    tx.execute("UPDATE parents SET name = name || ' renamed' WHERE id = ?", [1 + (n * 37) % 400]).unwrap();
    tx.execute("DELETE FROM children WHERE id = (SELECT max(id) FROM children WHERE id < 1000000)", []).unwrap();
    tx.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_extractors_read_the_rows_as_of_the_snapshot_while_others_commit() {
    let dir = Dir::new("snapshot-pages");
    let path = dir.file("source.db");
    source_with(&path, 400);
    let source = SqliteDatabase::open(&path).unwrap();
    let (parents, children) = (spec(&source, "parents").await, spec(&source, "children").await);
    let before_parents = read_all(&mut source.extractor(parents.clone())).await;
    let before_children = read_all(&mut source.extractor(children.clone())).await;
    assert_eq!((before_parents.len(), before_children.len()), (400, 1200));

    let snapshot = source.snapshot().await.unwrap();
    assert!(snapshot.display_name().ends_with("(snapshot)"), "{}", snapshot.display_name());
    let mut snapshot_parents = snapshot.extractor(parents.clone());
    let mut read = Vec::new();
    {
        let mut pages = snapshot_parents.extract(None, NonZeroUsize::new(50).unwrap());
        let first = pages.next().await.unwrap().unwrap();
        read.extend(first.records.iter().map(|r| r.values().to_vec()));

        // Between two pages, another connection commits into both tables: rows after the
        // reader's position and before it, updates and deletes.
        let mut writer = connect(&path);
        for n in 0..5 {
            write_once(&mut writer, n);
        }
        writer.execute("UPDATE parents SET name = 'changed' WHERE id IN (1, 399)", []).unwrap();

        while let Some(page) = pages.next().await {
            read.extend(page.unwrap().records.iter().map(|r| r.values().to_vec()));
        }
    }
    assert_eq!(read, before_parents, "the snapshot's parents are the rows as of the snapshot");
    // An extractor of the snapshot made after the writes still reads the snapshot.
    assert_eq!(read_all(&mut snapshot.extractor(children.clone())).await, before_children);
    assert_eq!(snapshot.extractor(children.clone()).estimate(None).await.unwrap(), Some(1200));

    // A plain extractor reads the current rows.
    let now_parents = read_all(&mut source.extractor(parents)).await;
    assert_eq!(now_parents.len(), 405);
    assert!(now_parents.iter().any(|r| r[1] == Value::Text("changed".into())));
    assert_eq!(read_all(&mut source.extractor(children.clone())).await.len(), 1200 + 10 - 5);
    assert_eq!(source.extractor(children).estimate(None).await.unwrap(), Some(1205));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_from_a_snapshot_copies_it_exactly_while_a_writer_commits() {
    let dir = Dir::new("snapshot-sync");
    let (source_path, target_path) = (dir.file("source.db"), dir.file("target.db"));
    source_with(&source_path, 2000);
    connect(&target_path).execute_batch(SCHEMA).unwrap();
    let as_of_snapshot = content(&source_path);
    let snapshot = SqliteDatabase::open(&source_path).unwrap().snapshot().await.unwrap();

    // A writer commits parents and children in transactions of its own, from before the sync
    // starts reading until it has finished.
    let (stop, commits) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (first_commit, first_committed) = tokio::sync::oneshot::channel();
    let writer = std::thread::spawn({
        let (stop, commits, path) = (Arc::clone(&stop), Arc::clone(&commits), source_path.clone());
        move || {
            let mut connection = connect(&path);
            let mut first_commit = Some(first_commit);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                write_once(&mut connection, n);
                n += 1;
                commits.fetch_add(1, Ordering::Relaxed);
                if let Some(sender) = first_commit.take() {
                    sender.send(()).unwrap();
                }
            }
        }
    });
    first_committed.await.unwrap();
    let at_start = commits.load(Ordering::Relaxed);

    let job = SyncJob::new(Arc::new(snapshot), Arc::new(SqliteDatabase::open(&target_path).unwrap()), SyncMode::Full)
        .engine(engine(50))
        .jobs(2);
    let summary = job.run(RunRequest::all()).await.unwrap();
    let during = commits.load(Ordering::Relaxed) - at_start;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert!(during > 0, "the writer committed while the sync ran");

    assert_eq!(content(&target_path), as_of_snapshot, "the target is the snapshot, exactly");
    assert_ne!(content(&source_path), as_of_snapshot, "the source changed meanwhile");
    assert_eq!(summary.migration("parents").unwrap().counts.inserted, 2000);
    assert_eq!(summary.migration("children").unwrap().counts.inserted, 6000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_and_extractor_ends_the_read_transaction() {
    let dir = Dir::new("snapshot-drop");
    let path = dir.file("source.db");
    source_with(&path, 10);
    let source = SqliteDatabase::open(&path).unwrap();
    let spec = spec(&source, "parents").await;
    let snapshot = source.snapshot().await.unwrap();
    let extractor = snapshot.clone().extractor(spec);

    let mut writer = connect(&path);
    writer.busy_timeout(std::time::Duration::ZERO).unwrap();
    write_once(&mut writer, 0);
    // A checkpoint that must copy the whole WAL into the file cannot pass a reader still on
    // an older version: `busy` is 1 while the snapshot is held.
    let checkpoint = |c: &Connection| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
    assert_eq!(checkpoint(&writer).unwrap(), 1, "the snapshot holds its read transaction");
    drop(snapshot);
    write_once(&mut writer, 1);
    assert_eq!(checkpoint(&writer).unwrap(), 1, "an extractor of the snapshot still holds it");
    drop(extractor);
    write_once(&mut writer, 2);
    assert_eq!(checkpoint(&writer).unwrap(), 0, "nothing holds the old version any more");
}
