//! The streaming batch engine: extract → transform + validate → load, joined by bounded
//! channels, with checkpoints, retries, rejects, bisection and cancellation.
//!
//! Three stages run at once inside one task:
//!
//! ```text
//!  extractor ──(permit, batch)──▶ transform ×N ──(in order)──▶ loader ──▶ permit released
//! ```
//!
//! A batch takes one of `pipeline_depth` permits *before* it is read and gives it back once it
//! is committed, so at most `pipeline_depth × batch_size` rows are ever in flight, whatever the
//! size of the source. Batches reach the loader in source order, so checkpoints only move
//! forward.

mod config;
mod in_flight;
mod load_stage;
mod retry;
mod throttle;
mod transform_stage;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};

pub use config::{
    DEFAULT_READ_TIMEOUT, DEFAULT_WRITE_TIMEOUT, EngineConfig, EngineConfigBuilder, RejectLimit, RetryPolicy,
};
pub(crate) use retry::Retrier;
#[cfg(feature = "webhook")]
pub(crate) use retry::backoff;
pub use throttle::RowRateLimit;

use crate::checkpoint::{Checkpoint, Position};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::migration::{Counts, MigrationContext, MigrationResult};
use crate::names::MigrationName;
use crate::pipeline::{Extractor, Loader, Rules, SourceBatch, Transformer};
use crate::progress::{Phase, ProgressEvent, metrics};
use in_flight::InFlight;

/// A batch as read, before transformation.
struct ExtractedBatch<T> {
    seq: u64,
    records: Vec<T>,
    /// The checkpoint just before the batch's first record.
    start: Checkpoint,
    /// The extractor's position after the batch.
    end: Position,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// How the extract stage ended.
enum ExtractEnd {
    Exhausted,
    Cancelled,
}

/// Everything the stages of one execution share.
pub(crate) struct Execution<'a> {
    pub(crate) name: &'a MigrationName,
    pub(crate) ctx: &'a MigrationContext,
    pub(crate) retries: AtomicU64,
    pub(crate) in_flight: InFlight,
    /// Counts of the batches committed so far, kept for the error when the run stops early.
    pub(crate) counts: std::sync::Mutex<Counts>,
    /// The extractor's scope, stored with every checkpoint.
    pub(crate) scope: Option<String>,
}

impl Execution<'_> {
    fn retrier(&self, stage: Stage) -> Retrier<'_> {
        Retrier::new(self.ctx.config.retry(), stage, self.name, &self.ctx.cancel, &self.retries)
    }
}

/// Runs one migration's pipeline to the end (or to the first unrecoverable error), resuming
/// from the loader's checkpoint.
pub(crate) async fn run_pipeline<E, T, L>(
    name: &MigrationName,
    extractor: &mut E,
    transformer: &Arc<T>,
    rules: &Arc<Rules<T::Output>>,
    loader: &mut L,
    ctx: &MigrationContext,
) -> Result<MigrationResult>
where
    E: Extractor<Item = T::Input>,
    T: Transformer,
    L: Loader<Item = T::Output>,
{
    let exec = Execution {
        name,
        ctx,
        retries: AtomicU64::new(0),
        in_flight: InFlight::new(name),
        counts: std::sync::Mutex::new(Counts::default()),
        scope: extractor.scope(),
    };
    match run_stages(&exec, extractor, transformer, rules, loader).await {
        Ok(result) => Ok(result),
        Err(error) => {
            let counts = *exec.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if counts.read == 0 {
                Err(error)
            } else {
                Err(Error::Interrupted { migration: name.clone(), counts, source: Box::new(error) })
            }
        }
    }
}

async fn run_stages<E, T, L>(
    exec: &Execution<'_>,
    extractor: &mut E,
    transformer: &Arc<T>,
    rules: &Arc<Rules<T::Output>>,
    loader: &mut L,
) -> Result<MigrationResult>
where
    E: Extractor<Item = T::Input>,
    T: Transformer,
    L: Loader<Item = T::Output>,
{
    let (name, ctx) = (exec.name, exec.ctx);
    let started = Instant::now();
    let mut retry = exec.retrier(Stage::Load);
    let incremental = extractor.continues_after_completion();
    if ctx.restart && !incremental {
        loop {
            match loader.clear_checkpoint(name).await {
                Ok(()) => break,
                Err(error) => retry.after(error).await?,
            }
        }
        retry.reset();
    }
    let stored = loop {
        match loader.checkpoint(name).await {
            Ok(checkpoint) => break checkpoint.unwrap_or_default(),
            Err(error) => retry.after(error).await?,
        }
    };
    let (scope, mut resume) = stored.unscoped();
    if stored != Checkpoint::default() && scope != exec.scope {
        tracing::info!(
            migration = %name, stored = ?scope, current = ?exec.scope,
            "the checkpoint was written in another read order; starting from the beginning"
        );
        resume = Checkpoint::default();
    }
    if incremental && resume.done {
        // A watermark: read what changed since the last run.
        resume.done = false;
    }
    let resumed = resume != Checkpoint::default();
    if resume.done {
        tracing::info!(migration = %name, "already read to the end by an earlier run; nothing to do");
        return Ok(MigrationResult {
            migration: name.clone(),
            counts: Counts::default(),
            duration: started.elapsed(),
            resumed,
            retries: exec.retries.load(Ordering::Relaxed),
            peak_rows_in_flight: 0,
        });
    }
    let estimate = match extractor.estimate(resume.position.as_ref()).await {
        Ok(estimate) => estimate,
        Err(error) => {
            tracing::debug!(migration = %name, error = %error.chain(), "no row estimate");
            None
        }
    };
    if resumed {
        tracing::info!(migration = %name, position = ?resume.position, skip = resume.skip, "resuming from checkpoint");
    }
    let mut event = ProgressEvent::migration(ctx.run, name, Phase::Started);
    event.rows_estimated = estimate;
    ctx.progress.emit(event);

    let depth = ctx.config.pipeline_depth().get();
    let permits = Arc::new(Semaphore::new(depth));
    let (sender, mut receiver) = mpsc::channel::<ExtractedBatch<E::Item>>(depth);

    let extract = extract_stage(exec, extractor, resume, &permits, sender);
    let transformed = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
        .map(|batch| {
            transform_stage::transform(batch, transformer, rules, ctx.config.transform_concurrency().get() > 1)
        })
        .buffered(ctx.config.transform_concurrency().get());
    let load = load_stage::load_all(exec, loader, transformed, started, estimate);

    let ((end, last_position), counts) = tokio::try_join!(extract, load)?;
    if matches!(end, ExtractEnd::Cancelled) || ctx.cancel.is_cancelled() {
        return Err(Error::Cancelled { migration: name.clone() });
    }

    let mut retry = exec.retrier(Stage::Load);
    loop {
        match loader.finish(name).await {
            Ok(()) => break,
            Err(error) => retry.after(error).await?,
        }
    }
    // Mark the migration as read to the end, in the target, with an empty load (bounded and
    // retried like any batch's).
    let done = Checkpoint { position: last_position, skip: 0, done: true };
    load_stage::load_with_retry(exec, loader, &[], &done).await?;

    let result = MigrationResult {
        migration: name.clone(),
        counts,
        duration: started.elapsed(),
        resumed,
        retries: exec.retries.load(Ordering::Relaxed),
        peak_rows_in_flight: exec.in_flight.peak(),
    };
    tracing::info!(
        migration = %name, read = result.counts.read, duration_ms = result.duration.as_millis() as u64,
        peak_rows_in_flight = result.peak_rows_in_flight, max_rows_in_flight = ctx.config.max_rows_in_flight(),
        "read to the end and committed"
    );
    Ok(result)
}

/// Reads batches, each behind a permit, honouring the checkpoint's `skip`, and reopens the
/// stream after a transient error.
async fn extract_stage<E: Extractor>(
    exec: &Execution<'_>,
    extractor: &mut E,
    resume: Checkpoint,
    permits: &Arc<Semaphore>,
    sender: mpsc::Sender<ExtractedBatch<E::Item>>,
) -> Result<(ExtractEnd, Option<Position>)> {
    let batch_size = exec.ctx.config.batch_size();
    let mut cursor = resume.position;
    let mut skip_remaining = resume.skip;
    let mut seq = 0_u64;
    let mut retry = exec.retrier(Stage::Extract);
    'reopen: loop {
        let mut stream = extractor.extract(cursor.clone(), batch_size);
        loop {
            if exec.ctx.cancel.is_cancelled() {
                return Ok((ExtractEnd::Cancelled, cursor));
            }
            let permit = Arc::clone(permits)
                .acquire_owned()
                .await
                .map_err(|_| Error::fatal(Stage::Extract, "the engine's batch permits were closed"))?;
            let read_timeout = exec.ctx.config.read_timeout();
            let next = tokio::time::timeout(read_timeout, stream.next()).await.unwrap_or_else(|_| {
                Some(Err(Error::transient(
                    Stage::Extract,
                    format!(
                        "no answer from the source for {} s while reading a batch (the read timeout)",
                        read_timeout.as_secs_f32()
                    ),
                )))
            });
            let SourceBatch { mut records, position } = match next {
                None => return Ok((ExtractEnd::Exhausted, cursor)),
                Some(Ok(batch)) => batch,
                Some(Err(error)) => {
                    drop(stream);
                    retry.after(with_migration(error, exec.name)).await?;
                    continue 'reopen;
                }
            };
            retry.reset();
            if let Some(limit) = exec.ctx.config.rate_limit() {
                limit.pay(records.len()).await;
            }
            let already_done = usize::try_from(skip_remaining).unwrap_or(usize::MAX).min(records.len());
            records.drain(..already_done);
            skip_remaining -= already_done as u64;
            let start =
                Checkpoint { position: cursor.replace(position.clone()), skip: already_done as u64, done: false };
            if records.is_empty() && already_done > 0 {
                continue;
            }
            seq += 1;
            exec.in_flight.add(records.len() as u64);
            let batch = ExtractedBatch { seq, records, start, end: position, _permit: permit };
            if sender.send(batch).await.is_err() {
                // The load stage has stopped; its result says why.
                return Ok((ExtractEnd::Exhausted, cursor));
            }
        }
    }
}

/// Adds the migration's name to an error's message when it has none.
fn with_migration(error: Error, migration: &MigrationName) -> Error {
    match error {
        Error::Stage { stage, kind, message, source } if !message.contains(migration.as_str()) => {
            Error::Stage { stage, kind, message: format!("migration `{migration}`: {message}"), source }
        }
        other => other,
    }
}

/// Counts a batch's outcome in the `metrics` facade.
fn record_metrics(name: &MigrationName, delta: &Counts) {
    let label = name.to_string();
    for (outcome, value) in [
        ("read", delta.read),
        ("inserted", delta.inserted),
        ("updated", delta.updated),
        ("unchanged", delta.unchanged),
        ("deleted", delta.deleted),
        ("skipped", delta.skipped),
        ("rejected", delta.rejected),
    ] {
        if value > 0 {
            ::metrics::counter!(metrics::ROWS_TOTAL, "migration" => label.clone(), "outcome" => outcome)
                .increment(value);
        }
    }
    ::metrics::counter!(metrics::BATCHES_TOTAL, "migration" => label).increment(1);
}

/// True when an error is about row content, so bisection can isolate the rows.
fn is_row_error(error: &Error) -> bool {
    matches!(error.kind(), ErrorKind::Data | ErrorKind::MissingParent)
}
