//! Live (needs `DMF_TEST_MSSQL_URL`), Babelfish included: whole syncs between SQL Server
//! databases over the wire pass dmf-testkit's sync conformance suite: undo and rollback,
//! rollbacks refused, quality rules and lost COMMIT answers. Each scenario runs with every
//! upsert strategy the server has (on Babelfish, which has no MERGE, the MERGE-free one), in
//! databases of its own, dropped when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use std::sync::{Arc, Mutex};

use dmf_core::catalog::TableName;
use dmf_core::control::SqlConnector;
use dmf_mssql::{MssqlDatabase, UpsertStrategy};
use dmf_testkit::conformance::sync::{self, SyncFixture};
use live_common::{TestDb, UPSERT_STRATEGIES, server_url};

const SCHEMA: &str = "
CREATE TABLE dbo.parents (id int NOT NULL PRIMARY KEY, name nvarchar(100) NOT NULL, score int NULL);
CREATE TABLE dbo.children (
    id int NOT NULL PRIMARY KEY,
    parent_id int NOT NULL CONSTRAINT children_parent_id_fkey REFERENCES dbo.parents (id),
    note nvarchar(max) NULL
);";

/// The suite's tables in schema `dbo` of new databases on the server, dropped with the
/// fixture; upserts written with `strategy`.
struct Databases {
    url: String,
    strategy: UpsertStrategy,
    created: Mutex<Vec<Arc<TestDb>>>,
}

impl Databases {
    async fn new(test: &str, strategy: UpsertStrategy) -> Self {
        Self { url: server_url(test).await, strategy, created: Mutex::default() }
    }
}

impl SyncFixture for Databases {
    type Database = MssqlDatabase;

    async fn database(&self, label: &str) -> MssqlDatabase {
        let db = TestDb::create(&self.url, label).await;
        db.batch(SCHEMA).await;
        let database = db.upserting(self.strategy).as_ref().clone();
        self.created.lock().unwrap().push(Arc::new(db));
        database
    }

    fn connector(&self, database: &MssqlDatabase) -> Arc<dyn SqlConnector> {
        Arc::new(database.control_connector())
    }

    fn table(&self, name: &str) -> TableName {
        TableName::new(Some("dbo"), name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn undo_and_rollback_pass_the_conformance_suite() {
    for &strategy in UPSERT_STRATEGIES {
        sync::undo_rollback(&Databases::new("sync_undo", strategy).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn rollback_refusals_pass_the_conformance_suite() {
    for &strategy in UPSERT_STRATEGIES {
        sync::rollback_refusals(&Databases::new("sync_refusals", strategy).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn rules_pass_the_conformance_suite() {
    sync::rules(&Databases::new("sync_rules", UPSERT_STRATEGIES[0]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn lost_commit_answers_pass_the_conformance_suite() {
    for &strategy in UPSERT_STRATEGIES {
        sync::lost_commit_answer(&Databases::new("sync_lost", strategy).await).await;
    }
}
