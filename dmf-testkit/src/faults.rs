//! Fault injection: wrap any extractor or loader and make it fail, stall, or "crash".
//!
//! A crash is simulated the way a killed process looks to the target: the call in progress
//! never completes, and the test drops the run's future (see [`until_crash`]). With
//! [`FaultPlan::crash_before`] the batch is not written; with [`FaultPlan::crash_after`] it is
//! committed but the engine never hears of it.

use std::collections::HashSet;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dmf_core::catalog::TableName;
use dmf_core::{
    Checkpoint, Error, ErrorKind, Extractor, LoadBatch, LoadOutcome, LoadReport, Loader, MigrationName, Position,
    Record, RollbackReport, RunId, SourceBatch, Stage,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::Notify;

use crate::faulty_database::Faults;

/// Tripped when a simulated crash happens.
#[derive(Clone, Default)]
pub struct CrashSwitch {
    tripped: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl CrashSwitch {
    fn trip(&self) {
        self.tripped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// True once a crash happened.
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Waits until a crash happens.
    pub async fn tripped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_tripped() {
                return;
            }
            notified.await;
        }
    }
}

/// A gate on one call: the call stops there until the test opens the gate, and the test can
/// wait until a call reached it. Drives concurrency tests by events, never by timing.
#[derive(Clone, Default)]
pub struct Gate {
    state: Arc<Mutex<(bool, bool)>>,
    notify: Arc<Notify>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    async fn wait_for(&self, done: impl Fn(&(bool, bool)) -> bool) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.state.lock().unwrap_or_else(|p| p.into_inner())) {
                return;
            }
            notified.await;
        }
    }

    fn set(&self, change: impl FnOnce(&mut (bool, bool))) {
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.notify.notify_waiters();
    }

    /// True once a call has reached the gate.
    pub fn is_reached(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Waits until a call has reached the gate.
    pub async fn reached(&self) {
        self.wait_for(|(reached, _)| *reached).await;
    }

    /// Opens the gate: the call waiting there (and any later one) goes on.
    pub fn open(&self) {
        self.set(|(_, open)| *open = true);
    }

    /// Called by the call that reaches the gate: says so, then waits until it opens.
    pub async fn pass(&self) {
        self.set(|(reached, _)| *reached = true);
        self.wait_for(|(_, open)| *open).await;
    }
}

/// Runs `future` until it finishes (`Some(output)`) or `switch` trips, in which case the future
/// is dropped mid-flight, like a killed process (`None`).
pub async fn until_crash<F: Future>(switch: &CrashSwitch, future: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        () = switch.tripped() => None,
        output = future => Some(output),
    }
}

/// Runs `run` until a call has reached every one of `gates`, then opens them all and runs it to
/// the end: proof, by events rather than timing, that the calls held there were in flight at
/// the same time.
///
/// Fails instead of hanging when they were not: if `run` finishes first, or if after `patience`
/// some gate was still not reached (its call waiting for one held at another gate, say). Give
/// `patience` generously (a minute or two): it only turns a hang into a failure, it measures
/// nothing. The gates are opened whatever the outcome, so nothing stays held.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dmf_core::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dmf_core::{Identity, Orchestrator, Pipeline, RunRequest};
/// use dmf_testkit::{FaultPlan, FaultyLoader, Gate, LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable, rendezvous};
///
/// // Two copies whose first loads wait at their gates, `at_a_time` migrations at a time.
/// fn two_copies(gates: &[Gate], at_a_time: usize) -> dmf_core::Result<Orchestrator> {
///     let mut builder = Orchestrator::builder(Arc::new(MemoryRunStore::new())).max_concurrency(at_a_time);
///     for (name, gate) in ["a", "b"].into_iter().zip(gates) {
///         let source = MemoryTable::new(name);
///         source.insert_rows(LegacyGenerator::new(1).rows(1..=10));
///         let target = FaultyLoader::new(MemoryTable::new(name), FaultPlan::new().hold_before(1, gate));
///         builder = builder.migration(Pipeline::new(source, Identity::<LegacyCustomer>::default(), target).named(name));
///     }
///     builder.build()
/// }
///
/// let gates = [Gate::new(), Gate::new()];
/// let orchestrator = two_copies(&gates, 2)?;
/// let summary = rendezvous(&gates, orchestrator.run(RunRequest::all()), Duration::from_secs(120)).await.expect("both loads at once")?;
/// assert!(summary.succeeded());
///
/// // One migration at a time: the first load waits for a second one that never comes.
/// # tokio::time::pause(); // the test's clock skips the patience
/// let gates = [Gate::new(), Gate::new()];
/// let orchestrator = two_copies(&gates, 1)?;
/// let apart = rendezvous(&gates, orchestrator.run(RunRequest::all()), Duration::from_secs(120)).await.expect_err("one after the other");
/// assert_eq!(apart.missing(), [1]);
/// # Ok(()) }
/// ```
pub async fn rendezvous<F: Future>(gates: &[Gate], run: F, patience: Duration) -> Result<F::Output, Apart<F::Output>> {
    let missing = || gates.iter().enumerate().filter(|(_, gate)| !gate.is_reached()).map(|(i, _)| i).collect();
    let open_all = || gates.iter().for_each(Gate::open);
    tokio::pin!(run);
    let all_reached = futures::future::join_all(gates.iter().map(Gate::reached));
    let met = tokio::select! {
        output = &mut run => Err(Apart::Finished { output, missing: missing() }),
        met = tokio::time::timeout(patience, all_reached) => met.map_err(|_| Apart::TimedOut { patience, missing: missing() }),
    };
    open_all();
    match met {
        Ok(_) => Ok(run.await),
        Err(apart) => Err(apart),
    }
}

/// Why [`rendezvous`] failed: the calls held at its gates were not in flight at the same time.
#[derive(Debug)]
pub enum Apart<T> {
    /// The run finished before every gate was reached.
    Finished {
        /// What the run returned.
        output: T,
        /// The indexes of the gates no call reached.
        missing: Vec<usize>,
    },
    /// After `patience`, some gates were still not reached (the run is dropped).
    TimedOut {
        /// How long the rendezvous waited.
        patience: Duration,
        /// The indexes of the gates no call reached.
        missing: Vec<usize>,
    },
}

impl<T> Apart<T> {
    /// The indexes of the gates no call reached.
    pub fn missing(&self) -> &[usize] {
        match self {
            Apart::Finished { missing, .. } | Apart::TimedOut { missing, .. } => missing,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Display for Apart<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Apart::Finished { output, missing } => {
                write!(
                    f,
                    "the run finished before gates {missing:?} were reached, so those calls never ran beside the others: {output:?}"
                )
            }
            Apart::TimedOut { patience, missing } => write!(
                f,
                "gates {missing:?} were still not reached after {patience:?}: the calls that had to run at the same time ran one after the other (or never)"
            ),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for Apart<T> {}

#[derive(Default)]
struct Plan {
    fail_at: Vec<(u64, ErrorKind)>,
    transient_left: u32,
    poison: HashSet<String>,
    slow: Option<Duration>,
    crash_before: Option<u64>,
    crash_after: Option<u64>,
    hold_before: Vec<(u64, Gate)>,
    lose_answer: Vec<u64>,
}

/// Which faults to inject, by call number (the first call is 1). Clones share the plan and
/// its counters, so a test keeps one to watch the wrapper it gave away.
///
/// ```
/// use dmf_testkit::FaultPlan;
/// let plan = FaultPlan::new().transient(2).fail_at(5).poison(["17"]);
/// assert_eq!(plan.calls(), 0);
/// ```
#[derive(Clone, Default)]
pub struct FaultPlan {
    plan: Arc<Mutex<Plan>>,
    calls: Arc<AtomicU64>,
    answers_lost: Arc<AtomicU64>,
    crash: CrashSwitch,
}

enum Decision {
    Proceed,
    Fail(Error),
    CrashBefore,
    CrashAfter,
    LoseAnswer(Error),
}

impl FaultPlan {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn edit(self, change: impl FnOnce(&mut Plan)) -> Self {
        change(&mut self.plan.lock().unwrap_or_else(|p| p.into_inner()));
        self
    }

    /// Call `call` fails once with a fatal error (neither retried nor bisected).
    pub fn fail_at(self, call: u64) -> Self {
        self.fail_at_with(call, ErrorKind::Fatal)
    }

    /// Call `call` fails once with an error of `kind`.
    pub fn fail_at_with(self, call: u64, kind: ErrorKind) -> Self {
        self.edit(|p| p.fail_at.push((call, kind)))
    }

    /// The next `times` calls fail with a transient error.
    pub fn transient(self, times: u32) -> Self {
        self.edit(|p| p.transient_left = times)
    }

    /// Loads containing any of these keys fail with a data error (a "poison row").
    pub fn poison<K: Into<String>>(self, keys: impl IntoIterator<Item = K>) -> Self {
        self.edit(|p| p.poison.extend(keys.into_iter().map(Into::into)))
    }

    /// Every call takes `delay` longer.
    pub fn slow(self, delay: Duration) -> Self {
        self.edit(|p| p.slow = Some(delay))
    }

    /// Call `call` never returns and writes nothing; the crash switch trips.
    pub fn crash_before(self, call: u64) -> Self {
        self.edit(|p| p.crash_before = Some(call))
    }

    /// Call `call` writes, then never returns; the crash switch trips.
    pub fn crash_after(self, call: u64) -> Self {
        self.edit(|p| p.crash_after = Some(call))
    }

    /// Call `call` waits at `gate` (before writing anything) until the test opens it. Several
    /// calls may each wait at a gate of their own.
    pub fn hold_before(self, call: u64, gate: &Gate) -> Self {
        let gate = gate.clone();
        self.edit(|p| p.hold_before.push((call, gate)))
    }

    /// Call `call` writes and commits, then fails with a transient error as if the connection
    /// broke before the answer came back (a lost COMMIT acknowledgement): the caller cannot
    /// tell it from a batch that was never written.
    pub fn lose_answer(self, call: u64) -> Self {
        self.edit(|p| p.lose_answer.push(call))
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many [`lose_answer`](Self::lose_answer) faults happened: the call committed and its
    /// caller was told it failed. Proof that a test's fault was really injected.
    pub fn answers_lost(&self) -> u64 {
        self.answers_lost.load(Ordering::SeqCst)
    }

    /// The switch tripped by a simulated crash.
    pub fn crash_switch(&self) -> &CrashSwitch {
        &self.crash
    }

    /// True when `other` is a clone of this plan (shares its counters).
    #[cfg(test)]
    pub(crate) fn is(&self, other: &FaultPlan) -> bool {
        Arc::ptr_eq(&self.calls, &other.calls)
    }

    async fn decide(&self, stage: Stage, keys: impl Iterator<Item = String>) -> Decision {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let hold = {
            let plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
            plan.hold_before.iter().find(|(at, _)| *at == call).map(|(_, gate)| gate.clone())
        };
        if let Some(gate) = hold {
            gate.pass().await;
        }
        let slow = {
            let mut plan = self.plan.lock().unwrap_or_else(|p| p.into_inner());
            if plan.crash_before == Some(call) {
                return Decision::CrashBefore;
            }
            if let Some(at) = plan.fail_at.iter().position(|(c, _)| *c == call) {
                let (_, kind) = plan.fail_at.remove(at);
                return Decision::Fail(Error::stage(stage, kind, format!("injected {kind:?} failure at call {call}")));
            }
            if plan.transient_left > 0 {
                plan.transient_left -= 1;
                return Decision::Fail(Error::transient(stage, format!("injected transient failure at call {call}")));
            }
            if !plan.poison.is_empty() {
                for key in keys {
                    if plan.poison.contains(&key) {
                        return Decision::Fail(Error::data(stage, format!("injected poison row, key {key}")));
                    }
                }
            }
            if plan.crash_after == Some(call) {
                return Decision::CrashAfter;
            }
            if let Some(at) = plan.lose_answer.iter().position(|c| *c == call) {
                plan.lose_answer.remove(at);
                return Decision::LoseAnswer(Error::transient(
                    stage,
                    format!("injected lost answer at call {call}: connection closed after COMMIT was sent"),
                ));
            }
            plan.slow
        };
        if let Some(delay) = slow {
            tokio::time::sleep(delay).await;
        }
        Decision::Proceed
    }

    async fn crash(&self) -> ! {
        self.crash.trip();
        futures::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }
}

/// A loader with injected faults; see [`FaultPlan`].
///
/// Everything but [`load`](Loader::load) goes straight to the wrapped loader.
pub struct FaultyLoader<L> {
    inner: L,
    plans: LoadPlans,
}

/// Where a [`FaultyLoader`] finds the plan for a batch.
pub(crate) enum LoadPlans {
    /// One plan for every batch.
    One(FaultPlan),
    /// Looked up for each batch, by its migration and then by the loader's table (a
    /// [`FaultyDatabase`](crate::FaultyDatabase)'s loaders learn their migration only from the
    /// batches); no faults when neither has a plan.
    Registered { table: TableName, faults: Arc<Faults> },
}

impl LoadPlans {
    fn for_batch(&self, migration: &MigrationName) -> Option<&FaultPlan> {
        match self {
            LoadPlans::One(plan) => Some(plan),
            LoadPlans::Registered { table, faults } => faults.for_load(migration, table),
        }
    }
}

impl<L> FaultyLoader<L> {
    /// Wraps `inner`.
    pub fn new(inner: L, plan: FaultPlan) -> Self {
        Self { inner, plans: LoadPlans::One(plan) }
    }

    pub(crate) fn with_plans(inner: L, plans: LoadPlans) -> Self {
        Self { inner, plans }
    }
}

impl<L: Loader> Loader for FaultyLoader<L> {
    type Item = L::Item;

    async fn load(&mut self, batch: LoadBatch<'_, L::Item>) -> dmf_core::Result<LoadReport> {
        let Some(plan) = self.plans.for_batch(batch.migration) else {
            return self.inner.load(batch).await;
        };
        match plan.decide(Stage::Load, batch.records.iter().map(Record::key)).await {
            Decision::Proceed => self.inner.load(batch).await,
            Decision::Fail(error) => Err(error),
            Decision::CrashBefore => plan.crash().await,
            Decision::CrashAfter => {
                let _ = self.inner.load(batch).await;
                plan.crash().await
            }
            Decision::LoseAnswer(error) => {
                self.inner.load(batch).await?;
                plan.answers_lost.fetch_add(1, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    /// The same faults as [`load`](Loader::load), around the wrapped loader's
    /// [`load_isolating`](Loader::load_isolating).
    async fn load_isolating(&mut self, batch: LoadBatch<'_, L::Item>) -> dmf_core::Result<LoadOutcome> {
        let Some(plan) = self.plans.for_batch(batch.migration) else {
            return self.inner.load_isolating(batch).await;
        };
        match plan.decide(Stage::Load, batch.records.iter().map(Record::key)).await {
            Decision::Proceed => self.inner.load_isolating(batch).await,
            Decision::Fail(error) => Err(error),
            Decision::CrashBefore => plan.crash().await,
            Decision::CrashAfter => {
                let _ = self.inner.load_isolating(batch).await;
                plan.crash().await
            }
            Decision::LoseAnswer(error) => {
                self.inner.load_isolating(batch).await?;
                plan.answers_lost.fetch_add(1, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.inner.clear_checkpoint(migration).await
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> dmf_core::Result<Option<LoadReport>> {
        self.inner.committed(migration, checkpoint, records).await
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> dmf_core::Result<RollbackReport> {
        self.inner.rollback(migration, run).await
    }

    async fn finish(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.inner.finish(migration).await
    }
}

/// An extractor with injected faults, counted per batch read; see [`FaultPlan`].
///
/// Its [`scope`](Extractor::scope) and [`estimate`](Extractor::estimate) are the wrapped
/// extractor's, so checkpoints are stored as without the wrapper.
pub struct FaultyExtractor<E> {
    inner: E,
    plan: Option<FaultPlan>,
}

impl<E> FaultyExtractor<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, plan: FaultPlan) -> Self {
        Self { inner, plan: Some(plan) }
    }

    /// Wraps `inner` with `plan`, or with no faults at all.
    pub(crate) fn with_plan(inner: E, plan: Option<FaultPlan>) -> Self {
        Self { inner, plan }
    }
}

impl<E: Extractor> Extractor for FaultyExtractor<E> {
    type Item = E::Item;

    fn continues_after_completion(&self) -> bool {
        self.inner.continues_after_completion()
    }

    fn scope(&self) -> Option<String> {
        self.inner.scope()
    }

    async fn estimate(&mut self, from: Option<&Position>) -> dmf_core::Result<Option<u64>> {
        self.inner.estimate(from).await
    }

    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, dmf_core::Result<SourceBatch<E::Item>>> {
        let Some(plan) = self.plan.clone() else {
            return self.inner.extract(from, batch_size);
        };
        self.inner
            .extract(from, batch_size)
            .then(move |item| {
                let plan = plan.clone();
                async move {
                    let batch = item?;
                    match plan.decide(Stage::Extract, batch.records.iter().map(Record::key)).await {
                        Decision::Proceed => Ok(batch),
                        Decision::Fail(error) | Decision::LoseAnswer(error) => Err(error),
                        Decision::CrashBefore | Decision::CrashAfter => plan.crash().await,
                    }
                }
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::{LegacyCustomer, LegacyGenerator, MemoryTable};

    /// Records whether `finish` reached it.
    struct Finishing(Arc<AtomicBool>);

    impl Loader for Finishing {
        type Item = LegacyCustomer;

        async fn load(&mut self, _: LoadBatch<'_, LegacyCustomer>) -> dmf_core::Result<LoadReport> {
            Ok(LoadReport::default())
        }

        async fn checkpoint(&mut self, _: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
            Ok(None)
        }

        async fn clear_checkpoint(&mut self, _: &MigrationName) -> dmf_core::Result<()> {
            Ok(())
        }

        async fn finish(&mut self, _: &MigrationName) -> dmf_core::Result<()> {
            self.0.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_faulty_loader_passes_finish_on_to_the_loader_it_wraps() {
        let finished = Arc::new(AtomicBool::new(false));
        let mut loader = FaultyLoader::new(Finishing(Arc::clone(&finished)), FaultPlan::new().fail_at(1));
        loader.finish(&MigrationName::new("m")).await.expect("finish");
        assert!(finished.load(Ordering::SeqCst), "PostgreSQL moves sequences in finish: it must not be skipped");
    }

    #[test]
    fn a_faulty_extractor_keeps_the_scope_of_the_one_it_wraps() {
        let table = MemoryTable::new("t");
        table.insert_rows(LegacyGenerator::new(1).rows(1..=100));
        let range = table.range(table.key_ranges(NonZeroUsize::new(2).expect("2 > 0"))[0].clone());
        let scope = range.scope();
        assert!(scope.is_some(), "a bounded range has a scope");
        let faulty = FaultyExtractor::new(range, FaultPlan::new());
        assert_eq!(faulty.scope(), scope, "checkpoints are stored under the wrapped extractor's scope");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rendezvous_fails_without_hanging_when_a_gate_is_never_reached() {
        let (reached, never) = (Gate::new(), Gate::new());
        let gates = [reached.clone(), never.clone()];
        let held = async move { reached.pass().await };
        let apart = rendezvous(&gates, held, Duration::from_secs(120)).await.expect_err("gate 1 is never reached");
        assert!(matches!(apart, Apart::TimedOut { .. }), "{apart}");
        assert_eq!(apart.missing(), [1]);
        assert!(gates[0].is_reached() && !gates[1].is_reached());

        // A run that ends before its gates are reached is reported with its output.
        let apart = rendezvous(&[Gate::new()], async { 7 }, Duration::from_secs(120)).await.expect_err("never reached");
        assert!(matches!(apart, Apart::Finished { output: 7, .. }), "{apart}");
    }
}
