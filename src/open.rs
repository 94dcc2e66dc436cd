//! Opening a database from its URL: the registry of adapters, chosen by the URL's scheme at run
//! time, each behind a Cargo feature of this crate (the table is in [`open`]'s docs).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use dmf_core::sync::AnyDatabase;
use dmf_core::{Backup, Error, Result, redact_secrets};

/// The kind of database a URL names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `sqlite:PATH`, `sqlite://PATH`.
    Sqlite,
    /// `postgres://`, `postgresql://`.
    Postgres,
    /// `mssql://`, `sqlserver://`, or an ADO.NET string (`Server=…;…`, `Data Source=…;…`, keys
    /// in any case).
    Mssql,
}

impl Scheme {
    /// The kind `url` names, whether or not its adapter is compiled in; an error naming the
    /// URL's scheme, with the URL redacted, when it names none.
    ///
    /// ```
    /// use dmf::Scheme;
    ///
    /// assert_eq!(Scheme::of("postgresql://app@db.example/shop")?, Scheme::Postgres);
    /// assert_eq!(Scheme::of("Server=sql1,1433;Database=Sales;User Id=app;Password=S3cret")?, Scheme::Mssql);
    /// let error = Scheme::of("postgress://app:S3cret@db.example/shop").unwrap_err().to_string();
    /// assert!(error.contains("unsupported URL scheme `postgress`"), "{error}");
    /// assert!(!error.contains("S3cret"), "{error}");
    /// # Ok::<(), dmf::Error>(())
    /// ```
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
        // Only the text before `://`, and only when it is made of a scheme's characters: a
        // password comes after it.
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme)
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(String::new(), |scheme| format!(" scheme `{scheme}`"));
        Err(Error::Config(format!(
            "`{}`: unsupported URL{scheme} (use sqlite://PATH, postgres://USER@HOST/DB, mssql://USER@HOST/DB or an \
             ADO.NET string Server=HOST;Database=DB;User Id=USER;Password=…)",
            redact_secrets(url)
        )))
    }

    /// The Cargo feature of this crate that compiles its adapter in.
    pub fn feature(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mssql => "mssql",
        }
    }

    /// Whether its adapter is compiled in.
    pub fn is_enabled(self) -> bool {
        match self {
            Self::Sqlite => cfg!(feature = "sqlite"),
            Self::Postgres => cfg!(feature = "postgres"),
            Self::Mssql => cfg!(feature = "mssql"),
        }
    }

    /// The error for a URL of this kind when its adapter is not compiled in.
    fn not_compiled_in(self, url: &str) -> Error {
        Error::Config(format!(
            "`{}`: {self} support is not compiled in: build dmf with its `{}` feature",
            redact_secrets(url),
            self.feature()
        ))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::Mssql => "SQL Server",
        })
    }
}

/// How [`open`] opens a database, beyond its URL: [`OpenOptions::new`] gives the defaults,
/// which [`open`] uses.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let url = format!("sqlite://{}", dir.path().join("new.db").display());
/// assert!(dmf::open(&url).await.is_err(), "a missing file is an error by default");
/// let database = dmf::OpenOptions::new().create_missing(true).open(&url).await?;
/// # let _ = database;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    create_missing: bool,
    #[cfg(feature = "postgres")]
    copy_format: dmf_postgres::CopyFormat,
}

impl OpenOptions {
    /// The defaults: a SQLite file must exist; PostgreSQL loaders send binary COPY data.
    pub fn new() -> Self {
        Self::default()
    }

    /// SQLite: create the file, empty, when it is missing. Off by default, so that a mistyped
    /// path is an error rather than a new empty database.
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// PostgreSQL: the format of the COPY data its loaders send
    /// ([`PgDatabase::copy_format`](dmf_postgres::PgDatabase::copy_format); binary by
    /// default). With the `postgres` feature only.
    #[cfg(feature = "postgres")]
    pub fn copy_format(mut self, format: dmf_postgres::CopyFormat) -> Self {
        self.copy_format = format;
        self
    }

    /// Opens the database `url` names, as [`open`] does, with these options.
    pub async fn open(&self, url: &str) -> Result<AnyDatabase> {
        let scheme = Scheme::of(url)?;
        match scheme {
            #[cfg(feature = "sqlite")]
            Scheme::Sqlite => {
                let path = dmf_sqlite::path_of_url(url)?;
                let database = if self.create_missing {
                    dmf_sqlite::SqliteDatabase::create(path)?
                } else {
                    dmf_sqlite::SqliteDatabase::open(path)?
                };
                Ok(AnyDatabase::new(database))
            }
            #[cfg(feature = "postgres")]
            Scheme::Postgres => {
                let database = dmf_postgres::PgDatabase::connect(url).await?.copy_format(self.copy_format);
                Ok(AnyDatabase::new(database))
            }
            #[cfg(feature = "mssql")]
            Scheme::Mssql => Ok(AnyDatabase::new(dmf_mssql::MssqlDatabase::connect(url).await?)),
            #[allow(unreachable_patterns)]
            other => Err(other.not_compiled_in(url)),
        }
    }
}

/// Opens the database `url` names, whatever its kind, with the default [`OpenOptions`]: a
/// SQLite file must exist; a server is connected to once, to check that it answers and accepts
/// the login.
///
/// | URL | adapter | feature |
/// |---|---|---|
/// | `sqlite://PATH`, `sqlite:PATH` | `dmf::sqlite::SqliteDatabase` | `sqlite` (default) |
/// | `postgres://…`, `postgresql://…` | `dmf::postgres::PgDatabase` | `postgres` |
/// | `mssql://…`, `sqlserver://…`, an ADO.NET string (`Server=…;…`, `Data Source=…;…`) | `dmf::mssql::MssqlDatabase` | `mssql` |
///
/// The database comes back as an [`AnyDatabase`], which every entry point of
/// [`dmf::sync`](dmf_core::sync) and [`dmf::quality`](dmf_core::quality) takes;
/// [`AnyDatabase::downcast_ref`] reaches the adapter's own type.
///
/// Errors never show a password: an unknown scheme names the scheme and the redacted URL, a
/// kind whose feature is off names the feature, a server that cannot be reached is named as
/// `user@host:port/db` (such an error is transient: a retry may help; the others are not).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use dmf::sync::{Database, SyncJob, SyncMode};
///
/// let dir = tempfile::tempdir()?;
/// let (source, target) = (dir.path().join("prod.db"), dir.path().join("test.db"));
/// rusqlite::Connection::open(&source)?.execute_batch(
///     "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);
///      INSERT INTO items VALUES (1, 'one'), (2, 'two');",
/// )?;
/// rusqlite::Connection::open(&target)?.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);")?;
///
/// // Any two URLs: sqlite://, postgres://, mssql:// (with the features on).
/// let source = dmf::open(&format!("sqlite://{}", source.display())).await?;
/// let target = dmf::open(&format!("sqlite://{}", target.display())).await?;
/// let summary = SyncJob::new(Arc::new(source), Arc::new(target), SyncMode::Full).run(dmf::RunRequest::all()).await?;
/// assert_eq!(summary.migration("items").map(|m| m.counts.inserted), Some(2));
///
/// let error = dmf::open("postgress://app:S3cret@db.example/shop").await.unwrap_err();
/// assert!(error.to_string().starts_with("invalid configuration: `postgress://app:***@db.example/shop`"), "{error}");
/// assert!(!error.is_transient(), "a retry cannot help");
/// # Ok(()) }
/// ```
pub async fn open(url: &str) -> Result<AnyDatabase> {
    OpenOptions::new().open(url).await
}

/// The [`Backup`] of `database`, which [`open`] opened from `url`, into `dir`: SQLite's online
/// backup of the file, PostgreSQL's `pg_dump -Fc` (which reads its connection from `url`; the
/// password goes through `PGPASSWORD`, never a command line), SQL Server's `BACKUP … WITH
/// COPY_ONLY` into `dir` on the server. Nothing is written until the backup runs.
///
/// An error when `database` is of no adapter compiled in (a test double), or of another kind
/// than `url` names.
pub fn backup(database: &AnyDatabase, url: &str, dir: impl AsRef<Path>) -> Result<Arc<dyn Backup>> {
    let dir = dir.as_ref();
    match Scheme::of(url)? {
        #[cfg(feature = "sqlite")]
        Scheme::Sqlite => {
            let sqlite =
                database.downcast_ref::<dmf_sqlite::SqliteDatabase>().ok_or_else(|| mismatch(database, url))?;
            Ok(Arc::new(dmf_sqlite::SqliteBackup::new(sqlite.path(), dir)))
        }
        #[cfg(feature = "postgres")]
        Scheme::Postgres => {
            database.downcast_ref::<dmf_postgres::PgDatabase>().ok_or_else(|| mismatch(database, url))?;
            Ok(Arc::new(dmf_postgres::PgBackup::new(url, dir)?))
        }
        // A directory on the SQL Server machine: BACKUP … WITH COPY_ONLY writes it there.
        #[cfg(feature = "mssql")]
        Scheme::Mssql => {
            let mssql = database.downcast_ref::<dmf_mssql::MssqlDatabase>().ok_or_else(|| mismatch(database, url))?;
            Ok(Arc::new(mssql.backup(Some(&dir.display().to_string()))))
        }
        #[allow(unreachable_patterns)]
        other => {
            let _ = (database, dir);
            Err(other.not_compiled_in(url))
        }
    }
}

/// `database` is not the one `url` names (or not of its adapter: a test double).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mssql"))]
fn mismatch(database: &AnyDatabase, url: &str) -> Error {
    use dmf_core::sync::Database;
    Error::Config(format!("{}: no backup: it is not the database `{}`", database.display_name(), redact_secrets(url)))
}
