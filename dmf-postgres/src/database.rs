//! [`PgDatabase`]: one PostgreSQL database as a side of a catalog-driven sync
//! ([`dmf_core::sync::Database`]).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use dmf_core::catalog::{Catalog, TableName};
use dmf_core::control::{DEFAULT_CALL_TIMEOUT, SqlRunStore};
use dmf_core::orchestrator::CheckOutcome;
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::sync::{Database, DatabaseRole, ExtractSpec, ForeignKeyTrust, KeyRange, LoadSpec, TrustedWrites};
use dmf_core::{Error, ErrorKind, Result, RunStore, Stage};
use tokio::sync::OnceCell;
use tokio_postgres::Client;

use crate::config::Connector;
use crate::control::PgConnector;
use crate::copy::CopyFormat;
use crate::error::to_dmf_error;
use crate::extract::PgExtractor;
use crate::load::PgLoader;
use crate::snapshot::ExportedSnapshot;
use crate::tls::TlsSettings;
use crate::{catalog, control, preflight, sql};

/// What a database's extractors, loaders and run store share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) connector: Connector,
    control_ready: OnceCell<()>,
}

impl Shared {
    /// Creates the control tables when missing, once per process for this database.
    pub(crate) async fn ensure_control_tables(&self, client: &mut Client) -> Result<()> {
        self.control_ready
            .get_or_try_init(|| control::ensure_control_tables(client, self.connector.name()))
            .await
            .map(|_| ())
    }
}

/// A PostgreSQL database: the source or the target of a sync.
///
/// Cheap to clone. It holds no connection itself: every extractor, loader and run store opens
/// its own on first use and reconnects after losing it.
///
/// | what | how |
/// |---|---|
/// | catalog | `pg_catalog`: tables of every non-system schema except `dmf`, keys, foreign keys |
/// | reading | keyset pages by key (text keys in byte order, `COLLATE "C"`), or by watermark then key |
/// | `full` | `TRUNCATE` of the synced tables (never `CASCADE`), then `COPY` into each table (binary; [`copy_format`](Self::copy_format)) |
/// | `upsert`, `diff`, `incremental` | `COPY` into a temporary stage, then `INSERT … ON CONFLICT DO UPDATE … WHERE IS DISTINCT FROM` |
/// | deletes | stage the keys, `DELETE … USING` the stage |
/// | checkpoints | `dmf.checkpoints`, in the transaction of each batch |
/// | run records | `dmf.runs`, `dmf.migration_runs`, `dmf.rejects` (dmf-core's [`SqlRunStore`] over [`control_connector`](Self::control_connector)) |
/// | [`snapshot`](Database::snapshot) | one connection in a read-only `REPEATABLE READ` transaction runs `pg_export_snapshot()` and stays open until the handle is dropped; each extractor's connection joins it with `SET TRANSACTION SNAPSHOT` |
///
/// A snapshot handle holds a transaction open on the server for as long as it lives (and each
/// of its extractors another): vacuum cannot clean up row versions newer than the snapshot in
/// the whole cluster meanwhile. Those sessions turn off `idle_in_transaction_session_timeout`
/// for themselves, since they are idle in a transaction between pages by design (a
/// `transaction_timeout`, PostgreSQL 17, still applies: a reader that cannot join the snapshot
/// any more fails the migration, saying so).
#[derive(Debug, Clone)]
pub struct PgDatabase {
    shared: Arc<Shared>,
    /// The exported snapshot that the extractors read (snapshot handles only).
    snapshot: Option<Arc<ExportedSnapshot>>,
    /// The format of the loaders' COPY data.
    copy_format: CopyFormat,
    /// How long a run-store call may go unanswered.
    call_timeout: Duration,
}

impl PgDatabase {
    /// Parses `url` (`postgres://user:password@host:port/dbname`, with libpq's TLS keys:
    /// `?sslmode=verify-full&sslrootcert=ca.crt`, see [`SslMode`](crate::SslMode)) and checks
    /// that the server answers and accepts the credentials. The error names the server (never
    /// the password): transient when it could not be reached, fatal when it refused the login
    /// or its certificate was refused (with the TLS settings and the reason).
    ///
    /// A URL without a password takes it from `PGPASSWORD` or the password file
    /// (`PGPASSFILE`, else `~/.pgpass`), as libpq does.
    pub async fn connect(url: &str) -> Result<Self> {
        let database = Self::lazy(url)?;
        database.client().await?;
        Ok(database)
    }

    /// Parses `url` without connecting; the first extractor, loader or check connects.
    pub fn lazy(url: &str) -> Result<Self> {
        Ok(Self::with_connector(Connector::parse(url)?))
    }

    /// Uses a tokio-postgres configuration built by hand (DMF sets `application_name` and a
    /// connect timeout when it has none), with TLS as its `ssl_mode` says (disable, prefer or
    /// require) and the certificates of `tls` (or of `PGSSLROOTCERT`, `PGSSLCERT` and
    /// `PGSSLKEY`); `tls` may set any of libpq's modes. The error says what is wrong with the
    /// TLS settings (a file missing, a mode that needs a root certificate).
    pub fn from_config(config: tokio_postgres::Config, tls: TlsSettings) -> Result<Self> {
        Ok(Self::with_connector(Connector::from_config(config, tls)?))
    }

    fn with_connector(connector: Connector) -> Self {
        Self {
            shared: Arc::new(Shared { connector, control_ready: OnceCell::new() }),
            snapshot: None,
            copy_format: CopyFormat::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// How long a call of the run store on this database (its control tables) may go
    /// unanswered before it is abandoned as a transient error (default
    /// [`DEFAULT_CALL_TIMEOUT`], 60 s). Loads are bounded by the engine's
    /// [`write_timeout`](dmf_core::EngineConfigBuilder::write_timeout), connecting by the
    /// URL's `connect_timeout`.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the format of the COPY data its loaders send: [`CopyFormat::Binary`] (the
    /// default) or [`CopyFormat::Text`]. Both load the same values; see [`CopyFormat`] for when
    /// a binary loader sends text anyway.
    pub fn copy_format(mut self, format: CopyFormat) -> Self {
        self.copy_format = format;
        self
    }

    /// The identifier of the snapshot this handle's extractors read (`pg_export_snapshot()`),
    /// for a [snapshot handle](Database::snapshot).
    pub fn snapshot_id(&self) -> Option<&str> {
        self.snapshot.as_deref().map(ExportedSnapshot::id)
    }

    /// Opens a new connection, for SQL of your own (a code-first migration's extractor, a
    /// check after a run). Its I/O runs on a spawned task until the client is dropped.
    pub async fn client(&self) -> Result<Client> {
        self.shared.connector.connect(Stage::Preflight).await
    }

    /// Creates the control tables in schema `dmf` when missing (what
    /// [`run_store`](Database::run_store) and the first loader do anyway).
    pub async fn create_control_tables(&self) -> Result<()> {
        let mut client = self.shared.connector.connect(Stage::RunStore).await?;
        self.shared.ensure_control_tables(&mut client).await
    }

    /// Sessions on this database for dmf-core's control plane: what
    /// [`run_store`](Database::run_store) runs on (after creating the control tables).
    pub fn control_connector(&self) -> PgConnector {
        PgConnector::new(Arc::clone(&self.shared), self.call_timeout)
    }
}

impl Database for PgDatabase {
    type Extractor = PgExtractor;
    type Loader = PgLoader;

    fn display_name(&self) -> String {
        match &self.snapshot {
            Some(snapshot) => format!("{} (snapshot {})", self.shared.connector.name(), snapshot.id()),
            None => self.shared.connector.name().to_owned(),
        }
    }

    async fn read_catalog(&self) -> Result<Catalog> {
        let client = self.client().await?;
        catalog::read_catalog(&client, self.shared.connector.name()).await
    }

    /// Prepares `query` (never runs it): PostgreSQL describes its result's columns and types.
    async fn describe_query(&self, query: &str) -> Result<Vec<dmf_core::catalog::Column>> {
        let client = self.client().await?;
        let statement = client.prepare(query).await.map_err(|e| {
            crate::error::to_dmf_error(e, Stage::Preflight, format!("preparing the query source `{query}`"))
        })?;
        Ok(statement
            .columns()
            .iter()
            .map(|column| {
                let name = column.type_().name();
                dmf_core::catalog::Column::new(column.name(), crate::types::data_type(Some(name), name), name)
            })
            .collect())
    }

    async fn triggers(&self, tables: &[TableName]) -> Result<Vec<dmf_core::catalog::Trigger>> {
        let client = self.client().await?;
        catalog::triggers(&client, self.shared.connector.name(), tables).await
    }

    /// `clear_tables` empties tables with `TRUNCATE`.
    fn clearing_event(&self) -> dmf_core::catalog::TriggerEvent {
        dmf_core::catalog::TriggerEvent::Truncate
    }

    async fn sequences(&self, tables: &[TableName]) -> Result<Vec<dmf_core::catalog::Sequence>> {
        let client = self.client().await?;
        catalog::sequences(&client, self.shared.connector.name(), tables).await
    }

    /// `setval` per sequence, the value bound, in one transaction (a `setval` is not undone
    /// by a rollback: a failure part-way leaves the earlier ones set, and the run's rollback
    /// sets them back from the values recorded before it).
    async fn set_sequences(&self, sequences: &[dmf_core::catalog::Sequence]) -> Result<()> {
        if sequences.is_empty() {
            return Ok(());
        }
        let mut client = self.shared.connector.connect(Stage::Load).await?;
        catalog::set_sequences(&mut client, self.shared.connector.name(), sequences).await
    }

    fn extractor(&self, spec: ExtractSpec) -> PgExtractor {
        PgExtractor::new(Arc::clone(&self.shared), spec, self.snapshot.clone())
    }

    async fn key_ranges(&self, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
        // Outside any snapshot: ranges read at another moment still cover every key.
        crate::ranges::key_ranges(&self.shared, spec, parts).await
    }

    fn loader(&self, spec: LoadSpec) -> PgLoader {
        PgLoader::new(Arc::clone(&self.shared), spec, self.copy_format)
    }

    async fn clear_tables(&self, tables: Vec<TableName>) -> Result<u64> {
        if tables.is_empty() {
            return Ok(0);
        }
        let names = tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let mut client = self.shared.connector.connect(Stage::Load).await?;
        let doing = format!("emptying {names} in {}", self.shared.connector.name());
        let outcome = async {
            let tx = client.transaction().await?;
            // An inheritance parent is emptied ONLY: its children are tables of their own.
            let mut relations = Vec::with_capacity(tables.len());
            for table in &tables {
                let kind = crate::catalog::relation_kind(tx.client(), table).await?;
                relations.push(sql::relation::relation(table, kind));
            }
            // TRUNCATE reports no row count: count first, in the same transaction.
            let deleted: i64 = tx.query_one(&sql::load::count_all(&relations), &[]).await?.get(0);
            tx.batch_execute(&sql::load::truncate(&relations)).await?;
            tx.commit().await.map(|()| deleted.max(0) as u64)
        }
        .await;
        outcome.map_err(|error| {
            let referenced = error.code().is_some_and(|c| *c == tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED);
            if !referenced {
                return to_dmf_error(error, Stage::Load, doing);
            }
            let detail = error.as_db_error().and_then(|db| db.detail()).unwrap_or_default().to_owned();
            Error::with_source(
                Stage::Load,
                ErrorKind::Fatal,
                format!(
                    "cannot empty {names} for a full sync: a table outside the sync references them ({detail}); \
                     DMF never truncates with CASCADE, so add the referencing table to the sync or empty it first"
                ),
                error,
            )
        })
    }

    async fn run_store(&self) -> Result<Arc<dyn RunStore>> {
        self.create_control_tables().await?;
        Ok(Arc::new(SqlRunStore::new(Arc::new(self.control_connector()))))
    }

    async fn preflight(&self, role: DatabaseRole) -> Vec<CheckOutcome> {
        preflight::check(&self.shared, role).await
    }

    async fn foreign_key_trust(
        &self,
        tables: &[TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> Result<ForeignKeyTrust> {
        let client = self.shared.connector.connect(Stage::Preflight).await?;
        crate::trust::decide(&client, self.shared.connector.name(), tables, writes, skip_triggers).await
    }

    /// Tables are named as the loads name them (`ONLY` for an inheritance parent; see
    /// `rules`).
    async fn find_violations(&self, check: &RuleCheck, sample: usize) -> Result<Violations> {
        let connector = crate::rules::connector(&self.shared, self.call_timeout, check).await?;
        dmf_core::quality::find_violations(&connector, check, sample).await
    }

    async fn snapshot(&self) -> Result<Self> {
        let snapshot = ExportedSnapshot::export(&self.shared.connector).await?;
        Ok(Self {
            shared: Arc::clone(&self.shared),
            snapshot: Some(Arc::new(snapshot)),
            copy_format: self.copy_format,
            call_timeout: self.call_timeout,
        })
    }
}
