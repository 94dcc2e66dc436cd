//! Lost COMMIT answers: a batch that committed, whose answer never came back, is not written
//! twice.

use std::sync::Arc;

use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{RunRequest, RunStatus, RunSummary};

use super::{Child, Parent, Side, SyncFixture, engine, source_rows};
use crate::{FaultPlan, FaultyDatabase};

/// The loads of one sync: one plan per migration, so that the loads of other passes into the
/// same tables (the catch-up pass) are not counted.
struct Plans {
    parents: FaultPlan,
    children: FaultPlan,
    deletes: FaultPlan,
}

impl Plans {
    fn calls(&self) -> [u64; 3] {
        [self.parents.calls(), self.children.calls(), self.deletes.calls()]
    }

    fn answers_lost(&self) -> [u64; 3] {
        [self.parents.answers_lost(), self.children.answers_lost(), self.deletes.answers_lost()]
    }
}

/// Syncs `source` into `target`, its loads wrapped by a [`FaultyDatabase`] following `plans`.
async fn sync<D: dmf_core::sync::Database + Clone>(
    source: &Side<D>,
    target: &Side<D>,
    mode: SyncMode,
    plans: &Plans,
) -> RunSummary {
    let faulty = FaultyDatabase::new(target.database.clone())
        .faults_for_migration(&target.parents.to_string(), plans.parents.clone())
        .faults_for_migration(&target.children.to_string(), plans.children.clone())
        .faults_for_migration(&format!("{} (deletes)", target.parents), plans.deletes.clone());
    let job =
        SyncJob::new(Arc::new(source.database.clone()), Arc::new(faulty), mode.clone()).engine(engine(10)).jobs(2);
    job.run(RunRequest::all()).await.unwrap_or_else(|e| panic!("{mode} sync: {}", e.chain()))
}

/// What the target holds before an `upsert` or `diff`: every other parent, renamed, and
/// (for `diff`, which deletes them) parents the source does not have.
fn stale(parents: &[Parent], mode: &SyncMode) -> Vec<Parent> {
    let mut rows: Vec<Parent> = parents
        .iter()
        .filter(|(id, ..)| id % 2 == 1)
        .map(|(id, _, score)| (*id, format!("old {id}"), *score))
        .collect();
    if *mode == SyncMode::Diff {
        rows.extend((101..=112).map(|id| (id, format!("gone {id}"), None)));
    }
    rows
}

/// The answer of a load is lost after its transaction committed (a
/// [`FaultPlan::lose_answer`] on a [`FaultyDatabase`] wrapping the target: the real loader
/// commits, then the call fails with a transient error). The engine asks the real loader
/// whether the batch committed (its checkpoint, read on a new connection), and:
///
/// - in a `full` sync (plain inserts, which the target's keys would refuse a second time),
///   no load is sent again: with 45 parents and 90 children in batches of 10, the parents
///   take 6 loads (5 with rows and the one marking the migration done) and the children 10,
///   losing the answers of the first, a middle and the last load with rows of the parents and
///   of a middle load and the final one of the children; every row is inserted once and
///   counted once;
/// - in an `upsert` and a `diff` sync, whose writes are idempotent, the loader says it cannot
///   tell ([`Loader::committed`](dmf_core::Loader::committed)'s default) and each batch
///   whose answer was lost is sent once more, changing nothing: exactly one load more per
///   lost answer than the same sync without faults, the deletes of a `diff` included.
///
/// Every run completes with the target equal to the source, nothing rejected and nothing in
/// the quarantine.
pub async fn lost_commit_answer<F: SyncFixture>(fixture: &F) {
    let (parents, children): (Vec<Parent>, Vec<Child>) = source_rows(45);

    let source = Side::new(fixture, "lost_full_src").await;
    let target = Side::new(fixture, "lost_full_dst").await;
    source.fill(&parents, &children).await;
    let plans = Plans {
        parents: FaultPlan::new().lose_answer(1).lose_answer(3).lose_answer(5),
        children: FaultPlan::new().lose_answer(4).lose_answer(10),
        deletes: FaultPlan::new(),
    };
    let summary = sync(&source, &target, SyncMode::Full, &plans).await;
    assert_eq!(summary.status, RunStatus::Completed, "{summary}");
    assert_eq!(plans.answers_lost(), [3, 2, 0], "the faults happened\n{summary}");
    assert_eq!(plans.calls(), [6, 10, 0], "no load was sent again\n{summary}");
    for (name, rows) in [(&target.parents, parents.len()), (&target.children, children.len())] {
        let counts = summary.migration(&name.to_string()).unwrap_or_else(|| panic!("no {name} in\n{summary}")).counts;
        let rows = rows as u64;
        assert_eq!((counts.read, counts.inserted), (rows, rows), "{name}: every row inserted once\n{summary}");
    }
    target.assert_no_rejects(&summary).await;
    assert_eq!(target.content().await, source.content().await, "full: the target equals the source");

    for mode in [SyncMode::Upsert, SyncMode::Diff] {
        // The same sync without faults, for the number of loads it takes.
        let clean = Plans { parents: FaultPlan::new(), children: FaultPlan::new(), deletes: FaultPlan::new() };
        let source = Side::new(fixture, &format!("lost_{mode}_src")).await;
        source.fill(&parents, &children).await;
        let target = Side::new(fixture, &format!("lost_{mode}_clean")).await;
        target.insert_parents(&stale(&parents, &mode)).await;
        let summary = sync(&source, &target, mode.clone(), &clean).await;
        assert_eq!(summary.status, RunStatus::Completed, "{summary}");
        let loads = clean.calls();
        assert!(loads[0] >= 3 && loads[1] >= 3, "{mode}: several loads of each table: {loads:?}");
        assert_eq!(loads[2] > 0, mode == SyncMode::Diff, "{mode}: deletes only in a diff: {loads:?}");

        let target = Side::new(fixture, &format!("lost_{mode}_dst")).await;
        target.insert_parents(&stale(&parents, &mode)).await;
        let deletes = if mode == SyncMode::Diff { FaultPlan::new().lose_answer(1) } else { FaultPlan::new() };
        let plans = Plans {
            parents: FaultPlan::new().lose_answer(1).lose_answer(loads[0] - 1),
            children: FaultPlan::new().lose_answer(2).lose_answer(loads[1]),
            deletes,
        };
        let summary = sync(&source, &target, mode.clone(), &plans).await;
        assert_eq!(summary.status, RunStatus::Completed, "{mode}: {summary}");
        let lost = plans.answers_lost();
        assert_eq!(lost, [2, 2, u64::from(mode == SyncMode::Diff)], "{mode}: the faults happened\n{summary}");
        let expected = [loads[0] + lost[0], loads[1] + lost[1], loads[2] + lost[2]];
        assert_eq!(plans.calls(), expected, "{mode}: each batch whose answer was lost sent once more\n{summary}");
        target.assert_no_rejects(&summary).await;
        assert_eq!(target.content().await, source.content().await, "{mode}: the target equals the source");
    }
}
