//! A sync while the source keeps changing: a writer inserts customers with their orders during
//! the copy. Orders whose customer arrived after the customers table was copied are deferred,
//! not rejected; the catch-up pass loads them after their parents; the run completes, and after
//! a second pass the target equals the source.
//!
//! The writer's changes land at chosen points of the copy, not at moments that depend on timing:
//! it takes its turns while a load of the target ([`FaultyDatabase`]) waits at a gate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Dir, connect};
use dmf_core::sync::{CATCH_UP, Database, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, at_gates};

const SCHEMA: &str = "
    CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id), total INTEGER);";

fn create(path: &Path, customers: i64) {
    let connection = connect(path);
    connection.execute_batch(SCHEMA).unwrap();
    connection
        .execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {customers})
             INSERT INTO customers SELECT i, 'customer ' || i FROM n;
             INSERT INTO orders SELECT id, id, id * 10 FROM customers;
             INSERT INTO orders SELECT id + 1000000, id, id FROM customers;"
        ))
        .unwrap();
}

/// Pairs the writer adds at each of its turns.
const PAIRS: i64 = 25;

/// The writer's turn `turn`: inserts [`PAIRS`] customers with an order each, every pair in one
/// transaction (customer ids from 500,000, order ids from 2,500,000, past every key the copy
/// has read so far).
fn write_pairs(path: &Path, turn: usize) {
    let mut connection = connect(path);
    let first = 500_000 + PAIRS * turn as i64;
    for next in first..first + PAIRS {
        let tx = connection.transaction().unwrap();
        tx.execute("INSERT INTO customers VALUES (?1, 'late ' || ?1)", [next]).unwrap();
        tx.execute("INSERT INTO orders VALUES (?1 + 2000000, ?1, 1)", [next]).unwrap();
        tx.commit().unwrap();
    }
}

/// The target, with the two points where the writer takes its turns: while the second load of
/// customers waits (the pairs' customers are still ahead of the copy), and while the first load
/// of orders waits (customers were copied without them, their orders are still ahead).
fn gated_target(target: &Path) -> ([Gate; 2], FaultyDatabase<SqliteDatabase>) {
    let gates = [Gate::new(), Gate::new()];
    let faulty = FaultyDatabase::new(SqliteDatabase::open(target).unwrap())
        .faults_for_migration("customers", FaultPlan::new().hold_before(2, &gates[0]))
        .faults_for_migration("orders", FaultPlan::new().hold_before(1, &gates[1]));
    (gates, faulty)
}

fn job<T: Database>(source: &Path, target: T, mode: SyncMode, checks: ForeignKeyChecks) -> SyncJob<SqliteDatabase, T> {
    let engine = EngineConfig::builder().batch_size(200).reject_limit(RejectLimit::Count(0)).build().unwrap();
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(target), mode)
        .engine(engine)
        .jobs(1)
        .foreign_key_checks(checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_caught_up_and_a_second_pass_makes_the_copy_exact() {
    let auto = ForeignKeyChecks::Auto;
    for (mode, checks) in [
        (SyncMode::Full, auto),
        (SyncMode::Full, ForeignKeyChecks::PerRow),
        (SyncMode::Upsert, auto),
        (SyncMode::Diff, auto),
    ] {
        let dir = Dir::new("catch-up");
        let (source, target) = (dir.file("source.db"), dir.file("target.db"));
        create(&source, 3_000);
        connect(&target).execute_batch(SCHEMA).unwrap();

        // The writer takes its turns while the copy waits at the gates (the pipeline reads at
        // most a few batches ahead of the load, so the new keys are still ahead of the reads).
        let (gates, gated) = gated_target(&target);
        let job = job(&source, gated, mode.clone(), checks);
        let run = job.run(RunRequest::all().force());
        let summary = at_gates(&gates, run, |turn| {
            let source = source.clone();
            async move { tokio::task::spawn_blocking(move || write_pairs(&source, turn)).await.unwrap() }
        })
        .await
        .unwrap_or_else(|unreached| panic!("{mode}: {unreached}"))
        .unwrap();
        assert!(summary.succeeded(), "{mode}: the run completes despite the writer\n{summary}");
        let counts = |name: &str| summary.migration(name).unwrap_or_else(|| panic!("no {name}\n{summary}")).counts;
        assert_eq!(
            counts("customers").read,
            3_000 + PAIRS as u64,
            "{mode}: the first turn's customers are copied\n{summary}"
        );
        let orders = counts("orders");
        assert_eq!(orders.read, 6_000 + 2 * PAIRS as u64, "{mode}: every turn's orders are read\n{summary}");
        let fast_path = mode == SyncMode::Full && checks == ForeignKeyChecks::Auto;
        if fast_path {
            // The fast path loads the second turn's orders, the proof finds them orphaned, the
            // catch-up pass brings their customers.
            assert_eq!(orders.deferred, 0, "{summary}");
        } else {
            assert_eq!(
                orders.deferred, PAIRS as u64,
                "{mode}: the second turn's orders came before their customers\n{summary}"
            );
        }
        assert_eq!(orders.rejected, 0);
        // The second turn's customers, and their orders where they were deferred.
        let late = if fast_path { PAIRS } else { 2 * PAIRS } as u64;
        assert_eq!(counts(CATCH_UP).inserted, late, "{mode}: the catch-up pass loaded the late rows\n{summary}");

        // A second pass, then the copy is exact.
        let second = self::job(&source, SqliteDatabase::open(&target).unwrap(), SyncMode::Upsert, auto)
            .run(RunRequest::all().force())
            .await
            .unwrap();
        assert!(second.succeeded(), "{second}");
        let check = self::job(&source, SqliteDatabase::open(&target).unwrap(), SyncMode::Upsert, auto);
        let plan = check.plan().await.unwrap();
        let source_db = SqliteDatabase::open(&source).unwrap();
        let target_db = SqliteDatabase::open(&target).unwrap();
        let report = dmf_core::quality::compare(&source_db, &target_db, &plan, 5).await.unwrap();
        assert!(report.is_equal(), "{mode}: after the second pass\n{report}");
    }
}
