//! Backup of a PostgreSQL target before a run writes to it (`pg_dump -Fc`), and the restore
//! that rolls back a run the undo log cannot undo (a `full` sync).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use dmf_core::{Backup, BackupRecord, Error, ErrorKind, Result, RunId, Stage};
use tokio::process::Command;
use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::config::parse_url;
use crate::tls::Tls;

/// Dumps the target database (every schema but DMF's `dmf`) with `pg_dump --format=custom`
/// into a directory, and restores such a dump with `pg_restore --clean --if-exists
/// --single-transaction` (the dumped tables are dropped and recreated as they were; DMF's
/// control tables are left alone, so the run record of the rollback survives it).
///
/// `pg_dump` and `pg_restore` are found on `PATH` or in `/usr/lib/postgresql/*/bin`; the
/// password goes through `PGPASSWORD`, never on a command line, and the TLS settings DMF's own
/// connections use (the URL's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, or the
/// environment's) through `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`.
#[derive(Clone)]
pub struct PgBackup {
    config: Config,
    tls: Tls,
    dir: PathBuf,
}

impl std::fmt::Debug for PgBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackup")
            .field("database", &self.config.get_dbname())
            .field("tls", &self.tls)
            .field("dir", &self.dir)
            .finish()
    }
}

impl PgBackup {
    /// Backs up the database `url` names into `dir` (created when missing). The error says
    /// what is wrong with the URL or its TLS settings (never showing the password).
    pub fn new(url: &str, dir: impl Into<PathBuf>) -> Result<Self> {
        let (config, tls) = parse_url(url)?;
        Ok(Self { config, tls, dir: dir.into() })
    }

    fn command(&self, tool: &Path) -> Command {
        let mut command = Command::new(tool);
        match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => {
                command.arg("--host").arg(host);
            }
            Some(Host::Unix(path)) => {
                command.arg("--host").arg(path);
            }
            None => {}
        }
        if let Some(port) = self.config.get_ports().first() {
            command.arg("--port").arg(port.to_string());
        }
        if let Some(user) = self.config.get_user() {
            command.arg("--username").arg(user);
        }
        if let Some(password) = self.config.get_password() {
            command.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
        }
        command.envs(self.tls.libpq_env());
        command.arg("--no-password").env("PGAPPNAME", "dmf-backup").kill_on_drop(true);
        command
    }

    fn database(&self) -> Result<&str> {
        self.config.get_dbname().ok_or_else(|| Error::Config("the PostgreSQL URL names no database to back up".into()))
    }
}

/// `pg_dump` or `pg_restore`: on `PATH`, else the newest in `/usr/lib/postgresql/*/bin`.
fn tool(name: &str) -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    let packaged = || {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin").join(name))
            .filter(|candidate| candidate.is_file())
            .collect();
        found.sort();
        found.pop()
    };
    on_path.or_else(packaged).ok_or_else(|| {
        Error::fatal(
            Stage::Backup,
            format!("`{name}` was not found (install the PostgreSQL client tools): no backup, nothing written"),
        )
    })
}

async fn run_tool(mut command: Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .await
        .map_err(|e| Error::with_source(Stage::Backup, ErrorKind::Fatal, format!("cannot start {what}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(Error::fatal(Stage::Backup, format!("{what} failed ({}): {}", output.status, stderr.trim())))
}

#[async_trait]
impl Backup for PgBackup {
    async fn backup(&self, run: RunId) -> Result<BackupRecord> {
        let database = self.database()?;
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            Error::with_source(Stage::Backup, ErrorKind::Fatal, format!("cannot create `{}`", self.dir.display()), e)
        })?;
        let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let file = self.dir.join(format!("{database}-before-run-{run}-{stamp}.dump"));
        let mut command = self.command(&tool("pg_dump")?);
        command
            .arg("--format=custom")
            .arg("--exclude-schema=dmf")
            .arg("--file")
            .arg(&file)
            .arg("--dbname")
            .arg(database);
        run_tool(command, &format!("pg_dump of `{database}`")).await?;
        Ok(BackupRecord {
            method: "pg_dump".into(),
            location: file.display().to_string(),
            taken_at: SystemTime::now(),
            size_bytes: std::fs::metadata(&file).ok().map(|m| m.len()),
        })
    }

    async fn restore(&self, record: &BackupRecord) -> Result<()> {
        let database = self.database()?;
        let mut command = self.command(&tool("pg_restore")?);
        command
            .arg("--clean")
            .arg("--if-exists")
            .arg("--single-transaction")
            .arg("--exit-on-error")
            .arg("--dbname")
            .arg(database)
            .arg(&record.location);
        run_tool(command, &format!("pg_restore of `{database}` from {}", record.location)).await
    }
}
