//! # dmf-postgres
//!
//! The PostgreSQL adapter of DMF, over tokio-postgres: a [`PgDatabase`] is one side of a
//! catalog-driven sync ([`dmf_core::sync::Database`]). It reads the catalog from
//! `pg_catalog`, reads tables in keyset pages ([`PgExtractor`]; all of them in one exported
//! snapshot for a [snapshot handle](dmf_core::sync::Database::snapshot)), writes them with binary
//! COPY ([`CopyFormat`]) and staged `INSERT … ON CONFLICT` ([`PgLoader`]) with the checkpoint in
//! the same transaction,
//! keeps run records in the `dmf` schema of the target (dmf-core's
//! [`SqlRunStore`](dmf_core::control::SqlRunStore) over a [`PgConnector`] speaking
//! [`PgDialect`]), and checks a server before a run writes to it (standby, read-only, control
//! tables).
//!
//! Errors are classified by SQLSTATE in one place ([`sqlstate_kind`], [`error_kind`]):
//! connection loss, deadlocks and lock timeouts are retried, constraint violations and bad
//! values isolate the offending rows, everything else stops the migration. Messages name the
//! server as `user@host:port/dbname` (never the password) and the table involved.
//!
//! Connections use TLS as libpq's settings say ([`SslMode`], [`TlsSettings`]): the URL's
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, or `PGSSLMODE` and the other variables,
//! over rustls; `pg_dump` and `pg_restore` ([`PgBackup`]) get the same settings.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use dmf_core::sync::{Database, DatabaseCheck, DatabaseRole, SyncMode, SyncPlan, sync_migrations};
//! use dmf_core::{Orchestrator, RunRequest};
//! use dmf_postgres::PgDatabase;
//!
//! # #[tokio::main] async fn main() -> dmf_core::Result<()> {
//! let source = Arc::new(PgDatabase::connect("postgres://reader:secret@prod.internal/shop").await?);
//! let target = Arc::new(PgDatabase::connect("postgres://dmf:secret@test.internal/shop").await?);
//!
//! let plan = SyncPlan::build(&source.read_catalog().await?, &target.read_catalog().await?, None, SyncMode::Upsert)?;
//! let mut orchestrator = Orchestrator::builder(target.run_store().await?)
//!     .preflight(DatabaseCheck::new(Arc::clone(&source), DatabaseRole::Source))
//!     .preflight(DatabaseCheck::new(Arc::clone(&target), DatabaseRole::Target))
//!     .preflight(plan.schema_check())
//!     .max_concurrency(4);
//! for migration in sync_migrations(&source, &target, &plan) {
//!     orchestrator = orchestrator.shared_migration(migration);
//! }
//! let summary = orchestrator.build()?.run(RunRequest::all()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backup;
mod catalog;
mod config;
mod control;
mod copy;
mod database;
mod error;
mod extract;
mod load;
mod native;
mod params;
mod passfile;
mod preflight;
mod ranges;
mod rules;
mod session;
mod snapshot;
mod sql;
mod tls;
mod trust;
mod types;

pub use backup::PgBackup;
pub use config::DEFAULT_CONNECT_TIMEOUT;
pub use control::PgConnector;
pub use copy::CopyFormat;
pub use database::PgDatabase;
pub use error::{error_kind, sqlstate_kind, to_dmf_error};
pub use extract::PgExtractor;
pub use load::PgLoader;
pub use sql::control::PgDialect;
pub use tls::{RootCert, SslMode, TlsSettings};
