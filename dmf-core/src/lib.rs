//! # dmf-core
//!
//! The dialect-neutral heart of DMF: the traits a migration is made of, the streaming batch
//! engine that runs them with bounded memory, and the orchestrator that runs many of them in
//! dependency order with run records, resume, pre-flight, backup, notifications and rollback.
//!
//! - [`pipeline`]: [`Extractor`] → [`Transformer`] + [`Rules`] → [`Loader`], joined by
//!   [`Pipeline`] into a [`DataMigration`].
//! - [`engine`]: batching, bounded channels, checkpoints, retry with backoff, reject policy,
//!   bisection of failing batches, cancellation ([`EngineConfig`]).
//! - [`orchestrator`]: [`Orchestrator`], [`RunStore`], [`Notifier`] ([`LogNotifier`], and
//!   `WebhookNotifier` with the crate feature `webhook`), [`PreflightCheck`], [`Backup`].
//! - [`progress`]: [`ProgressEvent`]s, and the `metrics` names in [`progress::metrics`].
//! - [`redact`]: [`redact_secrets`], which every message quoting a connection string goes
//!   through, whatever its form or scheme.
//!
//! Adapters (dmf-sqlite, dmf-postgres, dmf-mssql) provide extractors, loaders and run stores
//! for their database; dmf-testkit provides in-memory ones.
//!
//! A complete migration, on dmf-testkit's in-memory tables: legacy customers mapped to a new
//! schema (an unknown level is rejected by the transformer, a blank name by validation), run
//! with a run record and a reject quarantine, then rolled back. On a database the source and
//! target are one line each: `db.source::<Legacy>("legacy_customers")` and
//! `db.target::<Modern>("customers").await?.insert_or_skip()` ([`typed::TypedDatabase`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dmf_core::Result<()> {
//! use std::sync::Arc;
//! use dmf_core::{
//!     EngineConfig, Orchestrator, Pipeline, Record, RollbackTarget, Rules, RunRequest, RunStore, Transformed,
//!     transform_fn,
//! };
//! use dmf_testkit::{MemoryRunStore, MemoryTable};
//!
//! #[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Legacy { id: i64, name: String, level: String }
//! #[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Modern { id: i64, name: String, vip: bool }
//! impl Record for Legacy { fn key(&self) -> String { self.id.to_string() } }
//! impl Record for Modern { fn key(&self) -> String { self.id.to_string() } }
//!
//! let legacy = MemoryTable::new("legacy_customers");
//! legacy.insert_rows([("Ada", "GOLD"), ("Bob", "silver"), ("", "gold"), ("Eve", "TIN")].into_iter().zip(1..).map(
//!     |((name, level), id)| Legacy { id, name: name.into(), level: level.into() },
//! ));
//! let customers = MemoryTable::new("customers");
//!
//! let to_modern = transform_fn(|old: &Legacy| match old.level.to_uppercase().as_str() {
//!     "GOLD" => Transformed::Mapped(Modern { id: old.id, name: old.name.clone(), vip: true }),
//!     "SILVER" => Transformed::Mapped(Modern { id: old.id, name: old.name.clone(), vip: false }),
//!     level => Transformed::Rejected { reason: format!("unknown level `{level}`") },
//! });
//! let named = Rules::new().field("name", |c: &Modern| if c.name.is_empty() { Err("blank".into()) } else { Ok(()) });
//! let migration = Pipeline::new(legacy, to_modern, customers.clone()).named("customers").validate(named);
//!
//! let store = Arc::new(MemoryRunStore::new());
//! let orchestrator = Orchestrator::builder(store.clone())
//!     .engine(EngineConfig::builder().batch_size(1000).build()?)
//!     .migration(migration)
//!     .build()?;
//! let summary = orchestrator.run(RunRequest::all()).await?;
//! assert!(summary.succeeded());
//! assert_eq!((summary.totals().inserted, summary.totals().rejected), (2, 2));
//! let rejects = store.rejects(summary.run, None, 10, 0).await?;
//! assert!(rejects.iter().any(|r| r.reject.key == "4" && r.reject.reason == "unknown level `TIN`"));
//!
//! orchestrator.rollback(RollbackTarget::Run(summary.run)).await?;
//! assert_eq!(customers.len(), 0);
//! # Ok(()) }
//! ```

pub mod catalog;
mod checkpoint;
pub mod control;
pub mod engine;
mod error;
mod graph;
mod human;
mod migration;
mod names;
mod native;
pub mod orchestrator;
pub mod pipeline;
pub mod progress;
pub mod quality;
mod record;
pub mod redact;
pub mod sync;
pub mod typed;
mod value;

pub use checkpoint::{Checkpoint, Position};
pub use engine::{EngineConfig, EngineConfigBuilder, RejectLimit, RetryPolicy, RowRateLimit};
pub use error::{BoxError, Error, ErrorKind, Result, Stage, error_chain};
pub use graph::DependencyGraph;
pub use human::HumanDuration;
pub use migration::{Counts, DataMigration, MigrationContext, MigrationResult, RollbackReport};
pub use names::{MigrationName, RunId};
pub use native::{NativeEncoding, NativeRow, NativeRows, NativeSpan};
pub use orchestrator::{
    Backup, BackupRecord, CheckOutcome, CheckStatus, Lease, LeaseAcquired, LeaseClaim, LeaseClaimed, LeaseOptions,
    LeaseRecord, LogNotifier, MigrationRecord, MigrationStatus, Notifier, OnError, Orchestrator, OrchestratorBuilder,
    PreflightCheck, PreflightReport, RejectRecord, RollbackSummary, RollbackTarget, RunRecord, RunRequest, RunStatus,
    RunStore, RunSummary, TARGET_SCOPE, sort_in_plan_order,
};
#[cfg(feature = "webhook")]
pub use orchestrator::{WebhookBuilder, WebhookEvent, WebhookNotifier, WebhookPayload};
pub use pipeline::{
    Extractor, FnTransformer, Identity, LoadBatch, LoadOutcome, LoadReport, Loader, Pipeline, RowFailure, Rules,
    SourceBatch, Transformed, Transformer, ValidationReport, Validator, Violation, committed_insert, transform_fn,
};
pub use progress::{Phase, ProgressEvent, ProgressHub};
pub use record::{Record, Reject};
pub use redact::redact_secrets;
pub use tokio_util::sync::CancellationToken;
pub use value::{Row, RowShape, Value, canonical_decimal};
