//! dmf-core's control plane on a SQLite file passes dmf-testkit's conformance suite: the run
//! store round trip, checkpoints written as loaders write them, and leases.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use dmf_sqlite::{SqliteConnector, SqliteDatabase};

fn new_database(dir: &common::Dir) -> SqliteDatabase {
    SqliteDatabase::create(dir.file("target.db")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_store_passes_the_conformance_suite() {
    let dir = common::Dir::new("run-store");
    let store = new_database(&dir).sqlite_run_store().unwrap();
    dmf_testkit::conformance::run_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_pass_the_conformance_suite() {
    let dir = common::Dir::new("checkpoints");
    let database = new_database(&dir);
    database.sqlite_run_store().unwrap();
    dmf_testkit::conformance::checkpoints(Arc::new(SqliteConnector::new(database.path().to_path_buf()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_pass_the_conformance_suite() {
    let dir = common::Dir::new("leases");
    let store = new_database(&dir).sqlite_run_store().unwrap();
    dmf_testkit::conformance::leases(&store).await;
}
