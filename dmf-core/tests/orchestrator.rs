//! The orchestrator's policies: dependency order and cycles, concurrency, skip-completed,
//! resume, stop-on-error and continue, pre-flight, backup, notifications, error chains and
//! rollback order.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::*;
use dmf_core::{
    Backup, BackupRecord, CancellationToken, CheckOutcome, Checkpoint, Error, LoadBatch, LoadReport, Loader,
    MigrationName, MigrationStatus, OnError, Orchestrator, Phase, Pipeline, PreflightCheck, RollbackTarget, RunId,
    RunRequest, RunStatus, RunStore,
};
use dmf_testkit::{FaultPlan, FaultyLoader, Gate, MemoryRunStore, MemoryTable, RecordingNotifier, rendezvous};

fn copy(
    name: &str,
    n: i64,
    target: &MemoryTable<common::Row>,
) -> Pipeline<MemoryTable<common::Row>, Rules, MemoryTable<common::Row>> {
    pipeline(name, source(n), plain(), target.clone())
}

#[tokio::test]
async fn a_dependency_cycle_is_refused_naming_the_cycle() {
    let t = MemoryTable::new("t");
    let result = Orchestrator::builder(store())
        .migration(copy("a", 1, &t).depends_on(["c"]))
        .migration(copy("b", 1, &t).depends_on(["a"]))
        .migration(copy("c", 1, &t).depends_on(["b"]))
        .build();
    let Err(error) = result else { panic!("a cycle must be refused") };
    assert!(matches!(error, Error::DependencyCycle { .. }));
    assert_eq!(error.to_string(), "dependency cycle between migrations: a -> c -> b -> a");
}

#[tokio::test]
async fn unknown_dependencies_and_duplicate_names_are_refused() {
    let t = MemoryTable::new("t");
    let unknown = Orchestrator::builder(store()).migration(copy("a", 1, &t).depends_on(["ghost"])).build();
    assert_eq!(
        unknown.err().map(|e| e.to_string()).as_deref(),
        Some("migration `a` depends on `ghost`, which is not registered")
    );
    let duplicate = Orchestrator::builder(store()).migration(copy("a", 1, &t)).migration(copy("a", 1, &t)).build();
    assert!(matches!(duplicate, Err(Error::DuplicateMigration(_))));
}

#[tokio::test]
async fn migrations_run_in_dependency_order_and_independent_ones_concurrently() {
    let (parents, children, other) = (MemoryTable::new("p"), MemoryTable::new("c"), MemoryTable::new("o"));
    // The first load of each independent migration waits at its gate until both are there:
    // the run can only go on if they were in flight at the same time.
    let gates = [Gate::new(), Gate::new()];
    let held = |gate: &Gate| FaultPlan::new().hold_before(1, gate);
    let orchestrator = Orchestrator::builder(store())
        .migration(pipeline("children", source(30), plain(), children.clone()).depends_on(["parents"]))
        .migration(pipeline("parents", source(30), plain(), FaultyLoader::new(parents.clone(), held(&gates[0]))))
        .migration(pipeline("other", source(30), plain(), FaultyLoader::new(other.clone(), held(&gates[1]))))
        .engine(config(5))
        .max_concurrency(2)
        .build()
        .unwrap();
    assert_eq!(orchestrator.plan().iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["other", "parents", "children"]);
    let mut events = orchestrator.progress().subscribe();
    let summary = rendezvous(&gates, orchestrator.run(RunRequest::all()), Duration::from_secs(120))
        .await
        .unwrap_or_else(|apart| panic!("parents and other did not run at the same time: {apart}"))
        .unwrap();
    assert!(summary.succeeded(), "{summary}");

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Some(m) = &event.migration {
            if matches!(event.phase, Phase::Started | Phase::Completed) {
                seen.push(format!("{m}:{:?}", event.phase));
            }
        }
    }
    let at = |s: &str| seen.iter().position(|x| x == s).unwrap_or_else(|| panic!("{s} missing in {seen:?}"));
    assert!(at("parents:Completed") < at("children:Started"), "{seen:?}");
    assert_eq!((parents.len(), children.len(), other.len()), (30, 30, 30));
}

/// A loader that cancels `token` in the middle of its load number `at`, once the rows are
/// written: a cancel that arrives while a batch is in flight.
struct CancelDuring {
    inner: MemoryTable<common::Row>,
    calls: u64,
    at: u64,
    token: CancellationToken,
}

impl Loader for CancelDuring {
    type Item = common::Row;

    async fn load(&mut self, batch: LoadBatch<'_, common::Row>) -> dmf_core::Result<LoadReport> {
        let report = self.inner.load(batch).await?;
        self.calls += 1;
        if self.calls == self.at {
            self.token.cancel();
        }
        Ok(report)
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.inner.clear_checkpoint(migration).await
    }
}

#[tokio::test]
async fn a_cancelled_run_stops_at_the_next_batch_boundary() {
    let target = MemoryTable::new("t");
    let token = CancellationToken::new();
    let loader = CancelDuring { inner: target.clone(), calls: 0, at: 3, token: token.clone() };
    let orchestrator = Orchestrator::builder(store())
        .migration(pipeline("a", source(100), plain(), loader))
        .engine(config(10))
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all().with_cancel(token)).await.unwrap();
    let record = summary.migration("a").unwrap();
    assert_eq!(record.status, MigrationStatus::Cancelled, "{summary}");
    assert_eq!(target.len(), 30, "the load in flight completes, the next one never starts\n{summary}");
}

#[tokio::test]
async fn completed_migrations_are_skipped_unless_forced() {
    let target = MemoryTable::new("t").append_only();
    let orchestrator =
        Orchestrator::builder(store()).migration(copy("a", 10, &target)).engine(config(4)).build().unwrap();
    let first = orchestrator.run(RunRequest::all()).await.unwrap();
    assert_eq!(first.migration("a").unwrap().status, MigrationStatus::Completed);

    let second = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(second.succeeded());
    assert_eq!(second.migration("a").unwrap().status, MigrationStatus::Skipped);
    assert_eq!(target.len(), 10, "nothing loaded twice");
    let third = orchestrator.run(RunRequest::all()).await.unwrap();
    assert_eq!(
        third.migration("a").unwrap().status,
        MigrationStatus::Skipped,
        "a skipped run does not hide completion"
    );

    let forced = orchestrator.run(RunRequest::all().force()).await.unwrap();
    assert_eq!(forced.migration("a").unwrap().status, MigrationStatus::Completed);
    assert_eq!(target.len(), 20, "forced run loads again (the append-only target shows it)");
}

#[tokio::test]
async fn a_failed_migration_resumes_in_the_next_run() {
    let target = MemoryTable::new("t").append_only();
    let store = store();
    let failing = Orchestrator::builder(store.clone())
        .migration(pipeline("a", source(50), plain(), FaultyLoader::new(target.clone(), FaultPlan::new().fail_at(3))))
        .engine(config(10))
        .build()
        .unwrap();
    let first = failing.run(RunRequest::all()).await.unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    let record = first.migration("a").unwrap();
    assert_eq!(record.status, MigrationStatus::Failed);
    let error = record.error.as_deref().unwrap();
    assert_eq!(
        error,
        "migration `a` failed\n\
         caused by: migration `a` stopped after 20 rows read (20 inserted, 0 updated, 0 skipped, 0 rejected)\n\
         caused by: load failed: injected Fatal failure at call 3"
    );
    assert_eq!(record.counts.inserted, 20, "partial counts are recorded");
    assert_eq!(store.run(first.run).await.unwrap().unwrap().error.as_deref(), first.error.as_deref());

    let again =
        Orchestrator::builder(store.clone()).migration(copy("a", 50, &target)).engine(config(10)).build().unwrap();
    let second = again.run(RunRequest::all()).await.unwrap();
    let record = second.migration("a").unwrap();
    assert_eq!((record.status, record.resumed, record.counts.read), (MigrationStatus::Completed, true, 30));
    assert_eq!(target.len(), 50);
}

fn three_with_middle_failing(
    on_error: OnError,
    store: Arc<MemoryRunStore>,
) -> (Orchestrator, [MemoryTable<common::Row>; 3]) {
    let tables = [MemoryTable::new("a"), MemoryTable::new("b"), MemoryTable::new("c")];
    let orchestrator = Orchestrator::builder(store)
        .migration(pipeline(
            "a",
            source(10),
            plain(),
            FaultyLoader::new(tables[0].clone(), FaultPlan::new().fail_at(1)),
        ))
        .migration(copy("b", 10, &tables[1]))
        .migration(copy("c", 10, &tables[2]).depends_on(["a"]))
        .on_error(on_error)
        .engine(config(5))
        .build()
        .unwrap();
    (orchestrator, tables)
}

#[tokio::test]
async fn stop_on_error_starts_nothing_after_a_failure() {
    let (orchestrator, tables) = three_with_middle_failing(OnError::Stop, store());
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Failed);
    let status = |n| summary.migration(n).unwrap().status;
    assert_eq!(
        (status("a"), status("b"), status("c")),
        (MigrationStatus::Failed, MigrationStatus::Skipped, MigrationStatus::Skipped)
    );
    assert_eq!(
        summary.migration("b").unwrap().error.as_deref(),
        Some("not started: the run stopped after `a` did not complete")
    );
    assert!(tables.iter().all(MemoryTable::is_empty));
}

#[tokio::test]
async fn continue_on_error_runs_everything_that_does_not_depend_on_the_failure() {
    let (orchestrator, tables) = three_with_middle_failing(OnError::Continue, store());
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.migration("b").unwrap().status, MigrationStatus::Completed);
    let c = summary.migration("c").unwrap();
    assert_eq!(c.status, MigrationStatus::Skipped);
    assert_eq!(c.error.as_deref(), Some("not started: dependency `a` did not complete (failed)"));
    assert_eq!(tables[1].len(), 10);
    assert!(tables[2].is_empty());
}

struct Check(CheckOutcome);

#[async_trait]
impl PreflightCheck for Check {
    async fn check(&self) -> Vec<CheckOutcome> {
        vec![self.0.clone()]
    }
}

/// Records how many rows the target held when the backup was taken.
#[derive(Clone)]
struct CountingBackup {
    target: MemoryTable<common::Row>,
    rows_at_backup: Arc<Mutex<Option<usize>>>,
}

#[async_trait]
impl Backup for CountingBackup {
    async fn backup(&self, run: RunId) -> dmf_core::Result<BackupRecord> {
        *self.rows_at_backup.lock().unwrap() = Some(self.target.len());
        Ok(BackupRecord {
            method: "test".into(),
            location: format!("memory://backup-{run}"),
            taken_at: SystemTime::now(),
            size_bytes: None,
        })
    }

    async fn restore(&self, _: &BackupRecord) -> dmf_core::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failed_preflight_writes_nothing_takes_no_backup_and_notifies() {
    let target = MemoryTable::new("t");
    let backup = CountingBackup { target: target.clone(), rows_at_backup: Arc::default() };
    let notifier = RecordingNotifier::new();
    let orchestrator = Orchestrator::builder(store())
        .migration(copy("a", 10, &target))
        .preflight(Check(CheckOutcome::passed("connectivity", "fine")))
        .preflight(Check(CheckOutcome::failed("replica role", "the target is a read-only replica")))
        .backup(backup.clone())
        .notifier(notifier.clone())
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.as_deref().unwrap();
    assert!(error.starts_with("pre-flight failed, nothing was written:"), "{error}");
    assert!(error.contains("[FAIL] replica role") && error.contains("the target is a read-only replica"), "{error}");
    assert!(target.is_empty());
    assert_eq!(*backup.rows_at_backup.lock().unwrap(), None);
    let sent = notifier.sent();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].succeeded());
}

#[tokio::test]
async fn backup_is_taken_before_the_first_write_and_recorded() {
    let target = MemoryTable::new("t");
    target.insert_rows([common::Row { id: 1000, value: 1 }]);
    let backup = CountingBackup { target: target.clone(), rows_at_backup: Arc::default() };
    let store = store();
    let notifier = RecordingNotifier::failing();
    let orchestrator = Orchestrator::builder(store.clone())
        .migration(copy("a", 10, &target))
        .backup(backup.clone())
        .notifier(notifier.clone())
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded(), "a failing notifier does not fail the run: {summary}");
    assert_eq!(*backup.rows_at_backup.lock().unwrap(), Some(1));
    let recorded = store.run(summary.run).await.unwrap().unwrap().backup.unwrap();
    assert_eq!(recorded.location, format!("memory://backup-{}", summary.run));
    assert_eq!(notifier.sent().len(), 1);
    assert!(notifier.sent()[0].succeeded());
}

#[tokio::test]
async fn rollback_undoes_a_run_in_reverse_dependency_order() {
    let tables = [MemoryTable::new("a"), MemoryTable::new("b"), MemoryTable::new("c")];
    tables[1].insert_rows([common::Row { id: 3, value: 999 }]);
    let store = store();
    let orchestrator = Orchestrator::builder(store.clone())
        .migration(copy("b", 5, &tables[1]).depends_on(["a"]))
        .migration(copy("c", 5, &tables[2]).depends_on(["b"]))
        .migration(copy("a", 5, &tables[0]))
        .engine(config(2))
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded());
    assert_eq!(tables[1].get("3").unwrap().value, 6, "updated by the run");

    let undone = orchestrator.rollback(RollbackTarget::Run(summary.run)).await.unwrap();
    assert_eq!(undone.order(), ["c", "b", "a"]);
    assert!(tables[0].is_empty() && tables[2].is_empty());
    assert_eq!(tables[1].rows(), vec![common::Row { id: 3, value: 999 }], "before-image restored");
    for record in store.migration_records(summary.run).await.unwrap() {
        assert_eq!(record.status, MigrationStatus::RolledBack);
    }
    assert_eq!(store.run(summary.run).await.unwrap().unwrap().status, RunStatus::RolledBack);

    // Rolled back migrations are no longer "completed": the next run executes them again.
    let rerun = orchestrator.run(RunRequest::all()).await.unwrap();
    assert_eq!(rerun.migration("a").unwrap().status, MigrationStatus::Completed);
    assert_eq!(tables[0].len(), 5);
}

#[tokio::test]
async fn rollback_by_name_and_its_refusals() {
    let (a, b) = (MemoryTable::new("a"), MemoryTable::new("b"));
    let orchestrator = Orchestrator::builder(store())
        .migration(copy("a", 5, &a))
        .migration(copy("b", 5, &b).depends_on(["a"]))
        .build()
        .unwrap();
    let never = orchestrator.rollback(RollbackTarget::Migrations(vec!["a".into()])).await;
    assert_eq!(never.err().map(|e| e.to_string()).as_deref(), Some("rollback refused: migration `a` has never run"));
    let _ = orchestrator.run(RunRequest::all()).await.unwrap();
    let undone = orchestrator.rollback(RollbackTarget::Migrations(vec!["a".into(), "b".into()])).await.unwrap();
    assert_eq!(undone.order(), ["b", "a"]);
    assert!(a.is_empty() && b.is_empty());
    let twice = orchestrator.rollback(RollbackTarget::Migrations(vec!["b".into()])).await;
    assert!(twice.unwrap_err().to_string().contains("has nothing to roll back"));
}

/// A loader that can roll back, but kept no undo log in this run (`--no-undo`): its
/// rollback finds nothing to replay.
struct NoUndoLog(MemoryTable<common::Row>);

impl Loader for NoUndoLog {
    type Item = common::Row;

    async fn load(&mut self, batch: LoadBatch<'_, common::Row>) -> dmf_core::Result<LoadReport> {
        self.0.load(batch).await
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        self.0.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.0.clear_checkpoint(migration).await
    }

    async fn rollback(&mut self, _: &MigrationName, _: RunId) -> dmf_core::Result<dmf_core::RollbackReport> {
        Ok(dmf_core::RollbackReport::default())
    }
}

#[tokio::test]
async fn a_run_that_wrote_rows_and_kept_no_undo_log_is_not_reported_rolled_back() {
    let (a, b) = (MemoryTable::new("a"), MemoryTable::new("b"));
    let store = store();
    let orchestrator = Orchestrator::builder(store.clone())
        .migration(copy("a", 5, &a))
        .migration(pipeline("b", source(5), plain(), NoUndoLog(b.clone())).depends_on(["a"]))
        .build()
        .unwrap();
    let summary = orchestrator.run(RunRequest::all()).await.unwrap();
    assert!(summary.succeeded());
    let refused = orchestrator.rollback(RollbackTarget::Run(summary.run)).await.unwrap_err().chain();
    assert!(
        refused.contains(&format!(
            "rollback refused: run {} wrote 5 rows with `b` and kept no undo log of them, so it cannot be rolled back \
             row by row",
            summary.run
        )),
        "{refused}"
    );
    assert_eq!((a.len(), b.len()), (5, 5), "nothing undone: `b` comes first in reverse order");
    assert_eq!(store.run(summary.run).await.unwrap().unwrap().status, RunStatus::Completed);
}

#[tokio::test]
async fn running_only_some_migrations_requires_their_dependencies_done() {
    let (a, b) = (MemoryTable::new("a"), MemoryTable::new("b"));
    let orchestrator = Orchestrator::builder(store())
        .migration(copy("a", 5, &a))
        .migration(copy("b", 5, &b).depends_on(["a"]))
        .build()
        .unwrap();
    let blocked = orchestrator.run(RunRequest::only(["b"])).await.unwrap();
    assert_eq!(blocked.status, RunStatus::Failed);
    assert!(
        blocked.migration("b").unwrap().error.as_deref().unwrap().contains("dependency `a` is not part of this run")
    );
    assert!(orchestrator.run(RunRequest::only(["a"])).await.unwrap().succeeded());
    assert!(orchestrator.run(RunRequest::only(["b"])).await.unwrap().succeeded());
    assert_eq!(b.len(), 5);
    assert!(matches!(orchestrator.run(RunRequest::only(["zzz"])).await, Err(Error::UnknownMigration(_))));
}

#[tokio::test]
async fn rolling_back_a_run_that_a_later_run_built_on_is_refused_unless_forced() {
    let target = MemoryTable::new("t");
    let orchestrator = Orchestrator::builder(store()).migration(copy("a", 5, &target)).build().unwrap();
    let first = orchestrator.run(RunRequest::all()).await.unwrap();
    let second = orchestrator.run(RunRequest::all().force()).await.unwrap();
    let refused = orchestrator.rollback(RollbackTarget::Run(first.run)).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "rollback refused: run {} wrote to `a` after run {}; roll back run {} first, or force the rollback",
            second.run, first.run, second.run
        )
    );
    // Newest first is fine, and then the older one.
    orchestrator.rollback(RollbackTarget::Run(second.run)).await.unwrap();
    orchestrator.rollback(RollbackTarget::Run(first.run)).await.unwrap();
    assert!(target.is_empty());

    let third = orchestrator.run(RunRequest::all().force()).await.unwrap();
    let _fourth = orchestrator.run(RunRequest::all().force()).await.unwrap();
    assert!(orchestrator.rollback_forced(RollbackTarget::Run(third.run)).await.is_ok());
}
