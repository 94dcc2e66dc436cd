//! Whether a new run resumes the latest one: only a run that did not end, of the same plan.

use std::collections::BTreeSet;
use std::fmt;

use super::{Orchestrator, RunRecord, RunRequest, RunStatus};
use crate::error::Result;
use crate::names::MigrationName;

/// What the target's latest run means for a new run of an orchestrator's plan
/// ([`Orchestrator::last_run`]).
///
/// A run resumes only the latest run, only when that run did not end (failed, cancelled,
/// abandoned by a process that died, or still marked running) and only when it planned the
/// same migrations: the same tables, key ranges and passes, which differ between sync modes
/// (`full` empties the tables first, `diff` has delete passes, `incremental` no catch-up
/// pass). Anything else starts from the beginning: resuming another mode's checkpoints would
/// skip the emptying of a `full` sync, or continue an `upsert` from where a `diff` stopped.
///
/// ```
/// use dmf_core::orchestrator::{LastRun, RunRecord, RunStatus};
/// use dmf_core::{MigrationName, RunId};
///
/// let run = |status, plan: &[&str]| RunRecord {
///     id: RunId(7),
///     status,
///     plan: plan.iter().map(|m| MigrationName::new(*m)).collect(),
///     host: "db-host".into(),
///     started_at: std::time::SystemTime::UNIX_EPOCH,
///     finished_at: None,
///     backup: None,
///     error: None,
/// };
/// let ours: Vec<MigrationName> = ["customers", "orders"].into_iter().map(MigrationName::new).collect();
///
/// let failed = LastRun::of(Some(run(RunStatus::Failed, &["orders", "customers"])), &ours);
/// assert!(matches!(failed, LastRun::Resumable(_)));
/// assert!(!failed.request(false).is_forced(), "resumed from its checkpoints");
/// assert!(failed.request(true).is_forced(), "--restart starts over");
///
/// let other = LastRun::of(Some(run(RunStatus::Failed, &["clear target tables", "customers", "orders"])), &ours);
/// assert!(other.request(false).is_forced());
/// assert_eq!(
///     other.to_string(),
///     "the last run (7, failed) planned other migrations (only in it: `clear target tables`): \
///      starting this one from the beginning"
/// );
///
/// let ended = LastRun::of(Some(run(RunStatus::Completed, &["customers", "orders"])), &ours);
/// assert!(matches!(ended, LastRun::Ended(Some(_))) && ended.request(false).is_forced());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum LastRun {
    /// No run yet, or the latest one ended (completed or rolled back): a new run starts from
    /// the beginning.
    Ended(Option<RunRecord>),
    /// The latest run did not end and planned the same migrations: a new run resumes it
    /// (completed migrations skipped, the others from their checkpoints).
    Resumable(RunRecord),
    /// The latest run did not end but planned other migrations (another mode or other
    /// tables): a new run starts from the beginning.
    Different {
        /// The latest run.
        run: RunRecord,
        /// Migrations it planned that this plan does not have.
        only_there: Vec<MigrationName>,
        /// Migrations of this plan it did not plan.
        only_here: Vec<MigrationName>,
    },
}

impl LastRun {
    /// What `latest` (the target's most recent run, if any) means for a run of `plan`.
    pub fn of(latest: Option<RunRecord>, plan: &[MigrationName]) -> Self {
        let Some(run) = latest else { return Self::Ended(None) };
        if matches!(run.status, RunStatus::Completed | RunStatus::RolledBack) {
            return Self::Ended(Some(run));
        }
        let theirs: BTreeSet<&MigrationName> = run.plan.iter().collect();
        let ours: BTreeSet<&MigrationName> = plan.iter().collect();
        if theirs == ours {
            return Self::Resumable(run);
        }
        let only_there = theirs.difference(&ours).map(|m| (*m).clone()).collect();
        let only_here = ours.difference(&theirs).map(|m| (*m).clone()).collect();
        Self::Different { run, only_there, only_here }
    }

    /// The request of the new run: every migration, resumed when the latest run is
    /// [`Resumable`](Self::Resumable) and not `restart`, else forced (from the beginning).
    pub fn request(&self, restart: bool) -> RunRequest {
        match self {
            Self::Resumable(_) if !restart => RunRequest::all(),
            _ => RunRequest::all().force(),
        }
    }
}

impl fmt::Display for LastRun {
    /// The line to show before the run starts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ended(None) => write!(f, "no earlier run: starting from the beginning"),
            Self::Ended(Some(run)) => {
                write!(f, "the last run ({}) ended {}: starting from the beginning", run.id, status(run))
            }
            Self::Resumable(run) => {
                write!(f, "resuming the last run ({}, {}), which did not complete", run.id, status(run))
            }
            Self::Different { run, only_there, only_here } => {
                let mut differences = Vec::new();
                if !only_there.is_empty() {
                    differences.push(format!("only in it: {}", names(only_there)));
                }
                if !only_here.is_empty() {
                    differences.push(format!("only in this one: {}", names(only_here)));
                }
                write!(
                    f,
                    "the last run ({}, {}) planned other migrations ({}): starting this one from the beginning",
                    run.id,
                    status(run),
                    differences.join("; ")
                )
            }
        }
    }
}

fn status(run: &RunRecord) -> String {
    run.status.to_string()
}

/// At most three names, then how many more.
fn names(migrations: &[MigrationName]) -> String {
    let mut shown: Vec<String> = migrations.iter().take(3).map(|m| format!("`{m}`")).collect();
    if migrations.len() > 3 {
        shown.push(format!("{} more", migrations.len() - 3));
    }
    shown.join(", ")
}

impl Orchestrator {
    /// What the target's latest run means for a run of this orchestrator's plan: resume it,
    /// or start from the beginning, and why ([`LastRun`]). Take the target's lease first
    /// ([`acquire_lease`](Self::acquire_lease)), so that a run whose process died is marked
    /// abandoned and no other run starts in between.
    pub async fn last_run(&self) -> Result<LastRun> {
        let latest = self.store().runs(1).await?.into_iter().next();
        Ok(LastRun::of(latest, self.plan()))
    }
}
