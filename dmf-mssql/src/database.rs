//! [`MssqlDatabase`]: one SQL Server database as a side of a catalog-driven sync
//! ([`dmf_core::sync::Database`]).

use std::num::NonZeroUsize;
use std::sync::Arc;

use dmf_core::catalog::{Catalog, TableName};
use dmf_core::control::SqlRunStore;
use dmf_core::orchestrator::CheckOutcome;
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::sync::{Database, DatabaseRole, ExtractSpec, ForeignKeyTrust, KeyRange, LoadSpec, TrustedWrites};
use dmf_core::{Result, RunStore, Stage};
use tokio::sync::OnceCell;

use crate::backup::MssqlBackup;
use crate::config::{MssqlConfig, UpsertStrategy};
use crate::control::MssqlConnector;
use crate::error::to_dmf_error;
use crate::executor::{Connect, Executor};
use crate::extract::MssqlExtractor;
use crate::load::MssqlLoader;
use crate::notify::DbMailNotifier;
use crate::pool::{MssqlPool, PoolOptions};
use crate::trust::TrustMemory;
use crate::{catalog, control, preflight, sql};

/// How DMF treats one SQL Server database, beyond where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MssqlOptions {
    /// The database is production: as a target, DMF refuses to write into it when it is the
    /// primary replica of an availability group (and into a standalone production database
    /// too). Reading from it as a source is fine.
    pub production: bool,
    /// As a target, a synchronous-commit secondary that is unhealthy, suspended or not
    /// synchronizing is a warning instead of a refusal.
    pub allow_unhealthy_secondaries: bool,
    /// A secondary's log send or redo queue above this many KB is a warning (big MERGE loads
    /// make them grow).
    pub queue_warning_kb: i64,
    /// Never create the control tables: pre-flight fails when they are missing.
    pub read_only_control: bool,
    /// Pool sizes.
    pub pool: PoolOptions,
    /// As a target, how `upsert`, `diff` and `incremental` write the staged rows: with MERGE
    /// (the default), or without MERGE and `OUTPUT` (`UPDATE`, then `INSERT … WHERE NOT
    /// EXISTS`, counted by `@@ROWCOUNT`). An `upsert=` in the connection string overrides it
    /// ([`MssqlDatabase::from_config`]).
    pub upsert: UpsertStrategy,
}

impl Default for MssqlOptions {
    fn default() -> Self {
        Self {
            production: false,
            allow_unhealthy_secondaries: false,
            queue_warning_kb: 1_048_576,
            read_only_control: false,
            pool: PoolOptions::default(),
            upsert: UpsertStrategy::Merge,
        }
    }
}

/// What a database's extractors, loaders and run store share.
pub(crate) struct Shared {
    pub(crate) connector: Arc<dyn Connect>,
    pub(crate) options: MssqlOptions,
    control_ready: OnceCell<()>,
    /// The constraints trusted before the fast path's loads, to trust again after the proof
    /// (shared with the handles [`MssqlDatabase::with_options`] makes).
    pub(crate) trust: Arc<TrustMemory>,
}

impl Shared {
    /// Creates the control tables when missing, once per process for this database.
    pub(crate) async fn ensure_control_tables(&self, executor: &mut dyn Executor) -> Result<()> {
        let server = self.connector.display_name();
        self.control_ready.get_or_try_init(|| control::ensure_control_tables(executor, &server)).await.map(|_| ())
    }

    /// `user@host:port/database`.
    pub(crate) fn name(&self) -> String {
        self.connector.display_name()
    }
}

/// A SQL Server database: the source or the target of a sync.
///
/// Cheap to clone. Every extractor, loader and run store checks a session out of the pool on
/// first use and keeps it (a loader's `#dmf_stage` lives there), dropping it after any error.
///
/// | what | how |
/// |---|---|
/// | catalog | `sys.tables`, `sys.columns`, `sys.indexes`, `sys.foreign_keys`: every schema but `dmf`; identity, computed, rowversion and temporal period columns are never written |
/// | reading | keyset pages `SELECT TOP (n) … WHERE (k1 > @P2) OR (k1 = @P2 AND k2 > @P3) ORDER BY k1, k2`; text keys in code-point order, GUID keys by their text; or by a rowversion or date watermark, then the key |
/// | `full` | `DELETE` of the synced tables in one transaction (children first), then a bulk load into each table (`KEEP_IDENTITY`, `KEEP_NULLS`, `CHECK_CONSTRAINTS`, `FIRE_TRIGGERS`) with the checkpoint in the same transaction |
/// | `full`, fast path | the same bulk load without `CHECK_CONSTRAINTS` and `FIRE_TRIGGERS`; then one orphan query per foreign key (dmf-core's proof) and `ALTER TABLE … WITH CHECK CHECK CONSTRAINT` for each constraint that was trusted before and is not now; needs ALTER on the tables; tables with insert triggers stay on the path above unless `skip_target_triggers` |
/// | `upsert`, `diff`, `incremental` | bulk load into `#dmf_stage`, then one batch: `MERGE … WHEN MATCHED AND EXISTS (… EXCEPT …) THEN UPDATE … WHEN NOT MATCHED THEN INSERT … OUTPUT $action … INTO #dmf_merge_log`, `IDENTITY_INSERT` around it when needed, the undo log and the checkpoint, under `XACT_ABORT` in one transaction |
/// | the same, [`UpsertStrategy::UpdateInsert`] | the same stage and batch, with `UPDATE t … FROM <table> AS t WITH (UPDLOCK, SERIALIZABLE) JOIN #dmf_stage AS s …` of the rows that differ, then `INSERT … SELECT … WHERE NOT EXISTS (… WITH (UPDLOCK, SERIALIZABLE) …)` in place of the MERGE, counted by `@@ROWCOUNT`; no `OUTPUT` (the undo log's rows are selected first, under the same locks) |
/// | deletes | stage the keys, `DELETE t [OUTPUT …] FROM <table> AS t JOIN #dmf_stage AS s ON <key>` |
/// | checkpoints | `dmf.checkpoints`, in the transaction of each batch |
/// | run records | `dmf.runs`, `dmf.migration_runs`, `dmf.rejects`, by dmf-core's [`SqlRunStore`] over an [`MssqlConnector`] |
/// | pre-flight | connectivity and version, database state, Always On role and health, control tables |
#[derive(Clone)]
pub struct MssqlDatabase {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MssqlDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MssqlDatabase").field("server", &self.shared.name()).finish_non_exhaustive()
    }
}

impl MssqlDatabase {
    /// Parses `text` (an `mssql://` URL or an ADO.NET connection string) and checks that the
    /// server answers and accepts the login. Errors name the server, never the password.
    pub async fn connect(text: &str) -> Result<Self> {
        let database = Self::lazy(text)?;
        database.check_connection().await?;
        Ok(database)
    }

    /// Parses `text` without connecting; the first extractor, loader or check connects.
    pub fn lazy(text: &str) -> Result<Self> {
        Ok(Self::from_config(MssqlConfig::parse(text)?, MssqlOptions::default()))
    }

    /// A database from a configuration and options. An upsert strategy named in the
    /// connection string (`upsert=`) takes the place of `options.upsert`.
    pub fn from_config(config: MssqlConfig, options: MssqlOptions) -> Self {
        let options = MssqlOptions { upsert: config.upsert.unwrap_or(options.upsert), ..options };
        let pool = MssqlPool::new(config, options.pool);
        Self::with_connector(Arc::new(pool), options)
    }

    /// A database reached through any [`Connect`] (a [`ScriptedConnector`](crate::executor::ScriptedConnector)
    /// in tests).
    pub fn with_connector(connector: Arc<dyn Connect>, options: MssqlOptions) -> Self {
        Self::with_memory(connector, options, Arc::default())
    }

    fn with_memory(connector: Arc<dyn Connect>, options: MssqlOptions, trust: Arc<TrustMemory>) -> Self {
        Self { shared: Arc::new(Shared { connector, options, control_ready: OnceCell::new(), trust }) }
    }

    /// The same database with other options (all of them: start from
    /// [`options`](Self::options) to change one and keep the rest, such as an upsert
    /// strategy the connection string named).
    pub fn with_options(&self, options: MssqlOptions) -> Self {
        Self::with_memory(Arc::clone(&self.shared.connector), options, Arc::clone(&self.shared.trust))
    }

    /// The same database writing `upsert`, `diff` and `incremental` syncs with `strategy`.
    ///
    /// ```
    /// use dmf_mssql::{MssqlDatabase, UpsertStrategy};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let target = MssqlDatabase::lazy("mssql://dmf:secret@test-sql/Sales").unwrap();
    /// assert_eq!(target.options().upsert, UpsertStrategy::Merge, "the default");
    /// let target = target.with_upsert(UpsertStrategy::UpdateInsert);
    /// assert_eq!(target.options().upsert, UpsertStrategy::UpdateInsert);
    /// let named = MssqlDatabase::lazy("mssql://dmf:secret@test-sql/Sales?upsert=update_insert").unwrap();
    /// assert_eq!(named.options().upsert, UpsertStrategy::UpdateInsert);
    /// # }
    /// ```
    pub fn with_upsert(&self, strategy: UpsertStrategy) -> Self {
        self.with_options(MssqlOptions { upsert: strategy, ..self.shared.options.clone() })
    }

    /// The options.
    pub fn options(&self) -> &MssqlOptions {
        &self.shared.options
    }

    /// A session of its own, for SQL of your own (a check after a run).
    pub async fn session(&self) -> Result<Box<dyn Executor>> {
        self.shared.connector.session().await.map_err(|e| {
            to_dmf_error(e, Stage::Preflight, format!("cannot connect to SQL Server at {}", self.shared.name()))
        })
    }

    async fn check_connection(&self) -> Result<()> {
        let mut session = self.session().await?;
        session
            .query(sql::admin::PING, &[])
            .await
            .map_err(|e| to_dmf_error(e, Stage::Preflight, format!("asking {} to answer", self.shared.name())))?;
        Ok(())
    }

    /// Creates the control tables in schema `dmf` when missing (what
    /// [`run_store`](Database::run_store) and the first loader do anyway).
    pub async fn create_control_tables(&self) -> Result<()> {
        let mut session = self.session().await?;
        self.shared.ensure_control_tables(session.as_mut()).await
    }

    /// Sessions of dmf-core's control plane on this database ([`SqlRunStore`], the
    /// checkpoint statements), in [`MssqlDialect`](crate::MssqlDialect). The control tables
    /// must exist ([`create_control_tables`](Self::create_control_tables)).
    pub fn control_connector(&self) -> MssqlConnector {
        MssqlConnector::new(Arc::clone(&self.shared.connector))
    }

    /// The COPY_ONLY backup of this database into `directory` on the server (`None`: the
    /// server's default backup directory, SQL Server 2019 and later).
    pub fn backup(&self, directory: Option<&str>) -> MssqlBackup {
        MssqlBackup::new(Arc::clone(&self.shared.connector), directory.map(str::to_owned))
    }

    /// A Database Mail notifier sending through this server with `profile` to `recipients`
    /// (`;`-separated).
    pub fn mail_notifier(&self, profile: &str, recipients: &str) -> DbMailNotifier {
        DbMailNotifier::new(Arc::clone(&self.shared.connector), profile, recipients)
    }
}

impl Database for MssqlDatabase {
    type Extractor = MssqlExtractor;
    type Loader = MssqlLoader;

    fn display_name(&self) -> String {
        self.shared.name()
    }

    /// Reads the catalog; read again (up to three times in all) when the read failed for a
    /// transient reason, such as a table another session dropped while the query ran.
    async fn read_catalog(&self) -> Result<Catalog> {
        let mut attempt = 1;
        loop {
            let mut session = self.session().await?;
            match catalog::read_catalog(session.as_mut()).await {
                Ok(catalog) => return Ok(catalog),
                Err(error) if attempt < 3 && crate::error::error_kind(&error) == dmf_core::ErrorKind::Transient => {
                    tracing::debug!(attempt, error = %error, "reading the catalog again");
                    attempt += 1;
                }
                Err(error) => {
                    return Err(to_dmf_error(
                        error,
                        Stage::Preflight,
                        format!("reading the catalog of {}", self.shared.name()),
                    ));
                }
            }
        }
    }

    async fn triggers(&self, tables: &[TableName]) -> Result<Vec<dmf_core::catalog::Trigger>> {
        let mut session = self.session().await?;
        catalog::triggers(session.as_mut(), tables)
            .await
            .map_err(|e| to_dmf_error(e, Stage::Preflight, format!("reading the triggers of {}", self.shared.name())))
    }

    /// The identities of `tables` (`sys.identity_columns`), then the sequence objects (`CREATE
    /// SEQUENCE`) their defaults use (`sys.sequences`, matched by
    /// `sys.sql_expression_dependencies`), each once per table whose default names it.
    async fn sequences(&self, tables: &[TableName]) -> Result<Vec<dmf_core::catalog::Sequence>> {
        let mut session = self.session().await?;
        let mut counters = catalog::identities(session.as_mut(), tables).await.map_err(|e| {
            to_dmf_error(e, Stage::Preflight, format!("reading the identities of {}", self.shared.name()))
        })?;
        let sequences = catalog::sequences(session.as_mut(), tables).await.map_err(|e| {
            to_dmf_error(e, Stage::Preflight, format!("reading the sequences of {}", self.shared.name()))
        })?;
        counters.extend(sequences);
        Ok(counters)
    }

    /// One batch, in one transaction: `DBCC CHECKIDENT (…, RESEED, n)` per identity, and per
    /// sequence object `ALTER SEQUENCE … RESTART WITH n` followed by one `NEXT VALUE FOR` (or
    /// `RESTART` for one never used). An identity to be set
    /// back to "never used" (`None`) is left as it is: `RESEED` has no such value.
    async fn set_sequences(&self, sequences: &[dmf_core::catalog::Sequence]) -> Result<()> {
        let mut batch = String::new();
        let mut set = Vec::new();
        for sequence in sequences {
            match (sequence.kind, sequence.last_value) {
                (dmf_core::catalog::SequenceKind::TableCounter, Some(value)) => {
                    batch.push_str(&sql::load::set_identity(&sequence.table, value));
                }
                (dmf_core::catalog::SequenceKind::TableCounter, None) => {
                    tracing::warn!(%sequence, "an identity cannot be set back to unused: left as it is");
                    continue;
                }
                (dmf_core::catalog::SequenceKind::Sequence, value) => {
                    batch.push_str(&sql::load::set_sequence(&sequence.name, value));
                }
            }
            batch.push(' ');
            set.push(sequence.to_string());
        }
        if set.is_empty() {
            return Ok(());
        }
        let mut session = self.shared.connector.session().await.map_err(|e| {
            to_dmf_error(e, Stage::Load, format!("cannot connect to SQL Server at {}", self.shared.name()))
        })?;
        session
            .batch(&sql::load::set_counters(batch.trim_end()))
            .await
            .map(|_| ())
            .map_err(|e| to_dmf_error(e, Stage::Load, format!("setting {} in {}", set.join(", "), self.shared.name())))
    }

    fn extractor(&self, spec: ExtractSpec) -> MssqlExtractor {
        MssqlExtractor::new(Arc::clone(&self.shared), spec)
    }

    async fn key_ranges(&self, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
        let mut session = self.session().await?;
        crate::ranges::key_ranges(session.as_mut(), &self.shared.name(), spec, parts).await
    }

    fn loader(&self, spec: LoadSpec) -> MssqlLoader {
        MssqlLoader::new(Arc::clone(&self.shared), spec)
    }

    async fn clear_tables(&self, tables: Vec<TableName>) -> Result<u64> {
        if tables.is_empty() {
            return Ok(0);
        }
        let names = tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let mut session = self.shared.connector.session().await.map_err(|e| {
            to_dmf_error(e, Stage::Load, format!("cannot connect to SQL Server at {}", self.shared.name()))
        })?;
        let catalog = catalog::read_catalog(session.as_mut())
            .await
            .map_err(|e| to_dmf_error(e, Stage::Load, format!("reading the foreign keys of {names}")))?;
        let unlink = links_against(&catalog, &tables);
        let results = session.batch(&sql::load::clear(&tables, &unlink)).await.map_err(|error| {
            let doing = format!("emptying {names} in {}", self.shared.name());
            if error.number() == Some(547) {
                // A foreign key from a table outside the sync: no retry or bisection helps.
                return dmf_core::Error::with_source(
                    Stage::Load,
                    dmf_core::ErrorKind::Fatal,
                    format!(
                        "{doing}: {error}; a table outside the sync references them: add it to the sync or empty it first"
                    ),
                    error,
                );
            }
            to_dmf_error(error, Stage::Load, doing)
        })?;
        let deleted = results.last().and_then(|rows| rows.first()).map(|row| row.int_required(0)).transpose();
        let deleted =
            deleted.map_err(|e| to_dmf_error(e, Stage::Load, format!("counting the rows deleted from {names}")))?;
        Ok(deleted.unwrap_or(0).max(0) as u64)
    }

    /// dmf-core's [`SqlRunStore`] on this database's control tables, created first when
    /// missing.
    async fn run_store(&self) -> Result<Arc<dyn RunStore>> {
        self.create_control_tables().await?;
        Ok(Arc::new(SqlRunStore::new(Arc::new(self.control_connector()))))
    }

    async fn preflight(&self, role: DatabaseRole) -> Vec<CheckOutcome> {
        preflight::check(&self.shared, role).await
    }

    /// Allowed when the login may re-validate the constraints the bulk loads will leave not
    /// trusted (ALTER on the tables that have trusted ones); tables it may not ALTER, and
    /// tables with enabled insert triggers (unless `skip_triggers`), keep per-row checks.
    /// Remembers which constraints are trusted now, for
    /// [`after_trusted_load`](Database::after_trusted_load).
    /// Only bulk inserts skip checks on SQL Server: loads that also update or delete
    /// (`TrustedWrites::Any`) are not allowed to.
    async fn foreign_key_trust(
        &self,
        tables: &[TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> Result<ForeignKeyTrust> {
        if writes == TrustedWrites::Any {
            return Ok(ForeignKeyTrust {
                allowed: false,
                reason: "SQL Server skips foreign-key checks and triggers only in bulk inserts (without \
                         CHECK_CONSTRAINTS and FIRE_TRIGGERS), and these loads also update and delete"
                    .to_owned(),
                per_row_tables: Vec::new(),
                silences_triggers: true,
            });
        }
        crate::trust::decide(&self.shared, tables, skip_triggers).await
    }

    /// Re-validates, one `ALTER TABLE … WITH CHECK CHECK CONSTRAINT` each, the foreign keys and
    /// CHECK constraints of `tables` that were trusted before the bulk loads and are not now.
    async fn after_trusted_load(&self, tables: &[TableName]) -> Result<()> {
        crate::trust::restore(&self.shared, tables).await
    }

    async fn find_violations(&self, check: &RuleCheck, sample: usize) -> Result<Violations> {
        dmf_core::quality::find_violations(&self.control_connector(), check, sample).await
    }

    /// Refused: SQL Server cannot share one transaction's snapshot between sessions, and the
    /// extractors read in sessions of their own. The error names the alternative, a database
    /// snapshot read as the source.
    async fn snapshot(&self) -> Result<Self> {
        Err(snapshot_refused(&self.shared.name()))
    }
}

/// Why a SQL Server source cannot be read in one snapshot, and what to do instead.
fn snapshot_refused(server: &str) -> dmf_core::Error {
    dmf_core::Error::Config(format!(
        "cannot read {server} in one consistent snapshot: SQL Server sessions cannot share a snapshot, and DMF \
         reads each table in a session of its own; create a database snapshot instead (CREATE DATABASE <db>_snap \
         ON (NAME = <logical data file name>, FILENAME = '<path>.ss') AS SNAPSHOT OF <db>), sync from it as an \
         ordinary source, then DROP DATABASE <db>_snap"
    ))
}

/// For each of `tables` (in delete order: referencing tables first), its nullable
/// foreign-key columns that reference a table deleted before it: a cycle such as
/// departments ⇄ employees, which no delete order satisfies. Setting them to NULL first lets
/// the deletes run in order. A self-reference needs nothing (one `DELETE` removes the whole
/// table); a NOT NULL column cannot be unlinked and is left to the delete's error.
fn links_against(catalog: &Catalog, tables: &[TableName]) -> Vec<(TableName, Vec<String>)> {
    let position = |name: &TableName| tables.iter().position(|t| t == name);
    tables
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let table = catalog.table(name)?;
            let columns: Vec<String> = table
                .foreign_keys
                .iter()
                .filter(|fk| position(&fk.referenced_table).is_some_and(|j| j < i))
                .flat_map(|fk| fk.columns.iter())
                .filter(|c| table.column(c).is_some_and(|c| c.nullable))
                .cloned()
                .collect();
            (!columns.is_empty()).then(|| (name.clone(), columns))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use dmf_core::sync::Database;

    use super::*;

    #[test]
    fn only_foreign_keys_against_the_delete_order_are_unlinked() {
        use dmf_core::catalog::{Column, DataType, ForeignKey, Table};
        let name = |n: &str| TableName::new(Some("shop"), n);
        let column = |n: &str, nullable: bool| Column { nullable, ..Column::new(n, DataType::Int32, "int") };
        let fk = |columns: &[&str], to: &str| ForeignKey {
            name: format!("fk_{to}"),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            referenced_table: name(to),
            referenced_columns: vec!["id".into()],
            enforced: true,
        };
        let table = |n: &str, columns: Vec<Column>, foreign_keys: Vec<ForeignKey>| Table {
            name: name(n),
            columns,
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            foreign_keys,
        };
        let catalog = Catalog {
            tables: vec![
                table(
                    "employees",
                    vec![column("id", false), column("dept", false)],
                    vec![fk(&["dept"], "departments")],
                ),
                table(
                    "departments",
                    vec![column("id", false), column("head", true), column("parent", true), column("boss", false)],
                    vec![fk(&["head"], "employees"), fk(&["parent"], "departments"), fk(&["boss"], "employees")],
                ),
            ],
        };
        let order = [name("employees"), name("departments")];
        assert_eq!(
            links_against(&catalog, &order),
            [(name("departments"), vec!["head".to_owned()])],
            "the self-reference stays, the NOT NULL one cannot be unlinked"
        );
        assert_eq!(links_against(&catalog, &[name("departments"), name("employees")]), []);
    }

    #[tokio::test]
    async fn a_snapshot_is_refused_with_the_alternative() {
        let database = MssqlDatabase::lazy("mssql://dmf:secret@db.example/Sales").unwrap();
        let error = database.snapshot().await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, dmf_core::Error::Config(_)), "{text}");
        assert!(text.contains("cannot read dmf@db.example:1433/Sales in one consistent snapshot"), "{text}");
        assert!(text.contains("AS SNAPSHOT OF <db>"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
