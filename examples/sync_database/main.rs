//! # sync_database: copy a production database into a test database, in foreign-key order
//!
//! Reads both catalogs, orders the selected tables by their foreign keys, checks that the
//! target's tables match the source's (it never creates or alters a table), and moves the rows
//! table by table, independent tables at the same time. Pre-flight, the plan, a progress bar
//! per table and a closing summary are printed; the run record, checkpoints and rejects are in
//! the target's control tables (`dmf_*` in SQLite, schema `dmf` in PostgreSQL).
//!
//! A run that fails or is killed resumes where it stopped when started again with the same
//! arguments; `--restart` starts over instead.
//!
//! ```sh
//! cargo run --release --example sync_database -- --source sqlite://prod.db --target sqlite://test.db
//! cargo run --release --example sync_database -- --source postgres://reader@prod/shop \
//!     --target postgres://dmf@test/shop --tables public.customers,public.orders --mode incremental:updated_at+deletes
//! ```
//!
//! Modes: `full` (empty the target tables, then load), `upsert` (insert new rows, update rows
//! that differ), `diff` (compare both sides by key, write only the differences, deletes
//! included), `incremental:COLUMN` (rows whose COLUMN grew since the last run; add `+deletes`
//! to also delete rows gone from the source). Exits 1 when the sync fails, 2 on a bad command
//! line.

mod malloc;
mod progress;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::orchestrator::LastRun;
use dmf_core::sync::{AnyDatabase, Database, SyncJob, SyncMode, SyncPlan};
use dmf_core::{Backup, EngineConfig, ProgressHub, RejectLimit, RunSummary};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
Synchronises tables of a source database into a target database whose tables already exist.

Usage: sync_database --source URL --target URL [OPTIONS]

Options:
  --source <URL>      sqlite://PATH, postgres://USER[:PASSWORD]@HOST[:PORT]/DB, or SQL Server:
                      mssql://USER[:PASSWORD]@HOST[:PORT]/DB[?trust_server_certificate=true]
                      or an ADO.NET string (Server=HOST,1433;Database=DB;User Id=..;Password=..)
  --target <URL>      the same kinds of URL
  --tables <A,B,...>  tables to sync [default: every table of the source]
  --mode <MODE>       full | upsert | diff | incremental:COLUMN[+deletes] [default: upsert]
  --batch-size <N>    rows per batch [default: 5000]
  --jobs <N>          tables loaded at the same time [default: number of cores]
  --range-readers <N> read each large table (at least N x batch size x 10 rows) in N key
                      ranges at once, each range resumable on its own; ranges share the
                      --jobs slots with other tables [default: the --jobs value; 1
                      into SQLite, which writes one transaction at a time]
  --max-rejects <N>   rows that may be rejected before the sync stops [default: 0]
  --restart           start over instead of resuming a sync that did not complete
  --wait-for-lease <DURATION>
                      when another run holds the target (one writer per target), wait up to
                      DURATION (e.g. 30s, 10m) for it to end instead of refusing at once
                      [default: 0s]
  --write-timeout <DURATION>
                      how long one batch's write may go unanswered by the target before it is
                      abandoned and retried on a new connection (after checking whether it
                      committed); a line is printed every 30 s of silence [default: 5m]
  --lease-ttl <DURATION>
                      how long the target's lease outlives this run's last heartbeat (it is
                      renewed every third of that): a run killed without ending is taken over
                      after it [default: 30s]
  --dry-run           run pre-flight and compare both sides, then print per table, in load
                      order, the rows the sync would insert, update and delete; writes nothing
                      (not even the control tables); not for incremental mode
  --max-rows-per-sec <N>
                      read at most N rows per second in all (go easy on a production source)
  --fk-checks <HOW>   auto | per-row [default: auto]. In full mode, auto lets the loading
                      sessions skip per-row foreign-key checks when the target allows it
                      (PostgreSQL: superuser or SET on session_replication_role; SQLite: always;
                      SQL Server: ALTER on the tables, to trust the constraints again after bulk
                      loads without CHECK_CONSTRAINTS)
                      and proves every foreign key with one set-based query each afterwards;
                      an orphan fails the run, naming the foreign key and keys. Pre-flight
                      prints which path was chosen and why
  --skip-target-triggers
                      write tables whose triggers fire on the sync's writes with sessions that
                      skip them, in every mode where the target can (PostgreSQL: replica role,
                      foreign keys then proven after the load; SQL Server: full only);
                      pre-flight names every trigger that still fires, and why
  --snapshot          read every table in one consistent snapshot of the source (PostgreSQL:
                      an exported REPEATABLE READ snapshot; SQLite: one read transaction), so
                      the copy is exactly that moment's data in one pass. By default tables are
                      read in short queries with no transaction held open, and rows whose parent
                      arrived during the copy are loaded by a catch-up pass after their parents
  --rule <RULE>       with the verification: also check RULE on the target, e.g.
                      'public.orders: check(total >= 0)', 'customers: unique(email)',
                      'customers: not null(email)' (repeatable). Foreign keys (orphans) and the
                      source's NOT NULL and unique keys the target lacks are always checked
  --backup <DIR>      back the target up into DIR before the first write (SQLite: a copy of
                      the file; PostgreSQL: pg_dump -Fc; SQL Server: BACKUP ... WITH COPY_ONLY
                      into DIR on the server);
                      a rollback of a full sync restores it
  --no-undo           keep no undo log (faster; the run can then only be undone from a backup)
  --copy-format <F>   binary | text: the COPY format of a PostgreSQL target [default: binary]
  --dashboard <ADDR>  serve the web dashboard on ADDR (e.g. 127.0.0.1:8080) during the sync
                      and after it, until Ctrl-C
  --notify-webhook <URL>
                      POST the run summary as JSON to URL (https://, or http:// to this
                      machine) when the sync ends, succeeded or failed (retried 3 times,
                      10 s timeout per attempt)
  --notify-ca <FILE>  trust only the CA certificates of FILE (PEM) for the webhook's https
  --notify-insecure   allow a plain http:// webhook on another host (sent unencrypted)
  --no-verify         skip the row-by-row comparison of every table after the sync
  --verify            instead of syncing, compare every table of the source and the target
                      row by row and print the verdict (exit 0 when equal, 1 when not: a
                      table of the source or of --tables that the target lacks is a
                      difference; tables without a key or not in --tables are listed as
                      not compared). Rules run in a read-only transaction
  --report-json <F>   write the verification report (after the sync, or with --verify) as JSON
                      to F
  --rollback <RUN>    instead of syncing, roll back run RUN (or `last`) in the target from its
                      undo log, or from its backup for a full sync (give --backup DIR);
                      --source is not needed
  --force             with --rollback: even when a later run wrote to the same tables
  -h, --help          print this help";

#[derive(Debug, Clone, PartialEq)]
struct Args {
    source: String,
    target: String,
    tables: Option<Vec<TableName>>,
    mode: SyncMode,
    batch_size: usize,
    jobs: usize,
    /// `None`: as many as `jobs` (1 into SQLite).
    range_readers: Option<usize>,
    max_rejects: u64,
    restart: bool,
    dry_run: bool,
    snapshot: bool,
    fk_checks: dmf_core::sync::ForeignKeyChecks,
    skip_target_triggers: bool,
    rules: Vec<dmf_core::quality::Rule>,
    max_rows_per_sec: Option<u32>,
    undo: bool,
    copy_format: dmf_postgres::CopyFormat,
    backup: Option<std::path::PathBuf>,
    verify: bool,
    no_verify: bool,
    dashboard: Option<std::net::SocketAddr>,
    notify_webhook: Option<String>,
    notify_ca: Option<std::path::PathBuf>,
    notify_insecure: bool,
    report_json: Option<std::path::PathBuf>,
    rollback: Option<Option<dmf_core::RunId>>,
    force: bool,
    /// How the target's lease is held and waited for.
    lease: dmf_core::LeaseOptions,
    /// How long one batch's write may go unanswered.
    write_timeout: std::time::Duration,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut source = None;
    let mut target = None;
    let mut parsed = Args {
        source: String::new(),
        target: String::new(),
        tables: None,
        mode: SyncMode::Upsert,
        batch_size: 5000,
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        range_readers: None,
        max_rejects: 0,
        restart: false,
        dry_run: false,
        snapshot: false,
        fk_checks: dmf_core::sync::ForeignKeyChecks::Auto,
        skip_target_triggers: false,
        rules: Vec::new(),
        max_rows_per_sec: None,
        undo: true,
        copy_format: dmf_postgres::CopyFormat::default(),
        backup: None,
        verify: false,
        no_verify: false,
        dashboard: None,
        notify_webhook: None,
        notify_ca: None,
        notify_insecure: false,
        report_json: None,
        rollback: None,
        force: false,
        lease: dmf_core::LeaseOptions::default(),
        write_timeout: dmf_core::engine::DEFAULT_WRITE_TIMEOUT,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("`{flag}` needs a value"));
        let number =
            |text: String| text.parse::<usize>().map_err(|_| format!("`{flag}` expects a whole number, got `{text}`"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--source" => source = Some(value()?),
            "--target" => target = Some(value()?),
            "--tables" => {
                parsed.tables = Some(value()?.split(',').filter(|t| !t.is_empty()).map(TableName::parse).collect())
            }
            "--mode" => parsed.mode = value()?.parse().map_err(|e: dmf_core::Error| e.to_string())?,
            "--batch-size" => parsed.batch_size = number(value()?)?.max(1),
            "--jobs" => parsed.jobs = number(value()?)?.max(1),
            "--range-readers" => parsed.range_readers = Some(number(value()?)?.max(1)),
            "--max-rejects" => parsed.max_rejects = number(value()?)? as u64,
            "--restart" => parsed.restart = true,
            "--wait-for-lease" => parsed.lease.wait = duration(&flag, value()?)?,
            "--write-timeout" => {
                parsed.write_timeout = duration(&flag, value()?)?;
                if parsed.write_timeout.is_zero() {
                    return Err("`--write-timeout` must be more than zero".into());
                }
            }
            "--lease-ttl" => {
                parsed.lease.ttl = duration(&flag, value()?)?;
                if parsed.lease.ttl < std::time::Duration::from_secs(1) {
                    return Err("`--lease-ttl` must be at least 1s".into());
                }
            }
            "--dry-run" => parsed.dry_run = true,
            "--snapshot" => parsed.snapshot = true,
            "--fk-checks" => parsed.fk_checks = value()?.parse().map_err(|e: dmf_core::Error| e.to_string())?,
            "--skip-target-triggers" => parsed.skip_target_triggers = true,
            "--rule" => parsed.rules.push(value()?.parse().map_err(|e: dmf_core::Error| e.to_string())?),
            "--max-rows-per-sec" => {
                let rate = number(value()?)?;
                parsed.max_rows_per_sec =
                    Some(u32::try_from(rate).ok().filter(|r| *r > 0).ok_or("`--max-rows-per-sec` expects 1 or more")?);
            }
            "--no-undo" => parsed.undo = false,
            "--copy-format" => parsed.copy_format = value()?.parse().map_err(|e: dmf_core::Error| e.to_string())?,
            "--backup" => parsed.backup = Some(value()?.into()),
            "--verify" => parsed.verify = true,
            "--no-verify" => parsed.no_verify = true,
            "--dashboard" => {
                let addr = value()?;
                parsed.dashboard =
                    Some(addr.parse().map_err(|_| format!("`--dashboard` expects HOST:PORT, got `{addr}`"))?);
            }
            "--notify-webhook" => parsed.notify_webhook = Some(value()?),
            "--notify-ca" => parsed.notify_ca = Some(value()?.into()),
            "--notify-insecure" => parsed.notify_insecure = true,
            "--report-json" => parsed.report_json = Some(value()?.into()),
            "--force" => parsed.force = true,
            "--rollback" => {
                parsed.rollback = Some(match value()?.as_str() {
                    "last" => None,
                    id => Some(dmf_core::RunId(
                        id.parse().map_err(|_| format!("`--rollback` takes `last` or a run id, got `{id}`"))?,
                    )),
                })
            }
            // The argument may be a URL (`--sorce=postgres://u:pw@h/db`): shown redacted.
            _ => return Err(format!("unknown argument `{}`", dmf_core::redact_secrets(&arg))),
        }
    }
    parsed.target = target.ok_or("`--target URL` is required")?;
    parsed.source = match (source, &parsed.rollback) {
        (Some(source), _) => source,
        // A rollback needs only the target.
        (None, Some(_)) => parsed.target.clone(),
        (None, None) => return Err("`--source URL` is required".into()),
    };
    Ok(Some(parsed))
}

/// A duration on the command line (`30s`, `10m`, `1h 30m`).
fn duration(flag: &str, text: String) -> Result<std::time::Duration, String> {
    humantime::parse_duration(&text)
        .map_err(|e| format!("`{flag}` expects a duration such as 30s or 10m, got `{text}`: {e}"))
}

/// The progress events kept for subscribers that fall behind (they skip the older ones).
const PROGRESS_EVENTS_KEPT: usize = 256;

fn main() -> ExitCode {
    // Before the runtime's threads exist: each picks its malloc arena at its first allocation.
    malloc::tune();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::WARN.into()).from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match open_and_sync(&args).await {
        Ok(summary) if summary.succeeded() || summary.status == dmf_core::RunStatus::RolledBack => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {}", dmf_core::error_chain(&*error));
            ExitCode::FAILURE
        }
    }
}

async fn open_and_sync(args: &Args) -> Result<RunSummary, BoxError> {
    // Any kind of database on either side, chosen by its URL: one code path for every pair.
    let options = dmf::OpenOptions::new().copy_format(args.copy_format);
    let target = Arc::new(options.open(&args.target).await?);
    let backup = match &args.backup {
        Some(dir) => Some(dmf::backup(&target, &args.target, dir)?),
        None => None,
    };
    let source = Arc::new(options.open(&args.source).await?);
    sync(args, source, target, backup).await
}

async fn sync(
    args: &Args,
    source: Arc<AnyDatabase>,
    target: Arc<AnyDatabase>,
    backup: Option<Arc<dyn Backup>>,
) -> Result<RunSummary, BoxError> {
    if let Some(run) = args.rollback {
        return rollback(args, target, run, backup).await;
    }
    if args.verify {
        return verify(args, source, target).await;
    }
    let mut engine = EngineConfig::builder()
        .batch_size(args.batch_size)
        .reject_limit(RejectLimit::Count(args.max_rejects))
        .write_timeout(args.write_timeout);
    if let Some(rate) = args.max_rows_per_sec {
        engine = engine.max_rows_per_sec(rate);
    }
    let engine = engine.build()?;
    // The snapshot is held until `source` (and every extractor made from it) is dropped.
    let source = if args.snapshot { Arc::new(source.snapshot().await?) } else { source };
    // The ring keeps its last events in memory until they are overwritten: 4,096 by default, so
    // that a run's peak RSS grew with its number of batches until the ring was full (about 1 MiB
    // more at 1M customers than at 200k). The bars and the dashboard only need the latest.
    let hub = ProgressHub::with_capacity(PROGRESS_EVENTS_KEPT);
    let mut job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), args.mode.clone())
        .engine(engine)
        .jobs(args.jobs)
        .range_readers(args.range_readers.unwrap_or(if target.parallel_writes() { args.jobs } else { 1 }))
        .undo(args.undo)
        .foreign_key_checks(args.fk_checks)
        .skip_target_triggers(args.skip_target_triggers)
        .lease(args.lease.clone())
        .progress(hub.clone());
    if let Some(tables) = &args.tables {
        job = job.tables(tables.clone());
    }
    if let Some(backup) = backup {
        job = job.backup(backup);
    }
    if let Some(url) = &args.notify_webhook {
        let mut webhook = dmf_core::WebhookNotifier::builder(url).insecure_http(args.notify_insecure);
        if let Some(ca) = &args.notify_ca {
            webhook = webhook.ca_file(ca);
        }
        job = job.notifier(webhook.build()?);
    }
    println!("sync {} -> {} ({} mode)", source.display_name(), target.display_name(), args.mode);
    let plan = job.plan().await?;
    print_plan(&plan, target.parallel_writes());
    if args.dry_run {
        return dry_run(&job).await;
    }
    let orchestrator = job.orchestrator(&plan).await?;
    // One writer per target: the lease is taken before looking at what the last run left, so
    // that neither the resume nor --restart's emptying happens under another run.
    if !args.lease.wait.is_zero() {
        println!("waiting up to {} for the target's lease", humantime::format_duration(args.lease.wait));
    }
    let (lease, acquired) = orchestrator.acquire_lease().await?;
    if let Some(expired) = &acquired.expired {
        println!("took over the target's lease from {expired}: it stopped renewing it");
    }
    for run in &acquired.abandoned {
        println!("run {run} did not end (its process died): marked abandoned");
    }
    // A run resumes only the latest run, unfinished and of the same plan (mode and tables).
    let last = orchestrator.last_run().await?;
    match (&last, args.restart) {
        (LastRun::Resumable(_), false) => println!("{last} (--restart starts over)"),
        (LastRun::Resumable(run), true) => println!("--restart: starting over instead of resuming run {}", run.id),
        (LastRun::Different { .. }, _) => println!("{last}"),
        (LastRun::Ended(_), _) => {}
    }
    let request = last.request(args.restart);
    let request = request.with_lease(lease);
    let orchestrator = Arc::new(orchestrator);
    let serving = match args.dashboard {
        Some(addr) => {
            let dashboard = dmf_dashboard::Dashboard::builder(Arc::clone(&orchestrator))
                .bind(addr)
                .database("source", source.display_name())
                .database("target", target.display_name())
                .title("DMF — sync")
                .prometheus()
                .build()?;
            Some(dashboard.serve_in_background().await?)
        }
        None => None,
    };
    let bars = tokio::spawn(progress::show(hub.subscribe()));
    let outcome = orchestrator.run(request).await;
    if outcome.is_err() {
        bars.abort(); // the run never started: no end event will come
    }
    let _ = bars.await;
    let mut summary = outcome?;
    println!("\npre-flight:\n{}", summary.preflight);
    print!("{summary}");
    if summary.succeeded() && !args.no_verify {
        // Prove the copy: every table compared row by row with the source.
        println!("\nverification:");
        // With --snapshot, `source` is the snapshot: the copy is compared with it.
        let mut report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &args.rules, 10).await?;
        report.explain(&summary);
        print!("{report}");
        if let Some(path) = &args.report_json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            println!("report written to {}", path.display());
        }
        if !report.passed_with_set_asides() {
            println!("the target DIFFERS from the source or breaks a rule after the sync");
            summary.status = dmf_core::RunStatus::Failed;
        }
    }
    if let Some((url, serving)) = serving {
        println!("the dashboard keeps serving {url}; press Ctrl-C to stop");
        serving.await??;
    }
    Ok(summary)
}

/// Prints pre-flight and what each step would write; writes nothing.
async fn dry_run(job: &SyncJob<AnyDatabase, AnyDatabase>) -> Result<RunSummary, BoxError> {
    let report = job.dry_run().await?;
    println!("\npre-flight:\n{}", report.preflight);
    let passed = report.preflight.passed();
    if passed {
        println!("dry run: nothing was written; the sync would do, step by step:\n{report}");
    } else {
        println!("dry run: pre-flight failed, so the sync would not start");
    }
    Ok(verdict(passed))
}

/// A summary of no run whose status is the verdict of a check (dry run, verification).
fn verdict(passed: bool) -> RunSummary {
    RunSummary {
        run: dmf_core::RunId(0),
        status: if passed { dmf_core::RunStatus::Completed } else { dmf_core::RunStatus::Failed },
        migrations: Vec::new(),
        preflight: Default::default(),
        backup: None,
        duration: std::time::Duration::ZERO,
        error: None,
    }
}

/// Compares source and target table by table; a summary whose status says the verdict.
async fn verify(args: &Args, source: Arc<AnyDatabase>, target: Arc<AnyDatabase>) -> Result<RunSummary, BoxError> {
    let mut job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), args.mode.clone());
    if let Some(tables) = &args.tables {
        job = job.tables(tables.clone());
    }
    let plan = job.plan().await?;
    println!("verify {} against {}:", target.display_name(), source.display_name());
    let report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &args.rules, 10).await?;
    print!("{report}");
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("report written to {}", path.display());
    }
    println!("{}", report.verdict());
    Ok(verdict(report.passed()))
}

/// Rolls back a run from the target's undo log and prints what was undone.
async fn rollback(
    args: &Args,
    target: Arc<AnyDatabase>,
    run: Option<dmf_core::RunId>,
    backup: Option<Arc<dyn Backup>>,
) -> Result<RunSummary, BoxError> {
    let mut job = SyncJob::new(Arc::clone(&target), Arc::clone(&target), SyncMode::Diff).lease(args.lease.clone());
    if let Some(backup) = backup {
        job = job.backup(backup);
    }
    let (run, undone) = job.rollback(run, args.force).await?;
    println!("rolled back run {run} in {}, in reverse dependency order:", target.display_name());
    for (migration, _, report) in &undone.undone {
        println!("  {migration}: {} inserted rows deleted, {} rows restored", report.deleted, report.restored);
    }
    let store = target.run_store().await?;
    let record = store.run(run).await?.ok_or("the rolled-back run has no record")?;
    Ok(RunSummary {
        run,
        status: record.status,
        migrations: store.migration_records(run).await?,
        preflight: Default::default(),
        backup: record.backup,
        duration: std::time::Duration::ZERO,
        error: None,
    })
}

fn print_plan(plan: &SyncPlan, parallel_writes: bool) {
    println!("plan, in load order:");
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
        println!("  {}  key ({}){after}{ranges}", table.target.name, table.key.join(", "));
        if !table.deferred.is_empty() {
            deferred.insert(table.target.name.to_string(), table.deferred_columns().into_iter().collect());
        }
    }
    for (table, columns) in deferred {
        println!("  {table}: {} loaded as NULL first, filled by a second pass (foreign-key cycle)", columns.join(", "));
    }
    for skipped in plan.skipped.iter().filter(|s| s.reason != dmf_core::sync::SkipReason::NotSelected) {
        println!("  {}: not synced ({})", skipped.table, skipped.reason);
    }
    println!("FK checks: {}", plan.foreign_keys.detail);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn a_mistyped_flag_holding_a_url_is_shown_without_its_password() {
        let error = parse(&["--sorce=postgres://u:S3cret@h/db", "--target=b"]).unwrap_err();
        assert_eq!(error, "unknown argument `--sorce=postgres://u:***@h/db`");
        let error = parse(&["--target=b", "Server=h;User Id=sa;Password=S3cret;"]).unwrap_err();
        assert_eq!(error, "unknown argument `Server=h;User Id=sa;Password=***;`");
    }

    #[test]
    fn arguments() {
        let args =
            parse(&["--source", "sqlite://a.db", "--target=sqlite://b.db", "--tables", "public.a,b", "--mode", "diff"])
                .unwrap()
                .unwrap();
        assert_eq!(args.tables, Some(vec![TableName::parse("public.a"), TableName::parse("b")]));
        assert_eq!(args.mode, SyncMode::Diff);
        assert_eq!(parse(&["--target", "x"]), Err("`--source URL` is required".into()));
        let args = parse(&[
            "--source=a",
            "--target=b",
            "--dry-run",
            "--max-rows-per-sec",
            "500",
            "--notify-webhook",
            "http://127.0.0.1:9/hook",
        ])
        .unwrap()
        .unwrap();
        assert!(args.dry_run);
        assert_eq!(args.max_rows_per_sec, Some(500));
        assert_eq!(args.notify_webhook.as_deref(), Some("http://127.0.0.1:9/hook"));
        assert!(!args.notify_insecure && args.notify_ca.is_none());
        let args = parse(&[
            "--source=a",
            "--target=b",
            "--notify-webhook=http://hooks.internal/dmf",
            "--notify-insecure",
            "--notify-ca",
            "/etc/ca.pem",
        ])
        .unwrap()
        .unwrap();
        assert!(args.notify_insecure);
        assert_eq!(args.notify_ca, Some(std::path::PathBuf::from("/etc/ca.pem")));
        assert!(parse(&["--source=a", "--target=b", "--max-rows-per-sec=0"]).unwrap_err().contains("1 or more"));
        let args = parse(&["--source=a", "--target=b", "--snapshot", "--rule", "public.orders: check(total >= 0)"])
            .unwrap()
            .unwrap();
        assert!(args.snapshot);
        assert_eq!(args.rules.len(), 1);
        assert_eq!(args.copy_format, dmf_postgres::CopyFormat::Binary);
        let args = parse(&["--source=a", "--target=b", "--copy-format", "text"]).unwrap().unwrap();
        assert_eq!(args.copy_format, dmf_postgres::CopyFormat::Text);
        assert!(parse(&["--source=a", "--target=b", "--copy-format=csv"]).unwrap_err().contains("unknown COPY format"));
        assert!(parse(&["--source=a", "--target=b", "--rule", "orders total >= 0"]).is_err());
        let args = parse(&["--source=a", "--target=b", "--fk-checks", "per-row"]).unwrap().unwrap();
        assert_eq!(args.fk_checks, dmf_core::sync::ForeignKeyChecks::PerRow);
        assert!(parse(&["--source=a", "--target=b", "--fk-checks", "never"]).unwrap_err().contains("auto or per-row"));
        assert_eq!(
            parse(&["--source=a", "--target=b", "--range-readers", "4"]).unwrap().unwrap().range_readers,
            Some(4)
        );
        assert_eq!(parse(&["--source=a", "--target=b"]).unwrap().unwrap().range_readers, None, "as many as --jobs");
        assert!(
            parse(&["--source", "a", "--target", "b", "--mode", "merge"]).unwrap_err().contains("unknown sync mode")
        );
    }
}
