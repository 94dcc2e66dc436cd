//! `diff` mode after changes in the source: the target ends equal to the source, and the
//! counts show that only the changed rows moved (inserted, updated and deleted exactly as
//! changed), text keys included.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::RunStatus;
use dmf_core::sync::SyncMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diff_moves_only_the_rows_that_changed() {
    let (source_db, target_db) = common::rich_pair("diff").await;
    let (source, target) = (source_db.database(), target_db.database());
    let full = common::sync(&source, &target, SyncMode::Full, false).await;
    assert_eq!(full.status, RunStatus::Completed, "{full}");

    let source_client = source_db.client().await;
    source_client.batch_execute(common::CHANGES).await.unwrap();

    let diff = common::sync(&source, &target, SyncMode::Diff, true).await;
    assert_eq!(diff.status, RunStatus::Completed, "{diff}");
    assert_eq!(
        common::fingerprints(&target_db.client().await).await,
        common::fingerprints(&source_client).await,
        "the target equals the source after the diff"
    );

    // (read, inserted, updated, unchanged, deleted): only the changed rows were read from the
    // comparison and written.
    assert_eq!(common::counts(&diff, "shop.customers"), (40, 10, 30, 0, 0));
    assert_eq!(common::counts(&diff, "shop.Order"), (40, 10, 30, 0, 0));
    assert_eq!(common::counts(&diff, "shop.order_lines"), (40, 10, 30, 0, 0));
    assert_eq!(common::counts(&diff, "public.odd \"quoted\" table"), (4, 2, 2, 0, 0));
    assert_eq!(common::counts(&diff, "shop.departments"), (0, 0, 0, 0, 0));
    assert_eq!(common::counts(&diff, "shop.employees"), (0, 0, 0, 0, 0));
    // The deferred self-reference pass re-reads the keys and writes only the 4 new customers
    // that refer to another.
    assert_eq!(common::counts(&diff, "shop.customers (deferred keys)"), (3010, 0, 4, 3006, 0));
    assert_eq!(common::counts(&diff, "shop.departments (deferred keys)"), (50, 0, 0, 50, 0));
    assert_eq!(common::counts(&diff, "shop.order_lines (deletes)"), (20, 0, 0, 0, 20));
    assert_eq!(common::counts(&diff, "shop.Order (deletes)"), (10, 0, 0, 0, 10));
    assert_eq!(common::counts(&diff, "public.odd \"quoted\" table (deletes)"), (2, 0, 0, 0, 2));
    assert_eq!(common::counts(&diff, "shop.customers (deletes)"), (0, 0, 0, 0, 0));

    // A second diff finds nothing at all.
    let again = common::sync(&source, &target, SyncMode::Diff, true).await;
    assert_eq!(again.status, RunStatus::Completed, "{again}");
    let totals = again.totals();
    assert_eq!((totals.inserted, totals.updated, totals.deleted), (0, 0, 0), "{again}");
}
