//! Shared by the CLI tests: the built `dmf` binary with a clean environment, and small SQLite
//! and PostgreSQL databases to sync.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod scenarios;

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The variables `dmf` reads, removed so that the developer's own never leak into a test.
const DMF_VARIABLES: [&str; 8] = [
    "DMF_SOURCE_URL",
    "DMF_TARGET_URL",
    "DMF_CONFIG",
    "DMF_MODE",
    "DMF_BATCH_SIZE",
    "DMF_JOBS",
    "DMF_DASHBOARD_TOKEN",
    "RUST_LOG",
];

/// `dmf`, run in `dir` (where no `dmf.toml` is unless the test writes one).
pub fn dmf(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("dmf").unwrap();
    command.current_dir(dir);
    for name in DMF_VARIABLES {
        command.env_remove(name);
    }
    command.env_remove("PGPASSWORD").env("PGPASSFILE", dir.join("no-pgpass"));
    command
}

/// The JSON document a `--json` run printed on stdout (the only thing it may print there).
pub fn document(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON document ({e}):\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr))
    })
}

/// Text of both streams, for messages.
pub fn both(output: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The shop schema: customers, orders referencing them, and a keyless audit log.
pub const SHOP_SQLITE: &str = "
    CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),
                         total REAL NOT NULL);
    CREATE TABLE audit_log (at TEXT, what TEXT);";

/// A source with 30 customers and 60 orders, and an empty target of the same schema.
pub struct SqlitePair {
    pub dir: tempfile::TempDir,
    pub source: PathBuf,
    pub target: PathBuf,
}

impl SqlitePair {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("prod.db");
        let target = dir.path().join("test.db");
        let db = rusqlite::Connection::open(&source).unwrap();
        db.execute_batch(SHOP_SQLITE).unwrap();
        for id in 1..=30 {
            db.execute(
                "INSERT INTO customers VALUES (?1, ?2, ?3)",
                rusqlite::params![id, format!("customer {id}"), format!("c{id}@example.com")],
            )
            .unwrap();
        }
        for id in 1..=60 {
            db.execute("INSERT INTO orders VALUES (?1, ?2, ?3)", rusqlite::params![id, 1 + id % 30, id as f64 * 1.5])
                .unwrap();
        }
        db.execute("INSERT INTO audit_log VALUES ('2026-01-01', 'created')", []).unwrap();
        rusqlite::Connection::open(&target).unwrap().execute_batch(SHOP_SQLITE).unwrap();
        Self { dir, source, target }
    }

    pub fn source_url(&self) -> String {
        format!("sqlite://{}", self.source.display())
    }

    pub fn target_url(&self) -> String {
        format!("sqlite://{}", self.target.display())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn target_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.target).unwrap()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.target_db().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    /// `dmf SUBCOMMAND --source … --target …` in the pair's directory.
    pub fn dmf(&self, subcommand: &str) -> Command {
        let mut command = dmf(self.path());
        command.args([subcommand, "--source", &self.source_url(), "--target", &self.target_url()]);
        command
    }
}

/// The shop schema in PostgreSQL.
pub const SHOP_POSTGRES: &str = "
    CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text);
    CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers (id),
                         total numeric(10, 2) NOT NULL);
    CREATE TABLE audit_log (at text, what text);";

/// The PostgreSQL server of the tests (`DMF_TEST_PG_URL`, a superuser). Tests never skip:
/// without it they fail, saying how to get one.
pub fn pg_server_url() -> String {
    std::env::var("DMF_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "DMF_TEST_PG_URL is not set. These tests need a PostgreSQL server (superuser URL): run \
             `bash scripts/test`, or `source scripts/pg-cluster.sh && pg_cluster_start` first"
        )
    })
}

/// `url` pointing at database `name` instead.
pub fn pg_with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// Two throwaway PostgreSQL databases of the shop schema (source filled like
/// [`SqlitePair`]'s), dropped at the end; a runtime of its own so that tests stay plain
/// `#[test]`s that run the binary.
pub struct PgPair {
    pub runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub source: String,
    pub target: String,
    names: [String; 2],
}

impl PgPair {
    pub fn new(label: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let server = pg_server_url();
        let suffix = &uuid_like();
        let names = [format!("dmf_cli_{label}_src_{suffix}"), format!("dmf_cli_{label}_dst_{suffix}")];
        let pair = Self {
            source: pg_with_database(&server, &names[0]),
            target: pg_with_database(&server, &names[1]),
            runtime,
            dir: tempfile::tempdir().unwrap(),
            names,
        };
        pair.admin(&format!("CREATE DATABASE \"{}\"", pair.names[0]));
        pair.admin(&format!("CREATE DATABASE \"{}\"", pair.names[1]));
        let mut fill = String::from(SHOP_POSTGRES);
        fill.push_str("INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 30) i;");
        fill.push_str("INSERT INTO orders SELECT i, 1 + i % 30, i * 1.5 FROM generate_series(1, 60) i;");
        fill.push_str("INSERT INTO audit_log VALUES ('2026-01-01', 'created');");
        pair.execute(&pair.source, &fill);
        pair.execute(&pair.target, SHOP_POSTGRES);
        pair
    }

    fn admin(&self, sql: &str) {
        self.execute(&pg_server_url(), sql);
    }

    pub fn execute(&self, url: &str, sql: &str) {
        self.runtime.block_on(async {
            let client = connect(url).await;
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }

    pub fn query_text(&self, url: &str, sql: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let client = connect(url).await;
            let rows = client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter().map(|r| r.get::<_, Option<String>>(0).unwrap_or_default()).collect()
        })
    }

    pub fn count(&self, table: &str) -> i64 {
        self.runtime.block_on(async {
            let client = connect(&self.target).await;
            client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
        })
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        for name in self.names.clone() {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let server = pg_server_url();
            let _ = self.runtime.block_on(async move { connect(&server).await.batch_execute(&sql).await });
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        url.parse::<tokio_postgres::Config>().unwrap().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A name suffix unique to this process and moment.
fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000)
}
