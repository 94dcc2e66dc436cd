//! # DMF
//!
//! One dependency for DMF users: re-exports [`dmf_core`] (traits, engine, orchestrator) and
//! [`dmf_testkit`] (in-memory fakes and fault injection). Database adapters come as their own
//! crates.

pub use dmf_core::*;
pub use dmf_testkit as testkit;
