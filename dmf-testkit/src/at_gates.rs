//! Acting at points of a run the test chose: wait until a call reached a [`Gate`], act while it
//! waits there (cancel the run, change the source between two batches), then let it go on.
//! Ordered by events, never by timing.

use std::future::Future;

use dmf_core::CancellationToken;

use crate::faults::Gate;

/// Runs `run`; each time a call reaches the next of `gates`, in their order, awaits
/// `step(index)` while that call waits at its gate, then opens the gate and goes on to the next.
/// Returns the run's output once every step was taken.
///
/// The gates must be reached in their order. It fails instead of hanging when they are not: if
/// the run finishes before reaching a gate, or if a later gate is reached while an earlier one
/// is still not (the call held there might keep the earlier one from ever being reached). Every
/// gate is opened then, so nothing stays held.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dmf_core::Result<()> {
/// use std::sync::{Arc, Mutex};
/// use dmf_core::{EngineConfig, Identity, Orchestrator, Pipeline, RunRequest};
/// use dmf_testkit::{FaultPlan, FaultyLoader, Gate, LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable, at_gates};
///
/// let (source, target) = (MemoryTable::new("legacy"), MemoryTable::new("copy"));
/// source.insert_rows(LegacyGenerator::new(1).rows(1..=100));
/// // Loads 2 and 5 (of ten rows each) wait at their gates.
/// let gates = [Gate::new(), Gate::new()];
/// let plan = FaultPlan::new().hold_before(2, &gates[0]).hold_before(5, &gates[1]);
/// let loader = FaultyLoader::new(target.clone(), plan);
/// let orchestrator = Orchestrator::builder(Arc::new(MemoryRunStore::new()))
///     .engine(EngineConfig::builder().batch_size(10).build()?)
///     .migration(Pipeline::new(source, Identity::<LegacyCustomer>::default(), loader).named("copy"))
///     .build()?;
///
/// // What the target holds while each of them waits: exactly the batches before it.
/// let seen = Mutex::new(Vec::new());
/// let run = orchestrator.run(RunRequest::all());
/// let summary = at_gates(&gates, run, |_| {
///     seen.lock().unwrap().push(target.len());
///     std::future::ready(())
/// })
/// .await
/// .expect("both loads happen, in order")?;
/// assert!(summary.succeeded());
/// assert_eq!(*seen.lock().unwrap(), [10, 40]);
/// # Ok(()) }
/// ```
pub async fn at_gates<F, S>(
    gates: &[Gate],
    run: F,
    mut step: impl FnMut(usize) -> S,
) -> Result<F::Output, Unreached<F::Output>>
where
    F: Future,
    S: Future<Output = ()>,
{
    tokio::pin!(run);
    for (index, gate) in gates.iter().enumerate() {
        let later = &gates[index + 1..];
        let later_reached = async {
            if later.is_empty() {
                std::future::pending::<()>().await;
            }
            futures::future::select_all(later.iter().map(|g| Box::pin(g.reached()))).await;
        };
        let missed = tokio::select! {
            biased;
            () = gate.reached() => None,
            output = &mut run => Some(Unreached { gate: index, output: Some(output) }),
            () = later_reached => Some(Unreached { gate: index, output: None }),
        };
        if let Some(unreached) = missed {
            gates.iter().for_each(Gate::open);
            return Err(unreached);
        }
        step(index).await;
        gate.open();
    }
    Ok(run.await)
}

/// Runs `run` until a call reaches `gate`, then cancels `cancel` and opens the gate: the call
/// held there goes on with the cancellation already requested, so the run stops at the first
/// batch boundary after it, a point the test chose. Fails, with the run's output, if the run
/// finished without reaching the gate.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dmf_core::Result<()> {
/// use std::sync::Arc;
/// use dmf_core::{CancellationToken, EngineConfig, Identity, MigrationStatus, Orchestrator, Pipeline, RunRequest};
/// use dmf_testkit::{FaultPlan, FaultyLoader, Gate, LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable, cancel_at};
///
/// let (source, target) = (MemoryTable::new("legacy"), MemoryTable::new("copy"));
/// source.insert_rows(LegacyGenerator::new(1).rows(1..=100));
/// let gate = Gate::new();
/// let loader = FaultyLoader::new(target.clone(), FaultPlan::new().hold_before(3, &gate));
/// let orchestrator = Orchestrator::builder(Arc::new(MemoryRunStore::new()))
///     .engine(EngineConfig::builder().batch_size(10).build()?)
///     .migration(Pipeline::new(source, Identity::<LegacyCustomer>::default(), loader).named("copy"))
///     .build()?;
///
/// // Cancelled while the third load waits: that load completes, the fourth never starts.
/// let cancel = CancellationToken::new();
/// let run = orchestrator.run(RunRequest::all().with_cancel(cancel.clone()));
/// let summary = cancel_at(&gate, &cancel, run).await.expect("the third load happens")?;
/// assert_eq!(summary.migration("copy").map(|m| m.status), Some(MigrationStatus::Cancelled));
/// assert_eq!(target.len(), 30);
/// # Ok(()) }
/// ```
pub async fn cancel_at<F: Future>(
    gate: &Gate,
    cancel: &CancellationToken,
    run: F,
) -> Result<F::Output, Unreached<F::Output>> {
    at_gates(std::slice::from_ref(gate), run, |_| {
        cancel.cancel();
        std::future::ready(())
    })
    .await
}

/// Why [`at_gates`] or [`cancel_at`] failed: a gate was not reached in its turn.
#[derive(Debug)]
pub struct Unreached<T> {
    /// The index of the gate not reached.
    pub gate: usize,
    /// What the run returned, when it finished first; `None` when a later gate was reached
    /// first (the run is dropped).
    pub output: Option<T>,
}

impl<T: std::fmt::Debug> std::fmt::Display for Unreached<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.output {
            Some(output) => write!(f, "the run finished before gate {} was reached: {output:?}", self.gate),
            None => write!(f, "a later gate was reached before gate {}: the gates were not passed in order", self.gate),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for Unreached<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_that_ends_before_its_gate_fails_with_its_output() {
        let unreached =
            at_gates(&[Gate::new()], async { 7 }, |_| std::future::ready(())).await.expect_err("not reached");
        assert_eq!((unreached.gate, unreached.output), (0, Some(7)));
    }

    #[tokio::test]
    async fn gates_reached_out_of_order_fail_without_hanging_and_are_left_open() {
        let gates = [Gate::new(), Gate::new()];
        let second = gates[1].clone();
        // Only the second gate is ever reached; its call would wait for ever.
        let run = async move { second.pass().await };
        let unreached = at_gates(&gates, run, |_| std::future::ready(())).await.expect_err("out of order");
        assert_eq!((unreached.gate, unreached.output.is_none()), (0, true));
        gates[1].pass().await; // open: passes at once
    }
}
