//! A failed `upsert` followed by a `full` run on PostgreSQL: the full run does not resume the
//! upsert (which would skip emptying the tables and fail on duplicate keys); it says what the
//! unfinished run planned, starts from the beginning, empties the tables and loads everything,
//! and the target ends equal to the source.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use dmf_core::orchestrator::LastRun;
use dmf_core::sync::{CLEAR, SyncJob, SyncMode};
use dmf_core::{EngineConfig, MigrationName, RunRequest, RunStatus};
use dmf_postgres::PgDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_after_a_failed_upsert_starts_from_the_beginning() {
    let (source_db, target_db) = common::rich_pair("switch").await;
    let (source, target) = (source_db.database(), target_db.database());
    let engine = || EngineConfig::builder().batch_size(200).build().unwrap();
    let first = SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Full)
        .engine(engine())
        .run(RunRequest::all())
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    source_db.client().await.batch_execute(common::CHANGES).await.unwrap();

    // The upsert stops at its second batch of order lines, the tables before them written.
    let faulty = Arc::new(
        FaultyDatabase::new(PgDatabase::lazy(&target_db.url).unwrap())
            .faults_for_migration("shop.order_lines", FaultPlan::new().fail_at(2)),
    );
    let failed = SyncJob::new(Arc::clone(&source), faulty, SyncMode::Upsert)
        .engine(engine())
        .jobs(1)
        .run(RunRequest::all().force())
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed, "{failed}");

    let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Full).engine(engine()).jobs(2);
    let orchestrator = job.orchestrator(&job.plan().await.unwrap()).await.unwrap();
    let last = orchestrator.last_run().await.unwrap();
    match &last {
        LastRun::Different { run, only_here, .. } => {
            assert_eq!(run.id, failed.run);
            assert!(only_here.contains(&MigrationName::new(CLEAR)), "{last}");
        }
        other => panic!("the failed upsert is not resumed by a full sync: {other:?}"),
    }
    assert!(last.to_string().contains("starting this one from the beginning"), "{last}");
    let full = orchestrator.run(last.request(false)).await.unwrap();
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    assert!(full.migration(CLEAR).is_some_and(|m| m.counts.deleted > 0), "the tables were emptied\n{full}");
    assert!(full.migrations.iter().all(|m| !m.resumed && m.counts.rejected == 0), "{full}");
    let source_client = source_db.client().await;
    let target_client = target_db.client().await;
    assert_eq!(common::fingerprints(&target_client).await, common::fingerprints(&source_client).await);
    let plan = job.plan().await.unwrap();
    let report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 5).await.unwrap();
    assert!(report.passed(), "{report}");
}
