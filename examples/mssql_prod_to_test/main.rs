//! # mssql_prod_to_test: seed a SQL Server test database from production, the whole flow
//!
//! 1. pre-flight of both servers: version, database state, **Always On** role and health (the
//!    source may be a readable secondary; the target must be a writable primary and, with
//!    `--target-is-production`, is refused), DMF's control tables;
//! 2. the schema check (the test database's tables must match production's; nothing is ever
//!    created or altered) and the tables in foreign-key order;
//! 3. a `COPY_ONLY` backup of the test database (`BACKUP … WITH COPY_ONLY, CHECKSUM, INIT`, then
//!    `RESTORE VERIFYONLY`) before the first write, recorded in the run record;
//! 4. an **incremental MERGE sync** by a watermark column (a `rowversion`, or a modified-date
//!    column) with delete propagation and an undo log, independent tables at the same time
//!    (`?upsert=update_insert` on the target's URL, or `Upsert=UpdateInsert` in its ADO.NET
//!    string, loads without MERGE);
//! 5. the **quality report**: every table compared row by row with production;
//! 6. a **notification** of the outcome, by Database Mail when `--mail PROFILE:RECIPIENTS` is given
//!    (and always in the log).
//!
//! ```sh
//! cargo run --release --example mssql_prod_to_test -- \
//!     --source 'Server=prod-listener,1433;Database=Sales;User Id=reader;Password=…;ApplicationIntent=ReadOnly' \
//!     --target 'mssql://dmf:…@test-sql/Sales?trust_server_certificate=true' \
//!     --watermark rv --backup-dir /var/opt/mssql/backup --mail 'dmf:dba@example.com'
//! ```
//!
//! Run it again and only the rows changed since (a larger `rowversion`) move. `sync_database
//! --target … --rollback last` undoes a run from the undo log. Exits 1 when the sync fails or
//! the report finds a difference, 2 on a bad command line.
//!
//! No SQL Server ran where this example was written: it compiles and its statements are tested
//! (see the README's SQL Server section), but it has not been run against a server yet.

use std::process::ExitCode;
use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, LogNotifier, RejectLimit, RunRequest};
use dmf_mssql::{MssqlDatabase, MssqlOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
Seeds a SQL Server test database from production: pre-flight (Always On), backup, FK-ordered
incremental MERGE sync, quality report, notification.

Usage: mssql_prod_to_test --source CONN --target CONN --watermark COLUMN [OPTIONS]

Options:
  --source <CONN>        production: mssql://USER:PASS@HOST[:PORT]/DB or an ADO.NET string
  --target <CONN>        the test database (its tables must exist)
  --watermark <COLUMN>   the rowversion or modified-date column of every synced table
  --tables <A,B,...>     schema.table names [default: every table of the source]
  --backup-dir <DIR>     where the server writes the COPY_ONLY backup [default: its default]
  --mail <PROFILE:TO>    send the outcome by Database Mail (profile, ;-separated recipients)
  --target-is-production refuse to write (pre-flight) if the target is an AG primary
  --jobs <N>             tables at the same time [default: 2]
  -h, --help             print this help";

#[derive(Debug, Default)]
struct Args {
    source: String,
    target: String,
    watermark: String,
    tables: Option<Vec<TableName>>,
    backup_dir: Option<String>,
    mail: Option<(String, String)>,
    production: bool,
    jobs: usize,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args { jobs: 2, ..Args::default() };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--source" => parsed.source = value()?,
            "--target" => parsed.target = value()?,
            "--watermark" => parsed.watermark = value()?,
            "--tables" => parsed.tables = Some(value()?.split(',').map(TableName::parse).collect()),
            "--backup-dir" => parsed.backup_dir = Some(value()?),
            "--mail" => {
                let text = value()?;
                let (profile, to) = text.split_once(':').ok_or("`--mail` takes PROFILE:RECIPIENTS")?;
                parsed.mail = Some((profile.to_owned(), to.to_owned()));
            }
            "--target-is-production" => parsed.production = true,
            "--jobs" => parsed.jobs = value()?.parse().map_err(|_| "`--jobs` takes a number".to_owned())?,
            // The argument may be a connection string: shown redacted.
            other => return Err(format!("unknown argument `{}`", dmf_core::redact_secrets(other))),
        }
    }
    for (name, given) in
        [("--source", &parsed.source), ("--target", &parsed.target), ("--watermark", &parsed.watermark)]
    {
        if given.is_empty() {
            return Err(format!("`{name}` is required"));
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
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    match seed(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {}", dmf_core::error_chain(&*error));
            ExitCode::FAILURE
        }
    }
}

async fn seed(args: &Args) -> Result<bool, BoxError> {
    let source = Arc::new(MssqlDatabase::connect(&args.source).await?);
    let target = MssqlDatabase::connect(&args.target).await?;
    // Keep what the connection string chose (`upsert=update_insert` for a MERGE-free load).
    let options = MssqlOptions { production: args.production, ..target.options().clone() };
    let target = Arc::new(target.with_options(options));
    println!("seeding {} from {}", target.display_name(), source.display_name());

    let mode = SyncMode::Incremental { column: args.watermark.clone(), propagate_deletes: true };
    let engine = EngineConfig::builder().batch_size(5000).reject_limit(RejectLimit::Count(0)).build()?;
    let mut job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode)
        .engine(engine)
        .jobs(args.jobs)
        .undo(true)
        .backup(target.backup(args.backup_dir.as_deref()))
        .notifier(LogNotifier);
    if let Some((profile, recipients)) = &args.mail {
        job = job.notifier(target.mail_notifier(profile, recipients));
    }
    if let Some(tables) = &args.tables {
        job = job.tables(tables.clone());
    }
    let plan = job.plan().await?;
    println!("tables in foreign-key order:");
    for table in &plan.tables {
        println!("  {}", table.target.name);
    }
    // Incremental migrations run every time (each run reads what changed since the last one).
    let summary = job.orchestrator(&plan).await?.run(RunRequest::all().force()).await?;
    println!("\npre-flight:\n{}", summary.preflight);
    if let Some(backup) = &summary.backup {
        println!("backup: {} ({})", backup.location, backup.method);
    }
    print!("{summary}");
    if !summary.succeeded() {
        return Ok(false);
    }
    println!("\nquality report:");
    let report = dmf_core::quality::compare(source.as_ref(), target.as_ref(), &plan, 10).await?;
    print!("{report}");
    Ok(report.is_equal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let parse = |a: &[&str]| parse_args(a.iter().map(|s| (*s).to_owned()));
        let args = parse(&[
            "--source",
            "mssql://a@b/c",
            "--target",
            "mssql://d@e/f",
            "--watermark",
            "rv",
            "--mail",
            "dmf:x@y",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.mail, Some(("dmf".into(), "x@y".into())));
        assert_eq!(parse(&["--source", "x"]).unwrap_err(), "`--target` is required");
        assert_eq!(
            parse(&["Server=h;User Id=sa;Password=S3cret;"]).unwrap_err(),
            "unknown argument `Server=h;User Id=sa;Password=***;`"
        );
    }
}
