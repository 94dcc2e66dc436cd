//! [`TypedDatabase`]: typed sources and targets opened on any database by name, the wiring of
//! a code-first migration in a line each.

use std::future::Future;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{TypedExtractor, TypedLoader, decode};
use crate::catalog::{Table, TableName};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::names::{MigrationName, RunId};
use crate::pipeline::{LoadBatch, LoadOutcome, LoadReport, Loader};
use crate::record::Record;
use crate::sync::{Database, ExtractSpec, LoadSpec, WriteMode};
use crate::{RollbackReport, Row};

/// Typed sources and targets on a [`Database`], by table name or query.
///
/// Implemented for every database that is `Clone` (every adapter's handle is: clones share
/// the connection pool or writer), [`AnyDatabase`](crate::sync::AnyDatabase) included.
///
/// ```no_run
/// # async fn demo(db: dmf_core::sync::AnyDatabase) -> dmf_core::Result<()> {
/// use dmf_core::typed::TypedDatabase;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Customer { id: i64, email: String }
/// impl dmf_core::Record for Customer { fn key(&self) -> String { self.id.to_string() } }
///
/// let legacy = db.source::<Customer>("legacy_customers").await?;
/// let joined = db
///     .query_source::<Customer>("SELECT c.id, e.address AS email FROM customers c JOIN emails e ON e.owner = c.id", &["id"])
///     .await?;
/// let modern = db.target::<Customer>("customers").await?.insert_or_skip();
/// # let _ = (legacy, joined, modern); Ok(()) }
/// ```
pub trait TypedDatabase: Database + Clone {
    /// Reads table `table` (`schema.table` or `table`) as `T`, a page at a time in key order,
    /// only the columns `T` has fields for (and the key). Fails before any row is read when
    /// the table is missing or has no column for one of `T`'s fields, naming it.
    fn source<T: Record + DeserializeOwned>(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<TypedExtractor<Self::Extractor, T>>> + Send;

    /// Reads the rows of `query` as `T`, keyset-paginated on `key` (columns of its result that
    /// identify a row), so that it resumes after a crash exactly as a table source does. Its
    /// columns are read from the database before any row (the query is prepared, not run):
    /// a key or field with no column is named then.
    fn query_source<T: Record + DeserializeOwned>(
        &self,
        query: &str,
        key: &[&str],
    ) -> impl Future<Output = Result<TypedExtractor<Self::Extractor, T>>> + Send;

    /// Writes `T`s into table `table` (`schema.table` or `table`): plain inserts with an undo
    /// log by default; see [`TypedTarget`] for the other write modes.
    fn target<T: Record + Serialize>(&self, table: &str) -> impl Future<Output = Result<TypedTarget<Self, T>>> + Send;
}

/// `schema.table` or `table`.
fn table_name(name: &str) -> TableName {
    match name.split_once('.') {
        Some((schema, table)) => TableName::new(Some(schema), table),
        None => TableName::new(None, name),
    }
}

async fn find_table<D: Database>(db: &D, name: &str) -> Result<Table> {
    let wanted = table_name(name);
    let catalog = db.read_catalog().await?;
    catalog
        .table(&wanted)
        .cloned()
        .ok_or_else(|| Error::Schema(format!("{} has no table `{wanted}`", db.display_name())))
}

/// Keeps only the columns `fields` name, and the key; errors naming the fields no column feeds.
fn read_for<T: DeserializeOwned>(db_name: &str, mut spec: ExtractSpec) -> Result<ExtractSpec> {
    let record = super::short_type_name::<T>();
    let fields = decode::struct_fields::<T>().ok_or_else(|| {
        Error::Config(format!(
            "reading `{}` as {record}: the record type must be a struct with named fields",
            spec.table
        ))
    })?;
    let missing: Vec<&str> = fields.iter().copied().filter(|f| !spec.columns.iter().any(|c| c.name == *f)).collect();
    if !missing.is_empty() {
        let columns: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        return Err(Error::Schema(format!(
            "{db_name}: `{}` has no column {} for the field{} of {record} (its columns: {})",
            spec.table,
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
            if missing.len() == 1 { "" } else { "s" },
            columns.join(", ")
        )));
    }
    spec.columns.retain(|c| fields.contains(&c.name.as_str()) || spec.key.contains(&c.name));
    let names: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
    let key = spec.key.iter().filter_map(|k| names.iter().position(|n| n == k)).collect();
    spec.shape = std::sync::Arc::new(crate::RowShape { table: spec.table.clone(), columns: names, key });
    Ok(spec)
}

impl<D: Database + Clone> TypedDatabase for D {
    async fn source<T: Record + DeserializeOwned>(&self, table: &str) -> Result<TypedExtractor<D::Extractor, T>> {
        let table = find_table(self, table).await?;
        let spec = read_for::<T>(&self.display_name(), ExtractSpec::whole_table(&table)?)?;
        Ok(TypedExtractor::new(self.extractor(spec)))
    }

    async fn query_source<T: Record + DeserializeOwned>(
        &self,
        query: &str,
        key: &[&str],
    ) -> Result<TypedExtractor<D::Extractor, T>> {
        let columns = self.describe_query(query).await?;
        let name = format!("query source of {}", super::short_type_name::<T>());
        let spec = read_for::<T>(&self.display_name(), ExtractSpec::query(&name, query, columns, key)?)?;
        Ok(TypedExtractor::new(self.extractor(spec)))
    }

    async fn target<T: Record + Serialize>(&self, table: &str) -> Result<TypedTarget<D, T>> {
        let table = find_table(self, table).await?;
        let mut spec = LoadSpec::whole_table(&table, WriteMode::Insert)?;
        spec.undo = true;
        Ok(TypedTarget { db: self.clone(), spec, loader: None, _record: PhantomData })
    }
}

/// A typed target: writes `T`s into one table of `D` ([`TypedDatabase::target`]), each batch
/// with its checkpoint and, unless [`without_undo`](Self::without_undo), its undo log, so a
/// run can be rolled back.
///
/// | write mode | a row whose key exists |
/// |---|---|
/// | [`insert`](Self::insert) (default) | rejected (the key's unique constraint) |
/// | [`insert_or_skip`](Self::insert_or_skip) | left as it is, counted skipped, decided by the database |
/// | [`upsert`](Self::upsert) | updated where a value differs |
///
/// The adapter's loader is made on first use, with the mode chosen by then. Every writable
/// column of the table is written: a column `T` has no field for is written NULL (its default
/// does not apply), and a field with no column fails the batch naming it.
pub struct TypedTarget<D: Database, T> {
    db: D,
    spec: LoadSpec,
    loader: Option<TypedLoader<D::Loader, T>>,
    _record: PhantomData<fn(T)>,
}

impl<D: Database, T> TypedTarget<D, T> {
    fn mode(mut self, write: WriteMode) -> Self {
        self.spec.write = write;
        self.loader = None;
        self
    }

    /// Plain inserts (the default): a row whose key exists is a reject.
    pub fn insert(self) -> Self {
        self.mode(WriteMode::Insert)
    }

    /// Rows whose key the table holds are skipped and counted as such, by the database,
    /// with nothing read into memory first: what a re-run over partly migrated data needs.
    pub fn insert_or_skip(self) -> Self {
        self.mode(WriteMode::InsertOrSkip)
    }

    /// Insert new keys, update existing rows that differ.
    pub fn upsert(self) -> Self {
        self.mode(WriteMode::Upsert)
    }

    /// Keeps no undo log: faster, but the run cannot be rolled back row by row.
    pub fn without_undo(mut self) -> Self {
        self.spec.undo = false;
        self.loader = None;
        self
    }

    /// What the loader is made from.
    pub fn spec(&self) -> &LoadSpec {
        &self.spec
    }

    fn loader(&mut self) -> &mut TypedLoader<D::Loader, T> {
        let Self { db, spec, loader, .. } = self;
        loader.get_or_insert_with(|| {
            TypedLoader::new(db.loader(spec.clone()), spec.table.clone(), spec.columns.clone(), &spec.key)
        })
    }
}

impl<D, T> Loader for TypedTarget<D, T>
where
    D: Database,
    D::Loader: Loader<Item = Row>,
    T: Record + Serialize,
{
    type Item = T;

    async fn load(&mut self, batch: LoadBatch<'_, T>) -> Result<LoadReport> {
        self.loader().load(batch).await
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, T>) -> Result<LoadOutcome> {
        self.loader().load_isolating(batch).await
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.loader().checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        self.loader().clear_checkpoint(migration).await
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        self.loader().committed(migration, checkpoint, records).await
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> Result<RollbackReport> {
        self.loader().rollback(migration, run).await
    }

    async fn finish(&mut self, migration: &MigrationName) -> Result<()> {
        self.loader().finish(migration).await
    }
}
