//! [`PgLoader`]: writes batches with COPY, binary or text (and a staged `INSERT … ON CONFLICT`,
//! `DELETE` or `UPDATE` where rows may exist), storing the checkpoint in the same transaction.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use dmf_core::catalog::DataType;
use dmf_core::control::checkpoints;
use dmf_core::sync::{LoadSpec, WriteMode};
use dmf_core::{
    Checkpoint, Error, ErrorKind, LoadBatch, LoadOutcome, LoadReport, Loader, MigrationName, NativeEncoding,
    NativeSpan, Result, Row, RowFailure, Stage, Value,
};
use futures::SinkExt;
use tokio_postgres::{Client, Statement, Transaction};

use crate::control::{self, CHECKPOINTS, Failure};
use crate::copy::binary::{BinaryRows, Refusal, Unencodable, Wire};
use crate::copy::{CopyFormat, Encoder};
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::params::{Param, as_refs, bind};
use crate::session::Session;
use crate::sql::control::SCHEMA;
use crate::sql::relation::RelationKind;
use crate::sql::{load as sql, qualified, undo as undo_sql};

/// COPY data is sent in chunks of about this size, so a batch is never copied whole into one
/// message.
const COPY_CHUNK: usize = 256 * 1024;

/// Writes batches of rows to one table, each with its checkpoint in `dmf.checkpoints`, in one
/// transaction: a batch is either committed with its checkpoint or not at all, so a resumed
/// run neither loses nor repeats rows.
///
/// | write mode | statements | counts |
/// |---|---|---|
/// | `Insert` | `COPY t (cols) FROM STDIN (FORMAT binary)` | inserted |
/// | `Upsert` | COPY into the stage, `INSERT … ON CONFLICT (key) DO UPDATE … WHERE … IS DISTINCT FROM …` | inserted, updated, unchanged |
/// | `Delete` | COPY keys into the stage, `DELETE … USING` the stage | deleted |
/// | `Update` | COPY into the stage, `UPDATE … FROM` the stage where values differ | updated, unchanged |
///
/// The stage is a temporary table of the loader's connection (`ON COMMIT DELETE ROWS`), with
/// exactly the loaded columns. Columns in `null_columns` are written as NULL for new rows and
/// left as they are in existing rows (the later pass that fills them sets them). Built by
/// [`PgDatabase::loader`](dmf_core::sync::Database::loader); connects on first use.
///
/// COPY data is binary by default ([`CopyFormat`]): each value in the binary form of its
/// target column's type, read from the server when the loader prepares. A table with a column
/// of a type DMF does not encode is loaded as text; so is a batch holding a value that has no
/// exact binary form (the rest of the run too, when it is the value's kind that has none).
/// Rows read from PostgreSQL in the binary forms of the loaded columns
/// ([`PgExtractor`](crate::PgExtractor)) go into a binary COPY as they were read, without being
/// decoded, unless the pass writes some columns as NULL or the rows' columns are in another
/// order.
pub struct PgLoader {
    shared: Arc<Shared>,
    spec: LoadSpec,
    /// `null[i]`: column `i` is written as NULL in this pass.
    null: Vec<bool>,
    /// Worked out on the first prepare, once the catalog said how to name the table.
    texts: Option<Texts>,
    session: Session,
    statements: Option<Statements>,
    /// The format asked for; turns to text for good when a value's kind has no binary form.
    format: CopyFormat,
    /// The last batch had rows the table refused: the next goes through the stage first.
    dirty: bool,
}

/// How a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// COPY into the table, or the mode's statement from the stage.
    Direct,
    /// Through the stage, deciding each row ([`write_staged`]).
    Staged,
}

/// The statements' text, worked out once from the spec.
struct Texts {
    create_stage: Option<String>,
    copy_text: String,
    copy_binary: String,
    column_types: String,
    write: Option<String>,
    /// A table with rules: the upsert's insert of new keys, after `write` updated the rest
    /// ([`sql::Upsert::Separate`]).
    insert_new: Option<String>,
    /// How statements name the table.
    kind: RelationKind,
    /// The staged insert that isolates refused rows (insert and insert-or-skip modes, into a
    /// table without rules): `None` otherwise.
    staged: Option<StagedTexts>,
}

/// See [`Texts::staged`].
struct StagedTexts {
    copy_text: String,
    copy_binary: String,
    mark_existing: Option<String>,
    insert_marking: String,
    insert_undecided: String,
    insert_each: Option<String>,
}

/// The prepared statements of the staged insert ([`StagedTexts`]).
struct Staged {
    copy_text: Statement,
    copy_binary: Option<Statement>,
    mark_existing: Option<Statement>,
    insert_marking: Statement,
    insert_undecided: Statement,
    /// Not preparable (a `DO` block): sent as a simple query.
    insert_each: Option<String>,
    counts: Statement,
    failures: Statement,
    keep_inserted: Statement,
}

struct Statements {
    /// COPY in text format: always ready, for batches that cannot go in binary.
    copy_text: Statement,
    /// COPY in binary format, when asked for and every column's type has a binary encoding.
    copy_binary: Option<(Statement, BinaryRows)>,
    write: Option<Statement>,
    /// See [`Texts::insert_new`].
    insert_new: Option<Statement>,
    /// See [`Texts::staged`].
    staged: Option<Staged>,
    /// Records the undo log of the staged batch (when the spec asks for one).
    undo: Option<Statement>,
    /// Writing, reading and clearing the checkpoint: dmf-core's statements ([`CHECKPOINTS`]).
    save_checkpoint: Statement,
    read_checkpoint: Statement,
    clear_checkpoint: Statement,
}

impl Texts {
    fn new(spec: &LoadSpec, kind: RelationKind) -> Self {
        // Inserts that keep an undo log go through the stage too, to record their keys.
        let staged = spec.write != WriteMode::Insert || spec.undo;
        let inserting = matches!(spec.write, WriteMode::Insert | WriteMode::InsertOrSkip);
        let staged_insert = (inserting && kind != RelationKind::Ordinary { rules: true }).then(|| StagedTexts {
            copy_text: sql::copy_in(sql::STAGE, &spec.columns, CopyFormat::Text),
            copy_binary: sql::copy_in(sql::STAGE, &spec.columns, CopyFormat::Binary),
            mark_existing: (spec.write == WriteMode::InsertOrSkip).then(|| sql::mark_existing(&spec.table, &spec.key)),
            insert_marking: sql::insert_marking(&spec.table, &spec.columns, &spec.key),
            insert_undecided: sql::insert_undecided(&spec.table, &spec.columns),
            insert_each: sql::insert_each(&spec.table, &spec.columns),
        });
        let target = qualified(&spec.table);
        let relation = if staged { sql::STAGE } else { &target };
        // Deletes and updates touch the table's own rows (an inheritance parent's, not its
        // children's); inserts go through the table, which routes them to its partitions.
        let only = crate::sql::relation::relation(&spec.table, kind);
        let (write, insert_new) = match spec.write {
            WriteMode::Insert if spec.undo => (Some(sql::insert_from_stage(&spec.table, &spec.columns)), None),
            WriteMode::Insert | WriteMode::InsertOrSkip => (None, None),
            WriteMode::Upsert => match sql::upsert(&spec.table, kind, &spec.columns, &spec.key, &spec.null_columns) {
                sql::Upsert::Counted(upsert) => (Some(upsert), None),
                sql::Upsert::Separate { update, insert } => (update, Some(insert)),
            },
            WriteMode::Delete => (Some(sql::delete(&only, &spec.key)), None),
            WriteMode::Update => (sql::update(&only, &spec.columns, &spec.key), None),
        };
        Self {
            create_stage: (staged || staged_insert.is_some()).then(|| sql::create_stage(&spec.table, &spec.columns)),
            copy_text: sql::copy_in(relation, &spec.columns, CopyFormat::Text),
            copy_binary: sql::copy_in(relation, &spec.columns, CopyFormat::Binary),
            column_types: sql::column_types(&spec.table, &spec.columns),
            write,
            insert_new,
            kind,
            staged: staged_insert,
        }
    }
}

impl PgLoader {
    pub(crate) fn new(shared: Arc<Shared>, spec: LoadSpec, format: CopyFormat) -> Self {
        let null = spec.columns.iter().map(|c| spec.null_columns.contains(&c.name)).collect();
        Self { shared, spec, null, texts: None, session: Session::new(), statements: None, format, dirty: false }
    }

    /// Opens the connection when needed and makes the control tables, the stage and the
    /// statements ready on it.
    async fn prepare(&mut self) -> Result<()> {
        let (client, fresh) = self.session.client(&self.shared.connector, Stage::Load).await?;
        if fresh {
            self.statements = None;
        }
        if self.statements.is_some() {
            return Ok(());
        }
        self.shared.ensure_control_tables(client).await?;
        if self.spec.trust_foreign_keys {
            // The sync proves every foreign key with one query each after the load.
            client.batch_execute(crate::trust::SKIP_CHECKS).await.map_err(|e| {
                to_dmf_error(e, Stage::Load, format!("skipping per-row foreign-key checks to load {}", self.spec.table))
            })?;
        }
        let texts = match self.texts.take() {
            Some(texts) => Ok(texts),
            None => {
                crate::catalog::relation_kind(client, &self.spec.table).await.map(|kind| Texts::new(&self.spec, kind))
            }
        };
        let prepared = match texts {
            Ok(texts) => {
                let prepared = prepare(client, &texts, &self.spec, self.format).await;
                self.texts = Some(texts);
                prepared
            }
            Err(error) => Err(error),
        };
        match prepared {
            Ok(statements) => {
                self.statements = Some(statements);
                Ok(())
            }
            Err(error) => {
                self.session.after_error(&error);
                Err(to_dmf_error(error, Stage::Load, format!("preparing to load {}", self.spec.table)))
            }
        }
    }

    /// The connection and its statements.
    async fn ready(&mut self) -> Result<(&mut Client, &Statements)> {
        self.prepare().await?;
        let (client, fresh) = self.session.client(&self.shared.connector, Stage::Load).await?;
        if fresh {
            // Lost between preparing and now: the engine's retry prepares again.
            self.statements = None;
        }
        match &self.statements {
            Some(statements) => Ok((client, statements)),
            None => Err(Error::transient(
                Stage::Load,
                format!(
                    "the connection to {} closed while preparing to load {}",
                    self.shared.connector.name(),
                    self.spec.table
                ),
            )),
        }
    }

    /// The format of the COPY data of the next batch: `None` until the loader has prepared its
    /// statements (on its first batch); text when asked for, when a column's type has no binary
    /// encoding, or after a value whose kind has none.
    pub fn copy_format(&self) -> Option<CopyFormat> {
        let statements = self.statements.as_ref()?;
        Some(if statements.copy_binary.is_some() { CopyFormat::Binary } else { CopyFormat::Text })
    }

    /// Says why a batch goes as text; when the value's kind has no binary form for its column,
    /// switches the loader to text COPY for good (values of a column keep their kind).
    fn after_refusal(&mut self, refused: Unencodable) {
        let column = self.column_name(refused.column).to_owned();
        let native = self.spec.columns.get(refused.column).map_or("", |c| c.native_type.as_str());
        match refused.refusal {
            Refusal::Kind => {
                tracing::debug!(
                    table = %self.spec.table, %column, r#type = native, kind = refused.kind,
                    "a value of this kind has no exact binary form for the column: loading the table with text COPY from now on"
                );
                self.format = CopyFormat::Text;
                if let Some(statements) = &mut self.statements {
                    statements.copy_binary = None;
                }
            }
            Refusal::Value => tracing::debug!(
                table = %self.spec.table, %column, r#type = native, kind = refused.kind,
                "a value has no exact binary form: sending this batch with text COPY, for PostgreSQL to read or refuse"
            ),
        }
    }

    /// `failure` as an error of the load stage; the connection is dropped when it broke.
    fn failed(&mut self, failure: Failure, doing: String) -> Error {
        if let Failure::Db(error) = &failure {
            self.session.after_error(error);
        }
        failure.into_error(Stage::Load, doing)
    }

    fn column_name(&self, index: usize) -> &str {
        self.spec.columns.get(index).map_or("?", |c| c.name.as_str())
    }
}

async fn prepare(
    client: &mut Client,
    texts: &Texts,
    spec: &LoadSpec,
    format: CopyFormat,
) -> std::result::Result<Statements, tokio_postgres::Error> {
    if let Some(create) = &texts.create_stage {
        client.batch_execute(create).await?;
    }
    let copy_text = client.prepare(&texts.copy_text).await?;
    let copy_binary = match format {
        CopyFormat::Binary => match binary_rows(client, texts, spec).await? {
            Some(rows) => Some((client.prepare(&texts.copy_binary).await?, rows)),
            None => None,
        },
        CopyFormat::Text => None,
    };
    let write = match &texts.write {
        Some(sql) => Some(client.prepare(sql).await?),
        None => None,
    };
    let insert_new = match &texts.insert_new {
        Some(sql) => Some(client.prepare(sql).await?),
        None => None,
    };
    let undo = match spec.undo.then_some(spec) {
        Some(spec) => {
            let columns = table_columns(client, &spec.table).await?;
            let changed = sql::changed(&spec.columns, &spec.key, &spec.null_columns);
            match undo_sql::capture(&spec.table, texts.kind, &columns, &spec.key, spec.write, changed.as_deref()) {
                Some(capture) => Some(client.prepare(&capture).await?),
                None => None,
            }
        }
        None => None,
    };
    let staged = match &texts.staged {
        Some(staged) => Some(Staged {
            copy_text: client.prepare(&staged.copy_text).await?,
            copy_binary: match copy_binary {
                Some(_) => Some(client.prepare(&staged.copy_binary).await?),
                None => None,
            },
            mark_existing: match &staged.mark_existing {
                Some(sql) => Some(client.prepare(sql).await?),
                None => None,
            },
            insert_marking: client.prepare(&staged.insert_marking).await?,
            insert_undecided: client.prepare(&staged.insert_undecided).await?,
            insert_each: staged.insert_each.clone(),
            counts: client.prepare(sql::STAGE_COUNTS).await?,
            failures: client.prepare(sql::STAGE_FAILURES).await?,
            keep_inserted: client.prepare(sql::STAGE_KEEP_INSERTED).await?,
        }),
        None => None,
    };
    let save_checkpoint = client.prepare(&CHECKPOINTS.write).await?;
    let read_checkpoint = client.prepare(&CHECKPOINTS.read).await?;
    let clear_checkpoint = client.prepare(&CHECKPOINTS.clear).await?;
    Ok(Statements {
        copy_text,
        copy_binary,
        write,
        insert_new,
        staged,
        undo,
        save_checkpoint,
        read_checkpoint,
        clear_checkpoint,
    })
}

/// The binary encoding of the loaded columns, from their types in the target; `None` (text
/// COPY, said in a debug line) when a column's type has none.
async fn binary_rows(
    client: &Client,
    texts: &Texts,
    spec: &LoadSpec,
) -> std::result::Result<Option<BinaryRows>, tokio_postgres::Error> {
    let described = client.prepare(&texts.column_types).await?;
    let mut wires = Vec::with_capacity(spec.columns.len());
    for (column, described) in spec.columns.iter().zip(described.columns()) {
        match Wire::of(described.type_()) {
            Some(wire) => wires.push(wire),
            None => {
                tracing::debug!(
                    table = %spec.table, column = %column.name, r#type = %described.type_(),
                    "no binary encoding for the column's type: loading the table with text COPY"
                );
                return Ok(None);
            }
        }
    }
    let rows = BinaryRows::new(wires);
    if rows.is_some() {
        tracing::debug!(table = %spec.table, "loading with binary COPY");
    }
    Ok(rows)
}

async fn replay_undo_log(
    client: &mut Client,
    table: &dmf_core::catalog::TableName,
    key: &[String],
    migration: &MigrationName,
    run: dmf_core::RunId,
) -> std::result::Result<dmf_core::RollbackReport, tokio_postgres::Error> {
    let columns = table_columns(client, table).await?;
    let kind = crate::catalog::relation_kind(client, table).await?;
    let replay = undo_sql::replay(table, kind, &columns, key);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&run.0, &migration.as_str()];
    let tx = client.transaction().await?;
    let deleted = tx.execute(&replay.delete_inserted, &params).await?;
    let updated = match &replay.restore_updated {
        Some(restore) => tx.execute(restore, &params).await?,
        None => 0,
    };
    let reinserted = tx.execute(&replay.reinsert_deleted, &params).await?;
    tx.execute(&replay.forget, &params).await?;
    tx.commit().await?;
    Ok(dmf_core::RollbackReport { deleted, restored: updated + reinserted })
}

/// The target table's writable columns, for the undo log.
async fn table_columns(
    client: &Client,
    table: &dmf_core::catalog::TableName,
) -> std::result::Result<Vec<undo_sql::TableColumn>, tokio_postgres::Error> {
    let rows = client.query(undo_sql::TABLE_COLUMNS, &[&qualified(table)]).await?;
    Ok(rows
        .iter()
        .map(|row| undo_sql::TableColumn { name: row.get(0), native: row.get(1), identity_always: row.get(2) })
        .collect())
}

/// Why a batch was not written.
enum WriteError {
    /// PostgreSQL refused it, or the connection failed.
    Db(tokio_postgres::Error),
    /// A value could not be sent in binary: the COPY was abandoned (and the transaction rolled
    /// back) before anything was written.
    Unencodable(Unencodable),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(error: tokio_postgres::Error) -> Self {
        WriteError::Db(error)
    }
}

/// Streams `rows` into the COPY `statement`, encoded by `encoder`; returns the rows copied. A
/// value the encoder refuses abandons the COPY (the sink, dropped unfinished, sends CopyFail).
///
/// Rows kept in the binary forms of the COPY's columns ([`Row::native`]) are not copied here:
/// consecutive rows of one page go to the connection as one slice of the page, which stays
/// alive until it is written. Other rows are encoded into chunks of about [`COPY_CHUNK`] bytes.
async fn copy_rows(
    tx: &Transaction<'_>,
    statement: &Statement,
    encoder: Encoder<'_>,
    rows: &[Row],
    order: Option<&[usize]>,
    null: &[bool],
) -> std::result::Result<u64, WriteError> {
    let sink = tx.copy_in::<_, Bytes>(statement).await?;
    let mut sink = std::pin::pin!(sink);
    let mut chunk = Vec::new();
    encoder.start(&mut chunk);
    // Rows read from PostgreSQL in the binary forms of these columns go as they are.
    let as_read = order.is_none() && !null.contains(&true);
    // The encoding last found to match: rows of one page share it.
    let mut taken: Option<&Arc<dyn NativeEncoding>> = None;
    // Rows taken as they are, one after another in their page: sent from the page, uncopied.
    let mut run: Option<NativeSpan> = None;
    for row in rows {
        let native = match (encoder, row.native_bytes()) {
            (Encoder::Binary(columns), Some(native)) if as_read => {
                let encoding = native.encoding();
                let takes = taken.is_some_and(|t| Arc::ptr_eq(t, encoding)) || columns.takes(encoding.as_ref());
                if takes {
                    taken = Some(encoding);
                }
                takes.then_some(native)
            }
            _ => None,
        };
        if let Some(native) = native {
            let extended = run.as_mut().is_some_and(|run| run.bytes().len() < COPY_CHUNK && run.extend(native));
            if !extended {
                if !chunk.is_empty() {
                    sink.send(Bytes::from(std::mem::take(&mut chunk))).await?;
                }
                if let Some(full) = run.replace(NativeSpan::from(native)) {
                    sink.send(Bytes::from_owner(full)).await?;
                }
            }
            continue;
        }
        if let Some(full) = run.take() {
            sink.send(Bytes::from_owner(full)).await?;
        }
        chunk.reserve(COPY_CHUNK.saturating_sub(chunk.len()));
        match order {
            None => encoder.write_row(&mut chunk, row.values().iter(), null),
            Some(order) => encoder.write_row(&mut chunk, order.iter().map(|&i| &row.values()[i]), null),
        }
        .map_err(WriteError::Unencodable)?;
        if chunk.len() >= COPY_CHUNK {
            sink.send(Bytes::from(std::mem::take(&mut chunk))).await?;
        }
    }
    if let Some(full) = run.take() {
        sink.send(Bytes::from_owner(full)).await?;
    }
    encoder.end(&mut chunk);
    if !chunk.is_empty() {
        sink.send(Bytes::from(chunk)).await?;
    }
    Ok(sink.as_mut().finish().await?)
}

/// Writes one batch and its checkpoint in one transaction, with binary COPY when `binary` and
/// the statements have it.
#[allow(clippy::too_many_arguments)]
async fn write_batch(
    client: &mut Client,
    statements: &Statements,
    checkpoint: &[Param],
    binary: bool,
    mode: WriteMode,
    batch: &LoadBatch<'_, Row>,
    order: Option<&[usize]>,
    null: &[bool],
    table_name: &str,
) -> std::result::Result<LoadReport, WriteError> {
    let rows = batch.records;
    let count = rows.len() as u64;
    let tx = client.transaction().await?;
    let mut report = LoadReport::default();
    if !rows.is_empty() {
        let (copy, encoder) = match &statements.copy_binary {
            Some((copy, columns)) if binary => (copy, Encoder::Binary(columns)),
            _ => (&statements.copy_text, Encoder::Text),
        };
        let copied = copy_rows(&tx, copy, encoder, rows, order, null).await?;
        if let Some(undo) = &statements.undo {
            tx.execute(undo, &[&batch.run.0, &batch.migration.as_str(), &table_name]).await?;
        }
        match (mode, &statements.write) {
            (WriteMode::Insert, Some(insert)) => report.inserted = tx.execute(insert, &[]).await?,
            (WriteMode::Insert, None) => report.inserted = copied,
            // Always staged (write_staged); never here.
            (WriteMode::InsertOrSkip, Some(_)) => report.inserted = copied,
            (WriteMode::Upsert, update) if statements.insert_new.is_some() => {
                if let Some(update) = update {
                    report.updated = tx.execute(update, &[]).await?;
                }
                if let Some(insert) = &statements.insert_new {
                    report.inserted = tx.execute(insert, &[]).await?;
                }
                report.unchanged = count.saturating_sub(report.inserted + report.updated);
            }
            (WriteMode::Upsert, Some(upsert)) => {
                let row = tx.query_one(upsert, &[]).await?;
                report.inserted = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
                report.updated = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                report.unchanged = count.saturating_sub(report.inserted + report.updated);
            }
            (WriteMode::Delete, Some(delete)) => {
                report.deleted = tx.execute(delete, &[]).await?;
                report.unchanged = count.saturating_sub(report.deleted);
            }
            (WriteMode::Update, Some(update)) => {
                report.updated = tx.execute(update, &[]).await?;
                report.unchanged = count.saturating_sub(report.updated);
            }
            // Nothing to write but the key (an update of key columns only).
            (_, None) => report.unchanged = count,
        }
    }
    tx.execute(&statements.save_checkpoint, &as_refs(checkpoint)).await?;
    tx.commit().await?;
    Ok(report)
}

/// Writes one batch through the stage, inserting or skipping (see [`sql::insert_marking`]),
/// and its checkpoint, in one transaction. With `isolate`, rows the table refuses are left out
/// and returned with their SQLSTATE and message (unique conflicts by the set-based insert's
/// conflict clause, then every undecided row once more alone, on the server: [`sql::insert_each`]);
/// without, the first refused row fails the batch.
#[allow(clippy::too_many_arguments)]
async fn write_staged(
    client: &mut Client,
    statements: &Statements,
    staged: &Staged,
    checkpoint: &[Param],
    binary: bool,
    isolate: bool,
    batch: &LoadBatch<'_, Row>,
    order: Option<&[usize]>,
    null: &[bool],
    table_name: &str,
) -> std::result::Result<(LoadReport, Vec<StagedFailure>), WriteError> {
    let rows = batch.records;
    let mut tx = client.transaction().await?;
    let mut report = LoadReport::default();
    let mut failed = Vec::new();
    if !rows.is_empty() {
        let (copy, encoder) = match (&staged.copy_binary, &statements.copy_binary) {
            (Some(copy), Some((_, columns))) if binary => (copy, Encoder::Binary(columns)),
            _ => (&staged.copy_text, Encoder::Text),
        };
        copy_rows(&tx, copy, encoder, rows, order, null).await?;
        if let Some(mark) = &staged.mark_existing {
            tx.execute(mark, &[]).await?;
        }
        // A NOT NULL, CHECK or foreign-key violation fails the whole set-based insert: then
        // every row goes alone.
        let set = tx.savepoint("dmf_set").await?;
        match set.execute(&staged.insert_marking, &[]).await {
            Ok(_) => set.commit().await?,
            Err(error) if isolate && crate::error::is_row_error(&error) => set.rollback().await?,
            Err(error) => return Err(error.into()),
        }
        let counts = tx.query_one(&staged.counts, &[]).await?;
        let undecided: i64 = counts.get(2);
        if undecided > 0 {
            match (&staged.insert_each, isolate) {
                (Some(each), true) => tx.batch_execute(each).await?,
                // Raises the first refused row's error.
                _ => {
                    tx.execute(&staged.insert_undecided, &[]).await?;
                }
            }
        }
        let counts = tx.query_one(&staged.counts, &[]).await?;
        report.inserted = u64::try_from(counts.get::<_, i64>(0)).unwrap_or(0);
        report.skipped = u64::try_from(counts.get::<_, i64>(1)).unwrap_or(0);
        for row in tx.query(&staged.failures, &[]).await? {
            failed.push(StagedFailure {
                index: usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX),
                sqlstate: row.get(1),
                message: row.get(2),
            });
        }
        if let Some(undo) = &statements.undo {
            tx.execute(&staged.keep_inserted, &[]).await?;
            tx.execute(undo, &[&batch.run.0, &batch.migration.as_str(), &table_name]).await?;
        }
    }
    tx.execute(&statements.save_checkpoint, &as_refs(checkpoint)).await?;
    tx.commit().await?;
    Ok((report, failed))
}

/// A row the table refused in [`write_staged`].
struct StagedFailure {
    index: usize,
    sqlstate: Option<String>,
    message: Option<String>,
}

/// The parameter of the checkpoint read and clear statements.
fn migration_value(migration: &MigrationName) -> Value {
    Value::Text(migration.as_str().to_owned())
}

/// The calls that mark their session's connection busy ([`Session::begin_call`]): a call
/// abandoned mid-flight (the engine's write timeout) leaves its connection to be replaced.
impl PgLoader {
    /// Loads `batch`; with `isolate`, rows the table refuses are left out and listed.
    async fn load_batch(&mut self, batch: LoadBatch<'_, Row>, isolate: bool) -> Result<LoadOutcome> {
        let order = match batch.records.first() {
            Some(first) => {
                let shape = first.shape();
                if let Some(other) = batch.records.iter().find(|r| !Arc::ptr_eq(r.shape(), shape) && r.shape() != shape)
                {
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
                self.spec.value_order(shape)?
            }
            None => None,
        };
        let mode = self.spec.write;
        let null = self.null.clone();
        let table_name = self.spec.table.to_string();
        let values = checkpoints::write_params(batch.migration, batch.checkpoint, SystemTime::now());
        let mut path = match mode {
            WriteMode::InsertOrSkip => Path::Staged,
            WriteMode::Insert if isolate && self.dirty => Path::Staged,
            _ => Path::Direct,
        };
        let mut binary = true;
        let result = loop {
            let (client, statements) = self.ready().await?;
            let checkpoint = bind(statements.save_checkpoint.params(), &values).map_err(|why| {
                Error::fatal(Stage::Load, format!("writing the checkpoint of `{}`: {why}", batch.migration))
            })?;
            let order = order.as_deref();
            let attempt = match (path, &statements.staged) {
                (Path::Direct, staged) => {
                    match write_batch(client, statements, &checkpoint, binary, mode, &batch, order, &null, &table_name)
                        .await
                    {
                        // A row the table refuses: the batch goes again through the stage,
                        // which isolates it (and the next batch goes there first).
                        Err(WriteError::Db(error))
                            if isolate && staged.is_some() && crate::error::is_row_error(&error) =>
                        {
                            path = Path::Staged;
                            self.dirty = true;
                            continue;
                        }
                        other => other.map(|report| (report, Vec::new())),
                    }
                }
                (Path::Staged, Some(staged)) => {
                    write_staged(
                        client,
                        statements,
                        staged,
                        &checkpoint,
                        binary,
                        isolate,
                        &batch,
                        order,
                        &null,
                        &table_name,
                    )
                    .await
                }
                (Path::Staged, None) => {
                    return Err(Error::Config(format!(
                        "loading {}: a table with INSERT or UPDATE rules cannot be loaded in {mode:?} mode",
                        self.spec.table
                    )));
                }
            };
            match attempt {
                Err(WriteError::Unencodable(refused)) if binary => {
                    self.after_refusal(refused);
                    binary = false;
                }
                other => break other,
            }
        };
        let (report, failed) = match result {
            Ok(written) => written,
            Err(WriteError::Unencodable(refused)) => {
                return Err(Error::fatal(
                    Stage::Load,
                    format!(
                        "loading {}: a {} value of column `{}` could not be written as COPY text",
                        self.spec.table,
                        refused.kind,
                        self.column_name(refused.column)
                    ),
                ));
            }
            Err(WriteError::Db(error)) => {
                self.session.after_error(&error);
                let verb = match mode {
                    WriteMode::Insert | WriteMode::InsertOrSkip => "inserting",
                    WriteMode::Upsert => "upserting",
                    WriteMode::Delete => "deleting",
                    WriteMode::Update => "updating",
                };
                return Err(to_dmf_error(
                    error,
                    Stage::Load,
                    format!(
                        "{verb} {} rows of {} in {}",
                        batch.records.len(),
                        self.spec.table,
                        self.shared.connector.name()
                    ),
                ));
            }
        };
        if path == Path::Staged && mode == WriteMode::Insert {
            // Back to the direct COPY once a batch loads clean.
            self.dirty = !failed.is_empty();
        }
        tracing::debug!(
            table = %self.spec.table, rows = batch.records.len(), inserted = report.inserted,
            updated = report.updated, deleted = report.deleted, skipped = report.skipped, refused = failed.len(),
            "batch committed with its checkpoint"
        );
        let failed = failed
            .into_iter()
            .map(|failure| {
                let kind = failure.sqlstate.as_deref().map_or(ErrorKind::Fatal, crate::error::sqlstate_kind);
                let key = batch.records.get(failure.index).map_or_else(|| "?".to_owned(), dmf_core::Record::key);
                let error = Error::stage(
                    Stage::Load,
                    kind,
                    format!(
                        "inserting into {}, row {key}: {} (SQLSTATE {})",
                        self.spec.table,
                        failure.message.as_deref().unwrap_or("refused"),
                        failure.sqlstate.as_deref().unwrap_or("unknown")
                    ),
                );
                RowFailure { index: failure.index, error }
            })
            .collect();
        Ok(LoadOutcome { report, failed })
    }

    async fn read_checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        let (client, statements) = self.ready().await?;
        let result = control::query(client, &statements.read_checkpoint, &[migration_value(migration)]).await;
        let rows = result.map_err(|failure| {
            self.failed(failure, format!("reading the checkpoint of `{migration}` from {SCHEMA}.checkpoints"))
        })?;
        rows.into_iter().next().map(checkpoints::from_row).transpose()
    }
}

impl Loader for PgLoader {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadReport> {
        self.session.begin_call();
        let result = self.load_batch(batch, false).await;
        self.session.end_call();
        result.map(|outcome| outcome.report)
    }

    /// Unique conflicts are left out by the conflict clause of one set-based insert from the
    /// stage; the rows it leaves undecided (or every row, when a NOT NULL, CHECK or foreign-key
    /// violation fails it) are inserted one at a time on the server, each in a subtransaction,
    /// and the refused ones listed. A batch goes straight to the table by COPY until one fails
    /// on a row; then through the stage until one loads clean.
    async fn load_isolating(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadOutcome> {
        self.session.begin_call();
        let result = self.load_batch(batch, true).await;
        self.session.end_call();
        result
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.session.begin_call();
        let result = self.read_checkpoint(migration).await;
        self.session.end_call();
        result
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

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        let (client, statements) = self.ready().await?;
        let result = control::execute(client, &statements.clear_checkpoint, &[migration_value(migration)]).await;
        result.map(|_| ()).map_err(|failure| self.failed(failure, format!("clearing the checkpoint of `{migration}`")))
    }

    /// Replays the undo log of `run` for this table backwards, in one transaction: deletes the
    /// rows the run inserted, restores the before-images of the rows it updated and re-inserts
    /// the rows it deleted, then forgets those entries.
    async fn rollback(&mut self, migration: &MigrationName, run: dmf_core::RunId) -> Result<dmf_core::RollbackReport> {
        let table = self.spec.table.clone();
        let key = self.spec.key.clone();
        let (client, _) = self.ready().await?;
        let result = replay_undo_log(client, &table, &key, migration, run).await;
        result.map_err(|error| {
            self.session.after_error(&error);
            to_dmf_error(error, Stage::Rollback, format!("rolling back `{migration}` of run {run} in {table}"))
        })
    }

    /// After loading explicit values into identity or serial columns, moves their sequences
    /// past the largest value, so the target's own inserts do not collide with copied ids. A
    /// failure (no privilege on the sequence) is logged, not fatal: the data is loaded.
    async fn finish(&mut self, migration: &MigrationName) -> Result<()> {
        if !matches!(self.spec.write, WriteMode::Insert | WriteMode::Upsert) {
            return Ok(());
        }
        let columns: BTreeSet<String> = self
            .spec
            .columns
            .iter()
            .filter(|c| c.identity && matches!(c.data_type, DataType::Int16 | DataType::Int32 | DataType::Int64))
            .map(|c| c.name.clone())
            .collect();
        if columns.is_empty() {
            return Ok(());
        }
        let table = qualified(&self.spec.table);
        let (client, _) = self.session.client(&self.shared.connector, Stage::Load).await?;
        for column in &columns {
            let statement = sql::sequence_catch_up(&self.spec.table, column);
            if let Err(error) = client.execute(&statement, &[&table, column]).await {
                tracing::warn!(
                    %migration, table = %self.spec.table, %column, error = %crate::error::to_dmf_error(error, Stage::Load, "moving the sequence").chain(),
                    "could not move the column's sequence past the loaded values; the target's own inserts may collide"
                );
            }
        }
        Ok(())
    }
}
