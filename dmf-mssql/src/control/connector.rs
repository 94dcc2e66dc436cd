//! [`MssqlConnector`]: dmf-core's [`SqlConnector`] over the adapter's [`Connect`], so that the
//! control plane written once in dmf-core ([`SqlRunStore`](dmf_core::control::SqlRunStore),
//! the checkpoint statements) runs on SQL Server in [`MssqlDialect`].

use std::sync::Arc;

use async_trait::async_trait;
use dmf_core::control::{ControlDialect, SqlConnector, SqlSession};
use dmf_core::{Error, ErrorKind, Result, Stage, Value};

use crate::error::to_dmf_error;
use crate::executor::{Connect, Executor};
use crate::sql::control::MssqlDialect;

/// Sessions of dmf-core's control plane on one SQL Server database: each a session of the
/// database's [`Connect`] (a pooled tiberius connection, or a scripted one in tests).
/// Statements go through `sp_executesql` with `@P1`… bound, rows come back decoded into
/// [`Value`]s by their SQL Server types, and errors keep their classification
/// ([`error_kind`](crate::error_kind): a deadlock or a broken connection is transient).
///
/// ```
/// use std::sync::Arc;
///
/// use dmf_core::control::SqlRunStore;
/// use dmf_mssql::MssqlConnector;
/// use dmf_mssql::executor::Script;
///
/// let connector = MssqlConnector::new(Arc::new(Script::new().connector("sa@test:1433/Sales", "Sales")));
/// let store = SqlRunStore::new(Arc::new(connector));
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct MssqlConnector {
    connect: Arc<dyn Connect>,
}

impl std::fmt::Debug for MssqlConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MssqlConnector").field("database", &self.connect.display_name()).finish()
    }
}

impl MssqlConnector {
    /// Control-plane sessions opened by `connect`. The control tables must exist
    /// ([`MssqlDatabase::create_control_tables`](crate::MssqlDatabase::create_control_tables)).
    pub fn new(connect: Arc<dyn Connect>) -> Self {
        Self { connect }
    }
}

#[async_trait]
impl SqlConnector for MssqlConnector {
    async fn session(&self) -> Result<Box<dyn SqlSession>> {
        let executor = self.connect.session().await.map_err(|e| {
            to_dmf_error(e, Stage::RunStore, format!("cannot connect to SQL Server at {}", self.connect.display_name()))
        })?;
        Ok(Box::new(MssqlSession { executor }))
    }

    fn dialect(&self) -> &dyn ControlDialect {
        &MssqlDialect
    }

    fn name(&self) -> String {
        self.connect.display_name()
    }
}

/// One executor. After an error the control plane drops it, and with it the connection
/// (which the pool discards: see [`executor`](crate::executor)).
struct MssqlSession {
    executor: Box<dyn Executor>,
}

#[async_trait]
impl SqlSession for MssqlSession {
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.executor
            .execute(sql, params)
            .await
            .map_err(|e| to_dmf_error(e, Stage::RunStore, "running a control statement"))
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let rows = self
            .executor
            .query(sql, params)
            .await
            .map_err(|e| to_dmf_error(e, Stage::RunStore, "running a control query"))?;
        // A cell that does not decode is no passing trouble: no retry helps.
        rows.iter()
            .map(|row| {
                row.values().map_err(|e| {
                    Error::with_source(Stage::RunStore, ErrorKind::Fatal, "decoding a row of a control table", e)
                })
            })
            .collect()
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.executor
            .batch(sql)
            .await
            .map(|_| ())
            .map_err(|e| to_dmf_error(e, Stage::RunStore, "running control statements"))
    }
}
