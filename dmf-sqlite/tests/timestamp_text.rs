//! SQLite timestamps keep their text form: a whole second is written without `.000000`, as
//! SQLite's own `datetime()` writes it, and pages of a table read in timestamp order start
//! exactly after the last row's stored text, so rows whose timestamps tie across a page
//! boundary are neither read again forever nor skipped, whatever their spelling.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{RunRequest, RunStatus};
use dmf_sqlite::SqliteDatabase;

const SCHEMA: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL, wake TIME, note TEXT);
CREATE TABLE ticks (at TIMESTAMP PRIMARY KEY, note TEXT);";

fn job(source: &Path, target: &Path, mode: SyncMode) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .engine(engine(3))
}

fn texts(path: &Path, query: &str) -> Vec<(String, Option<String>)> {
    let connection = connect(path);
    let mut statement = connection.prepare(query).unwrap();
    statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_keep_their_text_and_ties_page_exactly_whatever_their_spelling() {
    let dir = Dir::new("timestamp-text");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    // Ten rows at one instant written by datetime() (no fraction), ten at the same instant as
    // an older DMF wrote it (`.000000`), ten a second later with a fraction; pages of three.
    connect(&source)
        .execute_batch(&format!(
            "{SCHEMA}
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30)
             INSERT INTO events SELECT n,
                 CASE WHEN n <= 10 THEN '2024-01-02 03:04:05' WHEN n <= 20 THEN '2024-01-02 03:04:05.000000'
                      ELSE '2024-01-02 03:04:06.250000' END,
                 CASE WHEN n % 2 = 0 THEN '07:30:00' ELSE '07:30:00.5' END, 'e' || n FROM g;
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 8)
             INSERT INTO ticks SELECT datetime('2024-01-02 03:04:05', '+' || n || ' seconds'), 't' || n FROM g;"
        ))
        .unwrap();
    connect(&target).execute_batch(SCHEMA).unwrap();

    let full = job(&source, &target, SyncMode::Full).run(RunRequest::all()).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    assert_eq!(count(&target, "events"), 30);
    let whole = texts(&target, "SELECT DISTINCT at, NULL FROM events ORDER BY at");
    assert_eq!(
        whole,
        [("2024-01-02 03:04:05".to_owned(), None), ("2024-01-02 03:04:06.250000".to_owned(), None)],
        "a whole second gains no fraction; one instant, one text"
    );
    assert_eq!(
        texts(&target, "SELECT DISTINCT wake, NULL FROM events ORDER BY wake"),
        [("07:30:00".to_owned(), None), ("07:30:00.500000".to_owned(), None)]
    );
    assert_eq!(
        texts(&target, "SELECT at, note FROM ticks ORDER BY at"),
        texts(&source, "SELECT at, note FROM ticks ORDER BY at"),
        "a timestamp key written by datetime() comes back as the same text"
    );

    // Incremental by `at`, in pages of three across the tie of twenty rows at one instant:
    // every row read once (a bound `…:05` against stored `…:05.000000` read the tie again on
    // every page; `…:05.000000` against `…:05` skipped the rest of it).
    let incremental = SyncMode::Incremental { column: "at".into(), propagate_deletes: false };
    let first = job(&source, &target, incremental.clone()).run(RunRequest::all().force()).await.unwrap();
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    let events = first.migration("events").unwrap();
    assert_eq!((events.counts.read, events.counts.unchanged), (30, 30), "{first}");

    // Verification calls the two spellings of one instant equal.
    let source_db = Arc::new(SqliteDatabase::open(&source).unwrap());
    let target_db = Arc::new(SqliteDatabase::open(&target).unwrap());
    let plan = job(&source, &target, SyncMode::Diff).plan().await.unwrap();
    let report = dmf_core::quality::verify(source_db.as_ref(), target_db.as_ref(), &plan, &[], 5).await.unwrap();
    assert!(report.passed(), "{report}");
}
