//! [`MssqlBackup`]: a COPY_ONLY full backup of the target before the first write, verified,
//! and the restore that rollback can ask for.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dmf_core::{Backup, BackupRecord, Error, Result, RunId, Stage, Value};

use crate::error::to_dmf_error;
use crate::executor::{Connect, Executor};
use crate::preflight::{DatabaseState, ServerFacts};
use crate::sql::admin as sql;

/// What the record of a backup says took it.
pub const BACKUP_METHOD: &str = "mssql-copy-only";

/// A `BACKUP DATABASE … TO DISK = … WITH COPY_ONLY, CHECKSUM, INIT` of the target, taken on
/// an admin session (database `master`, no command timeout) and checked with
/// `RESTORE VERIFYONLY … WITH CHECKSUM` and msdb's backup history (copy-only, with
/// checksums). `COPY_ONLY` leaves the server's own backup chain as it was. Compressed where
/// the edition can (not Express or Web).
///
/// The file is written by the SQL Server service on the server's file system, as
/// `<directory>/<database>_dmf_run<run>_<UTC time>.bak` (`directory`: configured, or the
/// server's default backup directory on SQL Server 2019 and later); the client never sees
/// it. Azure SQL Database has no `BACKUP TO DISK`: refused there.
///
/// [`restore`](Backup::restore) runs, on `master`:
/// `ALTER DATABASE … SET SINGLE_USER WITH ROLLBACK IMMEDIATE`, `RESTORE DATABASE … FROM DISK
/// … WITH REPLACE`, `ALTER DATABASE … SET MULTI_USER` (also after a failed restore). **It
/// discards every write made since the backup, by anyone, not only the run's, and disconnects
/// every session.** It refuses a database in an availability group (remove it from the group
/// first, and reseed the secondaries after).
pub struct MssqlBackup {
    connector: Arc<dyn Connect>,
    directory: Option<String>,
    compression: Option<bool>,
}

impl MssqlBackup {
    pub(crate) fn new(connector: Arc<dyn Connect>, directory: Option<String>) -> Self {
        Self { connector, directory, compression: None }
    }

    /// Forces compression on or off (default: on where the edition supports it).
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = Some(on);
        self
    }

    async fn admin(&self, stage: Stage) -> Result<Box<dyn Executor>> {
        self.connector.admin_session().await.map_err(|e| {
            to_dmf_error(
                e,
                stage,
                format!("cannot open an admin session (database master) on {}", self.connector.display_name()),
            )
        })
    }
}

/// The backup file for `database` and `run`: `<directory><sep><database>_dmf_run<run>_<time>.bak`,
/// the separator taken from the directory (`\` on Windows paths), characters other than
/// letters, digits, `-` and `_` in the database name replaced by `_`.
pub(crate) fn backup_path(directory: &str, database: &str, run: RunId, taken_at: SystemTime) -> String {
    let separator = if directory.contains('\\') && !directory.contains('/') { '\\' } else { '/' };
    let directory = directory.trim_end_matches(['/', '\\']);
    let safe: String =
        database.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let stamp = DateTime::<Utc>::from(taken_at).format("%Y%m%dT%H%M%SZ");
    format!("{directory}{separator}{safe}_dmf_run{run}_{stamp}.bak")
}

/// Whether the edition compresses backups: not Express (engine edition 4) nor Web.
pub(crate) fn edition_compresses(facts: &ServerFacts) -> bool {
    facts.engine_edition != 4 && !facts.edition.contains("Express") && !facts.edition.contains("Web")
}

#[async_trait]
impl Backup for MssqlBackup {
    async fn backup(&self, run: RunId) -> Result<BackupRecord> {
        let database = self.connector.database();
        let server = self.connector.display_name();
        let mut session = self.admin(Stage::Backup).await?;
        let executor = session.as_mut();
        let fail = |doing: String| move |e| to_dmf_error(e, Stage::Backup, doing);
        let facts =
            executor.query(sql::SERVER_FACTS, &[]).await.map_err(fail(format!("asking {server} for its edition")))?;
        let facts = facts
            .first()
            .map(ServerFacts::from_row)
            .transpose()
            .map_err(fail(format!("reading the edition of {server}")))?
            .ok_or_else(|| Error::fatal(Stage::Backup, "SERVERPROPERTY returned no row"))?;
        if facts.is_azure_sql_database() {
            return Err(Error::fatal(
                Stage::Backup,
                format!(
                    "{server} is Azure SQL Database, which has no BACKUP TO DISK: use point-in-time restore or a database copy"
                ),
            ));
        }
        let directory = match &self.directory {
            Some(directory) => directory.clone(),
            None => {
                let rows = executor
                    .query(sql::DEFAULT_BACKUP_PATH, &[])
                    .await
                    .map_err(fail(format!("asking {server} for its default backup directory")))?;
                rows.first().and_then(|row| row.text(0).ok().flatten()).filter(|d| !d.is_empty()).ok_or_else(|| {
                    Error::fatal(
                        Stage::Backup,
                        format!("{server} reports no default backup directory (before SQL Server 2019): configure one"),
                    )
                })?
            }
        };
        let taken_at = SystemTime::now();
        let path = backup_path(&directory, &database, run, taken_at);
        let compression = self.compression.unwrap_or_else(|| edition_compresses(&facts));
        let params = [Value::Text(database.clone()), Value::Text(path.clone())];
        tracing::info!(%server, %path, compression, "taking a COPY_ONLY backup");
        executor
            .execute(&sql::backup(compression), &params)
            .await
            .map_err(fail(format!("backing up [{database}] to {path} on {server}")))?;
        executor
            .execute(sql::VERIFY, &[Value::Text(path.clone())])
            .await
            .map_err(fail(format!("verifying the backup {path} on {server}")))?;
        let history = executor
            .query(sql::BACKUP_HISTORY, &params)
            .await
            .map_err(fail(format!("reading the backup history of [{database}] on {server}")))?;
        let Some(row) = history.first() else {
            return Err(Error::fatal(
                Stage::Backup,
                format!("msdb has no record of the backup {path} of [{database}]"),
            ));
        };
        let size = row.int(0).ok().flatten().and_then(|n| u64::try_from(n).ok());
        let copy_only = row.bool(2).ok().flatten().unwrap_or(false);
        let checksums = row.bool(3).ok().flatten().unwrap_or(false);
        if !copy_only || !checksums {
            return Err(Error::fatal(
                Stage::Backup,
                format!(
                    "msdb records the backup {path} as copy-only {copy_only}, with checksums {checksums}: expected both"
                ),
            ));
        }
        Ok(BackupRecord { method: BACKUP_METHOD.to_owned(), location: path, taken_at, size_bytes: size })
    }

    async fn restore(&self, record: &BackupRecord) -> Result<()> {
        if record.method != BACKUP_METHOD {
            return Err(Error::fatal(
                Stage::Rollback,
                format!(
                    "the backup {} was taken by `{}`, not by this SQL Server backup",
                    record.location, record.method
                ),
            ));
        }
        let database = self.connector.database();
        let server = self.connector.display_name();
        let mut session = self.admin(Stage::Rollback).await?;
        let executor = session.as_mut();
        let fail = |doing: String| move |e| to_dmf_error(e, Stage::Rollback, doing);
        let state = executor
            .query(sql::DATABASE_STATE, &[Value::Text(database.clone())])
            .await
            .map_err(fail(format!("reading the state of [{database}] on {server}")))?;
        let in_group =
            state.first().map(DatabaseState::from_row).transpose().map_err(fail("reading the state".into()))?;
        if in_group.is_some_and(|s| s.in_availability_group) {
            return Err(Error::fatal(
                Stage::Rollback,
                format!(
                    "[{database}] is in an availability group: DMF does not restore it automatically; remove it from \
                     the group, restore {} WITH REPLACE, and reseed the secondaries",
                    record.location
                ),
            ));
        }
        tracing::warn!(
            %server, database = %database, backup = %record.location,
            "restoring with REPLACE: every write since the backup is discarded, and every session is disconnected"
        );
        executor
            .batch(&sql::single_user(&database))
            .await
            .map_err(fail(format!("setting [{database}] to single-user mode on {server}")))?;
        let restored = executor
            .execute(sql::RESTORE, &[Value::Text(database.clone()), Value::Text(record.location.clone())])
            .await
            .map_err(fail(format!("restoring [{database}] from {} on {server}", record.location)));
        // Back to multi-user whatever happened; a failure here is reported after the
        // restore's own.
        let multi = executor
            .batch(&sql::multi_user(&database))
            .await
            .map_err(fail(format!("setting [{database}] back to multi-user mode on {server}")));
        restored?;
        multi?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn backup_files_are_named_after_database_run_and_time() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_268_800);
        assert_eq!(
            backup_path("/var/opt/mssql/backup/", "Sales", RunId(42), at),
            "/var/opt/mssql/backup/Sales_dmf_run42_20260101T120000Z.bak"
        );
        assert_eq!(
            backup_path("D:\\Backups", "Sales DB]'; --", RunId(7), at),
            "D:\\Backups\\Sales_DB____--_dmf_run7_20260101T120000Z.bak"
        );
    }

    #[test]
    fn only_editions_with_compression_compress() {
        let facts = |engine_edition, edition: &str| ServerFacts {
            engine_edition,
            product_version: "16.0.1000.6".into(),
            edition: edition.into(),
            hadr_enabled: false,
            server_name: "s".into(),
        };
        assert!(edition_compresses(&facts(3, "Developer Edition (64-bit)")));
        assert!(edition_compresses(&facts(2, "Standard Edition (64-bit)")));
        assert!(!edition_compresses(&facts(4, "Express Edition (64-bit)")));
        assert!(!edition_compresses(&facts(2, "Web Edition (64-bit)")));
    }
}
