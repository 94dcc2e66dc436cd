//! The load stage: rejects recorded, reject limit enforced, each batch written with its
//! checkpoint (retried when transient, bisected when row content fails it), progress emitted.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tracing::Instrument;

use super::transform_stage::TransformedBatch;
use super::{Execution, is_row_error, record_metrics};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::migration::Counts;
use crate::pipeline::{LoadBatch, LoadOutcome, LoadReport, Loader};
use crate::progress::{Phase, ProgressEvent, metrics};
use crate::record::{Record, Reject};

/// Loads every transformed batch in order; returns the execution's counts.
pub(crate) async fn load_all<L: Loader>(
    exec: &Execution<'_>,
    loader: &mut L,
    batches: impl Stream<Item = Result<TransformedBatch<L::Item>>>,
    started: Instant,
    estimate: Option<u64>,
) -> Result<Counts> {
    let mut counts = Counts::default();
    let mut batches = std::pin::pin!(batches);
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if exec.ctx.cancel.is_cancelled() {
            return Err(Error::Cancelled { migration: exec.name.clone() });
        }
        let span = tracing::debug_span!("batch", migration = %exec.name, batch = batch.seq, rows = batch.read);
        let delta = load_one(exec, loader, &batch, &counts).instrument(span).await?;
        counts.add(&delta);
        *exec.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = counts;
        exec.in_flight.remove(batch.read);
        record_metrics(exec.name, &delta);
        ::metrics::histogram!(metrics::BATCH_SECONDS, "migration" => exec.name.to_string(), "stage" => "transform")
            .record(batch.elapsed.as_secs_f64());

        let mut event = ProgressEvent::migration(exec.ctx.run, exec.name, Phase::Loading);
        event.rows_done = counts.read;
        event.rows_estimated = estimate;
        event.rows_per_sec = counts.read as f64 / started.elapsed().as_secs_f64().max(1e-9);
        event.counts = counts;
        exec.ctx.progress.emit(event);
    }
    Ok(counts)
}

/// Loads one batch; returns what it added to the counts.
async fn load_one<L: Loader>(
    exec: &Execution<'_>,
    loader: &mut L,
    batch: &TransformedBatch<L::Item>,
    so_far: &Counts,
) -> Result<Counts> {
    let mut delta = Counts { read: batch.read, skipped: batch.skipped, ..Counts::default() };
    record_rejects(exec, &batch.rejects, &mut delta, so_far).await?;

    let load_started = Instant::now();
    let report = load_bisecting(exec, loader, batch, &mut delta, so_far).await?;
    ::metrics::histogram!(metrics::BATCH_SECONDS, "migration" => exec.name.to_string(), "stage" => "load")
        .record(load_started.elapsed().as_secs_f64());
    report.add_to(&mut delta);
    Ok(delta)
}

/// Stores rejects in the run store and stops the migration if the reject limit is passed.
async fn record_rejects(exec: &Execution<'_>, rejects: &[Reject], delta: &mut Counts, so_far: &Counts) -> Result<()> {
    let Some(last) = rejects.last() else {
        return Ok(());
    };
    store_rejects(exec, rejects).await?;
    delta.rejected += rejects.len() as u64;
    let rejected = so_far.rejected + delta.rejected;
    let read = so_far.read + delta.read;
    let limit = exec.ctx.config.reject_limit();
    if limit.exceeded(rejected, read) {
        return Err(Error::RejectLimitExceeded {
            migration: exec.name.clone(),
            rejected,
            read,
            limit: limit.to_string(),
            last_reason: format!("row {} ({} stage): {}", last.key, last.stage, last.reason),
        });
    }
    Ok(())
}

/// Writes rejects to the run store's quarantine (retrying transient failures).
async fn store_rejects(exec: &Execution<'_>, rejects: &[Reject]) -> Result<()> {
    let mut retry = exec.retrier(Stage::RunStore);
    loop {
        match exec.ctx.store.record_rejects(exec.ctx.run, exec.name, rejects).await {
            Ok(()) => return Ok(()),
            Err(error) => retry.after(error).await?,
        }
    }
}

/// Loads a batch. Rows the loader refuses one by one ([`Loader::load_isolating`]) are rejected
/// (or deferred) once the rest of the batch is committed. When row content fails the whole
/// call instead, the batch is split in halves until the failing rows are alone, those are
/// rejected, and the rest is loaded. Parts are loaded in source order, each with the checkpoint
/// just after its last record, so a crash mid-bisection resumes exactly. A row rejected by
/// bisection is recorded at once, before any later part commits a checkpoint past it, so a
/// failure later in the batch cannot lose it; a row the loader isolated is recorded just after
/// its batch committed (a crash in between loses that reject's record, not a row).
async fn load_bisecting<L: Loader>(
    exec: &Execution<'_>,
    loader: &mut L,
    batch: &TransformedBatch<L::Item>,
    delta: &mut Counts,
    so_far: &Counts,
) -> Result<LoadReport> {
    let mapped = batch.mapped.len();
    let mut total = LoadReport::default();
    let mut ranges = VecDeque::from([(0, mapped)]);
    while let Some((lo, hi)) = ranges.pop_front() {
        let last_part = ranges.is_empty();
        let checkpoint = if last_part {
            batch.checkpoint_after(batch.read)
        } else {
            batch.checkpoint_after(batch.source_index[hi - 1] + 1)
        };
        match load_with_retry(exec, loader, &batch.mapped[lo..hi], &checkpoint).await {
            Ok(outcome) => {
                total.add(&outcome.report);
                for failure in outcome.failed {
                    refuse(exec, &batch.mapped[lo + failure.index], &failure.error, delta, so_far).await?;
                }
            }
            Err(error) if is_row_error(&error) && hi - lo > 1 => {
                let mid = lo + (hi - lo) / 2;
                ranges.push_front((mid, hi));
                ranges.push_front((lo, mid));
            }
            Err(error) if is_row_error(&error) && hi - lo == 1 => {
                refuse(exec, &batch.mapped[lo], &error, delta, so_far).await?;
                if last_part {
                    // Nothing left to load with the batch's final checkpoint: commit it alone.
                    load_with_retry(exec, loader, &[], &checkpoint).await?;
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(total)
}

/// Records a row the target refused: deferred to the catch-up pass when its parent is missing
/// and the configuration defers those, rejected otherwise.
async fn refuse<R: Record>(
    exec: &Execution<'_>,
    record: &R,
    error: &Error,
    delta: &mut Counts,
    so_far: &Counts,
) -> Result<()> {
    if error.kind() == ErrorKind::MissingParent && exec.ctx.config.defer_missing_parents() {
        tracing::debug!(migration = %exec.name, key = %record.key(), error = %error.chain(), "row deferred to the catch-up pass");
        // Kept in the quarantine (not counted as a reject): if the catch-up pass cannot load
        // it either, this is where it is.
        let reason = format!("deferred to the catch-up pass: {}", error.chain());
        store_rejects(exec, &[Reject::of(Stage::Load, record, reason)]).await?;
        delta.deferred += 1;
        Ok(())
    } else {
        tracing::debug!(migration = %exec.name, key = %record.key(), error = %error.chain(), "row rejected by the target");
        record_rejects(exec, &[Reject::of(Stage::Load, record, error.chain())], delta, so_far).await
    }
}

pub(super) async fn load_with_retry<L: Loader>(
    exec: &Execution<'_>,
    loader: &mut L,
    records: &[L::Item],
    checkpoint: &Checkpoint,
) -> Result<LoadOutcome> {
    let mut retry = exec.retrier(Stage::Load);
    let checkpoint = &checkpoint.scoped(exec.scope.as_deref());
    // After a transient failure the batch may have committed with its answer lost: ask the
    // loader (on a new connection) before sending it again, and keep asking until it can tell.
    let mut uncertain = false;
    loop {
        if uncertain {
            let asked = answered(exec, "asking the target whether a batch committed", async {
                loader.committed(exec.name, checkpoint, records.len()).await
            });
            match asked.await {
                Ok(Some(report)) => {
                    tracing::warn!(
                        migration = %exec.name,
                        rows = records.len(),
                        "a batch committed although its answer was lost; it is not sent again"
                    );
                    // Which of its rows the target refused is lost with the answer.
                    return Ok(report.into());
                }
                Ok(None) => {}
                Err(error) => {
                    retry.after(error).await?;
                    continue;
                }
            }
        }
        let batch = LoadBatch { migration: exec.name, run: exec.ctx.run, records, checkpoint };
        match answered(exec, "writing a batch", loader.load_isolating(batch)).await {
            Ok(outcome) => return outcome.checked(records.len()),
            Err(error) => {
                uncertain = error.is_transient();
                retry.after(error).await?;
            }
        }
    }
}

/// How often a write with no answer yet is reported.
const SILENCE_REPORTED_EVERY: Duration = Duration::from_secs(30);

/// Awaits `call` (one write to the target) for at most the engine's write timeout, logging a
/// line every [`SILENCE_REPORTED_EVERY`] of silence; past the timeout the call is abandoned
/// (dropped) and reported as a transient error naming what it was doing and how long it
/// waited. Loaders drop a connection whose call was abandoned before using it again.
async fn answered<T>(exec: &Execution<'_>, doing: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
    let limit = exec.ctx.config.write_timeout();
    let started = tokio::time::Instant::now();
    let deadline = started + limit;
    tokio::pin!(call);
    loop {
        let report_at = (tokio::time::Instant::now() + SILENCE_REPORTED_EVERY).min(deadline);
        tokio::select! {
            result = &mut call => return result,
            () = tokio::time::sleep_until(report_at) => {
                let silent = started.elapsed();
                if report_at >= deadline {
                    return Err(Error::transient(
                        Stage::Load,
                        format!(
                            "no answer from the target for {} while {doing} of `{}` (the write timeout)",
                            humanize(silent),
                            exec.name
                        ),
                    ));
                }
                tracing::warn!(migration = %exec.name, "waiting for the target: no answer for {} while {doing}", humanize(silent));
            }
        }
    }
}

fn humanize(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}
