//! Rejects at the cost of the row: a batch with a duplicate and a NOT NULL violation among
//! 5,000 rows loads its 4,998 good rows in one pass (each bad row fails its own statement
//! inside the batch's transaction).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::Dir;
use dmf_sqlite::SqliteDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dirty_batch_loads_in_one_pass() {
    let dir = Dir::new("row-rejects");
    let path = dir.file("people.db");
    let db = SqliteDatabase::create(&path).unwrap();
    db.execute_batch("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)").unwrap();
    dmf_testkit::conformance::row_rejects::one_pass(&db).await;
    assert_eq!(common::count(&path, "people"), 4998);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_or_skip_counts_existing_keys_as_skipped_in_the_database() {
    let dir = Dir::new("insert-or-skip");
    let path = dir.file("people.db");
    let db = SqliteDatabase::create(&path).unwrap();
    db.execute_batch("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)").unwrap();
    dmf_testkit::conformance::row_rejects::insert_or_skip(&db).await;
    assert_eq!(common::count(&path, "people"), 1000);
}
