//! One call to sync two databases: plan, pre-flight, orchestrated run.

use std::sync::Arc;

use super::{
    CLEAR, ClearTables, Database, DatabaseCheck, DatabaseRole, RangeReaders, SyncMode, SyncPlan, sync_migrations,
};
use crate::catalog::TableName;
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::names::RunId;
use crate::orchestrator::{
    Backup, Lease, LeaseOptions, MigrationRecord, MigrationStatus, Notifier, Orchestrator, PreflightReport,
    RollbackSummary, RollbackTarget, RunRequest, RunStatus, RunSummary, this_host,
};
use crate::progress::ProgressHub;

/// A sync of `tables` (default: all) from `source` into `target`.
///
/// ```no_run
/// # async fn demo<S: dmf_core::sync::Database, T: dmf_core::sync::Database>(source: S, target: T) -> dmf_core::Result<()> {
/// use std::sync::Arc;
/// use dmf_core::sync::{SyncJob, SyncMode};
/// let job = SyncJob::new(Arc::new(source), Arc::new(target), SyncMode::Upsert).jobs(2);
/// let summary = job.run(dmf_core::RunRequest::all()).await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
pub struct SyncJob<S, T> {
    source: Arc<S>,
    target: Arc<T>,
    mode: SyncMode,
    tables: Option<Vec<TableName>>,
    engine: EngineConfig,
    jobs: usize,
    range_readers: usize,
    range_min_rows: Option<u64>,
    progress: ProgressHub,
    undo: bool,
    snapshot: bool,
    foreign_key_checks: super::ForeignKeyChecks,
    skip_target_triggers: bool,
    backup: Option<Arc<dyn Backup>>,
    notifiers: Vec<Arc<dyn Notifier>>,
    lease: LeaseOptions,
    sequences: bool,
}

impl<S: Database, T: Database> SyncJob<S, T> {
    /// A sync of every source table in `mode`.
    pub fn new(source: Arc<S>, target: Arc<T>, mode: SyncMode) -> Self {
        Self {
            source,
            target,
            mode,
            tables: None,
            engine: EngineConfig::default(),
            jobs: 1,
            range_readers: 1,
            range_min_rows: None,
            progress: ProgressHub::new(),
            undo: false,
            snapshot: false,
            foreign_key_checks: super::ForeignKeyChecks::Auto,
            skip_target_triggers: false,
            backup: None,
            notifiers: Vec::new(),
            lease: LeaseOptions::default(),
            sequences: true,
        }
    }

    /// Whether the sync sets the target's sequences to the source's values after the load
    /// (default: yes; see [`SyncPlan::with_sequences`]): serial and identity columns,
    /// sequences named in defaults, SQL Server identities, SQLite `AUTOINCREMENT` counters of
    /// the synced tables. The run records the target's values before its first write; rolling
    /// it back sets them back.
    pub fn sequences(mut self, sync: bool) -> Self {
        self.sequences = sync;
        self
    }

    /// How runs and rollbacks hold the target's lease (one writer per target): its time to
    /// live and how long to wait for another run's ([`LeaseOptions`]).
    pub fn lease(mut self, options: LeaseOptions) -> Self {
        self.lease = options;
        self
    }

    /// Only these tables.
    pub fn tables(mut self, tables: Vec<TableName>) -> Self {
        self.tables = Some(tables);
        self
    }

    /// Batch size, depth, retries and reject limits.
    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Tables loaded at the same time when no foreign key orders them.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Reads each large table with `readers` key-range readers at once (default 1: one reader
    /// per table), each range a migration with its own checkpoint (`TABLE [range i/N]`; see
    /// [`SyncPlan::with_key_ranges`]). Ranges run alongside other migrations within
    /// [`jobs`](Self::jobs), so rows in flight stay within `jobs × pipeline_depth × batch_size`.
    /// Not for incremental mode.
    pub fn range_readers(mut self, readers: usize) -> Self {
        self.range_readers = readers.max(1);
        self
    }

    /// Splits only tables of at least `rows` rows into key ranges (default: `range_readers ×
    /// batch_size × 10`, ten batches per range at least).
    pub fn range_min_rows(mut self, rows: u64) -> Self {
        self.range_min_rows = Some(rows);
        self
    }

    /// Keeps an undo log in the target, so that a run can be rolled back row by row (off by
    /// default: it costs a read of every changed row's before-image).
    pub fn undo(mut self, undo: bool) -> Self {
        self.undo = undo;
        self
    }

    /// Reads every table of the source in one consistent [snapshot](Database::snapshot), taken
    /// when the orchestrator is built, instead of short keyset queries that see the source
    /// change during the copy. The copy is then exactly the snapshot, in one pass; the source
    /// holds a transaction open meanwhile (see [`Database::snapshot`] for the costs).
    pub fn snapshot(mut self, snapshot: bool) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// How a `full` sync has foreign keys checked (default [`Auto`](super::ForeignKeyChecks::Auto):
    /// deferred to a set-based proof when the target allows it).
    pub fn foreign_key_checks(mut self, checks: super::ForeignKeyChecks) -> Self {
        self.foreign_key_checks = checks;
        self
    }

    /// Skips the target's triggers in every mode where the target can (see
    /// [`TriggerPolicy`](super::TriggerPolicy)): tables whose triggers fire on the sync's writes are written by
    /// sessions that skip them (PostgreSQL: `session_replication_role = replica`, for a user
    /// allowed to set it; SQL Server: bulk loads without `FIRE_TRIGGERS`, in `full` only), and
    /// their foreign keys are proven after the load. Pre-flight names every trigger that still
    /// fires, and why (without the flag: all those on the sync's writes; a `full` sync's fast
    /// path then keeps tables with insert triggers per row).
    pub fn skip_target_triggers(mut self, skip: bool) -> Self {
        self.skip_target_triggers = skip;
        self
    }

    /// Takes this backup of the target before the first write of every run (and restores it
    /// to roll back a run the undo log cannot undo, such as a `full` sync).
    pub fn backup(mut self, backup: impl Backup + 'static) -> Self {
        self.backup = Some(Arc::new(backup));
        self
    }

    /// Tells `notifier` the outcome of every run (success or failure, with the summary).
    pub fn notifier(mut self, notifier: impl Notifier + 'static) -> Self {
        self.notifiers.push(Arc::new(notifier));
        self
    }

    /// Where progress events go.
    pub fn progress(mut self, hub: ProgressHub) -> Self {
        self.progress = hub;
        self
    }

    /// Reads both catalogs and plans the sync, asking the target whether loads may skip
    /// per-row foreign-key checks and, with [`range_readers`](Self::range_readers), the source
    /// where to split large tables; writes nothing.
    pub async fn plan(&self) -> Result<SyncPlan> {
        let source = self.source.read_catalog().await?;
        let target = self.target.read_catalog().await?;
        let mut plan =
            SyncPlan::build(&source, &target, self.tables.as_deref(), self.mode.clone())?.with_undo(self.undo);
        if self.sequences {
            let source_tables: Vec<TableName> = plan.tables.iter().map(|t| t.source.name.clone()).collect();
            let target_tables: Vec<TableName> = plan.tables.iter().map(|t| t.target.name.clone()).collect();
            let ours = self.source.sequences(&source_tables).await?;
            let theirs = self.target.sequences(&target_tables).await?;
            plan = plan.with_sequences(&ours, &theirs);
        }
        if let Some(readers) = std::num::NonZeroUsize::new(self.range_readers).filter(|r| r.get() > 1) {
            let mut split = RangeReaders::new(readers, self.engine.batch_size());
            if let Some(rows) = self.range_min_rows {
                split = split.min_rows(rows);
            }
            plan = plan.with_key_ranges(&*self.source, split).await?;
        }
        let target_tables: Vec<TableName> = plan.tables.iter().map(|t| t.target.name.clone()).collect();
        let triggers = self.target.triggers(&target_tables).await?;
        let writes = plan.mode.writes();
        // Asked for the fast path of a full sync, for the tables of a NOT NULL foreign-key
        // cycle in any mode (they load only without per-row checks), and with
        // --skip-target-triggers for the tables whose triggers fire on the sync's writes
        // (sessions that skip checks skip triggers).
        let full_auto = plan.mode == SyncMode::Full && self.foreign_key_checks == super::ForeignKeyChecks::Auto;
        let asked: Vec<TableName> = target_tables
            .iter()
            .filter(|name| {
                let table = plan.tables.iter().find(|t| &t.target.name == *name);
                full_auto
                    || table.is_some_and(|t| !t.unordered.is_empty())
                    || (self.skip_target_triggers
                        && triggers.iter().any(|trigger| &trigger.table == *name && trigger.fires_on(&writes)))
            })
            .cloned()
            .collect();
        let trusted_writes =
            if plan.mode == SyncMode::Full { super::TrustedWrites::Inserts } else { super::TrustedWrites::Any };
        let trust = match asked.is_empty() {
            true => None,
            false => Some(self.target.foreign_key_trust(&asked, trusted_writes, self.skip_target_triggers).await?),
        };
        let policy = super::TriggerPolicy {
            skip: self.skip_target_triggers,
            trust: trust.as_ref(),
            clearing: self.target.clearing_event(),
        };
        Ok(plan.with_foreign_key_checks(self.foreign_key_checks, trust.as_ref()).with_triggers(&triggers, policy))
    }

    /// The orchestrator running `plan`, with the target's run store and pre-flight checks of
    /// both databases and of the schemas. With [`snapshot`](Self::snapshot), the snapshot is
    /// taken here and held as long as the orchestrator. Tables whose key-range loads an earlier
    /// run left unfinished are read in the ranges stored with their checkpoints
    /// ([`SyncPlan::resume_key_ranges`]).
    pub async fn orchestrator(&self, plan: &SyncPlan) -> Result<Orchestrator> {
        let source = if self.snapshot { Arc::new(self.source.snapshot().await?) } else { Arc::clone(&self.source) };
        let store = self.target.run_store().await?;
        let plan = &plan.clone().resume_key_ranges(&*store).await?;
        let mut builder = Orchestrator::builder(store)
            .preflight(DatabaseCheck::new(Arc::clone(&source), DatabaseRole::Source))
            .preflight(DatabaseCheck::new(Arc::clone(&self.target), DatabaseRole::Target))
            .preflight(plan.schema_check())
            .preflight(plan.foreign_key_check())
            .engine(self.engine.clone().with_deferred_missing_parents(plan.catches_up()))
            .max_concurrency(self.jobs)
            .lease(self.lease.clone())
            .progress(self.progress.clone());
        if let Some(triggers) = plan.trigger_check() {
            builder = builder.preflight(triggers);
        }
        if let Some(backup) = &self.backup {
            builder = builder.backup(Arc::clone(backup));
        }
        for notifier in &self.notifiers {
            builder = builder.notifier(Arc::clone(notifier));
        }
        for migration in sync_migrations(&source, &self.target, plan) {
            builder = builder.shared_migration(migration);
        }
        builder.build()
    }

    /// Plans the sync and runs the pre-flight checks its run would make before the first write
    /// (both databases, the schemas, the foreign-key path, the target's triggers), reading
    /// no rows and writing nothing, not even the control tables.
    pub async fn preflight(&self) -> Result<(SyncPlan, PreflightReport)> {
        let plan = self.plan().await?;
        let report = super::dry_run::preflight(self.source.as_ref(), self.target.as_ref(), &plan).await;
        Ok((plan, report))
    }

    /// Runs the pre-flight checks and counts, per migration in the order the real run takes
    /// them, the rows it would insert, update and delete, by reading both sides in key order.
    /// Writes nothing, not even the control tables. Not available for incremental mode.
    pub async fn dry_run(&self) -> Result<super::DryRun> {
        let plan = self.plan().await?;
        super::dry_run::dry_run(&self.source, &self.target, &plan, self.engine.batch_size()).await
    }

    /// Plans and runs the sync. A request that is not [forced](RunRequest::force) resumes the
    /// target's latest run only when that run did not end and planned the same migrations
    /// ([`LastRun::Resumable`](crate::orchestrator::LastRun)); otherwise the sync starts from the
    /// beginning, so that a second sync after a completed one copies the source again instead
    /// of skipping every table as already done.
    pub async fn run(&self, request: RunRequest) -> Result<RunSummary> {
        let plan = self.plan().await?;
        let orchestrator = self.orchestrator(&plan).await?;
        let request = match request.is_forced() {
            true => request,
            false => match orchestrator.last_run().await? {
                crate::orchestrator::LastRun::Resumable(_) => request,
                _ => request.force(),
            },
        };
        orchestrator.run(request).await
    }

    /// Rolls back `run` (the latest run not yet rolled back when `None`) from the target's undo
    /// log, table by table in reverse dependency order. Needs only the target. Refused when a
    /// later run wrote to the same tables, unless `force`.
    pub async fn rollback(&self, run: Option<RunId>, force: bool) -> Result<(RunId, RollbackSummary)> {
        let store = self.target.run_store().await?;
        // A run that still holds the lease is still writing: refuse rather than undo under it.
        let (lease, _) =
            Lease::acquire(Arc::clone(&store), &self.lease, &this_host()).await.map_err(|error| match error {
                Error::LeaseHeld { holder, .. } => {
                    Error::RollbackRefused(format!("the target is in use by {holder}; roll back after that run ends"))
                }
                other => other,
            })?;
        let undone = self.rollback_leased(store, run, force, &lease).await;
        if let Err(error) = lease.release().await {
            tracing::warn!(error = %error.chain(), "could not release the target's lease; it expires on its own");
        }
        undone
    }

    async fn rollback_leased(
        &self,
        store: Arc<dyn crate::RunStore>,
        run: Option<RunId>,
        force: bool,
        lease: &Lease,
    ) -> Result<(RunId, RollbackSummary)> {
        let catalog = self.target.read_catalog().await?;
        // A diff plan names every pass a sync can have (loads, deferred keys, deletes), and,
        // with the target's sequences, the sequence steps.
        let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Diff)?;
        let tables: Vec<TableName> = plan.tables.iter().map(|t| t.target.name.clone()).collect();
        let sequences = self.target.sequences(&tables).await?;
        let plan = plan.with_sequences(&sequences, &sequences);
        let run = match run {
            Some(run) => run,
            None => store
                .runs(1000)
                .await?
                .into_iter()
                .find(|r| matches!(r.status, RunStatus::Completed | RunStatus::Failed | RunStatus::Abandoned))
                .map(|r| r.id)
                .ok_or_else(|| Error::RollbackRefused("the target has no run to roll back".into()))?,
        };
        let records = store.migration_records(run).await?;
        let emptied = records.iter().any(|r| r.migration.as_str() == CLEAR && r.status.may_have_written());
        if emptied {
            return self.restore_backup(store, run, records, force).await;
        }
        // Tables the run loaded in key ranges: their loads are named by range. Only the count
        // matters here (rolling back reads the undo log, not the source).
        let mut plan = plan;
        for record in &records {
            if let Some((table, _, count)) = super::parse_range_migration_name(record.migration.as_str()) {
                if let Some(planned) = plan.tables.iter_mut().find(|t| t.target.name.to_string() == table) {
                    planned.ranges = vec![super::KeyRange::all(); count];
                }
            }
        }
        let mut builder = Orchestrator::builder(store)
            .migration(ClearTables::new(Arc::clone(&self.target), plan.delete_order()))
            .progress(self.progress.clone());
        for migration in sync_migrations(&self.target, &self.target, &plan) {
            builder = builder.shared_migration(migration);
        }
        let orchestrator = builder.build()?;
        let target = RollbackTarget::Run(run);
        let summary = orchestrator.rollback_holding(target, force, lease).await?;
        Ok((run, summary))
    }

    /// Rolls back a run that emptied the target tables: only its backup has their rows.
    async fn restore_backup(
        &self,
        store: Arc<dyn crate::RunStore>,
        run: RunId,
        records: Vec<MigrationRecord>,
        force: bool,
    ) -> Result<(RunId, RollbackSummary)> {
        let refuse = |why: String| Err(Error::RollbackRefused(why));
        let Some(taken) = store.run(run).await?.and_then(|r| r.backup) else {
            return refuse(format!(
                "run {run} emptied the target tables (full mode): only a backup taken before it can undo it, \
                 and it has none (run syncs with a backup directory to allow this)"
            ));
        };
        let Some(backup) = &self.backup else {
            return refuse(format!(
                "run {run} can only be undone from its backup at {}: give a backup method",
                taken.location
            ));
        };
        if !force {
            if let Some(later) = store.runs(1000).await?.into_iter().find(|r| {
                r.id > run
                    && matches!(
                        r.status,
                        RunStatus::Completed | RunStatus::Failed | RunStatus::Running | RunStatus::Abandoned
                    )
            }) {
                return refuse(format!(
                    "run {} ran after run {run}; restoring run {run}'s backup would undo it too: roll it back first, or force",
                    later.id
                ));
            }
        }
        tracing::warn!(%run, location = %taken.location, "restoring the target's tables from the backup");
        backup.restore(&taken).await?;
        let mut summary = RollbackSummary::default();
        for mut record in records.into_iter().filter(|r| r.status.may_have_written()) {
            record.status = MigrationStatus::RolledBack;
            store.save_migration_record(&record).await?;
            summary.undone.push((record.migration, run, Default::default()));
        }
        store.finish_run(run, RunStatus::RolledBack, None).await?;
        Ok((run, summary))
    }
}
