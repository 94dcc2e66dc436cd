//! DMF's control tables in schema `dmf` of a SQL Server database: created when missing and
//! inspected by pre-flight (`tables`), and the [`MssqlConnector`] on which dmf-core's control
//! plane ([`SqlRunStore`](dmf_core::control::SqlRunStore), the checkpoint statements) runs, in
//! [`MssqlDialect`](crate::MssqlDialect).

mod connector;
mod tables;

use dmf_core::control::checkpoints;
use dmf_core::{Checkpoint, Error, Result, Stage};

pub use connector::MssqlConnector;
pub(crate) use tables::{ControlState, ensure_control_tables, inspect};

use crate::executor::SqlRow;

/// The checkpoint in the rows of dmf-core's checkpoint read statement, if any.
pub(crate) fn checkpoint_of(rows: Vec<SqlRow>) -> Result<Option<Checkpoint>> {
    let Some(row) = rows.into_iter().next() else { return Ok(None) };
    let values = row.values().map_err(|e| {
        Error::with_source(Stage::Load, dmf_core::ErrorKind::Fatal, "reading a row of dmf.checkpoints", e)
    })?;
    checkpoints::from_row(values).map(Some)
}
