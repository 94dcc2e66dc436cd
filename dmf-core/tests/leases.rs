//! One writer per target: a run holds the target's lease; a second run is refused naming the
//! holder or waits for it; a run whose process died is marked `abandoned` and resumed; a
//! leased run cannot be rolled back; a holder that loses its lease stops. Driven by gates and
//! store events, never by timing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use dmf_core::{
    Error, Lease, LeaseClaim, LeaseClaimed, LeaseOptions, MigrationStatus, Orchestrator, RollbackTarget, RunRequest,
    RunStatus, RunStore,
};
use dmf_testkit::{FaultPlan, FaultyLoader, Gate, MemoryRunStore, MemoryTable, until_crash};

fn orchestrator(
    store: &Arc<MemoryRunStore>,
    target: &MemoryTable<Row>,
    faults: FaultPlan,
    lease: LeaseOptions,
) -> Orchestrator {
    Orchestrator::builder(store.clone())
        .migration(pipeline("copy", source(50), plain(), FaultyLoader::new(target.clone(), faults)))
        .engine(config(10))
        .host("test-host")
        .lease(lease)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_into_a_leased_target_is_refused_naming_the_holder() {
    let store = store();
    let target = MemoryTable::new("t");
    let gate = Gate::new();
    let first =
        Arc::new(orchestrator(&store, &target, FaultPlan::new().hold_before(2, &gate), LeaseOptions::default()));
    let running = tokio::spawn({
        let first = Arc::clone(&first);
        async move { first.run(RunRequest::all()).await }
    });
    gate.reached().await;

    let other_target = MemoryTable::new("other");
    let second = orchestrator(&store, &other_target, FaultPlan::new(), LeaseOptions::default());
    let refused = second.run(RunRequest::all().force()).await.expect_err("the second run must be refused");
    let Error::LeaseHeld { holder, .. } = &refused else { panic!("not a lease refusal: {refused}") };
    assert_eq!(
        (holder.run, holder.host.as_str(), holder.pid),
        (Some(dmf_core::RunId(1)), "test-host", std::process::id())
    );
    let message = refused.to_string();
    assert!(message.contains("run 1 on host `test-host`") && message.contains("since"), "{message}");
    assert!(other_target.is_empty(), "the refused run wrote nothing");
    assert_eq!(store.runs(10).await.unwrap().len(), 1, "the refused run left no record");

    gate.open();
    let summary = running.await.unwrap().unwrap();
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(target.len(), 50);
    assert_eq!(store.lease(dmf_core::TARGET_SCOPE).await.unwrap(), None, "the lease is released at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_wait_the_second_run_starts_when_the_first_ends() {
    let store = store();
    let (first_target, second_target) = (MemoryTable::new("a"), MemoryTable::new("b"));
    let gate = Gate::new();
    let first =
        Arc::new(orchestrator(&store, &first_target, FaultPlan::new().hold_before(2, &gate), LeaseOptions::default()));
    let running = tokio::spawn({
        let first = Arc::clone(&first);
        async move { first.run(RunRequest::all()).await }
    });
    gate.reached().await;

    let waiting = LeaseOptions { wait: Duration::from_secs(600), ..LeaseOptions::default() };
    let second = Arc::new(orchestrator(&store, &second_target, FaultPlan::new(), waiting));
    let queued = tokio::spawn({
        let second = Arc::clone(&second);
        async move { second.run(RunRequest::all().force()).await }
    });
    store.lease_refused().await; // the second run found the lease held and waits
    assert!(second_target.is_empty(), "the waiting run writes nothing");
    gate.open();

    let (first, second) = (running.await.unwrap().unwrap(), queued.await.unwrap().unwrap());
    assert!(first.succeeded() && second.succeeded());
    assert_eq!((first_target.len(), second_target.len()), (50, 50));
    let (a, b) = (store.run(first.run).await.unwrap().unwrap(), store.run(second.run).await.unwrap().unwrap());
    assert_eq!((a.status, b.status), (RunStatus::Completed, RunStatus::Completed));
    assert!(b.started_at >= a.finished_at.unwrap(), "the second run started after the first ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_process_died_is_marked_abandoned_and_resumed() {
    let store = store();
    let target = MemoryTable::new("t");
    // The first run "dies" after committing its second batch: its future is dropped, so it
    // neither finishes its record nor releases its lease (a killed process's lease expires
    // after its time to live; this process knows its own dropped lease is dead at once).
    let faults = FaultPlan::new().crash_after(2);
    let dying = orchestrator(&store, &target, faults.clone(), LeaseOptions::default());
    assert!(until_crash(faults.crash_switch(), dying.run(RunRequest::all())).await.is_none());
    let dead = store.runs(1).await.unwrap().remove(0);
    assert_eq!(dead.status, RunStatus::Running, "a killed run cannot record its end");
    assert!(store.lease(dmf_core::TARGET_SCOPE).await.unwrap().is_some(), "nor release its lease");

    // The next run takes the dead holder's lease over, marks that run abandoned and resumes
    // its work from the checkpoint.
    let next = orchestrator(&store, &target, FaultPlan::new(), LeaseOptions::default());
    let (lease, acquired) = next.acquire_lease().await.unwrap();
    assert_eq!(acquired.abandoned, vec![dead.id]);
    assert_eq!(acquired.expired.as_ref().and_then(|l| l.run), Some(dead.id));
    let abandoned = store.run(dead.id).await.unwrap().unwrap();
    assert_eq!(abandoned.status, RunStatus::Abandoned);
    let why = abandoned.error.unwrap();
    assert!(why.contains("host `test-host`") && why.contains("stopped renewing its lease"), "{why}");

    let summary = next.run(RunRequest::all().with_lease(lease)).await.unwrap();
    let record = summary.migration("copy").unwrap();
    assert_eq!((record.status, record.resumed), (MigrationStatus::Completed, true));
    assert_eq!(target.len(), 50, "every row exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_holding_the_lease_cannot_be_rolled_back() {
    let store = store();
    let target = MemoryTable::new("t");
    let gate = Gate::new();
    let first =
        Arc::new(orchestrator(&store, &target, FaultPlan::new().hold_before(3, &gate), LeaseOptions::default()));
    let running = tokio::spawn({
        let first = Arc::clone(&first);
        async move { first.run(RunRequest::all()).await }
    });
    gate.reached().await;
    let run = store.runs(1).await.unwrap().remove(0).id;

    let refused = first.rollback(RollbackTarget::Run(run)).await.expect_err("a running run must not be rolled back");
    let message = refused.to_string();
    assert!(matches!(refused, Error::RollbackRefused(_)), "{message}");
    assert!(message.contains(&format!("in use by run {run}")), "{message}");
    assert_eq!(target.len(), 20, "the refused rollback undid nothing");

    gate.open();
    let summary = running.await.unwrap().unwrap();
    assert_eq!(store.run(summary.run).await.unwrap().unwrap().status, RunStatus::Completed);
    first.rollback(RollbackTarget::Run(run)).await.expect("the finished run can be rolled back");
    assert!(target.is_empty());
    assert_eq!(store.run(run).await.unwrap().unwrap().status, RunStatus::RolledBack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lease_was_taken_over_is_told_it_lost_it() {
    let store = store();
    let options = LeaseOptions { ttl: Duration::from_millis(30), ..LeaseOptions::default() };
    let (lease, _) = Lease::acquire(store.clone(), &options, "test-host").await.unwrap();
    // Another holder sees the lease expired (its clock is an hour ahead) and takes it over.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let claim = LeaseClaim {
        scope: options.scope.clone(),
        holder: "someone-else".into(),
        host: "other-host".into(),
        pid: 1,
        run: None,
        now: later,
        ttl: Duration::from_secs(30),
        dead_holder: None,
    };
    assert!(matches!(store.claim_lease(&claim).await.unwrap(), LeaseClaimed::Taken { expired: Some(_) }));
    // The holder's next heartbeat finds the lease gone and says so.
    lease.lost().cancelled().await;
    assert!(lease.attach(dmf_core::RunId(9)).await.is_err(), "a lost lease cannot be used");
}
