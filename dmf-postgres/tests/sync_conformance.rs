//! Whole syncs between PostgreSQL databases pass dmf-testkit's sync conformance suite: undo and
//! rollback, rollbacks refused, quality rules and lost COMMIT answers. Each scenario works in
//! databases of its own on the server of `DMF_TEST_PG_URL`, dropped when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use dmf_core::catalog::TableName;
use dmf_core::control::SqlConnector;
use dmf_postgres::PgDatabase;
use dmf_testkit::conformance::sync::{self, SyncFixture};

const SCHEMA: &str = "
CREATE TABLE public.parents (id integer PRIMARY KEY, name varchar(100) NOT NULL, score integer);
CREATE TABLE public.children (
    id integer PRIMARY KEY,
    parent_id integer NOT NULL CONSTRAINT children_parent_id_fkey REFERENCES public.parents (id),
    note text
);";

/// The suite's tables in schema `public` of new databases, dropped with the fixture.
#[derive(Default)]
struct Databases(Mutex<Vec<common::TestDb>>);

impl SyncFixture for Databases {
    type Database = PgDatabase;

    async fn database(&self, label: &str) -> PgDatabase {
        let db = common::TestDb::create(label).await;
        db.client().await.batch_execute(SCHEMA).await.unwrap();
        let database = PgDatabase::lazy(&db.url).unwrap();
        self.0.lock().unwrap().push(db);
        database
    }

    fn connector(&self, database: &PgDatabase) -> Arc<dyn SqlConnector> {
        Arc::new(database.control_connector())
    }

    fn table(&self, name: &str) -> TableName {
        TableName::new(Some("public"), name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undo_and_rollback_pass_the_conformance_suite() {
    sync::undo_rollback(&Databases::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_refusals_pass_the_conformance_suite() {
    sync::rollback_refusals(&Databases::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_pass_the_conformance_suite() {
    sync::rules(&Databases::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_commit_answers_pass_the_conformance_suite() {
    sync::lost_commit_answer(&Databases::default()).await;
}
