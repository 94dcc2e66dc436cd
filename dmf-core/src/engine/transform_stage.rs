//! Transform and validate one batch: each record becomes mapped, skipped or rejected.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{Either, FutureExt};

use super::ExtractedBatch;
use crate::checkpoint::{Checkpoint, Position};
use crate::error::{Error, Result, Stage};
use crate::pipeline::{Rules, Transformed, Transformer};
use crate::record::{Record, Reject};

/// A batch after transformation, ready for the loader.
pub(crate) struct TransformedBatch<O> {
    pub(crate) seq: u64,
    /// Records read (after any resume skip).
    pub(crate) read: u64,
    /// The mapped, valid records, in source order.
    pub(crate) mapped: Vec<O>,
    /// For each mapped record, its index among the batch's records.
    pub(crate) source_index: Vec<u64>,
    pub(crate) skipped: u64,
    pub(crate) rejects: Vec<Reject>,
    pub(crate) start: Checkpoint,
    pub(crate) end: Position,
    pub(crate) elapsed: Duration,
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<O> TransformedBatch<O> {
    /// The checkpoint once the first `handled` records of this batch are done.
    pub(crate) fn checkpoint_after(&self, handled: u64) -> Checkpoint {
        if handled >= self.read {
            Checkpoint::at(self.end.clone())
        } else {
            Checkpoint { position: self.start.position.clone(), skip: self.start.skip + handled, done: false }
        }
    }
}

/// Transforms a batch, on another worker thread when `spawn` (transform concurrency > 1).
pub(crate) fn transform<T: Transformer>(
    batch: ExtractedBatch<T::Input>,
    transformer: &Arc<T>,
    rules: &Arc<Rules<T::Output>>,
    spawn: bool,
) -> impl Future<Output = Result<TransformedBatch<T::Output>>> + Send + use<T> {
    if spawn {
        let (transformer, rules) = (Arc::clone(transformer), Arc::clone(rules));
        Either::Left(tokio::spawn(async move { transform_now(batch, &*transformer, &rules) }).map(|joined| {
            joined
                .map_err(|e| Error::with_source(Stage::Transform, crate::ErrorKind::Fatal, "transform task failed", e))
        }))
    } else {
        Either::Right(futures::future::ready(Ok(transform_now(batch, &**transformer, rules))))
    }
}

fn transform_now<T: Transformer>(
    batch: ExtractedBatch<T::Input>,
    transformer: &T,
    rules: &Rules<T::Output>,
) -> TransformedBatch<T::Output> {
    let started = Instant::now();
    let ExtractedBatch { seq, records, start, end, _permit } = batch;
    let mut mapped = Vec::with_capacity(records.len());
    let mut source_index = Vec::with_capacity(records.len());
    let mut skipped = 0;
    let mut rejects = Vec::new();
    let read = records.len() as u64;
    for (index, record) in records.into_iter().enumerate() {
        let record = match transformer.pass_through(record) {
            Ok(output) => {
                match validate(rules, &output) {
                    None => {
                        mapped.push(output);
                        source_index.push(index as u64);
                    }
                    Some(reason) => rejects.push(Reject::of(Stage::Validate, &output, reason)),
                }
                continue;
            }
            Err(record) => record,
        };
        // A panic on one odd record becomes that record's reject, not a crashed run.
        let outcome = catch_unwind(AssertUnwindSafe(|| transformer.transform(&record))).unwrap_or_else(|panic| {
            Transformed::Rejected { reason: format!("transformer panicked: {}", panic_text(&panic)) }
        });
        match outcome {
            Transformed::Mapped(output) => match validate(rules, &output) {
                None => {
                    mapped.push(output);
                    source_index.push(index as u64);
                }
                Some(reason) => {
                    let mut reject = Reject::of(Stage::Validate, &output, reason);
                    reject.key = record.key();
                    rejects.push(reject);
                }
            },
            Transformed::Skipped { reason } => {
                tracing::trace!(key = %record.key(), %reason, "skipped");
                skipped += 1;
            }
            Transformed::Rejected { reason } => rejects.push(Reject::of(Stage::Transform, &record, reason)),
        }
    }
    TransformedBatch {
        seq,
        read,
        mapped,
        source_index,
        skipped,
        rejects,
        start,
        end,
        elapsed: started.elapsed(),
        _permit,
    }
}

/// The validation report's text when `output` breaks a rule.
fn validate<O: 'static>(rules: &Rules<O>, output: &O) -> Option<String> {
    if rules.is_empty() {
        return None;
    }
    let report = rules.check(output);
    (!report.is_valid()).then(|| report.to_string())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
