//! The control tables in schema `dmf`: created when missing (idempotent, safe when two
//! processes do it at once) and inspected by pre-flight.

use std::collections::{BTreeMap, BTreeSet};

use dmf_core::{Result, Stage};

use crate::error::to_dmf_error;
use crate::executor::{Executor, SqlError};
use crate::sql::control as sql;

/// What pre-flight and creation need to know about the control tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ControlState {
    /// Control tables that exist with every expected column.
    pub complete: Vec<String>,
    /// Control tables that do not exist.
    pub missing: Vec<String>,
    /// Control tables that exist without some expected columns: `(table, columns)`.
    pub misshapen: Vec<(String, Vec<String>)>,
    /// The `dmf` schema exists.
    pub schema_exists: bool,
    /// The session may create the schema.
    pub can_create_schema: bool,
    /// The session may create tables.
    pub can_create_table: bool,
}

impl ControlState {
    /// True when the missing tables could be created by this session.
    pub(crate) fn can_create(&self) -> bool {
        self.can_create_table && (self.schema_exists || self.can_create_schema)
    }
}

/// Which control tables exist with which columns, and what the session may create.
pub(crate) async fn inspect(executor: &mut dyn Executor) -> std::result::Result<ControlState, SqlError> {
    let rows = executor.query(sql::INSPECT, &[]).await?;
    let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut state = ControlState::default();
    for row in &rows {
        match (row.text(0)?, row.text(1)?) {
            (Some(table), Some(column)) => {
                columns.entry(table).or_default().insert(column);
            }
            _ => {
                state.schema_exists = row.bool(2)?.unwrap_or(false);
                state.can_create_schema = row.bool(3)?.unwrap_or(false);
                state.can_create_table = row.bool(4)?.unwrap_or(false);
            }
        }
    }
    for (table, expected) in sql::TABLES {
        let name = format!("{}.{table}", sql::SCHEMA);
        match columns.get(table) {
            None => state.missing.push(name),
            Some(present) => {
                let absent: Vec<String> =
                    expected.iter().filter(|c| !present.contains(**c)).map(|c| (*c).to_owned()).collect();
                if absent.is_empty() {
                    state.complete.push(name);
                } else {
                    state.misshapen.push((name, absent));
                }
            }
        }
    }
    Ok(state)
}

/// Creates the schema and the control tables that are missing (one batch holding an
/// application lock). Does nothing, and needs no CREATE permission, when they all exist.
pub(crate) async fn ensure_control_tables(executor: &mut dyn Executor, server: &str) -> Result<()> {
    let doing = || format!("creating the control tables (schema {}) in {server}", sql::SCHEMA);
    let state = inspect(executor).await.map_err(|e| to_dmf_error(e, Stage::RunStore, doing()))?;
    if let Some((table, columns)) = state.misshapen.first() {
        return Err(dmf_core::Error::fatal(
            Stage::RunStore,
            format!(
                "{table} in {server} lacks the columns {}: it was not made by this DMF version",
                columns.join(", ")
            ),
        ));
    }
    if state.missing.is_empty() {
        return Ok(());
    }
    executor.batch(sql::CREATE).await.map_err(|e| to_dmf_error(e, Stage::RunStore, doing()))?;
    tracing::info!(%server, "control tables ready in schema dmf");
    Ok(())
}
