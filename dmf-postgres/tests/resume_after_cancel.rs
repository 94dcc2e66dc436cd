//! A full sync stopped in the middle resumes from the checkpoint committed with its last
//! batch: the target holds exactly the rows up to that checkpoint, and the next run loads
//! exactly the rest, no row lost or loaded twice. The run is stopped while a chosen load waits
//! at a gate ([`FaultyDatabase`] on the target), not when a progress event happens to arrive.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use dmf_core::sync::{SyncMode, decode_key_position};
use dmf_core::{CancellationToken, MigrationStatus, RunRequest, RunStatus, Value};
use dmf_postgres::PgDatabase;
use dmf_testkit::{FaultPlan, FaultyDatabase, Gate, cancel_at};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_full_sync_resumes_exactly_where_its_last_batch_committed() {
    let (source_db, target_db) =
        (common::TestDb::create("resume_src").await, common::TestDb::create("resume_dst").await);
    let ddl =
        "CREATE TABLE events (region text NOT NULL, seq bigint NOT NULL, payload text, PRIMARY KEY (region, seq))";
    let source_client = source_db.client().await;
    source_client.batch_execute(ddl).await.unwrap();
    source_client
        .batch_execute(
            "INSERT INTO events SELECT (ARRAY['b', 'B', 'é', '🦀'])[1 + g % 4], g, md5(g::text) FROM generate_series(1, 30000) g",
        )
        .await
        .unwrap();
    let target_client = target_db.client().await;
    target_client.batch_execute(ddl).await.unwrap();
    let (source, target) = (source_db.database(), target_db.database());

    // Stop the run while the table's fifth load (rows 2,001 to 2,500) waits at a gate: that
    // load commits, the sixth never starts.
    let gate = Gate::new();
    let gated = FaultyDatabase::new(PgDatabase::lazy(&target_db.url).unwrap())
        .faults_for("events", FaultPlan::new().hold_before(5, &gate));
    let orchestrator = common::orchestrator(&source, &Arc::new(gated), SyncMode::Full).await;
    let cancel = CancellationToken::new();
    let run = orchestrator.run(RunRequest::all().with_cancel(cancel.clone()));
    let stopped = cancel_at(&gate, &cancel, run).await.unwrap_or_else(|unreached| panic!("{unreached}")).unwrap();
    assert_eq!(stopped.status, RunStatus::Failed, "{stopped}");
    let record = stopped.migration("public.events").unwrap();
    assert_eq!(record.status, MigrationStatus::Cancelled, "{stopped}");
    let first = record.counts.inserted;
    assert_eq!(first, 2500, "stopped after the load in flight");

    // The target holds exactly the rows up to the checkpoint.
    let position: String = target_client
        .query_one("SELECT position FROM dmf.checkpoints WHERE migration = 'public.events'", &[])
        .await
        .unwrap()
        .get(0);
    let key = decode_key_position(&dmf_core::Position::new(position)).unwrap();
    let (Value::Text(region), Value::Int(seq)) = (&key[0], &key[1]) else { panic!("key {key:?}") };
    let up_to: i64 = source_client
        .query_one(
            "SELECT count(*) FROM events WHERE (region COLLATE \"C\", seq) <= ($1 COLLATE \"C\", $2)",
            &[region, seq],
        )
        .await
        .unwrap()
        .get(0);
    let loaded: i64 = target_client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!((loaded, loaded as u64), (up_to, first));

    // The next run (not forced) resumes: the tables are not emptied again, the rest is loaded.
    let resumed = common::sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(resumed.status, RunStatus::Completed, "{resumed}");
    let record = resumed.migration("public.events").unwrap();
    assert!(record.resumed);
    assert_eq!(first + record.counts.inserted, 30_000);
    assert_eq!(resumed.migration("clear target tables").unwrap().status, MigrationStatus::Skipped);
    let fingerprint = "SELECT count(*), md5(string_agg(e::text, '|' ORDER BY e::text)) FROM events e";
    let (expected, actual) = (
        source_client.query_one(fingerprint, &[]).await.unwrap(),
        target_client.query_one(fingerprint, &[]).await.unwrap(),
    );
    assert_eq!((expected.get::<_, i64>(0), expected.get::<_, String>(1)), (actual.get(0), actual.get(1)));
}
