//! Writing batches into a SQLite table, each batch committed (or lost) with its checkpoint.

use std::sync::Arc;

use dmf_core::sync::{LoadSpec, WriteMode};
use dmf_core::{
    Checkpoint, Error, ErrorKind, LoadBatch, LoadOutcome, LoadReport, Loader, MigrationName, Record, Result, Row,
    RowFailure, Stage,
};
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, params_from_iter};

use crate::control::{delete_checkpoint, ensure_control_tables, read_checkpoint, write_checkpoint};
use crate::writer::{BatchMode, Pending, Writer};
use crate::{error, sql, types, undo};

/// Loads rows into one table with prepared statements in one transaction per batch.
///
/// | write mode | statements per row | counts |
/// |---|---|---|
/// | insert | `INSERT` | inserted |
/// | insert or skip | `SELECT 1 … WHERE key`, then `INSERT` when absent | inserted / skipped |
/// | upsert | `UPDATE … WHERE key AND values differ`, then `INSERT … ON CONFLICT DO NOTHING` | updated / inserted / unchanged |
/// | update | `UPDATE … WHERE key AND values differ` | updated / unchanged |
/// | delete | `DELETE … WHERE key` | deleted |
///
/// The loaders of one [`SqliteDatabase`](crate::SqliteDatabase) write through one connection,
/// a batch at a time each, with `PRAGMA foreign_keys` as each loader needs. Batches loaded
/// without per-row foreign-key checks share a group commit: each batch is still committed or
/// lost together with its checkpoint, but several batches (of any of these loaders) commit at
/// once, and a migration's rows are committed when its last batch returns (see
/// [`SqliteDatabase`](crate::SqliteDatabase)).
pub struct SqliteLoader {
    writer: Arc<Writer>,
    /// The group holding this loader's latest batch, until it is committed.
    pending: Pending,
    spec: LoadSpec,
    statements: Statements,
    /// For each key column, its position among the loaded columns.
    key_index: Vec<usize>,
    /// The positions of the columns an update writes: neither key nor NULL in this pass (an
    /// upsert leaves deferred columns of existing rows as they are; their pass fills them).
    rest_index: Vec<usize>,
    /// Column positions written as NULL in this pass.
    null_index: Vec<bool>,
    /// The control tables were made sure of.
    ready: bool,
    /// The table references no other (no foreign key of its own), read on the first turn: its
    /// inserts cannot break a foreign key, so they need no per-row checks and may join the
    /// writer's group commit.
    no_foreign_keys: bool,
}

/// The loader's SQL, worked out once from its spec.
struct Statements {
    insert: String,
    insert_if_new: String,
    /// Insert or skip: whether the row's key is present.
    key_exists: String,
    /// `None` when every loaded column is a key or deferred column: nothing to update.
    update_if_different: Option<String>,
    delete: String,
}

impl SqliteLoader {
    pub(crate) fn new(writer: Arc<Writer>, spec: LoadSpec) -> Self {
        let columns: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let key_index = spec.key.iter().filter_map(|k| columns.iter().position(|c| c == k)).collect();
        let rest_index: Vec<usize> = (0..columns.len())
            .filter(|i| !spec.key.contains(&columns[*i]) && !spec.null_columns.contains(&columns[*i]))
            .collect();
        let null_index = columns.iter().map(|c| spec.null_columns.contains(c)).collect();
        let updated_columns: Vec<String> = rest_index.iter().map(|i| columns[*i].clone()).collect();
        let statements = Statements {
            insert: sql::insert(&spec.table, &columns),
            insert_if_new: sql::insert_if_new(&spec.table, &columns, &spec.key),
            key_exists: sql::key_exists(&spec.table, &spec.key),
            update_if_different: sql::update_if_different(&spec.table, &updated_columns, &spec.key),
            delete: sql::delete(&spec.table, &spec.key),
        };
        Self {
            writer,
            pending: Pending::default(),
            spec,
            statements,
            key_index,
            rest_index,
            null_index,
            ready: false,
            no_foreign_keys: false,
        }
    }

    /// Runs `work` on the shared writer connection in this loader's turn, outside any
    /// transaction, after making sure of the control tables (first turn).
    fn turn<T>(&mut self, work: impl FnOnce(&mut Connection, &LoadSpec) -> Result<T>) -> Result<T> {
        let (writer, spec, ready) = (&self.writer, &self.spec, self.ready);
        let result = writer.run(&mut self.pending, |connection| {
            if !ready {
                ensure_control_tables(connection)?;
            }
            work(connection, spec)
        });
        if result.is_ok() {
            self.ready = true;
        }
        result
    }

    /// Writes `batch`; with `isolate`, a row the table refuses for its content is left out and
    /// listed (its statement failed alone: SQLite rolls back a failed statement, not the
    /// transaction), else it fails the batch.
    fn write(&mut self, batch: &LoadBatch<'_, Row>, isolate: bool) -> Result<LoadOutcome> {
        if !self.ready {
            let table = self.spec.table.clone();
            self.no_foreign_keys = self.turn(|connection, _| {
                let statement = sql::foreign_key_list(&table);
                let any = connection
                    .prepare(&statement)
                    .and_then(|mut s| s.exists([]))
                    .map_err(|e| error::map(Stage::Load, format!("reading the foreign keys of `{table}`"), e))?;
                Ok(!any)
            })?;
        }
        // Off: the sync proves every foreign key with one query each after the load; or the
        // batch only inserts into a table without foreign keys, which no check concerns.
        let inserts = matches!(self.spec.write, WriteMode::Insert | WriteMode::InsertOrSkip);
        let unchecked = self.spec.trust_foreign_keys || (inserts && self.no_foreign_keys);
        let mode = BatchMode { foreign_keys: !unchecked, last: batch.checkpoint.done };
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.writer.write_batch(mode, &mut pending, |connection| {
            self.write_batch(connection, batch, isolate).map(|outcome| (outcome, batch.records.len() as u64))
        });
        self.pending = pending;
        result
    }

    /// Writes `batch` and its checkpoint on `connection`, inside the transaction (or savepoint)
    /// the writer opened.
    fn write_batch(&self, tx: &Connection, batch: &LoadBatch<'_, Row>, isolate: bool) -> Result<LoadOutcome> {
        let table = &self.spec.table;
        let context = |e: rusqlite::Error| error::map(Stage::Load, format!("writing a batch into `{table}`"), e);
        let mut report = LoadReport::default();
        let mut failed = Vec::new();
        for (index, row) in batch.records.iter().enumerate() {
            match self.write_row(tx, batch, row, &mut report) {
                Ok(()) => {}
                Err(error) if isolate && is_row_error(&error) => failed.push(RowFailure { index, error }),
                Err(error) => return Err(error),
            }
        }
        write_checkpoint(tx, batch.migration, batch.checkpoint).map_err(context)?;
        Ok(LoadOutcome { report, failed })
    }

    /// Writes one row (and its undo log entry), adding it to `report`. A failed statement
    /// leaves the transaction as it was before the row.
    fn write_row(&self, tx: &Connection, batch: &LoadBatch<'_, Row>, row: &Row, report: &mut LoadReport) -> Result<()> {
        let table = &self.spec.table;
        let write = self.spec.write;
        let undo = self.spec.undo;
        let statements = &self.statements;
        let params = |row, indexes: &[usize]| parameters(&self.null_index, row, indexes);
        let failing_row =
            |row: &Row, e: rusqlite::Error| error::map(Stage::Load, format!("table `{table}`, row {}", row.key()), e);
        let context = |e: rusqlite::Error| error::map(Stage::Load, format!("writing a batch into `{table}`"), e);
        let key_values =
            |row: &Row| -> Vec<dmf_core::Value> { self.key_index.iter().map(|i| row.values()[*i].clone()).collect() };
        let log = |tx: &Connection, row: &Row, action, before: Option<&undo::Image>| {
            undo::record(tx, batch.run, batch.migration, table, &key_values(row), action, before).map_err(context)
        };
        let all = |row| all_parameters(&self.null_index, row);
        {
            let key = || params(row, &self.key_index);
            // The row as it was, for the undo log.
            let before = if undo && !matches!(write, WriteMode::Insert | WriteMode::InsertOrSkip) {
                undo::image(tx, table, &self.spec.key, &key()).map_err(|e| failing_row(row, e))?
            } else {
                None
            };
            match write {
                WriteMode::Insert => {
                    tx.prepare_cached(&statements.insert)
                        .and_then(|mut s| s.execute(params_from_iter(all(row))))
                        .map_err(|e| failing_row(row, e))?;
                    report.inserted += 1;
                    if undo {
                        log(tx, row, undo::Action::Insert, None)?;
                    }
                }
                WriteMode::InsertOrSkip => {
                    let present = tx
                        .prepare_cached(&statements.key_exists)
                        .and_then(|mut s| s.exists(params_from_iter(key())))
                        .map_err(|e| failing_row(row, e))?;
                    if present {
                        report.skipped += 1;
                    } else {
                        tx.prepare_cached(&statements.insert)
                            .and_then(|mut s| s.execute(params_from_iter(all(row))))
                            .map_err(|e| failing_row(row, e))?;
                        report.inserted += 1;
                        if undo {
                            log(tx, row, undo::Action::Insert, None)?;
                        }
                    }
                }
                WriteMode::Upsert => {
                    let updated = match &statements.update_if_different {
                        Some(statement) => {
                            let rest = params(row, &self.rest_index);
                            tx.prepare_cached(statement)
                                .and_then(|mut s| s.execute(params_from_iter(rest.iter().chain(&key()).chain(&rest))))
                                .map_err(|e| failing_row(row, e))?
                        }
                        None => 0,
                    };
                    if updated > 0 {
                        report.updated += 1;
                        if undo {
                            log(tx, row, undo::Action::Update, before.as_ref())?;
                        }
                        return Ok(());
                    }
                    let inserted = tx
                        .prepare_cached(&statements.insert_if_new)
                        .and_then(|mut s| s.execute(params_from_iter(all(row))))
                        .map_err(|e| failing_row(row, e))?;
                    if inserted > 0 {
                        report.inserted += 1;
                        if undo {
                            log(tx, row, undo::Action::Insert, None)?;
                        }
                    } else {
                        report.unchanged += 1;
                    }
                }
                WriteMode::Update => {
                    if let Some(statement) = &statements.update_if_different {
                        let rest = params(row, &self.rest_index);
                        let changed = tx
                            .prepare_cached(statement)
                            .and_then(|mut s| s.execute(params_from_iter(rest.iter().chain(&key()).chain(&rest))))
                            .map_err(|e| failing_row(row, e))?;
                        report.updated += changed as u64;
                        report.unchanged += 1 - changed.min(1) as u64;
                        if undo && changed > 0 {
                            log(tx, row, undo::Action::Update, before.as_ref())?;
                        }
                    }
                }
                WriteMode::Delete => {
                    let changed = tx
                        .prepare_cached(&statements.delete)
                        .and_then(|mut s| s.execute(params_from_iter(key())))
                        .map_err(|e| failing_row(row, e))?;
                    report.deleted += changed as u64;
                    if undo && changed > 0 {
                        log(tx, row, undo::Action::Delete, before.as_ref())?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// True for an error about the row's content, which the row alone caused.
fn is_row_error(error: &Error) -> bool {
    matches!(error.kind(), ErrorKind::Data | ErrorKind::MissingParent)
}

/// The values of every column of `row`, NULL for the columns deferred in this pass; not
/// collected (inserts are the hot path).
fn all_parameters<'r>(null_index: &'r [bool], row: &'r Row) -> impl Iterator<Item = ToSqlOutput<'r>> + 'r {
    row.values().iter().zip(null_index).map(|(value, null)| {
        if *null { ToSqlOutput::Owned(rusqlite::types::Value::Null) } else { types::to_sql(value) }
    })
}

/// The values of `row` at `indexes`, NULL for the columns deferred in this pass.
fn parameters<'r>(null_index: &[bool], row: &'r Row, indexes: &[usize]) -> Vec<ToSqlOutput<'r>> {
    indexes
        .iter()
        .map(|i| {
            if null_index[*i] {
                ToSqlOutput::Owned(rusqlite::types::Value::Null)
            } else {
                types::to_sql(&row.values()[*i])
            }
        })
        .collect()
}

impl Loader for SqliteLoader {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadReport> {
        self.write(&batch, false).map(|outcome| outcome.report)
    }

    /// Each refused row costs its one failed statement; the rest of the batch is written.
    async fn load_isolating(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadOutcome> {
        self.write(&batch, true)
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.turn(|connection, _| read_checkpoint(connection, migration))
    }

    /// In insert mode, a batch sent again would insert its rows twice: answered from the
    /// checkpoint stored with each batch. Other modes are idempotent.
    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        dmf_core::sync::committed_batch(self.spec.write, self, migration, checkpoint, records).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        self.turn(|connection, _| delete_checkpoint(connection, migration))
    }

    async fn rollback(&mut self, migration: &MigrationName, run: dmf_core::RunId) -> Result<dmf_core::RollbackReport> {
        self.turn(|connection, spec| undo::rollback(connection, &spec.table, &spec.key, migration, run))
    }
}
