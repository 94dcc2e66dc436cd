//! Progress events, and the metrics every migration reports.
//!
//! [`ProgressHub`] is a broadcast channel of [`ProgressEvent`]s: terminal progress bars, logs
//! and the dashboard's live stream subscribe to it. A subscriber that falls behind loses the
//! oldest events rather than slowing the migration down.

pub mod metrics;

use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::migration::Counts;
use crate::names::{MigrationName, RunId};

/// Where a run or migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Pre-flight checks running.
    Preflight,
    /// Backup running.
    Backup,
    /// A migration started (carries the estimate).
    Started,
    /// A batch was committed.
    Loading,
    /// A migration or run completed.
    Completed,
    /// A migration was skipped (already completed, or a dependency failed).
    Skipped,
    /// A migration or run failed.
    Failed,
    /// A migration was rolled back.
    RolledBack,
}

/// One progress update. `migration` is `None` for run-level events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressEvent {
    /// The run.
    pub run: RunId,
    /// The migration, or `None` for the run as a whole.
    pub migration: Option<MigrationName>,
    /// What happened.
    pub phase: Phase,
    /// Records handled so far by this execution (read and committed, skipped or rejected).
    pub rows_done: u64,
    /// Records expected in all, when the extractor could estimate.
    pub rows_estimated: Option<u64>,
    /// Throughput since the migration started.
    pub rows_per_sec: f64,
    /// Counts so far.
    pub counts: Counts,
    /// A message (the error for `Failed`, the reason for `Skipped`).
    pub message: Option<String>,
    /// When.
    pub at: SystemTime,
}

impl ProgressEvent {
    /// A run-level event.
    pub fn run(run: RunId, phase: Phase) -> Self {
        Self {
            run,
            migration: None,
            phase,
            rows_done: 0,
            rows_estimated: None,
            rows_per_sec: 0.0,
            counts: Counts::default(),
            message: None,
            at: SystemTime::now(),
        }
    }

    /// A migration-level event.
    pub fn migration(run: RunId, migration: &MigrationName, phase: Phase) -> Self {
        Self { migration: Some(migration.clone()), ..Self::run(run, phase) }
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// The broadcast point for [`ProgressEvent`]s. Cheap to clone; all clones share subscribers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use dmf_core::{Phase, ProgressEvent, ProgressHub, RunId};
/// let hub = ProgressHub::new();
/// let mut events = hub.subscribe();
/// hub.emit(ProgressEvent::run(RunId(1), Phase::Completed));
/// assert_eq!(events.recv().await.unwrap().phase, Phase::Completed);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ProgressHub {
    sender: broadcast::Sender<ProgressEvent>,
}

impl Default for ProgressHub {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressHub {
    /// A hub keeping up to 4,096 events for slow subscribers.
    ///
    /// The channel keeps each event until a later one overwrites its slot, so its memory grows
    /// with the events sent until it holds `capacity` of them (a few hundred bytes each): a
    /// long run that wants flat memory from its first batch uses a smaller
    /// [`with_capacity`](Self::with_capacity); a subscriber that falls further behind skips the
    /// older events (`RecvError::Lagged`).
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// A hub keeping up to `capacity` events for slow subscribers.
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A new receiver of every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ProgressEvent> {
        self.sender.subscribe()
    }

    /// Sends an event to every subscriber (none is fine).
    pub fn emit(&self, event: ProgressEvent) {
        tracing::trace!(?event.phase, migration = ?event.migration, rows = event.rows_done, "progress");
        let _ = self.sender.send(event);
    }
}
