//! Catalog-driven sync: point DMF at two databases and it copies the selected tables in
//! foreign-key order, without altering the target's structure.
//!
//! Everything here is dialect-neutral. An adapter implements [`Database`] (catalog reader,
//! keyset extractor, loader, control tables); [`SyncPlan`] decides columns, keys, load order
//! and the schema diff; [`sync_migrations`] turns the plan into migrations for the
//! [`Orchestrator`](crate::Orchestrator). A large table can be read by several readers at once,
//! one per [`KeyRange`] ([`SyncPlan::with_key_ranges`]), each range a resumable migration.
//! [`AnyDatabase`] erases an adapter's type, for programs that choose their databases at run
//! time.
//!
//! | mode | what moves |
//! |---|---|
//! | `full` | the target tables are emptied (referencing tables first), then every source row is inserted, parents first |
//! | `upsert` | every source row is inserted or, where the key exists, updated when it differs |
//! | `incremental` | rows whose watermark column grew since the last run are upserted; optionally target rows missing from the source are deleted |
//! | `diff` | both sides are read in key order and compared; only rows that differ or are missing are written, and rows only in the target are deleted |

mod any;
mod catch_up;
mod deletes;
mod dry_run;
mod job;
mod merge;
mod migrations;
mod plan;
mod ranges;
mod rejected_parents;
mod sequences;
mod triggers;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

pub use any::{AnyDatabase, AnyExtractor, AnyLoader, DynDatabase};
pub use catch_up::CATCH_UP;
pub use deletes::DeleteLoader;
pub use dry_run::{DryRun, PlannedStep};
pub use job::SyncJob;
pub use merge::{MergeExtractor, MergeOutput};
pub use migrations::{CLEAR, ClearTables, DatabaseCheck, sync_migrations};
pub use plan::{FK_CHECK, PlannedCheck, SchemaCheck, SkipReason, SkippedTable, SyncPlan, TablePlan};
pub use ranges::{KeyRange, RangeReaders, parse_range_migration_name, range_migration_name, single_integer_key};
pub(crate) use sequences::read_both as read_sequences;
pub use sequences::{RecordSequences, SEQUENCES, SEQUENCES_BEFORE, SyncSequences};
pub use triggers::{TRIGGER_CHECK, TriggerPolicy};

use crate::catalog::{Catalog, Column, TableName};
use crate::checkpoint::Position;
use crate::control::tables;
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::orchestrator::{CheckOutcome, RunStore};
use crate::pipeline::{Extractor, Loader};
use crate::value::{RowShape, Value};

/// How a table is synchronised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Empty the target tables, then insert every source row.
    Full,
    /// Insert new rows, update rows that differ, leave the rest.
    Upsert,
    /// Upsert rows whose `column` is greater than at the last run.
    Incremental {
        /// The watermark column (a modification time or version number).
        column: String,
        /// Also delete target rows whose key is gone from the source.
        propagate_deletes: bool,
    },
    /// Compare both sides by key and write only the differences, deletes included.
    Diff,
}

impl SyncMode {
    /// The operations this mode's loads perform on a target table (a `full` sync's emptying
    /// of the tables aside: see [`Database::clearing_event`]), whose triggers fire.
    pub fn writes(&self) -> Vec<crate::catalog::TriggerEvent> {
        use crate::catalog::TriggerEvent::{Delete, Insert, Update};
        match self {
            SyncMode::Full => vec![Insert],
            SyncMode::Upsert | SyncMode::Incremental { propagate_deletes: false, .. } => vec![Insert, Update],
            SyncMode::Diff | SyncMode::Incremental { propagate_deletes: true, .. } => vec![Insert, Update, Delete],
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncMode::Full => f.write_str("full"),
            SyncMode::Upsert => f.write_str("upsert"),
            SyncMode::Incremental { column, .. } => write!(f, "incremental by {column}"),
            SyncMode::Diff => f.write_str("diff"),
        }
    }
}

impl FromStr for SyncMode {
    type Err = Error;

    /// `full`, `upsert`, `diff`, or `incremental:COLUMN` (add `+deletes` to propagate deletes).
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "full" => Ok(SyncMode::Full),
            "upsert" => Ok(SyncMode::Upsert),
            "diff" => Ok(SyncMode::Diff),
            other => match other.strip_prefix("incremental:") {
                Some(rest) => {
                    let (column, propagate_deletes) = match rest.strip_suffix("+deletes") {
                        Some(column) => (column, true),
                        None => (rest, false),
                    };
                    if column.is_empty() {
                        return Err(Error::Config("incremental mode needs a column: incremental:COLUMN".into()));
                    }
                    Ok(SyncMode::Incremental { column: column.to_owned(), propagate_deletes })
                }
                None => Err(Error::Config(format!(
                    "unknown sync mode `{other}`: use full, upsert, diff or incremental:COLUMN[+deletes]"
                ))),
            },
        }
    }
}

/// In which order an extractor reads a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOrder {
    /// By the key columns; positions are the last key ([`key_position`]).
    Key,
    /// By the watermark column, then the key, reading only rows after the stored watermark;
    /// positions are `[watermark, key…]`.
    Watermark {
        /// The watermark column.
        column: String,
    },
}

impl ReadOrder {
    /// The [scope](crate::Extractor::scope) of positions in this order: `None` for key order,
    /// `watermark:COLUMN` for watermark order.
    pub fn scope(&self) -> Option<String> {
        match self {
            ReadOrder::Key => None,
            ReadOrder::Watermark { column } => Some(format!("watermark:{column}")),
        }
    }
}

/// What an adapter's extractor reads.
#[derive(Debug, Clone)]
pub struct ExtractSpec {
    /// The table.
    pub table: TableName,
    /// Columns to read, in the order of the rows produced (with their types, for decoding).
    pub columns: Vec<Column>,
    /// The key columns, in key order (each is one of `columns`).
    pub key: Vec<String>,
    /// Read order.
    pub order: ReadOrder,
    /// The shape of the rows produced.
    pub shape: Arc<RowShape>,
    /// Only the keys in this range (key order only; `None`: every row).
    pub range: Option<KeyRange>,
    /// Read the rows of this query instead of the table (`SELECT … FROM a JOIN b …`): pages
    /// are keyset pages over it, `SELECT cols FROM (query) AS q WHERE (key) > (…) ORDER BY
    /// key LIMIT n`, so it resumes exactly as a table does, provided the key is unique in its
    /// result. `table` then only names the read in messages.
    pub query: Option<String>,
}

impl ExtractSpec {
    /// Where a keyset read starts: after the decoded resume position `from` (which must hold
    /// `order_len` values, the columns the rows are ordered by), and never before the spec's
    /// key range. `None` reads from the start.
    pub fn start_after(&self, from: Option<&Position>, order_len: usize) -> Result<Option<Vec<Value>>> {
        let resume = match from {
            None => None,
            Some(position) => {
                let values = decode_key_position(position)?;
                if values.len() != order_len {
                    return Err(Error::fatal(
                        Stage::Extract,
                        format!(
                            "reading {}: position `{}` has {} values, but rows are ordered by {order_len} columns",
                            self.table,
                            position.as_str(),
                            values.len(),
                        ),
                    ));
                }
                Some(values)
            }
        };
        // Within a key range, from its lower bound or the position past it.
        Ok(match &self.range {
            Some(range) => range.start(resume),
            None => resume,
        })
    }

    /// The same read, of the keys in `range` only.
    pub fn within(mut self, range: KeyRange) -> Self {
        self.range = (!range.is_all()).then_some(range);
        self
    }

    /// The [scope](crate::Extractor::scope) of the positions of this read: the read order's
    /// ([`ReadOrder::scope`]) and the key range's ([`KeyRange::scope`]), joined by `;`.
    pub fn scope(&self) -> Option<String> {
        let parts: Vec<String> =
            [self.order.scope(), self.range.as_ref().and_then(KeyRange::scope)].into_iter().flatten().collect();
        (!parts.is_empty()).then(|| parts.join(";"))
    }

    /// The range to read, checked: ranges are on the key, so only a read in key order can have
    /// one, and each bound holds one non-NULL value per key column.
    pub fn key_range(&self) -> Result<Option<&KeyRange>> {
        let Some(range) = &self.range else { return Ok(None) };
        if let ReadOrder::Watermark { column } = &self.order {
            return Err(Error::Config(format!(
                "table `{}`: key range {range} cannot be read in the order of watermark `{column}`; ranges are \
                 for reads in key order",
                self.table
            )));
        }
        for bound in [&range.after, &range.up_to].into_iter().flatten() {
            if bound.len() != self.key.len() || bound.iter().any(Value::is_null) {
                return Err(Error::Config(format!(
                    "table `{}`: key range {range} does not bound the key ({}) with one non-NULL value per column",
                    self.table,
                    self.key.join(", ")
                )));
            }
        }
        Ok(Some(range))
    }

    /// Reads every column of `table` in key order (for code-first migrations over an adapter).
    pub fn whole_table(table: &crate::catalog::Table) -> Result<Self> {
        let key = table
            .row_key()
            .ok_or_else(|| Error::Schema(format!("table `{}` has no primary key or NOT NULL unique key", table.name)))?
            .to_vec();
        let columns: Vec<Column> = table.columns.clone();
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let key_index = key.iter().filter_map(|k| names.iter().position(|n| n == k)).collect();
        Ok(Self {
            table: table.name.clone(),
            shape: Arc::new(RowShape { table: table.name.clone(), columns: names, key: key_index }),
            columns,
            key,
            order: ReadOrder::Key,
            range: None,
            query: None,
        })
    }

    /// Reads the rows of `query`, whose result has `columns` (as
    /// [`Database::describe_query`] tells them), in the order of `key` (columns of the result
    /// that identify a row). `name` names the read in messages. An error names a key column the
    /// result lacks.
    pub fn query(name: &str, query: &str, columns: Vec<Column>, key: &[&str]) -> Result<Self> {
        let table = TableName::new(None, name);
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let key_index = key
            .iter()
            .map(|k| {
                names.iter().position(|n| n == k).ok_or_else(|| {
                    Error::Schema(format!(
                        "query source `{name}`: its result has no key column `{k}` (columns: {})",
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if key.is_empty() {
            return Err(Error::Config(format!("query source `{name}`: name the key columns it is read in order of")));
        }
        Ok(Self {
            shape: Arc::new(RowShape { table: table.clone(), columns: names, key: key_index }),
            table,
            columns,
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            order: ReadOrder::Key,
            range: None,
            query: Some(query.trim().trim_end_matches(';').to_owned()),
        })
    }
}

impl LoadSpec {
    /// Writes every writable column of `table` (for code-first migrations over an adapter).
    pub fn whole_table(table: &crate::catalog::Table, write: WriteMode) -> Result<Self> {
        let key = table
            .row_key()
            .ok_or_else(|| Error::Schema(format!("table `{}` has no primary key or NOT NULL unique key", table.name)))?
            .to_vec();
        Ok(Self {
            table: table.name.clone(),
            columns: table.writable_columns().cloned().collect(),
            key,
            write,
            null_columns: BTreeSet::new(),
            undo: false,
            trust_foreign_keys: false,
        })
    }
}

/// How a loader writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Plain inserts (the table was emptied first).
    Insert,
    /// Inserts rows whose key is new; a row whose key the table already holds is left as it
    /// is and counted as skipped, by the database (`ON CONFLICT (key) DO NOTHING` or a
    /// `NOT EXISTS` test), so nothing about the target is read into memory first. Other
    /// constraint violations are rejects, as with [`Insert`](Self::Insert).
    InsertOrSkip,
    /// Insert, or update when the key exists and any value differs.
    Upsert,
    /// Delete the rows with these keys.
    Delete,
    /// Update the non-key columns of existing rows where they differ (second pass for
    /// deferred foreign keys).
    Update,
}

/// What an adapter's loader writes.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The table.
    pub table: TableName,
    /// Target columns, in the order of the rows' values.
    pub columns: Vec<Column>,
    /// The key columns, in key order.
    pub key: Vec<String>,
    /// How to write.
    pub write: WriteMode,
    /// Deferred foreign-key columns, filled by a later pass: new rows get NULL there, and an
    /// upsert leaves them as they are in existing rows (neither written nor compared), so an
    /// unchanged re-run writes nothing.
    pub null_columns: BTreeSet<String>,
    /// Record an undo log (inserted keys, before-images of updated and deleted rows) in the
    /// same transaction as each batch, so that the run can be rolled back row by row.
    pub undo: bool,
    /// Skip the target's per-row foreign-key enforcement in this loader's session (PostgreSQL
    /// `session_replication_role = replica`, SQLite `PRAGMA foreign_keys = OFF`), without
    /// changing any table: the sync proves every foreign key with one set-based query each
    /// before it reports success (see [`ForeignKeyChecks`]).
    pub trust_foreign_keys: bool,
}

impl LoadSpec {
    /// Where each of the spec's columns is in rows of `shape`: `None` when the rows have
    /// exactly the spec's columns in order (rows built by a sync), else each column matched by
    /// name. A column the rows lack is an error naming it and the table.
    ///
    /// ```
    /// use dmf_core::catalog::{Column, DataType, TableName};
    /// use dmf_core::sync::{LoadSpec, WriteMode};
    /// use dmf_core::RowShape;
    ///
    /// let table = TableName::new(None, "items");
    /// let column = |name: &str| Column::new(name, DataType::Int64, "bigint");
    /// let spec = LoadSpec {
    ///     table: table.clone(),
    ///     columns: vec![column("id"), column("qty")],
    ///     key: vec!["id".into()],
    ///     write: WriteMode::Insert,
    ///     null_columns: Default::default(),
    ///     undo: false,
    ///     trust_foreign_keys: false,
    /// };
    /// let shape = |columns: &[&str]| RowShape {
    ///     table: table.clone(),
    ///     columns: columns.iter().map(|c| c.to_string()).collect(),
    ///     key: vec![0],
    /// };
    /// assert_eq!(spec.value_order(&shape(&["id", "qty"]))?, None);
    /// assert_eq!(spec.value_order(&shape(&["qty", "note", "id"]))?, Some(vec![2, 0]));
    /// assert!(spec.value_order(&shape(&["id"])).unwrap_err().to_string().contains("no column `qty`"));
    /// # Ok::<(), dmf_core::Error>(())
    /// ```
    pub fn value_order(&self, shape: &RowShape) -> Result<Option<Vec<usize>>> {
        if shape.columns.len() == self.columns.len()
            && shape.columns.iter().zip(&self.columns).all(|(a, b)| *a == b.name)
        {
            return Ok(None);
        }
        self.columns
            .iter()
            .map(|column| {
                shape.columns.iter().position(|c| *c == column.name).ok_or_else(|| {
                    Error::fatal(
                        Stage::Load,
                        format!("loading {}: the rows have no column `{}`", self.table, column.name),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// [`Loader::committed`] for an adapter's loader of a `write` mode
/// that stores each batch's checkpoint in the batch's transaction: for plain inserts, whether
/// the batch committed ([`committed_insert`](crate::committed_insert)); for the other modes
/// `None`, so the batch is sent again, which is harmless: an upsert, update, delete or insert
/// that skips existing keys applied a second time finds the rows as the first left them and
/// changes nothing (its counts then miss what the lost answer would have said: rows inserted
/// the first time are counted skipped).
pub async fn committed_batch<L: Loader>(
    write: WriteMode,
    loader: &mut L,
    migration: &crate::MigrationName,
    checkpoint: &crate::Checkpoint,
    records: usize,
) -> Result<Option<crate::LoadReport>> {
    if write != WriteMode::Insert {
        return Ok(None);
    }
    crate::committed_insert(loader, migration, checkpoint, records).await
}

/// How a `full` sync has the target's foreign keys checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForeignKeyChecks {
    /// Deferred to a set-based proof after the load when the target allows the loading
    /// sessions to skip per-row checks (and no user trigger would be silenced); per row
    /// otherwise.
    #[default]
    Auto,
    /// Per row, by the target, always (the slow path).
    PerRow,
}

impl FromStr for ForeignKeyChecks {
    type Err = Error;

    /// `auto` or `per-row`.
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(Self::Auto),
            "per-row" => Ok(Self::PerRow),
            other => Err(Error::Config(format!("unknown foreign-key check mode `{other}`: use auto or per-row"))),
        }
    }
}

/// What the loads that would skip per-row foreign-key checks write
/// ([`Database::foreign_key_trust`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedWrites {
    /// Inserts only (a `full` sync's loads): only INSERT triggers could be silenced.
    Inserts,
    /// Inserts, updates and deletes (the tables of a NOT NULL foreign-key cycle in the other
    /// modes): triggers on any of them.
    Any,
}

/// Whether a target lets loading sessions skip per-row foreign-key checks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyTrust {
    /// True when the loading sessions may skip per-row checks.
    pub allowed: bool,
    /// Why (or why not), in a sentence for pre-flight.
    pub reason: String,
    /// Tables that keep per-row checks even so, with the reason (PostgreSQL: a user trigger
    /// that skipping would silence).
    pub per_row_tables: Vec<(TableName, String)>,
    /// True when sessions that skip per-row checks also skip the tables' triggers
    /// (PostgreSQL's `replica` role; SQL Server's bulk loads without `FIRE_TRIGGERS`), which
    /// is how a sync skips triggers with `--skip-target-triggers`. False where triggers fire
    /// whatever the session does (SQLite).
    pub silences_triggers: bool,
}

/// Which side of a sync a database is on (pre-flight differs: a source may be a replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseRole {
    /// Read from.
    Source,
    /// Written to.
    Target,
}

/// A database adapter: what a sync needs from each side.
///
/// Used through generics (a sync is generic over its source and target), so native `async`
/// methods; [`AnyDatabase`] is the type-erased handle for databases chosen at run time.
/// `extractor` and `loader` are cheap: they connect on first use.
///
/// A method added here must also be forwarded by the wrappers that delegate every method,
/// defaulted ones included, or they would fall back to the default: [`DynDatabase`] and
/// [`AnyDatabase`] (`sync/any`), and dmf-testkit's `FaultyDatabase`.
pub trait Database: Send + Sync + 'static {
    /// The keyset extractor.
    type Extractor: Extractor<Item = crate::value::Row>;
    /// The loader.
    type Loader: Loader<Item = crate::value::Row>;

    /// The database as shown to people: never a password.
    fn display_name(&self) -> String;

    /// True when several loaders writing to this database at once finish sooner than one
    /// (client/server databases, where each loader has a server process of its own). SQLite
    /// writes one transaction at a time, so its loaders only take turns: callers choose how
    /// many key-range readers to split a large table into by default from this, and a table
    /// loaded without per-row foreign-key checks loads beside its parents only when this is
    /// true ([`TablePlan::waits_for`]).
    fn parallel_writes(&self) -> bool {
        true
    }

    /// Reads every user table (control tables excluded).
    fn read_catalog(&self) -> impl Future<Output = Result<Catalog>> + Send;

    /// The columns of `query`'s result, with their types, without running it (prepared, or
    /// read with `LIMIT 0`): what a query source ([`ExtractSpec::query`]) decodes its rows by.
    /// The default refuses: the adapter reads no query sources.
    fn describe_query(&self, query: &str) -> impl Future<Output = Result<Vec<Column>>> + Send {
        let message = format!("{} cannot read query sources", self.display_name());
        let _ = query;
        async move { Err(Error::Config(message)) }
    }

    /// An extractor for `spec`.
    fn extractor(&self, spec: ExtractSpec) -> Self::Extractor;

    /// Splits the key space of `spec.table` (its key columns `spec.key`, compared as its
    /// extractor compares them) into at most `parts` contiguous [`KeyRange`]s of about as many
    /// rows each, to be read at the same time: the first range has no lower bound and the last
    /// no upper bound, so together they hold every key, including keys inserted after the split.
    ///
    /// A single integer key ([`single_integer_key`]) is cut into equal widths between its
    /// minimum and maximum ([`KeyRange::split_integers`]); other keys at the keys that divide a
    /// sample of them in equal parts ([`KeyRange::between`]). Reads the source (an index
    /// lookup, or one scan of a sample or of the key), writes nothing; fewer ranges than
    /// `parts` (one for an empty table) when there are too few keys.
    fn key_ranges(
        &self,
        spec: &ExtractSpec,
        parts: std::num::NonZeroUsize,
    ) -> impl Future<Output = Result<Vec<KeyRange>>> + Send;

    /// A loader for `spec`; checkpoints go to this database's control tables.
    fn loader(&self, spec: LoadSpec) -> Self::Loader;

    /// Deletes every row of `tables`, in the given order, in one transaction; returns how many
    /// rows were deleted.
    fn clear_tables(&self, tables: Vec<TableName>) -> impl Future<Output = Result<u64>> + Send;

    /// The run store on this database's control tables, created when missing.
    fn run_store(&self) -> impl Future<Output = Result<Arc<dyn RunStore>>> + Send;

    /// Whether this database, as a target, lets loading sessions skip per-row foreign-key
    /// checks for `tables` ([`LoadSpec::trust_foreign_keys`]), and which tables must keep them.
    /// `writes`: what those loads do, which decides the tables' triggers that skipping would
    /// silence (an insert-only load fires no UPDATE or DELETE trigger). `skip_triggers`: the
    /// user accepts that skipping also silences them.
    fn foreign_key_trust(
        &self,
        tables: &[TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> impl Future<Output = Result<ForeignKeyTrust>> + Send;

    /// Called once per run after the set-based proof found no orphan, before the run is
    /// reported completed, with the tables loaded without per-row checks
    /// ([`LoadSpec::trust_foreign_keys`]).
    ///
    /// For a target whose fast path changes what the database believes about its own
    /// constraints: SQL Server marks the foreign keys and CHECK constraints a bulk load without
    /// `CHECK_CONSTRAINTS` skipped as not trusted, and re-validates here the ones that were
    /// trusted before the load. Nothing else may change: a sync never alters the target's
    /// structure. An error fails the run and names the constraint and the table. The default
    /// does nothing (PostgreSQL and SQLite skip checks per session and leave no trace).
    fn after_trusted_load(&self, tables: &[TableName]) -> impl Future<Output = Result<()>> + Send {
        let _ = tables;
        async { Ok(()) }
    }

    /// The sequences that fill columns of `tables` — owned by one of their columns (serial,
    /// identity), named in one of their defaults, or the table's own counter (SQL Server
    /// `IDENTITY`, SQLite `AUTOINCREMENT`) — each with the last value it handed out. Reads only.
    /// The default knows none (a database without sequences).
    fn sequences(&self, tables: &[TableName]) -> impl Future<Output = Result<Vec<crate::catalog::Sequence>>> + Send {
        let _ = tables;
        async { Ok(Vec::new()) }
    }

    /// The enabled user triggers on `tables` (internal ones, such as PostgreSQL's foreign-key
    /// triggers, excluded), for pre-flight to say which fire on the sync's writes. Reads only.
    /// The default knows none.
    fn triggers(&self, tables: &[TableName]) -> impl Future<Output = Result<Vec<crate::catalog::Trigger>>> + Send {
        let _ = tables;
        async { Ok(Vec::new()) }
    }

    /// The operation by which [`clear_tables`](Self::clear_tables) empties a table, whose
    /// triggers a `full` sync fires: `DELETE` by default, `TRUNCATE` on PostgreSQL.
    fn clearing_event(&self) -> crate::catalog::TriggerEvent {
        crate::catalog::TriggerEvent::Delete
    }

    /// Sets each of `sequences` (named as [`sequences`](Self::sequences) names them) to its
    /// [`last_value`](crate::catalog::Sequence::last_value), so that the next value handed out
    /// follows it (`None`: as if it had handed out none), in one transaction where the database
    /// allows. Values are bound, or formatted from the integer where the statement takes only a
    /// literal. An error names the sequence and the value. The default refuses any sequence
    /// (it is only called with sequences this database listed).
    fn set_sequences(&self, sequences: &[crate::catalog::Sequence]) -> impl Future<Output = Result<()>> + Send {
        let refused = sequences.first().map(|s| {
            Error::fatal(Stage::Load, format!("setting sequence {s}: {} has no sequences", self.display_name()))
        });
        async move { refused.map_or(Ok(()), Err) }
    }

    /// Checks before any write: connectivity, and for a target that it accepts writes and that
    /// its control tables exist or can be created. Writes nothing (a dry run relies on it).
    fn preflight(&self, role: DatabaseRole) -> impl Future<Output = Vec<CheckOutcome>> + Send;

    /// The rows of this database that break `check`: their count, and the keys of up to
    /// `sample` of them in key order (formatted through
    /// [`RuleCheck::key_shape`](crate::quality::RuleCheck::key_shape)).
    ///
    /// One set-based query per check, whatever the table's size (an anti-join for a foreign
    /// key, a grouping for a unique key), plus one bounded by `sample` for the keys; never
    /// skipped for a key the database enforces, since disabled or unvalidated constraints are
    /// where violations hide. Identifiers are quoted and the sample size bound; only a
    /// [`RuleCheck::Predicate`](crate::quality::RuleCheck::Predicate)'s SQL, the user's own, is
    /// run as given, and only in a read-only transaction. The adapters answer with
    /// [`quality::find_violations`](crate::quality::find_violations) over their control-plane
    /// connector: the statements are written once, in dmf-core.
    fn find_violations(
        &self,
        check: &crate::quality::RuleCheck,
        sample: usize,
    ) -> impl Future<Output = Result<crate::quality::Violations>> + Send;
    /// A handle on the same database whose extractors all read one consistent snapshot, taken now
    /// and held until every clone of the returned handle (and every extractor made from one) is
    /// dropped.
    ///
    /// By default an extractor reads in short keyset queries and holds no transaction open on
    /// the source between pages, so rows committed during a sync may be seen by one table and
    /// not by another (a child whose parent was read before it was inserted). Every extractor of
    /// a snapshot handle, whatever its table and whenever it starts, sees the database exactly
    /// as it was when `snapshot` returned: a sync from it copies that state in one pass.
    ///
    /// Costs, while the snapshot is held:
    /// - PostgreSQL: one connection keeps a read-only `REPEATABLE READ` transaction open (and
    ///   each extractor another, importing the exported snapshot): vacuum cannot remove row
    ///   versions newer than the snapshot anywhere in the cluster, so busy tables bloat for as
    ///   long as the sync runs.
    /// - SQLite: one connection keeps a read transaction open and every extractor reads through
    ///   it, one page at a time. In WAL mode writers still commit, but checkpoints cannot pass
    ///   the snapshot's end mark, so the WAL file grows; in a rollback-journal mode the open read
    ///   lock makes writers wait (`SQLITE_BUSY` after the busy timeout).
    /// - Databases whose sessions cannot share a snapshot (SQL Server) return an error naming
    ///   the alternative.
    ///
    /// A snapshot lives only in this process and only as long as the handle: a resumed run
    /// (after a crash or a cancel) reads a new snapshot, and the rows loaded before the
    /// interruption came from the old one, so only a run that completes in one pass is an exact
    /// copy of one point in time. Calling `snapshot` on a snapshot handle takes a new snapshot.
    ///
    /// A snapshot handle is meant as a source. Its catalog read, pre-flight, loaders, run store
    /// and `clear_tables` behave as the original handle's do, on their own connections, outside
    /// the snapshot (its extractors do not see what its loaders write).
    fn snapshot(&self) -> impl Future<Output = Result<Self>> + Send
    where
        Self: Sized;
}

/// A table read one keyset page at a time: what a database adapter implements so that
/// [`page_stream`] turns it into an [`Extractor`]'s stream.
pub trait PagedSource: Send {
    /// The page after `after` (from the start when `None`), at most `limit` rows; `None` when
    /// there are no more rows.
    fn page(
        &mut self,
        after: Option<&Position>,
        limit: usize,
    ) -> impl Future<Output = Result<Option<crate::pipeline::SourceBatch<crate::value::Row>>>> + Send;
}

/// Streams `source`'s pages from `from`: a short page is the last (no extra query), and the
/// stream ends after an error.
pub fn page_stream<S: PagedSource>(
    source: &mut S,
    from: Option<Position>,
    batch_size: std::num::NonZeroUsize,
) -> futures::stream::BoxStream<'_, Result<crate::pipeline::SourceBatch<crate::value::Row>>> {
    use futures::StreamExt;
    futures::stream::unfold((source, from, false), move |(source, position, finished)| async move {
        if finished {
            return None;
        }
        match source.page(position.as_ref(), batch_size.get()).await {
            Ok(Some(batch)) => {
                let finished = batch.records.len() < batch_size.get();
                let position = Some(batch.position.clone());
                Some((Ok(batch), (source, position, finished)))
            }
            Ok(None) => None,
            Err(error) => Some((Err(error), (source, position, true))),
        }
    })
    .boxed()
}

/// The control tables every adapter keeps in the target (under schema `dmf` or prefix `dmf_`),
/// with the columns DMF writes; pre-flight checks existing ones have them all.
pub const CONTROL_TABLES: [(&str, &[&str]); 6] = [
    ("runs", &tables::RUNS),
    ("migration_runs", &tables::MIGRATION_RUNS),
    ("checkpoints", &tables::CHECKPOINTS),
    ("rejects", &tables::REJECTS),
    ("undo_log", &tables::UNDO_LOG),
    ("leases", &tables::LEASES),
];

/// Encodes key values as an extractor position (a JSON array). All keyset extractors use it,
/// so a merge of two extractors can resume both from one key.
pub fn key_position(values: &[Value]) -> Result<Position> {
    Position::encode(values)
}

/// Decodes a position written by [`key_position`].
pub fn decode_key_position(position: &Position) -> Result<Vec<Value>> {
    position.decode().map_err(|e| {
        Error::with_source(
            Stage::Extract,
            ErrorKind::Fatal,
            format!("`{}` is not a key position", position.as_str()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("full".parse::<SyncMode>().unwrap(), SyncMode::Full);
        assert_eq!(
            "incremental:updated_at+deletes".parse::<SyncMode>().unwrap(),
            SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true }
        );
        assert!("incremental:".parse::<SyncMode>().is_err());
        assert!("merge".parse::<SyncMode>().unwrap_err().to_string().contains("unknown sync mode `merge`"));
    }

    #[test]
    fn key_positions_round_trip() {
        let key = vec![Value::Int(7), Value::Text("a\"b".into())];
        assert_eq!(decode_key_position(&key_position(&key).unwrap()).unwrap(), key);
    }
}
