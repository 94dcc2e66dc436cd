//! The command line: subcommands and flags (clap's derive API).
//!
//! Every setting can come from three places; the first that gives it wins: a flag, a `DMF_*`
//! environment variable (the connections, the mode, the batch size and the jobs), the config
//! file (`--config FILE`, `DMF_CONFIG`, else `./dmf.toml` when present).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shown at the end of `dmf --help`.
const AFTER_HELP: &str = "\
Exit codes:
  0  success: synced, equal, passed
  1  the target differs from the source, breaks a rule, or a check failed
  2  usage or configuration error (a bad flag, config file or URL); nothing was done
  3  the run failed or was refused by pre-flight; the same command again resumes it

Connections come from --source/--target, else DMF_SOURCE_URL/DMF_TARGET_URL, else `source` and
`target` in the config file, where ${VAR} is replaced by the environment variable VAR. A
PostgreSQL URL without a password takes it from PGPASSWORD or ~/.pgpass, as libpq does: a
password never has to be on the command line, and it is masked in everything dmf prints.

URLs: sqlite://PATH, postgres://USER@HOST[:PORT]/DB[?sslmode=verify-full&sslrootcert=ca.crt],
mssql://USER@HOST[:PORT]/DB[?encrypt=strict], or an ADO.NET string (Server=HOST,1433;...).";

/// Synchronise, verify and roll back data between SQLite, PostgreSQL and SQL Server databases
/// whose tables already exist, in foreign-key order, resumably.
#[derive(Debug, Parser)]
#[command(name = "dmf", version, propagate_version = true, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The config file [default: ./dmf.toml when it exists]
    #[arg(long, global = true, env = "DMF_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON document on stdout and nothing else (what people read goes to stderr)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the source's rows into the target's existing tables, then verify the copy
    Sync(Box<SyncArgs>),
    /// Compare the source and the target row by row, and check rules on the target
    Verify(VerifyArgs),
    /// Show pre-flight, the schema differences, the load order and what a sync would write; writes nothing
    Plan(PlanArgs),
    /// Connect to both databases and run the pre-flight checks only
    Check(CheckArgs),
    /// Undo a run in the target, from its undo log or its backup
    Rollback(RollbackArgs),
    /// List the runs recorded in a target, or show one with its rejects
    Runs(RunsArgs),
    /// Serve the web dashboard over a target's run records
    Serve(ServeArgs),
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Both databases.
#[derive(Debug, Clone, Args)]
pub struct Endpoints {
    /// The database to read
    #[arg(long, env = "DMF_SOURCE_URL", hide_env_values = true, value_name = "URL")]
    pub source: Option<String>,
    /// The database to write (its tables must exist)
    #[arg(long, env = "DMF_TARGET_URL", hide_env_values = true, value_name = "URL")]
    pub target: Option<String>,
}

/// The target alone.
#[derive(Debug, Clone, Args)]
pub struct TargetOnly {
    /// The target database, whose control tables hold the runs
    #[arg(long, global = true, env = "DMF_TARGET_URL", hide_env_values = true, value_name = "URL")]
    pub target: Option<String>,
}

/// Which tables, and how they are synced.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Tables to sync, comma-separated; globs allowed (`public.*`, `order_*`); `!PATTERN`
    /// excludes [default: every table of the source]
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub tables: Vec<String>,
    /// Tables to leave out, comma-separated globs (`audit_*`)
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub exclude: Vec<String>,
    /// full | upsert | diff | incremental:COLUMN[+deletes] [default: upsert]
    #[arg(long, env = "DMF_MODE", value_name = "MODE")]
    pub mode: Option<String>,
}

/// How the sync runs.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Rows per batch [default: 5000]
    #[arg(long, env = "DMF_BATCH_SIZE", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,
    /// Tables loaded at the same time [default: the number of cores]
    #[arg(long, env = "DMF_JOBS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
}

/// How foreign keys are checked while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FkChecks {
    /// Skip per-row checks in full mode where the target allows it, then prove every key
    Auto,
    /// Let the target check every row
    PerRow,
}

/// The COPY format of a PostgreSQL target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyFormat {
    /// PostgreSQL's binary COPY format
    Binary,
    /// COPY's text format
    Text,
}

/// `dmf sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub tuning: Tuning,
    /// Read each large table in N key ranges at once [default: --jobs; 1 into SQLite]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub range_readers: Option<u64>,
    /// Rows that may be rejected (kept in the quarantine) before the sync stops [default: 0]
    #[arg(long, value_name = "N")]
    pub max_rejects: Option<u64>,
    /// Start over instead of resuming a sync that did not complete
    #[arg(long)]
    pub restart: bool,
    /// Run pre-flight and count what each table would get; write nothing (as `dmf plan`)
    #[arg(long, conflicts_with_all = ["restart", "backup", "no_undo", "dashboard", "notify_webhook", "no_verify", "report_json"])]
    pub dry_run: bool,
    /// Read every table in one consistent snapshot of the source
    #[arg(long)]
    pub snapshot: bool,
    /// How foreign keys are checked while loading [default: auto]
    #[arg(long, value_enum, value_name = "HOW")]
    pub fk_checks: Option<FkChecks>,
    /// Write tables whose triggers fire with sessions that skip them, where the target can
    #[arg(long)]
    pub skip_target_triggers: bool,
    /// Also check RULE on the target after the sync: 'orders: check(total >= 0)',
    /// 'customers: unique(email)', 'customers: not null(email)' (repeatable)
    #[arg(long = "rule", value_name = "RULE")]
    pub rules: Vec<String>,
    /// Back the target up into DIR before the first write
    #[arg(long, value_name = "DIR")]
    pub backup: Option<PathBuf>,
    /// Keep no undo log (faster; the run can then only be undone from a backup)
    #[arg(long)]
    pub no_undo: bool,
    /// The COPY format of a PostgreSQL target [default: binary]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub copy_format: Option<CopyFormat>,
    /// Read at most N rows per second in all (go easy on a production source)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rows_per_sec: Option<u32>,
    /// Wait up to DURATION (30s, 10m) for another run holding the target to end [default: 0s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub wait_for_lease: Option<Duration>,
    /// How long the target's lease outlives this run's last heartbeat [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub lease_ttl: Option<Duration>,
    /// How long one batch's write may go unanswered before it is retried [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub write_timeout: Option<Duration>,
    /// Serve the web dashboard on ADDR (127.0.0.1:8080) during the sync and after it, until Ctrl-C
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<SocketAddr>,
    /// POST the run summary as JSON to URL when the sync ends
    #[arg(long, value_name = "URL")]
    pub notify_webhook: Option<String>,
    /// Trust only the CA certificates of FILE (PEM) for the webhook's https
    #[arg(long, value_name = "FILE")]
    pub notify_ca: Option<PathBuf>,
    /// Allow a plain http:// webhook on another host (sent unencrypted)
    #[arg(long)]
    pub notify_insecure: bool,
    /// Skip the row-by-row verification after the sync
    #[arg(long, conflicts_with_all = ["rules", "report_json"])]
    pub no_verify: bool,
    /// Write the verification report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

/// `dmf verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub selection: Selection,
    /// Also check RULE on the target (repeatable; see `dmf sync --help`)
    #[arg(long = "rule", value_name = "RULE")]
    pub rules: Vec<String>,
    /// Write the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Differing keys shown per table
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub sample: usize,
}

/// `dmf plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub tuning: Tuning,
    /// How foreign keys would be checked [default: auto]
    #[arg(long, value_enum, value_name = "HOW")]
    pub fk_checks: Option<FkChecks>,
    /// As `dmf sync --skip-target-triggers`
    #[arg(long)]
    pub skip_target_triggers: bool,
    /// Leave out the dry-run counts (which read both sides in full)
    #[arg(long)]
    pub no_counts: bool,
}

/// `dmf check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(flatten)]
    pub selection: Selection,
    /// How foreign keys would be checked [default: auto]
    #[arg(long, value_enum, value_name = "HOW")]
    pub fk_checks: Option<FkChecks>,
    /// As `dmf sync --skip-target-triggers`
    #[arg(long)]
    pub skip_target_triggers: bool,
}

/// `dmf rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: TargetOnly,
    /// The run to undo: its id, or `last`
    #[arg(value_name = "RUN", value_parser = run_ref)]
    pub run: RunRef,
    /// The backup directory of a full sync (a full sync is undone from its backup)
    #[arg(long, value_name = "DIR")]
    pub backup: Option<PathBuf>,
    /// Even when a later run wrote to the same tables
    #[arg(long)]
    pub force: bool,
    /// Wait up to DURATION for a run holding the target to end [default: 0s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub wait_for_lease: Option<Duration>,
}

/// `dmf runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub target: TargetOnly,
    /// Runs listed, newest first
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    #[command(subcommand)]
    pub show: Option<RunsCommand>,
}

/// `dmf runs show`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: its tables, counts, error and rejects
    Show {
        /// The run: its id, or `last`
        #[arg(value_name = "RUN", value_parser = run_ref)]
        run: RunRef,
        /// Rejects shown
        #[arg(long, value_name = "N", default_value_t = 20)]
        rejects: usize,
    },
}

/// `dmf serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub target: TargetOnly,
    /// The address to listen on (loopback: read routes need no token)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// The page's title
    #[arg(long, default_value = "DMF")]
    pub title: String,
}

/// A run named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRef {
    /// The latest run.
    Last,
    /// A run by id.
    Id(i64),
}

fn run_ref(text: &str) -> Result<RunRef, String> {
    match text {
        "last" => Ok(RunRef::Last),
        id => id.parse().map(RunRef::Id).map_err(|_| format!("expected `last` or a run id, got `{id}`")),
    }
}

/// A duration such as `30s`, `10m` or `1h 30m`.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("expected a duration such as 30s or 10m: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
