//! Syncs from a PostgreSQL source that a writer keeps changing: by default the orders whose
//! customer arrived during the copy are deferred and loaded by the catch-up pass (the run
//! completes, a second pass makes the copy exact); with a snapshot the copy is exactly the
//! snapshot in one pass.
//!
//! The writer's changes land at chosen points of the copy, not at moments that depend on timing:
//! it takes its turns while a load of the target ([`FaultyDatabase`]) waits at a gate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::sync::{CATCH_UP, Database, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest};
use dmf_postgres::PgDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, at_gates};

const SCHEMA: &str = "
    CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), total int);";

async fn pair(label: &str) -> (TestDb, TestDb) {
    let (source, target) =
        (TestDb::create(&format!("{label}_src")).await, TestDb::create(&format!("{label}_dst")).await);
    let client = source.client().await;
    client.batch_execute(SCHEMA).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 3000) g;
             INSERT INTO orders SELECT g, g, g * 10 FROM generate_series(1, 3000) g;
             INSERT INTO orders SELECT g + 1000000, g, g FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    target.client().await.batch_execute(SCHEMA).await.unwrap();
    (source, target)
}

/// Pairs the writer adds at each of its turns.
const PAIRS: i64 = 25;

/// The writer's turn `turn`: inserts [`PAIRS`] customers with an order each, every pair in one
/// transaction (customer ids from 500,000, order ids from 2,500,000, past every key the copy
/// has read so far).
async fn write_pairs(url: &str, turn: usize) {
    let mut client = connect(url).await;
    let first = 500_000 + PAIRS * turn as i64;
    for next in first..first + PAIRS {
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO customers VALUES ($1, 'late')", &[&next]).await.unwrap();
        tx.execute("INSERT INTO orders VALUES ($1::bigint + 2000000, $1, 1)", &[&next]).await.unwrap();
        tx.commit().await.unwrap();
    }
}

/// The gates where the writer takes its turns, planned on `target`: while the second load of
/// customers waits (the pairs' customers are still ahead of the copy), and while the first load
/// of orders waits (customers were copied without them, their orders are still ahead; the
/// pipeline reads at most a few batches ahead of the load).
fn gated<D: Database>(target: D) -> ([Gate; 2], FaultyDatabase<D>) {
    let gates = [Gate::new(), Gate::new()];
    let faulty = FaultyDatabase::new(target)
        .faults_for_migration("public.customers", FaultPlan::new().hold_before(2, &gates[0]))
        .faults_for_migration("public.orders", FaultPlan::new().hold_before(1, &gates[1]));
    (gates, faulty)
}

/// Runs `job` while the writer takes its turns at `gates`.
async fn run_with_writer<S: Database, T: Database>(
    job: &SyncJob<S, T>,
    gates: &[Gate],
    source: &TestDb,
) -> dmf_core::RunSummary {
    at_gates(gates, job.run(RunRequest::all().force()), |turn| write_pairs(&source.url, turn))
        .await
        .unwrap_or_else(|unreached| panic!("{unreached}"))
        .unwrap()
}

fn engine() -> EngineConfig {
    EngineConfig::builder().batch_size(200).reject_limit(RejectLimit::Count(0)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_caught_up_and_a_second_pass_makes_the_copy_exact() {
    let auto = ForeignKeyChecks::Auto;
    for (mode, checks) in [(SyncMode::Full, auto), (SyncMode::Full, ForeignKeyChecks::PerRow), (SyncMode::Diff, auto)] {
        let (source, target) = pair("catch_up").await;
        let (gates, gated_target) = gated(PgDatabase::lazy(&target.url).unwrap());
        let job = SyncJob::new(source.database(), Arc::new(gated_target), mode.clone())
            .engine(engine())
            .jobs(1)
            .foreign_key_checks(checks);
        let summary = run_with_writer(&job, &gates, &source).await;
        assert!(summary.succeeded(), "{mode}: the run completes despite the writer\n{summary}");
        let counts = |name: &str| summary.migration(name).unwrap_or_else(|| panic!("no {name}\n{summary}")).counts;
        let (customers, orders) = (counts("public.customers"), counts("public.orders"));
        assert_eq!(customers.read, 3_000 + PAIRS as u64, "{mode}: the first turn's customers are copied\n{summary}");
        assert_eq!(orders.read, 6_000 + 2 * PAIRS as u64, "{mode}: every turn's orders are read\n{summary}");
        let fast_path = mode == SyncMode::Full && checks == ForeignKeyChecks::Auto;
        if fast_path {
            // The fast path loads the second turn's orders, the proof finds them orphaned, the
            // catch-up pass brings their customers.
            assert_eq!(orders.deferred, 0, "{summary}");
        } else {
            assert_eq!(orders.deferred, PAIRS as u64, "{mode}: the second turn's orders came first\n{summary}");
        }
        assert_eq!(orders.rejected, 0);
        // The second turn's customers, and their orders where they were deferred.
        let late = if fast_path { PAIRS } else { 2 * PAIRS } as u64;
        assert_eq!(counts(CATCH_UP).inserted, late, "{mode}: the catch-up pass loaded the late rows\n{summary}");

        let second = SyncJob::new(source.database(), target.database(), SyncMode::Upsert).engine(engine());
        assert!(second.run(RunRequest::all().force()).await.unwrap().succeeded());
        let plan = second.plan().await.unwrap();
        let report = dmf_core::quality::verify(source.database().as_ref(), target.database().as_ref(), &plan, &[], 5)
            .await
            .unwrap();
        assert!(report.passed(), "{mode}: after the second pass\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sync_copies_the_snapshot_exactly_in_one_pass() {
    let (source, target) = pair("snapshot_sync").await;
    let live = source.database();
    let snapshot: Arc<PgDatabase> = Arc::new(live.snapshot().await.unwrap());
    // The writer takes the same turns as above: the snapshot sees none of them.
    let (gates, gated_target) = gated(PgDatabase::lazy(&target.url).unwrap());
    let job = SyncJob::new(Arc::clone(&snapshot), Arc::new(gated_target), SyncMode::Full).engine(engine()).jobs(1);
    let summary = run_with_writer(&job, &gates, &source).await;
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(summary.migration("public.customers").unwrap().counts.read, 3_000, "{summary}");
    assert_eq!(summary.migration("public.orders").unwrap().counts.read, 6_000, "{summary}");
    assert_eq!(summary.migration("public.orders").unwrap().counts.deferred, 0, "{summary}");
    assert_eq!(summary.migration(CATCH_UP).unwrap().counts, Default::default(), "{summary}");

    let plan = job.plan().await.unwrap();
    let exact = dmf_core::quality::verify(snapshot.as_ref(), target.database().as_ref(), &plan, &[], 5).await.unwrap();
    assert!(exact.passed(), "the target is exactly the snapshot\n{exact}");
    let moved_on = dmf_core::quality::compare(live.as_ref(), target.database().as_ref(), &plan, 5).await.unwrap();
    assert!(!moved_on.is_equal(), "the live source has the writer's rows, the snapshot not");
}
