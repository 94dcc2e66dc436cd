//! The statements that keep checkpoints in the `checkpoints` control table. Loaders run the
//! write inside the transaction of the batch it belongs to (on their own connection, binding
//! [`write_params`]); the run store and recovery read it back.

use std::time::SystemTime;

use super::decode::Cells;
use super::dialect::ControlDialect;
use super::tables::CHECKPOINTS as COLUMNS;
use crate::checkpoint::{Checkpoint, Position};
use crate::error::Result;
use crate::names::MigrationName;
use crate::value::Value;

/// Reads one migration's checkpoint (`position, skip, done`). Parameter 1: the migration.
pub fn read_statement(dialect: &dyn ControlDialect) -> String {
    let column = |c| dialect.column(c);
    format!(
        "SELECT {}, {}, {} FROM {} WHERE {} = {}",
        column("position"),
        column("skip"),
        column("done"),
        dialect.table("checkpoints"),
        column("migration"),
        dialect.param(1)
    )
}

/// Stores a migration's checkpoint, replacing the one before. Parameters: [`write_params`].
pub fn write_statement(dialect: &dyn ControlDialect) -> String {
    dialect.upsert(&dialect.table("checkpoints"), &COLUMNS[..1], &COLUMNS)
}

/// Forgets a migration's checkpoint. Parameter 1: the migration.
pub fn clear_statement(dialect: &dyn ControlDialect) -> String {
    format!("DELETE FROM {} WHERE {} = {}", dialect.table("checkpoints"), dialect.column("migration"), dialect.param(1))
}

/// The parameters of [`write_statement`].
pub fn write_params(migration: &MigrationName, checkpoint: &Checkpoint, now: SystemTime) -> Vec<Value> {
    vec![
        Value::Text(migration.as_str().to_owned()),
        checkpoint.position.as_ref().map_or(Value::Null, |p| Value::Text(p.as_str().to_owned())),
        Value::Int(i64::try_from(checkpoint.skip).unwrap_or(i64::MAX)),
        Value::Bool(checkpoint.done),
        Value::TimestampTz(now.into()),
    ]
}

/// A checkpoint from a row of [`read_statement`].
pub fn from_row(row: Vec<Value>) -> Result<Checkpoint> {
    let cells = Cells::new(row, "checkpoints");
    Ok(Checkpoint {
        position: cells.text_opt(0)?.map(Position::new),
        skip: cells.count(1)?,
        done: cells.bool(2)?.unwrap_or(false),
    })
}
