//! The narrow door through which the control plane talks to a database: a [`SqlSession`]
//! runs statements with [`Value`] parameters and returns rows of [`Value`]s, a
//! [`SqlConnector`] opens sessions. An adapter implements both over its driver and maps its
//! errors (with their [`ErrorKind`](crate::ErrorKind): transient or not) into [`Error`]s.

use std::time::Duration;

use async_trait::async_trait;

use super::dialect::ControlDialect;
use crate::error::Result;
use crate::value::Value;

/// One database session, used by one caller at a time.
///
/// Stored as `Box<dyn SqlSession>`, so it uses `async-trait`.
#[async_trait]
pub trait SqlSession: Send {
    /// Runs one statement with bound parameters (placeholders written by
    /// [`ControlDialect::param`]) and returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Runs one query with bound parameters and returns its rows, each a vector of values in
    /// select-list order, decoded by the types the database reports.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>>;

    /// Runs statements without parameters: DDL, and the dialect's transaction statements.
    async fn batch(&mut self, sql: &str) -> Result<()>;
}

/// Opens [`SqlSession`]s on one database and says which dialect it speaks.
///
/// Stored as `Arc<dyn SqlConnector>`, so it uses `async-trait`.
#[async_trait]
pub trait SqlConnector: Send + Sync {
    /// A new session (or one from a pool, in a clean state).
    async fn session(&self) -> Result<Box<dyn SqlSession>>;

    /// The dialect of the statements this database takes.
    fn dialect(&self) -> &dyn ControlDialect;

    /// The database as messages name it, without secrets (`user@host:port/db`, a file path).
    fn name(&self) -> String;

    /// How long one control-plane call (a few statements on a session, connecting included)
    /// may go unanswered before it is abandoned as a transient error and its session
    /// dropped. Default [`DEFAULT_CALL_TIMEOUT`].
    fn call_timeout(&self) -> Duration {
        DEFAULT_CALL_TIMEOUT
    }
}

/// How long a control-plane call may go unanswered by default (60 s).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
