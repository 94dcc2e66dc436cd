//! Opening SQLite files the way DMF needs them, and running blocking SQLite work without
//! stalling the async runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dmf_core::{Error, Result, Stage};
use rusqlite::{Connection, OpenFlags};

use crate::error;
use crate::snapshot::ReadSnapshot;

/// Runs blocking SQLite work: on a multi-threaded runtime the worker thread is handed over to
/// it (`block_in_place`), so borrowed rows need no copy; elsewhere (a current-thread runtime in
/// tests) it runs inline.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Opens an existing database file read-write (never creates one: a missing file is an
/// error naming it), with a busy timeout, write-ahead logging and foreign keys enforced.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::fatal(Stage::Preflight, format!("SQLite database `{}` does not exist", path.display())));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|e| error::map(Stage::Preflight, format!("cannot open SQLite database `{}`", path.display()), e))?;
    configure(&connection, path)?;
    Ok(connection)
}

/// Opens a database file, creating an empty one when it does not exist.
pub(crate) fn create(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path)
        .map_err(|e| error::map(Stage::Preflight, format!("cannot create SQLite database `{}`", path.display()), e))?;
    configure(&connection, path)?;
    Ok(connection)
}

fn configure(connection: &Connection, path: &Path) -> Result<()> {
    let context = || format!("configuring SQLite database `{}`", path.display());
    connection.busy_timeout(Duration::from_secs(30)).map_err(|e| error::map(Stage::Preflight, context(), e))?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(|e| error::map(Stage::Preflight, context(), e))?;
    Ok(())
}

/// A connection opened on first use and reopened after a fatal error.
pub(crate) struct LazyConnection {
    path: PathBuf,
    connection: Option<Connection>,
}

impl LazyConnection {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, connection: None }
    }

    /// The open connection (opening it if needed).
    pub(crate) fn get(&mut self) -> Result<&mut Connection> {
        match &mut self.connection {
            Some(connection) => Ok(connection),
            slot => Ok(slot.insert(open(&self.path)?)),
        }
    }
}

/// Where an extractor reads: its own connection, or the connection of a snapshot that it shares
/// with the snapshot's other extractors.
pub(crate) enum ReadConnection {
    /// Opened on first use; each page is a query of its own, no transaction held between pages.
    Own(LazyConnection),
    /// The read transaction of [`SqliteDatabase::snapshot`](dmf_core::sync::Database::snapshot).
    Snapshot(Arc<ReadSnapshot>),
}

impl ReadConnection {
    /// Runs blocking `work` on the connection (see [`blocking`]).
    pub(crate) fn run<T>(&mut self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match self {
            ReadConnection::Own(lazy) => blocking(|| work(lazy.get()?)),
            ReadConnection::Snapshot(snapshot) => blocking(|| snapshot.read(work)),
        }
    }
}
