//! Databases opened by URL with [`dmf::open`], and so handled as [`AnyDatabase`]s, pass
//! dmf-testkit's sync conformance suite exactly as the adapters' own types do (their crates run
//! the same scenarios on those): undo and rollback, rollbacks refused, quality rules and lost
//! COMMIT answers (with a `FaultyDatabase` wrapped around the erased target), on SQLite files
//! and on PostgreSQL databases of the server of `DMF_TEST_PG_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../dmf-sqlite/tests/common/mod.rs"]
mod lite;
#[path = "../dmf-postgres/tests/common/mod.rs"]
mod pg;

use std::sync::{Arc, Mutex};

use dmf::postgres::PgDatabase;
use dmf::sqlite::{SqliteConnector, SqliteDatabase};
use dmf_core::catalog::TableName;
use dmf_core::control::SqlConnector;
use dmf_core::sync::AnyDatabase;
use dmf_testkit::conformance::sync::{self, SyncFixture};

/// The suite's tables in SQLite files of a temporary directory, opened by `sqlite://` URLs.
struct Files(lite::Dir);

impl SyncFixture for Files {
    type Database = AnyDatabase;

    async fn database(&self, label: &str) -> AnyDatabase {
        let path = self.0.file(&format!("{label}.db"));
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE parents (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, score INTEGER);
                 CREATE TABLE children (
                     id INTEGER PRIMARY KEY,
                     parent_id INTEGER NOT NULL REFERENCES parents (id),
                     note TEXT);",
            )
            .unwrap();
        dmf::open(&format!("sqlite://{}", path.display())).await.unwrap()
    }

    fn connector(&self, database: &AnyDatabase) -> Arc<dyn SqlConnector> {
        let sqlite = database.downcast_ref::<SqliteDatabase>().expect("dmf::open gave a SQLite database");
        Arc::new(SqliteConnector::new(sqlite.path().to_path_buf()))
    }

    fn table(&self, name: &str) -> TableName {
        TableName::new(None, name)
    }
}

fn files(label: &str) -> Files {
    Files(lite::Dir::new(&format!("any-{label}")))
}

/// The suite's tables in schema `public` of new PostgreSQL databases, opened by their
/// `postgres://` URLs and dropped with the fixture.
#[derive(Default)]
struct Databases(Mutex<Vec<pg::TestDb>>);

impl SyncFixture for Databases {
    type Database = AnyDatabase;

    async fn database(&self, label: &str) -> AnyDatabase {
        let db = pg::TestDb::create(&format!("any_{label}")).await;
        db.client()
            .await
            .batch_execute(
                "CREATE TABLE public.parents (id integer PRIMARY KEY, name varchar(100) NOT NULL, score integer);
                 CREATE TABLE public.children (
                     id integer PRIMARY KEY,
                     parent_id integer NOT NULL CONSTRAINT children_parent_id_fkey REFERENCES public.parents (id),
                     note text);",
            )
            .await
            .unwrap();
        let database = dmf::open(&db.url).await.unwrap();
        self.0.lock().unwrap().push(db);
        database
    }

    fn connector(&self, database: &AnyDatabase) -> Arc<dyn SqlConnector> {
        let postgres = database.downcast_ref::<PgDatabase>().expect("dmf::open gave a PostgreSQL database");
        Arc::new(postgres.control_connector())
    }

    fn table(&self, name: &str) -> TableName {
        TableName::new(Some("public"), name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_by_url_passes_undo_and_rollback() {
    sync::undo_rollback(&files("undo")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_by_url_passes_rollback_refusals() {
    sync::rollback_refusals(&files("refusals")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_by_url_passes_rules() {
    sync::rules(&files("rules")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_by_url_passes_lost_commit_answers() {
    sync::lost_commit_answer(&files("lost")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_opened_by_url_passes_undo_and_rollback() {
    sync::undo_rollback(&Databases::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_opened_by_url_passes_rollback_refusals() {
    sync::rollback_refusals(&Databases::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_opened_by_url_passes_rules() {
    sync::rules(&Databases::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_opened_by_url_passes_lost_commit_answers() {
    sync::lost_commit_answer(&Databases::default()).await;
}
