//! [`AnyLoader`]: any adapter's loader of rows, boxed.

use futures::future::BoxFuture;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::migration::RollbackReport;
use crate::names::{MigrationName, RunId};
use crate::pipeline::{LoadBatch, LoadOutcome, LoadReport, Loader};
use crate::value::Row;

/// The loader of an [`AnyDatabase`](super::AnyDatabase): any [`Loader`] of rows, boxed.
///
/// Every method forwards to the wrapped loader, defaulted ones included (an adapter's
/// [`committed`](Loader::committed), [`rollback`](Loader::rollback) and
/// [`finish`](Loader::finish) are its own). One future is boxed per call: per batch for
/// [`load`](Loader::load).
pub struct AnyLoader {
    inner: Box<dyn DynLoader>,
}

impl AnyLoader {
    /// Boxes `loader`.
    pub fn new<L: Loader<Item = Row>>(loader: L) -> Self {
        Self { inner: Box::new(loader) }
    }
}

impl std::fmt::Debug for AnyLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyLoader").finish_non_exhaustive()
    }
}

/// The object-safe mirror of [`Loader`] (boxed futures), implemented for every loader of rows.
trait DynLoader: Send + 'static {
    fn load<'a>(&'a mut self, batch: LoadBatch<'a, Row>) -> BoxFuture<'a, Result<LoadReport>>;
    fn load_isolating<'a>(&'a mut self, batch: LoadBatch<'a, Row>) -> BoxFuture<'a, Result<LoadOutcome>>;
    fn checkpoint<'a>(&'a mut self, migration: &'a MigrationName) -> BoxFuture<'a, Result<Option<Checkpoint>>>;
    fn clear_checkpoint<'a>(&'a mut self, migration: &'a MigrationName) -> BoxFuture<'a, Result<()>>;
    fn rollback<'a>(&'a mut self, migration: &'a MigrationName, run: RunId) -> BoxFuture<'a, Result<RollbackReport>>;
    fn committed<'a>(
        &'a mut self,
        migration: &'a MigrationName,
        checkpoint: &'a Checkpoint,
        records: usize,
    ) -> BoxFuture<'a, Result<Option<LoadReport>>>;
    fn finish<'a>(&'a mut self, migration: &'a MigrationName) -> BoxFuture<'a, Result<()>>;
}

impl<L: Loader<Item = Row>> DynLoader for L {
    fn load<'a>(&'a mut self, batch: LoadBatch<'a, Row>) -> BoxFuture<'a, Result<LoadReport>> {
        Box::pin(Loader::load(self, batch))
    }

    fn load_isolating<'a>(&'a mut self, batch: LoadBatch<'a, Row>) -> BoxFuture<'a, Result<LoadOutcome>> {
        Box::pin(Loader::load_isolating(self, batch))
    }

    fn checkpoint<'a>(&'a mut self, migration: &'a MigrationName) -> BoxFuture<'a, Result<Option<Checkpoint>>> {
        Box::pin(Loader::checkpoint(self, migration))
    }

    fn clear_checkpoint<'a>(&'a mut self, migration: &'a MigrationName) -> BoxFuture<'a, Result<()>> {
        Box::pin(Loader::clear_checkpoint(self, migration))
    }

    fn rollback<'a>(&'a mut self, migration: &'a MigrationName, run: RunId) -> BoxFuture<'a, Result<RollbackReport>> {
        Box::pin(Loader::rollback(self, migration, run))
    }

    fn committed<'a>(
        &'a mut self,
        migration: &'a MigrationName,
        checkpoint: &'a Checkpoint,
        records: usize,
    ) -> BoxFuture<'a, Result<Option<LoadReport>>> {
        Box::pin(Loader::committed(self, migration, checkpoint, records))
    }

    fn finish<'a>(&'a mut self, migration: &'a MigrationName) -> BoxFuture<'a, Result<()>> {
        Box::pin(Loader::finish(self, migration))
    }
}

/// A method with several borrowed arguments is an `async fn` awaiting the boxed future (no
/// allocation): the box lives as long as the shortest borrow, which `impl Future` cannot name.
impl Loader for AnyLoader {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadReport> {
        self.inner.load(batch).await
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadOutcome> {
        self.inner.load_isolating(batch).await
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        self.inner.clear_checkpoint(migration).await
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> Result<RollbackReport> {
        self.inner.rollback(migration, run).await
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        self.inner.committed(migration, checkpoint, records).await
    }

    async fn finish(&mut self, migration: &MigrationName) -> Result<()> {
        self.inner.finish(migration).await
    }
}
