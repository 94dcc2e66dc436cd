//! The subcommands, and what they share: where connections and settings come from, opening
//! both databases, the table selection.

mod check;
mod plan;
mod rollback;
mod runs;
mod serve;
mod sync;
mod verify;

use std::sync::Arc;

use clap::CommandFactory;
use dmf::catalog::TableName;
use dmf::sync::{AnyDatabase, Database, SyncJob, SyncMode};

use crate::cli::{Cli, Command, CopyFormat, Endpoints, FkChecks, Selection, TargetOnly, Tuning};
use crate::config::FileConfig;
use crate::exit::{CliError, CliResult, Exit};
use crate::output::Out;
use crate::select::TableFilter;

/// Runs the command; prints its error (and, under `--json`, an error document) and says how
/// the process ends.
pub async fn run(cli: Cli) -> Exit {
    let out = Out::new(cli.json);
    match dispatch(cli, out).await {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("error: {error}");
            let document = serde_json::json!({ "error": error.message, "exit_code": error.exit as u8 });
            if out.document(&document).is_err() {
                return Exit::Failed;
            }
            error.exit
        }
    }
}

async fn dispatch(cli: Cli, out: Out) -> CliResult {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "dmf", &mut std::io::stdout());
        return Ok(Exit::Ok);
    }
    let file = FileConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Sync(args) => sync::run(*args, &file, out).await,
        Command::Verify(args) => verify::run(args, &file, out).await,
        Command::Plan(args) => plan::run(args, &file, out).await,
        Command::Check(args) => check::run(args, &file, out).await,
        Command::Rollback(args) => rollback::run(args, &file, out).await,
        Command::Runs(args) => runs::run(args, &file, out).await,
        Command::Serve(args) => serve::run(args, &file, out).await,
        Command::Completions { .. } => Ok(Exit::Ok),
    }
}

/// The source and target URLs: flag, else environment (clap), else the file.
fn urls(endpoints: &Endpoints, file: &FileConfig) -> CliResult<(String, String)> {
    let source = endpoints.source.clone().or_else(|| file.source.clone()).ok_or_else(|| missing(file, "source"))?;
    let target = target_url(&TargetOnly { target: endpoints.target.clone() }, file)?;
    Ok((source, target))
}

/// The target URL: flag, else environment (clap), else the file.
fn target_url(target: &TargetOnly, file: &FileConfig) -> CliResult<String> {
    target.target.clone().or_else(|| file.target.clone()).ok_or_else(|| missing(file, "target"))
}

fn missing(file: &FileConfig, side: &str) -> CliError {
    if let Some((_, error)) = file.unresolved.iter().find(|(key, _)| key == side) {
        return CliError::usage(format!("config file: {error}"));
    }
    CliError::usage(format!(
        "no {side} database: give --{side} URL, set DMF_{}_URL, or write `{side} = \"URL\"` in dmf.toml",
        side.to_uppercase()
    ))
}

/// Opens a database from its URL, whatever its kind.
async fn open(url: &str, copy_format: Option<CopyFormat>) -> CliResult<Arc<AnyDatabase>> {
    #[allow(unused_mut)]
    let mut options = dmf::OpenOptions::new();
    #[cfg(feature = "postgres")]
    if let Some(format) = copy_format {
        options = options.copy_format(match format {
            CopyFormat::Binary => dmf::postgres::CopyFormat::Binary,
            CopyFormat::Text => dmf::postgres::CopyFormat::Text,
        });
    }
    #[cfg(not(feature = "postgres"))]
    let _ = copy_format;
    Ok(Arc::new(options.open(url).await?))
}

/// The mode: flag or `DMF_MODE`, else the file, else upsert.
fn mode(selection: &Selection, file: &FileConfig) -> CliResult<SyncMode> {
    match selection.mode.as_ref().or(file.mode.as_ref()) {
        Some(text) => text.parse().map_err(|e: dmf::Error| CliError::usage(e.to_string())),
        None => Ok(SyncMode::Upsert),
    }
}

/// The tables selected (flags over the file), resolved against the source's catalog.
async fn tables(selection: &Selection, file: &FileConfig, source: &AnyDatabase) -> CliResult<Option<Vec<TableName>>> {
    let include = if selection.tables.is_empty() { &file.tables } else { &selection.tables };
    let exclude = if selection.exclude.is_empty() { &file.exclude } else { &selection.exclude };
    let filter = TableFilter::new(include, exclude)?;
    if filter.is_everything() {
        return Ok(None);
    }
    filter.select(&source.read_catalog().await?)
}

/// Batch size and jobs: flag or environment, else the file, else the defaults.
fn tuning(tuning: &Tuning, file: &FileConfig) -> (usize, usize) {
    let batch = tuning.batch_size.or(file.batch_size).unwrap_or(5000);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = tuning.jobs.or(file.jobs).map_or(cores, |j| j as usize);
    (batch as usize, jobs.max(1))
}

/// How foreign keys are checked: flag, else the file, else auto.
fn fk_checks(flag: Option<FkChecks>, file: &FileConfig) -> dmf::sync::ForeignKeyChecks {
    match flag.or(file.fk_checks) {
        Some(FkChecks::PerRow) => dmf::sync::ForeignKeyChecks::PerRow,
        _ => dmf::sync::ForeignKeyChecks::Auto,
    }
}

/// The rules: flags, else the file.
fn rules(flags: &[String], file: &FileConfig) -> CliResult<Vec<dmf::quality::Rule>> {
    let texts = if flags.is_empty() { &file.rules } else { flags };
    texts
        .iter()
        .map(|text| text.parse().map_err(|e: dmf::Error| CliError::usage(format!("rule `{text}`: {e}"))))
        .collect()
}

/// Both databases opened, and the job every subcommand starts from: the mode and the tables
/// selected.
struct Opened {
    source: Arc<AnyDatabase>,
    target: Arc<AnyDatabase>,
    mode: SyncMode,
    tables: Option<Vec<TableName>>,
}

impl Opened {
    async fn new(
        endpoints: &Endpoints,
        selection: &Selection,
        file: &FileConfig,
        copy_format: Option<CopyFormat>,
    ) -> CliResult<Self> {
        let (source_url, target_url) = urls(endpoints, file)?;
        let mode = mode(selection, file)?;
        let target = open(&target_url, copy_format).await?;
        let source = open(&source_url, copy_format).await?;
        let tables = tables(selection, file, &source).await?;
        Ok(Self { source, target, mode, tables })
    }

    /// A job over `source` (the databases, or a snapshot of the source).
    fn job_from(&self, source: Arc<AnyDatabase>) -> SyncJob<AnyDatabase, AnyDatabase> {
        let job = SyncJob::new(source, Arc::clone(&self.target), self.mode.clone());
        match &self.tables {
            Some(tables) => job.tables(tables.clone()),
            None => job,
        }
    }

    fn job(&self) -> SyncJob<AnyDatabase, AnyDatabase> {
        self.job_from(Arc::clone(&self.source))
    }
}

/// Writes `report` as JSON to `path`.
fn write_report(path: &std::path::Path, report: &impl serde::Serialize) -> CliResult<()> {
    let bytes = serde_json::to_vec_pretty(report).map_err(|e| CliError::failed(e.to_string()))?;
    std::fs::write(path, bytes)
        .map_err(|e| CliError::failed(format!("cannot write the report to {}: {e}", path.display())))
}
