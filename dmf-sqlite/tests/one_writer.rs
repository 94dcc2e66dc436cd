//! Two syncs into one SQLite target at once: exactly one writes, the other is refused naming
//! the holder of the target's lease; with a wait, the second runs after the first and both
//! runs are recorded. A rollback of the running run is refused. Driven by gates, not timing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{Error, LeaseOptions, RunRequest};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate};

/// A full sync whose load into `customers` stops at `gate` before its second batch.
fn held_sync(
    source: &std::path::Path,
    target: &std::path::Path,
    gate: &Gate,
) -> SyncJob<SqliteDatabase, FaultyDatabase<SqliteDatabase>> {
    let target = FaultyDatabase::new(SqliteDatabase::open(target).unwrap())
        .faults_for("customers", FaultPlan::new().hold_before(2, gate));
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(target), SyncMode::Full).engine(engine(250))
}

fn plain_sync(
    source: &std::path::Path,
    target: &std::path::Path,
    lease: LeaseOptions,
) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    SyncJob::new(
        Arc::new(SqliteDatabase::open(source).unwrap()),
        Arc::new(SqliteDatabase::open(target).unwrap()),
        SyncMode::Full,
    )
    .engine(engine(250))
    .lease(lease)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_into_a_busy_target_is_refused_naming_the_holder() {
    let dir = Dir::new("one-writer");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 2_000);
    empty_database(&target);

    let gate = Gate::new();
    let first = held_sync(&source, &target, &gate);
    let running = tokio::spawn(async move { first.run(RunRequest::all()).await });
    gate.reached().await;

    let loaded_meanwhile = count(&target, "customers");
    let refused = plain_sync(&source, &target, LeaseOptions::default())
        .run(RunRequest::all().force())
        .await
        .expect_err("the target is in use");
    let Error::LeaseHeld { holder, .. } = &refused else { panic!("not refused for the lease: {refused}") };
    assert_eq!(holder.run, Some(dmf_core::RunId(1)), "{refused}");
    assert!(refused.to_string().contains("run 1 on host"), "{refused}");
    assert_eq!(count(&target, "customers"), loaded_meanwhile, "the refused sync wrote nothing (no --restart emptying)");

    let rollback = plain_sync(&source, &target, LeaseOptions::default()).rollback(Some(dmf_core::RunId(1)), true).await;
    let message = rollback.expect_err("a running run cannot be rolled back").to_string();
    assert!(message.contains("rollback refused") && message.contains("in use by run 1"), "{message}");

    gate.open();
    let summary = running.await.unwrap().unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(content(&target), content(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_wait_the_second_sync_runs_after_the_first_and_both_are_recorded() {
    let dir = Dir::new("one-writer-wait");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 2_000);
    empty_database(&target);

    let gate = Gate::new();
    let first = held_sync(&source, &target, &gate);
    let running = tokio::spawn(async move { first.run(RunRequest::all()).await });
    gate.reached().await;

    // Whether the second sync finds the lease held and waits, or (on a slow start) claims it
    // after the first ended, the outcome must be the same; that it waits is shown with the
    // in-memory store's refusal event in dmf-core/tests/leases.rs.
    let waiting = LeaseOptions { wait: Duration::from_secs(600), ..LeaseOptions::default() };
    let second = plain_sync(&source, &target, waiting);
    let queued = tokio::spawn(async move { second.run(RunRequest::all().force()).await });
    gate.open();

    let (first, second) = (running.await.unwrap().unwrap(), queued.await.unwrap().unwrap());
    assert!(first.succeeded() && second.succeeded(), "{first}\n{second}");
    assert_eq!((first.run.0, second.run.0), (1, 2));
    let connection = rusqlite::Connection::open(&target).unwrap();
    let statuses: Vec<(i64, String, String, Option<String>)> = connection
        .prepare("SELECT id, status, started_at, finished_at FROM dmf_runs ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(statuses.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(), ["completed", "completed"]);
    assert!(
        statuses[1].2.as_str() >= statuses[0].3.as_deref().unwrap(),
        "the second started after the first ended: {statuses:?}"
    );
    assert_eq!(content(&target), content(&source));
}
