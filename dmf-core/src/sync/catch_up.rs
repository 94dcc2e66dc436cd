//! The catch-up pass: rows whose parent row was missing in the target when they were loaded.
//!
//! Without a snapshot, each table is read with short keyset queries while the source keeps
//! changing. A child row inserted (with its new parent) after the parent table was copied
//! arrives before its parent: the target's foreign key refuses it. Instead of rejecting it, the
//! engine counts it as *deferred* ([`ErrorKind::MissingParent`](crate::ErrorKind::MissingParent)),
//! and once every table is loaded the catch-up pass upserts every table again, parents first:
//! the new parents arrive, then the deferred children. Upserts skip unchanged rows, so the pass
//! writes only what changed during the copy.
//!
//! When the loading sessions skipped per-row foreign-key checks (the fast path of a `full`
//! sync), no row is refused for a missing parent: the pass then starts with a *proof*, one
//! set-based orphan query per foreign key of the loaded tables. Orphans send it through the
//! catch-up loads (their parents were written during the copy), after which the proof runs
//! again; an orphan that remains fails the run, naming the foreign key, the table and sample
//! keys, and a rollback restores the target. A sync never reports success with an orphan.
//!
//! Rows deferred again during the catch-up pass (the source kept writing) are counted in its
//! result and left to the next sync, which reads every table again (the catch-up pass exists
//! only in `full`, `upsert` and `diff` modes, never in `incremental` mode, where a row behind
//! the watermark would not be read again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;

use super::Database;
use crate::error::{Error, Result, Stage};
use crate::migration::{Counts, DataMigration, MigrationContext, MigrationResult, RollbackReport};
use crate::names::MigrationName;
use crate::orchestrator::MigrationStatus;
use crate::quality::{RuleCheck, Violations};

/// The name of the migration running the catch-up pass.
pub const CATCH_UP: &str = "catch-up pass";

/// Rows deferred by the load migrations of one sync, in this process.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    deferred: AtomicU64,
}

impl Ledger {
    fn add(&self, rows: u64) {
        self.deferred.fetch_add(rows, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }
}

/// A load migration whose deferred rows are noted in the ledger.
pub(crate) struct Reporting {
    inner: Arc<dyn DataMigration>,
    ledger: Arc<Ledger>,
}

impl Reporting {
    pub(crate) fn new(inner: Arc<dyn DataMigration>, ledger: Arc<Ledger>) -> Self {
        Self { inner, ledger }
    }
}

#[async_trait]
impl DataMigration for Reporting {
    fn name(&self) -> &MigrationName {
        self.inner.name()
    }

    fn description(&self) -> &str {
        self.inner.description()
    }

    fn dependencies(&self) -> &[MigrationName] {
        self.inner.dependencies()
    }

    async fn can_execute(&self, ctx: &MigrationContext) -> Result<()> {
        self.inner.can_execute(ctx).await
    }

    async fn execute(&self, ctx: &MigrationContext) -> Result<MigrationResult> {
        match self.inner.execute(ctx).await {
            Ok(result) => {
                self.ledger.add(result.counts.deferred);
                Ok(result)
            }
            Err(error) => {
                if let Error::Interrupted { counts, .. } = &error {
                    self.ledger.add(counts.deferred);
                }
                Err(error)
            }
        }
    }

    async fn rollback(&self, ctx: &MigrationContext) -> Result<RollbackReport> {
        self.inner.rollback(ctx).await
    }
}

/// Counts orphans of foreign keys in the target with set-based queries.
#[async_trait]
pub(crate) trait OrphanProbe: Send + Sync {
    /// Every foreign key with orphans: the check and what it found.
    async fn orphans(&self) -> Result<Vec<(RuleCheck, Violations)>>;
}

/// The foreign keys of the tables loaded without per-row checks, probed in `target`.
pub(crate) struct TargetProbe<T> {
    pub(crate) target: Arc<T>,
    pub(crate) checks: Vec<RuleCheck>,
}

/// Sample keys reported per orphaned foreign key.
const ORPHAN_SAMPLE: usize = 5;

#[async_trait]
impl<T: Database> OrphanProbe for TargetProbe<T> {
    async fn orphans(&self) -> Result<Vec<(RuleCheck, Violations)>> {
        let mut found = Vec::new();
        for check in &self.checks {
            let violations = self.target.find_violations(check, ORPHAN_SAMPLE).await?;
            tracing::debug!(check = %check, orphans = violations.count, "foreign key proved");
            if violations.count > 0 {
                found.push((check.clone(), violations));
            }
        }
        Ok(found)
    }
}

/// Upserts every table again, parents first, when a load migration of the run deferred rows,
/// when the proof finds orphans, or when the run resumed loads of an earlier process (whose
/// deferrals are not known here); then, with a proof, proves every foreign key again.
pub(crate) struct CatchUp {
    name: MigrationName,
    depends: Vec<MigrationName>,
    ledger: Arc<Ledger>,
    /// The upsert passes, in load order, then the deferred-key passes.
    passes: Vec<Arc<dyn DataMigration>>,
    proof: Option<Box<dyn OrphanProbe>>,
}

impl CatchUp {
    pub(crate) fn new(
        depends: Vec<MigrationName>,
        ledger: Arc<Ledger>,
        passes: Vec<Arc<dyn DataMigration>>,
        proof: Option<Box<dyn OrphanProbe>>,
    ) -> Self {
        Self { name: MigrationName::new(CATCH_UP), depends, ledger, passes, proof }
    }

    async fn orphans(&self) -> Result<Vec<(RuleCheck, Violations)>> {
        match &self.proof {
            Some(proof) => proof.orphans().await,
            None => Ok(Vec::new()),
        }
    }

    /// True when a load this run depends on resumed from, or was completed by, an earlier run.
    async fn loads_resumed(&self, ctx: &MigrationContext) -> Result<bool> {
        let records = ctx.store.migration_records(ctx.run).await?;
        Ok(records.iter().any(|r| {
            self.depends.contains(&r.migration)
                && (r.resumed || (r.status == MigrationStatus::Skipped && r.error.is_none()))
        }))
    }
}

#[async_trait]
impl DataMigration for CatchUp {
    fn name(&self) -> &MigrationName {
        &self.name
    }

    fn description(&self) -> &str {
        "loads rows whose parent row arrived in the source during the copy, after their parents"
    }

    fn dependencies(&self) -> &[MigrationName] {
        &self.depends
    }

    async fn execute(&self, ctx: &MigrationContext) -> Result<MigrationResult> {
        let started = Instant::now();
        let deferred = self.ledger.total();
        let mut counts = Counts::default();
        let orphans = self.orphans().await?;
        if deferred > 0 || !orphans.is_empty() || self.loads_resumed(ctx).await? {
            tracing::info!(run = %ctx.run, deferred, "catch-up pass: loading every table again, parents first");
            // Each pass reads its table from the start: the ledger says only that rows are
            // missing, not where.
            let mut pass_ctx = ctx.clone();
            pass_ctx.restart = true;
            for pass in &self.passes {
                counts.add(&pass.execute(&pass_ctx).await?.counts);
            }
            if counts.deferred > 0 {
                tracing::warn!(
                    run = %ctx.run,
                    rows = counts.deferred,
                    "rows still lack their parent after the catch-up pass (the source kept changing); \
                     the next sync copies them"
                );
            }
            let orphans = self.orphans().await?;
            if !orphans.is_empty() {
                return Err(orphans_remain(&orphans));
            }
        }
        Ok(MigrationResult {
            migration: self.name.clone(),
            counts,
            duration: started.elapsed(),
            resumed: false,
            retries: 0,
            peak_rows_in_flight: 0,
        })
    }

    async fn rollback(&self, ctx: &MigrationContext) -> Result<RollbackReport> {
        let mut report = RollbackReport::default();
        for pass in self.passes.iter().rev() {
            let undone = pass.rollback(ctx).await?;
            report.deleted += undone.deleted;
            report.restored += undone.restored;
        }
        Ok(report)
    }
}

/// The error failing a run whose target keeps orphans after the catch-up pass.
fn orphans_remain(orphans: &[(RuleCheck, Violations)]) -> Error {
    let found: Vec<String> = orphans
        .iter()
        .map(|(check, found)| {
            let name = match check {
                RuleCheck::ForeignKey { foreign_key, .. } => foreign_key.name.clone(),
                other => other.to_string(),
            };
            format!(
                "foreign key `{name}` of {}: {} row(s) reference no row of the parent table (keys: {})",
                check.table(),
                found.count,
                found.sample.join("; ")
            )
        })
        .collect();
    Error::fatal(
        Stage::Load,
        format!(
            "the target is not consistent after the load: {}; these rows are orphans in the source too, or \
             their parents were deleted during the copy. Roll the run back (--rollback last), fix the source, \
             and sync again",
            found.join("; ")
        ),
    )
}
