//! A schema with every awkward thing a sync meets, in two SQLite files, and a content
//! comparison that reads both files with plain rusqlite (no DMF code).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RejectLimit, RunRequest, RunSummary};
use dmf_sqlite::SqliteDatabase;
use rusqlite::Connection;

pub const SCHEMA: &str = r#"
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email VARCHAR(200) UNIQUE,
    note TEXT,
    balance DECIMAL_TEXT(38,10),
    created_at TIMESTAMP NOT NULL,
    seen_at TIMESTAMPTZ,
    ref UUID,
    profile JSON,
    photo BLOB,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    manager_id INTEGER REFERENCES employees (id),
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE orders (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    order_no INTEGER NOT NULL,
    total DECIMAL_TEXT(12,2) NOT NULL,
    placed_on DATE,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, order_no)
);
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    captain_id INTEGER REFERENCES players (id),
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE players (
    id INTEGER PRIMARY KEY,
    team_id INTEGER NOT NULL REFERENCES teams (id),
    name TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE "Order" (
    "Id" INTEGER PRIMARY KEY,
    "select" TEXT,
    "user" TEXT,
    "CamelCase" INTEGER,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE "we""ird" (
    "col""umn" INTEGER PRIMARY KEY,
    "val ue" TEXT,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE docs (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
"#;

/// Every table with the columns that order it (for comparisons).
pub const TABLES: [(&str, &str); 8] = [
    ("customers", "id"),
    ("employees", "id"),
    ("orders", "customer_id, order_no"),
    ("teams", "id"),
    ("players", "id"),
    ("\"Order\"", "\"Id\""),
    ("\"we\"\"ird\"", "\"col\"\"umn\""),
    ("docs", "id"),
];

pub struct Dir(PathBuf);

impl Dir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dmf-sqlite-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn connect(path: &Path) -> Connection {
    let connection = Connection::open(path).unwrap();
    connection.execute_batch("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;").unwrap();
    connection
}

pub fn empty_database(path: &Path) -> Connection {
    let connection = connect(path);
    connection.execute_batch(SCHEMA).unwrap();
    connection
}

const TS: &str = "2024-03-01 12:00:00";

/// Fills the rich schema with `customers` customers and proportionate other tables.
pub fn fill(connection: &mut Connection, customers: i64) {
    let mut rng = fastrand::Rng::with_seed(7);
    let tx = connection.transaction().unwrap();
    tx.execute_batch("PRAGMA defer_foreign_keys = ON").unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO customers (id, name, email, note, balance, created_at, seen_at, ref, profile, photo, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .unwrap();
        for id in 1..=customers {
            let note: Option<String> = match id % 5 {
                0 => None,
                1 => Some("Zoë 🦀 naïve café — 東京".into()),
                2 => Some("tab\there, newline\nthere, back\\slash, quote ' and \"".into()),
                _ => Some(format!("note {}", rng.u32(..))),
            };
            let balance = if id % 7 == 0 {
                None
            } else {
                Some(format!(
                    "{}{:018}.{:010}",
                    rng.i64(-9_999_999_999..9_999_999_999),
                    rng.u64(..1_000_000_000_000_000_000),
                    rng.u64(..10_000_000_000)
                ))
            };
            let seen =
                (id % 3 != 0).then(|| format!("2024-0{}-1{} 0{}:30:00.123456+00:00", 1 + id % 9, id % 10, id % 10));
            let uuid = (id % 4 != 0).then(|| format!("{:08x}-0000-4000-8000-{:012x}", id, id * 7919));
            let profile = (id % 2 == 0).then(|| format!(r#"{{"tier": "t{}", "tags": ["a", "b"], "n": {id}}}"#, id % 3));
            let photo: Option<Vec<u8>> = (id % 6 == 0).then(|| (0..64).map(|i| (i * id) as u8).collect());
            insert
                .execute(rusqlite::params![
                    id,
                    format!("Customer {id}"),
                    (id % 11 != 0).then(|| format!("c{id}@example.com")),
                    note,
                    balance,
                    format!("2020-01-{:02} 10:00:00", 1 + id % 28),
                    seen,
                    uuid,
                    profile,
                    photo,
                    TS
                ])
                .unwrap();
        }
        let employees = (customers / 10).max(5);
        let mut insert =
            tx.prepare("INSERT INTO employees (id, name, manager_id, updated_at) VALUES (?, ?, ?, ?)").unwrap();
        for id in 1..=employees {
            // Managers with higher ids too: a self-reference that plain key order would break.
            let manager = if id == 1 { None } else { Some(rng.i64(1..=employees)).filter(|m| *m != id) };
            insert.execute(rusqlite::params![id, format!("Employee {id}"), manager, TS]).unwrap();
        }
        let mut insert = tx
            .prepare("INSERT INTO orders (customer_id, order_no, total, placed_on, updated_at) VALUES (?, ?, ?, ?, ?)")
            .unwrap();
        for customer in 1..=customers {
            for order in 1..=(customer % 3) {
                let placed = (order != 2).then(|| format!("2023-{:02}-{:02}", 1 + customer % 12, 1 + order));
                insert
                    .execute(rusqlite::params![customer, order, format!("{}.{:02}", customer * 3, order), placed, TS])
                    .unwrap();
            }
        }
        let teams = 20;
        for id in 1..=teams {
            tx.execute(
                "INSERT INTO teams (id, name, captain_id, updated_at) VALUES (?, ?, ?, ?)",
                rusqlite::params![id, format!("Team {id}"), (id % 4 != 0).then_some(id * 10), TS],
            )
            .unwrap();
        }
        for id in 1..=teams * 10 {
            tx.execute(
                "INSERT INTO players (id, team_id, name, updated_at) VALUES (?, ?, ?, ?)",
                rusqlite::params![id, 1 + (id - 1) / 10, format!("Player {id}"), TS],
            )
            .unwrap();
        }
        for id in 1..=40 {
            tx.execute(
                r#"INSERT INTO "Order" ("Id", "select", "user", "CamelCase", updated_at) VALUES (?, ?, ?, ?, ?)"#,
                rusqlite::params![id, format!("sel {id}"), (id % 2 == 0).then_some("root"), id * 2, TS],
            )
            .unwrap();
        }
        for id in 1..=30 {
            tx.execute(
                r#"INSERT INTO "we""ird" ("col""umn", "val ue", updated_at) VALUES (?, ?, ?)"#,
                rusqlite::params![id, format!("it's \"odd\" {id}"), TS],
            )
            .unwrap();
        }
        for id in 1..=3 {
            let body: String = std::iter::repeat_n(format!("line {id} — ünïcødé 🦀\n"), 40_000).collect();
            tx.execute("INSERT INTO docs (id, body, updated_at) VALUES (?, ?, ?)", rusqlite::params![id, body, TS])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Every table's rows as stored (storage class and bytes), read with plain rusqlite.
pub fn content(path: &Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let connection = Connection::open(path).unwrap();
    TABLES
        .iter()
        .map(|(table, order)| {
            let mut statement = connection.prepare(&format!("SELECT * FROM {table} ORDER BY {order}")).unwrap();
            let width = statement.column_count();
            let rows = statement
                .query_map([], |row| (0..width).map(|i| row.get::<_, rusqlite::types::Value>(i)).collect())
                .unwrap()
                .collect::<rusqlite::Result<Vec<Vec<_>>>>()
                .unwrap();
            (table.to_string(), rows)
        })
        .collect()
}

pub fn count(path: &Path, table: &str) -> i64 {
    Connection::open(path).unwrap().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

pub fn engine(batch_size: usize) -> EngineConfig {
    EngineConfig::builder().batch_size(batch_size).reject_limit(RejectLimit::Count(0)).build().unwrap()
}

pub async fn sync(source: &Path, target: &Path, mode: SyncMode, request: RunRequest) -> RunSummary {
    let job = SyncJob::new(
        Arc::new(SqliteDatabase::open(source).unwrap()),
        Arc::new(SqliteDatabase::open(target).unwrap()),
        mode,
    )
    .engine(engine(250))
    .jobs(2);
    job.run(request).await.unwrap()
}

pub const LATER: &str = "2024-06-01 08:00:00";

/// Changes about 1 % of the source: updates 15 customers, inserts 12 customers and 2
/// employees, deletes 8 orders and 3 players, all with a later `updated_at`.
pub fn change_source(path: &Path) {
    let connection = connect(path);
    connection
        .execute_batch(&format!(
            "UPDATE customers SET note = 'changed ✓', updated_at = '{LATER}' WHERE id % 100 = 42;
             INSERT INTO customers (id, name, email, created_at, updated_at)
                 WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 12)
                 SELECT 5000 + value, 'New ' || value, 'new' || value || '@example.com', '{LATER}', '{LATER}' FROM n;
             INSERT INTO employees (id, name, manager_id, updated_at) VALUES (9001, 'New boss', 1, '{LATER}'),
                 (9002, 'New hire', 9001, '{LATER}');
             DELETE FROM orders WHERE (customer_id, order_no) IN
                 (SELECT customer_id, order_no FROM orders ORDER BY customer_id, order_no LIMIT 8);
             DELETE FROM players WHERE id IN (11, 12, 13);"
        ))
        .unwrap();
}
