//! # dmf: the DMF command
//!
//! Synchronises a production database into a test database whose tables already exist, in
//! foreign-key order, resumably, and proves the copy: `dmf sync`, `dmf verify`, `dmf plan`,
//! `dmf check`, `dmf rollback`, `dmf runs`, `dmf serve`. SQLite, PostgreSQL and SQL Server on
//! either side, chosen by URL. `dmf --help` lists the subcommands, the exit codes and where
//! connections and settings come from (flags, `DMF_*` variables, `dmf.toml`).

mod cli;
mod commands;
mod config;
mod exit;
mod json;
mod malloc;
mod output;
mod progress;
mod select;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::Cli;
use crate::exit::Exit;

fn main() -> ExitCode {
    // Before the runtime's threads exist: each picks its malloc arena at its first allocation.
    malloc::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::WARN.into()).from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let exit = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(commands::run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            Exit::Failed
        }
    };
    exit.into()
}

/// `--help` and `--version` (exit 0), or a usage error (exit 2) with any password in the
/// arguments it quotes masked: `dmf sync postgres://u:pw@h/db` (a URL without its flag) must
/// not print the password.
fn usage_error(error: &clap::Error) -> ExitCode {
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    eprint!("{}", dmf::redact_secrets(&error.render().to_string()));
    Exit::Usage.into()
}
