//! # Customer migration: DMF end to end, no database needed
//!
//! Migrates dirty legacy customers (from [`dmf_testkit::LegacyGenerator`], about 2 % of them
//! dirty) into a new schema, on the in-memory testkit. It shows:
//!
//! - a [`Transformer`](dmf_core::Transformer) with real business rules (tiers, E.164 phones,
//!   address parsing, name splitting) and [`Rules`](dmf_core::Rules) for validation, in
//!   `customers.rs`, which knows nothing about storage;
//! - rows already in the target skipped, unparseable rows rejected by the transformer, invalid
//!   rows rejected by validation, and duplicate emails refused by the target's unique
//!   constraint (the engine bisects the failing batches, so only the duplicates are rejected);
//! - an [`Orchestrator`] run with a reject limit, a progress bar fed by [`ProgressEvent`]s, and
//!   a closing summary with the reject quarantine.
//!
//! ```sh
//! cargo run --release --example customer_migration
//! cargo run --release --example customer_migration -- --rows 1000000 --seed 7 --batch-size 5000
//! RUST_LOG=dmf_core=debug cargo run --example customer_migration -- --rows 2000
//! ```
//!
//! Exits with 1 when the run fails, 2 on a bad command line.

mod customers;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use dmf_core::{
    EngineConfig, Orchestrator, Phase, Pipeline, ProgressEvent, RejectLimit, RejectRecord, RunId, RunRequest, RunStore,
    RunSummary, Stage,
};
use dmf_testkit::{LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use customers::{CustomerTransformer, ModernCustomer, customer_rules};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
Migrates generated legacy customers into the new schema, in memory.

Usage: customer_migration [OPTIONS]

Options:
  --rows <N>        legacy customers to generate [default: 100000]
  --seed <S>        seed of the generator [default: 42]
  --batch-size <B>  rows per batch [default: 1000]
  -h, --help        print this help

Logs go to stderr at WARN; set RUST_LOG (e.g. RUST_LOG=dmf_core=debug) for more.";

/// Legacy ids `1..=PRESEEDED` are migrated before the run, so the run has something to skip.
const PRESEEDED: i64 = 50;

/// How many rejects the closing summary shows.
const REJECTS_SHOWN: usize = 5;

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    rows: i64,
    seed: u64,
    batch_size: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self { rows: 100_000, seed: 42, batch_size: 1000 }
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
            "--batch-size" => match value(&flag, next())? {
                0 => return Err("`--batch-size` must be at least 1".into()),
                rows => parsed.batch_size = rows,
            },
            _ => return Err(format!("unknown argument `{arg}`")),
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
        Ok(summary) if summary.succeeded() => ExitCode::SUCCESS,
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

async fn run(args: Args) -> Result<RunSummary, BoxError> {
    let config = EngineConfig::builder()
        .batch_size(args.batch_size)
        .pipeline_depth(4)
        .reject_limit(RejectLimit::Ratio { max: 0.05, min_rows: 1000 })
        .build()?;
    let generator = LegacyGenerator::new(args.seed);
    let source = MemoryTable::<LegacyCustomer>::new("legacy_customers");
    source.insert_rows(generator.rows(1..=args.rows));
    let target = MemoryTable::<ModernCustomer>::new("customers").with_unique("email", |c| c.email.clone());

    let seeded = preseed(&target, &generator, PRESEEDED.min(args.rows));
    println!(
        "source: {} legacy customers (seed {}); target pre-seeded with {seeded} customers already migrated \
         (clean rows among legacy ids 1..={}), which the run will skip",
        source.len(),
        args.seed,
        PRESEEDED.min(args.rows)
    );

    // What is already in the target is read once, before the run.
    let migrated: HashSet<i64> = target.rows().iter().map(|c| c.legacy_id).collect();
    let pipeline = Pipeline::new(source, CustomerTransformer::new(migrated), target.clone())
        .named("customers")
        .describe("legacy customers into the new customer schema")
        .validate(customer_rules());

    let store = Arc::new(MemoryRunStore::new());
    let orchestrator =
        Orchestrator::builder(Arc::clone(&store) as Arc<dyn RunStore>).engine(config).migration(pipeline).build()?;

    // Subscribe before the run starts, or the first events are lost.
    let progress = tokio::spawn(show_progress(orchestrator.progress().subscribe()));
    let outcome = orchestrator.run(RunRequest::all()).await;
    // Dropping the orchestrator closes the progress channel, so the bar task ends even when the
    // run could not start.
    drop(orchestrator);
    if let Err(error) = progress.await {
        eprintln!("warning: the progress bar stopped early: {error}");
    }
    let summary = outcome?;

    print_summary(&summary, store.as_ref(), target.len()).await?;
    Ok(summary)
}

/// Inserts the customers with legacy ids `1..=up_to` straight into `target`, as an earlier
/// migration would have: only rows that map, pass the rules and have an email not yet taken.
fn preseed(target: &MemoryTable<ModernCustomer>, generator: &LegacyGenerator, up_to: i64) -> usize {
    let rules = customer_rules();
    let mut emails = HashSet::new();
    let customers: Vec<ModernCustomer> = generator
        .rows(1..=up_to)
        .filter_map(|legacy| CustomerTransformer::map(&legacy).ok())
        .filter(|customer| rules.check(customer).is_valid() && emails.insert(customer.email.clone()))
        .collect();
    let count = customers.len();
    target.insert_rows(customers);
    count
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
async fn print_summary(summary: &RunSummary, store: &dyn RunStore, target_rows: usize) -> Result<(), BoxError> {
    let totals = summary.totals();
    println!();
    print!("{summary}");
    println!(
        "counts: read {}, inserted {}, updated {}, unchanged {}, skipped {}, rejected {}; the target now holds {target_rows} customers",
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
        println!("the run FAILED: see the error above (the in-memory target is gone when this program exits)");
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
            Ok(Some(Args { rows: 10, seed: 7, batch_size: 50 }))
        );
        assert_eq!(parse(&["--rows", "1", "--help"]), Ok(None));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(parse(&["--rowz", "10"]), Err("unknown argument `--rowz`".into()));
        assert_eq!(parse(&["--rows"]), Err("`--rows` needs a value".into()));
        assert_eq!(parse(&["--rows", "-5"]), Err("`--rows` expects a non-negative whole number, got `-5`".into()));
        assert_eq!(parse(&["--batch-size=0"]), Err("`--batch-size` must be at least 1".into()));
    }
}
