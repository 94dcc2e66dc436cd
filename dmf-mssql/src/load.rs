//! [`MssqlLoader`]: writes batches with a bulk load (straight into an emptied table, or into
//! `#dmf_stage` followed by one MERGE batch), storing the checkpoint in the same transaction.

use std::sync::Arc;
use std::time::SystemTime;

use dmf_core::catalog::TableName;
use dmf_core::control::checkpoints;
use dmf_core::sync::{LoadSpec, WriteMode};
use dmf_core::{
    Checkpoint, Error, ErrorKind, LoadBatch, LoadReport, Loader, MigrationName, Record, Result, RollbackReport, Row,
    RunId, Stage, Value,
};
use tiberius::TokenRow;

use crate::catalog::{ColumnFacts, table_columns};
use crate::config::UpsertStrategy;
use crate::control::checkpoint_of;
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::executor::{BulkOptions, Executor, SqlError, SqlRow};
use crate::session::Session;
use crate::sql::control::{self as control_sql, SCHEMA};
use crate::sql::load::{self as sql, Compared, MergeColumn, MergeMode, TempColumn, UndoColumn, UndoImage};
use crate::sql::{is_collation_name, qualified, quote_ident};
use crate::types::{SqlType, bulk_data, exceeds_bulk_limit, unsupported_reason};

/// Writes batches of rows to one table, each with its checkpoint in `dmf.checkpoints`, in one
/// transaction: a batch is either committed with its checkpoint or not at all, so a resumed
/// run neither loses nor repeats rows.
///
/// | write mode | statements | counts |
/// |---|---|---|
/// | `Insert` | `BEGIN TRANSACTION`; bulk load into the table (`KEEP_IDENTITY` when identity values are loaded, `KEEP_NULLS`, `CHECK_CONSTRAINTS` so constraints stay trusted, `FIRE_TRIGGERS`; with `LoadSpec::trust_foreign_keys` neither of the last two, see below); the checkpoint; `COMMIT` | inserted |
/// | `Upsert` | bulk load into `#dmf_stage`; one batch: `MERGE … WHEN MATCHED AND EXISTS (SELECT s.… EXCEPT SELECT t.…) THEN UPDATE … WHEN NOT MATCHED BY TARGET THEN INSERT … OUTPUT $action, inserted.<key> INTO #dmf_merge_log`, with `SET IDENTITY_INSERT … ON/OFF` around it when identity values are loaded, and the checkpoint, under `XACT_ABORT` in one transaction | inserted, updated, unchanged: exact, from the merge log |
/// | `Delete` | keys into the stage, `DELETE t OUTPUT … FROM <table> AS t JOIN #dmf_stage AS s ON <key>` | deleted |
/// | `Update` | the stage, `UPDATE t SET … OUTPUT … FROM <table> AS t JOIN #dmf_stage AS s ON <key> WHERE EXISTS (… EXCEPT …)` | updated, unchanged |
/// | any of these, [`UpsertStrategy::UpdateInsert`] | the same stage; one batch with no MERGE and no `OUTPUT`: `UPDATE t SET … FROM <table> AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s ON <key> WHERE EXISTS (… EXCEPT …)`, then `INSERT INTO <table> … SELECT … FROM #dmf_stage AS s WHERE NOT EXISTS (SELECT 1 FROM <table> AS t WITH (UPDLOCK, SERIALIZABLE) WHERE <key>)` for `Upsert` (`IDENTITY_INSERT` around the insert); the `UPDATE` alone, `DELETE t FROM <table> AS t JOIN #dmf_stage AS s ON <key>`, or the `INSERT` without `NOT EXISTS` for the other modes; the undo log's rows selected, under the same locks, just before each write; and the checkpoint, under `XACT_ABORT` in one transaction | exact, from each statement's `@@ROWCOUNT` |
///
/// Only `Upsert` with the default [`UpsertStrategy::Merge`] uses MERGE (which Babelfish
/// lacks); the other modes are plain statements joined with the stage, whose primary key is
/// the table's key. [`UpsertStrategy::UpdateInsert`] uses neither MERGE nor `OUTPUT` (which
/// Babelfish 4.3 gets wrong in several of these statements), and holds update and key-range
/// locks on the keys it reads until it commits, so no other session inserts a staged key
/// between its update and its insert, nor changes a row between its logging and its writing.
///
/// Only rows that differ are updated (`EXCEPT` compares NULLs as equal), so an unchanged
/// re-run writes nothing. Computed, rowversion and temporal period columns are never
/// written; identity columns are never updated. Columns in `null_columns` are written as
/// NULL for new rows and left alone on existing rows (the later pass fills them). With an
/// undo log (`LoadSpec::undo`), the merge log also carries `deleted.*` of every writable
/// column, copied into `dmf.undo_log` in the same transaction (inserts then go through the
/// stage too: `INSERT … OUTPUT inserted.<key> … SELECT … FROM #dmf_stage`), and
/// [`Loader::rollback`] replays it.
///
/// The fast path of a `full` sync (`LoadSpec::trust_foreign_keys`, `Insert` without an undo
/// log): the bulk load skips the table's foreign keys, CHECK constraints and insert triggers,
/// and SQL Server marks the skipped constraints not trusted. The loader first remembers which
/// were trusted; the sync proves every foreign key with one query each and then trusts those
/// again ([`Database::after_trusted_load`](dmf_core::sync::Database::after_trusted_load)).
/// With an undo log, inserts go through the stage and an `INSERT … SELECT`, which checks
/// every row: the fast path then only adds the proof.
///
/// tiberius 0.13 bulk-loads no value longer than 65535 bytes, even into a `(max)` column
/// (`BULK_VALUE_LIMIT`), and no value of an `image` column: a row holding one is inserted on
/// its own with bound parameters (each cast to its column's type), into the table or the
/// stage, in the batch's transaction.
///
/// When a load inserted identity values, [`Loader::finish`] moves the table's identity past
/// them if the server did not (`reseed_identity`; Babelfish 4.3 does not after a bulk
/// load).
///
/// The stage and the merge log are `#temp` tables of the loader's session, created with the
/// target columns' exact types and collations by a plain batch (not `sp_executesql`, which
/// would drop them when the call ends). After any error the session is dropped: the server
/// rolls back what was open, and the retry starts on a new session with a new stage.
pub struct MssqlLoader {
    shared: Arc<Shared>,
    spec: LoadSpec,
    /// `null[i]`: column `i` is written as NULL in this pass.
    null: Vec<bool>,
    session: Session,
    prepared: Option<Prepared>,
}

/// What a session needs, worked out from the target's columns when the session opens.
struct Prepared {
    /// The spec's columns that are written (indexes into `LoadSpec::columns`).
    indices: Vec<usize>,
    /// The target type of each written column.
    types: Vec<SqlType>,
    /// Bracket-quoted names of the loaded columns, for the bulk load.
    bulk_columns: Vec<String>,
    /// The parameterised insert of one row into the bulk load's table, for a row holding a
    /// value too long for a bulk load ([`sql::insert_row`]).
    row_insert: String,
    /// Identity values are loaded.
    identity: bool,
    /// After the migration: moves the identity past the loaded values
    /// (`reseed_identity`). when this load inserts identity values.
    reseed: Option<String>,
    /// The batch after the stage is loaded (staged modes).
    merge_batch: Option<String>,
    /// The MERGE can write anything (an update of key columns only cannot).
    merges: bool,
    /// The plain bulk load skips the target's constraint checks and triggers (the fast path).
    skip_checks: bool,
}

/// The writable columns of the target, for the undo log's before-images.
fn writable(columns: &[ColumnFacts]) -> Vec<&ColumnFacts> {
    columns.iter().filter(|c| !c.column.generated).collect()
}

fn collation(facts: &ColumnFacts) -> Option<&str> {
    facts.collation.as_deref().filter(|c| facts.sql_type.is_character() && is_collation_name(c))
}

/// How a column is compared to find the rows that differ.
fn compared(sql_type: &SqlType) -> Compared {
    match (sql_type.comparable_as(), sql_type) {
        (Some(ty), _) => Compared::Cast(ty),
        (None, SqlType::DateTimeOffset { .. }) => Compared::Utc,
        (None, _) => Compared::Value,
    }
}

/// The type a column takes in the merge log and in `OPENJSON … WITH`: legacy LOB types as
/// their `(max)` successors.
fn log_type(sql_type: &SqlType) -> String {
    sql_type.comparable_as().map_or_else(|| sql_type.native(), str::to_owned)
}

impl MssqlLoader {
    pub(crate) fn new(shared: Arc<Shared>, spec: LoadSpec) -> Self {
        let null = spec.columns.iter().map(|c| spec.null_columns.contains(&c.name)).collect();
        Self { shared, spec, null, session: Session::new(), prepared: None }
    }

    /// The spec asks for an undo log (inserts then go through the stage too, to record
    /// their keys).
    fn undo_enabled(&self) -> bool {
        self.spec.undo
    }

    /// The written columns' facts with their index in the spec, in load order, checked:
    /// present and supported. Computed, rowversion and period columns are left out (a
    /// rowversion watermark rides along in the deferred-keys pass of an incremental sync):
    /// SQL Server fills them.
    fn loaded_facts<'a>(&self, target: &'a [ColumnFacts]) -> Result<Vec<(usize, &'a ColumnFacts)>> {
        let table = &self.spec.table;
        if target.is_empty() {
            return Err(Error::fatal(
                Stage::Load,
                format!("loading {table}: the table does not exist in {}", self.shared.name()),
            ));
        }
        let mut loaded = Vec::with_capacity(self.spec.columns.len());
        for (index, column) in self.spec.columns.iter().enumerate() {
            let facts = target.iter().find(|c| c.column.name == column.name).ok_or_else(|| {
                Error::fatal(Stage::Load, format!("loading {table}: the target has no column `{}`", column.name))
            })?;
            if facts.column.generated {
                if self.spec.key.contains(&column.name) {
                    return Err(Error::fatal(
                        Stage::Load,
                        format!("loading {table}: key column `{}` is computed; DMF cannot write it", column.name),
                    ));
                }
                tracing::debug!(%table, column = %column.name, "computed, rowversion or period column: never written");
                continue;
            }
            if let Some(reason) = unsupported_reason(&facts.sql_type.native()) {
                return Err(Error::fatal(
                    Stage::Load,
                    format!("loading column `{}` of {table}: {reason}", column.name),
                ));
            }
            loaded.push((index, facts));
        }
        Ok(loaded)
    }

    /// Works out the statements from the target's columns and creates the stage.
    async fn prepare(&mut self) -> Result<()> {
        let (executor, fresh) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
        if fresh {
            self.prepared = None;
        }
        if self.prepared.is_some() {
            return Ok(());
        }
        self.shared.ensure_control_tables(executor).await?;
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
        let target = match table_columns(executor, &self.spec.table).await {
            Ok(target) => target,
            Err(error) => {
                self.session.after_error(&error);
                return Err(to_dmf_error(error, Stage::Load, format!("reading the columns of {}", self.spec.table)));
            }
        };
        let written = self.loaded_facts(&target)?;
        let indices: Vec<usize> = written.iter().map(|(i, _)| *i).collect();
        let loaded: Vec<&ColumnFacts> = written.iter().map(|(_, c)| *c).collect();
        let key = &self.spec.key;
        let identity = loaded.iter().any(|c| c.column.identity);
        let mut prepared = Prepared {
            indices: indices.clone(),
            types: loaded.iter().map(|c| c.sql_type.clone()).collect(),
            bulk_columns: loaded.iter().map(|c| quote_ident(&c.column.name)).collect(),
            row_insert: String::new(),
            identity,
            reseed: None,
            merge_batch: None,
            merges: false,
            skip_checks: false,
        };
        let mode = match self.spec.write {
            WriteMode::Insert if self.undo_enabled() => Some(MergeMode::Insert),
            WriteMode::Insert => None,
            WriteMode::Upsert => Some(MergeMode::Upsert),
            WriteMode::Update => Some(MergeMode::Update),
            WriteMode::Delete => Some(MergeMode::Delete),
            WriteMode::InsertOrSkip => {
                return Err(dmf_core::Error::Config(format!(
                    "loading {}: SQL Server's loader has no insert-or-skip mode yet; use upsert",
                    self.spec.table
                )));
            }
        };
        let row_columns: Vec<TempColumn<'_>> = loaded
            .iter()
            .map(|c| TempColumn { name: &c.column.name, native: c.sql_type.native(), collation: None })
            .collect();
        if matches!(self.spec.write, WriteMode::Insert | WriteMode::Upsert) {
            prepared.reseed = loaded
                .iter()
                .find(|c| c.column.identity)
                .map(|c| sql::reseed_identity(&self.spec.table, &c.column.name));
        }
        prepared.row_insert = match mode {
            Some(_) => sql::insert_row(sql::STAGE, &row_columns, false),
            None => sql::insert_row(&qualified(&self.spec.table), &row_columns, identity),
        };
        if let Some(mode) = mode {
            fn temp<'a>(c: &&'a ColumnFacts) -> TempColumn<'a> {
                TempColumn { name: c.column.name.as_str(), native: log_type(&c.sql_type), collation: collation(c) }
            }
            let stage: Vec<TempColumn<'_>> = loaded
                .iter()
                .map(|c| TempColumn { name: &c.column.name, native: c.sql_type.native(), collation: collation(c) })
                .collect();
            let key_facts: Vec<&ColumnFacts> = key
                .iter()
                .map(|k| {
                    loaded.iter().find(|c| &c.column.name == k).copied().ok_or_else(|| {
                        Error::fatal(
                            Stage::Load,
                            format!("loading {}: key column `{k}` is not loaded", self.spec.table),
                        )
                    })
                })
                .collect::<Result<_>>()?;
            let log_key: Vec<TempColumn<'_>> = key_facts.iter().map(temp).collect();
            let image_facts = if self.undo_enabled() { writable(&target) } else { Vec::new() };
            let log_image: Vec<TempColumn<'_>> = image_facts.iter().map(temp).collect();
            let columns: Vec<MergeColumn<'_>> = loaded
                .iter()
                .zip(indices.iter().map(|&i| self.null[i]))
                .map(|(c, null)| MergeColumn {
                    name: &c.column.name,
                    update: !key.contains(&c.column.name) && !c.column.identity && !null,
                    compare: compared(&c.sql_type),
                })
                .collect();
            let undo = self.undo_enabled().then(|| UndoImage {
                image: image_facts.iter().map(|c| c.column.name.as_str()).collect(),
                key_in_image: key.iter().filter_map(|k| image_facts.iter().position(|c| &c.column.name == k)).collect(),
            });
            let undo_insert = undo.as_ref().map(|u| sql::undo_insert(key, u));
            let identity_insert = identity && matches!(mode, MergeMode::Upsert | MergeMode::Insert);
            if self.shared.options.upsert == UpsertStrategy::UpdateInsert {
                let body = sql::merge_free(&self.spec.table, &columns, key, mode, identity_insert, undo.as_ref());
                prepared.merges = body.is_some();
                prepared.merge_batch = Some(sql::merge_free_batch(body.as_deref(), undo_insert.as_deref()));
            } else {
                let merge = sql::merge(&self.spec.table, &columns, key, mode, undo.as_ref());
                prepared.merges = merge.is_some();
                prepared.merge_batch =
                    Some(sql::merge_batch(&self.spec.table, merge.as_deref(), identity_insert, undo_insert.as_deref()));
            }
            let create = sql::create_stage(&stage, key, &log_key, &log_image);
            let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
            if let Err(error) = executor.batch(&create).await {
                self.session.after_error(&error);
                return Err(to_dmf_error(error, Stage::Load, format!("creating the stage for {}", self.spec.table)));
            }
        }
        if mode.is_none() && self.spec.trust_foreign_keys {
            // Remember which constraints are trusted before this load marks them not trusted,
            // so that only those are trusted again after the proof.
            let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
            match crate::trust::constraints(executor, &self.spec.table).await {
                Ok(states) => self.shared.trust.remember(&self.spec.table, &states),
                Err(error) => {
                    self.session.after_error(&error);
                    let doing = format!("reading the constraints of {} before loading it", self.spec.table);
                    return Err(to_dmf_error(error, Stage::Load, doing));
                }
            }
            prepared.skip_checks = true;
        }
        self.prepared = Some(prepared);
        Ok(())
    }

    /// The rows as bulk-load rows of the target's exact types, and apart from them the rows
    /// holding a value too long for a bulk load, as the parameters of
    /// [`Prepared::row_insert`]. A value that does not fit its column is a data error naming
    /// the row and the column (the engine isolates the row).
    fn token_rows(&self, records: &[Row], prepared: &Prepared) -> Result<WriteRows> {
        let order = match records.first() {
            Some(first) => self.spec.value_order(first.shape())?,
            None => None,
        };
        let mut rows = WriteRows::default();
        for record in records {
            let mut row = TokenRow::with_capacity(prepared.types.len());
            let mut too_long = false;
            for (&i, ty) in prepared.indices.iter().zip(&prepared.types) {
                let index = order.as_ref().map_or(i, |order| order[i]);
                let value =
                    if self.null[i] { &Value::Null } else { record.values().get(index).unwrap_or(&Value::Null) };
                let data = bulk_data(value, ty).map_err(|problem| {
                    Error::data(
                        Stage::Load,
                        format!(
                            "loading {} row {}: column `{}` ({}): {problem}",
                            self.spec.table,
                            record.key(),
                            self.spec.columns[i].name,
                            ty.native()
                        ),
                    )
                })?;
                too_long |= exceeds_bulk_limit(&data, ty);
                row.push(data);
            }
            if too_long {
                let values = prepared
                    .indices
                    .iter()
                    .map(|&i| {
                        let index = order.as_ref().map_or(i, |order| order[i]);
                        if self.null[i] {
                            Value::Null
                        } else {
                            record.values().get(index).cloned().unwrap_or(Value::Null)
                        }
                    })
                    .collect();
                rows.one_by_one.push(values);
            } else {
                rows.bulk.push(row);
            }
        }
        Ok(rows)
    }

    /// The checkpoint's parameters ([`CHECKPOINT_PARAMS`] of them), then with an undo log the
    /// run id and the table's name.
    fn batch_params(&self, batch: &LoadBatch<'_, Row>) -> Vec<Value> {
        let mut params = checkpoints::write_params(batch.migration, batch.checkpoint, SystemTime::now());
        if self.undo_enabled() {
            params.push(Value::Int(batch.run.0));
            params.push(Value::Text(self.spec.table.to_string()));
        }
        params
    }
}

/// One batch's rows, as they are written.
#[derive(Default)]
struct WriteRows {
    /// Rows for the bulk load.
    bulk: Vec<TokenRow<'static>>,
    /// Rows with a value longer than a bulk load carries
    /// (`BULK_VALUE_LIMIT`): each inserted by
    /// [`Prepared::row_insert`] with these values bound, in the same transaction.
    one_by_one: Vec<Vec<Value>>,
}

impl WriteRows {
    fn len(&self) -> usize {
        self.bulk.len() + self.one_by_one.len()
    }
}

/// How many parameters the checkpoint statement takes: `@P1`…`@P5`.
const CHECKPOINT_PARAMS: usize = dmf_core::control::tables::CHECKPOINTS.len();

/// `(inserted, updated, deleted)` from the merge log's `(action, n)` rows.
fn merge_counts(rows: &[SqlRow]) -> std::result::Result<(u64, u64, u64), SqlError> {
    let (mut inserted, mut updated, mut deleted) = (0, 0, 0);
    for row in rows {
        let n = u64::try_from(row.int(1)?.unwrap_or(0)).unwrap_or(0);
        match row.text(0)?.as_deref() {
            Some("INSERT") => inserted += n,
            Some("UPDATE") => updated += n,
            Some("DELETE") => deleted += n,
            other => return Err(SqlError::Conversion(format!("unexpected MERGE action {other:?} in the merge log"))),
        }
    }
    Ok((inserted, updated, deleted))
}

/// Writes one batch and its checkpoint; see [`MssqlLoader`] for the statements.
async fn write_batch(
    executor: &mut dyn Executor,
    prepared: &Prepared,
    table: &TableName,
    mode: WriteMode,
    rows: WriteRows,
    params: &[Value],
) -> std::result::Result<LoadReport, SqlError> {
    let count = rows.len() as u64;
    let WriteRows { bulk: rows, one_by_one } = rows;
    let mut report = LoadReport::default();
    match (mode, &prepared.merge_batch) {
        (_, None) => {
            executor.batch(control_sql::BEGIN).await?;
            if !rows.is_empty() {
                // The per-row path checks constraints (they stay trusted) and fires insert
                // triggers like any insert; the fast path does neither and leaves the proof
                // and the re-validation to the sync.
                let options = BulkOptions {
                    keep_identity: prepared.identity,
                    keep_nulls: true,
                    check_constraints: !prepared.skip_checks,
                    table_lock: false,
                    fire_triggers: !prepared.skip_checks,
                };
                report.inserted =
                    executor.bulk_insert(&qualified(table), &prepared.bulk_columns, options, rows).await?;
            }
            for values in &one_by_one {
                report.inserted += executor.execute(&prepared.row_insert, values).await?;
            }
            executor.execute(control_sql::save_checkpoint(), &params[..CHECKPOINT_PARAMS]).await?;
            executor.batch(control_sql::COMMIT).await?;
        }
        (_, Some(merge_batch)) => {
            if !rows.is_empty() {
                // The stage is a #temp table: no constraint but its key, no trigger. The MERGE
                // into the target checks constraints and fires triggers row by row.
                let options = BulkOptions {
                    keep_identity: false,
                    keep_nulls: true,
                    check_constraints: false,
                    table_lock: true,
                    fire_triggers: false,
                };
                executor.bulk_insert(sql::STAGE, &prepared.bulk_columns, options, rows).await?;
            }
            for values in &one_by_one {
                executor.execute(&prepared.row_insert, values).await?;
            }
            let counts = executor.query(merge_batch, params).await?;
            let (inserted, updated, deleted) = merge_counts(&counts)?;
            report.inserted = inserted;
            report.updated = updated;
            report.deleted = deleted;
            report.unchanged = count.saturating_sub(inserted + updated + deleted);
            if !prepared.merges {
                report.unchanged = count;
            }
        }
    }
    Ok(report)
}

impl Loader for MssqlLoader {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadReport> {
        if let Some(first) = batch.records.first() {
            let shape = first.shape();
            if let Some(other) = batch.records.iter().find(|r| !Arc::ptr_eq(r.shape(), shape) && r.shape() != shape) {
                return Err(Error::fatal(
                    Stage::Load,
                    format!(
                        "loading {}: one batch holds rows of different columns ({:?} and {:?})",
                        self.spec.table,
                        shape.columns,
                        other.shape().columns
                    ),
                ));
            }
        }
        self.prepare().await?;
        let Some(prepared) = self.prepared.as_ref() else {
            return Err(Error::transient(
                Stage::Load,
                format!("the session closed while preparing to load {}", self.spec.table),
            ));
        };
        let rows = self.token_rows(batch.records, prepared)?;
        let params = self.batch_params(&batch);
        let mode = self.spec.write;
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
        let Some(prepared) = self.prepared.as_ref() else {
            return Err(Error::transient(
                Stage::Load,
                format!("the session closed while preparing to load {}", self.spec.table),
            ));
        };
        let result = write_batch(executor, prepared, &self.spec.table, mode, rows, &params).await;
        match result {
            Ok(report) => {
                tracing::debug!(
                    table = %self.spec.table, rows = batch.records.len(), inserted = report.inserted,
                    updated = report.updated, deleted = report.deleted, "batch committed with its checkpoint"
                );
                if batch.checkpoint.done {
                    // The migration is complete: its session goes back to the pool rather than
                    // idling until the run ends (a sync holds one per migration otherwise, and
                    // a diff has more migrations than the pool has connections).
                    self.session = Session::new();
                    self.prepared = None;
                }
                Ok(report)
            }
            Err(error) => {
                self.session.after_error(&error);
                self.prepared = None;
                let verb = match mode {
                    WriteMode::Insert | WriteMode::InsertOrSkip => "inserting",
                    WriteMode::Upsert => "upserting",
                    WriteMode::Delete => "deleting",
                    WriteMode::Update => "updating",
                };
                Err(to_dmf_error(
                    error,
                    Stage::Load,
                    format!("{verb} {} rows of {} in {}", batch.records.len(), self.spec.table, self.shared.name()),
                ))
            }
        }
    }

    /// Moves the identity past the loaded values when the server left it behind
    /// (`reseed_identity`).
    async fn finish(&mut self, migration: &MigrationName) -> Result<()> {
        self.prepare().await?;
        let Some(reseed) = self.prepared.as_ref().and_then(|p| p.reseed.clone()) else {
            return Ok(());
        };
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
        if let Err(error) = executor.batch(&reseed).await {
            self.session.after_error(&error);
            self.prepared = None;
            return Err(to_dmf_error(
                error,
                Stage::Load,
                format!("moving the identity of {} past the loaded values (`{migration}`)", self.spec.table),
            ));
        }
        Ok(())
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.prepare().await?;
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Load).await?;
        let params = [Value::Text(migration.as_str().to_owned())];
        match executor.query(control_sql::read_checkpoint(), &params).await {
            Ok(rows) => checkpoint_of(rows),
            Err(error) => {
                self.session.after_error(&error);
                Err(to_dmf_error(
                    error,
                    Stage::Load,
                    format!("reading the checkpoint of `{migration}` from {SCHEMA}.checkpoints"),
                ))
            }
        }
    }

    /// In insert mode, a batch sent again would insert its rows twice: answered from the
    /// checkpoint stored with each batch (on a new connection when the old one broke). Other
    /// modes are idempotent.
    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        dmf_core::sync::committed_batch(self.spec.write, self, migration, checkpoint, records).await
    }

    /// On a session of its own, returned to the pool at once: clearing needs no stage, and
    /// comes last when a migration is rolled back (the loader's session would otherwise stay
    /// open until the rollback of every table ends, more than the pool has connections).
    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        let mut session = self.shared.connector.session().await.map_err(|error| {
            to_dmf_error(error, Stage::Load, format!("cannot connect to SQL Server at {}", self.shared.name()))
        })?;
        self.shared.ensure_control_tables(session.as_mut()).await?;
        let params = [Value::Text(migration.as_str().to_owned())];
        match session.execute(control_sql::clear_checkpoint(), &params).await {
            Ok(_) => Ok(()),
            Err(error) => Err(to_dmf_error(error, Stage::Load, format!("clearing the checkpoint of `{migration}`"))),
        }
    }

    /// Replays `dmf.undo_log` for `migration` in `run`: deletes the rows it inserted, puts
    /// back the before-images of the rows it updated and deleted, and forgets those entries,
    /// in one transaction. A run that kept no undo log has nothing to replay.
    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> Result<RollbackReport> {
        let table = self.spec.table.clone();
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Rollback).await?;
        let target = match table_columns(executor, &table).await {
            Ok(target) => target,
            Err(error) => {
                self.session.after_error(&error);
                return Err(to_dmf_error(error, Stage::Rollback, format!("reading the columns of {table}")));
            }
        };
        let image: Vec<UndoColumn<'_>> = writable(&target)
            .into_iter()
            .map(|c| UndoColumn { name: &c.column.name, native: log_type(&c.sql_type) })
            .collect();
        let key: Vec<UndoColumn<'_>> = self
            .spec
            .key
            .iter()
            .map(|k| {
                image.iter().find(|c| c.name == k).cloned().ok_or_else(|| {
                    Error::fatal(Stage::Rollback, format!("rolling back {table}: key column `{k}` is not in the table"))
                })
            })
            .collect::<Result<_>>()?;
        let identity = target.iter().any(|c| c.column.identity && !c.column.generated);
        let statement = sql::undo(&table, &key, &image, identity);
        let params = [Value::Int(run.0), Value::Text(migration.as_str().to_owned())];
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Rollback).await?;
        match executor.query(&statement, &params).await {
            Ok(rows) => {
                let row = rows.first();
                let count =
                    |i| row.and_then(|r| r.int(i).ok().flatten()).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                // Done with this table: the session goes back to the pool (a rollback asks
                // every migration's loader in turn, more than the pool has connections).
                self.session = Session::new();
                self.prepared = None;
                Ok(RollbackReport { deleted: count(0), restored: count(1) })
            }
            Err(error) => {
                self.session.after_error(&error);
                self.prepared = None;
                let mut error = to_dmf_error(error, Stage::Rollback, format!("undoing run {run} in {table}"));
                if error.kind() == ErrorKind::Data {
                    // A constraint refused the replay: retrying or bisecting cannot help.
                    error = Error::with_source(Stage::Rollback, ErrorKind::Fatal, error.to_string(), error);
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tiberius::ColumnData;

    use super::*;

    #[test]
    fn merge_counts_come_from_the_log() {
        let row = |action: &str, n: i64| {
            SqlRow::new(vec![ColumnData::String(Some(action.to_owned().into())), ColumnData::I64(Some(n))])
        };
        assert_eq!(merge_counts(&[row("INSERT", 3), row("UPDATE", 2)]).unwrap(), (3, 2, 0));
        assert_eq!(merge_counts(&[row("DELETE", 7)]).unwrap(), (0, 0, 7));
        assert_eq!(merge_counts(&[]).unwrap(), (0, 0, 0));
        assert!(merge_counts(&[row("UPSERT", 1)]).is_err());
    }

    #[test]
    fn lob_types_are_compared_through_a_cast_and_datetimeoffset_by_its_utc_instant() {
        assert_eq!(compared(&SqlType::NText), Compared::Cast("nvarchar(max)"));
        assert_eq!(compared(&SqlType::parse("datetimeoffset(6)")), Compared::Utc);
        assert_eq!(compared(&SqlType::parse("datetime2(6)")), Compared::Value);
        assert_eq!(compared(&SqlType::parse("nvarchar(20)")), Compared::Value);
    }

    #[test]
    fn legacy_lob_types_are_logged_as_max_types() {
        assert_eq!(log_type(&SqlType::Text), "varchar(max)");
        assert_eq!(log_type(&SqlType::NText), "nvarchar(max)");
        assert_eq!(log_type(&SqlType::Image), "varbinary(max)");
        assert_eq!(log_type(&SqlType::parse("nvarchar(20)")), "nvarchar(20)");
    }
}
