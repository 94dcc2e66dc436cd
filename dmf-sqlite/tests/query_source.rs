//! Query sources on SQLite: a JOIN keyset-paginated on a column of its result, resumed after a
//! kill mid-table to an exact copy; mistakes named before the first batch.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::Dir;
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::conformance::query_source;

fn database(dir: &Dir) -> SqliteDatabase {
    let db = SqliteDatabase::create(dir.file("join.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE qs_customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE qs_addresses (customer_id INTEGER PRIMARY KEY, city TEXT NOT NULL);
         CREATE TABLE qs_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);",
    )
    .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_resumes_after_a_kill_to_an_exact_copy() {
    let dir = Dir::new("query-source");
    query_source::join_resumes_exactly(&database(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_named_before_the_first_batch() {
    let dir = Dir::new("query-source-mistakes");
    query_source::mistakes_are_named_before_the_first_batch(&database(&dir)).await;
}
