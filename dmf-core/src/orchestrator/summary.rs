//! What a run did, for notifications, logs and the examples' closing summary.

use std::fmt;
use std::time::Duration;

use crate::migration::{Counts, RollbackReport};
use crate::names::{MigrationName, RunId};
use crate::orchestrator::backup::BackupRecord;
use crate::orchestrator::preflight::PreflightReport;
use crate::orchestrator::store::{MigrationRecord, MigrationStatus, RunStatus};

/// The outcome of one orchestrator run.
///
/// A run that failed (pre-flight, backup or a migration) is still a summary: check
/// [`succeeded`](Self::succeeded), or turn it into an error with [`into_result`](Self::into_result).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[must_use = "a run can fail: check `succeeded()` or call `into_result()`"]
pub struct RunSummary {
    /// The run.
    pub run: RunId,
    /// How it ended.
    pub status: RunStatus,
    /// Each selected migration's record, in plan order.
    pub migrations: Vec<MigrationRecord>,
    /// The pre-flight report.
    pub preflight: PreflightReport,
    /// The backup taken before the first write.
    pub backup: Option<BackupRecord>,
    /// Wall time of the run.
    pub duration: Duration,
    /// Why it failed, with the error's whole chain.
    pub error: Option<String>,
}

impl RunSummary {
    /// True when the run completed.
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Completed
    }

    /// `Ok(self)` when the run completed, otherwise an error carrying the readable summary.
    pub fn into_result(self) -> crate::Result<Self> {
        if self.succeeded() {
            Ok(self)
        } else {
            Err(crate::Error::RunFailed { run: self.run, summary: self.to_string() })
        }
    }

    /// The sum of every migration's counts.
    pub fn totals(&self) -> Counts {
        let mut total = Counts::default();
        for record in &self.migrations {
            total.add(&record.counts);
        }
        total
    }

    /// The record of one migration.
    pub fn migration(&self, name: &str) -> Option<&MigrationRecord> {
        self.migrations.iter().find(|r| r.migration.as_str() == name)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run {} {} in {}", self.run, self.status, crate::HumanDuration(self.duration))?;
        if let Some(backup) = &self.backup {
            writeln!(f, "backup: {} ({})", backup.location, backup.method)?;
        }
        writeln!(
            f,
            "{:<24} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "migration", "status", "read", "inserted", "updated", "unchanged", "deleted", "skipped", "rejected"
        )?;
        for r in &self.migrations {
            let c = &r.counts;
            writeln!(
                f,
                "{:<24} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                r.migration.as_str(),
                r.status.to_string(),
                c.read,
                c.inserted,
                c.updated,
                c.unchanged,
                c.deleted,
                c.skipped,
                c.rejected
            )?;
            if c.deferred > 0 {
                writeln!(f, "    {} rows waited for a parent row the target lacked (catch-up pass)", c.deferred)?;
            }
            if let Some(error) = &r.error {
                for line in error.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        if let Some(error) = &self.error {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }
}

/// What a rollback undid, migration by migration, in the order it undid them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RollbackSummary {
    /// `(migration, run undone, report)`, in reverse dependency order.
    pub undone: Vec<(MigrationName, RunId, RollbackReport)>,
}

impl RollbackSummary {
    /// The migrations undone, in order.
    pub fn order(&self) -> Vec<&str> {
        self.undone.iter().map(|(name, _, _)| name.as_str()).collect()
    }
}

/// Statuses after which a migration's dependents may start.
pub(crate) fn unblocks_dependents(status: MigrationStatus) -> bool {
    status == MigrationStatus::Completed
}
