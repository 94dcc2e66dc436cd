//! Writing batches into a SQLite table, each batch and its checkpoint in one transaction.

use std::path::PathBuf;

use dmf_core::sync::{LoadSpec, WriteMode};
use dmf_core::{Checkpoint, LoadBatch, LoadReport, Loader, MigrationName, Record, Result, Row, Stage};
use rusqlite::types::ToSqlOutput;
use rusqlite::{TransactionBehavior, params_from_iter};

use crate::connection::{LazyConnection, blocking};
use crate::control::{delete_checkpoint, ensure_control_tables, read_checkpoint, write_checkpoint};
use crate::{error, sql, types, undo};

/// Loads rows into one table with prepared statements in one transaction per batch.
///
/// | write mode | statements per row | counts |
/// |---|---|---|
/// | insert | `INSERT` | inserted |
/// | upsert | `UPDATE … WHERE key AND values differ`, then `INSERT … ON CONFLICT DO NOTHING` | updated / inserted / unchanged |
/// | update | `UPDATE … WHERE key AND values differ` | updated / unchanged |
/// | delete | `DELETE … WHERE key` | deleted |
pub struct SqliteLoader {
    connection: LazyConnection,
    spec: LoadSpec,
    columns: Vec<String>,
    /// For each column, where it is in the key (for the parameters of key-matching statements).
    key_index: Vec<usize>,
    /// The positions of the columns an update writes: neither key nor NULL in this pass (an
    /// upsert leaves deferred columns of existing rows as they are; their pass fills them).
    rest_index: Vec<usize>,
    /// Column positions written as NULL in this pass.
    null_index: Vec<bool>,
    ready: bool,
}

impl SqliteLoader {
    pub(crate) fn new(path: PathBuf, spec: LoadSpec) -> Self {
        let columns: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let key_index = spec.key.iter().filter_map(|k| columns.iter().position(|c| c == k)).collect();
        let rest_index = (0..columns.len())
            .filter(|i| !spec.key.contains(&columns[*i]) && !spec.null_columns.contains(&columns[*i]))
            .collect();
        let null_index = columns.iter().map(|c| spec.null_columns.contains(c)).collect();
        Self { connection: LazyConnection::new(path), spec, columns, key_index, rest_index, null_index, ready: false }
    }

    fn connection(&mut self) -> Result<&mut rusqlite::Connection> {
        if !self.ready {
            let connection = self.connection.get()?;
            ensure_control_tables(connection)?;
            if self.spec.trust_foreign_keys {
                // The sync proves every foreign key with one query each after the load.
                connection.execute_batch("PRAGMA foreign_keys = OFF").map_err(|e| {
                    error::map(
                        Stage::Load,
                        format!("turning off per-row foreign-key checks for {}", self.spec.table),
                        e,
                    )
                })?;
            }
            self.ready = true;
        }
        self.connection.get()
    }

    fn write(&mut self, batch: &LoadBatch<'_, Row>) -> Result<LoadReport> {
        let table = self.spec.table.clone();
        let write = self.spec.write;
        let insert = sql::insert(&table, &self.columns);
        let insert_if_new = sql::insert_if_new(&table, &self.columns, &self.spec.key);
        let updated_columns: Vec<String> = self.rest_index.iter().map(|i| self.columns[*i].clone()).collect();
        let update_if_different = sql::update_if_different(&table, &updated_columns, &self.spec.key);
        let update = update_if_different.clone();
        let delete = sql::delete(&table, &self.spec.key);
        let rest_index = self.rest_index.clone();
        let null_index = self.null_index.clone();
        let params = |row, indexes: &[usize]| parameters(&null_index, row, indexes);
        let all: Vec<usize> = (0..self.columns.len()).collect();
        // Gathered before borrowing the connection mutably.
        let rows: Vec<RowParameters<'_>> = batch
            .records
            .iter()
            .map(|row| RowParameters {
                row,
                all: params(row, &all),
                key: params(row, &self.key_index),
                rest: params(row, &rest_index),
            })
            .collect();
        let failing_row =
            |row: &Row, e: rusqlite::Error| error::map(Stage::Load, format!("table `{table}`, row {}", row.key()), e);
        let context = |e: rusqlite::Error| error::map(Stage::Load, format!("writing a batch into `{table}`"), e);
        let undo = self.spec.undo;
        let key_columns = self.spec.key.clone();
        let key_index = self.key_index.clone();
        let key_values =
            |row: &Row| -> Vec<dmf_core::Value> { key_index.iter().map(|i| row.values()[*i].clone()).collect() };
        let log = |tx: &rusqlite::Transaction<'_>, row: &Row, action, before: Option<&undo::Image>| {
            undo::record(tx, batch.run, batch.migration, &table, &key_values(row), action, before).map_err(context)
        };
        let connection = self.connection()?;
        blocking(|| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(context)?;
            let mut report = LoadReport::default();
            for RowParameters { row, all, key, rest } in &rows {
                // The row as it was, for the undo log.
                let before = if undo && write != WriteMode::Insert {
                    undo::image(&tx, &table, &key_columns, key).map_err(|e| failing_row(row, e))?
                } else {
                    None
                };
                match write {
                    WriteMode::Insert => {
                        tx.prepare_cached(&insert)
                            .and_then(|mut s| s.execute(params_from_iter(all.iter())))
                            .map_err(|e| failing_row(row, e))?;
                        report.inserted += 1;
                        if undo {
                            log(&tx, row, undo::Action::Insert, None)?;
                        }
                    }
                    WriteMode::Upsert => {
                        let updated = match &update_if_different {
                            Some(statement) => tx
                                .prepare_cached(statement)
                                .and_then(|mut s| s.execute(params_from_iter(rest.iter().chain(key).chain(rest))))
                                .map_err(|e| failing_row(row, e))?,
                            None => 0,
                        };
                        if updated > 0 {
                            report.updated += 1;
                            if undo {
                                log(&tx, row, undo::Action::Update, before.as_ref())?;
                            }
                            continue;
                        }
                        let inserted = tx
                            .prepare_cached(&insert_if_new)
                            .and_then(|mut s| s.execute(params_from_iter(all.iter())))
                            .map_err(|e| failing_row(row, e))?;
                        if inserted > 0 {
                            report.inserted += 1;
                            if undo {
                                log(&tx, row, undo::Action::Insert, None)?;
                            }
                        } else {
                            report.unchanged += 1;
                        }
                    }
                    WriteMode::Update => {
                        if let Some(statement) = &update {
                            let changed = tx
                                .prepare_cached(statement)
                                .and_then(|mut s| s.execute(params_from_iter(rest.iter().chain(key).chain(rest))))
                                .map_err(|e| failing_row(row, e))?;
                            report.updated += changed as u64;
                            report.unchanged += 1 - changed.min(1) as u64;
                            if undo && changed > 0 {
                                log(&tx, row, undo::Action::Update, before.as_ref())?;
                            }
                        }
                    }
                    WriteMode::Delete => {
                        let changed = tx
                            .prepare_cached(&delete)
                            .and_then(|mut s| s.execute(params_from_iter(key.iter())))
                            .map_err(|e| failing_row(row, e))?;
                        report.deleted += changed as u64;
                        if undo && changed > 0 {
                            log(&tx, row, undo::Action::Delete, before.as_ref())?;
                        }
                    }
                }
            }
            write_checkpoint(&tx, batch.migration, batch.checkpoint).map_err(context)?;
            tx.commit().map_err(context)?;
            Ok(report)
        })
    }
}

/// One row's statement parameters: every column, the key columns, the other columns.
struct RowParameters<'r> {
    row: &'r Row,
    all: Vec<ToSqlOutput<'r>>,
    key: Vec<ToSqlOutput<'r>>,
    rest: Vec<ToSqlOutput<'r>>,
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
        self.write(&batch)
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        let connection = self.connection()?;
        blocking(|| read_checkpoint(connection, migration))
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        let connection = self.connection()?;
        blocking(|| delete_checkpoint(connection, migration))
    }

    async fn rollback(&mut self, migration: &MigrationName, run: dmf_core::RunId) -> Result<dmf_core::RollbackReport> {
        let (table, key) = (self.spec.table.clone(), self.spec.key.clone());
        let connection = self.connection()?;
        blocking(|| undo::rollback(connection, &table, &key, migration, run))
    }
}
