//! dmf-core's control plane on PostgreSQL passes dmf-testkit's conformance suite: the run
//! store keeps runs, migration records, rejects and checkpoints in the `dmf` control tables
//! with the same semantics as the in-memory store, and checkpoints written as loaders write
//! them are read back, replaced and cleared; leases are claimed, renewed, taken over and released. The tables are created once even when several
//! processes start at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use dmf_core::sync::Database;
use dmf_postgres::PgDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_store_passes_the_conformance_suite() {
    let db = common::TestDb::create("store").await;
    let store = db.database().run_store().await.unwrap();
    dmf_testkit::conformance::run_store(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_pass_the_conformance_suite() {
    let db = common::TestDb::create("checkpoints").await;
    let database = db.database();
    database.create_control_tables().await.unwrap();
    dmf_testkit::conformance::checkpoints(Arc::new(database.control_connector())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_pass_the_conformance_suite() {
    let db = common::TestDb::create("leases").await;
    let store = db.database().run_store().await.unwrap();
    dmf_testkit::conformance::leases(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_tables_are_created_once_when_processes_start_together() {
    let db = common::TestDb::create("race").await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PgDatabase::lazy(&url).unwrap().create_control_tables().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let tables: Vec<String> = db
        .client()
        .await
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'dmf' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["checkpoints", "leases", "migration_runs", "rejects", "runs", "undo_log"]);
}
