//! A batch that committed but whose answer was lost (the load fails with a transient error after
//! its transaction committed, injected by a [`FaultyDatabase`] on the target) is not sent
//! again: the engine asks the loader whether the batch's checkpoint is stored, and it is. The
//! `full` sync completes with the target equal to the source, every row inserted once and
//! nothing rejected, although the target's keys would have refused every row sent twice.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{RunRequest, RunStatus};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_does_not_replay_the_batch() {
    let dir = Dir::new("lost-answer");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 2000);
    empty_database(&target);

    // Batches of 250 rows, then the engine's empty load marking the migration `done`:
    // customers 2,000 rows in 9 loads, orders (on a composite key) 2,001 rows in 10, the 9th of
    // one row. Lost: the answers of the first load, of a middle one and of the last with rows.
    // Planned per migration, so that the loads of the catch-up pass into the same tables
    // (upserts: sent again, they change nothing) are not counted.
    let customers = FaultPlan::new().lose_answer(1).lose_answer(4).lose_answer(8);
    let orders = FaultPlan::new().lose_answer(1).lose_answer(9);
    let faulty = FaultyDatabase::new(SqliteDatabase::open(&target).unwrap())
        .faults_for_migration("customers", customers.clone())
        .faults_for_migration("orders", orders.clone());
    let job = SyncJob::new(Arc::new(SqliteDatabase::open(&source).unwrap()), Arc::new(faulty), SyncMode::Full)
        .engine(engine(250))
        .jobs(2);
    let summary = job.run(RunRequest::all()).await.unwrap();

    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!((customers.answers_lost(), orders.answers_lost()), (3, 2), "the faults happened");
    assert_eq!(customers.calls(), 9, "no load of customers was sent again\n{summary}");
    assert_eq!(orders.calls(), 10, "no load of orders was sent again\n{summary}");
    let counts = |name: &str| summary.migration(name).unwrap_or_else(|| panic!("no migration {name}")).counts;
    assert_eq!((counts("customers").read, counts("customers").inserted), (2000, 2000), "{summary}");
    let order_rows = count(&source, "orders") as u64;
    assert_eq!((counts("orders").read, counts("orders").inserted), (order_rows, order_rows), "{summary}");
    assert!(summary.migrations.iter().all(|m| m.counts.rejected == 0), "nothing rejected\n{summary}");
    let store = SqliteDatabase::open(&target).unwrap().run_store().await.unwrap();
    assert!(store.rejects(summary.run, None, 10, 0).await.unwrap().is_empty(), "nothing in the quarantine");
    assert_eq!(content(&target), content(&source));
}
