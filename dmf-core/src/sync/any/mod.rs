//! [`AnyDatabase`]: a [`Database`] chosen at run time (from a URL, a configuration file), behind
//! one type, so that a program handles every adapter with one code path instead of a `match`
//! over every pair of source and target.
//!
//! [`Database`] has associated types (its extractor and loader) and native `async` methods, so
//! `dyn Database` does not exist. [`DynDatabase`] is its object-safe mirror: the same methods,
//! returning boxed futures and the boxed [`AnyExtractor`] and [`AnyLoader`]; it is implemented
//! for every [`Database`]. [`AnyDatabase`] holds an `Arc<dyn DynDatabase>` and implements
//! [`Database`] again, so [`SyncJob`](super::SyncJob), [`quality::verify`](crate::quality::verify),
//! rollback, dry runs and run stores take it like any adapter.
//!
//! The cost is one allocation per call that crosses the erased boundary: per batch loaded, per
//! catalog read, per checkpoint read; never per row. An extractor's stream is already boxed by
//! the [`Extractor`](crate::Extractor) trait, so reads cost nothing more. Rows travel
//! unchanged, [native bytes](crate::Row::native_bytes) included: a loader of the same kind as
//! the extractor still writes them as they are.

mod extractor;
mod loader;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use futures::future::BoxFuture;

pub use extractor::AnyExtractor;
pub use loader::AnyLoader;

use super::{Database, DatabaseRole, ExtractSpec, ForeignKeyTrust, KeyRange, LoadSpec, TrustedWrites};
use crate::catalog::{Catalog, Column, Sequence, TableName, Trigger, TriggerEvent};
use crate::error::Result;
use crate::orchestrator::{CheckOutcome, RunStore};
use crate::quality::{RuleCheck, Violations};

/// The object-safe mirror of [`Database`], implemented for every [`Database`]; what an
/// [`AnyDatabase`] holds.
///
/// Why a second trait: [`Database`] is used through generics, so its methods are native
/// `async fn`s (no allocation per call) and it names its extractor and loader types, and such a
/// trait cannot be a trait object. Here every future is a [`BoxFuture`] and the extractor and
/// loader are the boxed [`AnyExtractor`] and [`AnyLoader`], which a vtable can return. The
/// boxes are per call (per batch at most), in the manner of sqlx's `AnyConnection` and
/// opendal's type-erasing layer.
///
/// Every method forwards to the [`Database`] method of the same name, defaulted methods
/// included, so an adapter that overrides one (SQL Server's
/// [`after_trusted_load`](Database::after_trusted_load), SQLite's
/// [`parallel_writes`](Database::parallel_writes), PostgreSQL's
/// [`clearing_event`](Database::clearing_event)) behaves the same erased. It is sealed: it
/// exists only through that blanket implementation. Use it through [`AnyDatabase`].
pub trait DynDatabase: Send + Sync + sealed::Sealed + 'static {
    /// [`Database::display_name`].
    fn display_name(&self) -> String;
    /// [`Database::parallel_writes`].
    fn parallel_writes(&self) -> bool;
    /// [`Database::read_catalog`].
    fn read_catalog(&self) -> BoxFuture<'_, Result<Catalog>>;
    /// [`Database::describe_query`].
    fn describe_query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Column>>>;
    /// [`Database::extractor`], boxed.
    fn extractor(&self, spec: ExtractSpec) -> AnyExtractor;
    /// [`Database::key_ranges`].
    fn key_ranges<'a>(&'a self, spec: &'a ExtractSpec, parts: NonZeroUsize) -> BoxFuture<'a, Result<Vec<KeyRange>>>;
    /// [`Database::loader`], boxed.
    fn loader(&self, spec: LoadSpec) -> AnyLoader;
    /// [`Database::clear_tables`].
    fn clear_tables(&self, tables: Vec<TableName>) -> BoxFuture<'_, Result<u64>>;
    /// [`Database::run_store`].
    fn run_store(&self) -> BoxFuture<'_, Result<Arc<dyn RunStore>>>;
    /// [`Database::foreign_key_trust`].
    fn foreign_key_trust<'a>(
        &'a self,
        tables: &'a [TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> BoxFuture<'a, Result<ForeignKeyTrust>>;
    /// [`Database::after_trusted_load`].
    fn after_trusted_load<'a>(&'a self, tables: &'a [TableName]) -> BoxFuture<'a, Result<()>>;
    /// [`Database::sequences`].
    fn sequences<'a>(&'a self, tables: &'a [TableName]) -> BoxFuture<'a, Result<Vec<Sequence>>>;
    /// [`Database::set_sequences`].
    fn set_sequences<'a>(&'a self, sequences: &'a [Sequence]) -> BoxFuture<'a, Result<()>>;
    /// [`Database::triggers`].
    fn triggers<'a>(&'a self, tables: &'a [TableName]) -> BoxFuture<'a, Result<Vec<Trigger>>>;
    /// [`Database::clearing_event`].
    fn clearing_event(&self) -> TriggerEvent;
    /// [`Database::preflight`].
    fn preflight(&self, role: DatabaseRole) -> BoxFuture<'_, Vec<CheckOutcome>>;
    /// [`Database::find_violations`].
    fn find_violations<'a>(&'a self, check: &'a RuleCheck, sample: usize) -> BoxFuture<'a, Result<Violations>>;
    /// [`Database::snapshot`], erased.
    fn snapshot(&self) -> BoxFuture<'_, Result<AnyDatabase>>;
    /// The database itself, for [`AnyDatabase::downcast_ref`].
    fn as_any(&self) -> &dyn Any;
}

mod sealed {
    /// Only the blanket implementation of [`DynDatabase`](super::DynDatabase) exists.
    pub trait Sealed {}
    impl<T: super::Database> Sealed for T {}
}

/// Each method calls the [`Database`] method of the same name (fully qualified: a bare call
/// would be ambiguous between the two traits) and boxes what it returns.
impl<T: Database> DynDatabase for T {
    fn display_name(&self) -> String {
        Database::display_name(self)
    }

    fn parallel_writes(&self) -> bool {
        Database::parallel_writes(self)
    }

    fn read_catalog(&self) -> BoxFuture<'_, Result<Catalog>> {
        Box::pin(Database::read_catalog(self))
    }

    fn describe_query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Column>>> {
        Box::pin(Database::describe_query(self, query))
    }

    fn extractor(&self, spec: ExtractSpec) -> AnyExtractor {
        AnyExtractor::new(Database::extractor(self, spec))
    }

    fn key_ranges<'a>(&'a self, spec: &'a ExtractSpec, parts: NonZeroUsize) -> BoxFuture<'a, Result<Vec<KeyRange>>> {
        Box::pin(Database::key_ranges(self, spec, parts))
    }

    fn loader(&self, spec: LoadSpec) -> AnyLoader {
        AnyLoader::new(Database::loader(self, spec))
    }

    fn clear_tables(&self, tables: Vec<TableName>) -> BoxFuture<'_, Result<u64>> {
        Box::pin(Database::clear_tables(self, tables))
    }

    fn run_store(&self) -> BoxFuture<'_, Result<Arc<dyn RunStore>>> {
        Box::pin(Database::run_store(self))
    }

    fn foreign_key_trust<'a>(
        &'a self,
        tables: &'a [TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> BoxFuture<'a, Result<ForeignKeyTrust>> {
        Box::pin(Database::foreign_key_trust(self, tables, writes, skip_triggers))
    }

    fn after_trusted_load<'a>(&'a self, tables: &'a [TableName]) -> BoxFuture<'a, Result<()>> {
        Box::pin(Database::after_trusted_load(self, tables))
    }

    fn sequences<'a>(&'a self, tables: &'a [TableName]) -> BoxFuture<'a, Result<Vec<Sequence>>> {
        Box::pin(Database::sequences(self, tables))
    }

    fn set_sequences<'a>(&'a self, sequences: &'a [Sequence]) -> BoxFuture<'a, Result<()>> {
        Box::pin(Database::set_sequences(self, sequences))
    }

    fn triggers<'a>(&'a self, tables: &'a [TableName]) -> BoxFuture<'a, Result<Vec<Trigger>>> {
        Box::pin(Database::triggers(self, tables))
    }

    fn clearing_event(&self) -> TriggerEvent {
        Database::clearing_event(self)
    }

    fn preflight(&self, role: DatabaseRole) -> BoxFuture<'_, Vec<CheckOutcome>> {
        Box::pin(Database::preflight(self, role))
    }

    fn find_violations<'a>(&'a self, check: &'a RuleCheck, sample: usize) -> BoxFuture<'a, Result<Violations>> {
        Box::pin(Database::find_violations(self, check, sample))
    }

    fn snapshot(&self) -> BoxFuture<'_, Result<AnyDatabase>> {
        Box::pin(async move { Database::snapshot(self).await.map(AnyDatabase::new) })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Any [`Database`], its type chosen at run time: what a program that opens databases from
/// URLs works with (the `dmf` crate's `dmf::open` returns one).
///
/// Cheap to clone (an [`Arc`]); clones reach the same database. It implements [`Database`]
/// by forwarding every method to the wrapped database, so
/// `SyncJob<AnyDatabase, AnyDatabase>` syncs between any two adapters with one code path; its
/// extractors and loaders are the boxed [`AnyExtractor`] and [`AnyLoader`] (the trait object
/// design is explained in [`DynDatabase`]).
///
/// The cost is one allocation per call that crosses the erased boundary: per batch loaded, per
/// catalog read, per checkpoint read; never per row. An extractor's stream is already boxed by
/// the [`Extractor`](crate::Extractor) trait, so reads cost nothing more. Rows travel
/// unchanged, [native bytes](crate::Row::native_bytes) included: a loader of the same kind as
/// the extractor still writes them as they are.
/// [`downcast_ref`](Self::downcast_ref) reaches the adapter's own type for what only it offers
/// (running its own SQL, its backup).
///
/// ```
/// use std::sync::Arc;
/// use dmf_core::sync::{AnyDatabase, Database, SyncJob, SyncMode};
/// use dmf_core::{RunRequest, RunSummary};
///
/// /// One code path for every pair of adapters (in a program, `dmf::open(url)` opens each side).
/// async fn copy(source: AnyDatabase, target: AnyDatabase) -> dmf_core::Result<RunSummary> {
///     println!("{} -> {}", source.display_name(), target.display_name());
///     SyncJob::new(Arc::new(source), Arc::new(target), SyncMode::Upsert).run(RunRequest::all()).await
/// }
///
/// /// Any adapter's handle is erased with `AnyDatabase::new`, and found again by its type.
/// fn erase<D: Database>(database: D) -> AnyDatabase {
///     let any = AnyDatabase::new(database);
///     assert!(any.downcast_ref::<D>().is_some());
///     any
/// }
/// # let _ = (copy, erase::<AnyDatabase>);
/// ```
#[derive(Clone)]
pub struct AnyDatabase {
    inner: Arc<dyn DynDatabase>,
}

impl AnyDatabase {
    /// Erases `database`'s type. An [`AnyDatabase`] given here is returned as it is (not
    /// wrapped twice).
    pub fn new<D: Database>(database: D) -> Self {
        if let Some(any) = (&database as &dyn Any).downcast_ref::<AnyDatabase>() {
            return any.clone();
        }
        Self { inner: Arc::new(database) }
    }

    /// The wrapped database when it is a `D`, for what only its adapter offers.
    /// (`downcast_ref::<AnyDatabase>()` is this handle itself: [`new`](Self::new) never wraps
    /// one in another.)
    pub fn downcast_ref<D: Database>(&self) -> Option<&D> {
        (self as &dyn Any).downcast_ref::<D>().or_else(|| self.inner.as_any().downcast_ref::<D>())
    }
}

impl fmt::Debug for AnyDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyDatabase").field(&self.inner.display_name()).finish()
    }
}

/// Every method, the defaulted ones included, forwards to the wrapped database. A method with
/// several borrowed arguments is an `async fn` awaiting the boxed future (no allocation): the
/// box lives as long as the shortest borrow, a lifetime the returned `impl Future` cannot name.
impl Database for AnyDatabase {
    type Extractor = AnyExtractor;
    type Loader = AnyLoader;

    fn display_name(&self) -> String {
        self.inner.display_name()
    }

    fn parallel_writes(&self) -> bool {
        self.inner.parallel_writes()
    }

    fn read_catalog(&self) -> impl Future<Output = Result<Catalog>> + Send {
        self.inner.read_catalog()
    }

    fn extractor(&self, spec: ExtractSpec) -> AnyExtractor {
        self.inner.extractor(spec)
    }

    async fn key_ranges(&self, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
        self.inner.key_ranges(spec, parts).await
    }

    fn loader(&self, spec: LoadSpec) -> AnyLoader {
        self.inner.loader(spec)
    }

    fn clear_tables(&self, tables: Vec<TableName>) -> impl Future<Output = Result<u64>> + Send {
        self.inner.clear_tables(tables)
    }

    fn run_store(&self) -> impl Future<Output = Result<Arc<dyn RunStore>>> + Send {
        self.inner.run_store()
    }

    async fn foreign_key_trust(
        &self,
        tables: &[TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> Result<ForeignKeyTrust> {
        self.inner.foreign_key_trust(tables, writes, skip_triggers).await
    }

    async fn after_trusted_load(&self, tables: &[TableName]) -> Result<()> {
        self.inner.after_trusted_load(tables).await
    }

    async fn sequences(&self, tables: &[TableName]) -> Result<Vec<Sequence>> {
        self.inner.sequences(tables).await
    }

    async fn set_sequences(&self, sequences: &[Sequence]) -> Result<()> {
        self.inner.set_sequences(sequences).await
    }

    async fn triggers(&self, tables: &[TableName]) -> Result<Vec<Trigger>> {
        self.inner.triggers(tables).await
    }

    fn clearing_event(&self) -> TriggerEvent {
        self.inner.clearing_event()
    }

    fn preflight(&self, role: DatabaseRole) -> impl Future<Output = Vec<CheckOutcome>> + Send {
        self.inner.preflight(role)
    }

    async fn find_violations(&self, check: &RuleCheck, sample: usize) -> Result<Violations> {
        self.inner.find_violations(check, sample).await
    }

    async fn describe_query(&self, query: &str) -> Result<Vec<Column>> {
        self.inner.describe_query(query).await
    }

    fn snapshot(&self) -> impl Future<Output = Result<Self>> + Send
    where
        Self: Sized,
    {
        self.inner.snapshot()
    }
}
