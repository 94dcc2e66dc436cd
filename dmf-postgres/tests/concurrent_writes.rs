//! Syncs from a PostgreSQL source that a writer keeps changing: by default the orders whose
//! customer arrived during the copy are deferred and loaded by the catch-up pass (the run
//! completes, a second pass makes the copy exact); with a snapshot the copy is exactly the
//! snapshot in one pass.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use dmf_core::sync::{CATCH_UP, Database, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest};
use dmf_postgres::PgDatabase;

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

/// Inserts a customer and an order of theirs, in one transaction, every few milliseconds,
/// until stopped; returns how many pairs it wrote.
fn writer(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut client = connect(&url).await;
        let mut next = 500_000_i64;
        while !stop.load(Ordering::Relaxed) {
            let tx = client.transaction().await.unwrap();
            tx.execute("INSERT INTO customers VALUES ($1, 'late')", &[&next]).await.unwrap();
            tx.execute("INSERT INTO orders VALUES ($1::bigint + 2000000, $1, 1)", &[&next]).await.unwrap();
            tx.commit().await.unwrap();
            next += 1;
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        next - 500_000
    })
}

fn engine(rate: Option<u32>) -> EngineConfig {
    let mut engine = EngineConfig::builder().batch_size(200).reject_limit(RejectLimit::Count(0));
    if let Some(rate) = rate {
        engine = engine.max_rows_per_sec(rate);
    }
    engine.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_caught_up_and_a_second_pass_makes_the_copy_exact() {
    let auto = ForeignKeyChecks::Auto;
    for (mode, checks) in [(SyncMode::Full, auto), (SyncMode::Full, ForeignKeyChecks::PerRow), (SyncMode::Diff, auto)] {
        let (source, target) = pair("catch_up").await;
        let stop = Arc::new(AtomicBool::new(false));
        let writes = writer(source.url.clone(), Arc::clone(&stop));
        let job = SyncJob::new(source.database(), target.database(), mode.clone())
            .engine(engine(Some(15_000)))
            .jobs(1)
            .foreign_key_checks(checks);
        let summary = job.run(RunRequest::all().force()).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        let written = writes.await.unwrap();
        assert!(summary.succeeded(), "{mode}: the run completes despite the writer\n{summary}");
        assert!(written > 20, "{mode}: the writer wrote during the copy ({written} pairs)");
        let orders = summary.migration("public.orders").unwrap().counts;
        if mode == SyncMode::Full && checks == ForeignKeyChecks::Auto {
            // The fast path loads the early orders, the proof finds them orphaned, the
            // catch-up pass brings their customers.
            assert_eq!(orders.deferred, 0, "{summary}");
        } else {
            assert!(orders.deferred > 0, "{mode}: orders arrived before their customers\n{summary}");
        }
        assert_eq!(orders.rejected, 0);
        assert!(summary.migration(CATCH_UP).unwrap().counts.inserted > 0, "{summary}");

        let second = SyncJob::new(source.database(), target.database(), SyncMode::Upsert).engine(engine(None));
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
    let stop = Arc::new(AtomicBool::new(false));
    let writes = writer(source.url.clone(), Arc::clone(&stop));
    let job =
        SyncJob::new(Arc::clone(&snapshot), target.database(), SyncMode::Full).engine(engine(Some(15_000))).jobs(1);
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(writes.await.unwrap() > 20);
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(summary.migration("public.orders").unwrap().counts.deferred, 0, "{summary}");
    assert_eq!(summary.migration(CATCH_UP).unwrap().counts, Default::default(), "{summary}");

    let plan = job.plan().await.unwrap();
    let exact = dmf_core::quality::verify(snapshot.as_ref(), target.database().as_ref(), &plan, &[], 5).await.unwrap();
    assert!(exact.passed(), "the target is exactly the snapshot\n{exact}");
    let moved_on = dmf_core::quality::compare(live.as_ref(), target.database().as_ref(), &plan, 5).await.unwrap();
    assert!(!moved_on.is_equal(), "the live source has the writer's rows, the snapshot not");
}
