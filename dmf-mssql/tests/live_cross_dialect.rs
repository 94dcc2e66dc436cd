//! Live (needs `DMF_TEST_MSSQL_URL` and `DMF_TEST_PG_URL`): SQL Server between the other two
//! dialects, both as a target and as a source. A SQLite file is synced into the TDS server and
//! from there into PostgreSQL, then changes made in SQLite (updates, inserts, deletes) travel
//! the same way by `diff`; and PostgreSQL goes through the TDS server into SQLite. After each
//! sync the sync's own verification passes, and each side's rows, read with its own driver
//! (rusqlite, tiberius through the adapter's session, tokio-postgres), are equal.
//!
//! The types are those all three keep exactly: integers, text with unicode and quotes, dates,
//! timestamps to the microsecond, booleans, floats, and NULL in every nullable column (no
//! decimals: Babelfish 4.3 garbles bulk-loaded ones, see `live_sync`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use std::path::Path;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use dmf_core::quality::verify;
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest, RunSummary, Value};
use dmf_postgres::PgDatabase;
use dmf_sqlite::SqliteDatabase;
use live_common::{TestDb, UPSERT_STRATEGIES, server_url};

const SQLITE_SCHEMA: &str = "
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, born DATE, seen_at TIMESTAMP, visits INTEGER,
                     active BOOLEAN, note TEXT, score REAL);
CREATE TABLE visits (person_id INTEGER NOT NULL REFERENCES people (id), n INTEGER NOT NULL, at TIMESTAMP NOT NULL,
                     place TEXT, PRIMARY KEY (person_id, n));";

const TDS_SCHEMA: &str = "
CREATE TABLE dbo.people (id bigint NOT NULL PRIMARY KEY, name nvarchar(200) NOT NULL, born date NULL,
                         seen_at datetime2(6) NULL, visits bigint NULL, active bit NULL, note nvarchar(max) NULL,
                         score float NULL);
CREATE TABLE dbo.visits (person_id bigint NOT NULL REFERENCES dbo.people (id), n bigint NOT NULL,
                         at datetime2(6) NOT NULL, place nvarchar(100) NULL, PRIMARY KEY (person_id, n));";

/// In schema `dbo`, as after moving a SQL Server database to PostgreSQL: a sync pairs tables
/// by schema and name (SQLite's have no schema and pair with either).
const PG_SCHEMA: &str = "
CREATE SCHEMA dbo;
CREATE TABLE dbo.people (id bigint PRIMARY KEY, name text NOT NULL, born date, seen_at timestamp, visits bigint,
                         active boolean, note text, score double precision);
CREATE TABLE dbo.visits (person_id bigint NOT NULL REFERENCES dbo.people (id), n bigint NOT NULL,
                         at timestamp NOT NULL, place text, PRIMARY KEY (person_id, n));";

/// People 1..=300 and two visits each, with unicode, quotes, NULLs and microseconds.
fn fill_sqlite(path: &Path) {
    let mut connection = rusqlite::Connection::open(path).unwrap();
    connection.execute_batch(SQLITE_SCHEMA).unwrap();
    let tx = connection.transaction().unwrap();
    for id in 1..=300_i64 {
        let name = match id % 4 {
            0 => format!("Zoë Ünïcødé {id} 🦀"),
            1 => format!("O'Brien \"{id}\" ]]"),
            2 => format!("tab\there {id}\nnew line"),
            _ => format!("Person {id}"),
        };
        let born = (id % 7 != 0).then(|| format!("19{:02}-{:02}-{:02}", id % 100, id % 12 + 1, id % 28 + 1));
        let seen_at =
            (id % 5 != 0).then(|| format!("2024-01-{:02} 12:34:56.{:06}", id % 28 + 1, id * 1234 % 1_000_000));
        let visits = (id % 3 != 0).then_some(id * 10);
        let active = (id % 6 != 0).then_some(id % 2 == 0);
        let note = (id % 2 == 0).then(|| "日本語 ".repeat((id % 9) as usize));
        let score = (id % 8 != 0).then_some(id as f64 / 7.0);
        tx.execute(
            "INSERT INTO people VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![id, name, born, seen_at, visits, active, note, score],
        )
        .unwrap();
        for n in 1..=2_i64 {
            let at = format!("2024-02-{:02} 08:00:{:02}.{:06}", n + 1, id % 60, id);
            let place = (n == 1).then(|| format!("place {id}"));
            tx.execute("INSERT INTO visits VALUES (?1, ?2, ?3, ?4)", rusqlite::params![id, n, at, place]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn timestamp(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

/// Both tables as values, read from a SQLite file with rusqlite alone.
fn sqlite_rows(path: &Path) -> [Vec<Vec<Value>>; 2] {
    use rusqlite::types::ValueRef;
    let connection = rusqlite::Connection::open(path).unwrap();
    let read = |sql: &str, kinds: &[char]| -> Vec<Vec<Value>> {
        let mut statement = connection.prepare(sql).unwrap();
        let rows = statement
            .query_map([], |row| {
                Ok(kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| match (row.get_ref(i).unwrap(), kind) {
                        (ValueRef::Null, _) => Value::Null,
                        (ValueRef::Integer(n), 'b') => Value::Bool(n != 0),
                        (ValueRef::Integer(n), _) => Value::Int(n),
                        (ValueRef::Real(f), _) => Value::Float(f),
                        (ValueRef::Text(t), 'd') => {
                            Value::Date(NaiveDate::parse_from_str(std::str::from_utf8(t).unwrap(), "%Y-%m-%d").unwrap())
                        }
                        (ValueRef::Text(t), 't') => Value::Timestamp(timestamp(std::str::from_utf8(t).unwrap())),
                        (ValueRef::Text(t), _) => Value::Text(String::from_utf8(t.to_vec()).unwrap()),
                        (ValueRef::Blob(b), _) => Value::Bytes(b.to_vec()),
                    })
                    .collect())
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    [
        read(
            "SELECT id, name, born, seen_at, visits, active, note, score FROM people ORDER BY id",
            &['i', 's', 'd', 't', 'i', 'b', 's', 'f'],
        ),
        read("SELECT person_id, n, at, place FROM visits ORDER BY person_id, n", &['i', 'i', 't', 's']),
    ]
}

/// Both tables as values, read from the TDS server (tiberius's cells, decoded by type).
async fn tds_rows(db: &TestDb) -> [Vec<Vec<Value>>; 2] {
    let mut session = db.session().await;
    let mut tables = Vec::new();
    for sql in [
        "SELECT id, name, born, seen_at, visits, active, note, score FROM dbo.people ORDER BY id",
        "SELECT person_id, n, at, place FROM dbo.visits ORDER BY person_id, n",
    ] {
        let rows = session.query(sql, &[]).await.unwrap();
        tables.push(rows.iter().map(|row| row.values().unwrap()).collect::<Vec<_>>());
    }
    let visits = tables.pop().unwrap();
    [tables.pop().unwrap(), visits]
}

/// Both tables as values, read from PostgreSQL with tokio-postgres alone.
async fn pg_rows(url: &str) -> [Vec<Vec<Value>>; 2] {
    let client = pg_connect(url).await;
    let people = client
        .query("SELECT id, name, born, seen_at, visits, active, note, score FROM dbo.people ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            vec![
                Value::Int(row.get(0)),
                Value::Text(row.get(1)),
                row.get::<_, Option<NaiveDate>>(2).map_or(Value::Null, Value::Date),
                row.get::<_, Option<NaiveDateTime>>(3).map_or(Value::Null, Value::Timestamp),
                row.get::<_, Option<i64>>(4).map_or(Value::Null, Value::Int),
                row.get::<_, Option<bool>>(5).map_or(Value::Null, Value::Bool),
                row.get::<_, Option<String>>(6).map_or(Value::Null, Value::Text),
                row.get::<_, Option<f64>>(7).map_or(Value::Null, Value::Float),
            ]
        })
        .collect();
    let visits = client
        .query("SELECT person_id, n, at, place FROM dbo.visits ORDER BY person_id, n", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            vec![
                Value::Int(row.get(0)),
                Value::Int(row.get(1)),
                Value::Timestamp(row.get(2)),
                row.get::<_, Option<String>>(3).map_or(Value::Null, Value::Text),
            ]
        })
        .collect();
    [people, visits]
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        url.parse::<tokio_postgres::Config>().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A PostgreSQL database of its own on `DMF_TEST_PG_URL`'s server, with the schema; dropped at
/// the end (even when the test panics).
struct PgDb {
    server: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create(label: &str) -> Self {
        let server = std::env::var("DMF_TEST_PG_URL").expect("DMF_TEST_PG_URL");
        let name = format!("dmf_test_{label}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        pg_connect(&server).await.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        let (scheme, rest) = server.split_once("://").unwrap();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let query = rest[end..].split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
        let url = format!("{scheme}://{}/{name}{query}", &rest[..end]);
        pg_connect(&url).await.batch_execute(PG_SCHEMA).await.unwrap();
        Self { server, name, url }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let client = pg_connect(&server).await;
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            });
        })
        .join();
    }
}

/// Syncs every table, then checks the sync's own verification.
async fn sync_and_verify<S: Database, T: Database>(source: Arc<S>, target: Arc<T>, mode: SyncMode) -> RunSummary {
    let engine = EngineConfig::builder().batch_size(100).reject_limit(RejectLimit::Count(0)).build().unwrap();
    let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode.clone()).engine(engine).jobs(2);
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{mode} {} -> {}: {summary}", source.display_name(), target.display_name());
    let plan = job.plan().await.unwrap();
    let report = verify(source.as_ref(), target.as_ref(), &plan, &[], 10).await.unwrap();
    assert!(report.passed(), "{mode} {} -> {}: {report}", source.display_name(), target.display_name());
    summary
}

fn counts(summary: &RunSummary, name: &str) -> (u64, u64, u64, u64) {
    let record = summary
        .migrations
        .iter()
        .find(|m| m.migration.as_str() == name || m.migration.as_str().ends_with(&format!(".{name}")))
        .unwrap_or_else(|| panic!("no migration {name} in\n{summary}"));
    let c = record.counts;
    (c.read, c.inserted, c.updated, c.deleted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    all(not(dmf_mssql_server = "none"), not(dmf_test_pg)),
    ignore = "needs PostgreSQL: set DMF_TEST_PG_URL (scripts/test starts one)"
)]
async fn sqlite_into_the_tds_server_and_on_into_postgresql_equal_at_each_step_diffs_included() {
    let url = server_url("cross_dialect").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("first.db");
    fill_sqlite(&file);
    let tds_db = TestDb::create(&url, "cross").await;
    tds_db.batch(TDS_SCHEMA).await;
    let pg_db = PgDb::create("cross").await;
    let strategy = *UPSERT_STRATEGIES.last().unwrap();
    let sqlite = Arc::new(SqliteDatabase::open(&file).unwrap());
    let tds = tds_db.upserting(strategy);
    let postgres = Arc::new(PgDatabase::connect(&pg_db.url).await.unwrap());

    let first = sync_and_verify(Arc::clone(&sqlite), Arc::clone(&tds), SyncMode::Full).await;
    assert_eq!(counts(&first, "people"), (300, 300, 0, 0), "{first}");
    let expected = sqlite_rows(&file);
    assert_eq!(tds_rows(&tds_db).await, expected, "SQLite -> TDS, read by each driver");
    let second = sync_and_verify(Arc::clone(&tds), Arc::clone(&postgres), SyncMode::Full).await;
    assert_eq!(counts(&second, "visits"), (600, 600, 0, 0), "{second}");
    assert_eq!(pg_rows(&pg_db.url).await, expected, "TDS -> PostgreSQL, read by each driver");

    // Changes in SQLite travel the same way by diff: only they move.
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(
            "UPDATE people SET name = name || ' (renamed)', active = NOT active WHERE id % 50 = 1;
             INSERT INTO people (id, name, born, active) VALUES (301, 'Neue Person ß', '2000-02-29', 1), (302, 'x', NULL, NULL);
             DELETE FROM visits WHERE person_id IN (299, 300);
             UPDATE visits SET place = NULL WHERE person_id = 10 AND n = 1;",
        )
        .unwrap();
    let expected = sqlite_rows(&file);
    let first = sync_and_verify(Arc::clone(&sqlite), Arc::clone(&tds), SyncMode::Diff).await;
    assert_eq!(counts(&first, "people"), (8, 2, 6, 0), "{first}");
    assert_eq!(counts(&first, "visits (deletes)").3, 4, "{first}");
    assert_eq!(tds_rows(&tds_db).await, expected, "SQLite -> TDS by diff");
    let second = sync_and_verify(Arc::clone(&tds), Arc::clone(&postgres), SyncMode::Diff).await;
    assert_eq!(counts(&second, "people"), (8, 2, 6, 0), "{second}");
    assert_eq!(counts(&second, "visits (deletes)").3, 4, "{second}");
    assert_eq!(pg_rows(&pg_db.url).await, expected, "TDS -> PostgreSQL by diff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    all(not(dmf_mssql_server = "none"), not(dmf_test_pg)),
    ignore = "needs PostgreSQL: set DMF_TEST_PG_URL (scripts/test starts one)"
)]
async fn postgresql_into_the_tds_server_and_on_into_sqlite_equal_at_each_step() {
    let url = server_url("cross_dialect_back").await;
    let dir = tempfile::tempdir().unwrap();
    let (seed, last) = (dir.path().join("seed.db"), dir.path().join("last.db"));
    fill_sqlite(&seed);
    rusqlite::Connection::open(&last).unwrap().execute_batch(SQLITE_SCHEMA).unwrap();
    let pg_db = PgDb::create("back").await;
    let tds_db = TestDb::create(&url, "back").await;
    tds_db.batch(TDS_SCHEMA).await;
    let postgres = Arc::new(PgDatabase::connect(&pg_db.url).await.unwrap());
    // PostgreSQL is filled by a sync from the seed file; the test's subject is what follows.
    let _checked =
        sync_and_verify(Arc::new(SqliteDatabase::open(&seed).unwrap()), Arc::clone(&postgres), SyncMode::Full).await;
    let expected = pg_rows(&pg_db.url).await;
    assert_eq!(expected, sqlite_rows(&seed));

    let tds = tds_db.upserting(*UPSERT_STRATEGIES.last().unwrap());
    let first = sync_and_verify(Arc::clone(&postgres), Arc::clone(&tds), SyncMode::Upsert).await;
    assert_eq!(counts(&first, "people"), (300, 300, 0, 0), "{first}");
    assert_eq!(tds_rows(&tds_db).await, expected, "PostgreSQL -> TDS");
    let sqlite = Arc::new(SqliteDatabase::open(&last).unwrap());
    let second = sync_and_verify(Arc::clone(&tds), Arc::clone(&sqlite), SyncMode::Full).await;
    assert_eq!(counts(&second, "visits"), (600, 600, 0, 0), "{second}");
    assert_eq!(sqlite_rows(&last), expected, "TDS -> SQLite");
}

/// `server` (the live suite's URL) naming database `name` instead.
fn database_url(server: &str, name: &str) -> String {
    match server.split_once("://") {
        Some((scheme, rest)) => {
            let (before, query) = rest.split_once('?').map_or((rest, ""), |(b, q)| (b, q));
            let authority = before.split('/').next().unwrap_or(before);
            let query = if query.is_empty() { String::new() } else { format!("?{query}") };
            format!("{scheme}://{authority}/{name}{query}")
        }
        None => format!("{server};Database={name}"),
    }
}

/// Runs the `dmf` command with `args`; panics with its output unless it exits 0.
fn dmf(args: &[&str]) -> String {
    let program = std::env::var("DMF_BIN").expect("DMF_BIN names the dmf command");
    let output = std::process::Command::new(&program).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?}: {}\n{stdout}\n{stderr}", output.status);
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    all(not(dmf_mssql_server = "none"), not(dmf_test_pg)),
    ignore = "needs PostgreSQL: set DMF_TEST_PG_URL (scripts/test starts one)"
)]
#[cfg_attr(
    all(not(dmf_mssql_server = "none"), dmf_test_pg, not(dmf_bin)),
    ignore = "needs the dmf command: set DMF_BIN (scripts/test builds it)"
)]
async fn the_dmf_command_copies_sqlite_into_the_tds_server_and_on_into_postgresql() {
    let url = server_url("cross_dialect_program").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("first.db");
    fill_sqlite(&file);
    let tds_db = TestDb::create(&url, "program").await;
    tds_db.batch(TDS_SCHEMA).await;
    let pg_db = PgDb::create("program").await;
    let (sqlite_url, tds_url) = (format!("sqlite://{}", file.display()), database_url(&url, &tds_db.name));

    // Each sync verifies the target row by row before it exits 0.
    let into_tds = dmf(&["sync", "--source", &sqlite_url, "--target", &tds_url, "--mode", "full"]);
    assert!(into_tds.contains("equal"), "{into_tds}");
    let expected = sqlite_rows(&file);
    assert_eq!(tds_rows(&tds_db).await, expected, "SQLite -> TDS by the program, read by each driver");
    let into_pg = dmf(&["sync", "--source", &tds_url, "--target", &pg_db.url, "--mode", "full"]);
    assert!(into_pg.contains("equal"), "{into_pg}");
    assert_eq!(pg_rows(&pg_db.url).await, expected, "TDS -> PostgreSQL by the program, read by each driver");
    // And the program's own comparison of the first and the last, which writes nothing.
    let verdict = dmf(&["verify", "--source", &sqlite_url, "--target", &pg_db.url]);
    assert!(verdict.contains("equal"), "{verdict}");
}
