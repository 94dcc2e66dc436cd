//! The control tables in schema `dmf`: created when missing (idempotent, safe when two
//! processes do it at once) and inspected by pre-flight; and [`PgConnector`], on which
//! dmf-core's control plane ([`SqlRunStore`](dmf_core::control::SqlRunStore), the checkpoint
//! statements that loaders also run in their batches' transactions) runs.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use dmf_core::control::{ControlDialect, SqlConnector, SqlSession, checkpoints};
use dmf_core::{Error, Result, Stage, Value};
use tokio_postgres::{Client, Statement};

use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::params::{as_refs, bind};
use crate::sql::control::{self as sql, PgDialect};
use crate::types::row_values;

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

/// dmf-core's checkpoint statements in PostgreSQL, written once.
pub(crate) struct CheckpointStatements {
    /// [`checkpoints::read_statement`].
    pub(crate) read: String,
    /// [`checkpoints::write_statement`], bound to [`checkpoints::write_params`].
    pub(crate) write: String,
    /// [`checkpoints::clear_statement`].
    pub(crate) clear: String,
}

/// The checkpoint statements of [`PgDialect`].
pub(crate) static CHECKPOINTS: LazyLock<CheckpointStatements> = LazyLock::new(|| CheckpointStatements {
    read: checkpoints::read_statement(&PgDialect),
    write: checkpoints::write_statement(&PgDialect),
    clear: checkpoints::clear_statement(&PgDialect),
});

/// Why a control statement failed on a connection.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A value does not fit its parameter's type: nothing was sent.
    Bind(String),
    /// The server refused the statement, a column did not decode, or the connection failed.
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Failure::Db(error)
    }
}

impl Failure {
    /// The error of `stage`, its message starting with `doing`: a server or connection error
    /// classified by its SQLSTATE ([`to_dmf_error`]), a value that does not fit fatal.
    pub(crate) fn into_error(self, stage: Stage, doing: String) -> Error {
        match self {
            Failure::Bind(why) => Error::fatal(stage, format!("{doing}: {why}")),
            Failure::Db(error) => to_dmf_error(error, stage, doing),
        }
    }
}

/// Runs the query `statement` with `params` bound by its parameters' types; returns its rows,
/// each column decoded by its type.
pub(crate) async fn query(
    client: &Client,
    statement: &Statement,
    params: &[Value],
) -> Result<Vec<Vec<Value>>, Failure> {
    let params = bind(statement.params(), params).map_err(Failure::Bind)?;
    let rows = client.query(statement, &as_refs(&params)).await?;
    Ok(rows.iter().map(row_values).collect::<Result<_, _>>()?)
}

/// Runs `statement` with `params` bound by its parameters' types; returns the rows it changed.
pub(crate) async fn execute(client: &Client, statement: &Statement, params: &[Value]) -> Result<u64, Failure> {
    let params = bind(statement.params(), params).map_err(Failure::Bind)?;
    Ok(client.execute(statement, &as_refs(&params)).await?)
}

/// Sessions on a PostgreSQL database for dmf-core's control plane, each a connection of its
/// own: statements are prepared (and kept per session), each [`Value`] is bound in the binary
/// form of the type PostgreSQL infers for its placeholder, and result columns are decoded by
/// their types. Errors are classified by SQLSTATE, as everywhere in this crate (connection
/// loss and deadlocks transient, the rest fatal). Made by
/// [`PgDatabase::control_connector`](crate::PgDatabase::control_connector).
#[derive(Debug, Clone)]
pub struct PgConnector {
    shared: Arc<Shared>,
    call_timeout: Duration,
}

impl PgConnector {
    pub(crate) fn new(shared: Arc<Shared>, call_timeout: Duration) -> Self {
        Self { shared, call_timeout }
    }
}

#[async_trait]
impl SqlConnector for PgConnector {
    async fn session(&self) -> Result<Box<dyn SqlSession>> {
        let client = self.shared.connector.connect(Stage::RunStore).await?;
        Ok(Box::new(PgSession { client, prepared: HashMap::new() }))
    }

    fn dialect(&self) -> &dyn ControlDialect {
        &PgDialect
    }

    fn name(&self) -> String {
        self.shared.connector.name().to_owned()
    }

    fn call_timeout(&self) -> Duration {
        self.call_timeout
    }
}

/// How many prepared statements a session keeps. The control plane's are few, but the text
/// of a reject insert depends on how many rows it carries.
const PREPARED: usize = 64;

/// One connection of [`PgConnector`], with the statements prepared on it.
struct PgSession {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl PgSession {
    async fn prepare(&mut self, sql: &str) -> Result<Statement, Failure> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.prepared.len() >= PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

#[async_trait]
impl SqlSession for PgSession {
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let outcome = match self.prepare(sql).await {
            Ok(statement) => execute(&self.client, &statement, params).await,
            Err(failure) => Err(failure),
        };
        outcome.map_err(|failure| failure.into_error(Stage::RunStore, "running a control statement".to_owned()))
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let outcome = match self.prepare(sql).await {
            Ok(statement) => query(&self.client, &statement, params).await,
            Err(failure) => Err(failure),
        };
        outcome.map_err(|failure| failure.into_error(Stage::RunStore, "running a control query".to_owned()))
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|error| to_dmf_error(error, Stage::RunStore, "running control statements"))
    }
}
