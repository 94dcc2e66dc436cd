//! Backup of a SQLite target before a run writes to it (SQLite's online backup API), and the
//! restore that rollback uses.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use dmf_core::{Backup, BackupRecord, Error, Result, RunId, Stage};
use rusqlite::TransactionBehavior;

use crate::connection::{blocking, open};
use crate::{error, sql};

/// Copies the target database file into `dir` before a run, and restores the user tables from
/// such a copy (DMF's own `dmf_` tables keep their current content, so the run record of the
/// restore survives it).
#[derive(Debug, Clone)]
pub struct SqliteBackup {
    database: PathBuf,
    dir: PathBuf,
}

impl SqliteBackup {
    /// Backs up the database at `database` into `dir` (created when missing).
    pub fn new(database: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Self { database: database.into(), dir: dir.into() }
    }

    fn file_for(&self, run: RunId) -> PathBuf {
        let stem = self.database.file_stem().and_then(|s| s.to_str()).unwrap_or("database");
        let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.dir.join(format!("{stem}-before-run-{run}-{stamp}.db"))
    }
}

#[async_trait]
impl Backup for SqliteBackup {
    async fn backup(&self, run: RunId) -> Result<BackupRecord> {
        let file = self.file_for(run);
        blocking(|| {
            std::fs::create_dir_all(&self.dir).map_err(|e| {
                Error::with_source(
                    Stage::Backup,
                    dmf_core::ErrorKind::Fatal,
                    format!("cannot create the backup directory `{}`", self.dir.display()),
                    e,
                )
            })?;
            let connection = open(&self.database)?;
            connection.backup(rusqlite::MAIN_DB, &file, None::<fn(rusqlite::backup::Progress)>).map_err(|e| {
                error::map(
                    Stage::Backup,
                    format!("backing up `{}` into `{}`", self.database.display(), file.display()),
                    e,
                )
            })
        })?;
        let size_bytes = std::fs::metadata(&file).ok().map(|m| m.len());
        Ok(BackupRecord {
            method: "sqlite-online-backup".into(),
            location: file.display().to_string(),
            taken_at: SystemTime::now(),
            size_bytes,
        })
    }

    async fn restore(&self, record: &BackupRecord) -> Result<()> {
        blocking(|| restore_tables(&self.database, Path::new(&record.location)))
    }
}

/// Replaces the content of every user table of `database` with the table's content in
/// `backup`, in one transaction.
fn restore_tables(database: &Path, backup: &Path) -> Result<()> {
    if !backup.exists() {
        return Err(Error::fatal(Stage::Rollback, format!("the backup `{}` is gone", backup.display())));
    }
    let mut connection = open(database)?;
    let context =
        |e| error::map(Stage::Rollback, format!("restoring `{}` from `{}`", database.display(), backup.display()), e);
    connection.execute("ATTACH DATABASE ? AS dmf_backup", [backup.display().to_string()]).map_err(context)?;
    let outcome = (|| {
        let tables: Vec<String> = connection
            .prepare(&sql::USER_TABLES.replace("sqlite_schema", "dmf_backup.sqlite_schema"))?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        for table in &tables {
            let name = sql::quote(table);
            tx.execute(&format!("DELETE FROM main.{name}"), [])?;
            // `WHERE true` keeps SQLite from copying the table's pages wholesale (its transfer
            // optimisation), which would skip the foreign-key bookkeeping of deferred checks.
            tx.execute(&format!("INSERT INTO main.{name} SELECT * FROM dmf_backup.{name} WHERE true"), [])?;
        }
        tx.commit()
    })();
    let detached = connection.execute("DETACH DATABASE dmf_backup", []);
    outcome.map_err(context)?;
    detached.map(|_| ()).map_err(context)
}
