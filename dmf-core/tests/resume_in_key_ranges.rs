//! The engine's resume invariant for a table split into key ranges: one migration per range,
//! each with its own checkpoint, run side by side by the orchestrator into one target. Failing
//! (an error, or a crash before or after a commit) at any call of any range and then resuming
//! leaves exactly the target one clean, unsplit run leaves: every row once, none lost, none
//! duplicated, the same rows rejected.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

use common::*;
use dmf_core::sync::range_migration_name;
use dmf_core::{EngineConfig, Orchestrator, RejectLimit, RunRequest, RunStatus};
use dmf_testkit::{FaultPlan, FaultyLoader, MemoryRunStore, MemoryTable, until_crash};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    rows: i64,
    parts: usize,
    jobs: usize,
    batch_size: usize,
    depth: usize,
    failing_range: usize,
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
}

fn cases() -> impl Strategy<Value = Case> {
    (
        (0i64..200, 1usize..=4, 1usize..=4, 1usize..30, 1usize..4),
        (0usize..4, 1u64..20),
        prop_oneof![Just(Failure::Error), Just(Failure::CrashBeforeCommit), Just(Failure::CrashAfterCommit)],
        proptest::collection::vec(1i64..200, 0..4),
        prop_oneof![Just(0i64), 3i64..20],
        prop_oneof![Just(0i64), 3i64..20],
    )
        .prop_map(
            |((rows, parts, jobs, batch_size, depth), (failing_range, fail_call), failure, poison, reject, skip)| {
                Case {
                    rows,
                    parts,
                    jobs,
                    batch_size,
                    depth,
                    failing_range,
                    fail_call,
                    failure,
                    poison,
                    reject_every: reject,
                    skip_every: skip,
                }
            },
        )
}

fn engine(case: &Case) -> EngineConfig {
    EngineConfig::builder()
        .batch_size(case.batch_size)
        .pipeline_depth(case.depth)
        .retry(fast_retry(1))
        .reject_limit(RejectLimit::Unlimited)
        .build()
        .unwrap()
}

fn poison(case: &Case) -> FaultPlan {
    FaultPlan::new().poison(case.poison.iter().map(i64::to_string))
}

fn rules(case: &Case) -> Rules {
    Rules { reject_every: case.reject_every, skip_every: case.skip_every }
}

/// The target's rows sorted (duplicates kept: the target is append-only) and the distinct
/// rejected keys.
fn outcome(target: &MemoryTable<Row>, store: &MemoryRunStore) -> (Vec<(i64, i64)>, BTreeSet<String>) {
    let mut rows: Vec<(i64, i64)> = target.rows().into_iter().map(|r| (r.id, r.value)).collect();
    rows.sort();
    (rows, store.all_rejects().into_iter().map(|r| r.reject.key).collect())
}

/// One migration per range of `source`, loading `target`; range `failing` gets `faults`.
fn orchestrator(
    case: &Case,
    source: &MemoryTable<Row>,
    target: &MemoryTable<Row>,
    store: &Arc<MemoryRunStore>,
    failing: Option<(usize, FaultPlan)>,
) -> Orchestrator {
    let ranges = source.key_ranges(NonZeroUsize::new(case.parts).unwrap());
    let count = ranges.len();
    let mut builder = Orchestrator::builder(store.clone()).engine(engine(case)).max_concurrency(case.jobs);
    for (index, range) in ranges.into_iter().enumerate() {
        let faults = match &failing {
            Some((failing, faults)) if *failing % count == index => faults.clone(),
            _ => poison(case),
        };
        let name = range_migration_name(&dmf_core::catalog::TableName::new(None, "t"), index + 1, count);
        let loader = FaultyLoader::new(target.clone(), faults);
        builder = builder.migration(pipeline(name.as_str(), source.range(range), rules(case), loader));
    }
    builder.build().unwrap()
}

async fn clean_unsplit_run(case: &Case) -> (Vec<(i64, i64)>, BTreeSet<String>) {
    let target = MemoryTable::new("clean").append_only();
    let store = Arc::new(MemoryRunStore::new());
    let loader = FaultyLoader::new(target.clone(), poison(case));
    let summary = Orchestrator::builder(store.clone())
        .engine(engine(case))
        .migration(pipeline("t", source(case.rows), rules(case), loader))
        .build()
        .unwrap()
        .run(RunRequest::all())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    outcome(&target, &store)
}

async fn failed_then_resumed(case: &Case) -> (Vec<(i64, i64)>, BTreeSet<String>) {
    let source = source(case.rows);
    let target = MemoryTable::new("resumed").append_only();
    let store = Arc::new(MemoryRunStore::new());
    let faults = poison(case);
    let faults = match case.failure {
        Failure::Error => faults.fail_at(case.fail_call),
        Failure::CrashBeforeCommit => faults.crash_before(case.fail_call),
        Failure::CrashAfterCommit => faults.crash_after(case.fail_call),
    };
    let first = orchestrator(case, &source, &target, &store, Some((case.failing_range, faults.clone())));
    let _ = until_crash(faults.crash_switch(), first.run(RunRequest::all())).await;
    drop(first);

    let resumed = orchestrator(case, &source, &target, &store, None).run(RunRequest::all()).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Completed, "{resumed}");
    outcome(&target, &store)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn resume_after_a_failure_in_any_range_equals_one_clean_unsplit_run(case in cases()) {
        let runtime = runtime();
        let clean = runtime.block_on(clean_unsplit_run(&case));
        let resumed = runtime.block_on(failed_then_resumed(&case));
        prop_assert_eq!(&resumed.0, &clean.0, "target rows differ for {:?}", case);
        prop_assert_eq!(&resumed.1, &clean.1, "rejected keys differ for {:?}", case);
    }
}

#[tokio::test]
async fn ranges_read_every_row_once_and_keep_their_checkpoints_apart() {
    let source = source(100);
    let target = MemoryTable::new("t").append_only();
    let ranges = source.key_ranges(NonZeroUsize::new(3).unwrap());
    assert_eq!(ranges.len(), 3);
    let store = Arc::new(MemoryRunStore::new());
    let mut builder = Orchestrator::builder(store.clone()).engine(config(7)).max_concurrency(3);
    for (index, range) in ranges.iter().enumerate() {
        let name = format!("t [range {}/3]", index + 1);
        builder = builder.migration(pipeline(&name, source.range(range.clone()), plain(), target.clone()));
    }
    let summary = builder.build().unwrap().run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let mut ids: Vec<i64> = target.rows().into_iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    for (index, range) in ranges.iter().enumerate() {
        let stored = target.stored_checkpoint(&format!("t [range {}/3]", index + 1)).unwrap();
        assert!(stored.done);
        assert_eq!(stored.unscoped().0, range.scope(), "each range's checkpoint names its bounds");
    }
}
