//! Starting, cancelling and rolling back runs from the dashboard.
//!
//! [`Orchestrator::run`] allocates the run id inside and returns only when the run is over,
//! while `POST /api/runs` must answer the id at once. So a run is started in a task, and its id
//! is read from the first event it emits (a run-level `Preflight`, sent right after the store
//! allocated the id). Starts are serialised and refused while another run of this process is
//! going, and the id is checked against the run store's record of the plan, so the event read
//! is this run's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dmf_core::{
    CancellationToken, MigrationName, Orchestrator, Phase, RollbackSummary, RollbackTarget, RunId, RunRequest,
    RunStatus, RunSummary,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::error::DashboardError;
use crate::live::Live;

/// What to run: the body of `POST /api/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Only these migrations (default: every registered one).
    #[serde(default)]
    pub migrations: Option<Vec<MigrationName>>,
    /// Run completed migrations again, and failed ones from the start.
    #[serde(default)]
    pub force: bool,
}

/// A run started in the background by [`Dashboard::start_run`](crate::Dashboard::start_run).
#[derive(Debug)]
pub struct StartedRun {
    /// Its id in the run store.
    pub run: RunId,
    /// Cancelling it stops the run at the next batch boundary (the cancel route does this).
    pub cancel: CancellationToken,
    /// The run's outcome, when it is over.
    pub outcome: JoinHandle<dmf_core::Result<RunSummary>>,
}

/// What `POST /api/runs/{id}/cancel` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// The token was cancelled; the run stops at its next batch boundary.
    Cancelled,
    /// The store has no such run.
    NoSuchRun,
    /// The run is over.
    Finished(RunStatus),
    /// The run is going, but was not started by this dashboard.
    NotStartedHere,
}

/// Cancellation tokens of the runs this dashboard started, by start ticket.
#[derive(Debug, Default)]
struct Tokens {
    by_ticket: HashMap<u64, (Option<RunId>, CancellationToken)>,
}

/// Starts and stops runs of one orchestrator.
pub(crate) struct Control {
    orchestrator: Arc<Orchestrator>,
    live: Arc<Live>,
    /// Held while a run is being started or a rollback runs, so neither overlaps another.
    operation: tokio::sync::Mutex<()>,
    tokens: Arc<Mutex<Tokens>>,
    tickets: AtomicU64,
}

impl Control {
    pub fn new(orchestrator: Arc<Orchestrator>, live: Arc<Live>) -> Self {
        Self {
            orchestrator,
            live,
            operation: tokio::sync::Mutex::new(()),
            tokens: Arc::default(),
            tickets: AtomicU64::new(0),
        }
    }

    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The selected migrations in plan order (what the orchestrator will record as the plan).
    fn plan_of(&self, options: &RunOptions) -> Result<Vec<MigrationName>, DashboardError> {
        let Some(names) = &options.migrations else {
            return Ok(self.orchestrator.plan().to_vec());
        };
        if names.is_empty() {
            return Err(DashboardError::NothingSelected);
        }
        if let Some(unknown) = names.iter().find(|n| self.orchestrator.migration(n).is_none()) {
            return Err(DashboardError::UnknownMigration(unknown.clone()));
        }
        Ok(self.orchestrator.plan().iter().filter(|n| names.contains(n)).cloned().collect())
    }

    /// A run of this process that is still going, as far as the events and the store tell.
    async fn active_run(&self) -> Result<Option<RunId>, DashboardError> {
        for run in self.live.unfinished() {
            let record = self.orchestrator.store().run(run).await.map_err(DashboardError::Store)?;
            match record {
                Some(record) if record.status == RunStatus::Running => return Ok(Some(run)),
                // The final event was missed (the tracker fell behind): the store knows better.
                _ => self.live.mark_finished(run),
            }
        }
        Ok(None)
    }

    pub async fn start_run(&self, options: RunOptions) -> Result<StartedRun, DashboardError> {
        let plan = self.plan_of(&options)?;
        let _starting = self.operation.lock().await;
        if let Some(run) = self.active_run().await? {
            return Err(DashboardError::RunInProgress(run));
        }

        let cancel = CancellationToken::new();
        let mut request = match options.migrations {
            Some(names) => RunRequest::only(names),
            None => RunRequest::all(),
        };
        if options.force {
            request = request.force();
        }
        let request = request.with_cancel(cancel.clone());
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.tokens().by_ticket.insert(ticket, (None, cancel.clone()));

        // Subscribe before the run can emit anything.
        let mut events = self.orchestrator.progress().subscribe();
        let (orchestrator, live, tokens) =
            (Arc::clone(&self.orchestrator), Arc::clone(&self.live), Arc::clone(&self.tokens));
        let mut outcome = tokio::spawn(async move {
            let outcome = orchestrator.run(request).await;
            let mut tokens = tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((Some(run), _)) = tokens.by_ticket.remove(&ticket) {
                live.mark_finished(run);
            }
            outcome
        });

        let run = loop {
            let ended = tokio::select! {
                biased;
                event = events.recv() => match event {
                    Ok(event) if event.migration.is_none() && event.phase == Phase::Preflight => {
                        if self.is_run_of(event.run, &plan).await {
                            break event.run;
                        }
                        continue;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    // Cannot happen while the orchestrator lives; wait for the run's end then.
                    Err(RecvError::Closed) => (&mut outcome).await,
                },
                joined = &mut outcome => joined,
            };
            // It ended before it said its id: it could not start, or was so quick that the
            // event was missed.
            self.tokens().by_ticket.remove(&ticket);
            let summary = match ended {
                Ok(Ok(summary)) => summary,
                Ok(Err(error)) => return Err(DashboardError::Start(error)),
                Err(join) => return Err(DashboardError::RunAborted(join.to_string())),
            };
            let run = summary.run;
            self.live.mark_started_here(run);
            self.live.mark_finished(run);
            return Ok(StartedRun { run, cancel, outcome: tokio::spawn(std::future::ready(Ok(summary))) });
        };
        if let Some(entry) = self.tokens().by_ticket.get_mut(&ticket) {
            entry.0 = Some(run);
        }
        self.live.mark_started_here(run);
        tracing::info!(run = %run, "run started from the dashboard");
        Ok(StartedRun { run, cancel, outcome })
    }

    /// True when the store recorded `run` with `plan` (or cannot tell).
    async fn is_run_of(&self, run: RunId, plan: &[MigrationName]) -> bool {
        match self.orchestrator.store().run(run).await {
            Ok(Some(record)) => record.plan == plan,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    pub async fn cancel(&self, run: RunId) -> Result<CancelOutcome, DashboardError> {
        let Some(record) = self.orchestrator.store().run(run).await.map_err(DashboardError::Store)? else {
            return Ok(CancelOutcome::NoSuchRun);
        };
        if record.status != RunStatus::Running {
            return Ok(CancelOutcome::Finished(record.status));
        }
        let token = self.tokens().by_ticket.values().find(|(id, _)| *id == Some(run)).map(|(_, t)| t.clone());
        match token {
            Some(token) => {
                token.cancel();
                tracing::info!(run = %run, "run cancelled from the dashboard");
                Ok(CancelOutcome::Cancelled)
            }
            None => Ok(CancelOutcome::NotStartedHere),
        }
    }

    pub async fn rollback(&self, migration: MigrationName) -> Result<RollbackSummary, DashboardError> {
        if self.orchestrator.migration(&migration).is_none() {
            return Err(DashboardError::UnknownMigration(migration));
        }
        let _busy = self.operation.lock().await;
        if let Some(run) = self.active_run().await? {
            return Err(DashboardError::RunInProgress(run));
        }
        let summary = self
            .orchestrator
            .rollback(RollbackTarget::Migrations(vec![migration.clone()]))
            .await
            .map_err(DashboardError::Rollback)?;
        tracing::info!(migration = %migration, "rolled back from the dashboard");
        Ok(summary)
    }
}
