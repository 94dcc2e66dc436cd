//! Bad input gives one clear error naming the thing, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{RunRequest, RunStatus, RunStore};
use dmf_sqlite::SqliteDatabase;

fn all_empty(path: &std::path::Path) -> bool {
    TABLES.iter().all(|(table, _)| count(path, table) == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_file_is_named() {
    let dir = Dir::new("missing");
    let missing = dir.file("nope.db");
    let error = SqliteDatabase::open(&missing).unwrap_err();
    assert_eq!(error.to_string(), format!("pre-flight failed: SQLite database `{}` does not exist", missing.display()));
    assert!(!missing.exists(), "opening must not create the file");
    let url = SqliteDatabase::from_url("postgres://x").unwrap_err();
    assert_eq!(url.to_string(), "invalid configuration: `postgres://x` is not a SQLite URL: write sqlite://PATH");
}

#[test]
fn urls_with_a_password_are_refused_without_showing_it() {
    for (url, shown) in [
        ("sqllite://u:S3cret@h/db", "`sqllite://u:***@h/db` is not a SQLite URL"),
        ("postgres://u:S3cret@h/db", "`postgres://u:***@h/db` is not a SQLite URL"),
        ("sqlite://u:S3cret@h/db", "`sqlite://u:***@h/db` holds a password"),
        ("sqlite:u:S3cret@h/db", "`sqlite:***@h/db` holds a password"),
    ] {
        let error = SqliteDatabase::from_url(url).unwrap_err();
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(text.contains(shown), "{url}: {text}");
            assert!(!text.contains("S3cret"), "{url}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_missing_in_the_target_fails_preflight_and_writes_nothing() {
    let dir = Dir::new("missing-table");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 100);
    empty_database(&target).execute_batch("DROP TABLE docs").unwrap();

    let summary = sync(&source, &target, SyncMode::Full, RunRequest::all()).await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.as_deref().unwrap();
    assert!(error.contains("[FAIL] schema consistency"), "{error}");
    assert!(error.contains("docs: missing in the target (a sync never creates tables)"), "{error}");
    assert!(TABLES.iter().filter(|(t, _)| *t != "docs").all(|(table, _)| count(&target, table) == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_column_fails_preflight_naming_it() {
    let dir = Dir::new("incompatible");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 100);
    let connection = connect(&target);
    connection.execute_batch(&SCHEMA.replace("    note TEXT,\n", "")).unwrap();
    drop(connection);

    let summary = sync(&source, &target, SyncMode::Upsert, RunRequest::all()).await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.as_deref().unwrap();
    assert!(error.contains("customers.note: missing in the target; its values would be lost"), "{error}");
    assert!(all_empty(&target));
    // The failed run is on record in the target's control tables, and nothing else is.
    let store = SqliteDatabase::open(&target).unwrap().sqlite_run_store().unwrap();
    let runs = store.runs(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_missing_in_the_source_is_named_before_anything_runs() {
    let dir = Dir::new("missing-source-table");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    empty_database(&source);
    empty_database(&target);
    let job = SyncJob::new(
        Arc::new(SqliteDatabase::open(&source).unwrap()),
        Arc::new(SqliteDatabase::open(&target).unwrap()),
        SyncMode::Full,
    )
    .tables(vec![dmf_core::catalog::TableName::parse("invoices")]);
    let error = job.run(RunRequest::all()).await.unwrap_err();
    assert_eq!(error.to_string(), "schema: table `invoices` is not in the source");
}
