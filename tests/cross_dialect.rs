//! SQLite → PostgreSQL → SQLite: the rich schema (composite keys, a self-reference, an FK cycle,
//! reserved and quoted names, unicode and escapes, 1 MB texts, blobs, 38-digit decimals,
//! timestamps with and without time zone, UUIDs, JSON) survives both directions exactly. The
//! final SQLite file is compared with the first using plain rusqlite, the PostgreSQL copy is
//! checked with plain tokio-postgres, and a diff after ~1 % of changes moves only those rows,
//! in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../dmf-sqlite/tests/common/mod.rs"]
mod lite;
#[path = "../dmf-postgres/tests/common/mod.rs"]
mod pg;

use std::sync::Arc;

use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest, RunSummary};
use dmf_postgres::PgDatabase;
use dmf_sqlite::SqliteDatabase;

/// The PostgreSQL twin of `lite::SCHEMA`.
const PG_SCHEMA: &str = r#"
CREATE TABLE customers (
    id bigint PRIMARY KEY, name text NOT NULL, email varchar(200) UNIQUE, note text,
    balance numeric(38,10), created_at timestamp NOT NULL, seen_at timestamptz, ref uuid,
    profile json, photo bytea, updated_at timestamp NOT NULL);
CREATE TABLE employees (
    id bigint PRIMARY KEY, name text NOT NULL, manager_id bigint REFERENCES employees (id),
    updated_at timestamp NOT NULL);
CREATE TABLE orders (
    customer_id bigint NOT NULL REFERENCES customers (id), order_no bigint NOT NULL,
    total numeric(12,2) NOT NULL, placed_on date, updated_at timestamp NOT NULL,
    PRIMARY KEY (customer_id, order_no));
CREATE TABLE teams (id bigint PRIMARY KEY, name text NOT NULL, captain_id bigint, updated_at timestamp NOT NULL);
CREATE TABLE players (
    id bigint PRIMARY KEY, team_id bigint NOT NULL REFERENCES teams (id), name text NOT NULL,
    updated_at timestamp NOT NULL);
ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players (id);
CREATE TABLE "Order" ("Id" bigint PRIMARY KEY, "select" text, "user" text, "CamelCase" bigint, updated_at timestamp NOT NULL);
CREATE TABLE "we""ird" ("col""umn" bigint PRIMARY KEY, "val ue" text, updated_at timestamp NOT NULL);
CREATE TABLE docs (id bigint PRIMARY KEY, body text NOT NULL, updated_at timestamp NOT NULL);
"#;

async fn sync<S: Database, T: Database>(source: Arc<S>, target: Arc<T>, mode: SyncMode) -> RunSummary {
    let engine = EngineConfig::builder().batch_size(300).reject_limit(RejectLimit::Count(0)).build().unwrap();
    let summary =
        SyncJob::new(source, target, mode).engine(engine).jobs(2).run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    summary
}

fn assert_changes_moved(summary: &RunSummary, schema: &str) {
    let counts = |table: &str| {
        let name = format!("{schema}{table}");
        summary.migration(&name).unwrap_or_else(|| panic!("no migration {name} in\n{summary}")).counts
    };
    let customers = counts("customers");
    // `change_source` updates the customers whose id ends in 42 (12 of 1,200) and adds 12.
    assert_eq!((customers.read, customers.inserted, customers.updated), (24, 12, 12), "{summary}");
    assert_eq!(counts("employees").inserted, 2, "{summary}");
    assert_eq!(counts("orders (deletes)").deleted, 8, "{summary}");
    assert_eq!(counts("players (deletes)").deleted, 3, "{summary}");
    assert_eq!(summary.totals().inserted, 14, "{summary}");
    assert_eq!(summary.totals().deleted, 11, "{summary}");
}

/// Two SQLite files (the first filled, the last empty) and an empty PostgreSQL database with
/// the same schema.
struct Setup {
    _dir: lite::Dir,
    first: std::path::PathBuf,
    last: std::path::PathBuf,
    middle: pg::TestDb,
}

async fn setup(label: &str) -> Setup {
    let dir = lite::Dir::new(label);
    let (first, last) = (dir.file("first.db"), dir.file("last.db"));
    lite::fill(&mut lite::empty_database(&first), 1200);
    lite::empty_database(&last);
    let middle = pg::TestDb::create(label).await;
    middle.client().await.batch_execute(PG_SCHEMA).await.unwrap();
    Setup { _dir: dir, first, last, middle }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_is_exact_and_diffs_move_only_changes() {
    let setup = setup("cross").await;
    let sqlite = |path: &std::path::Path| Arc::new(SqliteDatabase::open(path).unwrap());
    let postgres = Arc::new(PgDatabase::connect(&setup.middle.url).await.unwrap());
    round_trip(&setup, sqlite(&setup.first), sqlite(&setup.last), postgres).await;
}

/// The same, every database opened by its URL with `dmf::open` and so handled as an
/// `AnyDatabase`: one program for every pair of adapters, with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_round_trip_between_databases_opened_by_url_is_exact() {
    let setup = setup("cross_url").await;
    let sqlite =
        async |path: &std::path::Path| Arc::new(dmf::open(&format!("sqlite://{}", path.display())).await.unwrap());
    let postgres = Arc::new(dmf::open(&setup.middle.url).await.unwrap());
    assert_eq!(postgres.display_name(), PgDatabase::lazy(&setup.middle.url).unwrap().display_name());
    round_trip(&setup, sqlite(&setup.first).await, sqlite(&setup.last).await, postgres).await;
}

/// SQLite (`first`) → PostgreSQL → SQLite (`last`), full then diff after changes.
async fn round_trip<L: Database, P: Database>(setup: &Setup, first_db: Arc<L>, last_db: Arc<L>, postgres: Arc<P>) {
    let (first, last) = (&setup.first, &setup.last);
    let client = setup.middle.client().await;

    let _ = sync(Arc::clone(&first_db), Arc::clone(&postgres), SyncMode::Full).await;
    // The PostgreSQL copy, read with plain tokio-postgres.
    for (table, _) in lite::TABLES {
        let rows: i64 = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
        assert_eq!(rows, lite::count(first, table), "rows of {table}");
    }
    let row = client
        .query_one(
            "SELECT note, balance::text, (seen_at AT TIME ZONE 'UTC')::text, ref::text, profile::text,
                    (SELECT length(photo) FROM customers WHERE id = 6) FROM customers WHERE id = 2",
            &[],
        )
        .await
        .unwrap();
    let (note, balance): (String, String) = (row.get(0), row.get(1));
    let stored: (String, String) = rusqlite::Connection::open(first)
        .unwrap()
        .query_row("SELECT note, balance FROM customers WHERE id = 2", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((note, balance), stored, "text with escapes and a 38-digit decimal, unchanged");
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("2024-03-12 02:30:00.123456"));
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("00000002-0000-4000-8000-000000003dde"));
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some(r#"{"tier": "t2", "tags": ["a", "b"], "n": 2}"#));
    assert_eq!(row.get::<_, Option<i32>>(5), Some(64));
    let cycle: i64 = client
        .query_one("SELECT count(*) FROM teams t JOIN players p ON p.id = t.captain_id AND p.team_id = t.id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cycle, 15, "the FK cycle's deferred column filled by the second pass");

    let _ = sync(Arc::clone(&postgres), Arc::clone(&last_db), SyncMode::Full).await;
    assert_eq!(lite::content(last), lite::content(first), "SQLite -> PostgreSQL -> SQLite is exact");

    lite::change_source(first);
    let forth = sync(Arc::clone(&first_db), Arc::clone(&postgres), SyncMode::Diff).await;
    assert_changes_moved(&forth, "public.");
    let back = sync(postgres, last_db, SyncMode::Diff).await;
    assert_changes_moved(&back, "");
    assert_eq!(lite::content(last), lite::content(first), "equal again after the diffs");
}
