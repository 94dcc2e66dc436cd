//! Connection-level fault injection: a [`Database`] whose loaders and extractors inject the
//! faults a test planned for a table or a migration, whatever the adapter underneath.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use dmf_core::catalog::{Catalog, TableName};
use dmf_core::orchestrator::{CheckOutcome, RunStore};
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::sync::{Database, DatabaseRole, ExtractSpec, ForeignKeyTrust, KeyRange, LoadSpec, TrustedWrites};
use dmf_core::{MigrationName, Result};

use crate::faults::{FaultPlan, FaultyExtractor, FaultyLoader, LoadPlans};

/// Wraps any [`Database`] and delegates everything to it, except that the loaders and
/// extractors it opens are [`FaultyLoader`]s and [`FaultyExtractor`]s driven by the
/// [`FaultPlan`]s registered for their table or migration. What a sync does on a real
/// PostgreSQL or SQLite database, with a fault where the test wants it.
///
/// - [`faults_for`](Self::faults_for): loads into a table (every loader opened for it shares
///   the plan and its call count);
/// - [`faults_for_migration`](Self::faults_for_migration): loads of one migration, such as one
///   key range (`public.items [range 2/3]`); it wins over its table's plan;
/// - [`extract_faults_for`](Self::extract_faults_for): batches read from a table (extractors
///   do not know their migration).
///
/// Tables are written `schema.table` or `table`, as on the command line; a name without a
/// schema matches the table in any schema. A loader or extractor with no plan behaves exactly
/// as the wrapped one. [`snapshot`](Database::snapshot) handles keep the plans.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use dmf_core::RunRequest;
/// use dmf_core::sync::{SyncJob, SyncMode};
/// use dmf_sqlite::SqliteDatabase;
/// use dmf_testkit::{FaultPlan, FaultyDatabase};
///
/// let dir = tempfile::tempdir()?;
/// let (source, target) = (dir.path().join("source.db"), dir.path().join("target.db"));
/// rusqlite::Connection::open(&source)?.execute_batch(
///     "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);
///      INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');",
/// )?;
/// rusqlite::Connection::open(&target)?.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);")?;
///
/// // The first load into `items` fails as a dropped connection would; the engine retries it.
/// let plan = FaultPlan::new().transient(1);
/// let target = FaultyDatabase::new(SqliteDatabase::open(&target)?).faults_for("items", plan.clone());
/// let job = SyncJob::new(Arc::new(SqliteDatabase::open(&source)?), Arc::new(target), SyncMode::Full);
/// let summary = job.run(RunRequest::all()).await?;
/// assert!(summary.succeeded(), "{summary}");
/// assert_eq!(summary.migration("items").map(|m| m.counts.inserted), Some(3));
/// assert!(plan.calls() > 1, "the failed load was tried again");
/// # Ok(()) }
/// ```
pub struct FaultyDatabase<D> {
    inner: D,
    faults: Arc<Faults>,
}

impl<D: Database> FaultyDatabase<D> {
    /// Wraps `inner`, with no faults yet.
    pub fn new(inner: D) -> Self {
        Self { inner, faults: Arc::new(Faults::default()) }
    }

    /// Loads into `table` follow `plan`. Calls are counted across every loader opened for the
    /// table (a `full` sync's deferred foreign-key pass opens a second one, a `diff` sync one
    /// for its deletes); a migration's own plan wins.
    pub fn faults_for(mut self, table: &str, plan: FaultPlan) -> Self {
        Arc::make_mut(&mut self.faults).load_by_table.push((TableName::parse(table), plan));
        self
    }

    /// Loads of `migration` (its exact name, such as `public.items [range 2/3]`) follow `plan`,
    /// whichever table they write.
    pub fn faults_for_migration(mut self, migration: &str, plan: FaultPlan) -> Self {
        Arc::make_mut(&mut self.faults).load_by_migration.push((MigrationName::new(migration), plan));
        self
    }

    /// Batches read from `table` follow `plan`, counted across every extractor opened for it
    /// (one per key range, say).
    pub fn extract_faults_for(mut self, table: &str, plan: FaultPlan) -> Self {
        Arc::make_mut(&mut self.faults).extract_by_table.push((TableName::parse(table), plan));
        self
    }

    /// The wrapped database.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

/// The plans registered on a [`FaultyDatabase`], shared with the loaders it opened.
#[derive(Clone, Default)]
pub(crate) struct Faults {
    load_by_migration: Vec<(MigrationName, FaultPlan)>,
    load_by_table: Vec<(TableName, FaultPlan)>,
    extract_by_table: Vec<(TableName, FaultPlan)>,
}

impl Faults {
    /// The plan for a batch of `migration` written into `table`: the migration's, else the
    /// table's.
    pub(crate) fn for_load(&self, migration: &MigrationName, table: &TableName) -> Option<&FaultPlan> {
        self.load_by_migration
            .iter()
            .find(|(name, _)| name == migration)
            .map(|(_, plan)| plan)
            .or_else(|| self.load_by_table.iter().find(|(name, _)| name.matches(table)).map(|(_, plan)| plan))
    }

    fn for_extract(&self, table: &TableName) -> Option<FaultPlan> {
        self.extract_by_table.iter().find(|(name, _)| name.matches(table)).map(|(_, plan)| plan.clone())
    }
}

/// Plain delegation, except for `extractor` and `loader` (wrapped) and `snapshot` (a snapshot of
/// the wrapped database, with the same plans).
impl<D: Database> Database for FaultyDatabase<D> {
    type Extractor = FaultyExtractor<D::Extractor>;
    type Loader = FaultyLoader<D::Loader>;

    fn display_name(&self) -> String {
        self.inner.display_name()
    }

    fn parallel_writes(&self) -> bool {
        self.inner.parallel_writes()
    }

    fn read_catalog(&self) -> impl Future<Output = Result<Catalog>> + Send {
        self.inner.read_catalog()
    }

    fn extractor(&self, spec: ExtractSpec) -> Self::Extractor {
        let plan = self.faults.for_extract(&spec.table);
        FaultyExtractor::with_plan(self.inner.extractor(spec), plan)
    }

    fn key_ranges(
        &self,
        spec: &ExtractSpec,
        parts: NonZeroUsize,
    ) -> impl Future<Output = Result<Vec<KeyRange>>> + Send {
        self.inner.key_ranges(spec, parts)
    }

    fn loader(&self, spec: LoadSpec) -> Self::Loader {
        let plans = LoadPlans::Registered { table: spec.table.clone(), faults: Arc::clone(&self.faults) };
        FaultyLoader::with_plans(self.inner.loader(spec), plans)
    }

    fn clear_tables(&self, tables: Vec<TableName>) -> impl Future<Output = Result<u64>> + Send {
        self.inner.clear_tables(tables)
    }

    fn run_store(&self) -> impl Future<Output = Result<Arc<dyn RunStore>>> + Send {
        self.inner.run_store()
    }

    fn foreign_key_trust(
        &self,
        tables: &[TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> impl Future<Output = Result<ForeignKeyTrust>> + Send {
        self.inner.foreign_key_trust(tables, writes, skip_triggers)
    }

    fn after_trusted_load(&self, tables: &[TableName]) -> impl Future<Output = Result<()>> + Send {
        self.inner.after_trusted_load(tables)
    }

    fn sequences(&self, tables: &[TableName]) -> impl Future<Output = Result<Vec<dmf_core::catalog::Sequence>>> + Send {
        self.inner.sequences(tables)
    }

    fn set_sequences(&self, sequences: &[dmf_core::catalog::Sequence]) -> impl Future<Output = Result<()>> + Send {
        self.inner.set_sequences(sequences)
    }

    fn triggers(&self, tables: &[TableName]) -> impl Future<Output = Result<Vec<dmf_core::catalog::Trigger>>> + Send {
        self.inner.triggers(tables)
    }

    fn clearing_event(&self) -> dmf_core::catalog::TriggerEvent {
        self.inner.clearing_event()
    }

    fn preflight(&self, role: DatabaseRole) -> impl Future<Output = Vec<CheckOutcome>> + Send {
        self.inner.preflight(role)
    }

    fn find_violations(&self, check: &RuleCheck, sample: usize) -> impl Future<Output = Result<Violations>> + Send {
        self.inner.find_violations(check, sample)
    }

    fn describe_query(&self, query: &str) -> impl Future<Output = Result<Vec<dmf_core::catalog::Column>>> + Send {
        self.inner.describe_query(query)
    }

    fn snapshot(&self) -> impl Future<Output = Result<Self>> + Send
    where
        Self: Sized,
    {
        let (snapshot, faults) = (self.inner.snapshot(), Arc::clone(&self.faults));
        async move { Ok(Self { inner: snapshot.await?, faults }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_s_plan_wins_over_its_table_s_and_a_table_without_schema_matches_any_schema() {
        let (table_plan, range_plan) = (FaultPlan::new().fail_at(1), FaultPlan::new().fail_at(2));
        let mut faults = Faults::default();
        faults.load_by_table.push((TableName::parse("items"), table_plan.clone()));
        faults.load_by_migration.push((MigrationName::new("public.items [range 2/3]"), range_plan.clone()));
        let items = TableName::parse("public.items");
        let plan = |migration: &str, table: &TableName| faults.for_load(&MigrationName::new(migration), table).cloned();
        assert!(plan("public.items [range 2/3]", &items).is_some_and(|p| p.is(&range_plan)));
        assert!(plan("public.items [range 1/3]", &items).is_some_and(|p| p.is(&table_plan)));
        assert!(plan("shop.items", &TableName::parse("shop.items")).is_some_and(|p| p.is(&table_plan)));
        assert!(plan("public.other", &TableName::parse("public.other")).is_none());
    }
}
