//! SQLite → SQLite sync of a schema with composite keys, a self-reference, a foreign-key cycle,
//! reserved and quoted names, unicode, long text, blobs, exact decimals, timestamps, UUIDs and
//! JSON: every mode leaves the target equal to the source, compared without DMF's code.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::sync::SyncMode;
use dmf_core::{MigrationStatus, RunRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_copies_every_table_exactly() {
    let dir = Dir::new("full");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 1500);
    empty_database(&target);

    let summary = sync(&source, &target, SyncMode::Full, RunRequest::all()).await;
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(content(&target), content(&source));
    let employees = summary.migration("employees").unwrap();
    assert_eq!(employees.counts.inserted, 150);
    assert_eq!(summary.migration("employees (deferred keys)").unwrap().status, MigrationStatus::Completed);
    assert_eq!(summary.migration("teams (deferred keys)").unwrap().status, MigrationStatus::Completed);

    // A second full sync replaces the content: still equal, nothing doubled.
    let again = sync(&source, &target, SyncMode::Full, RunRequest::all().force()).await;
    assert!(again.succeeded(), "{again}");
    assert_eq!(content(&target), content(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_rerun_changes_nothing() {
    let dir = Dir::new("upsert");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 600);
    empty_database(&target);
    let first = sync(&source, &target, SyncMode::Upsert, RunRequest::all()).await;
    assert!(first.succeeded(), "{first}");
    assert_eq!(content(&target), content(&source));
    let second = sync(&source, &target, SyncMode::Upsert, RunRequest::all().force()).await;
    assert!(second.succeeded(), "{second}");
    let customers = second.migration("customers").unwrap().counts;
    assert_eq!((customers.inserted, customers.updated, customers.unchanged), (0, 0, 600));
    let totals = second.totals();
    assert_eq!(totals.inserted + totals.deleted, 0, "{second}");
}

/// What `change_source` changed, as the sync's migrations must report it.
fn assert_only_changes_moved(summary: &dmf_core::RunSummary) {
    let counts = |name: &str| summary.migration(name).unwrap_or_else(|| panic!("no migration {name}")).counts;
    let customers = counts("customers");
    assert_eq!((customers.inserted, customers.updated), (12, 15), "{summary}");
    assert_eq!(counts("employees").inserted, 2, "{summary}");
    assert_eq!(counts("orders (deletes)").deleted, 8, "{summary}");
    assert_eq!(counts("players (deletes)").deleted, 3, "{summary}");
    let totals = summary.totals();
    assert_eq!(totals.inserted, 14, "{summary}");
    assert_eq!(totals.deleted, 11, "{summary}");
    // The second pass for deferred keys may rewrite the new employees' manager: at most 2.
    assert!(totals.updated <= 15 + 2, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_moves_only_the_changed_rows() {
    let dir = Dir::new("diff");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 1500);
    empty_database(&target);
    assert!(sync(&source, &target, SyncMode::Full, RunRequest::all()).await.succeeded());

    change_source(&source);
    let summary = sync(&source, &target, SyncMode::Diff, RunRequest::all().force()).await;
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(content(&target), content(&source));
    assert_eq!(
        summary.migration("customers").unwrap().counts.read,
        27,
        "only differing rows are read out of the merge"
    );
    assert_only_changes_moved(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_moves_only_rows_changed_since_the_last_run() {
    let dir = Dir::new("incremental");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 1500);
    empty_database(&target);
    let mode = || SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true };
    let first = sync(&source, &target, mode(), RunRequest::all()).await;
    assert!(first.succeeded(), "{first}");
    assert_eq!(first.migration("customers").unwrap().counts.inserted, 1500);
    assert_eq!(content(&target), content(&source));

    change_source(&source);
    let second = sync(&source, &target, mode(), RunRequest::all().force()).await;
    assert!(second.succeeded(), "{second}");
    assert_eq!(content(&target), content(&source));
    assert_eq!(second.migration("customers").unwrap().counts.read, 27, "{second}");
    assert_only_changes_moved(&second);

    // Nothing changed since: nothing is read.
    let third = sync(&source, &target, mode(), RunRequest::all().force()).await;
    assert_eq!(third.migration("customers").unwrap().counts.read, 0, "{third}");
    assert_eq!(content(&target), content(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_from_full_to_incremental_starts_the_watermark_over() {
    let dir = Dir::new("switch");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 300);
    empty_database(&target);
    assert!(sync(&source, &target, SyncMode::Full, RunRequest::all()).await.succeeded());
    // The full sync's checkpoints are key positions; the incremental extractor must not misread
    // them as watermarks: it reads everything once (all unchanged), then only changes.
    let mode = || SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: false };
    let first = sync(&source, &target, mode(), RunRequest::all().force()).await;
    assert!(first.succeeded(), "{first}");
    let customers = first.migration("customers").unwrap().counts;
    assert_eq!((customers.read, customers.unchanged), (300, 300), "{first}");
    change_source(&source);
    let second = sync(&source, &target, mode(), RunRequest::all().force()).await;
    assert_eq!(
        second.migration("customers").unwrap().counts.read,
        3 + 12,
        "3 updated (ids 42, 142, 242), 12 new: {second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_changed_value_a_missing_row_and_an_extra_row() {
    let dir = Dir::new("verify");
    let (source, target) = (dir.file("source.db"), dir.file("target.db"));
    fill(&mut empty_database(&source), 400);
    empty_database(&target);
    assert!(sync(&source, &target, SyncMode::Full, RunRequest::all()).await.succeeded());
    let job = dmf_core::sync::SyncJob::new(
        std::sync::Arc::new(dmf_sqlite::SqliteDatabase::open(&source).unwrap()),
        std::sync::Arc::new(dmf_sqlite::SqliteDatabase::open(&target).unwrap()),
        SyncMode::Diff,
    );
    let plan = job.plan().await.unwrap();
    let (s, t) =
        (dmf_sqlite::SqliteDatabase::open(&source).unwrap(), dmf_sqlite::SqliteDatabase::open(&target).unwrap());
    let report = dmf_core::quality::compare(&s, &t, &plan, 10).await.unwrap();
    assert!(report.is_equal(), "{report}");
    assert_eq!(report.tables.iter().find(|r| r.table == "customers").unwrap().target_rows, 400);

    connect(&target)
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             UPDATE customers SET balance = '1.0000000001', note = 'second difference' WHERE id = 17;
             DELETE FROM orders WHERE customer_id = 20 AND order_no = 2;
             INSERT INTO \"we\"\"ird\" (\"col\"\"umn\", \"val ue\", updated_at) VALUES (999, 'stray', '2024-01-01');",
        )
        .unwrap();
    let report = dmf_core::quality::compare(&s, &t, &plan, 10).await.unwrap();
    assert!(!report.is_equal());
    let table = |name: &str| report.tables.iter().find(|r| r.table == name).unwrap();
    let customers = table("customers");
    assert_eq!((customers.changed, customers.missing_in_target, customers.extra_in_target), (1, 0, 0));
    assert_eq!(customers.sample[0].key, "id=17");
    // Every differing column is named, in column order.
    assert_eq!(customers.sample[0].columns.len(), 2, "{report}");
    assert!(customers.sample[0].columns[0].starts_with("note: "), "{report}");
    assert!(customers.sample[0].columns[0].ends_with("-> \"second difference\""), "{report}");
    assert!(customers.sample[0].columns[1].starts_with("balance: "), "{report}");
    let orders = table("orders");
    assert_eq!(orders.missing_in_target, 1);
    assert_eq!(orders.sample[0].key, "(customer_id=20, order_no=2)");
    let weird = table("we\"ird");
    assert_eq!(weird.extra_in_target, 1);
    assert_eq!(weird.sample[0].key, "col\"umn=999");
    assert_eq!(report.tables.iter().filter(|r| !r.is_equal()).count(), 3, "{report}");
    let text = report.to_string();
    assert!(text.contains("id=17: changed: note: ") && text.contains("; balance: "), "{text}");
}
