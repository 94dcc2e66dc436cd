//! # dmf-mssql
//!
//! The SQL Server adapter of DMF, over tiberius 0.13: an [`MssqlDatabase`] is one side of a
//! catalog-driven sync ([`dmf_core::sync::Database`]). It reads the catalog from `sys.*`,
//! reads tables in keyset pages ([`MssqlExtractor`]), writes them with bulk loads and one
//! `MERGE … OUTPUT $action` batch per batch ([`MssqlLoader`]; or, with
//! [`UpsertStrategy::UpdateInsert`], an `UPDATE` and an `INSERT … WHERE NOT EXISTS` under
//! key-range locks) with the checkpoint in the same transaction, keeps run records in the `dmf` schema of the target (dmf-core's
//! [`SqlRunStore`](dmf_core::control::SqlRunStore) over an [`MssqlConnector`], in [`MssqlDialect`]),
//! checks a server before a run writes to it (version, database state, Always On role and
//! health, control tables), takes a verified COPY_ONLY backup ([`MssqlBackup`]) and can mail
//! the summary through Database Mail ([`DbMailNotifier`]).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use dmf_core::sync::{Database, DatabaseCheck, DatabaseRole, SyncMode, SyncPlan, sync_migrations};
//! use dmf_core::{Orchestrator, RunRequest};
//! use dmf_mssql::MssqlDatabase;
//!
//! # #[tokio::main] async fn main() -> dmf_core::Result<()> {
//! let source = Arc::new(MssqlDatabase::connect("Server=prod-ag-listener,1433;Database=Sales;User Id=reader;\
//!     Password=secret;ApplicationIntent=ReadOnly;TrustServerCertificate=true").await?);
//! let target = Arc::new(MssqlDatabase::connect("mssql://dmf:secret@test-sql:1433/Sales?trust_server_certificate=true").await?);
//!
//! let plan = SyncPlan::build(&source.read_catalog().await?, &target.read_catalog().await?, None, SyncMode::Upsert)?;
//! let mut orchestrator = Orchestrator::builder(target.run_store().await?)
//!     .preflight(DatabaseCheck::new(Arc::clone(&source), DatabaseRole::Source))
//!     .preflight(DatabaseCheck::new(Arc::clone(&target), DatabaseRole::Target))
//!     .preflight(plan.schema_check())
//!     .backup(target.backup(Some("/var/opt/mssql/backup")))
//!     .notifier(target.mail_notifier("dmf", "ops@example.com"))
//!     .max_concurrency(4);
//! for migration in sync_migrations(&source, &target, &plan) {
//!     orchestrator = orchestrator.shared_migration(migration);
//! }
//! let summary = orchestrator.build()?.run(RunRequest::all()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```
//!
//! ## How it is built
//!
//! | piece | where |
//! |---|---|
//! | connection strings and URLs ([`MssqlConfig`]), passwords never shown | `config` |
//! | the pool of tiberius connections (bb8, a manager of our own), broken connections discarded | [`MssqlPool`] |
//! | the only door to the server: [`Executor`] (one session) and [`Connect`] (opens sessions); a [`ScriptedConnector`](executor::ScriptedConnector) for tests | [`executor`] |
//! | every T-SQL statement, as pure functions tested by exact text and by parsing | `sql` |
//! | SQL Server types ⇄ neutral types and values ([`SqlType`]) | `types` |
//! | error numbers → transient / data / fatal ([`number_kind`], [`error_kind`]) | `error` |
//! | the control tables (created, inspected), and the [`MssqlConnector`] dmf-core's control plane runs on | `control` |
//! | catalog, pre-flight, extractor, loader, backup, notifier | one module each |
//!
//! Every value travels as a bound parameter (`@P1`…, through `sp_executesql`) or a bulk-load
//! row; identifiers are always bracket-quoted with `]` doubled. `#temp` tables are created by
//! plain batches, since a `#table` made inside `sp_executesql` is gone when it returns.
//!
//! ## Requirements
//!
//! SQL Server 2016 (13.x) or later, Azure SQL Managed Instance, or Azure SQL Database (no
//! backup there). A SQL login (no Windows authentication in this build). TLS through rustls:
//! SQL Server's self-generated certificate is refused (`TrustServerCertificate=true` for
//! development, or install a real certificate).
//!
//! ## Tested how
//!
//! Without a server: every statement by exact text and by `sqlparser`'s `MsSqlDialect`
//! (plus sqlfluff's T-SQL parser through `scripts/lint-tsql.sh`), and every flow against the
//! scripted executor. Over the wire: the tests in `tests/live_*.rs`, run when
//! `DMF_TEST_MSSQL_URL` is set (`scripts/test` starts Babelfish for them; see the README).

#![warn(missing_docs)]

mod backup;
mod catalog;
mod config;
mod control;
mod database;
mod error;
pub mod executor;
mod extract;
mod load;
mod notify;
mod pool;
mod preflight;
mod ranges;
mod session;
mod sql;
mod trust;
mod types;

pub use backup::{BACKUP_METHOD, MssqlBackup};
pub use config::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, Encryption, MssqlConfig, Password, UpsertStrategy,
    redact,
};
pub use control::MssqlConnector;
pub use database::{MssqlDatabase, MssqlOptions};
pub use error::{error_kind, number_kind, to_dmf_error};
pub use executor::{BulkOptions, Connect, Executor, SqlError, SqlRow};
pub use extract::MssqlExtractor;
pub use load::MssqlLoader;
pub use notify::DbMailNotifier;
pub use pool::{MssqlPool, PoolOptions};
pub use sql::control::MssqlDialect;
pub use types::{Length, SqlType, unsupported_reason};
