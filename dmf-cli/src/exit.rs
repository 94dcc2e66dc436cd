//! Exit codes a script can trust, and the error that carries one.

use std::fmt;
use std::process::ExitCode;

/// How `dmf` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success: synced, equal, passed.
    Ok = 0,
    /// Rows differ, a rule is broken, a check failed.
    Differs = 1,
    /// A usage or configuration error: nothing was done.
    Usage = 2,
    /// The run failed; running the same command again resumes it.
    Failed = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Why a command stopped, and with which exit code.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { exit: Exit::Usage, message: message.into() }
    }

    /// A failure while running (exit 3).
    pub fn failed(message: impl Into<String>) -> Self {
        Self { exit: Exit::Failed, message: message.into() }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<dmf::Error> for CliError {
    /// A configuration error (a bad URL, an unknown table, a mode the target cannot take) is a
    /// usage error; anything else stopped a run.
    fn from(error: dmf::Error) -> Self {
        let exit = match error {
            dmf::Error::Config(_) | dmf::Error::Schema(_) => Exit::Usage,
            _ => Exit::Failed,
        };
        // The whole chain, passwords masked (URLs in errors are redacted where they are made;
        // this is the last line of defence).
        Self { exit, message: dmf::redact_secrets(&dmf::error_chain(&error)).into_owned() }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        Self::failed(error.to_string())
    }
}

/// A command's result.
pub type CliResult<T = Exit> = Result<T, CliError>;
