//! Run records: what ran, when, how it ended, and the reject quarantine.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::catalog::Sequence;
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::migration::Counts;
use crate::names::{MigrationName, RunId};
use crate::orchestrator::backup::BackupRecord;
use crate::orchestrator::lease::{LeaseClaim, LeaseClaimed, LeaseRecord};
use crate::record::Reject;

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going (or the process died; see the migration records).
    Running,
    /// Every selected migration completed or was already complete.
    Completed,
    /// At least one migration failed, or pre-flight or backup failed.
    Failed,
    /// Rolled back.
    RolledBack,
    /// Its process stopped without recording an end (killed, or its host lost); the next run
    /// that took the target's lease marked it so and resumed its work.
    Abandoned,
}

/// Where one migration stands within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    /// Planned, not started.
    Pending,
    /// Started, not finished (or its process died).
    Running,
    /// Moved all its data.
    Completed,
    /// Stopped on an error; resumable from its checkpoint.
    Failed,
    /// Stopped by cancellation at a batch boundary; resumable.
    Cancelled,
    /// Not run: already completed, a dependency did not complete, or the run stopped.
    Skipped,
    /// Undone.
    RolledBack,
}

impl MigrationStatus {
    /// True for statuses after which the migration may have written rows.
    pub fn may_have_written(self) -> bool {
        matches!(self, Self::Running | Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for RunStatus {
    /// The status in words: `running`, `completed`, `failed`, `rolled back`, `abandoned`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled back",
            Self::Abandoned => "abandoned",
        })
    }
}

impl std::fmt::Display for MigrationStatus {
    /// The status in words: `pending`, `running`, `completed`, `failed`, `cancelled`, `skipped`,
    /// `rolled back`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
            Self::RolledBack => "rolled back",
        })
    }
}

/// One migration's record within one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MigrationRecord {
    /// The run.
    pub run: RunId,
    /// The migration.
    pub migration: MigrationName,
    /// Where it stands.
    pub status: MigrationStatus,
    /// When it started, if it did.
    pub started_at: Option<SystemTime>,
    /// When it finished, if it did.
    pub finished_at: Option<SystemTime>,
    /// Its counts in this run.
    pub counts: Counts,
    /// Its wall time in this run.
    pub duration: Duration,
    /// True when it resumed from an earlier run's checkpoint.
    pub resumed: bool,
    /// The error with its whole chain, or why it was skipped.
    pub error: Option<String>,
}

impl MigrationRecord {
    /// A fresh record with the given status and nothing else.
    pub fn new(run: RunId, migration: MigrationName, status: MigrationStatus) -> Self {
        Self {
            run,
            migration,
            status,
            started_at: None,
            finished_at: None,
            counts: Counts::default(),
            duration: Duration::ZERO,
            resumed: false,
            error: None,
        }
    }
}

/// One orchestrator run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// How it stands.
    pub status: RunStatus,
    /// The migrations selected, in the order they were planned.
    pub plan: Vec<MigrationName>,
    /// The machine it ran on.
    pub host: String,
    /// When it started.
    pub started_at: SystemTime,
    /// When it finished.
    pub finished_at: Option<SystemTime>,
    /// The backup taken before its first write.
    pub backup: Option<BackupRecord>,
    /// The error with its whole chain.
    pub error: Option<String>,
}

/// A reject as stored: which run and migration set it aside.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RejectRecord {
    /// The run.
    pub run: RunId,
    /// The migration.
    pub migration: MigrationName,
    /// The reject.
    #[serde(flatten)]
    pub reject: Reject,
}

/// Where runs, migration records, checkpoints and rejects are kept (control tables in the
/// target for the database adapters; memory in dmf-testkit).
///
/// Stored as `Arc<dyn RunStore>`, so it uses `async-trait`.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run planning `plan`; returns its id.
    async fn start_run(&self, plan: &[MigrationName], host: &str) -> Result<RunId>;

    /// Records how a run ended.
    async fn finish_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()>;

    /// Records the backup taken before the run's first write.
    async fn record_backup(&self, run: RunId, backup: &BackupRecord) -> Result<()>;

    /// Inserts or replaces the record of `(record.run, record.migration)`.
    async fn save_migration_record(&self, record: &MigrationRecord) -> Result<()>;

    /// The most recent record of `migration` in which it ran or was rolled back: records with
    /// status `Pending` or `Skipped` are ignored, so a migration skipped as complete in run 5
    /// is still seen as completed by run 6.
    async fn latest_record(&self, migration: &MigrationName) -> Result<Option<MigrationRecord>>;

    /// One run.
    async fn run(&self, run: RunId) -> Result<Option<RunRecord>>;

    /// The most recent runs first, at most `limit`.
    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>>;

    /// Every migration record of a run: in the run's plan order, then the records the plan
    /// does not name (passes the run added) by name ([`sort_in_plan_order`]).
    async fn migration_records(&self, run: RunId) -> Result<Vec<MigrationRecord>>;

    /// Adds rejects to the quarantine.
    async fn record_rejects(&self, run: RunId, migration: &MigrationName, rejects: &[Reject]) -> Result<()>;

    /// A page of a run's rejects, optionally of one migration, in the order they were recorded.
    async fn rejects(
        &self,
        run: RunId,
        migration: Option<&MigrationName>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RejectRecord>>;

    /// The checkpoint of `migration`, where this store can see the loader's (control tables
    /// shared with the loader). The default knows none.
    async fn checkpoint(&self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        let _ = migration;
        Ok(None)
    }

    /// Keeps the values `sequences` had before `run` moved them, under `migration` (a sync's
    /// [`SEQUENCES_BEFORE`](crate::sync::SEQUENCES_BEFORE) step), so that rolling the run back
    /// can put them back. Control-table stores keep them in the undo log (action `sequence`).
    /// The default keeps nothing and refuses any sequence, so that a rollback never silently
    /// leaves one moved.
    async fn record_sequences(&self, run: RunId, migration: &MigrationName, sequences: &[Sequence]) -> Result<()> {
        let _ = migration;
        match sequences.first() {
            None => Ok(()),
            Some(sequence) => Err(crate::Error::fatal(
                crate::Stage::RunStore,
                format!("recording sequence {sequence} for run {run}: this run store keeps no sequence values"),
            )),
        }
    }

    /// The values [`record_sequences`](Self::record_sequences) kept for `run` and `migration`,
    /// in the order recorded (a sequence recorded twice: the first value).
    async fn recorded_sequences(&self, run: RunId, migration: &MigrationName) -> Result<Vec<Sequence>> {
        let _ = (run, migration);
        Ok(Vec::new())
    }

    /// Forgets the values kept for `run` and `migration` (once they are restored).
    async fn forget_sequences(&self, run: RunId, migration: &MigrationName) -> Result<()> {
        let _ = (run, migration);
        Ok(())
    }

    /// Claims the lease of `claim.scope` for `claim.holder`: taken when nobody holds it, when
    /// the holder is `claim.holder` itself (renewed as by [`renew_lease`](Self::renew_lease)),
    /// or when the holder's lease expired before `claim.now` or its holder is
    /// `claim.dead_holder` (taken over: the old lease is returned); otherwise the live lease. Atomic: of two claimants at once, exactly one takes it.
    async fn claim_lease(&self, claim: &LeaseClaim) -> Result<LeaseClaimed>;

    /// Renews the lease of `scope` held by `holder` until `now + ttl` (recording `run` when
    /// given). False when `holder` no longer holds it (another holder took it over).
    async fn renew_lease(
        &self,
        scope: &str,
        holder: &str,
        run: Option<RunId>,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<bool>;

    /// Releases the lease of `scope` if `holder` holds it.
    async fn release_lease(&self, scope: &str, holder: &str) -> Result<()>;

    /// The lease of `scope`, live or expired, if there is one.
    async fn lease(&self, scope: &str) -> Result<Option<LeaseRecord>>;
}

/// Sorts `records` as [`RunStore::migration_records`] returns them: in the order of `plan`,
/// then the records `plan` does not name, by name.
pub fn sort_in_plan_order(records: &mut [MigrationRecord], plan: &[MigrationName]) {
    let position = |name: &MigrationName| plan.iter().position(|p| p == name).unwrap_or(usize::MAX);
    records.sort_by(|a, b| {
        position(&a.migration).cmp(&position(&b.migration)).then_with(|| a.migration.cmp(&b.migration))
    });
}
