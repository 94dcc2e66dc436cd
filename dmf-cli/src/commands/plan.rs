//! `dmf plan` (and `dmf sync --dry-run`): pre-flight, the schema differences, the load order
//! and what each step would write, writing nothing (not even the control tables).

use dmf::sync::Database as _;
use std::collections::BTreeMap;

use dmf::catalog::SchemaDiff;
use dmf::orchestrator::PreflightReport;
use dmf::sync::{PlannedStep, SkipReason, SyncMode, SyncPlan};
use serde::Serialize;

use super::{Opened, fk_checks, tuning};
use crate::cli::{Endpoints, FkChecks, PlanArgs, Selection, SyncArgs, Tuning};
use crate::config::FileConfig;
use crate::exit::{CliResult, Exit};
use crate::output::Out;

#[derive(Serialize)]
struct PlanDoc<'a> {
    command: &'static str,
    source: String,
    target: String,
    mode: String,
    passed: bool,
    tables: Vec<PlannedTable>,
    skipped: Vec<Skipped>,
    schema_diff: &'a SchemaDiff,
    foreign_keys: &'a str,
    preflight: &'a PreflightReport,
    /// What each step would write; `None` when not counted (--no-counts, incremental mode, or
    /// pre-flight failed).
    steps: Option<&'a [PlannedStep]>,
}

#[derive(Serialize)]
struct PlannedTable {
    table: String,
    key: Vec<String>,
    after: Vec<String>,
    key_ranges: usize,
    deferred_columns: Vec<String>,
}

#[derive(Serialize)]
struct Skipped {
    table: String,
    reason: SkipReason,
    why: String,
}

/// What the plan needs beyond the databases.
struct Options {
    batch_size: usize,
    fk_checks: Option<FkChecks>,
    skip_target_triggers: bool,
    counts: bool,
}

pub async fn run(args: PlanArgs, file: &FileConfig, out: Out) -> CliResult {
    let options = Options {
        batch_size: tuning(&args.tuning, file).0,
        fk_checks: args.fk_checks,
        skip_target_triggers: args.skip_target_triggers,
        counts: !args.no_counts,
    };
    plan(&args.endpoints, &args.selection, file, out, options).await
}

/// `dmf sync --dry-run`: the plan of that sync, with its counts.
pub async fn dry_run(
    endpoints: &Endpoints,
    selection: &Selection,
    tuning_args: &Tuning,
    file: &FileConfig,
    out: Out,
    args: &SyncArgs,
) -> CliResult {
    let options = Options {
        batch_size: tuning(tuning_args, file).0,
        fk_checks: args.fk_checks,
        skip_target_triggers: args.skip_target_triggers,
        counts: true,
    };
    plan(endpoints, selection, file, out, options).await
}

async fn plan(
    endpoints: &Endpoints,
    selection: &Selection,
    file: &FileConfig,
    out: Out,
    options: Options,
) -> CliResult {
    let opened = Opened::new(endpoints, selection, file, None).await?;
    let engine = dmf::EngineConfig::builder().batch_size(options.batch_size).build()?;
    let job = opened
        .job()
        .engine(engine)
        .foreign_key_checks(fk_checks(options.fk_checks, file))
        .skip_target_triggers(options.skip_target_triggers || file.skip_target_triggers.unwrap_or(false));
    let source = opened.source.display_name();
    let target = opened.target.display_name();
    out.line(format_args!("plan: {source} -> {target} ({} mode); nothing is written", opened.mode));
    let counted = options.counts && !matches!(opened.mode, SyncMode::Incremental { .. });
    let (plan, preflight) = job.preflight().await?;
    print_plan(out, &plan, opened.target.parallel_writes());
    if !plan.diff.items.is_empty() {
        out.text(format_args!("schema differences:\n{}", plan.diff));
    }
    out.line(format_args!("\npre-flight:\n{preflight}"));
    let passed = preflight.passed();
    let dry_run = match (passed, counted) {
        (true, true) => Some(job.dry_run().await?),
        _ => None,
    };
    match (&dry_run, passed) {
        (Some(report), _) => out.text(format_args!("the sync would do, step by step:\n{report}")),
        (None, false) => out.line("pre-flight failed: the sync would not start"),
        (None, true) if options.counts => {
            out.line("row counts: not available in incremental mode (they need the last run's watermark)")
        }
        (None, true) => {}
    }
    let document = PlanDoc {
        command: "plan",
        source,
        target,
        mode: opened.mode.to_string(),
        passed,
        tables: plan
            .tables
            .iter()
            .map(|t| PlannedTable {
                table: t.target.name.to_string(),
                key: t.key.clone(),
                after: t.after.iter().map(ToString::to_string).collect(),
                key_ranges: t.ranges.len().max(1),
                deferred_columns: t.deferred_columns().into_iter().collect(),
            })
            .collect(),
        skipped: plan
            .skipped
            .iter()
            .map(|s| Skipped { table: s.table.to_string(), reason: s.reason, why: s.reason.to_string() })
            .collect(),
        schema_diff: &plan.diff,
        foreign_keys: &plan.foreign_keys.detail,
        preflight: &preflight,
        steps: dry_run.as_ref().map(|d| d.steps.as_slice()),
    };
    out.document(&document)?;
    Ok(if passed { Exit::Ok } else { Exit::Differs })
}

/// The load order, deferred columns, tables not synced and the foreign-key path.
pub fn print_plan(out: Out, plan: &SyncPlan, parallel_writes: bool) {
    out.line("plan, in load order:");
    let mut deferred: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for table in &plan.tables {
        let after: Vec<String> = table.after.iter().map(ToString::to_string).collect();
        let waits = !table.waits_for(parallel_writes).is_empty();
        let after = match (after.is_empty(), waits) {
            (true, _) => String::new(),
            (false, true) => format!(", after {}", after.join(", ")),
            (false, false) => format!(", beside {}", after.join(", ")),
        };
        let ranges = match table.ranges.len() {
            0 | 1 => String::new(),
            n => format!(", in {n} key ranges"),
        };
        out.line(format_args!("  {}  key ({}){after}{ranges}", table.target.name, table.key.join(", ")));
        if !table.deferred.is_empty() {
            deferred.insert(table.target.name.to_string(), table.deferred_columns().into_iter().collect());
        }
    }
    for (table, columns) in deferred {
        out.line(format_args!(
            "  {table}: {} loaded as NULL first, filled by a second pass (foreign-key cycle)",
            columns.join(", ")
        ));
    }
    for skipped in plan.skipped.iter().filter(|s| s.reason != SkipReason::NotSelected) {
        let hint = match skipped.reason {
            SkipReason::NoKey => " (--exclude it to leave it out on purpose)",
            _ => "",
        };
        out.line(format_args!("  {}: not synced ({}){hint}", skipped.table, skipped.reason));
    }
    out.line(format_args!("FK checks: {}", plan.foreign_keys.detail));
}
