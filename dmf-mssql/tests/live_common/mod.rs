//! Shared by the live tests (`tests/live_*.rs`): they run against the TDS server named by
//! `DMF_TEST_MSSQL_URL` (an `mssql://` URL or an ADO.NET string of a login that may create
//! databases). `scripts/test` starts Babelfish for them when `../shared/babelfish` exists.
//!
//! Which tests run is decided when they are built (`build.rs` sets
//! `cfg(dmf_mssql_server = "none" | "babelfish" | "sqlserver")` from `DMF_TEST_MSSQL_URL` and
//! `DMF_TEST_MSSQL_SERVER`): without a server every live test is ignored with that reason, and
//! on Babelfish the tests that need what only SQL Server has (MERGE, BACKUP, …) are ignored
//! with theirs. The runner lists them as `ignored`, never as `ok`.
//!
//! Each test works in databases of its own (`dmf_test_<label>_<random>`), dropped at the end.
//! The schema is the PostgreSQL integration tests' rich schema in T-SQL, plus what only SQL
//! Server has: a rowversion, money, a computed column, datetimeoffset, a legacy datetime.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest, RunSummary};
use dmf_mssql::executor::Connect;
use dmf_mssql::{Executor, MssqlConfig, MssqlDatabase, MssqlOptions, MssqlPool, PoolOptions, UpsertStrategy};
use tokio::sync::{Mutex, OnceCell};

/// True when the tests were built for Babelfish (`DMF_TEST_MSSQL_SERVER=babelfish`).
pub const BABELFISH: bool = cfg!(dmf_mssql_server = "babelfish");

/// The name of the table whose name needs quoting. SQL Server's has a `]` (written `]]` inside
/// brackets); Babelfish 4.3 does not parse `]]` inside brackets, so there it has none.
pub const ODD_NAME: &str = if BABELFISH { "odd \"quoted\" table" } else { "odd \"quoted\" ]table" };

/// The name of the table created as `shop.[Order]`: Babelfish 4.3's catalog shows it folded
/// to lower case.
pub const ORDER_NAME: &str = if BABELFISH { "order" } else { "Order" };

/// The upsert strategies the sync tests run with: both on SQL Server; on Babelfish, which has
/// no MERGE, the MERGE-free one.
pub const UPSERT_STRATEGIES: &[UpsertStrategy] =
    if BABELFISH { &[UpsertStrategy::UpdateInsert] } else { &[UpsertStrategy::Merge, UpsertStrategy::UpdateInsert] };

/// `ODD_NAME` quoted, as the fixtures' SQL writes it in place of `$ODD`.
pub fn odd_sql() -> String {
    format!("[{}]", ODD_NAME.replace(']', "]]"))
}

/// The fixture SQL `sql` with `$ODD` replaced by the odd table's quoted name.
pub fn fixture(sql: &str) -> String {
    sql.replace("$ODD", &odd_sql())
}

/// The server's URL. The live tests are ignored when they were built without one; run by
/// hand with `--ignored` and none set, they fail rather than pass without checking anything.
pub async fn server_url(test: &str) -> String {
    let url = match std::env::var("DMF_TEST_MSSQL_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("live SQL Server test `{test}` needs DMF_TEST_MSSQL_URL (see dmf-mssql/README.md)"),
    };
    check_server_kind(&url).await;
    url
}

/// Fails when the server is not the kind the tests were built for: a test ignored for
/// Babelfish must not be skipped against SQL Server, nor run against Babelfish unmarked.
async fn check_server_kind(url: &str) {
    static CHECKED: OnceCell<()> = OnceCell::const_new();
    CHECKED
        .get_or_init(|| async {
            let version = admin(url).await.query("SELECT @@VERSION", &[]).await.unwrap()[0].text_required(0).unwrap();
            let is_babelfish = version.contains("Babelfish");
            assert_eq!(
                is_babelfish,
                BABELFISH,
                "the live tests were built for {} but the server says: {version}\n\
                 set DMF_TEST_MSSQL_SERVER=babelfish for Babelfish (unset for SQL Server) and run them again",
                if BABELFISH { "Babelfish" } else { "SQL Server" },
            );
        })
        .await;
}

/// Babelfish 4.3 fails CREATE and DROP DATABASE run at the same time ("tuple concurrently
/// updated"): the tests of one binary take turns for them.
static DATABASE_DDL: Mutex<()> = Mutex::const_new(());

/// A session on `master` of the server.
pub async fn admin(url: &str) -> Box<dyn Executor> {
    let config = MssqlConfig::parse(url).unwrap().with_database("master");
    MssqlPool::new(config, PoolOptions::default()).session().await.unwrap()
}

/// A database created for one test and dropped when it ends (even when it panics).
pub struct TestDb {
    pub name: String,
    pub url: String,
    config: MssqlConfig,
}

impl TestDb {
    pub async fn create(url: &str, label: &str) -> Self {
        let name = format!("dmf_test_{label}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let _turn = DATABASE_DDL.lock().await;
        // Babelfish fails catalog changes made at the same moment by another process ("tuple
        // concurrently updated", a PostgreSQL catalog conflict): the mutex orders this
        // process's, and another test process's are retried.
        let mut attempt = 0;
        while let Err(error) = admin(url).await.batch(&format!("CREATE DATABASE [{name}]")).await {
            attempt += 1;
            assert!(attempt < 5 && error.to_string().contains("concurrently updated"), "CREATE DATABASE: {error}");
            tokio::task::yield_now().await;
        }
        let config = MssqlConfig::parse(url).unwrap().with_database(&name);
        Self { name, url: url.to_owned(), config }
    }

    pub fn database(&self) -> Arc<MssqlDatabase> {
        self.database_with(MssqlOptions::default())
    }

    /// This database as a target writing upserts with `strategy`.
    pub fn upserting(&self, strategy: UpsertStrategy) -> Arc<MssqlDatabase> {
        self.database_with(MssqlOptions { upsert: strategy, ..MssqlOptions::default() })
    }

    pub fn database_with(&self, options: MssqlOptions) -> Arc<MssqlDatabase> {
        Arc::new(MssqlDatabase::from_config(self.config.clone(), options))
    }

    /// A session of its own on this database, for the test's own SQL.
    pub async fn session(&self) -> Box<dyn Executor> {
        MssqlPool::new(self.config.clone(), PoolOptions::default()).session().await.unwrap()
    }

    /// Runs `sql` (with `$ODD` standing for the odd table) as one batch.
    pub async fn batch(&self, sql: &str) {
        let sql = fixture(sql);
        self.session().await.batch(&sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = fixture(sql);
        let rows = self.session().await.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
        rows[0].int(0).unwrap().unwrap_or(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let _turn = DATABASE_DDL.lock().await;
                let mut admin = admin(&url).await;
                // Babelfish has no ALTER DATABASE; its DROP DATABASE ends the sessions itself.
                let single_user = if BABELFISH {
                    String::new()
                } else {
                    format!("ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; ")
                };
                admin
                    .batch(&format!("IF DB_ID(N'{name}') IS NOT NULL BEGIN {single_user}DROP DATABASE [{name}]; END"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// The rich schema, in T-SQL. `CREATE SCHEMA` must be alone in its batch: it is the first.
pub const RICH_SCHEMA: [&str; 2] = [
    "CREATE SCHEMA shop",
    r#"
CREATE TABLE shop.customers (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    email nvarchar(200) NOT NULL UNIQUE,
    name nvarchar(max) NOT NULL,
    bio nvarchar(max) NULL,
    avatar varbinary(max) NULL,
    balance decimal(38,10) NOT NULL DEFAULT 0,
    credit money NULL,
    rating real NULL,
    score float NULL,
    active bit NOT NULL DEFAULT 1,
    born date NULL,
    wake_up time(3) NULL,
    created_at datetime2(6) NOT NULL,
    updated_at datetimeoffset(6) NOT NULL,
    external_id uniqueidentifier NOT NULL,
    prefs nvarchar(max) NULL,
    tags nvarchar(max) NULL,
    code char(4) NULL,
    name_upper AS UPPER(LEFT(name, 100)),
    referred_by bigint NULL REFERENCES shop.customers (id),
    rv rowversion NOT NULL
);
CREATE TABLE shop.[Order] (
    [Id] int NOT NULL PRIMARY KEY,
    [select] nvarchar(max) NOT NULL,
    [user] bigint NOT NULL REFERENCES shop.customers (id),
    [Total] decimal(12,2) NULL,
    updated_at datetimeoffset(6) NOT NULL
);
CREATE TABLE shop.order_lines (
    order_id int NOT NULL REFERENCES shop.[Order] ([Id]),
    line smallint NOT NULL,
    sku nvarchar(50) NOT NULL,
    quantity int NOT NULL,
    price decimal(10,2) NOT NULL,
    updated_at datetime NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE shop.departments (
    id int NOT NULL PRIMARY KEY,
    name nvarchar(100) NOT NULL,
    head_id int NULL,
    updated_at datetime2 NOT NULL
);
CREATE TABLE shop.employees (
    id int NOT NULL PRIMARY KEY,
    name nvarchar(100) NOT NULL,
    department_id int NOT NULL REFERENCES shop.departments (id),
    updated_at datetime2 NOT NULL
);
ALTER TABLE shop.departments ADD CONSTRAINT departments_head FOREIGN KEY (head_id) REFERENCES shop.employees (id);
CREATE TABLE dbo.$ODD (
    [key "k"] nvarchar(100) NOT NULL PRIMARY KEY,
    [Value] nvarchar(max) NULL,
    updated_at datetime2 NULL
);
"#,
];

/// The rich data: unicode and emoji, tabs and newlines, brackets and quotes, a ~100 KB
/// text, bytes with zero and backslash bytes, decimal(38,10) at full size, NULLs in every
/// nullable column, self-references, and the departments/employees cycle filled after both.
pub const RICH_DATA: &str = r#"
WITH n AS (SELECT TOP (1000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS g
           FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b)
INSERT INTO shop.customers (email, name, bio, avatar, balance, credit, rating, score, active, born, wake_up, created_at,
                            updated_at, external_id, prefs, tags, code)
SELECT CONCAT(N'user', g, N'@example.com'),
       CASE WHEN g % 97 = 0 THEN CONCAT(N'tab', NCHAR(9), N'here', NCHAR(10), N'new line ]] '' "q" \N')
            WHEN g % 3 = 0 THEN CONCAT(N'Zoë Ünïcødé ', g, N' 🦀') ELSE CONCAT(N'Customer ', g) END,
       CASE WHEN g = 7 THEN REPLICATE(CAST(N'日本語🦀' AS nvarchar(max)), 20000) WHEN g % 4 = 0 THEN NULL ELSE CONCAT(N'bio of ', g) END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE HASHBYTES('MD5', CAST(g AS varchar(10))) + 0x005C00FF END,
       CASE WHEN g = 1 THEN 9999999999999999999999999999.9999999999
            ELSE CAST(g * 1234567.0123456789 * CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END AS decimal(38,10)) END,
       CASE WHEN g % 9 = 0 THEN NULL ELSE CAST(g * 12.3456 AS money) END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE CAST(g / 7.0 AS real) END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE g * 0.1E0 END,
       CAST(CASE WHEN g % 2 = 0 THEN 1 ELSE 0 END AS bit),
       CASE WHEN g % 17 = 0 THEN NULL ELSE DATEADD(day, g, CAST('1950-01-01' AS date)) END,
       DATEADD(millisecond, g * 1500, CAST('06:00' AS time(3))),
       DATEADD(microsecond, g * 123456, DATEADD(second, g * 61, CAST('2020-01-01' AS datetime2(6)))),
       DATEADD(second, g, CAST('2024-01-01T00:00:00+00:00' AS datetimeoffset(6))),
       NEWID(),
       CASE WHEN g % 10 = 0 THEN NULL ELSE CONCAT(N'{"g":', g, N'}') END,
       N'{"tags":["a"],"ünï":true}',
       CASE WHEN g % 8 = 0 THEN NULL ELSE RIGHT(CONCAT('000', g % 1000), 3) END
FROM n;
UPDATE shop.customers SET referred_by = ((id * 7) % 1000) + 1 WHERE id % 5 = 0;

WITH n AS (SELECT TOP (1000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS g
           FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b)
INSERT INTO shop.[Order] ([Id], [select], [user], [Total], updated_at)
SELECT g, CASE WHEN g % 2 = 0 THEN N'pick' ELSE CONCAT(N'choose ', g) END, (g % 1000) + 1,
       CASE WHEN g % 9 = 0 THEN NULL ELSE CAST(g * 3.37 AS decimal(12,2)) END,
       DATEADD(second, g, CAST('2024-01-01T00:00:00+00:00' AS datetimeoffset(6)))
FROM n;

WITH n AS (SELECT TOP (1000) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS g
           FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b)
INSERT INTO shop.order_lines (order_id, line, sku, quantity, price, updated_at)
SELECT o.g, l.line, CONCAT(N'SKU-', o.g, N'-', l.line), l.line * 2, CAST(o.g * l.line * 1.5 AS decimal(10,2)),
       DATEADD(second, o.g, CAST('2024-01-01' AS datetime))
FROM n AS o CROSS JOIN (VALUES (CAST(1 AS smallint)), (CAST(2 AS smallint))) AS l(line);

WITH n AS (SELECT TOP (500) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS g
           FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b)
INSERT INTO shop.departments (id, name, head_id, updated_at)
SELECT g, CONCAT(N'Department ', g), NULL, DATEADD(second, g, CAST('2024-01-01' AS datetime2)) FROM n WHERE g <= 50;
WITH n AS (SELECT TOP (500) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS g
           FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b)
INSERT INTO shop.employees (id, name, department_id, updated_at)
SELECT g, CONCAT(N'Employee ', g), (g % 50) + 1, DATEADD(second, g, CAST('2024-01-01' AS datetime2)) FROM n;
UPDATE shop.departments SET head_id = id * 10 WHERE id % 3 <> 0;

WITH n AS (SELECT TOP (200) CAST(ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS int) AS g
           FROM sys.all_objects AS a CROSS JOIN sys.all_objects AS b)
INSERT INTO dbo.$ODD ([key "k"], [Value], updated_at)
SELECT CASE g % 4 WHEN 0 THEN CONCAT(N'a', g) WHEN 1 THEN CONCAT(N'B', g) WHEN 2 THEN CONCAT(N'é', g) ELSE CONCAT(N'🦀', g) END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE CONCAT(N'v', g) END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE DATEADD(second, g, CAST('2024-01-01' AS datetime2)) END
FROM n;
"#;

/// Changes an application would make (the watermark columns move with them).
pub const CHANGES: &str = r#"
UPDATE shop.customers SET name = CONCAT(name, N' (renamed)'), updated_at = DATEADD(second, id, CAST('2030-01-01T00:00:00+00:00' AS datetimeoffset(6)))
WHERE id % 100 = 1;
INSERT INTO shop.customers (email, name, created_at, updated_at, external_id, referred_by)
SELECT CONCAT(N'late', v.g, N'@example.com'), CONCAT(N'Late ', v.g), '2030-01-01', '2030-02-01T00:00:00+00:00', NEWID(),
       CASE WHEN v.g <= 4 THEN 1 END
FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) AS v(g);
UPDATE shop.[Order] SET [Total] = ISNULL([Total], 0) + 1, updated_at = '2030-01-01T00:00:00+00:00' WHERE [Id] % 100 = 2;
DELETE FROM shop.order_lines WHERE order_id > 990;
DELETE FROM shop.[Order] WHERE [Id] > 990;
INSERT INTO shop.[Order] ([Id], [select], [user], [Total], updated_at)
SELECT v.g, N'new', 1, 1.00, '2030-01-01T00:00:00+00:00' FROM (VALUES (1001), (1002), (1003)) AS v(g);
INSERT INTO shop.order_lines (order_id, line, sku, quantity, price, updated_at)
SELECT v.g, 1, N'NEW', 1, 1.00, '2030-01-01' FROM (VALUES (1001), (1002), (1003)) AS v(g);
UPDATE shop.order_lines SET quantity = quantity + 1, updated_at = '2030-01-01' WHERE order_id % 100 = 3 AND line = 1;
UPDATE dbo.$ODD SET [Value] = N'changed', updated_at = '2030-01-01' WHERE [key "k"] IN (N'é2', N'🦀3');
DELETE FROM dbo.$ODD WHERE [key "k"] IN (N'a4', N'B5');
INSERT INTO dbo.$ODD VALUES (N'Zebra', N'new', '2030-01-01'), (N'ü-new', NULL, '2030-01-01');
"#;

/// Every table with the columns its fingerprint covers (not the rowversion, which differs
/// between databases by design) and its key (the order Babelfish's fingerprint reads in).
pub const TABLES: [(&str, &str, &str); 6] = [
    (
        "shop.customers",
        "id, email, name, bio, avatar, balance, credit, rating, score, active, born, wake_up, created_at, updated_at, \
         external_id, prefs, tags, code, name_upper, referred_by",
        "id",
    ),
    ("shop.[Order]", "[Id], [select], [user], [Total], updated_at", "[Id]"),
    ("shop.order_lines", "order_id, line, sku, quantity, price, updated_at", "order_id, line"),
    ("shop.departments", "id, name, head_id, updated_at", "id"),
    ("shop.employees", "id, name, department_id, updated_at", "id"),
    ("dbo.$ODD", "[key \"k\"], [Value], updated_at", "[key \"k\"]"),
];

/// Two databases with the rich schema; the source filled.
pub async fn rich_pair(url: &str, label: &str) -> (TestDb, TestDb) {
    let source = TestDb::create(url, &format!("{label}_src")).await;
    let target = TestDb::create(url, &format!("{label}_dst")).await;
    for db in [&source, &target] {
        for batch in RICH_SCHEMA {
            db.batch(batch).await;
        }
    }
    source.batch(RICH_DATA).await;
    (source, target)
}

/// [`rich_pair`] with the three decimal columns as `float`: the rich schema as far as
/// Babelfish 4.3 bulk-loads it correctly (it garbles bulk-loaded decimals, see
/// `live_sync::bulk_loaded_decimals_read_back_equal`).
pub async fn rich_pair_without_decimals(url: &str, label: &str) -> (TestDb, TestDb) {
    let source = TestDb::create(url, &format!("{label}_src")).await;
    let target = TestDb::create(url, &format!("{label}_dst")).await;
    let tables = RICH_SCHEMA[1]
        .replace("balance decimal(38,10)", "balance float")
        .replace("[Total] decimal(12,2)", "[Total] float")
        .replace("price decimal(10,2)", "price float");
    assert!(!tables.contains("decimal"), "every decimal column replaced");
    for db in [&source, &target] {
        db.batch(RICH_SCHEMA[0]).await;
        db.batch(&tables).await;
    }
    source.batch(RICH_DATA).await;
    (source, target)
}

/// The rich pair as far as this server loads it correctly: [`rich_pair`] on SQL Server,
/// [`rich_pair_without_decimals`] on Babelfish.
pub async fn rich_pair_for_this_server(url: &str, label: &str) -> (TestDb, TestDb) {
    if BABELFISH { rich_pair_without_decimals(url, label).await } else { rich_pair(url, label).await }
}

/// Each table's row count and checksum, computed by SQL Server alone (independent of DMF),
/// plus the total length of the customers' long texts and bytes.
///
/// Babelfish 4.3 has no `CHECKSUM_AGG`: there the checksum is a hash of every cell exactly
/// as the server sends it (tiberius's decoding, not DMF's), row by row in key order.
pub async fn fingerprints(db: &TestDb) -> BTreeMap<String, (i64, i64)> {
    let mut session = db.session().await;
    let mut prints = BTreeMap::new();
    for (table, columns, key) in TABLES {
        let print = if BABELFISH {
            let sql = fixture(&format!("SELECT {columns} FROM {table} ORDER BY {key}"));
            let rows = session.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
            let mut hasher = std::hash::DefaultHasher::new();
            for row in &rows {
                std::hash::Hash::hash(&format!("{:?}", row.0), &mut hasher);
            }
            (rows.len() as i64, std::hash::Hasher::finish(&hasher) as i64)
        } else {
            let sql = fixture(&format!(
                "SELECT COUNT_BIG(*), CAST(ISNULL(CHECKSUM_AGG(BINARY_CHECKSUM({columns})), 0) AS bigint) FROM {table}"
            ));
            let rows = session.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
            (rows[0].int(0).unwrap().unwrap(), rows[0].int(1).unwrap().unwrap())
        };
        prints.insert(table.to_owned(), print);
    }
    let lengths = session
        .query("SELECT CAST(SUM(CAST(ISNULL(DATALENGTH(bio), 0) + ISNULL(DATALENGTH(avatar), 0) AS bigint)) AS bigint) FROM shop.customers", &[])
        .await
        .unwrap();
    prints.insert("shop.customers lengths".into(), (lengths[0].int(0).unwrap().unwrap_or(0), 0));
    prints
}

/// Runs a sync of every table, batches of 300, two tables at a time.
pub async fn sync(source: &Arc<MssqlDatabase>, target: &Arc<MssqlDatabase>, mode: SyncMode, undo: bool) -> RunSummary {
    SyncJob::new(Arc::clone(source), Arc::clone(target), mode)
        .engine(EngineConfig::builder().batch_size(300).build().unwrap())
        .jobs(2)
        .undo(undo)
        .run(RunRequest::all().force())
        .await
        .unwrap()
}

/// `(read, inserted, updated, unchanged, deleted)` of one migration of a run.
pub fn counts(summary: &RunSummary, migration: &str) -> (u64, u64, u64, u64, u64) {
    let record = summary.migration(migration).unwrap_or_else(|| panic!("no migration `{migration}` in\n{summary}"));
    let c = record.counts;
    (c.read, c.inserted, c.updated, c.unchanged, c.deleted)
}
