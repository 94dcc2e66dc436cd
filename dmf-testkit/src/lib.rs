//! # dmf-testkit
//!
//! In-memory fakes for testing migrations without a database, used by DMF's own tests the way
//! a user would use them:
//!
//! - [`MemoryTable`]: a table that is both an extractor and a loader (atomic batches with
//!   checkpoints, unique constraints, an undo log for rollback), read whole or in key ranges
//!   ([`MemoryTable::key_ranges`], [`MemoryRange`]);
//! - [`MemoryRunStore`] and [`RecordingNotifier`];
//! - fault injection: [`FaultPlan`] with [`FaultyLoader`] / [`FaultyExtractor`] (fail at call
//!   N, transient failures, poison rows, slow stages, crashes that drop the run mid-flight, lost
//!   COMMIT answers, calls held at a [`Gate`]), and [`FaultyDatabase`], which injects them into
//!   the loaders and extractors of any [`Database`](dmf_core::sync::Database) (PostgreSQL,
//!   SQLite, …) per table or per migration;
//! - [`CountingLoader`]: counts the calls and rows a loader is sent (one pass, or re-sends);
//! - [`rendezvous`]: proves by events, not timing, that calls held at gates ran at the same time;
//! - [`at_gates`] and [`cancel_at`]: act at points of a run the test chose (cancel it, change
//!   the source between two batches) while a call waits at a gate;
//! - [`LegacyGenerator`]: deterministic legacy-customer rows, about 2 % of them dirty;
//! - [`conformance`]: the behaviour every adapter's tests check: its control plane, and whole
//!   syncs (undo and rollback, quality rules, lost COMMIT answers) on databases it creates.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dmf_core::Result<()> {
//! use std::sync::Arc;
//! use dmf_core::{Identity, Orchestrator, Pipeline, RunRequest};
//! use dmf_testkit::{LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable};
//!
//! let source = MemoryTable::new("legacy");
//! source.insert_rows(LegacyGenerator::new(1).rows(1..=500));
//! let target = MemoryTable::new("copy");
//! let pipeline = Pipeline::new(source, Identity::<LegacyCustomer>::default(), target.clone()).named("copy");
//! let summary = Orchestrator::builder(Arc::new(MemoryRunStore::new())).migration(pipeline).build()?
//!     .run(RunRequest::all()).await?;
//! assert!(summary.succeeded());
//! assert_eq!(target.len(), 500);
//! # Ok(()) }
//! ```

mod at_gates;
pub mod conformance;
mod counting;
mod faults;
mod faulty_database;
mod legacy;
mod memory_table;
mod notifier;
mod proxy;
mod run_store;

pub use at_gates::{Unreached, at_gates, cancel_at};
pub use counting::{CountingLoader, LoadCalls};
pub use faults::{Apart, CrashSwitch, FaultPlan, FaultyExtractor, FaultyLoader, Gate, rendezvous, until_crash};
pub use faulty_database::FaultyDatabase;
pub use legacy::{Dirt, LegacyCustomer, LegacyGenerator};
pub use memory_table::{MemoryRange, MemoryTable};
pub use notifier::RecordingNotifier;
pub use proxy::TcpProxy;
pub use run_store::MemoryRunStore;
