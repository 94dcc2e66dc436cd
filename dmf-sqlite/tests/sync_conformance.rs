//! Whole syncs between SQLite files pass dmf-testkit's sync conformance suite: undo and
//! rollback, rollbacks refused, quality rules and lost COMMIT answers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::control::SqlConnector;
use dmf_sqlite::{SqliteConnector, SqliteDatabase};
use dmf_testkit::conformance::sync::{self, SyncFixture};

/// The suite's tables in SQLite files of a temporary directory.
struct Files(common::Dir);

const SCHEMA: &str = "
CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, score INTEGER);
CREATE TABLE children (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parents (id),
    note TEXT
);";

impl SyncFixture for Files {
    type Database = SqliteDatabase;

    async fn database(&self, label: &str) -> SqliteDatabase {
        let database = SqliteDatabase::create(self.0.file(&format!("{label}.db"))).unwrap();
        database.execute_batch(SCHEMA).unwrap();
        database
    }

    fn connector(&self, database: &SqliteDatabase) -> Arc<dyn SqlConnector> {
        Arc::new(SqliteConnector::new(database.path().to_path_buf()))
    }

    fn table(&self, name: &str) -> TableName {
        TableName::new(None, name)
    }
}

fn files(label: &str) -> Files {
    Files(common::Dir::new(label))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_and_rollback_pass_the_conformance_suite() {
    sync::undo_rollback(&files("undo")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refusals_pass_the_conformance_suite() {
    sync::rollback_refusals(&files("refusals")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_pass_the_conformance_suite() {
    sync::rules(&files("rules")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commit_answers_pass_the_conformance_suite() {
    sync::lost_commit_answer(&files("lost")).await;
}
