//! A `full` PostgreSQL → PostgreSQL sync of the rich schema leaves the target equal to the
//! source (compared by PostgreSQL alone), and an `upsert` re-run finds nothing to change.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::RunStatus;
use dmf_core::sync::SyncMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_sync_copies_every_row_exactly_and_an_upsert_rerun_changes_nothing() {
    let (source_db, target_db) = common::rich_pair("full").await;
    let (source, target) = (source_db.database(), target_db.database());
    let target_client = target_db.client().await;
    // Rows already in the target: a full sync replaces them.
    target_client
        .batch_execute(
            "INSERT INTO shop.departments VALUES (999, 'stale', NULL, now());
             INSERT INTO shop.employees VALUES (999, 'stale', 999, now());
             INSERT INTO public.\"odd \"\"quoted\"\" table\" VALUES ('zzz', 'stale', NULL);",
        )
        .await
        .unwrap();

    let full = common::sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(full.status, RunStatus::Completed, "{full}");
    let expected = common::fingerprints(&source_db.client().await).await;
    assert_eq!(common::fingerprints(&target_client).await, expected);
    assert_eq!(expected["shop.customers"].0, 3000);
    assert_eq!(expected["shop.order_lines"].0, 6000);

    assert_eq!(common::counts(&full, "shop.customers"), (3000, 3000, 0, 0, 0));
    assert_eq!(common::counts(&full, "shop.order_lines"), (6000, 6000, 0, 0, 0));
    // The self-reference and the cycle were loaded as NULL first, then filled: 600 customers
    // refer to another, 34 departments have a head.
    assert_eq!(common::counts(&full, "shop.customers (deferred keys)").2, 600);
    assert_eq!(common::counts(&full, "shop.departments (deferred keys)").2, 34);

    // Every migration left a checkpoint marked done, written with its last batch.
    let done: i64 =
        target_client.query_one("SELECT count(*) FROM dmf.checkpoints WHERE done", &[]).await.unwrap().get(0);
    assert_eq!(done, 8, "6 tables and 2 deferred-key passes");

    // The identity's sequence was moved past the copied ids: the target's own inserts work.
    let next: i64 = target_client
        .query_one(
            "INSERT INTO shop.customers (email, name, created_at, updated_at, external_id)
             VALUES ('new@example.com', 'new', now(), now(), gen_random_uuid()) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 3001);
    target_client.batch_execute("DELETE FROM shop.customers WHERE id = 3001").await.unwrap();

    // Same data again, by upsert: everything found equal, nothing written.
    let upsert = common::sync(&source, &target, SyncMode::Upsert, true).await;
    assert_eq!(upsert.status, RunStatus::Completed, "{upsert}");
    for (table, _) in common::TABLES {
        let rows = expected[table].0 as u64;
        assert_eq!(common::counts(&upsert, table), (rows, 0, 0, rows, 0), "{table}");
    }
    assert_eq!(common::counts(&upsert, "shop.customers (deferred keys)"), (3000, 0, 0, 3000, 0));
    assert_eq!(common::counts(&upsert, "shop.departments (deferred keys)"), (50, 0, 0, 50, 0));
    assert_eq!(common::fingerprints(&target_client).await, expected);

    // Both runs are recorded in the target.
    let runs: Vec<(i64, String)> = target_client
        .query("SELECT id, status FROM dmf.runs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(runs, [(1, "completed".to_owned()), (2, "completed".to_owned())]);
}
