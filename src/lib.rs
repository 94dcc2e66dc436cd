//! # DMF
//!
//! One dependency for DMF users: re-exports [`dmf_core`] (traits, engine, orchestrator, sync),
//! the database adapters ([`sqlite`], [`postgres`]) and [`dmf_testkit`] (in-memory fakes and
//! fault injection).

pub use dmf_core::*;
pub use dmf_postgres as postgres;
pub use dmf_sqlite as sqlite;
pub use dmf_testkit as testkit;
