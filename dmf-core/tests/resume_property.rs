//! The engine's invariants, over any batch size, pipeline depth, transform concurrency,
//! failure point and kind of failure:
//! - failing (an error, or a crash before or after a commit) and then resuming leaves exactly
//!   the target one clean run leaves: no row lost, none duplicated, the same rows rejected;
//! - a batch whose commit succeeded but whose answer was lost (a transient error after the
//!   commit) is not sent again: the run completes by itself with that same target;
//! - rows read but not committed never exceed `pipeline_depth × batch_size`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use dmf_core::{
    Checkpoint, DataMigration, EngineConfig, Extractor, LoadBatch, LoadReport, Loader, MigrationName, Position,
    RejectLimit, SourceBatch,
};
use dmf_testkit::{FaultPlan, FaultyLoader, MemoryRunStore, MemoryTable, until_crash};
use futures::StreamExt;
use futures::stream::BoxStream;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    rows: i64,
    batch_size: usize,
    depth: usize,
    concurrency: usize,
    fail_call: u64,
    failure: Failure,
    poison: Vec<i64>,
    reject_every: i64,
    skip_every: i64,
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Error,
    CrashBeforeCommit,
    CrashAfterCommit,
    LostAnswer,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        0i64..200,
        1usize..40,
        1usize..5,
        1usize..4,
        1u64..30,
        prop_oneof![
            Just(Failure::Error),
            Just(Failure::CrashBeforeCommit),
            Just(Failure::CrashAfterCommit),
            Just(Failure::LostAnswer)
        ],
        proptest::collection::vec(1i64..200, 0..4),
        prop_oneof![Just(0i64), 3i64..20],
        prop_oneof![Just(0i64), 3i64..20],
    )
        .prop_map(
            |(rows, batch_size, depth, concurrency, fail_call, failure, poison, reject_every, skip_every)| Case {
                rows,
                batch_size,
                depth,
                concurrency,
                fail_call,
                failure,
                poison,
                reject_every,
                skip_every,
            },
        )
}

fn engine(case: &Case) -> EngineConfig {
    EngineConfig::builder()
        .batch_size(case.batch_size)
        .pipeline_depth(case.depth)
        .transform_concurrency(case.concurrency)
        // A lost answer is a transient error: the engine retries it (after asking the loader
        // whether the batch committed); other failures stop the run at once.
        .retry(fast_retry(if matches!(case.failure, Failure::LostAnswer) { 3 } else { 1 }))
        .reject_limit(RejectLimit::Unlimited)
        .build()
        .unwrap()
}

fn poison_keys(case: &Case) -> Vec<String> {
    case.poison.iter().map(i64::to_string).collect()
}

fn migration<L: dmf_core::Loader<Item = common::Row>>(case: &Case, loader: L) -> impl DataMigration {
    pipeline("m", source(case.rows), Rules { reject_every: case.reject_every, skip_every: case.skip_every }, loader)
}

/// The target's rows sorted (duplicates kept: the targets are append-only) and the distinct
/// rejected keys.
fn outcome(target: &MemoryTable<common::Row>, store: &MemoryRunStore) -> (Vec<(i64, i64)>, BTreeSet<String>) {
    let mut rows: Vec<(i64, i64)> = target.rows().into_iter().map(|r| (r.id, r.value)).collect();
    rows.sort();
    let rejected = store.all_rejects().into_iter().map(|r| r.reject.key).collect();
    (rows, rejected)
}

async fn clean_run(case: &Case) -> (Vec<(i64, i64)>, BTreeSet<String>) {
    let target = MemoryTable::new("clean").append_only();
    let store = Arc::new(MemoryRunStore::new());
    let loader = FaultyLoader::new(target.clone(), FaultPlan::new().poison(poison_keys(case)));
    migration(case, loader).execute(&context(1, engine(case), store.clone())).await.expect("a clean run completes");
    outcome(&target, &store)
}

async fn failed_then_resumed(case: &Case) -> (Vec<(i64, i64)>, BTreeSet<String>) {
    let target = MemoryTable::new("resumed").append_only();
    let store = Arc::new(MemoryRunStore::new());
    let faults = FaultPlan::new().poison(poison_keys(case));
    let faults = match case.failure {
        Failure::Error => faults.fail_at(case.fail_call),
        Failure::CrashBeforeCommit => faults.crash_before(case.fail_call),
        Failure::CrashAfterCommit => faults.crash_after(case.fail_call),
        Failure::LostAnswer => faults.lose_answer(case.fail_call),
    };
    let first = migration(case, FaultyLoader::new(target.clone(), faults.clone()));
    let ctx = context(1, engine(case), store.clone());
    let outcome_of_first = until_crash(faults.crash_switch(), first.execute(&ctx)).await;
    if matches!(case.failure, Failure::LostAnswer) {
        let result = outcome_of_first.expect("a lost answer is no crash");
        assert!(result.is_ok(), "a lost answer must not fail the run: {:?} for {case:?}", result.err());
    }
    drop(first);

    let loader = FaultyLoader::new(target.clone(), FaultPlan::new().poison(poison_keys(case)));
    migration(case, loader).execute(&context(2, engine(case), store.clone())).await.expect("the resumed run completes");
    outcome(&target, &store)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn resume_after_any_failure_point_equals_one_clean_run(case in cases()) {
        let runtime = runtime();
        let clean = runtime.block_on(clean_run(&case));
        let resumed = runtime.block_on(failed_then_resumed(&case));
        prop_assert_eq!(&resumed.0, &clean.0, "target rows differ for {:?}", case);
        prop_assert_eq!(&resumed.1, &clean.1, "rejected keys differ for {:?}", case);
    }

    #[test]
    fn rows_in_flight_never_exceed_depth_times_batch_size(
        rows in 1i64..400, batch_size in 1usize..30, depth in 1usize..5, concurrency in 1usize..4, slow in any::<bool>(),
    ) {
        let case = Case {
            rows, batch_size, depth, concurrency, fail_call: 0, failure: Failure::Error,
            poison: Vec::new(), reject_every: 7, skip_every: 0,
        };
        let observer = Observer::default();
        let target = MemoryTable::new("t");
        let delay = if slow { Duration::from_micros(300) } else { Duration::ZERO };
        let loader = FaultyLoader::new(Observed { inner: target.clone(), observer: observer.clone() }, FaultPlan::new().slow(delay));
        let extractor = Observed { inner: source(rows), observer: observer.clone() };
        let pipeline = pipeline("m", extractor, Rules { reject_every: 7, skip_every: 0 }, loader);
        let result = runtime().block_on(pipeline.execute(&context(1, engine(&case), Arc::new(MemoryRunStore::new())))).unwrap();
        let bound = (depth * batch_size) as u64;
        prop_assert!(observer.max_in_flight.load(Ordering::SeqCst) <= bound,
            "observed {} rows in flight, bound {bound}", observer.max_in_flight.load(Ordering::SeqCst));
        prop_assert!(result.peak_rows_in_flight <= bound);
        prop_assert_eq!(observer.emitted.load(Ordering::SeqCst), rows as u64);
        prop_assert_eq!(target.len() as i64, rows - rows / 7);
    }
}

/// Watches, from outside the engine, how many rows the extractor has handed out and how many
/// the loader's committed checkpoints cover.
#[derive(Clone, Default)]
struct Observer {
    emitted: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
}

struct Observed<T> {
    inner: T,
    observer: Observer,
}

impl<E: Extractor> Extractor for Observed<E> {
    type Item = E::Item;

    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, dmf_core::Result<SourceBatch<E::Item>>> {
        let observer = self.observer.clone();
        self.inner
            .extract(from, batch_size)
            .inspect(move |batch| {
                if let Ok(batch) = batch {
                    let emitted = observer.emitted.fetch_add(batch.records.len() as u64, Ordering::SeqCst)
                        + batch.records.len() as u64;
                    let in_flight = emitted - observer.committed.load(Ordering::SeqCst);
                    observer.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
                }
            })
            .boxed()
    }
}

impl<L: Loader> Loader for Observed<L> {
    type Item = L::Item;

    async fn load(&mut self, batch: LoadBatch<'_, L::Item>) -> dmf_core::Result<LoadReport> {
        let checkpoint = batch.checkpoint.clone();
        let report = self.inner.load(batch).await?;
        // MemoryTable positions are the sequence number of the last row read (rows 0..n).
        let covered = checkpoint.position.map_or(0, |p| p.decode::<u64>().unwrap() + 1) + checkpoint.skip;
        self.observer.committed.store(covered, Ordering::SeqCst);
        Ok(report)
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.inner.clear_checkpoint(migration).await
    }
}
