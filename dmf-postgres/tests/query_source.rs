//! Query sources on PostgreSQL: a JOIN keyset-paginated on a column of its result, resumed
//! after a kill mid-table to an exact copy; mistakes named before the first batch.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::TestDb;
use dmf_testkit::conformance::query_source;

const TABLES: &str = "CREATE TABLE qs_customers (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE qs_addresses (customer_id bigint PRIMARY KEY, city text NOT NULL);
    CREATE TABLE qs_copy (id bigint PRIMARY KEY, name text NOT NULL, city text NOT NULL);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_resumes_after_a_kill_to_an_exact_copy() {
    let db = TestDb::create("query_source").await;
    db.client().await.batch_execute(TABLES).await.unwrap();
    query_source::join_resumes_exactly(db.database().as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_named_before_the_first_batch() {
    let db = TestDb::create("query_source_mistakes").await;
    db.client().await.batch_execute(TABLES).await.unwrap();
    query_source::mistakes_are_named_before_the_first_batch(db.database().as_ref()).await;
}
