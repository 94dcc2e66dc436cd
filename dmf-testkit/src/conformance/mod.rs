//! The behaviour every adapter's control plane must show, written once and run by each
//! adapter's own tests (the way opendal runs one behaviour suite for every service):
//!
//! - [`run_store`]: runs, migration records, backups and rejects round-trip through any
//!   [`RunStore`](dmf_core::RunStore), with the semantics of
//!   [`MemoryRunStore`](crate::MemoryRunStore);
//! - [`checkpoints`]: checkpoints written with the control plane's statement on a
//!   [`SqlConnector`](dmf_core::control::SqlConnector)'s session are read back by the run
//!   store, replaced, and cleared;
//! - [`leases`]: one holder per scope, renewal, expiry and take-over, release;
//! - [`sync`]: whole syncs over any [`Database`](dmf_core::sync::Database), on databases an
//!   adapter's [`SyncFixture`](sync::SyncFixture) creates: undo and rollback, quality rules,
//!   lost COMMIT answers;
//! - [`query_source`]: a JOIN read as a typed source resumes after a kill to an exact copy;
//! - [`row_rejects`]: a dirty batch loads in one pass, its bad rows rejected one by one.
//!
//! Each check panics with a message naming what differed, like an assertion in a test. The
//! store must be new (no runs yet).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! dmf_testkit::conformance::run_store(&dmf_testkit::MemoryRunStore::new()).await;
//! # }
//! ```

mod checkpoints;
mod leases;
pub mod query_source;
pub mod row_rejects;
mod run_store;
pub mod sync;

pub use checkpoints::checkpoints;
pub use leases::leases;
pub use run_store::run_store;
