//! # Customer migration: legacy customers into a new schema, on SQLite by default
//!
//! On its first run it creates `legacy.db` in `--dir` (default `./dmf-demo`) with 100,000
//! generated legacy customers (about 2 % dirty: bad emails, duplicate emails, unparseable
//! phones, blank names) and `modern.db` with the new `customers` table, then migrates one into
//! the other (`--source`/`--target` take `sqlite://PATH` or `postgres://…` URLs instead;
//! tables missing there are created the same way). `modern.db`'s control tables (`dmf_runs`, `dmf_rejects`…) keep the run record
//! and the reject quarantine. It shows:
//!
//! - a [`Transformer`](dmf_core::Transformer) with real business rules (tiers, E.164 phones,
//!   address parsing, name splitting) and validation [`Rules`](dmf_core::Rules), in
//!   `customers.rs`, which knows nothing about storage;
//! - typed records (`LegacyCustomer`, `ModernCustomer`) read and written by name
//!   (`source.source::<LegacyCustomer>("legacy_customers")`, `target.target::<ModernCustomer>
//!   ("customers")`, [`dmf_core::typed`]);
//! - rows already in the target skipped by the target itself (`insert_or_skip`, nothing read
//!   into memory first), unparseable rows rejected by the transformer, invalid rows rejected by
//!   validation, duplicate emails refused by the target's UNIQUE constraint (the loader isolates
//!   each refused row inside its batch's transaction, so only the duplicates are rejected and
//!   no batch is sent twice);
//! - an [`Orchestrator`] run with pre-flight, a reject limit, a progress bar fed by
//!   [`ProgressEvent`]s and a closing summary with the reject quarantine. Run it again and the
//!   completed migration is skipped (`--force` runs it again: every row is then "already
//!   migrated"); kill it half-way and the next run resumes from its checkpoint.
//!
//! ```sh
//! cargo run --release --example customer_migration
//! cargo run --release --example customer_migration -- --dir /tmp/demo --rows 1000000 --batch-size 5000
//! RUST_LOG=dmf_core=debug cargo run --example customer_migration -- --rows 2000
//! ```
//!
//! Exits with 1 when the run fails, 2 on a bad command line.

mod customers;
mod storage;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use std::path::PathBuf;

use dmf_core::sync::{AnyDatabase, Database, DatabaseCheck, DatabaseRole};
use dmf_core::typed::TypedDatabase;
use dmf_core::{
    EngineConfig, LogNotifier, Orchestrator, Phase, Pipeline, ProgressEvent, RejectLimit, RejectRecord, RollbackTarget,
    RunId, RunRequest, RunStatus, RunStore, RunSummary, Stage,
};
use dmf_testkit::{LegacyCustomer, LegacyGenerator};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use customers::{CustomerTransformer, ModernCustomer, customer_rules};
use storage::BoxError;

const USAGE: &str = "\
Migrates legacy customers into the new customer schema (SQLite files by default).

Usage: customer_migration [OPTIONS]

Options:
  --dir <DIR>       where legacy.db and modern.db live [default: ./dmf-demo]
  --source <URL>    the legacy database: sqlite://PATH or postgres://USER@HOST/DB
                    [default: sqlite://DIR/legacy.db]
  --target <URL>    the new database [default: sqlite://DIR/modern.db]
  --rows <N>        legacy customers to generate [default: 100000]
  --seed <S>        seed of the generator [default: 42]
  --batch-size <B>  rows per batch [default: 1000]
  --force           migrate again even if the last run completed; with --rollback, roll back
                    even when a later run wrote to the same table
  --no-undo         keep no undo log (the run can then not be rolled back row by row)
  --rollback <RUN>  instead of migrating, roll back run RUN (or `last`) from the undo log
  --dashboard <ADDR>  serve the web dashboard on ADDR (e.g. 127.0.0.1:8080) during the run
                    and after it, until Ctrl-C
  --notify-webhook <URL>
                    POST the run summary as JSON to URL (https://, or http:// to this machine)
                    when the run ends, whether it succeeded or failed (retried 3 times, 10 s
                    timeout per attempt)
  -h, --help        print this help

Logs go to stderr at WARN; set RUST_LOG (e.g. RUST_LOG=dmf_core=debug) for more.";

/// Legacy ids `1..=PRESEEDED` are migrated when the target is created, so the run has
/// something to skip.
const PRESEEDED: i64 = 50;

/// How many rejects the closing summary shows.
const REJECTS_SHOWN: usize = 5;

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    dir: PathBuf,
    source: Option<String>,
    target: Option<String>,
    rows: i64,
    seed: u64,
    batch_size: usize,
    force: bool,
    undo: bool,
    rollback: Option<Option<RunId>>,
    dashboard: Option<std::net::SocketAddr>,
    notify_webhook: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("dmf-demo"),
            source: None,
            target: None,
            rows: 100_000,
            seed: 42,
            batch_size: 1000,
            force: false,
            undo: true,
            rollback: None,
            dashboard: None,
            notify_webhook: None,
        }
    }
}

impl Args {
    fn source_url(&self) -> String {
        self.source.clone().unwrap_or_else(|| format!("sqlite://{}", self.dir.join("legacy.db").display()))
    }

    fn target_url(&self) -> String {
        self.target.clone().unwrap_or_else(|| format!("sqlite://{}", self.dir.join("modern.db").display()))
    }
}

/// `Ok(None)` means `--help` was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    fn value<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or_else(|| format!("`{flag}` needs a value"))?;
        value.parse().map_err(|_| format!("`{flag}` expects a non-negative whole number, got `{value}`"))
    }
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept `--rows 10` and `--rows=10`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, v)) if flag.starts_with("--") => (flag.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut next = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--rows" => match value::<u32>(&flag, next())? {
                0 => return Err("`--rows` must be at least 1".into()),
                rows => parsed.rows = rows.into(),
            },
            "--seed" => parsed.seed = value(&flag, next())?,
            "--dir" => parsed.dir = PathBuf::from(next().ok_or("`--dir` needs a value")?),
            "--source" => parsed.source = Some(next().ok_or("`--source` needs a URL")?),
            "--target" => parsed.target = Some(next().ok_or("`--target` needs a URL")?),
            "--force" => parsed.force = true,
            "--no-undo" => parsed.undo = false,
            "--notify-webhook" => parsed.notify_webhook = Some(next().ok_or("`--notify-webhook` needs a URL")?),
            "--dashboard" => {
                let addr = next().ok_or("`--dashboard` needs an address such as 127.0.0.1:8080")?;
                parsed.dashboard =
                    Some(addr.parse().map_err(|_| format!("`--dashboard` expects HOST:PORT, got `{addr}`"))?);
            }
            "--rollback" => {
                let run = next().ok_or("`--rollback` needs `last` or a run id")?;
                parsed.rollback = Some(match run.as_str() {
                    "last" => None,
                    id => Some(RunId(
                        id.parse().map_err(|_| format!("`--rollback` takes `last` or a run id, got `{id}`"))?,
                    )),
                });
            }
            "--batch-size" => match value(&flag, next())? {
                0 => return Err("`--batch-size` must be at least 1".into()),
                rows => parsed.batch_size = rows,
            },
            // The argument may be a URL (`--sorce=postgres://u:pw@h/db`): shown redacted.
            _ => return Err(format!("unknown argument `{}`", dmf_core::redact_secrets(&arg))),
        }
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
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
    init_logging();
    match run(args).await {
        Ok(summary) if summary.succeeded() || summary.status == RunStatus::RolledBack => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {}", dmf_core::error_chain(&*error));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at WARN, or as `RUST_LOG` says.
fn init_logging() {
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::WARN.into()).from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Opens the databases the URLs name (`sqlite://PATH`, created when missing, or `postgres://…`)
/// and runs the migration between them.
async fn run(args: Args) -> Result<RunSummary, BoxError> {
    std::fs::create_dir_all(&args.dir)?;
    let options = dmf::OpenOptions::new().create_missing(true);
    let source = Arc::new(options.open(&args.source_url()).await?);
    let target = Arc::new(options.open(&args.target_url()).await?);
    migrate(&args, source, target).await
}

/// Prepares both databases (on the first run) and migrates, whatever the databases are.
async fn migrate(args: &Args, source: Arc<AnyDatabase>, target: Arc<AnyDatabase>) -> Result<RunSummary, BoxError> {
    let generator = LegacyGenerator::new(args.seed);
    let generated = storage::prepare_source(&source, generator, args.rows).await?;
    if generated > 0 {
        println!("created {} with {generated} generated legacy customers (seed {})", source.display_name(), args.seed);
    }
    let seeded = storage::prepare_target(&target, generator, PRESEEDED.min(args.rows)).await?;
    if seeded > 0 {
        println!("created {} with {seeded} customers already migrated, which the run will skip", target.display_name());
    }

    let config = EngineConfig::builder()
        .batch_size(args.batch_size)
        .pipeline_depth(4)
        .reject_limit(RejectLimit::Ratio { max: 0.05, min_rows: 1000 })
        .build()?;
    // Customers already in the target are skipped by the target, in the database.
    let modern = target.target::<ModernCustomer>(storage::MODERN).await?.insert_or_skip();
    let pipeline = Pipeline::new(
        source.source::<LegacyCustomer>(storage::LEGACY).await?,
        CustomerTransformer,
        if args.undo { modern } else { modern.without_undo() },
    )
    .named("customers")
    .describe("legacy customers into the new customer schema")
    .validate(customer_rules());

    let store = target.run_store().await?;
    let mut orchestrator = Orchestrator::builder(Arc::clone(&store))
        .preflight(DatabaseCheck::new(Arc::clone(&source), DatabaseRole::Source))
        .preflight(DatabaseCheck::new(Arc::clone(&target), DatabaseRole::Target))
        .notifier(LogNotifier)
        .engine(config)
        .migration(pipeline);
    if let Some(url) = &args.notify_webhook {
        orchestrator = orchestrator.notifier(dmf_core::WebhookNotifier::new(url)?);
    }
    let orchestrator = orchestrator.build()?;

    if let Some(run) = args.rollback {
        return rollback(&orchestrator, store.as_ref(), run, args.force).await;
    }
    let orchestrator = Arc::new(orchestrator);
    let serving = match args.dashboard {
        Some(addr) => {
            let dashboard = dmf_dashboard::Dashboard::builder(Arc::clone(&orchestrator))
                .bind(addr)
                .database("source", source.display_name())
                .database("target", target.display_name())
                .title("DMF — customer migration")
                .prometheus()
                .build()?;
            Some(dashboard.serve_in_background().await?)
        }
        None => None,
    };

    // Subscribe before the run starts, or the first events are lost.
    let progress = tokio::spawn(show_progress(orchestrator.progress().subscribe()));
    let request = if args.force { RunRequest::all().force() } else { RunRequest::all() };
    let outcome = orchestrator.run(request).await;
    if outcome.is_err() {
        // The run never started, so the bar will see no end event.
        progress.abort();
    }
    let _ = progress.await;
    let summary = outcome?;
    println!();
    println!("pre-flight:\n{}", summary.preflight);
    print_summary(&summary, store.as_ref(), &target.display_name()).await?;
    if let Some((url, serving)) = serving {
        println!("the dashboard keeps serving {url}; press Ctrl-C to stop");
        serving.await??;
    }
    Ok(summary)
}

/// Rolls back `run` (or the latest run that completed or failed) from the undo log.
async fn rollback(
    orchestrator: &Orchestrator,
    store: &dyn RunStore,
    run: Option<RunId>,
    force: bool,
) -> Result<RunSummary, BoxError> {
    let run = match run {
        Some(run) => run,
        None => store
            .runs(1000)
            .await?
            .into_iter()
            .find(|r| matches!(r.status, RunStatus::Completed | RunStatus::Failed))
            .map(|r| r.id)
            .ok_or("there is no run to roll back")?,
    };
    let target = RollbackTarget::Run(run);
    let undone =
        if force { orchestrator.rollback_forced(target).await? } else { orchestrator.rollback(target).await? };
    for (migration, _, report) in &undone.undone {
        println!(
            "rolled back `{migration}` of run {run}: {} inserted rows deleted, {} restored",
            report.deleted, report.restored
        );
    }
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

/// Drives a progress bar from the run's events until the run ends (or the channel closes).
/// indicatif draws on stderr and hides the bar by itself when stderr is not a terminal.
async fn show_progress(mut events: Receiver<ProgressEvent>) {
    let bar = ProgressBar::no_length();
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] [{bar:30.cyan/blue}] {human_pos}/{human_len} rows  {msg}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // A slow terminal lost some events; the next one carries the totals anyway.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        let Some(migration) = &event.migration else {
            if matches!(event.phase, Phase::Completed | Phase::Failed) {
                break;
            }
            continue;
        };
        match event.phase {
            Phase::Started => {
                bar.set_style(style.clone());
                bar.set_prefix(migration.to_string());
                match event.rows_estimated {
                    Some(rows) => bar.set_length(rows),
                    None => bar.unset_length(),
                }
                bar.reset_elapsed();
            }
            Phase::Loading => {
                bar.set_position(event.rows_done);
                bar.set_message(format!("{:.0} rows/s, {} rejected", event.rows_per_sec, event.counts.rejected));
            }
            Phase::Completed => {
                bar.set_position(event.rows_done);
                bar.finish_with_message(format!("done, {} rejected", event.counts.rejected));
            }
            Phase::Failed => bar.abandon_with_message("failed (see the summary)"),
            _ => {}
        }
    }
}

/// Prints the run summary, the counts and the reject quarantine.
async fn print_summary(summary: &RunSummary, store: &dyn RunStore, target: &str) -> Result<(), BoxError> {
    let totals = summary.totals();
    println!();
    print!("{summary}");
    println!(
        "counts: read {}, inserted {}, updated {}, unchanged {}, skipped {}, rejected {}; run record and rejects in {target}",
        totals.read, totals.inserted, totals.updated, totals.unchanged, totals.skipped, totals.rejected
    );

    let rejects = all_rejects(store, summary.run).await?;
    let by_stage: Vec<String> = [Stage::Extract, Stage::Transform, Stage::Validate, Stage::Load]
        .into_iter()
        .filter_map(|stage| {
            let n = rejects.iter().filter(|r| r.reject.stage == stage).count();
            (n > 0).then(|| format!("{stage} {n}"))
        })
        .collect();
    if rejects.is_empty() {
        println!("rejects: none");
    } else {
        println!("rejects by stage: {}", by_stage.join(", "));
        println!("first {} rejects:", REJECTS_SHOWN.min(rejects.len()));
        for record in rejects.iter().take(REJECTS_SHOWN) {
            let reject = &record.reject;
            println!("  key {:>7}  {:<9}  {}", reject.key, reject.stage.to_string(), reject.reason);
        }
    }
    if !summary.succeeded() {
        println!("the run FAILED: see the error above; run again to resume from the last checkpoint");
    }
    Ok(())
}

/// Every reject of `run`, read page by page through the [`RunStore`] API (so this works the
/// same with a database-backed store).
async fn all_rejects(store: &dyn RunStore, run: RunId) -> Result<Vec<RejectRecord>, BoxError> {
    const PAGE: usize = 1000;
    let mut rejects = Vec::new();
    loop {
        let page = store.rejects(run, None, PAGE, rejects.len()).await?;
        let done = page.len() < PAGE;
        rejects.extend(page);
        if done {
            return Ok(rejects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn arguments_have_defaults_and_both_spellings() {
        assert_eq!(parse(&[]), Ok(Some(Args::default())));
        assert_eq!(
            parse(&["--rows", "10", "--seed=7", "--batch-size", "50"]),
            Ok(Some(Args { rows: 10, seed: 7, batch_size: 50, ..Args::default() }))
        );
        assert_eq!(parse(&["--rows", "1", "--help"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(parse(&["--rowz", "10"]), Err("unknown argument `--rowz`".into()));
        assert_eq!(parse(&["--rows"]), Err("`--rows` needs a value".into()));
        assert_eq!(parse(&["--rows", "-5"]), Err("`--rows` expects a non-negative whole number, got `-5`".into()));
        assert_eq!(parse(&["--batch-size=0"]), Err("`--batch-size` must be at least 1".into()));
        assert_eq!(
            parse(&["--sorce=postgres://u:S3cret@h/db"]),
            Err("unknown argument `--sorce=postgres://u:***@h/db`".into())
        );
    }
}
