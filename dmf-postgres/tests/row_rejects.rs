//! Rejects at the cost of the row, and insert-or-skip, on PostgreSQL: unique conflicts left out
//! by one set-based insert's conflict clause, other refused rows isolated on the server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::TestDb;

const PEOPLE: &str = "CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL UNIQUE)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dirty_batch_loads_in_one_pass() {
    let db = TestDb::create("row_rejects").await;
    db.client().await.batch_execute(PEOPLE).await.unwrap();
    dmf_testkit::conformance::row_rejects::one_pass(db.database().as_ref()).await;
    let count: i64 = db.client().await.query_one("SELECT count(*) FROM people", &[]).await.unwrap().get(0);
    assert_eq!(count, 4998);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_or_skip_counts_existing_keys_as_skipped_in_the_database() {
    let db = TestDb::create("insert_or_skip").await;
    db.client().await.batch_execute(PEOPLE).await.unwrap();
    dmf_testkit::conformance::row_rejects::insert_or_skip(db.database().as_ref()).await;
    let count: i64 = db.client().await.query_one("SELECT count(*) FROM people", &[]).await.unwrap().get(0);
    assert_eq!(count, 1000);
}
