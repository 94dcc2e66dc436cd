//! `dmf runs`: the runs recorded in a target's control tables, by any process; `dmf runs show
//! N` with its tables, counts, error and rejects.

use std::time::Duration;

use dmf::orchestrator::{RejectRecord, RunRecord, RunStore};
use dmf::sync::Database;
use dmf::{HumanDuration, RunId};
use serde::Serialize;

use super::{open, target_url};
use crate::cli::{RunRef, RunsArgs, RunsCommand};
use crate::config::FileConfig;
use crate::exit::{CliError, CliResult, Exit};
use crate::json::{RunDoc, time};
use crate::output::Out;

#[derive(Serialize)]
struct ListDoc {
    command: &'static str,
    target: String,
    runs: Vec<RunDoc>,
}

#[derive(Serialize)]
struct ShowDoc {
    command: &'static str,
    target: String,
    run: RunDoc,
    rejects: Vec<RejectRecord>,
}

pub async fn run(args: RunsArgs, file: &FileConfig, out: Out) -> CliResult {
    let target = open(&target_url(&args.target, file)?, None).await?;
    let store = target.run_store().await?;
    let name = target.display_name();
    match args.show {
        None => list(&*store, name, args.limit, out).await,
        Some(RunsCommand::Show { run, rejects }) => show(&*store, name, run, rejects, out).await,
    }
}

async fn list(store: &dyn RunStore, target: String, limit: usize, out: Out) -> CliResult {
    let records = store.runs(limit).await?;
    let mut runs = Vec::with_capacity(records.len());
    for record in &records {
        runs.push(RunDoc::of_record(record, &store.migration_records(record.id).await?));
    }
    out.line(format_args!("runs of {target}, newest first:"));
    out.line(format_args!(
        "{:>5}  {:<11}  {:<20}  {:>10}  {:>10}  {:>10}  {:>9}  {:>9}  {:>8}  host",
        "run", "status", "started (UTC)", "duration", "read", "inserted", "updated", "deleted", "rejected"
    ));
    for (record, doc) in records.iter().zip(&runs) {
        let t = &doc.totals;
        out.line(format_args!(
            "{:>5}  {:<11}  {:<20}  {:>10}  {:>10}  {:>10}  {:>9}  {:>9}  {:>8}  {}",
            record.id,
            record.status.to_string(),
            time(record.started_at),
            duration(record),
            t.read,
            t.inserted,
            t.updated,
            t.deleted,
            t.rejected,
            record.host
        ));
        if let Some(error) = &record.error {
            out.line(format_args!("       error: {}", first_line(error)));
        }
    }
    if records.is_empty() {
        out.line("  (no runs recorded)");
    }
    out.document(&ListDoc { command: "runs", target, runs })?;
    Ok(Exit::Ok)
}

async fn show(store: &dyn RunStore, target: String, run: RunRef, limit: usize, out: Out) -> CliResult {
    let record = match run {
        RunRef::Last => store.runs(1).await?.into_iter().next(),
        RunRef::Id(id) => store.run(RunId(id)).await?,
    };
    let record = record.ok_or_else(|| match run {
        RunRef::Last => CliError::usage(format!("{target} has no runs recorded")),
        RunRef::Id(id) => CliError::usage(format!("{target} has no run {id} (`dmf runs` lists them)")),
    })?;
    let migrations = store.migration_records(record.id).await?;
    let rejects = store.rejects(record.id, None, limit, 0).await?;
    out.line(format_args!(
        "run {} on {}: {}, started {} on {}, took {}",
        record.id,
        target,
        record.status,
        time(record.started_at),
        record.host,
        duration(&record)
    ));
    if let Some(backup) = &record.backup {
        out.line(format_args!("backup: {} ({})", backup.location, backup.method));
    }
    out.line(format_args!(
        "{:<36} {:<11} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8} {:>10}",
        "table", "status", "read", "inserted", "updated", "deleted", "skipped", "rejected", "duration"
    ));
    for m in &migrations {
        let c = &m.counts;
        out.line(format_args!(
            "{:<36} {:<11} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8} {:>10}",
            m.migration.as_str(),
            m.status.to_string(),
            c.read,
            c.inserted,
            c.updated,
            c.deleted,
            c.skipped,
            c.rejected,
            HumanDuration(m.duration).to_string()
        ));
        if let Some(error) = &m.error {
            out.line(format_args!("    {}", first_line(error)));
        }
    }
    if let Some(error) = &record.error {
        out.line(format_args!("error: {error}"));
    }
    if !rejects.is_empty() {
        out.line(format_args!("rejects (first {}):", rejects.len()));
        for r in &rejects {
            out.line(format_args!("  {} key {}: {}", r.migration, r.reject.key, r.reject.reason));
        }
    }
    out.document(&ShowDoc { command: "runs show", target, run: RunDoc::of_record(&record, &migrations), rejects })?;
    Ok(Exit::Ok)
}

fn duration(record: &RunRecord) -> String {
    match record.finished_at.and_then(|end| end.duration_since(record.started_at).ok()) {
        Some(took) => HumanDuration(took).to_string(),
        None if record.status == dmf::RunStatus::Running => "running".into(),
        None => HumanDuration(Duration::ZERO).to_string(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
