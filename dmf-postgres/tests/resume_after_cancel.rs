//! A full sync stopped in the middle resumes from the checkpoint committed with its last
//! batch: the target holds exactly the rows up to that checkpoint, and the next run loads
//! exactly the rest, no row lost or loaded twice.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::sync::{SyncMode, decode_key_position};
use dmf_core::{CancellationToken, MigrationStatus, Phase, RunRequest, RunStatus, Value};

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

    // Stop the run once 2,000 rows of the table were committed.
    let orchestrator = common::orchestrator(&source, &target, SyncMode::Full).await;
    let cancel = CancellationToken::new();
    let mut events = orchestrator.progress().subscribe();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if event.phase == Phase::Loading && event.rows_done >= 2000 {
                    cancel.cancel();
                    return;
                }
            }
        })
    };
    let stopped = orchestrator.run(RunRequest::all().with_cancel(cancel)).await.unwrap();
    stopper.await.unwrap();
    assert_eq!(stopped.status, RunStatus::Failed, "{stopped}");
    let record = stopped.migration("public.events").unwrap();
    assert_eq!(record.status, MigrationStatus::Cancelled, "{stopped}");
    let first = record.counts.inserted;
    assert!((2000..30_000).contains(&first), "stopped midway, after {first} rows");

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
