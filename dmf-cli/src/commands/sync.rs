//! `dmf sync`: plan, pre-flight, the run with a progress bar per table, the closing summary
//! and the verification.

use dmf::sync::Database as _;
use std::sync::Arc;

use dmf::orchestrator::LastRun;
use dmf::{EngineConfig, HumanDuration, ProgressHub, RejectLimit, RunSummary};
use serde::Serialize;

use super::{Opened, fk_checks, rules, tuning, write_report};
use crate::cli::SyncArgs;
use crate::config::FileConfig;
use crate::exit::{CliError, CliResult, Exit};
use crate::json::{RunDoc, VerifyDoc};
use crate::output::Out;

/// The progress events kept for subscribers that fall behind (they skip the older ones).
const PROGRESS_EVENTS_KEPT: usize = 256;

#[derive(Serialize)]
struct SyncDoc<'a> {
    command: &'static str,
    source: String,
    target: String,
    mode: String,
    run: RunDoc,
    preflight: &'a dmf::orchestrator::PreflightReport,
    verification: Option<VerifyDoc<'a>>,
    exit_code: u8,
}

pub async fn run(args: SyncArgs, file: &FileConfig, out: Out) -> CliResult {
    if args.dry_run {
        return super::plan::dry_run(&args.endpoints, &args.selection, &args.tuning, file, out, &args).await;
    }
    let copy_format = args.copy_format.or(file.copy_format);
    let opened = Opened::new(&args.endpoints, &args.selection, file, copy_format).await?;
    let (batch_size, jobs) = tuning(&args.tuning, file);
    let rules = rules(&args.rules, file)?;
    let mut engine = EngineConfig::builder()
        .batch_size(batch_size)
        .reject_limit(RejectLimit::Count(args.max_rejects.or(file.max_rejects).unwrap_or(0)));
    if let Some(timeout) = args.write_timeout.or(file.duration("write_timeout", file.write_timeout.as_ref())?) {
        if timeout.is_zero() {
            return Err(CliError::usage("the write timeout must be more than zero"));
        }
        engine = engine.write_timeout(timeout);
    }
    if let Some(rate) = args.max_rows_per_sec.or(file.max_rows_per_sec) {
        engine = engine.max_rows_per_sec(rate);
    }
    let engine = engine.build()?;
    let mut lease = dmf::LeaseOptions::default();
    if let Some(wait) = args.wait_for_lease.or(file.duration("wait_for_lease", file.wait_for_lease.as_ref())?) {
        lease.wait = wait;
    }
    if let Some(ttl) = args.lease_ttl.or(file.duration("lease_ttl", file.lease_ttl.as_ref())?) {
        if ttl < std::time::Duration::from_secs(1) {
            return Err(CliError::usage("the lease TTL must be at least 1s"));
        }
        lease.ttl = ttl;
    }
    let backup = match args.backup.as_ref().or(file.backup.as_ref()) {
        Some(dir) => Some(dmf::backup(&opened.target, &target_url(&args, file)?, dir)?),
        None => None,
    };
    let snapshot = args.snapshot || file.snapshot.unwrap_or(false);
    // The snapshot is held until `source` (and every extractor made from it) is dropped.
    let source = if snapshot { Arc::new(opened.source.snapshot().await?) } else { Arc::clone(&opened.source) };
    let target = Arc::clone(&opened.target);
    let hub = ProgressHub::with_capacity(PROGRESS_EVENTS_KEPT);
    let range_readers = args
        .range_readers
        .or(file.range_readers)
        .map_or(if target.parallel_writes() { jobs } else { 1 }, |r| r as usize);
    let mut job = opened
        .job_from(Arc::clone(&source))
        .engine(engine)
        .jobs(jobs)
        .range_readers(range_readers)
        .undo(!args.no_undo && file.undo.unwrap_or(true))
        .foreign_key_checks(fk_checks(args.fk_checks, file))
        .skip_target_triggers(args.skip_target_triggers || file.skip_target_triggers.unwrap_or(false))
        .lease(lease.clone())
        .progress(hub.clone());
    if let Some(backup) = backup {
        job = job.backup(backup);
    }
    #[cfg(feature = "webhook")]
    if let Some(notifier) = notifier(&args, file)? {
        job = job.notifier(notifier);
    }
    #[cfg(not(feature = "webhook"))]
    if args.notify_webhook.is_some() || file.notify.webhook.is_some() {
        return Err(CliError::usage("webhooks are not compiled in: build dmf-cli with its `webhook` feature"));
    }
    let source_name = source.display_name();
    let target_name = target.display_name();
    out.line(format_args!("sync {source_name} -> {target_name} ({} mode)", opened.mode));
    let plan = job.plan().await?;
    super::plan::print_plan(out, &plan, target.parallel_writes());
    let orchestrator = job.orchestrator(&plan).await?;
    // One writer per target: the lease is taken before looking at what the last run left, so
    // that neither the resume nor --restart's emptying happens under another run.
    if !lease.wait.is_zero() {
        out.line(format_args!("waiting up to {} for the target's lease", humantime::format_duration(lease.wait)));
    }
    let (held, acquired) = orchestrator.acquire_lease().await?;
    if let Some(expired) = &acquired.expired {
        out.line(format_args!("took over the target's lease from {expired}: it stopped renewing it"));
    }
    for run in &acquired.abandoned {
        out.line(format_args!("run {run} did not end (its process died): marked abandoned"));
    }
    // A run resumes only the latest run, unfinished and of the same plan (mode and tables).
    let last = orchestrator.last_run().await?;
    match (&last, args.restart) {
        (LastRun::Resumable(_), false) => out.line(format_args!("{last} (--restart starts over)")),
        (LastRun::Resumable(run), true) => {
            out.line(format_args!("--restart: starting over instead of resuming run {}", run.id))
        }
        (LastRun::Different { .. }, _) => out.line(&last),
        (LastRun::Ended(_), _) => {}
    }
    let request = last.request(args.restart).with_lease(held);
    let orchestrator = Arc::new(orchestrator);
    let serving = dashboard(&args, &orchestrator, &source_name, &target_name, out).await?;
    let bars = tokio::spawn(crate::progress::show(hub.subscribe()));
    let outcome = orchestrator.run(request).await;
    if outcome.is_err() {
        bars.abort(); // the run never started: no end event will come
    }
    let _ = bars.await;
    let summary = outcome?;
    out.line(format_args!("\npre-flight:\n{}", summary.preflight));
    out.text(&summary);
    let verify = !args.no_verify && file.verify.unwrap_or(true);
    let mut report = None;
    if summary.succeeded() && verify {
        // Prove the copy: every table compared row by row with the source (the snapshot, with
        // --snapshot).
        out.line("\nverification:");
        let mut checked = dmf::quality::verify(source.as_ref(), target.as_ref(), &plan, &rules, 10).await?;
        checked.explain(&summary);
        out.text(&checked);
        out.line(checked.verdict());
        if let Some(path) = &args.report_json {
            write_report(path, &checked)?;
            out.line(format_args!("report written to {}", path.display()));
        }
        report = Some(checked);
    }
    let exit = exit_of(&summary, report.as_ref());
    match exit {
        Exit::Ok => out.line(format_args!("synced in {}", HumanDuration(summary.duration))),
        Exit::Differs => out.line("the target DIFFERS from the source or breaks a rule after the sync"),
        _ => out.line(format_args!(
            "the sync failed: run `dmf sync` again with the same settings to resume it, or `dmf rollback {}` to undo it",
            summary.run
        )),
    }
    out.document(&SyncDoc {
        command: "sync",
        source: source_name,
        target: target_name,
        mode: opened.mode.to_string(),
        run: RunDoc::of_summary(&summary),
        preflight: &summary.preflight,
        verification: report.as_ref().map(|r| VerifyDoc::of(r, r.passed_with_set_asides())),
        exit_code: exit as u8,
    })?;
    if let Some(serving) = serving {
        out.line(format_args!("the dashboard keeps serving {}; press Ctrl-C to stop", serving.0));
        serving.1.await.map_err(|e| CliError::failed(e.to_string()))?.map_err(CliError::failed)?;
    }
    Ok(exit)
}

fn exit_of(summary: &RunSummary, report: Option<&dmf::quality::QualityReport>) -> Exit {
    match (summary.succeeded(), report) {
        (false, _) => Exit::Failed,
        (true, Some(report)) if !report.passed_with_set_asides() => Exit::Differs,
        (true, _) => Exit::Ok,
    }
}

fn target_url(args: &SyncArgs, file: &FileConfig) -> CliResult<String> {
    super::target_url(&crate::cli::TargetOnly { target: args.endpoints.target.clone() }, file)
}

#[cfg(feature = "webhook")]
fn notifier(args: &SyncArgs, file: &FileConfig) -> CliResult<Option<dmf::WebhookNotifier>> {
    let Some(url) = args.notify_webhook.as_ref().or(file.notify.webhook.as_ref()) else {
        if args.notify_ca.is_some() || args.notify_insecure {
            return Err(CliError::usage("--notify-ca and --notify-insecure need a webhook (--notify-webhook URL)"));
        }
        return Ok(None);
    };
    let insecure = args.notify_insecure || file.notify.insecure.unwrap_or(false);
    let mut webhook = dmf::WebhookNotifier::builder(url).insecure_http(insecure);
    if let Some(ca) = args.notify_ca.as_ref().or(file.notify.ca.as_ref()) {
        webhook = webhook.ca_file(ca);
    }
    Ok(Some(webhook.build()?))
}

/// The dashboard's address and its server's task.
type Serving = (String, tokio::task::JoinHandle<Result<(), String>>);

#[cfg(feature = "dashboard")]
async fn dashboard(
    args: &SyncArgs,
    orchestrator: &Arc<dmf::Orchestrator>,
    source: &str,
    target: &str,
    out: Out,
) -> CliResult<Option<Serving>> {
    let Some(addr) = args.dashboard else { return Ok(None) };
    let dashboard = dmf::dashboard::Dashboard::builder(Arc::clone(orchestrator))
        .bind(addr)
        .database("source", source)
        .database("target", target)
        .title("DMF — sync")
        .prometheus()
        .build()
        .map_err(|e| CliError::failed(e.to_string()))?;
    let (url, serving) = dashboard.serve_in_background().await.map_err(|e| CliError::failed(e.to_string()))?;
    out.line(format_args!("dashboard: {url}"));
    let serving = tokio::spawn(async move {
        match serving.await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    Ok(Some((url, serving)))
}

#[cfg(not(feature = "dashboard"))]
async fn dashboard(
    args: &SyncArgs,
    _: &Arc<dmf::Orchestrator>,
    _: &str,
    _: &str,
    _: Out,
) -> CliResult<Option<Serving>> {
    match args.dashboard {
        Some(_) => Err(CliError::usage("the dashboard is not compiled in: build dmf-cli with its `dashboard` feature")),
        None => Ok(None),
    }
}
