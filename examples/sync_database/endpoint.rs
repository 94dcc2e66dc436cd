//! The database a `--source` or `--target` names, chosen by the form of its URL, and opening
//! it. A URL is only ever shown through [`redact_secrets`], whatever its scheme, so that a
//! mistyped one (`postgress://user:PASSWORD@host/db`) does not print its password.
//!
//! Also compiled into `tests/no_secret_in_messages.rs`, which feeds it broken URLs.

use std::sync::Arc;

use dmf_core::{Error, Result, redact_secrets};
use dmf_mssql::MssqlDatabase;
use dmf_postgres::{CopyFormat, PgDatabase};
use dmf_sqlite::SqliteDatabase;

/// A database named by a URL.
pub enum Endpoint {
    /// `sqlite://PATH`.
    Sqlite(Arc<SqliteDatabase>),
    /// `postgres://…`.
    Postgres(Arc<PgDatabase>),
    /// `mssql://…` or an ADO.NET string.
    Mssql(Arc<MssqlDatabase>),
}

/// The kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sqlite:PATH`, `sqlite://PATH`.
    Sqlite,
    /// `postgres://`, `postgresql://`.
    Postgres,
    /// `mssql://`, `sqlserver://`, or an ADO.NET string (`Server=…;…`, `Data Source=…;…`).
    Mssql,
}

impl Kind {
    /// The kind `url` names, by its scheme (ADO.NET keys in any case); an error showing the
    /// URL redacted when it names none.
    pub fn of(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres);
        }
        let lower = url.to_ascii_lowercase();
        let ado = !lower.contains("://") && (lower.contains("server=") || lower.contains("data source="));
        if url.starts_with("mssql://") || url.starts_with("sqlserver://") || ado {
            return Ok(Self::Mssql);
        }
        Err(Error::Config(format!(
            "`{}`: unsupported URL (use sqlite://PATH, postgres://USER@HOST/DB, mssql://USER@HOST/DB or an ADO.NET \
             string Server=HOST;Database=DB;User Id=USER;Password=…)",
            redact_secrets(url)
        )))
    }
}

/// Opens `sqlite://PATH` (which must exist), or connects to PostgreSQL (whose loaders send
/// COPY data in `copy_format`) or SQL Server. Errors never show a password.
pub async fn open(url: &str, copy_format: CopyFormat) -> Result<Endpoint> {
    Ok(match Kind::of(url)? {
        Kind::Sqlite => Endpoint::Sqlite(Arc::new(SqliteDatabase::from_url(url)?)),
        Kind::Postgres => Endpoint::Postgres(Arc::new(PgDatabase::connect(url).await?.copy_format(copy_format))),
        Kind::Mssql => Endpoint::Mssql(Arc::new(MssqlDatabase::connect(url).await?)),
    })
}
