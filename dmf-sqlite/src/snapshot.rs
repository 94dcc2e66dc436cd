//! One read transaction shared by the extractors of a snapshot handle
//! ([`Database::snapshot`](dmf_core::sync::Database::snapshot)), so that every table is read
//! at the same point in time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use dmf_core::{Error, Result, Stage};
use rusqlite::Connection;

use crate::connection::{blocking, open};
use crate::error;

/// A connection with a read transaction open on it, closed (and the transaction rolled back)
/// when dropped.
///
/// SQLite has no way to hand a snapshot to another connection, so the snapshot's extractors
/// all read through this one connection, taking turns a page at a time (the mutex).
pub(crate) struct ReadSnapshot {
    path: PathBuf,
    /// The journal mode the file is in (`wal` unless it could not be switched).
    journal_mode: String,
    /// `None` once dropped (the connection is closed in [`blocking`] work: closing the last
    /// connection checkpoints the WAL).
    connection: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for ReadSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSnapshot")
            .field("path", &self.path)
            .field("journal_mode", &self.journal_mode)
            .finish_non_exhaustive()
    }
}

impl ReadSnapshot {
    /// Opens a connection to `path` and starts a read transaction on it.
    ///
    /// `BEGIN` alone takes no lock (a deferred transaction starts at its first read), so a read
    /// of the schema follows: from then on the connection sees the database as of that read,
    /// whatever other connections commit.
    pub(crate) fn begin(path: &Path) -> Result<Self> {
        let connection = open(path)?;
        let context = |e| error::map(Stage::Extract, format!("starting a read snapshot of `{}`", path.display()), e);
        connection.execute_batch("BEGIN DEFERRED").map_err(context)?;
        connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get::<_, i64>(0)).map_err(context)?;
        let journal_mode =
            connection.query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0)).map_err(context)?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                %journal_mode,
                "the SQLite source is not in WAL mode: writers wait while the snapshot is held"
            );
        }
        Ok(Self { path: path.to_owned(), journal_mode, connection: Mutex::new(Some(connection)) })
    }

    /// The file's journal mode, lower case (`wal`, `delete`, `truncate`…).
    pub(crate) fn journal_mode(&self) -> String {
        self.journal_mode.to_ascii_lowercase()
    }

    /// Runs `work` on the snapshot's connection, waiting for another extractor's page to finish
    /// first.
    pub(crate) fn read<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.connection.lock().map_err(|_| {
            Error::fatal(
                Stage::Extract,
                format!(
                    "the snapshot of `{}` is unusable: a reader panicked while using it; take a new snapshot",
                    self.path.display()
                ),
            )
        })?;
        let Some(connection) = guard.as_ref() else {
            return Err(Error::fatal(Stage::Extract, format!("the snapshot of `{}` is closed", self.path.display())));
        };
        // Some errors (I/O, disk full) make SQLite roll the transaction back by itself: reading
        // on would silently read the current state, not the snapshot.
        if connection.is_autocommit() {
            return Err(Error::fatal(
                Stage::Extract,
                format!(
                    "the read transaction holding the snapshot of `{}` has ended (after an error): take a new snapshot",
                    self.path.display()
                ),
            ));
        }
        work(connection)
    }
}

impl Drop for ReadSnapshot {
    fn drop(&mut self) {
        let Some(connection) = self.connection.get_mut().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        // This ends the snapshot (closing alone would roll back too).
        blocking(|| {
            if let Err(error) = connection.execute_batch("ROLLBACK") {
                tracing::debug!(path = %self.path.display(), %error, "ending the snapshot's read transaction");
            }
            drop(connection);
        });
    }
}
