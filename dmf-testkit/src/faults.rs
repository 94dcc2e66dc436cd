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

use dmf_core::{
    Checkpoint, Error, ErrorKind, Extractor, LoadBatch, LoadReport, Loader, MigrationName, Position, Record,
    RollbackReport, RunId, SourceBatch, Stage,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::Notify;

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

#[derive(Default)]
struct Plan {
    fail_at: Vec<(u64, ErrorKind)>,
    transient_left: u32,
    poison: HashSet<String>,
    slow: Option<Duration>,
    crash_before: Option<u64>,
    crash_after: Option<u64>,
    hold_before: Option<(u64, Gate)>,
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

    /// Call `call` waits at `gate` (before writing anything) until the test opens it.
    pub fn hold_before(self, call: u64, gate: &Gate) -> Self {
        let gate = gate.clone();
        self.edit(|p| p.hold_before = Some((call, gate)))
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

    /// The switch tripped by a simulated crash.
    pub fn crash_switch(&self) -> &CrashSwitch {
        &self.crash
    }

    async fn decide(&self, stage: Stage, keys: impl Iterator<Item = String>) -> Decision {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let hold = self.plan.lock().unwrap_or_else(|p| p.into_inner()).hold_before.clone();
        if let Some((at, gate)) = hold {
            if at == call {
                gate.pass().await;
            }
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
pub struct FaultyLoader<L> {
    inner: L,
    plan: FaultPlan,
}

impl<L> FaultyLoader<L> {
    /// Wraps `inner`.
    pub fn new(inner: L, plan: FaultPlan) -> Self {
        Self { inner, plan }
    }
}

impl<L: Loader> Loader for FaultyLoader<L> {
    type Item = L::Item;

    async fn load(&mut self, batch: LoadBatch<'_, L::Item>) -> dmf_core::Result<LoadReport> {
        match self.plan.decide(Stage::Load, batch.records.iter().map(Record::key)).await {
            Decision::Proceed => self.inner.load(batch).await,
            Decision::Fail(error) => Err(error),
            Decision::CrashBefore => self.plan.crash().await,
            Decision::CrashAfter => {
                let _ = self.inner.load(batch).await;
                self.plan.crash().await
            }
            Decision::LoseAnswer(error) => {
                self.inner.load(batch).await?;
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
}

/// An extractor with injected faults, counted per batch read; see [`FaultPlan`].
pub struct FaultyExtractor<E> {
    inner: E,
    plan: FaultPlan,
}

impl<E> FaultyExtractor<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, plan: FaultPlan) -> Self {
        Self { inner, plan }
    }
}

impl<E: Extractor> Extractor for FaultyExtractor<E> {
    type Item = E::Item;

    async fn estimate(&mut self, from: Option<&Position>) -> dmf_core::Result<Option<u64>> {
        self.inner.estimate(from).await
    }

    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, dmf_core::Result<SourceBatch<E::Item>>> {
        let plan = self.plan.clone();
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
