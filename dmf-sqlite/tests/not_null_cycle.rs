//! Two tables whose foreign keys reference each other with NOT NULL columns: no insert order
//! exists. The cycle is left out of the load order at one foreign key, that table loads without
//! per-row checks (SQLite always allows it) and the set-based proof checks the keys after the
//! load: a `full` sync, an `upsert` after changes and verification all work.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::sync::{FK_CHECK, SyncJob, SyncMode};
use dmf_core::{RunRequest, RunStatus, RunSummary};
use dmf_sqlite::SqliteDatabase;

const SCHEMA: &str = "
    CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
        first_book_id INTEGER NOT NULL REFERENCES books (id));
    CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
        author_id INTEGER NOT NULL REFERENCES authors (id));";

/// `statements` in one transaction whose foreign keys are checked at COMMIT.
fn write(path: &Path, statements: &str) {
    connect(path).execute_batch(&format!("BEGIN; PRAGMA defer_foreign_keys = ON; {statements} COMMIT;")).unwrap();
}

/// Every row of both tables, in key order.
fn rows(path: &Path) -> Vec<(i64, String, i64)> {
    let connection = connect(path);
    let mut all = Vec::new();
    for sql in [
        "SELECT id, name, first_book_id FROM authors ORDER BY id",
        "SELECT id, title, author_id FROM books ORDER BY id",
    ] {
        let mut statement = connection.prepare(sql).unwrap();
        let read = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        all.extend(read.map(Result::unwrap));
    }
    all
}

fn job(source: &Path, target: &Path, mode: SyncMode) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .engine(engine(2))
}

async fn sync(source: &Path, target: &Path, mode: SyncMode) -> RunSummary {
    job(source, target, mode).run(RunRequest::all().force()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_null_cycle_loads_upserts_and_verifies() {
    let dir = Dir::new("not-null-cycle");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source).execute_batch(SCHEMA).unwrap();
    connect(&target).execute_batch(SCHEMA).unwrap();
    write(
        &source,
        "INSERT INTO authors VALUES (1, 'Ann', 10), (2, 'Bo', 20), (3, 'Cy', 10);
         INSERT INTO books VALUES (10, 'First', 1), (11, 'Second', 1), (20, 'Third', 2), (21, 'Fourth', 3);",
    );

    let plan = job(&source, &target, SyncMode::Full).plan().await.unwrap();
    let unordered: usize = plan.tables.iter().map(|t| t.unordered.len()).sum();
    assert_eq!(unordered, 1, "the cycle is broken at one foreign key");

    let full = sync(&source, &target, SyncMode::Full).await;
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    let fk_line = |summary: &RunSummary| {
        summary.preflight.outcomes.iter().find(|c| c.check == FK_CHECK).expect("an FK line").detail.clone()
    };
    assert!(fk_line(&full).contains("NOT NULL foreign-key cycle"), "{}", fk_line(&full));
    assert!(rows(&target) == rows(&source), "the full sync copies the cycle exactly");

    // New rows on both sides of the cycle, referencing each other, and a changed row.
    write(
        &source,
        "INSERT INTO authors VALUES (4, 'Di', 40); INSERT INTO books VALUES (40, 'Fifth', 4);
         UPDATE books SET title = 'First, revised' WHERE id = 10;",
    );
    let upsert = sync(&source, &target, SyncMode::Upsert).await;
    assert_eq!(upsert.status, RunStatus::Completed, "{upsert}");
    assert!(fk_line(&upsert).contains("NOT NULL foreign-key cycle"), "{}", fk_line(&upsert));
    assert!(rows(&target) == rows(&source), "the upsert copies the new cycle rows");

    let plan = job(&source, &target, SyncMode::Diff).plan().await.unwrap();
    let report = dmf_core::quality::compare(
        &SqliteDatabase::open(&source).unwrap(),
        &SqliteDatabase::open(&target).unwrap(),
        &plan,
        5,
    )
    .await
    .unwrap();
    assert!(report.is_equal(), "{report}");
}
