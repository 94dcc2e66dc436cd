//! DMF's control tables in a SQLite target (`dmf_runs`, `dmf_migration_runs`,
//! `dmf_checkpoints`, `dmf_rejects`, `dmf_undo_log`) and the [`RunStore`] on them.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dmf_core::{
    BackupRecord, Checkpoint, Counts, Error, MigrationName, MigrationRecord, MigrationStatus, Position, Reject,
    RejectRecord, Result, RunId, RunRecord, RunStatus, RunStore, Stage,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::{blocking, open};
use crate::error;

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
    connection
        .query_row(
            "SELECT position, skip, done FROM dmf_checkpoints WHERE migration = ?",
            [migration.as_str()],
            |row| {
                Ok(Checkpoint {
                    position: row.get::<_, Option<String>>(0)?.map(Position::new),
                    skip: row.get::<_, i64>(1)?.max(0) as u64,
                    done: row.get::<_, i64>(2)? != 0,
                })
            },
        )
        .optional()
        .map_err(|e| store_error(&format!("reading the checkpoint of `{migration}`"), e))
}

/// Stores a migration's checkpoint inside the caller's transaction.
pub fn write_checkpoint(tx: &Connection, migration: &MigrationName, checkpoint: &Checkpoint) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO dmf_checkpoints (migration, position, skip, done, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (migration) DO UPDATE SET position = excluded.position, skip = excluded.skip, \
         done = excluded.done, updated_at = excluded.updated_at",
    )?
    .execute(params![
        migration.as_str(),
        checkpoint.position.as_ref().map(Position::as_str),
        checkpoint.skip as i64,
        checkpoint.done,
        now_text()
    ])?;
    Ok(())
}

/// Deletes a migration's checkpoint.
pub fn delete_checkpoint(connection: &Connection, migration: &MigrationName) -> Result<()> {
    connection
        .execute("DELETE FROM dmf_checkpoints WHERE migration = ?", [migration.as_str()])
        .map(|_| ())
        .map_err(|e| store_error(&format!("clearing the checkpoint of `{migration}`"), e))
}

fn now_text() -> String {
    time_text(SystemTime::now())
}

fn time_text(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(text: Option<String>) -> Option<SystemTime> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(SystemTime::from)
}

/// The snake_case name serde gives a status.
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

fn parse_name<T: DeserializeOwned>(name: String) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(name.clone()))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("\"not serialisable: {e}\""))
}

fn from_json<T: DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// Runs, migration records and rejects in a SQLite database's control tables.
pub struct SqliteRunStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteRunStore {
    /// Opens the store in the database at `path`, creating the control tables when missing.
    pub fn open(path: PathBuf) -> Result<Self> {
        let connection = open(&path)?;
        ensure_control_tables(&connection)?;
        Ok(Self { path, connection: Mutex::new(connection) })
    }

    fn with<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        blocking(|| {
            let mut connection: MutexGuard<'_, Connection> =
                self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection)
        })
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

const RECORD_COLUMNS: &str = "run_id, migration, status, started_at, finished_at, rows_read, rows_inserted, \
     rows_updated, rows_unchanged, rows_deleted, rows_skipped, rows_rejected, duration_ms, resumed, error";

fn record_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<MigrationRecord> {
    let count = |i: usize| row.get::<_, i64>(i).map(|v| v.max(0) as u64);
    Ok(MigrationRecord {
        run: RunId(row.get(0)?),
        migration: MigrationName::new(row.get::<_, String>(1)?),
        status: parse_name(row.get(2)?)?,
        started_at: parse_time(row.get(3)?),
        finished_at: parse_time(row.get(4)?),
        counts: Counts {
            read: count(5)?,
            inserted: count(6)?,
            updated: count(7)?,
            unchanged: count(8)?,
            deleted: count(9)?,
            skipped: count(10)?,
            rejected: count(11)?,
            deferred: 0,
        },
        duration: Duration::from_millis(row.get::<_, i64>(12)?.max(0) as u64),
        resumed: row.get::<_, i64>(13)? != 0,
        error: row.get(14)?,
    })
}

const RUN_COLUMNS: &str = "id, status, plan, host, started_at, finished_at, backup, error";

fn run_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(row.get(0)?),
        status: parse_name(row.get(1)?)?,
        plan: from_json(row.get(2)?)?,
        host: row.get(3)?,
        started_at: parse_time(row.get(4)?).unwrap_or(SystemTime::UNIX_EPOCH),
        finished_at: parse_time(row.get(5)?),
        backup: row.get::<_, Option<String>>(6)?.map(from_json).transpose()?,
        error: row.get(7)?,
    })
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn start_run(&self, plan: &[MigrationName], host: &str) -> Result<RunId> {
        self.with(|c| {
            c.execute(
                "INSERT INTO dmf_runs (status, plan, host, started_at) VALUES (?, ?, ?, ?)",
                params![name_of(&RunStatus::Running), json(&plan), host, now_text()],
            )
            .map(|_| RunId(c.last_insert_rowid()))
            .map_err(|e| store_error("recording a new run", e))
        })
    }

    async fn finish_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        self.with(|c| {
            let changed = c
                .execute(
                    "UPDATE dmf_runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                    params![name_of(&status), now_text(), error, run.0],
                )
                .map_err(|e| store_error(&format!("finishing run {run}"), e))?;
            if changed == 0 {
                return Err(Error::fatal(Stage::RunStore, format!("no run {run} to finish")));
            }
            Ok(())
        })
    }

    async fn record_backup(&self, run: RunId, backup: &BackupRecord) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE dmf_runs SET backup = ? WHERE id = ?", params![json(backup), run.0])
                .map(|_| ())
                .map_err(|e| store_error(&format!("recording the backup of run {run}"), e))
        })
    }

    async fn save_migration_record(&self, record: &MigrationRecord) -> Result<()> {
        self.with(|c| {
            let counts = &record.counts;
            c.execute(
                &format!(
                    "INSERT INTO dmf_migration_runs ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (run_id, migration) DO UPDATE SET status = excluded.status, \
                     started_at = excluded.started_at, finished_at = excluded.finished_at, \
                     rows_read = excluded.rows_read, rows_inserted = excluded.rows_inserted, \
                     rows_updated = excluded.rows_updated, rows_unchanged = excluded.rows_unchanged, \
                     rows_deleted = excluded.rows_deleted, rows_skipped = excluded.rows_skipped, \
                     rows_rejected = excluded.rows_rejected, duration_ms = excluded.duration_ms, \
                     resumed = excluded.resumed, error = excluded.error"
                ),
                params![
                    record.run.0,
                    record.migration.as_str(),
                    name_of(&record.status),
                    record.started_at.map(time_text),
                    record.finished_at.map(time_text),
                    counts.read as i64,
                    counts.inserted as i64,
                    counts.updated as i64,
                    counts.unchanged as i64,
                    counts.deleted as i64,
                    counts.skipped as i64,
                    counts.rejected as i64,
                    record.duration.as_millis() as i64,
                    record.resumed,
                    record.error,
                ],
            )
            .map(|_| ())
            .map_err(|e| store_error(&format!("saving the record of `{}` in run {}", record.migration, record.run), e))
        })
    }

    async fn latest_record(&self, migration: &MigrationName) -> Result<Option<MigrationRecord>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM dmf_migration_runs WHERE migration = ? AND status NOT IN (?, ?) \
                     ORDER BY run_id DESC LIMIT 1"
                ),
                params![migration.as_str(), name_of(&MigrationStatus::Pending), name_of(&MigrationStatus::Skipped)],
                record_from,
            )
            .optional()
            .map_err(|e| store_error(&format!("reading the latest record of `{migration}`"), e))
        })
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {RUN_COLUMNS} FROM dmf_runs WHERE id = ?"), [run.0], run_from)
                .optional()
                .map_err(|e| store_error(&format!("reading run {run}"), e))
        })
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.with(|c| {
            c.prepare(&format!("SELECT {RUN_COLUMNS} FROM dmf_runs ORDER BY id DESC LIMIT ?"))
                .and_then(|mut s| s.query_map([limit as i64], run_from)?.collect())
                .map_err(|e| store_error("listing runs", e))
        })
    }

    async fn migration_records(&self, run: RunId) -> Result<Vec<MigrationRecord>> {
        self.with(|c| {
            c.prepare(&format!("SELECT {RECORD_COLUMNS} FROM dmf_migration_runs WHERE run_id = ? ORDER BY rowid"))
                .and_then(|mut s| s.query_map([run.0], record_from)?.collect())
                .map_err(|e| store_error(&format!("reading the migrations of run {run}"), e))
        })
    }

    async fn record_rejects(&self, run: RunId, migration: &MigrationName, rejects: &[Reject]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction().map_err(|e| store_error("recording rejects", e))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO dmf_rejects (run_id, migration, stage, source_key, reason, payload, created_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .map_err(|e| store_error("recording rejects", e))?;
                let now = now_text();
                for reject in rejects {
                    insert
                        .execute(params![
                            run.0,
                            migration.as_str(),
                            name_of(&reject.stage),
                            reject.key,
                            reject.reason,
                            json(&reject.payload),
                            now
                        ])
                        .map_err(|e| store_error(&format!("recording the reject of key {}", reject.key), e))?;
                }
            }
            tx.commit().map_err(|e| store_error("recording rejects", e))
        })
    }

    async fn rejects(
        &self,
        run: RunId,
        migration: Option<&MigrationName>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RejectRecord>> {
        self.with(|c| {
            c.prepare(
                "SELECT run_id, migration, stage, source_key, reason, payload FROM dmf_rejects \
                 WHERE run_id = ? AND (? IS NULL OR migration = ?) ORDER BY id LIMIT ? OFFSET ?",
            )
            .and_then(|mut s| {
                let name = migration.map(MigrationName::as_str);
                s.query_map(params![run.0, name, name, limit as i64, offset as i64], |row| {
                    Ok(RejectRecord {
                        run: RunId(row.get(0)?),
                        migration: MigrationName::new(row.get::<_, String>(1)?),
                        reject: Reject {
                            stage: parse_name(row.get(2)?)?,
                            key: row.get(3)?,
                            reason: row.get(4)?,
                            payload: row.get::<_, Option<String>>(5)?.map(from_json).transpose()?.unwrap_or_default(),
                        },
                    })
                })?
                .collect()
            })
            .map_err(|e| store_error(&format!("reading the rejects of run {run}"), e))
        })
    }

    async fn checkpoint(&self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.with(|c| read_checkpoint(c, migration))
    }
}
