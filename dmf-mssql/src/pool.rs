//! [`MssqlPool`]: tiberius 0.13 connections in a bb8 pool, through a manager of our own (the
//! published bb8/deadpool managers pin tiberius 0.12).
//!
//! - Dialling: plain TCP to `host:port`, or tiberius's SQL Browser lookup (`connect_named`)
//!   for a named instance or multi-subnet failover; `TCP_NODELAY`; the whole login bounded
//!   by the connect timeout. A redirect (Azure SQL's redirect policy, AG read-only routing)
//!   is followed up to three times.
//! - A connection is discarded after any failed or cancelled call ([`MssqlConnection`]'s
//!   broken flag), checked with `SELECT 1` before it is handed out, and replaced after
//!   30 minutes (firewalls and the Azure gateway cut idle connections).
//! - A connection that cannot be opened fails the checkout at once with the real error
//!   (bb8's default would retry until its timeout and report only "timed out").

use std::time::Duration;

use async_trait::async_trait;
use tiberius::{Client, SqlBrowser};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::config::MssqlConfig;
use crate::executor::tiberius_exec::MssqlConnection;
use crate::executor::{Connect, Executor, SqlError};
use crate::sql;

/// How many redirects (`Error::Routing`) are followed before giving up.
const MAX_REDIRECTS: usize = 3;

/// Opens one connection with `config`, following redirects.
pub(crate) async fn dial(config: &MssqlConfig, command_timeout: Option<Duration>) -> Result<MssqlConnection, SqlError> {
    let mut target = config.clone();
    let attempt = async {
        for _ in 0..=MAX_REDIRECTS {
            let tiberius_config = target.tiberius_config(command_timeout);
            let tcp = if target.needs_browser() {
                TcpStream::connect_named(&tiberius_config).await?
            } else {
                TcpStream::connect(tiberius_config.get_addr()).await.map_err(tiberius::error::Error::from)?
            };
            tcp.set_nodelay(true).map_err(tiberius::error::Error::from)?;
            match Client::connect(tiberius_config, tcp.compat_write()).await {
                Ok(client) => {
                    let mut connection = MssqlConnection::new(client);
                    connection.batch(sql::session::OPEN).await?;
                    return Ok(connection);
                }
                Err(tiberius::error::Error::Routing { host, port }) => {
                    tracing::info!(from = %target.display_name(), to = %format!("{host}:{port}"), "SQL Server redirected the connection");
                    target.host = host;
                    target.port = Some(port);
                    target.instance = None;
                    target.multi_subnet_failover = false;
                }
                Err(error) => {
                    return Err(match SqlError::from(error) {
                        SqlError::Tls(reason) => SqlError::Tls(format!("{} ({reason})", target.encryption)),
                        other => other,
                    });
                }
            }
        }
        Err(SqlError::Routing { host: target.host.clone(), port: target.port.unwrap_or_default() })
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(SqlError::Io {
            kind: std::io::ErrorKind::TimedOut,
            message: format!("no connection to {} within {:?}", config.display_name(), config.connect_timeout),
        }),
    }
}

/// The bb8 manager.
#[derive(Debug, Clone)]
pub(crate) struct Manager {
    config: MssqlConfig,
}

impl bb8::ManageConnection for Manager {
    type Connection = MssqlConnection;
    type Error = SqlError;

    async fn connect(&self) -> Result<MssqlConnection, SqlError> {
        dial(&self.config, self.config.command_timeout).await
    }

    async fn is_valid(&self, connection: &mut MssqlConnection) -> Result<(), SqlError> {
        connection.ping().await
    }

    fn has_broken(&self, connection: &mut MssqlConnection) -> bool {
        connection.is_broken()
    }
}

/// Logs connection errors the pool sees in the background.
#[derive(Debug, Clone, Copy)]
struct LogSink;

impl bb8::ErrorSink<SqlError> for LogSink {
    fn sink(&self, error: SqlError) {
        tracing::warn!(%error, "SQL Server connection pool: opening a connection failed");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<SqlError>> {
        Box::new(*self)
    }
}

/// Pool sizes and lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// At most this many connections (a sync holds one per extractor, loader and the run
    /// store at a time).
    pub max_size: u32,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// Connections are replaced after this long.
    pub max_lifetime: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_size: 16, idle_timeout: Duration::from_secs(600), max_lifetime: Duration::from_secs(1800) }
    }
}

/// Connections to one SQL Server database, pooled; implements [`Connect`].
///
/// `session()` checks a connection out for as long as the returned executor lives (a loader
/// keeps its `#dmf_stage` there); `admin_session()` opens a connection of its own to
/// `master` without a command timeout, for BACKUP and RESTORE.
pub struct MssqlPool {
    config: MssqlConfig,
    pool: bb8::Pool<Manager>,
    max_size: u32,
}

impl std::fmt::Debug for MssqlPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MssqlPool").field("server", &self.config.display_name()).finish_non_exhaustive()
    }
}

impl MssqlPool {
    /// A pool for `config`; opens no connection until the first checkout.
    pub fn new(config: MssqlConfig, options: PoolOptions) -> Self {
        let pool = bb8::Pool::builder()
            .max_size(options.max_size.max(1))
            .min_idle(None)
            .connection_timeout(config.connect_timeout + Duration::from_secs(5))
            .idle_timeout(Some(options.idle_timeout))
            .max_lifetime(Some(options.max_lifetime))
            .test_on_check_out(true)
            .retry_connection(false)
            .error_sink(Box::new(LogSink))
            .build_unchecked(Manager { config: config.clone() });
        Self { config, pool, max_size: options.max_size.max(1) }
    }

    /// The configuration.
    pub fn config(&self) -> &MssqlConfig {
        &self.config
    }
}

/// A pooled connection as an [`Executor`]; back to the pool when dropped (or discarded, if
/// broken).
struct Pooled(bb8::PooledConnection<'static, Manager>);

#[async_trait]
impl Executor for Pooled {
    async fn query(&mut self, sql: &str, params: &[dmf_core::Value]) -> Result<Vec<crate::SqlRow>, SqlError> {
        self.0.query(sql, params).await
    }

    async fn execute(&mut self, sql: &str, params: &[dmf_core::Value]) -> Result<u64, SqlError> {
        self.0.execute(sql, params).await
    }

    async fn batch(&mut self, sql: &str) -> Result<Vec<Vec<crate::SqlRow>>, SqlError> {
        self.0.batch(sql).await
    }

    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        options: crate::BulkOptions,
        rows: Vec<tiberius::TokenRow<'static>>,
    ) -> Result<u64, SqlError> {
        self.0.bulk_insert(table, columns, options, rows).await
    }
}

#[async_trait]
impl Connect for MssqlPool {
    async fn session(&self) -> Result<Box<dyn Executor>, SqlError> {
        // bb8 reports a failed connection attempt only to its error sink and lets the caller
        // wait for its timeout; dial here when no idle connection is there, so the caller
        // gets the real error at once.
        let state = self.pool.state();
        if state.idle_connections == 0 && state.connections < self.max_size {
            let connection = dial(&self.config, self.config.command_timeout).await?;
            if let Err(bb8::AddError::NoCapacity(connection) | bb8::AddError::Broken(connection)) =
                self.pool.add(connection)
            {
                // Filled up meanwhile: use it unpooled (closed when dropped).
                return Ok(Box::new(connection));
            }
        }
        match self.pool.get_owned().await {
            Ok(connection) => Ok(Box::new(Pooled(connection))),
            Err(bb8::RunError::User(error)) => Err(error),
            Err(bb8::RunError::TimedOut) => Err(SqlError::Pool(format!(
                "no connection to {} became free within {:?} (all {} in use)",
                self.config.display_name(),
                self.config.connect_timeout + Duration::from_secs(5),
                self.pool.state().connections
            ))),
        }
    }

    async fn admin_session(&self) -> Result<Box<dyn Executor>, SqlError> {
        let connection = dial(&self.config.with_database("master"), None).await?;
        Ok(Box::new(connection))
    }

    fn display_name(&self) -> String {
        self.config.display_name()
    }

    fn database(&self) -> String {
        self.config.database.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_fails_the_checkout_with_the_real_error() {
        // A port on this machine that nothing listens on: connection refused, at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut config = MssqlConfig::new("127.0.0.1", "db", "sa", "pw");
        config.port = Some(port);
        config.connect_timeout = Duration::from_secs(5);
        let pool = MssqlPool::new(config, PoolOptions::default());
        let error = match pool.session().await {
            Err(error) => error,
            Ok(_) => panic!("connected to a closed port"),
        };
        assert!(matches!(error, SqlError::Io { kind: std::io::ErrorKind::ConnectionRefused, .. }), "{error:?}");
        assert_eq!(pool.display_name(), format!("sa@127.0.0.1:{port}/db"));
    }

    #[tokio::test]
    async fn a_silent_server_times_out_within_the_connect_timeout() {
        // Accepts TCP but never answers the TDS pre-login.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mut config = MssqlConfig::new("127.0.0.1", "db", "sa", "pw");
        config.port = Some(port);
        config.connect_timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let error = dial(&config, None).await.err().unwrap();
        assert!(matches!(error, SqlError::Io { kind: std::io::ErrorKind::TimedOut, .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        silent.abort();
    }
}
