//! Shared fixtures for dmf-core's integration tests: a small row type and pipeline builders.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dmf_core::{EngineConfig, Extractor, Loader, Pipeline, RejectLimit, RetryPolicy, Transformed, Transformer};
use dmf_testkit::MemoryTable;

/// A source row: `value` decides its fate in [`Rules`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub id: i64,
    pub value: i64,
}

impl dmf_core::Record for Row {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// Rows with ids 1..=n and value = id.
pub fn rows(n: i64) -> Vec<Row> {
    (1..=n).map(|id| Row { id, value: id }).collect()
}

pub fn source(n: i64) -> MemoryTable<Row> {
    let table = MemoryTable::new("source");
    table.insert_rows(rows(n));
    table
}

/// Rejects values divisible by `reject_every`, skips those divisible by `skip_every`, doubles
/// the rest (0 disables a rule).
pub struct Rules {
    pub reject_every: i64,
    pub skip_every: i64,
}

impl Transformer for Rules {
    type Input = Row;
    type Output = Row;

    fn transform(&self, row: &Row) -> Transformed<Row> {
        if self.reject_every > 0 && row.value % self.reject_every == 0 {
            Transformed::Rejected { reason: format!("value {} is divisible by {}", row.value, self.reject_every) }
        } else if self.skip_every > 0 && row.value % self.skip_every == 0 {
            Transformed::Skipped { reason: "skipped by rule".into() }
        } else {
            Transformed::Mapped(Row { id: row.id, value: row.value * 2 })
        }
    }
}

pub fn plain() -> Rules {
    Rules { reject_every: 0, skip_every: 0 }
}

pub fn pipeline<E, L>(name: &str, extractor: E, rules: Rules, loader: L) -> Pipeline<E, Rules, L>
where
    E: Extractor<Item = Row>,
    L: Loader<Item = Row>,
{
    Pipeline::new(extractor, rules, loader).named(name)
}

/// Fast retries, small batches, unlimited rejects.
pub fn config(batch_size: usize) -> EngineConfig {
    EngineConfig::builder()
        .batch_size(batch_size)
        .pipeline_depth(2)
        .retry(fast_retry(4))
        .reject_limit(RejectLimit::Unlimited)
        .build()
        .expect("valid config")
}

pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        factor: 2.0,
        jitter: true,
    }
}

pub fn store() -> Arc<dmf_testkit::MemoryRunStore> {
    Arc::new(dmf_testkit::MemoryRunStore::new())
}

/// A context for running one migration directly, outside an orchestrator.
pub fn context(run: i64, config: EngineConfig, store: Arc<dmf_testkit::MemoryRunStore>) -> dmf_core::MigrationContext {
    dmf_core::MigrationContext::new(dmf_core::RunId(run), Arc::new(config), store)
}

/// The error under an [`dmf_core::Error::Interrupted`] (which only adds the partial counts).
pub fn cause(error: dmf_core::Error) -> dmf_core::Error {
    match error {
        dmf_core::Error::Interrupted { source, .. } => *source,
        other => other,
    }
}
