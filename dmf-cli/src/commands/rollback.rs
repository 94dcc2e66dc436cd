//! `dmf rollback RUN|last`: undo a run in the target from its undo log (or, for a full sync,
//! from its backup), table by table in reverse dependency order. Needs only the target.

use std::sync::Arc;

use dmf::RunId;
use dmf::sync::{Database, SyncJob, SyncMode};
use serde::Serialize;

use super::{open, target_url};
use crate::cli::{RollbackArgs, RunRef};
use crate::config::FileConfig;
use crate::exit::{CliError, CliResult, Exit};
use crate::json::RunDoc;
use crate::output::Out;

#[derive(Serialize)]
struct Document {
    command: &'static str,
    target: String,
    run: RunDoc,
    undone: Vec<Undone>,
}

#[derive(Serialize)]
struct Undone {
    migration: String,
    deleted: u64,
    restored: u64,
}

pub async fn run(args: RollbackArgs, file: &FileConfig, out: Out) -> CliResult {
    let url = target_url(&args.target, file)?;
    let target = open(&url, None).await?;
    let mut lease = dmf::LeaseOptions::default();
    if let Some(wait) = args.wait_for_lease {
        lease.wait = wait;
    }
    let mut job = SyncJob::new(Arc::clone(&target), Arc::clone(&target), SyncMode::Diff).lease(lease);
    if let Some(dir) = args.backup.as_ref().or(file.backup.as_ref()) {
        job = job.backup(dmf::backup(&target, &url, dir)?);
    }
    let wanted = match args.run {
        RunRef::Last => None,
        RunRef::Id(id) => Some(RunId(id)),
    };
    let (run, undone) = job.rollback(wanted, args.force).await?;
    let name = target.display_name();
    out.line(format_args!("rolled back run {run} in {name}, in reverse dependency order:"));
    for (migration, _, report) in &undone.undone {
        out.line(format_args!(
            "  {migration}: {} inserted rows deleted, {} rows restored",
            report.deleted, report.restored
        ));
    }
    let store = target.run_store().await?;
    let record = store.run(run).await?.ok_or_else(|| CliError::failed(format!("run {run} has no record")))?;
    let migrations = store.migration_records(run).await?;
    out.line(format_args!("run {run} is now {}", record.status));
    out.document(&Document {
        command: "rollback",
        target: name,
        run: RunDoc::of_record(&record, &migrations),
        undone: undone
            .undone
            .iter()
            .map(|(m, _, r)| Undone { migration: m.to_string(), deleted: r.deleted, restored: r.restored })
            .collect(),
    })?;
    Ok(Exit::Ok)
}
