//! DMF's control tables in a SQLite target (`dmf_runs`, `dmf_migration_runs`,
//! `dmf_checkpoints`, `dmf_rejects`, `dmf_undo_log`, `dmf_leases`): their creation and shape check, and the
//! [`SqliteDialect`] and [`SqliteConnector`] on which dmf-core's control plane
//! ([`SqlRunStore`], checkpoint statements) runs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use async_trait::async_trait;
use dmf_core::control::{ControlDialect, SqlConnector, SqlRunStore, SqlSession, checkpoints};
use dmf_core::{Checkpoint, Error, MigrationName, Result, Stage, Value};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params_from_iter};

use crate::connection::{blocking, open};
use crate::{error, types};

/// The control tables (named `dmf_` + each name of [`dmf_core::sync::CONTROL_TABLES`]) and the
/// columns each must have.
pub use dmf_core::sync::CONTROL_TABLES;

/// The SQLite name of a control table: `dmf_runs`.
pub fn control_table_name(table: &str) -> String {
    format!("dmf_{table}")
}

/// Creates the control tables that are missing (idempotent).
pub const CREATE_CONTROL_TABLES: &str = "
CREATE TABLE IF NOT EXISTS dmf_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, plan TEXT NOT NULL, host TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, backup TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS dmf_migration_runs (
    run_id INTEGER NOT NULL REFERENCES dmf_runs (id), migration TEXT NOT NULL, status TEXT NOT NULL,
    started_at TEXT, finished_at TEXT,
    rows_read INTEGER NOT NULL DEFAULT 0, rows_inserted INTEGER NOT NULL DEFAULT 0,
    rows_updated INTEGER NOT NULL DEFAULT 0, rows_unchanged INTEGER NOT NULL DEFAULT 0,
    rows_deleted INTEGER NOT NULL DEFAULT 0, rows_skipped INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER NOT NULL DEFAULT 0,
    resumed INTEGER NOT NULL DEFAULT 0, error TEXT, PRIMARY KEY (run_id, migration));
CREATE TABLE IF NOT EXISTS dmf_checkpoints (
    migration TEXT PRIMARY KEY, position TEXT, skip INTEGER NOT NULL, done INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dmf_rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, migration TEXT NOT NULL, stage TEXT NOT NULL,
    source_key TEXT NOT NULL, reason TEXT NOT NULL, payload TEXT, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dmf_rejects_by_run ON dmf_rejects (run_id, migration, id);
CREATE TABLE IF NOT EXISTS dmf_undo_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, migration TEXT NOT NULL, table_name TEXT NOT NULL,
    key TEXT NOT NULL, action TEXT NOT NULL, before_image TEXT);
CREATE TABLE IF NOT EXISTS dmf_leases (
    scope TEXT PRIMARY KEY, holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, run_id INTEGER,
    acquired_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, expires_at TEXT NOT NULL);
";

fn store_error(context: &str, error: rusqlite::Error) -> Error {
    error::map(Stage::RunStore, context.to_owned(), error)
}

/// Creates missing control tables, then checks that each has the columns DMF writes.
pub fn ensure_control_tables(connection: &Connection) -> Result<()> {
    connection.execute_batch(CREATE_CONTROL_TABLES).map_err(|e| store_error("creating DMF's control tables", e))?;
    check_control_tables(connection)
}

/// Checks the shape of existing control tables: every column DMF writes must be there.
pub fn check_control_tables(connection: &Connection) -> Result<()> {
    for (table, expected) in CONTROL_TABLES {
        let table = control_table_name(table);
        let present: Vec<String> = connection
            .prepare(&crate::sql::table_info(&table))
            .and_then(|mut s| s.query_map([], |row| row.get::<_, String>("name"))?.collect())
            .map_err(|e| store_error("reading the control tables' columns", e))?;
        let missing: Vec<&str> = expected.iter().filter(|c| !present.iter().any(|p| p == *c)).copied().collect();
        if !present.is_empty() && !missing.is_empty() {
            return Err(Error::fatal(
                Stage::Preflight,
                format!(
                    "control table `{table}` lacks the columns {}: it was not made by this version of DMF",
                    missing.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Reads a migration's checkpoint.
pub fn read_checkpoint(connection: &Connection, migration: &MigrationName) -> Result<Option<Checkpoint>> {
    let context = |e| store_error(&format!("reading the checkpoint of `{migration}`"), e);
    static READ: OnceLock<String> = OnceLock::new();
    let sql = READ.get_or_init(|| checkpoints::read_statement(&SqliteDialect));
    let mut statement = connection.prepare_cached(sql).map_err(context)?;
    let mut rows = statement.query([migration.as_str()]).map_err(context)?;
    match rows.next().map_err(context)? {
        Some(row) => checkpoints::from_row(row_values(row).map_err(context)?).map(Some),
        None => Ok(None),
    }
}

/// Stores a migration's checkpoint inside the caller's transaction (once per batch: the
/// statement's text is made once).
pub fn write_checkpoint(tx: &Connection, migration: &MigrationName, checkpoint: &Checkpoint) -> rusqlite::Result<()> {
    static WRITE: OnceLock<String> = OnceLock::new();
    let params = checkpoints::write_params(migration, checkpoint, SystemTime::now());
    tx.prepare_cached(WRITE.get_or_init(|| checkpoints::write_statement(&SqliteDialect)))?
        .execute(params_from_iter(params.iter().map(types::to_sql)))?;
    Ok(())
}

/// Deletes a migration's checkpoint.
pub fn delete_checkpoint(connection: &Connection, migration: &MigrationName) -> Result<()> {
    connection
        .execute(&checkpoints::clear_statement(&SqliteDialect), [migration.as_str()])
        .map(|_| ())
        .map_err(|e| store_error(&format!("clearing the checkpoint of `{migration}`"), e))
}

/// The control tables' SQL in SQLite: `"dmf_runs"`, `?1`, `LIMIT … OFFSET …`, `RETURNING`,
/// `ON CONFLICT … DO UPDATE`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDialect;

impl ControlDialect for SqliteDialect {
    fn table(&self, name: &str) -> String {
        crate::sql::quote(&control_table_name(name))
    }

    fn column(&self, name: &str) -> String {
        crate::sql::quote(name)
    }

    fn param(&self, n: usize) -> String {
        format!("?{n}")
    }

    fn max_params(&self) -> usize {
        32_766
    }

    /// SQLite has no `OFFSET` without a `LIMIT`: the limit is then -1 (none).
    fn select_page(
        &self,
        columns: &str,
        from: &str,
        order: &str,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> String {
        match (limit, offset) {
            (None, Some(offset)) => {
                format!("SELECT {columns} FROM {from} ORDER BY {order} LIMIT -1 OFFSET {}", self.param(offset))
            }
            _ => dmf_core::control::limit_offset_page(self, columns, from, order, limit, offset),
        }
    }

    fn begin(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }

    fn commit(&self) -> &'static str {
        "COMMIT"
    }

    fn rollback(&self) -> &'static str {
        "ROLLBACK"
    }

    /// One schema (`main`), left implicit.
    fn user_table(&self, table: &dmf_core::catalog::TableName) -> String {
        crate::sql::table(table)
    }

    /// SQLite has no read-only transaction: `PRAGMA query_only` makes the connection refuse
    /// every write (`SQLITE_READONLY`) until it is turned off again.
    fn begin_read_only(&self) -> &'static str {
        "PRAGMA query_only = ON; BEGIN"
    }

    fn end_read_only(&self) -> &'static str {
        "ROLLBACK; PRAGMA query_only = OFF"
    }
}

/// Sessions on a SQLite file for dmf-core's control plane: each a connection of its own,
/// its calls run as blocking work.
#[derive(Debug, Clone)]
pub struct SqliteConnector {
    path: PathBuf,
}

impl SqliteConnector {
    /// Sessions on the database file at `path` (which must exist).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait]
impl SqlConnector for SqliteConnector {
    async fn session(&self) -> Result<Box<dyn SqlSession>> {
        let connection = blocking(|| open(&self.path))?;
        Ok(Box::new(SqliteSession { connection }))
    }

    fn dialect(&self) -> &dyn ControlDialect {
        &SqliteDialect
    }

    fn name(&self) -> String {
        format!("`{}`", self.path.display())
    }
}

struct SqliteSession {
    connection: Connection,
}

/// A row's values by their storage class.
fn row_values(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Value>> {
    (0..row.as_ref().column_count())
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Int(n),
                ValueRef::Real(f) => Value::Float(f),
                ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
                ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
            })
        })
        .collect()
}

#[async_trait]
impl SqlSession for SqliteSession {
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let connection = &self.connection;
        blocking(|| {
            connection
                .prepare_cached(sql)
                .and_then(|mut statement| statement.execute(params_from_iter(params.iter().map(types::to_sql))))
                .map(|n| n as u64)
                .map_err(|e| store_error("running a control statement", e))
        })
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let connection = &self.connection;
        blocking(|| {
            let mut statement = connection.prepare_cached(sql)?;
            let mut rows = statement.query(params_from_iter(params.iter().map(types::to_sql)))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(row_values(row)?);
            }
            Ok(out)
        })
        .map_err(|e| store_error("running a control query", e))
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        let connection = &self.connection;
        blocking(|| connection.execute_batch(sql).map_err(|e| store_error("running control statements", e)))
    }
}

/// The run store on the database at `path`, creating its control tables when missing.
pub fn run_store(path: PathBuf) -> Result<SqlRunStore> {
    ensure_control_tables(&open(&path)?)?;
    Ok(SqlRunStore::new(Arc::new(SqliteConnector::new(path))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_in_sqlite() {
        let dialect = SqliteDialect;
        assert_eq!(
            checkpoints::write_statement(&dialect),
            "INSERT INTO \"dmf_checkpoints\" (\"migration\", \"position\", \"skip\", \"done\", \"updated_at\") \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (\"migration\") DO UPDATE SET \"position\" = excluded.\"position\", \
             \"skip\" = excluded.\"skip\", \"done\" = excluded.\"done\", \"updated_at\" = excluded.\"updated_at\""
        );
        assert_eq!(
            dialect.select_page("a", "t", "id", None, Some(2)),
            "SELECT a FROM t ORDER BY id LIMIT -1 OFFSET ?2"
        );
    }

    #[test]
    fn rule_checks_in_sqlite_name_tables_without_their_schema() {
        use dmf_core::catalog::{ForeignKey, TableName};
        use dmf_core::quality::{RuleCheck, count_statement, sample_statement};
        let names = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let check = RuleCheck::ForeignKey {
            table: TableName::new(Some("main"), "shipments"),
            key: names(&["id"]),
            foreign_key: ForeignKey {
                name: "shipments(order_id, line) -> order_lines".into(),
                columns: names(&["order_id", "line"]),
                referenced_table: TableName::new(None, "order lines"),
                referenced_columns: names(&["order_id", "li\"ne"]),
                enforced: true,
            },
        };
        let from = r#"FROM "shipments" AS c WHERE c."order_id" IS NOT NULL AND c."line" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "order lines" AS p WHERE p."order_id" = c."order_id" AND p."li""ne" = c."line")"#;
        assert_eq!(count_statement(&SqliteDialect, &check), format!("SELECT count(*) {from}"));
        assert_eq!(
            sample_statement(&SqliteDialect, &check),
            format!(r#"SELECT c."id" {from} ORDER BY c."id" LIMIT ?1"#)
        );
        let predicate =
            RuleCheck::Predicate { table: TableName::new(None, "lines"), key: names(&["id"]), sql: "qty > 0".into() };
        assert_eq!(
            count_statement(&SqliteDialect, &predicate),
            r#"SELECT count(*) FROM "lines" WHERE CASE WHEN (qty > 0) THEN 1 ELSE 0 END = 0"#
        );
    }
}
