//! Each engine policy, proven on in-memory tables: retry, reject limits, bisection,
//! cancellation and resume, extractor reopening, validation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::{DataMigration, EngineConfig, Error, ErrorKind, RejectLimit, Rules as ValidationRules, Stage};
use dmf_testkit::{FaultPlan, FaultyExtractor, FaultyLoader, Gate, MemoryTable, cancel_at};

#[tokio::test]
async fn transient_load_failures_are_retried_until_success() {
    let target = MemoryTable::new("target");
    let plan = FaultPlan::new().transient(3);
    let migration = pipeline("m", source(100), plain(), FaultyLoader::new(target.clone(), plan.clone()));
    let result = migration.execute(&context(1, config(10), store())).await.expect("retries succeed");
    assert_eq!(result.retries, 3);
    assert_eq!(result.counts.inserted, 100);
    assert_eq!(target.len(), 100);
    assert_eq!(plan.calls(), 10 + 3 + 1, "ten batches, three failed attempts and the final checkpoint");
}

#[tokio::test]
async fn retries_exhausted_fail_the_migration_and_write_nothing() {
    let target = MemoryTable::new("target");
    let plan = FaultPlan::new().transient(100);
    let config = EngineConfig::builder().batch_size(10).retry(fast_retry(3)).build().unwrap();
    let migration = pipeline("m", source(100), plain(), FaultyLoader::new(target.clone(), plan.clone()));
    let error = migration.execute(&context(1, config, store())).await.expect_err("gives up");
    match &error {
        Error::RetriesExhausted { stage: Stage::Load, attempts: 3, source } => {
            assert!(source.to_string().contains("injected transient failure"), "{source}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(plan.calls(), 3);
    assert!(target.is_empty());
    assert!(
        error.chain().contains("caused by: load failed: injected transient failure at call 3"),
        "{}",
        error.chain()
    );
}

#[tokio::test]
async fn transient_extract_failures_reopen_the_stream_where_it_stopped() {
    let target = MemoryTable::new("target").append_only();
    let extract_plan = FaultPlan::new().fail_at_with(4, ErrorKind::Transient).fail_at_with(5, ErrorKind::Transient);
    let migration = pipeline("m", FaultyExtractor::new(source(95), extract_plan.clone()), plain(), target.clone());
    let result = migration.execute(&context(1, config(10), store())).await.expect("reopens");
    assert_eq!(result.retries, 2);
    let mut expected: Vec<common::Row> =
        rows(95).into_iter().map(|r| common::Row { value: r.value * 2, ..r }).collect();
    expected.sort_by_key(|r| r.id.to_string());
    assert_eq!(target.snapshot(), expected);
    assert_eq!(target.len(), 95, "no batch read twice");
}

#[tokio::test]
async fn reject_count_limit_stops_the_migration_with_the_last_reason() {
    let target = MemoryTable::new("target");
    let store = store();
    let config = EngineConfig::builder().batch_size(10).reject_limit(RejectLimit::Count(4)).build().unwrap();
    let rules = Rules { reject_every: 10, skip_every: 0 };
    let migration = pipeline("m", source(100), rules, target.clone());
    let error = migration.execute(&context(1, config, store.clone())).await.expect_err("limit reached");
    assert_eq!(error.partial_counts().map(|c| (c.read, c.inserted, c.rejected)), Some((40, 36, 4)));
    match &cause(error) {
        Error::RejectLimitExceeded { rejected: 5, read: 50, last_reason, .. } => {
            assert_eq!(last_reason, "row 50 (transform stage): value 50 is divisible by 10");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(target.len(), 36, "four batches committed, the fifth stopped before loading");
    let rejects = store.all_rejects();
    assert_eq!(rejects.iter().map(|r| r.reject.key.as_str()).collect::<Vec<_>>(), ["10", "20", "30", "40", "50"]);
    assert_eq!(rejects[0].reject.payload, serde_json::json!({"id": 10, "value": 10}));
}

#[tokio::test]
async fn reject_ratio_is_judged_after_its_minimum_sample() {
    let rules = || Rules { reject_every: 5, skip_every: 0 };
    let limit = |max| RejectLimit::Ratio { max, min_rows: 50 };
    let within = EngineConfig::builder().batch_size(10).reject_limit(limit(0.25)).build().unwrap();
    let result = pipeline("m", source(200), rules(), MemoryTable::new("t")).execute(&context(1, within, store())).await;
    assert_eq!(result.expect("20% is within 25%").counts.rejected, 40);

    let over = EngineConfig::builder().batch_size(10).reject_limit(limit(0.1)).build().unwrap();
    let error = pipeline("m", source(200), rules(), MemoryTable::new("t")).execute(&context(1, over, store())).await;
    let error = cause(error.expect_err("10 rejects in 50 rows is over 10%"));
    assert!(matches!(error, Error::RejectLimitExceeded { read: 50, rejected: 10, .. }), "{error:?}");
}

#[tokio::test]
async fn bisection_isolates_one_bad_row_in_a_batch_of_a_thousand() {
    let target = MemoryTable::new("target");
    let store = store();
    let plan = FaultPlan::new().poison(["617"]);
    let migration = pipeline("m", source(1000), plain(), FaultyLoader::new(target.clone(), plan.clone()));
    let result = migration.execute(&context(1, config(1000), store.clone())).await.expect("bad row isolated");
    assert_eq!(result.counts.inserted, 999);
    assert_eq!(result.counts.rejected, 1);
    assert_eq!(target.len(), 999);
    assert!(target.get("617").is_none());
    let rejects = store.all_rejects();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].reject.stage, Stage::Load);
    assert_eq!(rejects[0].reject.key, "617");
    assert!(rejects[0].reject.reason.contains("poison row, key 617"), "{}", rejects[0].reject.reason);
    // One failed whole load, then two halves per level down to the row: about 2 log2(1000).
    assert!(plan.calls() <= 2 * 10 + 2, "bisection took {} loads", plan.calls());
    let last = target.stored_checkpoint("m").expect("a final checkpoint");
    assert!(last.done && last.skip == 0, "marked read to the end: {last:?}");
}

#[tokio::test]
async fn a_poison_row_at_the_end_of_a_batch_still_moves_the_checkpoint() {
    let target = MemoryTable::new("target").append_only();
    let migration =
        pipeline("m", source(40), plain(), FaultyLoader::new(target.clone(), FaultPlan::new().poison(["20", "40"])));
    let result = migration.execute(&context(1, config(20), store())).await.expect("completes");
    assert_eq!((result.counts.inserted, result.counts.rejected), (38, 2));
    assert_eq!(target.len(), 38);
}

#[tokio::test]
async fn fatal_load_errors_are_neither_retried_nor_bisected() {
    let plan = FaultPlan::new().fail_at(2);
    let target = MemoryTable::new("target");
    let migration = pipeline("m", source(50), plain(), FaultyLoader::new(target.clone(), plan.clone()));
    let error = migration.execute(&context(1, config(10), store())).await.expect_err("fatal");
    assert_eq!(error.kind(), ErrorKind::Fatal);
    assert_eq!(plan.calls(), 2);
    assert_eq!(target.len(), 10);
}

#[tokio::test]
async fn failed_migration_resumes_from_its_checkpoint_without_duplicates() {
    let target = MemoryTable::new("target").append_only();
    let first = pipeline("m", source(100), plain(), FaultyLoader::new(target.clone(), FaultPlan::new().fail_at(4)));
    first.execute(&context(1, config(10), store())).await.expect_err("fails at batch 4");
    assert_eq!(target.len(), 30);

    let second = pipeline("m", source(100), plain(), target.clone());
    let result = second.execute(&context(2, config(10), store())).await.expect("resumes");
    assert!(result.resumed);
    assert_eq!(result.counts.read, 70, "only what was left");
    assert_eq!(target.len(), 100);
    let mut ids: Vec<i64> = target.rows().iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn cancellation_stops_at_a_batch_boundary_and_resume_completes() {
    let target = MemoryTable::new("target").append_only();
    // Cancelled while load 6 (rows 51 to 60) waits at its gate: that load completes, the
    // seventh never starts.
    let gate = Gate::new();
    let ctx = context(1, config(10), store());
    let migration =
        pipeline("m", source(200), plain(), FaultyLoader::new(target.clone(), FaultPlan::new().hold_before(6, &gate)));
    let error = cancel_at(&gate, &ctx.cancel, migration.execute(&ctx))
        .await
        .unwrap_or_else(|unreached| panic!("{unreached}"))
        .expect_err("cancelled");
    assert!(error.is_cancelled(), "{error:?}");
    assert!(matches!(cause(error), Error::Cancelled { .. }));
    assert_eq!(target.len(), 60, "stopped at the batch boundary after the load in flight");

    let again = pipeline("m", source(200), plain(), target.clone());
    let result = again.execute(&context(2, config(10), store())).await.expect("resumes");
    assert!(result.resumed);
    assert_eq!(result.counts.read, 140);
    assert_eq!(target.len(), 200);
}

#[tokio::test]
async fn validation_rules_reject_with_field_messages() {
    let store = store();
    let rules = ValidationRules::new().field("value", |r: &common::Row| {
        if r.value % 3 == 0 { Err(format!("{} is a multiple of 3", r.value)) } else { Ok(()) }
    });
    let target = MemoryTable::new("target");
    let migration = pipeline("m", source(10), plain(), target.clone()).validate(rules);
    let result = migration.execute(&context(1, config(4), store.clone())).await.unwrap();
    // Mapped values are doubled: 6, 12, 18 are multiples of 3 (ids 3, 6, 9).
    assert_eq!(result.counts.rejected, 3);
    let reject = &store.all_rejects()[0].reject;
    assert_eq!((reject.stage, reject.key.as_str()), (Stage::Validate, "3"));
    assert_eq!(reject.reason, "value: 6 is a multiple of 3");
}

#[tokio::test]
async fn skipped_and_rejected_rows_are_counted_and_concurrent_transforms_keep_order() {
    let target = MemoryTable::new("target").append_only();
    let config = EngineConfig::builder()
        .batch_size(7)
        .pipeline_depth(3)
        .transform_concurrency(3)
        .reject_limit(RejectLimit::Unlimited)
        .build()
        .unwrap();
    let rules = Rules { reject_every: 11, skip_every: 5 };
    let result = pipeline("m", source(500), rules, target.clone()).execute(&context(1, config, store())).await.unwrap();
    let rejected = (1..=500).filter(|v| v % 11 == 0).count() as u64;
    let skipped = (1..=500).filter(|v| v % 11 != 0 && v % 5 == 0).count() as u64;
    assert_eq!(result.counts.rejected, rejected);
    assert_eq!(result.counts.skipped, skipped);
    assert_eq!(result.counts.inserted, 500 - rejected - skipped);
    let ids: Vec<i64> = target.rows().iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "batches committed in source order");
    assert!(result.peak_rows_in_flight <= 21);
}

#[tokio::test]
async fn a_panicking_transformer_rejects_only_that_row() {
    let transformer = dmf_core::transform_fn(|r: &common::Row| {
        assert!(r.id != 7, "cannot handle row 7");
        dmf_core::Transformed::Mapped(r.clone())
    });
    let store = store();
    let target = MemoryTable::new("target");
    let migration = dmf_core::Pipeline::new(source(10), transformer, target.clone()).named("m");
    let result = migration.execute(&context(1, config(5), store.clone())).await.unwrap();
    assert_eq!(result.counts.rejected, 1);
    assert_eq!(target.len(), 9);
    assert!(store.all_rejects()[0].reject.reason.contains("cannot handle row 7"));
}

#[tokio::test(start_paused = true)]
async fn max_rows_per_sec_paces_reads_and_moves_everything() {
    let target = MemoryTable::new("target");
    let config = EngineConfig::builder().batch_size(100).max_rows_per_sec(200).build().unwrap();
    let migration = pipeline("m", source(1_000), plain(), target.clone());
    let started = tokio::time::Instant::now();
    let result = migration.execute(&context(1, config, store())).await.expect("completes");
    assert_eq!(result.counts.inserted, 1_000);
    assert_eq!(target.len(), 1_000);
    // Virtual time: 1,000 rows at 200 rows/s take five seconds, whatever the machine.
    assert_eq!(started.elapsed().as_secs(), 5);
}
