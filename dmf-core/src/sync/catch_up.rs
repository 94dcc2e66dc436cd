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
//! Once the proof finds none, the target may put back what skipping the checks changed
//! ([`Database::after_trusted_load`]: SQL Server re-validates the constraints its bulk loads
//! marked not trusted); an error there fails the run too.
//!
//! A row whose parent was *rejected* in the same sync is not deferred: it is rejected at once,
//! naming the parent (see `rejected_parents`), since no pass would ever load it.
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
use crate::catalog::TableName;
use crate::error::{Error, Result, Stage};
use crate::migration::{Counts, DataMigration, MigrationContext, MigrationResult, RollbackReport};
use crate::names::MigrationName;
use crate::orchestrator::MigrationStatus;
use crate::quality::{RuleCheck, Violations};

/// The name of the migration running the catch-up pass.
///
/// Without a snapshot, each table is read with short keyset queries while the source keeps
/// changing, so a child row written (with its new parent) after the parent table was copied
/// arrives before its parent. Such rows are deferred, not rejected, and once every table is
/// loaded this pass upserts every table again, parents first, with per-row foreign-key checks.
/// After a fast-path load (per-row checks skipped) it starts with a set-based proof of every
/// foreign key; orphans send it through the same loads, and an orphan that remains fails the run.
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

    /// Called once the proof found no orphan: the target puts back what the loads without
    /// per-row checks changed ([`Database::after_trusted_load`]).
    async fn finish(&self) -> Result<()>;
}

/// The foreign keys of the tables loaded without per-row checks, probed in `target`.
pub(crate) struct TargetProbe<T> {
    pub(crate) target: Arc<T>,
    pub(crate) checks: Vec<RuleCheck>,
    /// The tables loaded without per-row checks (some may have no foreign key, only CHECK
    /// constraints a target skipped too).
    pub(crate) tables: Vec<TableName>,
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

    async fn finish(&self) -> Result<()> {
        self.target.after_trusted_load(&self.tables).await
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
        if let Some(proof) = &self.proof {
            proof.finish().await?;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::catalog::ForeignKey;
    use crate::checkpoint::Checkpoint;
    use crate::engine::EngineConfig;
    use crate::names::RunId;
    use crate::orchestrator::{
        BackupRecord, LeaseClaim, LeaseClaimed, LeaseRecord, MigrationRecord, RejectRecord, RunRecord, RunStatus,
        RunStore,
    };
    use crate::record::Reject;

    /// A run store with no records (the catch-up pass only asks whether loads resumed).
    struct NoRecords;

    #[async_trait]
    impl RunStore for NoRecords {
        async fn start_run(&self, _: &[MigrationName], _: &str) -> Result<RunId> {
            Ok(RunId(1))
        }
        async fn finish_run(&self, _: RunId, _: RunStatus, _: Option<&str>) -> Result<()> {
            Ok(())
        }
        async fn record_backup(&self, _: RunId, _: &BackupRecord) -> Result<()> {
            Ok(())
        }
        async fn save_migration_record(&self, _: &MigrationRecord) -> Result<()> {
            Ok(())
        }
        async fn latest_record(&self, _: &MigrationName) -> Result<Option<MigrationRecord>> {
            Ok(None)
        }
        async fn run(&self, _: RunId) -> Result<Option<RunRecord>> {
            Ok(None)
        }
        async fn runs(&self, _: usize) -> Result<Vec<RunRecord>> {
            Ok(Vec::new())
        }
        async fn migration_records(&self, _: RunId) -> Result<Vec<MigrationRecord>> {
            Ok(Vec::new())
        }
        async fn record_rejects(&self, _: RunId, _: &MigrationName, _: &[Reject]) -> Result<()> {
            Ok(())
        }
        async fn rejects(&self, _: RunId, _: Option<&MigrationName>, _: usize, _: usize) -> Result<Vec<RejectRecord>> {
            Ok(Vec::new())
        }
        async fn checkpoint(&self, _: &MigrationName) -> Result<Option<Checkpoint>> {
            Ok(None)
        }
        async fn claim_lease(&self, _: &LeaseClaim) -> Result<LeaseClaimed> {
            Ok(LeaseClaimed::Taken { expired: None })
        }
        async fn renew_lease(
            &self,
            _: &str,
            _: &str,
            _: Option<RunId>,
            _: std::time::SystemTime,
            _: std::time::Duration,
        ) -> Result<bool> {
            Ok(true)
        }
        async fn release_lease(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn lease(&self, _: &str) -> Result<Option<LeaseRecord>> {
            Ok(None)
        }
    }

    /// A proof answering from a list (one answer per call, the last repeated), recording the
    /// calls, whose `finish` fails when told to.
    struct Scripted {
        answers: Mutex<Vec<Vec<(RuleCheck, Violations)>>>,
        calls: Arc<Mutex<Vec<&'static str>>>,
        finish_fails: bool,
    }

    #[async_trait]
    impl OrphanProbe for Scripted {
        async fn orphans(&self) -> Result<Vec<(RuleCheck, Violations)>> {
            self.calls.lock().unwrap().push("orphans");
            let mut answers = self.answers.lock().unwrap();
            Ok(if answers.len() > 1 { answers.remove(0) } else { answers[0].clone() })
        }

        async fn finish(&self) -> Result<()> {
            self.calls.lock().unwrap().push("finish");
            if self.finish_fails {
                return Err(Error::fatal(
                    Stage::Validate,
                    "re-validating CHECK constraint `CK_total` of dbo.orders: 1 row breaks it",
                ));
            }
            Ok(())
        }
    }

    fn orphan() -> (RuleCheck, Violations) {
        let check = RuleCheck::ForeignKey {
            table: TableName::new(Some("dbo"), "orders"),
            key: vec!["id".into()],
            foreign_key: ForeignKey {
                name: "FK_orders_customers".into(),
                columns: vec!["customer_id".into()],
                referenced_table: TableName::new(Some("dbo"), "customers"),
                referenced_columns: vec!["id".into()],
                enforced: true,
            },
        };
        (check, Violations { count: 1, sample: vec!["id=7".into()] })
    }

    fn catch_up(
        answers: Vec<Vec<(RuleCheck, Violations)>>,
        finish_fails: bool,
    ) -> (CatchUp, Arc<Mutex<Vec<&'static str>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let probe = Scripted { answers: Mutex::new(answers), calls: Arc::clone(&calls), finish_fails };
        (CatchUp::new(Vec::new(), Arc::new(Ledger::default()), Vec::new(), Some(Box::new(probe))), calls)
    }

    fn context() -> MigrationContext {
        MigrationContext::new(RunId(1), Arc::new(EngineConfig::default()), Arc::new(NoRecords))
    }

    #[tokio::test]
    async fn a_clean_proof_lets_the_target_restore_what_the_fast_path_changed() {
        let (pass, calls) = catch_up(vec![Vec::new()], false);
        pass.execute(&context()).await.unwrap();
        assert_eq!(*calls.lock().unwrap(), ["orphans", "finish"]);
    }

    #[tokio::test]
    async fn orphans_that_remain_fail_the_run_naming_the_foreign_key_and_keys_and_nothing_is_restored() {
        let (pass, calls) = catch_up(vec![vec![orphan()]], false);
        let error = pass.execute(&context()).await.unwrap_err().to_string();
        assert!(error.contains("foreign key `FK_orders_customers` of dbo.orders: 1 row(s)"), "{error}");
        assert!(error.contains("(keys: id=7)"), "{error}");
        assert_eq!(*calls.lock().unwrap(), ["orphans", "orphans"], "no finish while an orphan remains");
    }

    #[tokio::test]
    async fn orphans_the_catch_up_resolves_are_followed_by_the_restore() {
        let (pass, calls) = catch_up(vec![vec![orphan()], Vec::new()], false);
        pass.execute(&context()).await.unwrap();
        assert_eq!(*calls.lock().unwrap(), ["orphans", "orphans", "finish"]);
    }

    #[tokio::test]
    async fn a_failed_restore_fails_the_run_with_its_message() {
        let (pass, _) = catch_up(vec![Vec::new()], true);
        let error = pass.execute(&context()).await.unwrap_err().to_string();
        assert!(error.contains("CHECK constraint `CK_total` of dbo.orders"), "{error}");
    }
}
