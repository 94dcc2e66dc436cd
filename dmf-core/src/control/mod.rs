//! One control plane for every adapter: run records, migration records, rejects and
//! checkpoints kept in the target's control tables by code written once, over a small
//! [`SqlSession`] / [`SqlConnector`] pair and a [`ControlDialect`] that each adapter provides.
//!
//! An adapter keeps what is truly its own (sessions, type mapping, bulk paths, catalog,
//! error classification) and hands [`SqlRunStore`] a connector:
//!
//! ```
//! use std::sync::Arc;
//! use dmf_core::control::{ControlDialect, SqlConnector, SqlRunStore};
//!
//! fn store(connector: Arc<dyn SqlConnector>) -> SqlRunStore {
//!     SqlRunStore::new(connector)
//! }
//! # let _ = store;
//! ```
//!
//! The same behaviour is checked for every adapter by dmf-testkit's conformance suite.

pub mod checkpoints;
mod decode;
mod dialect;
mod leases;
mod run_store;
mod session;
pub mod tables;

pub use dialect::{ControlDialect, limit_offset_page};
pub use run_store::SqlRunStore;
pub use session::{DEFAULT_CALL_TIMEOUT, SqlConnector, SqlSession};
