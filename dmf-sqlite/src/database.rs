//! [`SqliteDatabase`]: a SQLite file as a sync source or target.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dmf_core::catalog::{Catalog, TableName};
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::sync::{Database, DatabaseRole, ExtractSpec, ForeignKeyTrust, KeyRange, LoadSpec, TrustedWrites};
use dmf_core::{CheckOutcome, Error, Result, RunStore, Stage};
use rusqlite::TransactionBehavior;

use crate::connection::{LazyConnection, ReadConnection, blocking, create, open};
use crate::control::{CONTROL_TABLES, check_control_tables, control_table_name};
use crate::extract::SqliteExtractor;
use crate::load::SqliteLoader;
use crate::snapshot::ReadSnapshot;
use crate::writer::Writer;
use crate::{catalog, error, sql, types};

/// A SQLite database file.
///
/// ```no_run
/// # async fn demo() -> dmf_core::Result<()> {
/// use dmf_core::sync::Database;
/// let db = dmf_sqlite::SqliteDatabase::from_url("sqlite://./legacy.db")?;
/// let catalog = db.read_catalog().await?;
/// println!("{} tables in {}", catalog.tables.len(), db.display_name());
/// # Ok(()) }
/// ```
///
/// [`snapshot`](Database::snapshot) starts a read transaction on one connection, kept open
/// until the last clone of the handle and the last of its extractors are dropped; all the
/// handle's extractors read through that connection, taking turns a page at a time. DMF
/// switches every file it opens to WAL mode, where writers on other connections keep
/// committing meanwhile (the WAL grows: checkpoints cannot pass the snapshot). In a file that
/// could not be switched and stays in a rollback-journal mode, the open read lock makes writers
/// wait for the snapshot instead (`SQLITE_BUSY` after their busy timeout); the pre-flight of a
/// snapshot handle warns then.
///
/// The [loaders](Database::loader) of a handle, its clones and its snapshot handles write
/// through one connection, taking turns a batch at a time (SQLite has one writer per file; on
/// one connection the turn passes at once and the loaded tables' pages stay cached).
///
/// Batches loaded without per-row foreign-key checks (the fast path of a `full` sync, and
/// inserts into a table without foreign keys of its own) are committed in groups: one transaction holds the batches of all such loaders, each batch with
/// its checkpoint in a savepoint, and commits once it holds 100,000 rows, is 3 seconds old or
/// has been idle for 100 ms, with a migration's last batch, and before any other use of the
/// connection. Every commit rewrites each page the transaction touched, and inserts into a
/// secondary index in random order touch about a page per row: committing per batch of 5,000
/// made a 4-million-row load several times slower. A crash loses at most the open group, whose
/// checkpoints go with it, so a resumed run repeats exactly those batches; a failed group
/// commit fails every loader with a batch in it at its next turn. Batches checked row by row
/// are each a transaction of their own.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    path: PathBuf,
    /// The read transaction of a snapshot handle.
    snapshot: Option<Arc<ReadSnapshot>>,
    /// The connection the loaders write through.
    writer: Arc<Writer>,
}

impl SqliteDatabase {
    /// An existing database file (an error names a missing file).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        blocking(|| open(&path)).map(|_| Self::at(path))
    }

    /// A database file, created empty when missing.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        blocking(|| create(&path)).map(|_| Self::at(path))
    }

    /// A handle on `path`, which exists.
    fn at(path: PathBuf) -> Self {
        let writer = Arc::new(Writer::new(path.clone()));
        Self { path, snapshot: None, writer }
    }

    /// Opens `sqlite://PATH` or `sqlite:PATH` (the file must exist).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::open(path_of_url(url)?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs SQL on a fresh connection (setting up schemas and data in examples and tests).
    pub fn execute_batch(&self, statements: &str) -> Result<()> {
        blocking(|| {
            open(&self.path)?
                .execute_batch(statements)
                .map_err(|e| error::map(Stage::Load, format!("running SQL on `{}`", self.path.display()), e))
        })
    }

    /// The run store on this database's control tables (created when missing).
    pub fn sqlite_run_store(&self) -> Result<dmf_core::control::SqlRunStore> {
        blocking(|| crate::control::run_store(self.path.clone()))
    }
}

/// The path of a `sqlite://PATH` or `sqlite:PATH` URL.
///
/// Errors show the URL without its password, and a URL that holds one (`sqlite://u:pw@h/db`,
/// a URL meant for another database) is refused, so that no later message names it as a file.
pub fn path_of_url(url: &str) -> Result<PathBuf> {
    let shown = dmf_core::redact_secrets(url);
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| Error::Config(format!("`{shown}` is not a SQLite URL: write sqlite://PATH")))?;
    if path.is_empty() {
        return Err(Error::Config(format!("`{shown}` names no file: write sqlite://PATH")));
    }
    if shown != url {
        return Err(Error::Config(format!(
            "`{shown}` holds a password, which a SQLite file has none of: write sqlite://PATH"
        )));
    }
    Ok(PathBuf::from(path))
}

impl Database for SqliteDatabase {
    type Extractor = SqliteExtractor;
    type Loader = SqliteLoader;

    /// One writer at a time: loaders of one file take turns.
    fn parallel_writes(&self) -> bool {
        false
    }

    fn display_name(&self) -> String {
        match self.snapshot {
            Some(_) => format!("sqlite://{} (snapshot)", self.path.display()),
            None => format!("sqlite://{}", self.path.display()),
        }
    }

    async fn read_catalog(&self) -> Result<Catalog> {
        blocking(|| {
            let connection = open(&self.path)?;
            catalog::read_catalog(&connection).map_err(|e| {
                error::map(Stage::Preflight, format!("reading the tables of `{}`", self.path.display()), e)
            })
        })
    }

    /// Prepares `query` (never runs it) and reads its columns' declared types: a column taken
    /// from a table has its table's type; an expression has none, and is read as stored
    /// (integer, real, text or blob).
    async fn describe_query(&self, query: &str) -> Result<Vec<dmf_core::catalog::Column>> {
        blocking(|| {
            let connection = open(&self.path)?;
            let statement = connection
                .prepare(query)
                .map_err(|e| error::map(Stage::Preflight, format!("preparing the query source `{query}`"), e))?;
            Ok(statement
                .columns()
                .map(|column| {
                    let declared = column.decl_type().unwrap_or("");
                    let data_type = match declared {
                        "" => dmf_core::catalog::DataType::Other(String::new()),
                        declared => types::data_type(declared),
                    };
                    dmf_core::catalog::Column::new(column.name(), data_type, declared)
                })
                .collect())
        })
    }

    /// The `AUTOINCREMENT` counters of `tables` in `sqlite_sequence` (a table without the
    /// keyword has none: its next rowid is always one past the largest).
    async fn triggers(&self, tables: &[TableName]) -> Result<Vec<dmf_core::catalog::Trigger>> {
        let tables = tables.to_vec();
        blocking(move || {
            let connection = open(&self.path)?;
            catalog::triggers(&connection, &tables).map_err(|e| {
                error::map(Stage::Preflight, format!("reading the triggers of `{}`", self.path.display()), e)
            })
        })
    }

    async fn sequences(&self, tables: &[TableName]) -> Result<Vec<dmf_core::catalog::Sequence>> {
        blocking(|| {
            let connection = open(&self.path)?;
            catalog::sequences(&connection, tables).map_err(|e| {
                error::map(Stage::Preflight, format!("reading sqlite_sequence of `{}`", self.path.display()), e)
            })
        })
    }

    /// Rewrites the counters' rows of `sqlite_sequence` in one transaction, values bound.
    async fn set_sequences(&self, sequences: &[dmf_core::catalog::Sequence]) -> Result<()> {
        if sequences.is_empty() {
            return Ok(());
        }
        blocking(|| {
            let mut connection = open(&self.path)?;
            let names: Vec<String> = sequences.iter().map(ToString::to_string).collect();
            let context =
                |e| error::map(Stage::Load, format!("setting {} in `{}`", names.join(", "), self.path.display()), e);
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(context)?;
            catalog::set_sequences(&tx, sequences).map_err(context)?;
            tx.commit().map_err(context)
        })
    }

    fn extractor(&self, spec: ExtractSpec) -> SqliteExtractor {
        let connection = match &self.snapshot {
            Some(snapshot) => ReadConnection::Snapshot(Arc::clone(snapshot)),
            None => ReadConnection::Own(LazyConnection::new(self.path.clone())),
        };
        SqliteExtractor::new(connection, spec)
    }

    async fn key_ranges(&self, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
        // A connection of its own: ranges read from another moment still cover every key.
        blocking(|| crate::ranges::key_ranges(&open(&self.path)?, spec, parts))
    }

    fn loader(&self, spec: LoadSpec) -> SqliteLoader {
        SqliteLoader::new(Arc::clone(&self.writer), spec)
    }

    async fn clear_tables(&self, tables: Vec<TableName>) -> Result<u64> {
        blocking(|| {
            let mut connection = open(&self.path)?;
            let context = |e| error::map(Stage::Load, format!("emptying tables of `{}`", self.path.display()), e);
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(context)?;
            // Foreign keys are checked at commit, when every table is empty: cycles and
            // self-references cannot block the deletes.
            tx.execute_batch("PRAGMA defer_foreign_keys = ON").map_err(context)?;
            let mut deleted = 0;
            for table in &tables {
                deleted += tx
                    .execute(&sql::delete_all(table), [])
                    .map_err(|e| error::map(Stage::Load, format!("emptying table `{table}`"), e))?
                    as u64;
            }
            tx.commit().map_err(context).map(|()| deleted)
        })
    }

    async fn run_store(&self) -> Result<Arc<dyn RunStore>> {
        Ok(Arc::new(self.sqlite_run_store()?))
    }

    async fn preflight(&self, role: DatabaseRole) -> Vec<CheckOutcome> {
        let side = match role {
            DatabaseRole::Source => "source",
            DatabaseRole::Target => "target",
        };
        let connection = match blocking(|| open(&self.path)) {
            Ok(connection) => connection,
            Err(error) => return vec![CheckOutcome::failed(format!("{side} connectivity"), error.chain())],
        };
        let mut outcomes = vec![CheckOutcome::passed(
            format!("{side} connectivity"),
            format!("{} (SQLite {})", self.display_name(), rusqlite::version()),
        )];
        if role == DatabaseRole::Target {
            outcomes.push(blocking(|| writable(&connection)));
            outcomes.push(blocking(|| control_tables(&connection)));
        }
        if let Some(snapshot) = &self.snapshot {
            outcomes.push(snapshot_check(&self.path, snapshot));
        }
        outcomes
    }

    async fn foreign_key_trust(
        &self,
        _tables: &[TableName],
        _writes: TrustedWrites,
        _skip_triggers: bool,
    ) -> Result<ForeignKeyTrust> {
        // `PRAGMA foreign_keys` is per connection and leaves triggers alone.
        Ok(ForeignKeyTrust {
            allowed: true,
            reason: "SQLite: the loading connections set PRAGMA foreign_keys = OFF".into(),
            per_row_tables: Vec::new(),
            silences_triggers: false,
        })
    }

    async fn find_violations(&self, check: &RuleCheck, sample: usize) -> Result<Violations> {
        dmf_core::quality::find_violations(&crate::SqliteConnector::new(self.path.clone()), check, sample).await
    }

    async fn snapshot(&self) -> Result<Self> {
        let snapshot = blocking(|| ReadSnapshot::begin(&self.path))?;
        Ok(Self { path: self.path.clone(), snapshot: Some(Arc::new(snapshot)), writer: Arc::clone(&self.writer) })
    }
}

/// What holding the snapshot does to writers, by journal mode.
fn snapshot_check(path: &Path, snapshot: &ReadSnapshot) -> CheckOutcome {
    let check = "read snapshot";
    match snapshot.journal_mode().as_str() {
        "wal" => CheckOutcome::passed(
            check,
            format!("one read transaction on `{}` (WAL mode: writers keep committing)", path.display()),
        ),
        mode => CheckOutcome::warning(
            check,
            format!(
                "`{}` is in journal mode {mode}, not WAL: writers to it wait (SQLITE_BUSY after their busy timeout) \
                 until the snapshot is dropped",
                path.display()
            ),
        ),
    }
}

fn writable(connection: &rusqlite::Connection) -> CheckOutcome {
    let check = "target accepts writes";
    let probe = connection.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
    match probe {
        Ok(()) if !connection.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) => {
            CheckOutcome::passed(check, "write lock taken and released")
        }
        Ok(()) => CheckOutcome::failed(check, "the database is open read-only"),
        Err(e) => CheckOutcome::failed(check, format!("cannot take the write lock: {e}")),
    }
}

fn control_tables(connection: &rusqlite::Connection) -> CheckOutcome {
    let check = "control tables";
    let present = CONTROL_TABLES
        .iter()
        .filter(|(name, _)| {
            connection
                .query_row(
                    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?",
                    [control_table_name(name)],
                    |_| Ok(()),
                )
                .is_ok()
        })
        .count();
    // Pre-flight writes nothing (a dry run relies on it): the run store creates missing tables.
    let outcome = if present == CONTROL_TABLES.len() {
        check_control_tables(connection).map(|()| "present, with the expected columns".to_owned())
    } else {
        Ok(format!("{} dmf_ tables missing: they will be created at the first run", CONTROL_TABLES.len() - present))
    };
    match outcome {
        Ok(detail) => CheckOutcome::passed(check, detail),
        Err(error) => CheckOutcome::failed(check, error.chain()),
    }
}
