//! A sync killed with SIGKILL in the middle of a table: the next run waits for the dead run's
//! lease to expire, marks that run `abandoned`, resumes from its checkpoint and ends equal to
//! the source, with no row duplicated.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dmf_core::sync::SyncMode;
use dmf_core::{LeaseOptions, RunRequest};

/// The child process: runs a full sync and gets killed. Only run by `killed_sync_resumes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a child process by killed_sync_resumes"]
async fn crash_child() {
    let source = std::env::var("DMF_CRASH_SOURCE").expect("run by killed_sync_resumes");
    let target = std::env::var("DMF_CRASH_TARGET").expect("run by killed_sync_resumes");
    let job = dmf_core::sync::SyncJob::new(
        std::sync::Arc::new(dmf_sqlite::SqliteDatabase::open(source).unwrap()),
        std::sync::Arc::new(dmf_sqlite::SqliteDatabase::open(target).unwrap()),
        SyncMode::Full,
    )
    // Slowed to 4,000 rows/s, so that the 20,000 customers take about 5 s: loads are group
    // committed (at the latest 1 s after a group's first batch), so an unthrottled child can
    // load the whole table before the parent ever sees a checkpoint to kill it at.
    .engine(
        dmf_core::EngineConfig::builder()
            .batch_size(20)
            .max_rows_per_sec(4_000)
            .reject_limit(dmf_core::RejectLimit::Count(0))
            .build()
            .unwrap(),
    )
    // A short lease, so that the parent's next run need not wait the default 30 s for it to
    // expire after the kill.
    .lease(LeaseOptions { ttl: Duration::from_secs(2), ..LeaseOptions::default() });
    let _ = job.run(RunRequest::all()).await;
}

fn customers_checkpoint(target: &std::path::Path) -> Option<(Option<String>, bool)> {
    let connection = rusqlite::Connection::open(target).ok()?;
    connection
        .query_row("SELECT position, done FROM dmf_checkpoints WHERE migration = 'customers'", [], |row| {
            Ok((row.get::<_, Option<String>>(0)?, row.get::<_, bool>(1)?))
        })
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sync_resumes() {
    let dir = Dir::new("crash");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 20_000);
    empty_database(&target);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_child", "--nocapture"])
        .env("DMF_CRASH_SOURCE", &source)
        .env("DMF_CRASH_TARGET", &target)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let seen = loop {
        if let Some((Some(position), false)) = customers_checkpoint(&target) {
            break position;
        }
        assert!(child.try_wait().unwrap().is_none(), "the child finished before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(120), "the child never checkpointed customers");
        std::thread::sleep(Duration::from_millis(5));
    };
    // SIGKILL: no destructor, no rollback handler, exactly like a killed process.
    child.kill().unwrap();
    child.wait().unwrap();
    let loaded = count(&target, "customers");
    assert!(loaded > 0 && loaded < 20_000, "killed mid-table: {loaded} rows, checkpoint {seen}");

    // The killed run still holds its lease: the next run waits for it to expire, then marks
    // the killed run abandoned and resumes it.
    let job = dmf_core::sync::SyncJob::new(
        Arc::new(dmf_sqlite::SqliteDatabase::open(&source).unwrap()),
        Arc::new(dmf_sqlite::SqliteDatabase::open(&target).unwrap()),
        SyncMode::Full,
    )
    .engine(engine(250))
    .lease(LeaseOptions { wait: Duration::from_secs(120), ..LeaseOptions::default() });
    let summary = job.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let killed: (String, String) = rusqlite::Connection::open(&target)
        .unwrap()
        .query_row("SELECT status, error FROM dmf_runs WHERE id = 1", [], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    assert_eq!(killed.0, "abandoned", "{killed:?}");
    assert!(killed.1.contains("stopped renewing its lease"), "{killed:?}");
    let customers = summary.migration("customers").unwrap();
    assert!(customers.resumed, "{summary}");
    assert!(customers.counts.read < 20_000, "resumed from the checkpoint, not from the start: {summary}");
    assert_eq!(customers.counts.read as i64 + loaded, 20_000, "{summary}");
    assert_eq!(content(&target), content(&source));
}
