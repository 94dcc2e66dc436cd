//! The JSON documents `--json` prints: figures for scripts, durations in seconds, times in
//! RFC 3339, statuses as words.

use std::time::SystemTime;

use dmf::orchestrator::{MigrationRecord, PreflightReport, RunRecord};
use dmf::quality::QualityReport;
use dmf::{Counts, RunSummary};
use serde::Serialize;

/// A run: its record, its tables and their counts.
#[derive(Debug, Serialize)]
pub struct RunDoc {
    pub run: i64,
    pub status: String,
    pub host: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_secs: Option<f64>,
    pub totals: Counts,
    pub tables: Vec<TableDoc>,
    pub backup: Option<String>,
    pub error: Option<String>,
}

/// One migration (a table, or a table's key range or pass) of a run.
#[derive(Debug, Serialize)]
pub struct TableDoc {
    pub name: String,
    pub status: String,
    #[serde(flatten)]
    pub counts: Counts,
    pub duration_secs: f64,
    pub resumed: bool,
    pub error: Option<String>,
}

impl TableDoc {
    pub fn of(record: &MigrationRecord) -> Self {
        Self {
            name: record.migration.to_string(),
            status: record.status.to_string(),
            counts: record.counts,
            duration_secs: record.duration.as_secs_f64(),
            resumed: record.resumed,
            error: record.error.clone(),
        }
    }
}

fn totals(records: &[MigrationRecord]) -> Counts {
    let mut total = Counts::default();
    for record in records {
        total.add(&record.counts);
    }
    total
}

/// RFC 3339, to the second, in UTC.
pub fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

impl RunDoc {
    /// A run this process made.
    pub fn of_summary(summary: &RunSummary) -> Self {
        Self {
            run: summary.run.0,
            status: summary.status.to_string(),
            host: None,
            started_at: None,
            finished_at: None,
            duration_secs: Some(summary.duration.as_secs_f64()),
            totals: summary.totals(),
            tables: summary.migrations.iter().map(TableDoc::of).collect(),
            backup: summary.backup.as_ref().map(|b| b.location.clone()),
            error: summary.error.clone(),
        }
    }

    /// A run from the target's records.
    pub fn of_record(record: &RunRecord, migrations: &[MigrationRecord]) -> Self {
        Self {
            run: record.id.0,
            status: record.status.to_string(),
            host: Some(record.host.clone()),
            started_at: Some(time(record.started_at)),
            finished_at: record.finished_at.map(time),
            duration_secs: record
                .finished_at
                .and_then(|end| end.duration_since(record.started_at).ok())
                .map(|d| d.as_secs_f64()),
            totals: totals(migrations),
            tables: migrations.iter().map(TableDoc::of).collect(),
            backup: record.backup.as_ref().map(|b| b.location.clone()),
            error: record.error.clone(),
        }
    }
}

/// A verification.
#[derive(Debug, Serialize)]
pub struct VerifyDoc<'a> {
    pub passed: bool,
    pub equal: bool,
    pub verdict: String,
    pub missing_tables: Vec<&'a str>,
    pub unverified_tables: Vec<&'a str>,
    pub report: &'a QualityReport,
}

impl<'a> VerifyDoc<'a> {
    pub fn of(report: &'a QualityReport, passed: bool) -> Self {
        Self {
            passed,
            equal: report.is_equal(),
            verdict: report.verdict(),
            missing_tables: report.missing_tables().collect(),
            unverified_tables: report.unverified_tables().collect(),
            report,
        }
    }
}

/// Pre-flight, as `check` prints it.
#[derive(Debug, Serialize)]
pub struct CheckDoc<'a> {
    pub command: &'static str,
    pub source: String,
    pub target: String,
    pub passed: bool,
    pub preflight: &'a PreflightReport,
}
