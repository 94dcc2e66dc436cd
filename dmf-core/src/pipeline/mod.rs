//! Code-first migrations: an [`Extractor`], a [`Transformer`], [`Rules`] and a [`Loader`]
//! joined into a [`Pipeline`], which is a [`DataMigration`].

mod extract;
mod load;
mod transform;
mod validate;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

pub use extract::{Extractor, SourceBatch};
pub use load::{LoadBatch, LoadOutcome, LoadReport, Loader, RowFailure, committed_insert};
pub use transform::{FnTransformer, Identity, Transformed, Transformer, transform_fn};
pub use validate::{Rules, ValidationReport, Validator, Violation};

use crate::engine::run_pipeline;
use crate::error::{Error, Result};
use crate::migration::{DataMigration, MigrationContext, MigrationResult, RollbackReport};
use crate::names::MigrationName;

/// A migration made of an extractor, a transformer, validation rules and a loader.
///
/// ```
/// use dmf_core::*;
/// #[derive(Clone, serde::Serialize)]
/// struct Id(i64);
/// impl Record for Id { fn key(&self) -> String { self.0.to_string() } }
///
/// fn customers(source: impl Extractor<Item = Id>, target: impl Loader<Item = Id>) -> impl DataMigration {
///     Pipeline::new(source, Identity::<Id>::default(), target)
///         .named("customers")
///         .describe("legacy customers into the new schema")
///         .depends_on(["countries"])
///         .validate(Rules::new().field("id", |id: &Id| {
///             if id.0 > 0 { Ok(()) } else { Err(format!("{} is not positive", id.0)) }
///         }))
/// }
/// ```
pub struct Pipeline<E, T: Transformer, L> {
    name: MigrationName,
    description: String,
    dependencies: Vec<MigrationName>,
    extractor: Mutex<E>,
    transformer: Arc<T>,
    rules: Arc<Rules<T::Output>>,
    loader: Mutex<L>,
}

impl<E, T, L> Pipeline<E, T, L>
where
    E: Extractor<Item = T::Input>,
    T: Transformer,
    L: Loader<Item = T::Output>,
{
    /// Joins the three parts; name it with [`named`](Self::named).
    pub fn new(extractor: E, transformer: T, loader: L) -> Self {
        Self {
            name: MigrationName::new("pipeline"),
            description: String::new(),
            dependencies: Vec::new(),
            extractor: Mutex::new(extractor),
            transformer: Arc::new(transformer),
            rules: Arc::new(Rules::new()),
            loader: Mutex::new(loader),
        }
    }

    /// Sets the migration's unique name.
    pub fn named(mut self, name: impl Into<MigrationName>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the description shown in reports.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds migrations that must complete first.
    pub fn depends_on<N: Into<MigrationName>>(mut self, names: impl IntoIterator<Item = N>) -> Self {
        self.dependencies.extend(names.into_iter().map(Into::into));
        self
    }

    /// Sets the validation rules for mapped records; a record that breaks one is rejected.
    pub fn validate(mut self, rules: Rules<T::Output>) -> Self {
        self.rules = Arc::new(rules);
        self
    }
}

#[async_trait]
impl<E, T, L> DataMigration for Pipeline<E, T, L>
where
    E: Extractor<Item = T::Input>,
    T: Transformer,
    L: Loader<Item = T::Output>,
{
    fn name(&self) -> &MigrationName {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn dependencies(&self) -> &[MigrationName] {
        &self.dependencies
    }

    #[tracing::instrument(skip_all, fields(migration = %self.name, run = %ctx.run))]
    async fn execute(&self, ctx: &MigrationContext) -> Result<MigrationResult> {
        let mut extractor = self.extractor.lock().await;
        let mut loader = self.loader.lock().await;
        run_pipeline(&self.name, &mut *extractor, &self.transformer, &self.rules, &mut *loader, ctx).await
    }

    #[tracing::instrument(skip_all, fields(migration = %self.name, run = %ctx.run))]
    async fn rollback(&self, ctx: &MigrationContext) -> Result<RollbackReport> {
        let mut loader = self.loader.lock().await;
        let report = loader.rollback(&self.name, ctx.run).await?;
        if report.deleted == 0 && report.restored == 0 {
            // Nothing to replay, though the run wrote: its loads kept no undo log (`--no-undo`),
            // and reporting the run rolled back would leave its rows in place unsaid.
            let records = ctx.store.migration_records(ctx.run).await?;
            let wrote = records
                .iter()
                .find(|record| record.migration == self.name)
                .map_or(0, |record| record.counts.inserted + record.counts.updated + record.counts.deleted);
            if wrote > 0 {
                return Err(Error::RollbackRefused(format!(
                    "run {} wrote {wrote} rows with `{}` and kept no undo log of them, so it cannot be rolled back \
                     row by row; restore a backup taken before it instead",
                    ctx.run, self.name
                )));
            }
        }
        // What was undone must be migrated again from the start.
        loader.clear_checkpoint(&self.name).await?;
        Ok(report)
    }
}
