//! # DMF
//!
//! One dependency for DMF users: re-exports [`dmf_core`] (traits, engine, orchestrator, sync),
//! the database adapters, each behind a Cargo feature, and [`open`], which opens a database
//! from its URL as an [`AnyDatabase`](dmf_core::sync::AnyDatabase), whatever its kind.
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | `dmf::sqlite` (dmf-sqlite), and `sqlite://` URLs in [`open`] |
//! | `postgres` | `dmf::postgres` (dmf-postgres), and `postgres://` URLs |
//! | `mssql` | `dmf::mssql` (dmf-mssql), and `mssql://` URLs and ADO.NET strings |
//! | `dashboard` | `dmf::dashboard` (dmf-dashboard): the web dashboard and its JSON API |
//! | `webhook` | `WebhookNotifier` (an HTTP client: reqwest on hyper) |
//!
//! With `--no-default-features --features sqlite` the build holds no HTTP client, no SQL
//! Server driver and no PostgreSQL driver (`scripts/test` checks it with `cargo tree`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dmf::sync::Database;
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("shop.db").display());
//! let database = dmf::OpenOptions::new().create_missing(true).open(&url).await?;
//! assert!(database.read_catalog().await?.tables.is_empty());
//! # Ok(()) }
//! ```

mod open;

pub use dmf_core::*;
#[cfg(feature = "dashboard")]
pub use dmf_dashboard as dashboard;
#[cfg(feature = "mssql")]
pub use dmf_mssql as mssql;
#[cfg(feature = "postgres")]
pub use dmf_postgres as postgres;
#[cfg(feature = "sqlite")]
pub use dmf_sqlite as sqlite;
pub use open::{OpenOptions, Scheme, backup, open};
