//! A dry run: what a sync would insert, update and delete, worked out by reading both sides and
//! writing nothing (not even the control tables).

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use super::merge::{DifferenceCounts, count_differences};
use super::{CATCH_UP, CLEAR, Database, DatabaseRole, KeyRange, ReadOrder, SyncMode, SyncPlan, TablePlan};
use crate::catalog::TableName;
use crate::error::{Error, Result};
use crate::migration::Counts;
use crate::names::MigrationName;
use crate::orchestrator::{PreflightCheck, PreflightReport};

/// What one migration of a sync would do, named like the migration of the real run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedStep {
    /// The migration the real run would run (`public.orders`, `public.orders (deletes)`, …).
    pub migration: MigrationName,
    /// The target table it writes (none for the step emptying the tables of a `full` sync).
    pub table: Option<TableName>,
    /// What it would write: `inserted`, `updated`, `unchanged` and `deleted` are filled.
    pub counts: Counts,
}

/// The outcome of [`SyncJob::dry_run`](super::SyncJob::dry_run): pre-flight, then the steps
/// in the order the real run takes them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DryRun {
    /// Every pre-flight check, as the real run would report it.
    pub preflight: PreflightReport,
    /// What each migration would do; empty when a pre-flight check failed.
    pub steps: Vec<PlannedStep>,
}

impl DryRun {
    /// The counts of `migration`'s step.
    pub fn step(&self, migration: &str) -> Option<&Counts> {
        self.steps.iter().find(|s| s.migration.as_str() == migration).map(|s| &s.counts)
    }
}

impl fmt::Display for DryRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<44} {:>12} {:>12} {:>12} {:>12}", "step", "insert", "update", "delete", "unchanged")?;
        for step in &self.steps {
            let c = &step.counts;
            writeln!(
                f,
                "{:<44} {:>12} {:>12} {:>12} {:>12}",
                step.migration.as_str(),
                c.inserted,
                c.updated,
                c.deleted,
                c.unchanged
            )?;
        }
        Ok(())
    }
}

/// The pre-flight checks a run of `plan` makes before its first write: both databases, the
/// schemas, the foreign-key path and the target's triggers.
pub(crate) async fn preflight<S: Database, T: Database>(source: &S, target: &T, plan: &SyncPlan) -> PreflightReport {
    let mut outcomes = source.preflight(DatabaseRole::Source).await;
    outcomes.extend(target.preflight(DatabaseRole::Target).await);
    outcomes.extend(plan.schema_check().check().await);
    outcomes.extend(plan.foreign_key_check().check().await);
    if let Some(triggers) = plan.trigger_check() {
        outcomes.extend(triggers.check().await);
    }
    PreflightReport { outcomes }
}

/// Runs the pre-flight checks of a sync and counts what each of its migrations would write.
pub(crate) async fn dry_run<S: Database, T: Database>(
    source: &Arc<S>,
    target: &Arc<T>,
    plan: &SyncPlan,
    batch_size: NonZeroUsize,
) -> Result<DryRun> {
    if let SyncMode::Incremental { .. } = plan.mode {
        return Err(Error::Config(
            "a dry run of an incremental sync is not supported yet: it would need the watermark of the last run; \
             dry-run the same tables in diff mode to see every difference"
                .into(),
        ));
    }
    let mut report = DryRun { preflight: preflight(source.as_ref(), target.as_ref(), plan).await, steps: Vec::new() };
    if !report.preflight.passed() {
        return Ok(report);
    }
    let full = plan.mode == SyncMode::Full;
    let mut loads = Vec::new();
    let mut deferred = Vec::new();
    let mut deletes = Vec::new();
    let mut cleared = 0;
    for table in &plan.tables {
        // One step per key range, like the real run's migrations.
        let ranges: Vec<Option<&KeyRange>> = match table.ranges.len() {
            0 | 1 => vec![None],
            _ => table.ranges.iter().map(Some).collect(),
        };
        let mut only_target = 0;
        for (name, range) in table.load_names().into_iter().zip(ranges) {
            let load =
                compare(source, target, table, &table.columns, &loaded_columns(table), range, batch_size).await?;
            cleared += load.only_target + load.differ_compared + load.differ_elsewhere + load.same;
            only_target += load.only_target;
            let counts = match plan.mode {
                SyncMode::Full => Counts {
                    inserted: load.only_source + load.differ_compared + load.differ_elsewhere + load.same,
                    ..Counts::default()
                },
                SyncMode::Upsert => Counts {
                    inserted: load.only_source,
                    updated: load.differ_compared,
                    unchanged: load.differ_elsewhere + load.same,
                    ..Counts::default()
                },
                // Only rows that differ somewhere reach the loader.
                _ => Counts {
                    inserted: load.only_source,
                    updated: load.differ_compared,
                    unchanged: load.differ_elsewhere,
                    ..Counts::default()
                },
            };
            loads.push(step(name, table, counts));
        }
        if !table.deferred.is_empty() {
            let columns = table.fixup_columns();
            let keys = table.key.len();
            let compared: Vec<usize> = (keys..columns.len()).collect();
            let fix = compare(source, target, table, &columns, &compared, None, batch_size).await?;
            let read = fix.only_source + fix.differ_compared + fix.differ_elsewhere + fix.same;
            // After the first pass, new rows hold NULL in the deferred columns (and a full sync
            // emptied the table first).
            let updated = if full { fix.source_with_values } else { fix.only_source_with_values + fix.differ_compared };
            let counts = Counts { updated, unchanged: read - updated, ..Counts::default() };
            deferred.push(step(MigrationName::new(format!("{} (deferred keys)", table.target.name)), table, counts));
        }
        if plan.mode == SyncMode::Diff {
            let counts = Counts { deleted: only_target, ..Counts::default() };
            deletes.push(step(MigrationName::new(format!("{} (deletes)", table.target.name)), table, counts));
        }
    }
    if full {
        let counts = Counts { deleted: cleared, ..Counts::default() };
        report.steps.push(PlannedStep { migration: MigrationName::new(CLEAR), table: None, counts });
    }
    report.steps.extend(loads);
    report.steps.extend(deferred);
    if plan.catches_up() {
        // Nothing is deferred when nothing changes during the copy.
        report.steps.push(PlannedStep {
            migration: MigrationName::new(CATCH_UP),
            table: None,
            counts: Counts::default(),
        });
    }
    // The real run deletes referencing tables' rows first.
    report.steps.extend(deletes.into_iter().rev());
    if !plan.sequences.is_empty() {
        let (ours, theirs) = super::sequences::read_both(source.as_ref(), target.as_ref(), &plan.sequences).await?;
        let (moved, compared) = super::sequences::moves(&plan.sequences, &ours, &theirs)?;
        let updated = moved.len() as u64;
        report.steps.insert(
            0,
            PlannedStep {
                migration: MigrationName::new(super::SEQUENCES_BEFORE),
                table: None,
                counts: Counts { read: compared, ..Counts::default() },
            },
        );
        report.steps.push(PlannedStep {
            migration: MigrationName::new(super::SEQUENCES),
            table: None,
            counts: Counts { read: compared, updated, unchanged: compared - updated, ..Counts::default() },
        });
    }
    Ok(report)
}

fn step(migration: MigrationName, table: &TablePlan, counts: Counts) -> PlannedStep {
    PlannedStep { migration, table: Some(table.target.name.clone()), counts }
}

/// Positions (among the table's moved columns) of the columns the first pass writes and
/// compares: deferred foreign-key columns are left to the second pass.
fn loaded_columns(table: &TablePlan) -> Vec<usize> {
    let deferred = table.deferred_columns();
    table.columns.iter().enumerate().filter(|(_, c)| !deferred.contains(*c)).map(|(i, _)| i).collect()
}

async fn compare<S: Database, T: Database>(
    source: &Arc<S>,
    target: &Arc<T>,
    table: &TablePlan,
    columns: &[String],
    compared: &[usize],
    range: Option<&KeyRange>,
    batch_size: NonZeroUsize,
) -> Result<DifferenceCounts> {
    let within = |spec: super::ExtractSpec| match range {
        Some(range) => spec.within(range.clone()),
        None => spec,
    };
    let mut ours = source.extractor(within(table.extract_spec(columns, ReadOrder::Key, false)));
    let mut theirs = target.extractor(within(table.extract_spec(columns, ReadOrder::Key, true)));
    count_differences(&mut ours, &mut theirs, compared, batch_size).await
}
