//! # dmf-sqlite
//!
//! The SQLite adapter of DMF, and its embedded default: a [`SqliteDatabase`] is a sync source
//! or target (catalog reader, keyset extractor, loader with the checkpoint in the same
//! transaction, control tables and the run store of dmf-core's control plane). A [snapshot
//! handle](dmf_core::sync::Database::snapshot) reads every table in one read transaction.
//!
//! SQLite work is blocking; it runs on the runtime's worker thread handed over with
//! `block_in_place` (multi-threaded runtime), so batches are written without copying them.
//!
//! How declared types map to DMF's neutral types, and how to keep exact decimals, is in
//! [`types`].
//!
//! ```no_run
//! # async fn demo() -> dmf_core::Result<()> {
//! use std::sync::Arc;
//! use dmf_core::sync::{Database, SyncMode, SyncPlan, sync_migrations};
//! use dmf_core::{Orchestrator, RunRequest};
//! use dmf_sqlite::SqliteDatabase;
//!
//! let source = Arc::new(SqliteDatabase::open("prod-copy.db")?);
//! let target = Arc::new(SqliteDatabase::open("test.db")?);
//! let plan = SyncPlan::build(&source.read_catalog().await?, &target.read_catalog().await?, None, SyncMode::Upsert)?;
//! let mut builder = Orchestrator::builder(target.run_store().await?).preflight(plan.schema_check());
//! for migration in sync_migrations(&source, &target, &plan) {
//!     builder = builder.shared_migration(migration);
//! }
//! let summary = builder.build()?.run(RunRequest::all()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

mod backup;
mod catalog;
mod connection;
mod control;
mod database;
pub mod error;
mod extract;
mod load;
mod ranges;
mod snapshot;
pub mod sql;
mod timestamp_text;
pub mod types;
mod undo;
mod writer;

pub use backup::SqliteBackup;
pub use catalog::read_catalog;
pub use control::{CONTROL_TABLES, SqliteConnector, SqliteDialect};
pub use database::{SqliteDatabase, path_of_url};
pub use extract::SqliteExtractor;
pub use load::SqliteLoader;
