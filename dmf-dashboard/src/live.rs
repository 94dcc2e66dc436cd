//! What this process's runs are doing right now, kept from the progress events.
//!
//! The run store says what was recorded; this adds what only the events carry (rows done of
//! the estimate, throughput) and knows which runs of this process are still going.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use dmf_core::{CancellationToken, Counts, MigrationName, Phase, ProgressEvent, ProgressHub, RunId};
use tokio::sync::broadcast::error::RecvError;

/// Runs kept; the oldest finished ones are forgotten first.
const RUNS_KEPT: usize = 64;

/// One migration's latest progress within a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveMigration {
    pub phase: Phase,
    pub rows_done: u64,
    pub rows_estimated: Option<u64>,
    pub rows_per_sec: f64,
    pub counts: Counts,
    pub message: Option<String>,
    pub at: SystemTime,
}

/// One run of this process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveRun {
    /// The latest run-level phase.
    pub phase: Phase,
    /// A run-level `Completed` or `Failed` was seen (or the run's task ended).
    pub finished: bool,
    /// Started through this dashboard (so it can be cancelled here).
    pub started_here: bool,
    pub migrations: BTreeMap<MigrationName, LiveMigration>,
}

impl LiveRun {
    fn new(phase: Phase) -> Self {
        Self { phase, finished: false, started_here: false, migrations: BTreeMap::new() }
    }
}

#[derive(Debug, Default)]
struct LiveState {
    runs: BTreeMap<RunId, LiveRun>,
    /// Events this tracker missed because it fell behind.
    missed: u64,
}

/// The shared live view; updated by a task subscribed to the orchestrator's hub.
#[derive(Debug, Default)]
pub(crate) struct Live {
    state: Mutex<LiveState>,
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribes to `hub` now (so no later event is missed) and applies events in a task
    /// until `stop` is cancelled or the hub closes.
    pub fn watch(self: &Arc<Self>, hub: &ProgressHub, stop: CancellationToken) {
        let mut events = hub.subscribe();
        let live = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => break,
                    event = events.recv() => event,
                };
                match event {
                    Ok(event) => live.apply(&event),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "the dashboard fell behind the progress events");
                        live.lock().missed += missed;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    pub fn apply(&self, event: &ProgressEvent) {
        let mut state = self.lock();
        let run = match (&event.migration, event.phase) {
            // A rollback reports the run it undid, which may be long over: update, never create.
            (Some(_), Phase::RolledBack) => match state.runs.get_mut(&event.run) {
                Some(run) => run,
                None => return,
            },
            _ => state.runs.entry(event.run).or_insert_with(|| LiveRun::new(event.phase)),
        };
        match &event.migration {
            None => {
                run.phase = event.phase;
                if matches!(event.phase, Phase::Completed | Phase::Failed) {
                    run.finished = true;
                }
            }
            Some(name) => {
                let previous = run.migrations.get(name);
                // `Started` carries the estimate; later events of a migration that could not
                // estimate keep `None`, and a final event without one keeps the last known.
                let rows_estimated = event.rows_estimated.or(previous.and_then(|m| m.rows_estimated));
                let migration = LiveMigration {
                    phase: event.phase,
                    rows_done: event.rows_done,
                    rows_estimated,
                    rows_per_sec: if event.rows_per_sec > 0.0 {
                        event.rows_per_sec
                    } else {
                        previous.map_or(0.0, |m| m.rows_per_sec)
                    },
                    counts: event.counts,
                    message: event.message.clone(),
                    at: event.at,
                };
                run.migrations.insert(name.clone(), migration);
            }
        }
        trim(&mut state.runs);
    }

    pub fn run(&self, run: RunId) -> Option<LiveRun> {
        self.lock().runs.get(&run).cloned()
    }

    /// The latest progress of `migration` in any run of this process, newest run first.
    pub fn latest_of(&self, migration: &MigrationName) -> Option<(RunId, LiveMigration)> {
        self.lock().runs.iter().rev().find_map(|(id, run)| run.migrations.get(migration).map(|m| (*id, m.clone())))
    }

    /// Runs of this process not known to have finished, oldest first.
    pub fn unfinished(&self) -> Vec<RunId> {
        self.lock().runs.iter().filter(|(_, run)| !run.finished).map(|(id, _)| *id).collect()
    }

    pub fn mark_started_here(&self, run: RunId) {
        self.lock().runs.entry(run).or_insert_with(|| LiveRun::new(Phase::Preflight)).started_here = true;
    }

    /// Marks a run finished (its task ended, or the store says it is over).
    pub fn mark_finished(&self, run: RunId) {
        if let Some(run) = self.lock().runs.get_mut(&run) {
            run.finished = true;
        }
    }

    pub fn missed(&self) -> u64 {
        self.lock().missed
    }
}

fn trim(runs: &mut BTreeMap<RunId, LiveRun>) {
    while runs.len() > RUNS_KEPT {
        let oldest = runs.iter().find(|(_, run)| run.finished).or_else(|| runs.iter().next()).map(|(id, _)| *id);
        match oldest {
            Some(id) => runs.remove(&id),
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(run: i64, migration: Option<&str>, phase: Phase) -> ProgressEvent {
        match migration {
            Some(name) => ProgressEvent::migration(RunId(run), &MigrationName::new(name), phase),
            None => ProgressEvent::run(RunId(run), phase),
        }
    }

    #[test]
    fn runs_are_followed_until_they_finish() {
        let live = Live::default();
        live.apply(&event(1, None, Phase::Preflight));
        let mut started = event(1, Some("a"), Phase::Started);
        started.rows_estimated = Some(100);
        live.apply(&started);
        let mut loading = event(1, Some("a"), Phase::Loading);
        loading.rows_done = 40;
        loading.rows_per_sec = 20.0;
        live.apply(&loading);
        assert_eq!(live.unfinished(), vec![RunId(1)]);
        let (run, a) = live.latest_of(&MigrationName::new("a")).unwrap();
        assert_eq!((run, a.rows_done, a.rows_estimated, a.rows_per_sec), (RunId(1), 40, Some(100), 20.0));

        let mut done = event(1, Some("a"), Phase::Completed);
        done.rows_done = 100;
        live.apply(&done);
        live.apply(&event(1, None, Phase::Completed));
        assert!(live.unfinished().is_empty());
        let a = live.run(RunId(1)).unwrap().migrations[&MigrationName::new("a")].clone();
        assert_eq!((a.phase, a.rows_done, a.rows_estimated, a.rows_per_sec), (Phase::Completed, 100, Some(100), 20.0));
    }

    #[test]
    fn a_rollback_of_an_old_run_does_not_look_like_a_live_run() {
        let live = Live::default();
        live.apply(&event(7, Some("a"), Phase::RolledBack));
        assert!(live.run(RunId(7)).is_none());
        assert!(live.unfinished().is_empty());
    }

    #[test]
    fn finished_runs_are_forgotten_first() {
        let live = Live::default();
        live.apply(&event(0, None, Phase::Preflight));
        for run in 1..=RUNS_KEPT as i64 + 5 {
            live.apply(&event(run, None, Phase::Preflight));
            live.apply(&event(run, None, Phase::Completed));
        }
        assert!(live.run(RunId(0)).is_some(), "the unfinished run is kept");
        assert!(live.run(RunId(1)).is_none());
        assert_eq!(live.lock().runs.len(), RUNS_KEPT);
    }
}
