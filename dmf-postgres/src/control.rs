//! The control tables in schema `dmf`: created when missing (idempotent, safe when two
//! processes do it at once), inspected by pre-flight, and reading the checkpoint rows that
//! loaders write in the same transaction as their batches.

use dmf_core::{Checkpoint, MigrationName, Position, Result, Stage};
use tokio_postgres::{Client, GenericClient};

use crate::error::to_dmf_error;
use crate::sql::control as sql;

/// What pre-flight and creation need to know about the control tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControlState {
    /// Tables of [`sql::TABLES`] that exist.
    pub existing: Vec<String>,
    /// Tables of [`sql::TABLES`] that do not.
    pub missing: Vec<String>,
    /// The `dmf` schema exists.
    pub schema_exists: bool,
    /// The session may create the schema (when missing) or tables in it.
    pub can_create: bool,
}

/// Which control tables exist, and whether the missing ones can be created.
pub(crate) async fn inspect(client: &Client, server: &str) -> Result<ControlState> {
    let tables: &[&str] = &sql::TABLES;
    let rows = client
        .query(sql::INSPECT, &[&tables])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, format!("inspecting the control tables of {server}")))?;
    let mut state = ControlState { existing: Vec::new(), missing: Vec::new(), schema_exists: false, can_create: false };
    for row in &rows {
        let name: String = row.get(0);
        if row.get::<_, bool>(1) {
            state.existing.push(format!("{}.{name}", sql::SCHEMA));
        } else {
            state.missing.push(format!("{}.{name}", sql::SCHEMA));
        }
        state.schema_exists = row.get(2);
        state.can_create = row.get(3);
    }
    Ok(state)
}

/// Creates the schema and the control tables that are missing, in one transaction holding an
/// advisory lock (two processes starting at once take turns). Does nothing, and needs no
/// CREATE privilege, when they all exist.
pub(crate) async fn ensure_control_tables(client: &mut Client, server: &str) -> Result<()> {
    if inspect(client, server).await?.missing.is_empty() {
        return Ok(());
    }
    let doing = || format!("creating the control tables (schema {}) in {server}", sql::SCHEMA);
    let fail = |e| to_dmf_error(e, Stage::RunStore, doing());
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&sql::LOCK_KEY]).await.map_err(fail)?;
    tx.batch_execute(sql::CREATE).await.map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    tracing::info!(%server, "control tables ready in schema dmf");
    Ok(())
}

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The checkpoint of `migration`, if any.
pub(crate) async fn read_checkpoint(
    client: &impl GenericClient,
    migration: &MigrationName,
) -> Result<Option<Checkpoint>, tokio_postgres::Error> {
    let row = client.query_opt(sql::CHECKPOINT, &[&migration.as_str()]).await?;
    Ok(row.map(|row| Checkpoint {
        position: row.get::<_, Option<String>>(0).map(Position::new),
        skip: as_u64(row.get(1)),
        done: row.get(2),
    }))
}

/// Forgets the checkpoint of `migration`.
pub(crate) async fn clear_checkpoint(
    client: &impl GenericClient,
    migration: &MigrationName,
) -> Result<(), tokio_postgres::Error> {
    client.execute(sql::CLEAR_CHECKPOINT, &[&migration.as_str()]).await.map(|_| ())
}
