//! The unit the orchestrator runs: a [`DataMigration`], and what it reports.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::engine::EngineConfig;
use crate::error::Result;
use crate::names::{MigrationName, RunId};
use crate::orchestrator::RunStore;
use crate::progress::ProgressHub;

/// A named, resumable unit of data movement with dependencies, pre-flight and rollback.
///
/// The orchestrator keeps migrations as `Arc<dyn DataMigration>` in its registry, so this trait
/// must be dyn-compatible: it uses `async-trait` (native `async fn` in traits cannot be called
/// through `dyn` yet). Most users do not implement it by hand: [`Pipeline`](crate::Pipeline)
/// implements it from an extractor, a transformer and a loader.
#[async_trait]
pub trait DataMigration: Send + Sync {
    /// The unique name, used for dependencies, run records and checkpoints.
    fn name(&self) -> &MigrationName;

    /// A sentence for reports and the dashboard.
    fn description(&self) -> &str {
        ""
    }

    /// Migrations that must complete before this one starts.
    fn dependencies(&self) -> &[MigrationName] {
        &[]
    }

    /// Checks, before any data moves, that this migration can run (source reachable, target
    /// tables present…). An error stops the whole run before its first write.
    async fn can_execute(&self, ctx: &MigrationContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Moves the data, resuming from the last checkpoint if a previous run stopped midway.
    async fn execute(&self, ctx: &MigrationContext) -> Result<MigrationResult>;

    /// Undoes what `ctx.run` wrote.
    async fn rollback(&self, ctx: &MigrationContext) -> Result<RollbackReport>;
}

/// Everything a migration needs from the run it is part of.
#[derive(Clone)]
pub struct MigrationContext {
    /// The run this execution belongs to.
    pub run: RunId,
    /// Batch size, pipeline depth, retry and reject policies.
    pub config: Arc<EngineConfig>,
    /// Where progress events go.
    pub progress: ProgressHub,
    /// Cancelled when the run should stop; checked at every batch boundary.
    pub cancel: CancellationToken,
    /// Where rejects are recorded.
    pub store: Arc<dyn RunStore>,
    /// Start from the beginning, discarding any checkpoint (a forced run).
    pub restart: bool,
}

impl MigrationContext {
    /// A context for running one migration outside an orchestrator (tests, benches, tools):
    /// a fresh progress hub and cancellation token, resuming from any checkpoint.
    pub fn new(run: RunId, config: Arc<EngineConfig>, store: Arc<dyn RunStore>) -> Self {
        Self { run, config, progress: ProgressHub::new(), cancel: CancellationToken::new(), store, restart: false }
    }
}

/// Row counts of a migration (per run, or per batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Records read from the source.
    pub read: u64,
    /// New rows in the target.
    pub inserted: u64,
    /// Existing rows changed.
    pub updated: u64,
    /// Existing rows found equal and left alone.
    pub unchanged: u64,
    /// Rows removed from the target.
    pub deleted: u64,
    /// Records deliberately not migrated.
    pub skipped: u64,
    /// Records set aside in the reject quarantine.
    pub rejected: u64,
    /// Rows whose parent row the target lacked, left for a sync's catch-up pass (counted in
    /// this run's summary; not kept in the run store's records).
    #[serde(default)]
    pub deferred: u64,
}

impl Counts {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.skipped += other.skipped;
        self.rejected += other.rejected;
        self.deferred += other.deferred;
    }
}

/// What one execution of a migration did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MigrationResult {
    /// The migration.
    pub migration: MigrationName,
    /// Row counts of this execution (a resumed execution counts only what it did itself).
    pub counts: Counts,
    /// Wall time of this execution.
    pub duration: Duration,
    /// True when it continued from a checkpoint left by an earlier run.
    pub resumed: bool,
    /// Transient failures that were retried.
    pub retries: u64,
    /// The most rows that were read but not yet committed at any moment.
    pub peak_rows_in_flight: u64,
}

/// What a rollback undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollbackReport {
    /// Inserted rows deleted again.
    pub deleted: u64,
    /// Updated or deleted rows restored to their before-image.
    pub restored: u64,
}
