//! Whole syncs over any [`Database`], written once and run by every adapter's tests: undo and
//! rollback ([`undo_rollback`], [`rollback_refusals`]), quality rules ([`rules`]) and lost
//! COMMIT answers ([`lost_commit_answer`]).
//!
//! An adapter hands the scenarios a [`SyncFixture`]: new databases holding the suite's two
//! tables in its own DDL, and a [`SqlConnector`] on each. The scenarios fill, change and read
//! those tables through the connector, with identifiers quoted by its
//! [`ControlDialect`](dmf_core::control::ControlDialect) and every value bound, so the data and
//! the assertions are the same on every database.
//!
//! The schema each database created by [`SyncFixture::database`] must hold, and nothing else
//! (no control tables):
//!
//! | table | column | type |
//! |---|---|---|
//! | `parents` | `id` | integer, the primary key |
//! | | `name` | text of up to 100 characters, NOT NULL |
//! | | `score` | integer, NULL allowed |
//! | `children` | `id` | integer, the primary key |
//! | | `parent_id` | integer, NOT NULL, a foreign key named `children_parent_id_fkey` to `parents (id)`, enforced |
//! | | `note` | text of any length, NULL allowed |
//!
//! Integers are read back as [`Value::Int`], texts as [`Value::Text`]. The names are the
//! adapter's to place in a schema ([`SyncFixture::table`]). Each scenario panics with a
//! message naming what differed, like an assertion in a test.
//!
//! A fixture on SQLite files:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! use std::sync::Arc;
//! use dmf_core::catalog::TableName;
//! use dmf_core::control::SqlConnector;
//! use dmf_sqlite::{SqliteConnector, SqliteDatabase};
//! use dmf_testkit::conformance::sync::{self, SyncFixture};
//!
//! struct Files(tempfile::TempDir);
//!
//! impl SyncFixture for Files {
//!     type Database = SqliteDatabase;
//!
//!     async fn database(&self, label: &str) -> SqliteDatabase {
//!         let database = SqliteDatabase::create(self.0.path().join(format!("{label}.db"))).unwrap();
//!         database
//!             .execute_batch(
//!                 "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER);
//!                  CREATE TABLE children (id INTEGER PRIMARY KEY,
//!                      parent_id INTEGER NOT NULL REFERENCES parents (id), note TEXT);",
//!             )
//!             .unwrap();
//!         database
//!     }
//!
//!     fn connector(&self, database: &SqliteDatabase) -> Arc<dyn SqlConnector> {
//!         Arc::new(SqliteConnector::new(database.path().to_path_buf()))
//!     }
//!
//!     fn table(&self, name: &str) -> TableName {
//!         TableName::new(None, name)
//!     }
//! }
//!
//! sync::rules(&Files(tempfile::tempdir().unwrap())).await;
//! # }
//! ```

mod lost_answer;
mod rollback;
mod rules;

use std::future::Future;
use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::control::SqlConnector;
use dmf_core::sync::Database;
use dmf_core::{EngineConfig, RejectLimit, RunId, RunSummary, Value};

pub use lost_answer::lost_commit_answer;
pub use rollback::{rollback_refusals, undo_rollback};
pub use rules::rules;

/// What an adapter provides to run the sync scenarios: new databases holding the suite's
/// tables (see the [module docs](self)), and sessions on them for the scenarios' own
/// statements.
///
/// Used only through generics, so native `async` methods.
pub trait SyncFixture: Send + Sync {
    /// The adapter's database. Cloned handles reach the same database.
    type Database: Database + Clone;

    /// A new database holding the suite's two tables, empty, and no control tables. `label`
    /// says what for (`rules_src`), for names of files or databases; each call makes a new
    /// database, which lives at least as long as the fixture.
    fn database(&self, label: &str) -> impl Future<Output = Self::Database> + Send;

    /// Sessions on `database`, for statements on the suite's tables and reads of its control
    /// tables.
    fn connector(&self, database: &Self::Database) -> Arc<dyn SqlConnector>;

    /// The suite's table `name` (`parents`, `children`) as this adapter names it: in its
    /// default schema (`public.parents`, `dbo.parents`), or without one.
    fn table(&self, name: &str) -> TableName;
}

/// One of the suite's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Parents,
    Children,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Parents => "parents",
            Table::Children => "children",
        }
    }

    fn columns(self) -> [&'static str; 3] {
        match self {
            Table::Parents => ["id", "name", "score"],
            Table::Children => ["id", "parent_id", "note"],
        }
    }
}

/// A row of `parents`: `(id, name, score)`.
type Parent = (i64, String, Option<i64>);
/// A row of `children`: `(id, parent_id, note)`.
type Child = (i64, i64, Option<String>);

fn parent_values((id, name, score): &Parent) -> Vec<Value> {
    vec![Value::Int(*id), Value::Text(name.clone()), score.map_or(Value::Null, Value::Int)]
}

fn child_values((id, parent, note): &Child) -> Vec<Value> {
    vec![Value::Int(*id), Value::Int(*parent), note.clone().map_or(Value::Null, Value::Text)]
}

/// Both tables' rows, each in key order, as the database returns them.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    parents: Vec<Vec<Value>>,
    children: Vec<Vec<Value>>,
}

impl Content {
    fn of(parents: &[Parent], children: &[Child]) -> Self {
        let mut parents: Vec<Vec<Value>> = parents.iter().map(parent_values).collect();
        let mut children: Vec<Vec<Value>> = children.iter().map(child_values).collect();
        for rows in [&mut parents, &mut children] {
            rows.sort_by_key(|row| match row.first() {
                Some(Value::Int(id)) => *id,
                _ => i64::MIN,
            });
        }
        Self { parents, children }
    }
}

/// One database of a scenario: the adapter's handle, a connector on it, and the names of the
/// suite's tables there.
struct Side<D> {
    database: D,
    connector: Arc<dyn SqlConnector>,
    parents: TableName,
    children: TableName,
}

impl<D: Database + Clone> Side<D> {
    async fn new<F: SyncFixture<Database = D>>(fixture: &F, label: &str) -> Self {
        let database = fixture.database(label).await;
        let connector = fixture.connector(&database);
        Self { database, connector, parents: fixture.table("parents"), children: fixture.table("children") }
    }

    fn name(&self, table: Table) -> &TableName {
        match table {
            Table::Parents => &self.parents,
            Table::Children => &self.children,
        }
    }

    /// Runs `sql` with `params` on a new session; returns the rows it changed.
    async fn execute(&self, sql: &str, params: &[Value]) -> u64 {
        let mut session = self.connector.session().await.unwrap_or_else(|e| panic!("connecting: {}", e.chain()));
        session.execute(sql, params).await.unwrap_or_else(|e| panic!("{}\n{sql}\n{params:?}", e.chain()))
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Vec<Vec<Value>> {
        let mut session = self.connector.session().await.unwrap_or_else(|e| panic!("connecting: {}", e.chain()));
        session.query(sql, params).await.unwrap_or_else(|e| panic!("{}\n{sql}\n{params:?}", e.chain()))
    }

    async fn insert(&self, table: Table, rows: Vec<Vec<Value>>) {
        let dialect = self.connector.dialect();
        let columns: Vec<String> = table.columns().iter().map(|c| dialect.column(c)).collect();
        let params: Vec<String> = (1..=columns.len()).map(|n| dialect.param(n)).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            dialect.user_table(self.name(table)),
            columns.join(", "),
            params.join(", ")
        );
        for row in rows {
            assert_eq!(self.execute(&sql, &row).await, 1, "one row inserted by {sql}");
        }
    }

    async fn insert_parents(&self, rows: &[Parent]) {
        self.insert(Table::Parents, rows.iter().map(parent_values).collect()).await;
    }

    async fn insert_children(&self, rows: &[Child]) {
        self.insert(Table::Children, rows.iter().map(child_values).collect()).await;
    }

    /// Fills both tables, parents first.
    async fn fill(&self, parents: &[Parent], children: &[Child]) {
        self.insert_parents(parents).await;
        self.insert_children(children).await;
    }

    /// Every row of `table`, in key order.
    async fn rows(&self, table: Table) -> Vec<Vec<Value>> {
        let dialect = self.connector.dialect();
        let columns: Vec<String> = table.columns().iter().map(|c| dialect.column(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            dialect.user_table(self.name(table)),
            dialect.column("id")
        );
        self.query(&sql, &[]).await
    }

    async fn content(&self) -> Content {
        Content { parents: self.rows(Table::Parents).await, children: self.rows(Table::Children).await }
    }

    /// How many entries of `run` the undo log holds.
    async fn undo_entries(&self, run: RunId) -> i64 {
        let dialect = self.connector.dialect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = {}",
            dialect.count_rows(),
            dialect.table("undo_log"),
            dialect.column("run_id"),
            dialect.param(1)
        );
        match self.query(&sql, &[Value::Int(run.0)]).await.first().and_then(|row| row.first()) {
            Some(Value::Int(count)) => *count,
            other => panic!("a count from {sql}, not {other:?}"),
        }
    }

    /// Asserts that the quarantine of `run` is empty.
    async fn assert_no_rejects(&self, summary: &RunSummary) {
        assert!(summary.migrations.iter().all(|m| m.counts.rejected == 0), "nothing rejected\n{summary}");
        let store = self.database.run_store().await.unwrap_or_else(|e| panic!("the run store: {}", e.chain()));
        let rejects = store.rejects(summary.run, None, 10, 0).await.unwrap_or_else(|e| panic!("{}", e.chain()));
        assert!(rejects.is_empty(), "nothing in the quarantine: {rejects:?}");
    }
}

/// Batches of `rows`, no reject allowed: a scenario's rows all load.
fn engine(rows: usize) -> EngineConfig {
    EngineConfig::builder()
        .batch_size(rows)
        .reject_limit(RejectLimit::Count(0))
        .build()
        .unwrap_or_else(|e| panic!("engine configuration: {}", e.chain()))
}

/// The source's rows of the rollback and lost-answer scenarios: `parents` parents and twice
/// as many children, with NULLs, negative numbers, quotes and characters outside ASCII.
fn source_rows(parents: i64) -> (Vec<Parent>, Vec<Child>) {
    let parent_rows = (1..=parents)
        .map(|id| {
            let name = if id % 7 == 0 { format!("Zoë 'q' \"d\" 🦀 {id}") } else { format!("Parent {id}") };
            (id, name, (id % 5 != 0).then_some(id * 3 - 50))
        })
        .collect();
    let children = (1..=parents * 2)
        .map(|id| (id, 1 + (id * 7) % parents, (id % 4 != 0).then(|| format!("note {id} — ünï"))))
        .collect();
    (parent_rows, children)
}
