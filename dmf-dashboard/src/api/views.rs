//! The JSON shapes of the API: times as RFC 3339 text, durations in milliseconds, every text
//! that may quote a connection string masked.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use dmf_core::{
    Counts, MigrationName, MigrationRecord, MigrationStatus, Phase, ProgressEvent, RejectRecord, RunId, RunRecord,
    RunStatus, Stage,
};
use serde::Serialize;

use crate::live::{LiveMigration, LiveRun};
use crate::redact::{redact_json, redact_secrets};

pub(crate) fn time(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn masked(text: &Option<String>) -> Option<String> {
    text.as_deref().map(|t| redact_secrets(t).into_owned())
}

/// A migration's progress as the events tell it.
#[derive(Debug, Serialize)]
pub(crate) struct ProgressView {
    pub run: RunId,
    pub phase: Phase,
    pub rows_done: u64,
    pub rows_estimated: Option<u64>,
    pub rows_per_sec: f64,
    /// Rows done of the estimate, 0 to 100.
    pub percent: Option<f64>,
    /// Seconds left at the current rate.
    pub eta_seconds: Option<f64>,
    pub counts: Counts,
    pub message: Option<String>,
    pub at: String,
}

fn percent(phase: Phase, done: u64, estimated: Option<u64>) -> Option<f64> {
    if phase == Phase::Completed {
        return Some(100.0);
    }
    match estimated {
        Some(0) => Some(100.0),
        Some(total) => Some((done as f64 / total as f64 * 100.0).min(100.0)),
        None => None,
    }
}

fn eta(phase: Phase, done: u64, estimated: Option<u64>, rate: f64) -> Option<f64> {
    match (phase, estimated) {
        (Phase::Completed, _) => Some(0.0),
        (Phase::Started | Phase::Loading, Some(total)) if rate > 0.0 => Some(total.saturating_sub(done) as f64 / rate),
        _ => None,
    }
}

impl ProgressView {
    pub fn new(run: RunId, live: &LiveMigration) -> Self {
        Self {
            run,
            phase: live.phase,
            rows_done: live.rows_done,
            rows_estimated: live.rows_estimated,
            rows_per_sec: live.rows_per_sec,
            percent: percent(live.phase, live.rows_done, live.rows_estimated),
            eta_seconds: eta(live.phase, live.rows_done, live.rows_estimated, live.rows_per_sec),
            counts: live.counts,
            message: masked(&live.message),
            at: time(live.at),
        }
    }
}

/// One event of `GET /api/events`.
#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    pub run: RunId,
    pub migration: Option<MigrationName>,
    pub phase: Phase,
    pub rows_done: u64,
    pub rows_estimated: Option<u64>,
    pub rows_per_sec: f64,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub counts: Counts,
    pub message: Option<String>,
    pub at: String,
}

impl From<&ProgressEvent> for EventView {
    fn from(event: &ProgressEvent) -> Self {
        let migration_level = event.migration.is_some();
        Self {
            run: event.run,
            migration: event.migration.clone(),
            phase: event.phase,
            rows_done: event.rows_done,
            rows_estimated: event.rows_estimated,
            rows_per_sec: event.rows_per_sec,
            percent: migration_level.then(|| percent(event.phase, event.rows_done, event.rows_estimated)).flatten(),
            eta_seconds: migration_level
                .then(|| eta(event.phase, event.rows_done, event.rows_estimated, event.rows_per_sec))
                .flatten(),
            counts: event.counts,
            message: masked(&event.message),
            at: time(event.at),
        }
    }
}

/// One migration's record in one run.
#[derive(Debug, Serialize)]
pub(crate) struct RecordView {
    pub run: RunId,
    pub migration: MigrationName,
    pub status: MigrationStatus,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: u64,
    pub counts: Counts,
    pub resumed: bool,
    /// The error with its chain, one cause per line.
    pub error: Option<String>,
    /// Live progress, for a run of this process.
    pub progress: Option<ProgressView>,
}

impl RecordView {
    pub fn new(record: &MigrationRecord, live: Option<&LiveMigration>) -> Self {
        let duration = match (record.status, record.started_at) {
            (MigrationStatus::Running, Some(started)) => {
                SystemTime::now().duration_since(started).unwrap_or(record.duration)
            }
            _ => record.duration,
        };
        Self {
            run: record.run,
            migration: record.migration.clone(),
            status: record.status,
            started_at: record.started_at.map(time),
            finished_at: record.finished_at.map(time),
            duration_ms: millis(duration),
            counts: record.counts,
            resumed: record.resumed,
            error: masked(&record.error),
            progress: live.map(|l| ProgressView::new(record.run, l)),
        }
    }
}

/// A backup taken before a run.
#[derive(Debug, Serialize)]
pub(crate) struct BackupView {
    pub method: String,
    pub location: String,
    pub taken_at: String,
    pub size_bytes: Option<u64>,
}

/// One run.
#[derive(Debug, Serialize)]
pub(crate) struct RunView {
    pub id: RunId,
    pub status: RunStatus,
    pub plan: Vec<MigrationName>,
    pub host: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub backup: Option<BackupView>,
    /// The sum of its migrations' counts (live counts for those still running here).
    pub totals: Counts,
    /// Its events were seen by this process (it runs, or ran, here).
    pub in_process: bool,
    /// `POST /api/runs/{id}/cancel` can stop it.
    pub cancellable: bool,
}

impl RunView {
    pub fn new(run: &RunRecord, records: &[MigrationRecord], live: Option<&LiveRun>) -> Self {
        let end = run.finished_at.unwrap_or_else(SystemTime::now);
        let mut totals = Counts::default();
        for record in records {
            // A migration still running has recorded nothing yet; its events know how far it got.
            let live_counts = live
                .filter(|_| record.status == MigrationStatus::Running)
                .and_then(|l| l.migrations.get(&record.migration))
                .map(|m| m.counts);
            totals.add(&live_counts.unwrap_or(record.counts));
        }
        Self {
            id: run.id,
            status: run.status,
            plan: run.plan.clone(),
            host: redact_secrets(&run.host).into_owned(),
            started_at: time(run.started_at),
            finished_at: run.finished_at.map(time),
            duration_ms: millis(end.duration_since(run.started_at).unwrap_or_default()),
            error: masked(&run.error),
            backup: run.backup.as_ref().map(|b| BackupView {
                method: b.method.clone(),
                location: redact_secrets(&b.location).into_owned(),
                taken_at: time(b.taken_at),
                size_bytes: b.size_bytes,
            }),
            totals,
            in_process: live.is_some(),
            cancellable: run.status == RunStatus::Running && live.is_some_and(|l| l.started_here && !l.finished),
        }
    }
}

/// A registered migration and where it stands.
#[derive(Debug, Serialize)]
pub(crate) struct MigrationView {
    pub name: MigrationName,
    pub description: String,
    pub dependencies: Vec<MigrationName>,
    /// Its most recent record in which it ran or was rolled back.
    pub latest: Option<RecordView>,
    /// Its latest live progress in this process.
    pub progress: Option<ProgressView>,
}

/// One reject.
#[derive(Debug, Serialize)]
pub(crate) struct RejectView {
    pub migration: MigrationName,
    pub stage: Stage,
    pub key: String,
    pub reason: String,
    pub payload: serde_json::Value,
}

impl From<RejectRecord> for RejectView {
    fn from(record: RejectRecord) -> Self {
        let mut payload = record.reject.payload;
        redact_json(&mut payload);
        Self {
            migration: record.migration,
            stage: record.reject.stage,
            key: redact_secrets(&record.reject.key).into_owned(),
            reason: redact_secrets(&record.reject.reason).into_owned(),
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_eta_follow_the_estimate() {
        assert_eq!(percent(Phase::Loading, 25, Some(100)), Some(25.0));
        assert_eq!(percent(Phase::Loading, 250, Some(100)), Some(100.0));
        assert_eq!(percent(Phase::Loading, 25, None), None);
        assert_eq!(percent(Phase::Completed, 25, None), Some(100.0));
        assert_eq!(eta(Phase::Loading, 25, Some(100), 5.0), Some(15.0));
        assert_eq!(eta(Phase::Loading, 25, Some(100), 0.0), None);
        assert_eq!(eta(Phase::Failed, 25, Some(100), 5.0), None);
        assert_eq!(eta(Phase::Completed, 25, Some(100), 5.0), Some(0.0));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(SystemTime::UNIX_EPOCH + Duration::from_millis(1500)), "1970-01-01T00:00:01.500Z");
    }
}
