//! [`CountingLoader`]: counts what a loader is sent, so a test can prove how many times a batch
//! went to the target (bisection re-sends rows; row-level rejects do not).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dmf_core::{Checkpoint, LoadBatch, LoadOutcome, LoadReport, Loader, MigrationName, RollbackReport, RunId};

/// What a [`CountingLoader`] saw, shared with the test.
#[derive(Debug, Default)]
pub struct LoadCalls {
    calls: AtomicU64,
    rows: AtomicU64,
}

impl LoadCalls {
    /// Calls of [`Loader::load`] or [`Loader::load_isolating`], empty ones (a checkpoint alone)
    /// included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Rows sent to the target over every call: a batch sent once counts its rows once.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::SeqCst)
    }
}

/// A loader that forwards everything to `inner` and counts the calls that write and the rows
/// they carry.
pub struct CountingLoader<L> {
    inner: L,
    seen: Arc<LoadCalls>,
}

impl<L> CountingLoader<L> {
    /// Wraps `inner`; the returned [`LoadCalls`] fills as batches are loaded.
    pub fn new(inner: L) -> (Self, Arc<LoadCalls>) {
        let seen = Arc::new(LoadCalls::default());
        (Self { inner, seen: Arc::clone(&seen) }, seen)
    }

    fn count(&self, rows: usize) {
        self.seen.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.rows.fetch_add(rows as u64, Ordering::SeqCst);
    }
}

impl<L: Loader> Loader for CountingLoader<L> {
    type Item = L::Item;

    async fn load(&mut self, batch: LoadBatch<'_, L::Item>) -> dmf_core::Result<LoadReport> {
        self.count(batch.records.len());
        self.inner.load(batch).await
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, L::Item>) -> dmf_core::Result<LoadOutcome> {
        self.count(batch.records.len());
        self.inner.load_isolating(batch).await
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.inner.clear_checkpoint(migration).await
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> dmf_core::Result<Option<LoadReport>> {
        self.inner.committed(migration, checkpoint, records).await
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> dmf_core::Result<RollbackReport> {
        self.inner.rollback(migration, run).await
    }

    async fn finish(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.inner.finish(migration).await
    }
}
