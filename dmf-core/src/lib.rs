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
//! ```
//! use dmf_core::{Pipeline, Record, Rules, Transformed, transform_fn};
//!
//! #[derive(serde::Serialize)]
//! struct Legacy { id: i64, level: String }
//! #[derive(serde::Serialize)]
//! struct Modern { id: i64, vip: bool }
//! impl Record for Legacy { fn key(&self) -> String { self.id.to_string() } }
//! impl Record for Modern { fn key(&self) -> String { self.id.to_string() } }
//!
//! let to_modern = transform_fn(|old: &Legacy| match old.level.as_str() {
//!     "GOLD" => Transformed::Mapped(Modern { id: old.id, vip: true }),
//!     "" => Transformed::Rejected { reason: format!("level is empty") },
//!     _ => Transformed::Mapped(Modern { id: old.id, vip: false }),
//! });
//! # let _ = to_modern;
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
