//! `AUTOINCREMENT` counters follow the rows: after a sync each target table declared with
//! `AUTOINCREMENT` has its source's row in `sqlite_sequence` (none when the source's table never
//! handed out a rowid), so the next insert takes the source's next id, never one it handed out
//! before; verification compares them; rolling a run back puts them back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{RunRequest, RunStatus};
use dmf_sqlite::SqliteDatabase;

const SCHEMA: &str = "
CREATE TABLE tickets (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL);
CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
CREATE TABLE plain (id INTEGER PRIMARY KEY, body TEXT);";

fn job(source: &Path, target: &Path, mode: SyncMode) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .engine(engine(10))
        .undo(true)
}

/// `sqlite_sequence` of the user tables (DMF's control tables count their ids too), sorted.
fn counters(path: &Path) -> Vec<(String, i64)> {
    let connection = connect(path);
    let mut statement = connection
        .prepare("SELECT name, seq FROM sqlite_sequence WHERE name NOT LIKE 'dmf\\_%' ESCAPE '\\' ORDER BY name")
        .unwrap();
    statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

fn setup(dir: &Dir) -> (std::path::PathBuf, std::path::PathBuf) {
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    connect(&source)
        .execute_batch(&format!(
            "{SCHEMA}
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 40)
             INSERT INTO tickets (title) SELECT 't' || n FROM g;
             DELETE FROM tickets WHERE id > 35;
             INSERT INTO plain VALUES (1, 'p');"
        ))
        .unwrap();
    // The test environment used its notes counter: the source never did.
    connect(&target)
        .execute_batch(&format!("{SCHEMA} INSERT INTO notes (body) VALUES ('local'); DELETE FROM notes;"))
        .unwrap();
    (source, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_sync_autoincrement_counters_are_the_source_counters() {
    let dir = Dir::new("sequences_full");
    let (source, target) = setup(&dir);
    assert_eq!(counters(&source), [("tickets".to_owned(), 40)], "ids 36 to 40 were handed out and deleted");
    let job = job(&source, &target, SyncMode::Full);
    let labels: Vec<String> = job.plan().await.unwrap().sequences.iter().map(|p| p.target.label()).collect();
    assert_eq!(labels, ["notes.id (identity)", "tickets.id (identity)"], "only AUTOINCREMENT tables have counters");
    let summary = job.run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(counters(&target), counters(&source));
    let sequences = summary.migration("sequences").unwrap().counts;
    assert_eq!((sequences.read, sequences.updated), (2, 2), "{summary}");

    // The next insert takes the source's next id, not one past the largest copied (36).
    let connection = connect(&target);
    connection.execute("INSERT INTO tickets (title) VALUES ('new')", []).unwrap();
    assert_eq!(connection.last_insert_rowid(), 41);
    connection.execute("INSERT INTO notes (body) VALUES ('first')", []).unwrap();
    assert_eq!(connection.last_insert_rowid(), 1);

    let plan = job.plan().await.unwrap();
    let (source_db, target_db) = (SqliteDatabase::open(&source).unwrap(), SqliteDatabase::open(&target).unwrap());
    let report = dmf_core::quality::verify(&source_db, &target_db, &plan, &[], 5).await.unwrap();
    let different: Vec<&str> = report.sequences.iter().filter(|s| !s.is_equal()).map(|s| s.sequence.as_str()).collect();
    assert_eq!(different, ["notes.id (identity)", "tickets.id (identity)"], "the target's own inserts: {report}");
    assert!(!report.is_equal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_a_run_back_puts_the_counters_back() {
    let dir = Dir::new("sequences_undo");
    let (source, target) = setup(&dir);
    let before = counters(&target);
    assert_eq!(before, [("notes".to_owned(), 1)]);
    for mode in [SyncMode::Upsert, SyncMode::Diff] {
        let summary = job(&source, &target, mode.clone()).run(RunRequest::all().force()).await.unwrap();
        assert_eq!(summary.status, RunStatus::Completed, "{summary}");
        assert_eq!(counters(&target), counters(&source), "{mode}");
        job(&source, &target, mode.clone()).rollback(None, false).await.unwrap();
        assert_eq!(counters(&target), before, "{mode}");
        assert_eq!(count(&target, "tickets"), 0, "{mode}");
    }
}
