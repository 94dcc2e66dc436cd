//! Shared by the integration tests: a throwaway database per test on the server named by
//! `DMF_TEST_PG_URL`, the rich schema most tests sync, and running a sync the way a user
//! would (plan, pre-flight, orchestrator).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod proxy;

use std::collections::BTreeMap;
use std::sync::Arc;

use dmf_core::sync::{Database, DatabaseCheck, DatabaseRole, SyncMode, SyncPlan, sync_migrations};
use dmf_core::{EngineConfig, Orchestrator, RunRequest, RunSummary};
use dmf_postgres::PgDatabase;
use tokio_postgres::{Client, NoTls};

/// The server every test uses. Tests never skip: without it they fail, saying how to get one.
pub fn server_url() -> String {
    std::env::var("DMF_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "DMF_TEST_PG_URL is not set. These tests need a PostgreSQL server (superuser URL): run \
             `bash scripts/test`, or `source scripts/pg-cluster.sh && pg_cluster_start` first"
        )
    })
}

/// `url` pointing at database `name` instead.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("DMF_TEST_PG_URL must be a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// Opens a plain tokio-postgres connection (independent of DMF).
pub async fn connect(url: &str) -> Client {
    let (client, connection) = url.parse::<tokio_postgres::Config>().unwrap().connect(NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database created for one test and dropped when the test ends (even when it panics).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(label: &str) -> Self {
        let server = server_url();
        let name = format!("dmf_test_{label}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let admin = connect(&server).await;
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        Self { url: with_database(&server, &name), name }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    pub fn database(&self) -> Arc<PgDatabase> {
        Arc::new(PgDatabase::lazy(&self.url).unwrap())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let admin = connect(&server).await;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Tables of every case the adapter must handle: identity and generated columns, every
/// neutral type, a self-referencing foreign key, a composite key, a two-table foreign-key
/// cycle (one side nullable), reserved words and mixed case, a double quote in names, a text
/// key, and a nullable watermark.
pub const RICH_SCHEMA: &str = r#"
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email varchar(200) NOT NULL UNIQUE,
    name text NOT NULL,
    bio text,
    avatar bytea,
    balance numeric(38,10) NOT NULL DEFAULT 0,
    rating real,
    score double precision,
    active boolean NOT NULL DEFAULT true,
    born date,
    wake_up time,
    created_at timestamp NOT NULL,
    updated_at timestamptz NOT NULL,
    external_id uuid NOT NULL,
    prefs json,
    tags jsonb,
    code char(4),
    name_upper text GENERATED ALWAYS AS (upper(name)) STORED,
    referred_by bigint REFERENCES shop.customers (id)
);
CREATE TABLE shop."Order" (
    "Id" integer PRIMARY KEY,
    "select" text NOT NULL,
    "user" bigint NOT NULL REFERENCES shop.customers (id),
    "Total" numeric(12,2),
    updated_at timestamptz NOT NULL
);
CREATE TABLE shop.order_lines (
    order_id integer NOT NULL REFERENCES shop."Order" ("Id"),
    line smallint NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL,
    price numeric(10,2) NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE shop.departments (
    id integer PRIMARY KEY,
    name text NOT NULL,
    head_id integer,
    updated_at timestamptz NOT NULL
);
CREATE TABLE shop.employees (
    id integer PRIMARY KEY,
    name text NOT NULL,
    department_id integer NOT NULL REFERENCES shop.departments (id),
    updated_at timestamptz NOT NULL
);
ALTER TABLE shop.departments ADD CONSTRAINT departments_head FOREIGN KEY (head_id) REFERENCES shop.employees (id);
CREATE TABLE public."odd ""quoted"" table" (
    "key ""k""" text PRIMARY KEY,
    "Value" text,
    updated_at timestamptz
);
"#;

/// The rich schema's tables, as `schema.table` (unquoted) and quoted for SQL.
pub const TABLES: [(&str, &str); 6] = [
    ("shop.customers", "shop.customers"),
    ("shop.Order", "shop.\"Order\""),
    ("shop.order_lines", "shop.order_lines"),
    ("shop.departments", "shop.departments"),
    ("shop.employees", "shop.employees"),
    ("public.odd \"quoted\" table", "public.\"odd \"\"quoted\"\" table\""),
];

/// Rows for the rich schema: unicode and emoji, text needing COPY escapes, a text of about
/// 1 MB, bytes with zero and backslash bytes, numeric(38,10) at full size, NULLs in every
/// nullable column, self-references pointing forward, and a cycle filled after both tables.
pub const RICH_DATA: &str = r#"
INSERT INTO shop.customers (email, name, bio, avatar, balance, rating, score, active, born, wake_up, created_at,
                            updated_at, external_id, prefs, tags, code, referred_by)
SELECT 'user' || g || '@example.com',
       CASE WHEN g % 97 = 0 THEN E'tab\there\nnew line\r\\ backslash \\N end'
            WHEN g % 3 = 0 THEN 'Zoë Ünïcødé ' || g || ' 🦀'
            ELSE 'Customer ' || g END,
       CASE WHEN g = 7 THEN repeat('日本語🦀', 80000) WHEN g % 4 = 0 THEN NULL ELSE 'bio of ' || g END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') || '\x005c00ff'::bytea END,
       CASE WHEN g = 1 THEN 9999999999999999999999999999.9999999999
            ELSE (g * 1234567.0123456789 * CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END)::numeric(38,10) END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE (g / 7.0)::real END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE g * 0.1 END,
       g % 2 = 0,
       CASE WHEN g % 17 = 0 THEN NULL ELSE date '1950-01-01' + g END,
       time '06:00' + g * interval '1.5 second',
       timestamp '2020-01-01 00:00:00' + g * interval '61.123456 second',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       md5('c' || g)::uuid,
       CASE WHEN g % 10 = 0 THEN NULL ELSE json_build_object('g', g, 'name', 'x' || g) END,
       jsonb_build_object('tags', jsonb_build_array('a', g), 'ünï', true),
       CASE WHEN g % 8 = 0 THEN NULL ELSE lpad((g % 1000)::text, 3, '0') END,
       CASE WHEN g % 5 = 0 THEN ((g * 7) % 3000) + 1 END
FROM generate_series(1, 3000) g;

INSERT INTO shop."Order" ("Id", "select", "user", "Total", updated_at)
SELECT g, CASE WHEN g % 2 = 0 THEN 'pick' ELSE 'choose ' || g END, (g % 3000) + 1,
       CASE WHEN g % 9 = 0 THEN NULL ELSE (g * 3.37)::numeric(12,2) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, 3000) g;

INSERT INTO shop.order_lines (order_id, line, sku, quantity, price, updated_at)
SELECT o, l, 'SKU-' || o || '-' || l, l * 2, (o * l * 1.5)::numeric(10,2),
       timestamptz '2024-01-01 00:00:00+00' + o * interval '1 second'
FROM generate_series(1, 3000) o, generate_series(1, 2) l;

INSERT INTO shop.departments (id, name, head_id, updated_at)
SELECT d, 'Department ' || d, NULL, timestamptz '2024-01-01 00:00:00+00' + d * interval '1 second'
FROM generate_series(1, 50) d;
INSERT INTO shop.employees (id, name, department_id, updated_at)
SELECT e, 'Employee ' || e, (e % 50) + 1, timestamptz '2024-01-01 00:00:00+00' + e * interval '1 second'
FROM generate_series(1, 500) e;
UPDATE shop.departments SET head_id = id * 10 WHERE id % 3 <> 0;

INSERT INTO public."odd ""quoted"" table" ("key ""k""", "Value", updated_at)
SELECT CASE g % 4 WHEN 0 THEN 'a' || g WHEN 1 THEN 'B' || g WHEN 2 THEN 'é' || g ELSE '🦀' || g END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'v' || g END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' END
FROM generate_series(1, 200) g;
"#;

/// Two databases with the rich schema; the source filled.
pub async fn rich_pair(label: &str) -> (TestDb, TestDb) {
    let (source, target) =
        (TestDb::create(&format!("{label}_src")).await, TestDb::create(&format!("{label}_dst")).await);
    let client = source.client().await;
    client.batch_execute(RICH_SCHEMA).await.unwrap();
    client.batch_execute(RICH_DATA).await.unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
    target.client().await.batch_execute(RICH_SCHEMA).await.unwrap();
    (source, target)
}

/// Each table's row count and an md5 of its rows' text, in a fixed order: computed by
/// PostgreSQL alone, independently of DMF.
pub async fn fingerprints(client: &Client) -> BTreeMap<String, (i64, String)> {
    let mut prints = BTreeMap::new();
    for (name, quoted) in TABLES {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {quoted} t"
                ),
                &[],
            )
            .await
            .unwrap();
        prints.insert(name.to_owned(), (row.get(0), row.get(1)));
    }
    prints
}

/// An orchestrator for a sync, built as a user would: both catalogs, the plan, pre-flight of
/// both sides and of the schemas, the run store in the target, two migrations at a time,
/// batches of 500 rows. The target may be any database (a `FaultyDatabase` around one, say).
pub async fn orchestrator<T: Database>(source: &Arc<PgDatabase>, target: &Arc<T>, mode: SyncMode) -> Orchestrator {
    let plan =
        SyncPlan::build(&source.read_catalog().await.unwrap(), &target.read_catalog().await.unwrap(), None, mode)
            .unwrap();
    let mut builder = Orchestrator::builder(target.run_store().await.unwrap())
        .preflight(DatabaseCheck::new(Arc::clone(source), DatabaseRole::Source))
        .preflight(DatabaseCheck::new(Arc::clone(target), DatabaseRole::Target))
        .preflight(plan.schema_check())
        .engine(EngineConfig::builder().batch_size(500).build().unwrap())
        .max_concurrency(2)
        .host("test");
    for migration in sync_migrations(source, target, &plan) {
        builder = builder.shared_migration(migration);
    }
    builder.build().unwrap()
}

/// Runs a sync (see [`orchestrator`]); `force` runs completed migrations again.
pub async fn sync(source: &Arc<PgDatabase>, target: &Arc<PgDatabase>, mode: SyncMode, force: bool) -> RunSummary {
    let request = if force { RunRequest::all().force() } else { RunRequest::all() };
    orchestrator(source, target, mode).await.run(request).await.unwrap()
}

/// The counts of one migration of a run, as `(read, inserted, updated, unchanged, deleted)`.
pub fn counts(summary: &RunSummary, migration: &str) -> (u64, u64, u64, u64, u64) {
    let record = summary.migration(migration).unwrap_or_else(|| panic!("no migration `{migration}` in\n{summary}"));
    let c = record.counts;
    (c.read, c.inserted, c.updated, c.unchanged, c.deleted)
}

/// About 1 % of the rows updated, some deleted, some inserted.
pub const CHANGES: &str = r#"
UPDATE shop.customers SET name = name || ' (renamed)' WHERE id % 100 = 1;
INSERT INTO shop.customers (email, name, created_at, updated_at, external_id, referred_by)
SELECT 'late' || g || '@example.com', 'Late ' || g, timestamp '2030-01-01', timestamptz '2030-01-01 00:00:00+00',
       md5('late' || g)::uuid, CASE WHEN g <= 4 THEN 1 END
FROM generate_series(1, 10) g;
UPDATE shop."Order" SET "Total" = coalesce("Total", 0) + 1 WHERE "Id" % 100 = 2;
DELETE FROM shop.order_lines WHERE order_id > 2990;
DELETE FROM shop."Order" WHERE "Id" > 2990;
INSERT INTO shop."Order" ("Id", "select", "user", "Total", updated_at)
SELECT g, 'new', 1, 1.00, timestamptz '2030-01-01 00:00:00+00' FROM generate_series(3001, 3010) g;
INSERT INTO shop.order_lines (order_id, line, sku, quantity, price, updated_at)
SELECT g, 1, 'NEW', 1, 1.00, timestamptz '2030-01-01 00:00:00+00' FROM generate_series(3001, 3010) g;
UPDATE shop.order_lines SET quantity = quantity + 1 WHERE order_id % 100 = 3 AND line = 1;
UPDATE public."odd ""quoted"" table" SET "Value" = 'changed' WHERE "key ""k""" IN ('é2', '🦀3');
DELETE FROM public."odd ""quoted"" table" WHERE "key ""k""" IN ('a4', 'B5');
INSERT INTO public."odd ""quoted"" table" VALUES ('Zebra', 'new', NULL), ('ü-new', NULL, NULL);
"#;
