//! Runs a set of migrations: pre-flight, backup, dependency order (independent migrations
//! concurrently), skip-completed, resume, stop-on-error, run records, notifications and
//! rollback.

mod backup;
mod lease;
mod notify;
mod preflight;
mod resume;
mod store;
mod summary;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use backup::{Backup, BackupRecord};
pub use lease::{Lease, LeaseAcquired, LeaseClaim, LeaseClaimed, LeaseOptions, LeaseRecord, TARGET_SCOPE, this_host};
pub use notify::{LogNotifier, Notifier};
#[cfg(feature = "webhook")]
pub use notify::{
    WebhookBackup, WebhookBuilder, WebhookCounts, WebhookEvent, WebhookMigration, WebhookNotifier, WebhookPayload,
};
pub use preflight::{CheckOutcome, CheckStatus, PreflightCheck, PreflightReport};
pub use resume::LastRun;
pub use store::{MigrationRecord, MigrationStatus, RejectRecord, RunRecord, RunStatus, RunStore, sort_in_plan_order};
pub use summary::{RollbackSummary, RunSummary};

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::graph::DependencyGraph;
use crate::migration::{DataMigration, MigrationContext};
use crate::names::{MigrationName, RunId};
use crate::progress::{Phase, ProgressEvent, ProgressHub, metrics};
use summary::unblocks_dependents;

/// What to do with the rest of a run when a migration fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// Start no further migration; those running finish their work.
    #[default]
    Stop,
    /// Go on with every migration that does not depend on the failed one.
    Continue,
}

/// Which migrations a run covers, and how.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    migrations: Option<Vec<MigrationName>>,
    force: bool,
    cancel: CancellationToken,
    lease: Option<Arc<Lease>>,
}

impl RunRequest {
    /// Every registered migration.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these migrations (their dependencies must have completed in earlier runs or be
    /// named too).
    pub fn only<N: Into<MigrationName>>(names: impl IntoIterator<Item = N>) -> Self {
        Self { migrations: Some(names.into_iter().map(Into::into).collect()), ..Self::default() }
    }

    /// Runs every selected migration from the beginning: completed ones again, and failed
    /// ones from scratch rather than from their checkpoint.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// True when the run starts every selected migration from the beginning ([`force`](Self::force)).
    pub fn is_forced(&self) -> bool {
        self.force
    }

    /// Stops the run at the next batch boundary when `token` is cancelled.
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Runs under a lease the caller already took with [`Orchestrator::acquire_lease`] (to
    /// look at the target's state before deciding what to run); otherwise the run takes one.
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(Arc::new(lease));
        self
    }
}

/// What to roll back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// Every migration that wrote in this run.
    Run(RunId),
    /// The latest run of each of these migrations.
    Migrations(Vec<MigrationName>),
}

/// Runs registered migrations; see the [module docs](self).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dmf_core::Result<()> {
/// # use std::sync::Arc;
/// # use dmf_core::*;
/// # async fn demo(store: Arc<dyn RunStore>, customers: impl DataMigration + 'static) -> dmf_core::Result<()> {
/// let orchestrator = Orchestrator::builder(store)
///     .migration(customers)
///     .max_concurrency(2)
///     .on_error(OnError::Stop)
///     .build()?;
/// let summary = orchestrator.run(RunRequest::all()).await?;
/// println!("{summary}");
/// # Ok(()) }
/// # Ok(()) }
/// ```
pub struct Orchestrator {
    migrations: BTreeMap<MigrationName, Arc<dyn DataMigration>>,
    graph: DependencyGraph<MigrationName>,
    order: Vec<MigrationName>,
    store: Arc<dyn RunStore>,
    checks: Vec<Box<dyn PreflightCheck>>,
    backup: Option<Box<dyn Backup>>,
    notifiers: Vec<Box<dyn Notifier>>,
    config: Arc<EngineConfig>,
    progress: ProgressHub,
    max_concurrency: usize,
    on_error: OnError,
    host: String,
    lease: LeaseOptions,
}

/// Builder for [`Orchestrator`]; [`build`](Self::build) checks names and dependencies.
pub struct OrchestratorBuilder {
    migrations: Vec<Arc<dyn DataMigration>>,
    store: Arc<dyn RunStore>,
    checks: Vec<Box<dyn PreflightCheck>>,
    backup: Option<Box<dyn Backup>>,
    notifiers: Vec<Box<dyn Notifier>>,
    config: EngineConfig,
    progress: ProgressHub,
    max_concurrency: usize,
    on_error: OnError,
    host: Option<String>,
    lease: LeaseOptions,
}

impl OrchestratorBuilder {
    /// Registers a migration.
    pub fn migration(mut self, migration: impl DataMigration + 'static) -> Self {
        self.migrations.push(Arc::new(migration));
        self
    }

    /// Registers a shared migration.
    pub fn shared_migration(mut self, migration: Arc<dyn DataMigration>) -> Self {
        self.migrations.push(migration);
        self
    }

    /// Adds a check run before any data moves.
    pub fn preflight(mut self, check: impl PreflightCheck + 'static) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// Sets the backup taken before the first write.
    pub fn backup(mut self, backup: impl Backup + 'static) -> Self {
        self.backup = Some(Box::new(backup));
        self
    }

    /// Adds a notifier told of every finished run.
    pub fn notifier(mut self, notifier: impl Notifier + 'static) -> Self {
        self.notifiers.push(Box::new(notifier));
        self
    }

    /// Sets the engine configuration every migration runs with.
    pub fn engine(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this hub for progress events (to subscribe before the run starts).
    pub fn progress(mut self, hub: ProgressHub) -> Self {
        self.progress = hub;
        self
    }

    /// Migrations running at the same time, at most (default 1).
    pub fn max_concurrency(mut self, migrations: usize) -> Self {
        self.max_concurrency = migrations;
        self
    }

    /// Stop or continue after a failure (default stop).
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// The host name written in run records (default: the machine's host name, [`this_host`]).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// How the run holds the target's lease: its time to live and how long to wait for
    /// another run's ([`LeaseOptions`]; by default 30 s, and refuse at once).
    pub fn lease(mut self, options: LeaseOptions) -> Self {
        self.lease = options;
        self
    }

    /// Checks for duplicate names, unknown dependencies and cycles.
    pub fn build(self) -> Result<Orchestrator> {
        if self.max_concurrency == 0 {
            return Err(Error::Config("max_concurrency must be at least 1".into()));
        }
        let mut migrations = BTreeMap::new();
        let mut graph = DependencyGraph::new();
        for migration in self.migrations {
            let name = migration.name().clone();
            graph.add_node(name.clone());
            if migrations.insert(name.clone(), migration).is_some() {
                return Err(Error::DuplicateMigration(name));
            }
        }
        for (name, migration) in &migrations {
            for dependency in migration.dependencies() {
                if !migrations.contains_key(dependency) {
                    return Err(Error::UnknownDependency { migration: name.clone(), dependency: dependency.clone() });
                }
                graph.add_edge(name.clone(), dependency.clone());
            }
        }
        let order = graph.order().map_err(|cycle| Error::DependencyCycle { cycle })?;
        Ok(Orchestrator {
            migrations,
            graph,
            order,
            store: self.store,
            checks: self.checks,
            backup: self.backup,
            notifiers: self.notifiers,
            config: Arc::new(self.config),
            progress: self.progress,
            max_concurrency: self.max_concurrency,
            on_error: self.on_error,
            host: self.host.unwrap_or_else(lease::this_host),
            lease: self.lease,
        })
    }
}

/// The scheduler's view of one migration.
enum Readiness {
    Ready,
    Wait,
    Blocked(String),
}

impl Orchestrator {
    /// Starts a builder storing run records in `store`.
    pub fn builder(store: Arc<dyn RunStore>) -> OrchestratorBuilder {
        OrchestratorBuilder {
            migrations: Vec::new(),
            store,
            checks: Vec::new(),
            backup: None,
            notifiers: Vec::new(),
            config: EngineConfig::default(),
            progress: ProgressHub::new(),
            max_concurrency: 1,
            on_error: OnError::default(),
            host: None,
            lease: LeaseOptions::default(),
        }
    }

    /// Every registered migration, dependencies first.
    pub fn plan(&self) -> &[MigrationName] {
        &self.order
    }

    /// A registered migration.
    pub fn migration(&self, name: &MigrationName) -> Option<&Arc<dyn DataMigration>> {
        self.migrations.get(name)
    }

    /// The run store.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// The progress hub; subscribe to watch runs.
    pub fn progress(&self) -> &ProgressHub {
        &self.progress
    }

    fn context(&self, run: RunId, cancel: &CancellationToken, restart: bool) -> MigrationContext {
        let mut ctx = MigrationContext::new(run, Arc::clone(&self.config), Arc::clone(&self.store));
        ctx.progress = self.progress.clone();
        ctx.cancel = cancel.clone();
        ctx.restart = restart;
        ctx
    }

    /// Runs the requested migrations. A run that fails still returns its summary (status
    /// `Failed`); `Err` means the run could not be started or recorded at all.
    ///
    /// The run holds the target's lease from before its record is written until after it is
    /// finished ([`Error::LeaseHeld`] when another run has it); when the lease is lost (this
    /// process stalled past the lease's time to live and another run took over) the run stops
    /// at the next batch boundary and fails.
    pub async fn run(&self, mut request: RunRequest) -> Result<RunSummary> {
        let selected = self.select(&request)?;
        let lease = match request.lease.take() {
            Some(lease) => lease,
            None => Arc::new(self.acquire_lease().await?.0),
        };
        let run = self.store.start_run(&selected, &self.host).await?;
        lease.attach(run).await?;
        // Stop at the next batch boundary when asked to, or when the lease is lost. A child of
        // the caller's token is cancelled with it, at once: forwarded by a task, the cancel would
        // reach the migrations only once that task ran, batches later on a busy runtime.
        let cancel = request.cancel.child_token();
        let forward = tokio::spawn({
            let (lost, cancel) = (lease.lost().clone(), cancel.clone());
            async move {
                lost.cancelled().await;
                cancel.cancel();
            }
        });
        request.cancel = cancel;
        let span = tracing::info_span!("run", run = %run);
        let summary = self.run_recorded(run, selected, request, lease).instrument(span).await;
        forward.abort();
        summary
    }

    /// Takes the target's lease (waiting as the builder's [`LeaseOptions`] say), marks runs
    /// left `running` by dead processes `abandoned`, and keeps the lease alive until it is
    /// released or dropped. [`run`](Self::run) and [`rollback`](Self::rollback) take it
    /// themselves; take it first to look at the target before deciding what to run, and pass
    /// it with [`RunRequest::with_lease`].
    pub async fn acquire_lease(&self) -> Result<(Lease, LeaseAcquired)> {
        Lease::acquire(Arc::clone(&self.store), &self.lease, &self.host).await
    }

    fn select(&self, request: &RunRequest) -> Result<Vec<MigrationName>> {
        let Some(names) = &request.migrations else {
            return Ok(self.order.clone());
        };
        let wanted: BTreeSet<&MigrationName> = names.iter().collect();
        if let Some(unknown) = wanted.iter().find(|n| !self.migrations.contains_key(**n)) {
            return Err(Error::UnknownMigration((*unknown).clone()));
        }
        Ok(self.order.iter().filter(|n| wanted.contains(n)).cloned().collect())
    }

    async fn run_recorded(
        &self,
        run: RunId,
        selected: Vec<MigrationName>,
        request: RunRequest,
        lease: Arc<Lease>,
    ) -> Result<RunSummary> {
        let lease_lost = lease.lost().clone();
        let started = Instant::now();
        let mut summary = RunSummary {
            run,
            status: RunStatus::Running,
            migrations: Vec::new(),
            preflight: PreflightReport::default(),
            backup: None,
            duration: Default::default(),
            error: None,
        };
        let ctx = self.context(run, &request.cancel, false);
        self.progress.emit(ProgressEvent::run(run, Phase::Preflight));
        summary.preflight = self.preflight(&selected, &ctx).await;
        let outcome = if summary.preflight.passed() {
            tracing::info!("pre-flight passed\n{}", summary.preflight);
            self.backup_and_execute(run, &selected, &request, &mut summary).await
        } else {
            Err(Error::PreflightFailed { report: summary.preflight.to_string() })
        };

        summary.duration = started.elapsed();
        let failed = summary
            .migrations
            .iter()
            .find(|r| matches!(r.status, MigrationStatus::Failed | MigrationStatus::Cancelled));
        summary.error = match (&outcome, failed) {
            (Err(error), _) => Some(error.chain()),
            (Ok(()), Some(_)) if lease_lost.is_cancelled() => {
                Some(Error::LeaseLost { scope: self.lease.scope.clone() }.to_string())
            }
            (Ok(()), Some(record)) => Some(
                record.error.clone().unwrap_or_else(|| format!("migration `{}` did not complete", record.migration)),
            ),
            (Ok(()), None) => summary
                .migrations
                .iter()
                .find(|r| r.status == MigrationStatus::Skipped && r.error.is_some())
                .and_then(|r| r.error.clone()),
        };
        let blocked = summary
            .migrations
            .iter()
            .any(|r| r.status != MigrationStatus::Completed && r.status != MigrationStatus::Skipped)
            || summary.migrations.iter().any(|r| r.status == MigrationStatus::Skipped && r.error.is_some());
        summary.status = if outcome.is_ok() && !blocked && summary.error.is_none() {
            RunStatus::Completed
        } else {
            RunStatus::Failed
        };
        let finished = self.store.finish_run(run, summary.status, summary.error.as_deref()).await;
        // Released before the run's end is announced: whoever hears of it may start the next
        // run or a rollback at once.
        if let Ok(lease) = Arc::try_unwrap(lease) {
            if let Err(error) = lease.release().await {
                tracing::warn!(error = %error.chain(), "could not release the target's lease; it expires on its own");
            }
        }
        finished?;
        let status = if summary.succeeded() { "completed" } else { "failed" };
        ::metrics::counter!(metrics::RUNS_TOTAL, "status" => status).increment(1);
        let phase = if summary.succeeded() { Phase::Completed } else { Phase::Failed };
        let mut event = ProgressEvent::run(run, phase);
        event.counts = summary.totals();
        event.message = summary.error.clone();
        self.progress.emit(event);
        for notifier in &self.notifiers {
            if let Err(error) = notifier.notify(&summary).await {
                tracing::warn!(error = %error.chain(), "a notifier failed; the run's outcome is unchanged");
            }
        }
        Ok(summary)
    }

    async fn preflight(&self, selected: &[MigrationName], ctx: &MigrationContext) -> PreflightReport {
        let mut report = PreflightReport::default();
        for check in &self.checks {
            report.outcomes.extend(check.check().await);
        }
        for name in selected {
            let Some(migration) = self.migrations.get(name) else { continue };
            let check = format!("migration `{name}` can execute");
            report.outcomes.push(match migration.can_execute(ctx).await {
                Ok(()) => CheckOutcome::passed(check, "ready"),
                Err(error) => CheckOutcome::failed(check, error.chain().replace('\n', "; ")),
            });
        }
        report
    }

    async fn backup_and_execute(
        &self,
        run: RunId,
        selected: &[MigrationName],
        request: &RunRequest,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let mut records: HashMap<MigrationName, MigrationRecord> = HashMap::new();
        let mut to_run = Vec::new();
        let mut restart = BTreeSet::new();
        for name in selected {
            let latest = self.store.latest_record(name).await?;
            match latest {
                Some(previous) if previous.status == MigrationStatus::Completed && !request.force => {
                    let mut record = MigrationRecord::new(run, name.clone(), MigrationStatus::Skipped);
                    record.resumed = false;
                    tracing::info!(migration = %name, previous_run = %previous.run, "already completed, skipped");
                    self.store.save_migration_record(&record).await?;
                    self.progress.emit(
                        ProgressEvent::migration(run, name, Phase::Skipped)
                            .with_message(format!("already completed in run {}", previous.run)),
                    );
                    records.insert(name.clone(), record);
                }
                previous => {
                    if request.force && previous.is_some() {
                        restart.insert(name.clone());
                    }
                    let record = MigrationRecord::new(run, name.clone(), MigrationStatus::Pending);
                    self.store.save_migration_record(&record).await?;
                    to_run.push(name.clone());
                }
            }
        }

        if let (Some(backup), false) = (&self.backup, to_run.is_empty()) {
            self.progress.emit(ProgressEvent::run(run, Phase::Backup));
            let taken = backup.backup(run).await?;
            tracing::info!(location = %taken.location, method = %taken.method, "backup taken");
            self.store.record_backup(run, &taken).await?;
            summary.backup = Some(taken);
        }

        self.execute_in_order(run, selected, to_run, &restart, &mut records, &request.cancel).await?;
        summary.migrations = selected.iter().filter_map(|n| records.remove(n)).collect();
        Ok(())
    }

    async fn execute_in_order(
        &self,
        run: RunId,
        selected: &[MigrationName],
        mut pending: Vec<MigrationName>,
        restart: &BTreeSet<MigrationName>,
        records: &mut HashMap<MigrationName, MigrationRecord>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let selected: BTreeSet<&MigrationName> = selected.iter().collect();
        let mut running = JoinSet::new();
        let mut running_names = HashMap::new();
        let mut stopped_by: Option<MigrationName> = None;
        loop {
            let mut index = 0;
            while stopped_by.is_none() && index < pending.len() && running.len() < self.max_concurrency {
                let name = pending[index].clone();
                match self.readiness(&name, &selected, records).await? {
                    Readiness::Wait => index += 1,
                    Readiness::Blocked(reason) => {
                        pending.remove(index);
                        self.skip(run, &name, reason, records).await?;
                    }
                    Readiness::Ready => {
                        pending.remove(index);
                        let Some(migration) = self.migrations.get(&name) else { continue };
                        let ctx = self.context(run, cancel, restart.contains(&name));
                        let task = execute_one(Arc::clone(migration), ctx);
                        let span = tracing::info_span!("migration", migration = %name);
                        let handle = running.spawn(task.instrument(span));
                        running_names.insert(handle.id(), name);
                    }
                }
            }
            let Some(joined) = running.join_next_with_id().await else { break };
            let record = match joined {
                Ok((_, record)) => record,
                Err(join_error) => {
                    let name = running_names.get(&join_error.id()).cloned().unwrap_or_else(|| MigrationName::new("?"));
                    let mut record = MigrationRecord::new(run, name, MigrationStatus::Failed);
                    record.error = Some(format!("the migration's task panicked or was aborted: {join_error}"));
                    record.finished_at = Some(SystemTime::now());
                    self.store.save_migration_record(&record).await?;
                    record
                }
            };
            if record.status != MigrationStatus::Completed && self.on_error == OnError::Stop && stopped_by.is_none() {
                stopped_by = Some(record.migration.clone());
            }
            records.insert(record.migration.clone(), record);
        }
        for name in pending {
            let reason = match &stopped_by {
                Some(failed) => format!("not started: the run stopped after `{failed}` did not complete"),
                None => "not started: its dependencies never became ready".to_owned(),
            };
            self.skip(run, &name, reason, records).await?;
        }
        Ok(())
    }

    async fn readiness(
        &self,
        name: &MigrationName,
        selected: &BTreeSet<&MigrationName>,
        records: &HashMap<MigrationName, MigrationRecord>,
    ) -> Result<Readiness> {
        for dependency in self.graph.dependencies_of(name) {
            if selected.contains(dependency) {
                match records.get(dependency) {
                    None => return Ok(Readiness::Wait),
                    Some(r) if unblocks_dependents(r.status) => {}
                    Some(r) if r.status == MigrationStatus::Skipped && r.error.is_none() => {}
                    Some(r) => {
                        return Ok(Readiness::Blocked(format!(
                            "not started: dependency `{dependency}` did not complete ({})",
                            r.status
                        )));
                    }
                }
            } else {
                let completed =
                    self.store.latest_record(dependency).await?.is_some_and(|r| r.status == MigrationStatus::Completed);
                if !completed {
                    return Ok(Readiness::Blocked(format!(
                        "not started: dependency `{dependency}` is not part of this run and has not completed in an earlier one"
                    )));
                }
            }
        }
        Ok(Readiness::Ready)
    }

    async fn skip(
        &self,
        run: RunId,
        name: &MigrationName,
        reason: String,
        records: &mut HashMap<MigrationName, MigrationRecord>,
    ) -> Result<()> {
        tracing::warn!(migration = %name, %reason, "skipped");
        let mut record = MigrationRecord::new(run, name.clone(), MigrationStatus::Skipped);
        record.error = Some(reason.clone());
        self.store.save_migration_record(&record).await?;
        ::metrics::counter!(metrics::MIGRATIONS_TOTAL, "status" => "skipped").increment(1);
        self.progress.emit(ProgressEvent::migration(run, name, Phase::Skipped).with_message(reason));
        records.insert(name.clone(), record);
        Ok(())
    }

    /// Rolls back a whole run, or the latest run of named migrations, in reverse dependency
    /// order. Stops at the first migration whose rollback fails (the error names it); those
    /// already undone stay undone and are recorded as rolled back.
    ///
    /// Refuses to roll back a run when a later run wrote to one of its migrations since (undo
    /// that run first); [`rollback_forced`](Self::rollback_forced) does it anyway.
    pub async fn rollback(&self, target: RollbackTarget) -> Result<RollbackSummary> {
        self.rollback_checked(target, false).await
    }

    /// [`rollback`](Self::rollback) even when later runs built on the run.
    pub async fn rollback_forced(&self, target: RollbackTarget) -> Result<RollbackSummary> {
        self.rollback_checked(target, true).await
    }

    async fn rollback_checked(&self, target: RollbackTarget, force: bool) -> Result<RollbackSummary> {
        // A run that still holds the lease is still writing: refuse rather than undo under it.
        let (lease, _) = self.acquire_lease().await.map_err(|error| match error {
            Error::LeaseHeld { holder, .. } => {
                Error::RollbackRefused(format!("the target is in use by {holder}; roll back after that run ends"))
            }
            other => other,
        })?;
        let summary = self.rollback_holding(target, force, &lease).await;
        if let Err(error) = lease.release().await {
            tracing::warn!(error = %error.chain(), "could not release the target's lease; it expires on its own");
        }
        summary
    }

    /// [`rollback`](Self::rollback) (or [`rollback_forced`](Self::rollback_forced) when
    /// `force`) under the target's lease, which the caller took with
    /// [`acquire_lease`](Self::acquire_lease) and still holds.
    pub async fn rollback_holding(
        &self,
        target: RollbackTarget,
        force: bool,
        lease: &Lease,
    ) -> Result<RollbackSummary> {
        if lease.lost().is_cancelled() {
            return Err(Error::LeaseLost { scope: self.lease.scope.clone() });
        }
        let mut to_undo: Vec<MigrationRecord> = match &target {
            RollbackTarget::Run(run) => {
                if self.store.run(*run).await?.is_none() {
                    return Err(Error::RollbackRefused(format!("there is no run {run}")));
                }
                self.store.migration_records(*run).await?.into_iter().filter(|r| r.status.may_have_written()).collect()
            }
            RollbackTarget::Migrations(names) => {
                let mut records = Vec::new();
                for name in names {
                    if !self.migrations.contains_key(name) {
                        return Err(Error::UnknownMigration(name.clone()));
                    }
                    match self.store.latest_record(name).await? {
                        Some(record) if record.status.may_have_written() => records.push(record),
                        Some(record) => {
                            return Err(Error::RollbackRefused(format!(
                                "migration `{name}` has nothing to roll back: its latest run ({}) ended {:?}",
                                record.run, record.status
                            )));
                        }
                        None => return Err(Error::RollbackRefused(format!("migration `{name}` has never run"))),
                    }
                }
                records
            }
        };
        if !force {
            for record in &to_undo {
                if let Some(latest) = self.store.latest_record(&record.migration).await? {
                    if latest.run > record.run && latest.status.may_have_written() {
                        return Err(Error::RollbackRefused(format!(
                            "run {} wrote to `{}` after run {}; roll back run {} first, or force the rollback",
                            latest.run, record.migration, record.run, latest.run
                        )));
                    }
                }
            }
        }
        let position: HashMap<&MigrationName, usize> = self.order.iter().enumerate().map(|(i, n)| (n, i)).collect();
        to_undo.sort_by_key(|r| std::cmp::Reverse(position.get(&r.migration).copied().unwrap_or(0)));

        let cancel = CancellationToken::new();
        let mut summary = RollbackSummary::default();
        for mut record in to_undo {
            let Some(migration) = self.migrations.get(&record.migration) else {
                return Err(Error::UnknownMigration(record.migration.clone()));
            };
            let ctx = self.context(record.run, &cancel, false);
            let report = migration
                .rollback(&ctx)
                .await
                .map_err(|source| Error::Migration { migration: record.migration.clone(), source: Box::new(source) })?;
            tracing::info!(migration = %record.migration, run = %record.run, ?report, "rolled back");
            record.status = MigrationStatus::RolledBack;
            record.finished_at = Some(SystemTime::now());
            self.store.save_migration_record(&record).await?;
            ::metrics::counter!(metrics::MIGRATIONS_TOTAL, "status" => "rolled_back").increment(1);
            self.progress.emit(ProgressEvent::migration(record.run, &record.migration, Phase::RolledBack));
            summary.undone.push((record.migration, record.run, report));
        }
        if let RollbackTarget::Run(run) = target {
            self.store.finish_run(run, RunStatus::RolledBack, None).await?;
        }
        Ok(summary)
    }
}

/// Executes one migration and turns its outcome into a record (saved by the caller's store).
async fn execute_one(migration: Arc<dyn DataMigration>, ctx: MigrationContext) -> MigrationRecord {
    let name = migration.name().clone();
    let mut record = MigrationRecord::new(ctx.run, name.clone(), MigrationStatus::Running);
    record.started_at = Some(SystemTime::now());
    if let Err(error) = ctx.store.save_migration_record(&record).await {
        tracing::warn!(error = %error.chain(), "could not record the migration as running");
    }
    let started = Instant::now();
    let outcome = migration.execute(&ctx).await;
    record.finished_at = Some(SystemTime::now());
    record.duration = started.elapsed();
    let phase = match outcome {
        Ok(result) => {
            record.status = MigrationStatus::Completed;
            record.counts = result.counts;
            record.resumed = result.resumed;
            Phase::Completed
        }
        Err(error) => {
            record.counts = error.partial_counts().unwrap_or_default();
            if error.is_cancelled() {
                record.status = MigrationStatus::Cancelled;
                record.error = Some(format!("migration `{name}` cancelled; resumable from its last checkpoint"));
            } else {
                let error = Error::Migration { migration: name.clone(), source: Box::new(error) };
                tracing::error!(error = %error.chain(), "migration failed");
                record.status = MigrationStatus::Failed;
                record.error = Some(error.chain());
            }
            Phase::Failed
        }
    };
    if let Err(error) = ctx.store.save_migration_record(&record).await {
        tracing::error!(error = %error.chain(), "could not record the migration's outcome");
    }
    let status = if record.status == MigrationStatus::Completed { "completed" } else { "failed" };
    ::metrics::counter!(metrics::MIGRATIONS_TOTAL, "status" => status).increment(1);
    let mut event = ProgressEvent::migration(ctx.run, &name, phase);
    event.counts = record.counts;
    event.rows_done = record.counts.read;
    event.message = record.error.clone();
    ctx.progress.emit(event);
    record
}
