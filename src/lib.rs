//! # DMF
//!
//! One dependency for DMF users: re-exports [`dmf_core`] (traits, engine, orchestrator, sync)
//! and the database adapters, each behind a Cargo feature.
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | `dmf::sqlite` (dmf-sqlite) |
//! | `postgres` | `dmf::postgres` (dmf-postgres) |
//! | `mssql` | `dmf::mssql` (dmf-mssql) |
//! | `dashboard` | `dmf::dashboard` (dmf-dashboard): the web dashboard and its JSON API |
//! | `webhook` | `WebhookNotifier` (an HTTP client: reqwest on hyper) |
//!
//! With `--no-default-features --features sqlite` the build holds no HTTP client, no SQL
//! Server driver and no PostgreSQL driver (`scripts/test` checks it with `cargo tree`).

pub use dmf_core::*;
#[cfg(feature = "dashboard")]
pub use dmf_dashboard as dashboard;
#[cfg(feature = "mssql")]
pub use dmf_mssql as mssql;
#[cfg(feature = "postgres")]
pub use dmf_postgres as postgres;
#[cfg(feature = "sqlite")]
pub use dmf_sqlite as sqlite;
