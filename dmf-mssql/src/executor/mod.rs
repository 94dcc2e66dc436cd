//! The narrow door through which the adapter talks to SQL Server: an [`Executor`] runs
//! statements on one session, a [`Connect`] opens sessions.
//!
//! Everything above this module (catalog reader, pre-flight, extractor, loader, run store,
//! backup, notifier) is written against these two traits only, so the same code runs against
//! a real server ([`MssqlPool`](crate::MssqlPool), over tiberius) and against a
//! [`ScriptedConnector`] that records every statement and answers from a script — which is
//! how the flows are tested on machines without SQL Server.
//!
//! | method | tiberius call | use |
//! |---|---|---|
//! | [`Executor::query`] | `Client::query` (`sp_executesql`) | parameterised SELECTs, and batches with parameters that return one result set |
//! | [`Executor::execute`] | `Client::execute` (`sp_executesql`) | parameterised writes |
//! | [`Executor::batch`] | `Client::simple_query` (a SQL batch) | `CREATE TABLE #temp`, `SET …`, `BACKUP`: anything that must outlive one RPC or cannot be parameterised |
//! | [`Executor::bulk_insert`] | `Client::bulk_insert_with_options` | loading rows into the stage or an emptied table |

pub(crate) mod guard;
mod null_params;
pub mod scripted;
pub(crate) mod tiberius_exec;

use async_trait::async_trait;
use dmf_core::Value;
use tiberius::{ColumnData, TokenRow};

pub use scripted::{Recorded, RecordedKind, Response, Script, ScriptedConnector, ScriptedExecutor};

/// One row of a result set, as tiberius decoded it (values in select-list order).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlRow(pub Vec<ColumnData<'static>>);

impl SqlRow {
    /// A row of `values` (for scripted result sets).
    pub fn new(values: Vec<ColumnData<'static>>) -> Self {
        Self(values)
    }

    /// The cell at `index`, or a conversion error naming it.
    pub fn cell(&self, index: usize) -> Result<&ColumnData<'static>, SqlError> {
        self.0.get(index).ok_or_else(|| SqlError::Conversion(format!("the result row has no column {index}")))
    }

    /// An integer cell of any width (tinyint to bigint, and bit), NULL as `None`.
    pub fn int(&self, index: usize) -> Result<Option<i64>, SqlError> {
        Ok(match self.cell(index)? {
            ColumnData::U8(v) => v.map(i64::from),
            ColumnData::I16(v) => v.map(i64::from),
            ColumnData::I32(v) => v.map(i64::from),
            ColumnData::I64(v) => *v,
            ColumnData::Bit(v) => v.map(i64::from),
            ColumnData::Numeric(v) => v.and_then(|n| i64::try_from(n.int_part()).ok()),
            other => return Err(unexpected(index, "an integer", other)),
        })
    }

    /// A boolean cell (bit, or an integer where 0 is false), NULL as `None`.
    pub fn bool(&self, index: usize) -> Result<Option<bool>, SqlError> {
        Ok(match self.cell(index)? {
            ColumnData::Bit(v) => *v,
            _ => self.int(index)?.map(|n| n != 0),
        })
    }

    /// A text cell (char, varchar, nchar, nvarchar, xml), NULL as `None`.
    pub fn text(&self, index: usize) -> Result<Option<String>, SqlError> {
        Ok(match self.cell(index)? {
            ColumnData::String(v) => v.as_ref().map(|s| s.to_string()),
            ColumnData::Xml(v) => v.as_ref().map(|x| x.to_string()),
            other => return Err(unexpected(index, "text", other)),
        })
    }

    /// A text cell that must not be NULL.
    pub fn text_required(&self, index: usize) -> Result<String, SqlError> {
        self.text(index)?.ok_or_else(|| SqlError::Conversion(format!("column {index} of the result row is NULL")))
    }

    /// An integer cell that must not be NULL.
    pub fn int_required(&self, index: usize) -> Result<i64, SqlError> {
        self.int(index)?.ok_or_else(|| SqlError::Conversion(format!("column {index} of the result row is NULL")))
    }

    /// Every cell as a [`Value`], by the type the server sent (`datetime2` as a timestamp
    /// without zone, `bit` as a boolean, `nvarchar` as text…).
    pub fn values(&self) -> Result<Vec<Value>, SqlError> {
        self.0
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                crate::types::decode(cell)
                    .map_err(|problem| SqlError::Conversion(format!("column {index} of the result row: {problem}")))
            })
            .collect()
    }
}

fn unexpected(index: usize, wanted: &str, got: &ColumnData<'_>) -> SqlError {
    SqlError::Conversion(format!("column {index} of the result row is not {wanted} but {}", variant_name(got)))
}

/// The tiberius variant's name, for messages.
pub(crate) fn variant_name(data: &ColumnData<'_>) -> &'static str {
    match data {
        ColumnData::U8(_) => "tinyint",
        ColumnData::I16(_) => "smallint",
        ColumnData::I32(_) => "int",
        ColumnData::I64(_) => "bigint",
        ColumnData::F32(_) => "real",
        ColumnData::F64(_) => "float",
        ColumnData::Bit(_) => "bit",
        ColumnData::String(_) => "string",
        ColumnData::Guid(_) => "uniqueidentifier",
        ColumnData::Binary(_) => "binary",
        ColumnData::Numeric(_) => "numeric",
        ColumnData::Xml(_) => "xml",
        ColumnData::DateTime(_) => "datetime",
        ColumnData::SmallDateTime(_) => "smalldatetime",
        ColumnData::Time(_) => "time",
        ColumnData::Date(_) => "date",
        ColumnData::DateTime2(_) => "datetime2",
        ColumnData::DateTimeOffset(_) => "datetimeoffset",
    }
}

/// Options of a bulk load (`INSERT BULK … WITH (…)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkOptions {
    /// Identity values come from the rows (`KeepIdentity`).
    pub keep_identity: bool,
    /// NULLs stay NULL instead of taking the column default (`KEEP_NULLS`).
    pub keep_nulls: bool,
    /// Foreign-key and check constraints are checked, so they stay trusted
    /// (`CHECK_CONSTRAINTS`). Without it SQL Server checks neither and marks both not trusted.
    pub check_constraints: bool,
    /// A bulk-update table lock (`TABLOCK`).
    pub table_lock: bool,
    /// The table's insert triggers fire, once per bulk load with every loaded row in
    /// `inserted` (`FIRE_TRIGGERS`). Without it no trigger fires.
    pub fire_triggers: bool,
}

/// An error from SQL Server or from the way to it, in a form the adapter can classify
/// ([`error_kind`](crate::error_kind)) and the scripted executor can produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The server refused the statement: `number` is the SQL Server error number.
    #[error("SQL Server error {number} (severity {class}, state {state}): {message}")]
    Server {
        /// The error number (`1205` deadlock, `2627` unique key…).
        number: u32,
        /// Severity.
        class: u8,
        /// State.
        state: u8,
        /// The server's message.
        message: String,
    },
    /// The connection broke or timed out (a command timeout is `TimedOut`).
    #[error("I/O error talking to SQL Server ({kind:?}): {message}")]
    Io {
        /// What kind of I/O failure.
        kind: std::io::ErrorKind,
        /// The description.
        message: String,
    },
    /// The TLS handshake failed (certificate not trusted, protocol mismatch).
    #[error("TLS handshake with SQL Server failed: {0}")]
    Tls(String),
    /// The TDS conversation went wrong (also: a connection poisoned by a cancelled call).
    #[error("TDS protocol error: {0}")]
    Protocol(String),
    /// The server asked to reconnect elsewhere, more often than DMF follows.
    #[error("SQL Server redirected the connection to {host}:{port}")]
    Routing {
        /// Where to.
        host: String,
        /// Which port.
        port: u16,
    },
    /// A value did not convert (bulk input of the wrong type, text not in the column's code
    /// page, an unexpected result column).
    #[error("value conversion: {0}")]
    Conversion(String),
    /// No connection could be had from the pool in time.
    #[error("connection pool: {0}")]
    Pool(String),
}

impl SqlError {
    /// A server error with `number` and `message` (severity 16, state 1), as the scripted
    /// executor and tests produce them.
    pub fn server(number: u32, message: impl Into<String>) -> Self {
        Self::Server { number, class: 16, state: 1, message: message.into() }
    }

    /// The SQL Server error number, for server errors.
    pub fn number(&self) -> Option<u32> {
        match self {
            Self::Server { number, .. } => Some(*number),
            _ => None,
        }
    }
}

/// tiberius's TLS failure in DMF's terms: why the certificate did not verify (its first
/// sentence, with rustls's reason spelt out) and what to give DMF, instead of tiberius's advice
/// in terms of its own API.
fn tls_reason(message: &str) -> String {
    let first = message.split(". To connect anyway").next().unwrap_or(message);
    let reasons = [
        ("UnknownIssuer", "unknown CA: the certificate is not signed by a CA DMF trusts"),
        ("NotValidForName", "wrong host name: the certificate does not name the host connected to"),
        ("Expired", "expired certificate"),
        ("NotValidYet", "certificate not valid yet"),
        ("Revoked", "revoked certificate"),
        (
            "CaUsedAsEndEntity",
            "the server presents a CA certificate as its own (a self-signed certificate without a server \
             certificate's extensions and subject alternative names)",
        ),
    ];
    let reason = reasons.iter().find(|(code, _)| first.contains(code)).map(|(_, reason)| *reason);
    let advice = "give the CA that signed the server's certificate with trust_server_certificate_ca=PATH \
                  (ADO.NET: TrustServerCertificateCA=PATH), or trust_server_certificate=true on a trusted network only";
    match reason {
        Some(reason) => format!("{reason} ({first}); {advice}"),
        None => format!("{first}; {advice}"),
    }
}

impl From<tiberius::error::Error> for SqlError {
    fn from(error: tiberius::error::Error) -> Self {
        use tiberius::error::Error as T;
        match error {
            T::Server(token) => Self::Server {
                number: token.code(),
                class: token.class(),
                state: token.state(),
                message: token.message().to_owned(),
            },
            T::Io { kind, message } => Self::Io { kind, message },
            T::Tls(message) => Self::Tls(tls_reason(&message)),
            T::Protocol(message) => Self::Protocol(message.into_owned()),
            T::Routing { host, port } => Self::Routing { host, port },
            T::Encoding(m) | T::Conversion(m) | T::BulkInput(m) => Self::Conversion(m.into_owned()),
            T::Utf8 => Self::Conversion("text is not valid UTF-8".into()),
            T::Utf16 => Self::Conversion("text is not valid UTF-16 (a lone surrogate?)".into()),
            T::ParseInt(e) => Self::Conversion(e.to_string()),
            #[allow(unreachable_patterns)]
            other => Self::Protocol(other.to_string()),
        }
    }
}

/// One session with SQL Server: statements run one at a time, in order, on the same
/// connection (so `#temp` tables and `SET` options of earlier batches are visible).
///
/// Stored as `Box<dyn Executor>` (a database hands out sessions whose concrete type depends
/// on the [`Connect`] behind it), so it uses `async-trait`.
///
/// After any error the caller drops the session: tiberius leaves a connection poisoned after
/// an error or a cancelled call, and `#temp` tables, `IDENTITY_INSERT` and open transactions
/// would otherwise leak into the next use.
#[async_trait]
pub trait Executor: Send {
    /// Runs `sql` through `sp_executesql` with `params` bound as `@P1`, `@P2`…, and returns
    /// the rows of its first result set.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, SqlError>;

    /// Runs `sql` through `sp_executesql` with `params` bound as `@P1`, `@P2`…, and returns
    /// the total of rows affected.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError>;

    /// Runs `sql` as a plain SQL batch (no parameters) and returns every result set.
    async fn batch(&mut self, sql: &str) -> Result<Vec<Vec<SqlRow>>, SqlError>;

    /// Bulk-loads `rows` into `table` (already quoted, e.g. `#dmf_stage` or `[dbo].[T]`);
    /// `columns` are bracket-quoted names, each row's values in that order and of exactly
    /// the column's TDS type. Returns the rows loaded.
    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        options: BulkOptions,
        rows: Vec<TokenRow<'static>>,
    ) -> Result<u64, SqlError>;
}

/// Opens sessions with one database.
///
/// Stored as `Arc<dyn Connect>` inside a [`MssqlDatabase`](crate::MssqlDatabase), so it uses
/// `async-trait`.
#[async_trait]
pub trait Connect: Send + Sync + 'static {
    /// A session for the database's ordinary work (command timeout as configured).
    async fn session(&self) -> Result<Box<dyn Executor>, SqlError>;

    /// A session for long administrative statements (BACKUP, RESTORE) on the `master`
    /// database, without a command timeout.
    async fn admin_session(&self) -> Result<Box<dyn Executor>, SqlError>;

    /// The database as shown to people: `user@host:port/database`, never a password.
    fn display_name(&self) -> String;

    /// The database's name (`Sales`), for statements that name it.
    fn database(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_integers_of_every_width() {
        let row = SqlRow::new(vec![
            ColumnData::U8(Some(7)),
            ColumnData::I16(Some(-3)),
            ColumnData::I32(None),
            ColumnData::I64(Some(1 << 40)),
            ColumnData::Bit(Some(true)),
            ColumnData::String(Some("x".into())),
        ]);
        assert_eq!(row.int(0).unwrap(), Some(7));
        assert_eq!(row.int(1).unwrap(), Some(-3));
        assert_eq!(row.int(2).unwrap(), None);
        assert_eq!(row.int(3).unwrap(), Some(1 << 40));
        assert_eq!(row.bool(4).unwrap(), Some(true));
        assert_eq!(row.text(5).unwrap().as_deref(), Some("x"));
        assert!(
            row.int(5).unwrap_err().to_string().contains("column 5 of the result row is not an integer but string")
        );
        assert!(row.cell(9).is_err());
        let values = row.values().unwrap();
        assert_eq!(values[..2], [Value::Int(7), Value::Int(-3)]);
        assert_eq!(values[2..], [Value::Null, Value::Int(1 << 40), Value::Bool(true), Value::Text("x".into())]);
    }

    #[test]
    fn tiberius_errors_keep_their_number_and_kind() {
        let io = tiberius::error::Error::Io { kind: std::io::ErrorKind::ConnectionReset, message: "reset".into() };
        assert_eq!(
            SqlError::from(io),
            SqlError::Io { kind: std::io::ErrorKind::ConnectionReset, message: "reset".into() }
        );
        let routing = tiberius::error::Error::Routing { host: "node2".into(), port: 1433 };
        assert_eq!(SqlError::from(routing).to_string(), "SQL Server redirected the connection to node2:1433");
        assert_eq!(SqlError::server(1205, "deadlock").number(), Some(1205));
        let bulk = tiberius::error::Error::BulkInput("invalid data type".into());
        assert_eq!(SqlError::from(bulk), SqlError::Conversion("invalid data type".into()));
    }
}
