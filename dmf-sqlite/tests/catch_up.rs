//! A sync while the source keeps changing: a writer inserts customers with their orders during
//! the copy. Orders whose customer arrived after the customers table was copied are deferred,
//! not rejected; the catch-up pass loads them after their parents; the run completes, and after
//! a second pass the target equals the source.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Dir, connect};
use dmf_core::sync::{CATCH_UP, ForeignKeyChecks, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest};
use dmf_sqlite::SqliteDatabase;

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

/// Inserts a customer and an order of theirs, in one transaction, every few milliseconds.
fn writer(path: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut connection = connect(&path);
        let mut next = 500_000;
        while !stop.load(Ordering::Relaxed) {
            let tx = connection.transaction().unwrap();
            tx.execute("INSERT INTO customers VALUES (?1, 'late ' || ?1)", [next]).unwrap();
            tx.execute("INSERT INTO orders VALUES (?1 + 2000000, ?1, 1)", [next]).unwrap();
            tx.commit().unwrap();
            next += 1;
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        next - 500_000
    })
}

fn job(source: &Path, target: &Path, mode: SyncMode, rate: Option<u32>) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    job_checking(source, target, mode, rate, ForeignKeyChecks::Auto)
}

fn job_checking(
    source: &Path,
    target: &Path,
    mode: SyncMode,
    rate: Option<u32>,
    checks: ForeignKeyChecks,
) -> SyncJob<SqliteDatabase, SqliteDatabase> {
    let mut engine = EngineConfig::builder().batch_size(200).reject_limit(RejectLimit::Count(0));
    if let Some(rate) = rate {
        engine = engine.max_rows_per_sec(rate);
    }
    SyncJob::new(Arc::new(SqliteDatabase::open(source).unwrap()), Arc::new(SqliteDatabase::open(target).unwrap()), mode)
        .engine(engine.build().unwrap())
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

        let stop = Arc::new(AtomicBool::new(false));
        let writes = writer(&source, Arc::clone(&stop));
        // Slow reads (9,000 rows at 15,000 rows/s) so that the writer works during the copy.
        let summary = job_checking(&source, &target, mode.clone(), Some(15_000), checks)
            .run(RunRequest::all().force())
            .await
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        let written = writes.join().unwrap();
        assert!(summary.succeeded(), "{mode}: the run completes despite the writer\n{summary}");
        assert!(written > 20, "{mode}: the writer wrote during the copy ({written} pairs)");
        let orders = summary.migration("orders").unwrap().counts;
        if mode == SyncMode::Full && checks == ForeignKeyChecks::Auto {
            // The fast path loads the early orders, the proof finds them orphaned, the
            // catch-up pass brings their customers.
            assert_eq!(orders.deferred, 0, "{summary}");
        } else {
            assert!(orders.deferred > 0, "{mode}: orders arrived before their customers\n{summary}");
        }
        assert_eq!(orders.rejected, 0);
        let catch_up = summary.migration(CATCH_UP).unwrap().counts;
        assert!(catch_up.inserted > 0, "{mode}: the catch-up pass loaded the late rows\n{summary}");

        // Writer stopped: a second pass, then the copy is exact.
        let second = job(&source, &target, SyncMode::Upsert, None).run(RunRequest::all().force()).await.unwrap();
        assert!(second.succeeded(), "{second}");
        let check = job(&source, &target, SyncMode::Upsert, None);
        let plan = check.plan().await.unwrap();
        let source_db = SqliteDatabase::open(&source).unwrap();
        let target_db = SqliteDatabase::open(&target).unwrap();
        let report = dmf_core::quality::compare(&source_db, &target_db, &plan, 5).await.unwrap();
        assert!(report.is_equal(), "{mode}: after the second pass\n{report}");
    }
}
