//! Every migration reports through the `metrics` facade under the documented names, and its
//! progress events come in order: started, one per committed batch, completed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::progress::metrics as names;
use dmf_core::{Orchestrator, Phase, RunRequest};
use dmf_testkit::{FaultPlan, FaultyLoader, MemoryTable};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn metrics_and_progress_events_are_emitted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let events = runtime.block_on(async {
        let target = MemoryTable::new("target");
        let loader = FaultyLoader::new(target, FaultPlan::new().transient(1));
        let orchestrator = Orchestrator::builder(store())
            .migration(pipeline("m", source(100), Rules { reject_every: 10, skip_every: 7 }, loader))
            .engine(config(25))
            .build()
            .unwrap();
        let mut events = orchestrator.progress().subscribe();
        let summary = orchestrator.run(RunRequest::all()).await.unwrap();
        assert!(summary.succeeded(), "{summary}");
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        seen
    });

    let phases: Vec<(Option<String>, Phase, u64)> =
        events.iter().map(|e| (e.migration.as_ref().map(ToString::to_string), e.phase, e.rows_done)).collect();
    let m = || Some("m".to_owned());
    assert_eq!(
        phases,
        vec![
            (None, Phase::Preflight, 0),
            (m(), Phase::Started, 0),
            (m(), Phase::Loading, 25),
            (m(), Phase::Loading, 50),
            (m(), Phase::Loading, 75),
            (m(), Phase::Loading, 100),
            (m(), Phase::Completed, 100),
            (None, Phase::Completed, 0),
        ]
    );
    assert_eq!(events[1].rows_estimated, Some(100));

    let metrics = snapshotter.snapshot().into_vec();
    let counter = |name: &str, label: Option<(&str, &str)>| -> u64 {
        metrics
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .filter(|(key, ..)| label.is_none_or(|(k, v)| key.key().labels().any(|l| l.key() == k && l.value() == v)))
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(counter(names::ROWS_TOTAL, Some(("outcome", "read"))), 100);
    assert_eq!(counter(names::ROWS_TOTAL, Some(("outcome", "rejected"))), 10);
    assert_eq!(counter(names::ROWS_TOTAL, Some(("outcome", "skipped"))), 13);
    assert_eq!(counter(names::ROWS_TOTAL, Some(("outcome", "inserted"))), 77);
    assert_eq!(counter(names::BATCHES_TOTAL, None), 4);
    assert_eq!(counter(names::RETRIES_TOTAL, Some(("stage", "load"))), 1);
    assert_eq!(counter(names::MIGRATIONS_TOTAL, Some(("status", "completed"))), 1);
    assert_eq!(counter(names::RUNS_TOTAL, Some(("status", "completed"))), 1);
    let histograms = metrics.iter().filter(|(key, ..)| key.key().name() == names::BATCH_SECONDS).count();
    assert_eq!(histograms, 2, "transform and load stages");
    assert!(metrics.iter().any(|(key, ..)| key.key().name() == names::ROWS_IN_FLIGHT));
    for (key, ..) in &metrics {
        assert!(names::ALL.contains(&key.key().name()), "undocumented metric {}", key.key().name());
    }
}
