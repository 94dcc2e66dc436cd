//! The one error type of dmf-core, with a classification that tells the engine whether a
//! retry can help ([`ErrorKind`]) and in which stage the failure happened ([`Stage`]).

use std::fmt;

use crate::names::MigrationName;

/// A boxed error from an adapter, a driver or user code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across DMF.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a migration something went wrong (as in Vector's component spec: every error and
/// every reject carries its stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading rows from the source.
    Extract,
    /// Mapping a source row to a target row.
    Transform,
    /// Checking a mapped row against the validation rules.
    Validate,
    /// Writing rows (and the checkpoint) to the target.
    Load,
    /// Checks run before any data moves.
    Preflight,
    /// The backup taken before the first write.
    Backup,
    /// Undoing a migration.
    Rollback,
    /// Reading or writing run records.
    RunStore,
    /// Sending a notification.
    Notify,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Extract => "extract",
            Stage::Transform => "transform",
            Stage::Validate => "validate",
            Stage::Load => "load",
            Stage::Preflight => "pre-flight",
            Stage::Backup => "backup",
            Stage::Rollback => "rollback",
            Stage::RunStore => "run store",
            Stage::Notify => "notify",
        })
    }
}

/// What kind of failure an error is, which decides what the engine does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Might succeed if tried again (connection reset, deadlock, lock timeout, busy database):
    /// the engine retries with exponential backoff and jitter.
    Transient,
    /// Caused by the content of one or more rows (constraint violation, conversion failure):
    /// the engine bisects the batch to find the rows and rejects only those.
    Data,
    /// A row references a row the target does not have (a foreign-key violation on insert or
    /// update). Like [`Data`](Self::Data) the engine bisects to find the rows; a sync that
    /// reads without a snapshot sets them aside for its catch-up pass (their parent may have
    /// been written to the source after its table was copied) instead of rejecting them.
    MissingParent,
    /// Anything else (bad configuration, missing table, permission denied, disk full): retrying or
    /// bisecting cannot help, so the migration stops and can be resumed once the cause is fixed.
    Fatal,
}

/// Everything that can go wrong in dmf-core.
///
/// Each variant names what failed; [`Error::kind`] says whether a retry can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stage of a migration failed; `kind` classifies it.
    #[error("{stage} failed: {message}")]
    Stage {
        /// The stage that failed.
        stage: Stage,
        /// Transient, data or fatal.
        kind: ErrorKind,
        /// What failed, with the names that locate it (table, column, key, value).
        message: String,
        /// The underlying driver or user error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A transient error kept failing after every allowed attempt.
    #[error("{stage} still failing after {attempts} attempts")]
    RetriesExhausted {
        /// The stage that was retried.
        stage: Stage,
        /// How many attempts were made (the first one included).
        attempts: u32,
        /// The last error seen.
        #[source]
        source: Box<Error>,
    },
    /// More rows were rejected than the migration's reject policy allows.
    #[error(
        "migration `{migration}` rejected {rejected} of {read} rows read, over its limit ({limit}); the last reject: {last_reason}"
    )]
    RejectLimitExceeded {
        /// The migration that stopped.
        migration: MigrationName,
        /// Rows rejected so far.
        rejected: u64,
        /// Rows read so far.
        read: u64,
        /// The limit, as configured (for example `10 rows` or `2% of rows`).
        limit: String,
        /// Why the last row was rejected.
        last_reason: String,
    },
    /// The run was cancelled; the migration stopped at a batch boundary and can be resumed.
    #[error("migration `{migration}` cancelled after its last committed batch; it can be resumed")]
    Cancelled {
        /// The migration that stopped.
        migration: MigrationName,
    },
    /// A migration stopped after committing some batches; `counts` says how far it got (it
    /// resumes from there).
    #[error(
        "migration `{migration}` stopped after {} rows read ({} inserted, {} updated, {} skipped, {} rejected)",
        counts.read, counts.inserted, counts.updated, counts.skipped, counts.rejected
    )]
    Interrupted {
        /// The migration.
        migration: MigrationName,
        /// What its committed batches did.
        counts: crate::migration::Counts,
        /// Why it stopped.
        #[source]
        source: Box<Error>,
    },
    /// Migrations depend on each other in a circle.
    #[error("dependency cycle between migrations: {}", format_cycle(.cycle))]
    DependencyCycle {
        /// The migrations in the cycle, in order, the first repeated at the end.
        cycle: Vec<MigrationName>,
    },
    /// A migration depends on one that is not registered.
    #[error("migration `{migration}` depends on `{dependency}`, which is not registered")]
    UnknownDependency {
        /// The migration with the dangling dependency.
        migration: MigrationName,
        /// The missing migration.
        dependency: MigrationName,
    },
    /// A migration name was asked for that is not registered.
    #[error("no migration named `{0}` is registered")]
    UnknownMigration(MigrationName),
    /// Two migrations were registered under one name.
    #[error("two migrations are registered as `{0}`")]
    DuplicateMigration(MigrationName),
    /// Pre-flight found problems; nothing was written.
    #[error("pre-flight failed, nothing was written:\n{report}")]
    PreflightFailed {
        /// The readable report of every check.
        report: String,
    },
    /// A migration failed; the source says why.
    #[error("migration `{migration}` failed")]
    Migration {
        /// The migration that failed.
        migration: MigrationName,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Another run holds the target's lease (one writer per target).
    #[error(
        "the target is in use: its lease `{scope}` is held by {holder}; wait for that run to end (or for its lease \
         to expire when its process died), or stop it"
    )]
    LeaseHeld {
        /// The scope of the lease.
        scope: String,
        /// Who holds it.
        holder: Box<crate::orchestrator::LeaseRecord>,
    },
    /// This run's lease was taken over by another run after this one stopped renewing it.
    #[error("lost the lease `{scope}` on the target: another run took it over after this one stopped renewing it")]
    LeaseLost {
        /// The scope of the lease.
        scope: String,
    },
    /// A rollback was refused (for example a later run built on the one to undo).
    #[error("rollback refused: {0}")]
    RollbackRefused(String),
    /// A run finished without completing every migration.
    #[error("run {run} failed:\n{summary}")]
    RunFailed {
        /// The run.
        run: crate::names::RunId,
        /// Its readable summary.
        summary: String,
    },
    /// The schemas do not allow the requested sync (missing table, incompatible column, a
    /// foreign-key cycle that cannot be broken…).
    #[error("schema: {0}")]
    Schema(String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn format_cycle(cycle: &[MigrationName]) -> String {
    cycle.iter().map(MigrationName::as_str).collect::<Vec<_>>().join(" -> ")
}

impl Error {
    /// A transient failure in `stage`: worth retrying.
    pub fn transient(stage: Stage, message: impl Into<String>) -> Self {
        Self::stage(stage, ErrorKind::Transient, message)
    }

    /// A failure caused by row content in `stage`: the engine isolates the rows.
    pub fn data(stage: Stage, message: impl Into<String>) -> Self {
        Self::stage(stage, ErrorKind::Data, message)
    }

    /// A failure in `stage` that neither retry nor bisection can help.
    pub fn fatal(stage: Stage, message: impl Into<String>) -> Self {
        Self::stage(stage, ErrorKind::Fatal, message)
    }

    /// A failure in `stage` of the given kind, with no underlying error.
    pub fn stage(stage: Stage, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Stage { stage, kind, message: message.into(), source: None }
    }

    /// Wraps a driver or user error, classified by the caller (adapters map their error codes).
    pub fn with_source(stage: Stage, kind: ErrorKind, message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Stage { stage, kind, message: message.into(), source: Some(source.into()) }
    }

    /// How the engine should treat this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Stage { kind, .. } => *kind,
            Error::Migration { source, .. } | Error::Interrupted { source, .. } => source.kind(),
            _ => ErrorKind::Fatal,
        }
    }

    /// True when the run was cancelled (possibly after committing some batches).
    pub fn is_cancelled(&self) -> bool {
        match self {
            Error::Cancelled { .. } => true,
            Error::Migration { source, .. } | Error::Interrupted { source, .. } => source.is_cancelled(),
            _ => false,
        }
    }

    /// The counts of committed batches carried by an [`Error::Interrupted`].
    pub fn partial_counts(&self) -> Option<crate::migration::Counts> {
        match self {
            Error::Interrupted { counts, .. } => Some(*counts),
            Error::Migration { source, .. } => source.partial_counts(),
            _ => None,
        }
    }

    /// Whether trying the same thing again may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// The stage the error happened in, when it is known.
    pub fn stage_of(&self) -> Option<Stage> {
        match self {
            Error::Stage { stage, .. } | Error::RetriesExhausted { stage, .. } => Some(*stage),
            Error::Migration { source, .. } | Error::Interrupted { source, .. } => source.stage_of(),
            Error::PreflightFailed { .. } => Some(Stage::Preflight),
            Error::RejectLimitExceeded { .. } => Some(Stage::Validate),
            _ => None,
        }
    }

    /// The error and all its causes, one per line (`error`, then `caused by: …`), as stored in
    /// run records.
    pub fn chain(&self) -> String {
        error_chain(self)
    }
}

/// Formats any error with all its causes, one per line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str("\ncaused by: ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let inner = Error::with_source(Stage::Load, ErrorKind::Transient, "writing batch 3", io);
        let outer = Error::Migration { migration: MigrationName::new("customers"), source: Box::new(inner) };
        assert_eq!(
            outer.chain(),
            "migration `customers` failed\ncaused by: load failed: writing batch 3\ncaused by: connection reset by peer"
        );
        assert!(outer.is_transient());
        assert_eq!(outer.stage_of(), Some(Stage::Load));
    }

    #[test]
    fn cycle_is_named_in_order() {
        let err = Error::DependencyCycle { cycle: ["a", "b", "a"].into_iter().map(MigrationName::new).collect() };
        assert_eq!(err.to_string(), "dependency cycle between migrations: a -> b -> a");
        assert_eq!(err.kind(), ErrorKind::Fatal);
    }
}
