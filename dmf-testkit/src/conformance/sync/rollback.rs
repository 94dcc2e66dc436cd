//! Undo and rollback: a sync with the undo log on is rolled back to exactly the target's
//! content before it; a rollback that cannot be exact is refused and changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{MigrationStatus, RunId, RunRequest, RunStatus, Value};

use super::{Child, Content, Parent, Side, SyncFixture, Table, engine, source_rows};

/// The target before the sync, made from the source's 40 parents and 80 children: rows equal
/// to the source's, rows that differ (a name, a score turned NULL or from NULL, a note, a
/// child pointing to another parent), rows missing, and rows the source does not have
/// (parents 41 to 45 and their children, and child 50 pointing to extra parent 41, so that a
/// `diff` must update the child before it deletes that parent).
fn drifted(parents: &[Parent], children: &[Child]) -> (Vec<Parent>, Vec<Child>) {
    let mut target_parents: Vec<Parent> = parents
        .iter()
        .filter(|(id, ..)| !(21..=27).contains(id))
        .map(|(id, name, score)| match id {
            11..=17 if id % 2 == 1 => (*id, format!("local edit {id}"), *score),
            11..=17 => (*id, name.clone(), if score.is_some() { None } else { Some(1) }),
            _ => (*id, name.clone(), *score),
        })
        .collect();
    target_parents.extend((41..=45).map(|id| (id, format!("extra {id}"), Some(id))));
    let mut target_children: Vec<Child> = children
        .iter()
        .filter(|(id, ..)| !(30..=35).contains(id))
        .map(|(id, parent, note)| {
            let parent = match (id, parent) {
                (50, _) => 41,
                (_, 21..=27) => 1,
                _ => *parent,
            };
            let note = if (40..=45).contains(id) { Some("local".to_owned()) } else { note.clone() };
            (*id, parent, note)
        })
        .collect();
    target_children.extend((81..=86).map(|id| (id, 41 + id % 5, None)));
    (target_parents, target_children)
}

/// The error of a rollback that must be refused, as its whole chain.
fn refused(outcome: dmf_core::Result<RunId>, what: &str) -> String {
    match outcome {
        Ok(run) => panic!("{what}, but run {run} was rolled back"),
        Err(error) => error.chain(),
    }
}

/// How rows of the target compare with the source's, by key: `(missing, different, extra)`.
fn differences(source: &[Vec<Value>], target: &[Vec<Value>]) -> (u64, u64, u64) {
    let keyed = |rows: &[Vec<Value>]| -> BTreeMap<String, Vec<Value>> {
        rows.iter().map(|row| (row.first().map(Value::canonical).unwrap_or_default(), row.clone())).collect()
    };
    let (source, target) = (keyed(source), keyed(target));
    let missing = source.keys().filter(|k| !target.contains_key(*k)).count() as u64;
    let different = source.iter().filter(|(k, row)| target.get(*k).is_some_and(|theirs| theirs != *row)).count() as u64;
    let extra = target.keys().filter(|k| !source.contains_key(*k)).count() as u64;
    (missing, different, extra)
}

/// A `diff` and an `upsert` sync with the undo log on, each into a target that differs from
/// the source in every way a row can (equal, different, missing, extra), are rolled back the
/// way `dmf rollback last` does ([`SyncJob::rollback`]): the target is then
/// exactly what it was before the sync, the run's undo log is gone, and the run and its
/// migrations are recorded as rolled back.
///
/// Before the rollback, the `diff` made the target equal to the source and the `upsert` made
/// it the source plus the target's extra rows, and each migration counted exactly the rows
/// it inserted, updated and deleted.
pub async fn undo_rollback<F: SyncFixture>(fixture: &F) {
    let (parents, children) = source_rows(40);
    let (target_parents, target_children) = drifted(&parents, &children);
    for mode in [SyncMode::Diff, SyncMode::Upsert] {
        let source = Side::new(fixture, &format!("undo_{mode}_src")).await;
        let target = Side::new(fixture, &format!("undo_{mode}_dst")).await;
        source.fill(&parents, &children).await;
        target.fill(&target_parents, &target_children).await;
        let (source_content, before) = (source.content().await, target.content().await);
        assert_eq!(before, Content::of(&target_parents, &target_children), "the target as the scenario wrote it");

        let job = SyncJob::new(Arc::new(source.database.clone()), Arc::new(target.database.clone()), mode.clone())
            .engine(engine(7))
            .jobs(2)
            .undo(true);
        let summary = job.run(RunRequest::all()).await.unwrap_or_else(|e| panic!("{mode} sync: {}", e.chain()));
        assert!(summary.succeeded(), "{mode}: {summary}");
        target.assert_no_rejects(&summary).await;
        let after = target.content().await;
        let expected = match mode {
            SyncMode::Diff => source_content.clone(),
            _ => {
                let extra_parents: Vec<Parent> = target_parents.iter().filter(|(id, ..)| *id > 40).cloned().collect();
                let extra_children: Vec<Child> = target_children.iter().filter(|(id, ..)| *id > 80).cloned().collect();
                Content::of(&[parents.clone(), extra_parents].concat(), &[children.clone(), extra_children].concat())
            }
        };
        assert_eq!(after, expected, "{mode}: the target after the sync");

        for (table, name, source_rows, target_rows) in [
            (Table::Parents, &target.parents, &source_content.parents, &before.parents),
            (Table::Children, &target.children, &source_content.children, &before.children),
        ] {
            let (missing, different, extra) = differences(source_rows, target_rows);
            let counts =
                summary.migration(&name.to_string()).unwrap_or_else(|| panic!("no {name} in\n{summary}")).counts;
            assert_eq!(
                (counts.inserted, counts.updated),
                (missing, different),
                "{mode}: {} inserted and updated exactly the rows that were missing or different\n{summary}",
                table.name()
            );
            if mode == SyncMode::Diff {
                let deletes = format!("{name} (deletes)");
                let deleted = summary.migration(&deletes).unwrap_or_else(|| panic!("no {deletes} in\n{summary}"));
                assert_eq!(deleted.counts.deleted, extra, "{mode}: the extra rows of {name} deleted\n{summary}");
            }
        }
        assert!(target.undo_entries(summary.run).await > 0, "{mode}: the run kept an undo log");

        let (run, undone) =
            job.rollback(None, false).await.unwrap_or_else(|e| panic!("{mode} rollback: {}", e.chain()));
        assert_eq!(run, summary.run, "{mode}: `last` is the run just made");
        assert_eq!(target.content().await, before, "{mode}: the rollback restores the pre-run content exactly");
        assert!(undone.undone.iter().any(|(_, _, report)| report.deleted > 0), "{mode}: inserted rows deleted");
        assert!(undone.undone.iter().any(|(_, _, report)| report.restored > 0), "{mode}: rows restored");
        assert_eq!(target.undo_entries(run).await, 0, "{mode}: the replayed entries are gone");
        let store = target.database.run_store().await.unwrap_or_else(|e| panic!("{}", e.chain()));
        let record = store.run(run).await.unwrap_or_else(|e| panic!("{}", e.chain()));
        assert_eq!(record.map(|r| r.status), Some(RunStatus::RolledBack), "{mode}");
        for record in store.migration_records(run).await.unwrap_or_else(|e| panic!("{}", e.chain())) {
            assert!(
                matches!(record.status, MigrationStatus::RolledBack | MigrationStatus::Skipped),
                "{mode}: {} is {:?}",
                record.migration,
                record.status
            );
        }
        // The source was only read.
        assert_eq!(source.content().await, source_content, "{mode}: the source is unchanged");
    }
}

/// Rollbacks that cannot restore the target exactly are refused with an error saying why, and
/// leave the target and the run as they were:
///
/// - a run that does not exist (`there is no run N`), and `last` on a target without runs;
/// - a `full` sync, undo log asked for (it emptied the tables and logged none of its loads, so
///   only a backup taken before it can undo it, and it has none);
/// - an `upsert` sync that kept no undo log (`--no-undo`): it can only be undone from a
///   backup.
pub async fn rollback_refusals<F: SyncFixture>(fixture: &F) {
    let (parents, children) = source_rows(12);
    let source = Side::new(fixture, "refusals_src").await;
    let target = Side::new(fixture, "refusals_dst").await;
    source.fill(&parents, &children).await;
    let (local_parents, local_children) = source_rows(5);
    let local: Vec<Parent> =
        local_parents.into_iter().map(|(id, _, score)| (id, format!("local {id}"), score)).collect();
    target.fill(&local, &local_children[..3]).await;
    let (source_content, before) = (source.content().await, target.content().await);
    let job = |mode: SyncMode, undo: bool| {
        SyncJob::new(Arc::new(source.database.clone()), Arc::new(target.database.clone()), mode)
            .engine(engine(5))
            .jobs(2)
            .undo(undo)
    };

    let error = job(SyncMode::Upsert, true).rollback(None, false).await.map(|(run, _)| run);
    let error = refused(error, "`last` with no run is refused");
    assert!(error.contains("the target has no run to roll back"), "{error}");
    let missing = RunId(987_654);
    let error = job(SyncMode::Upsert, true).rollback(Some(missing), false).await.map(|(run, _)| run);
    let error = refused(error, "a run that does not exist is refused");
    assert!(error.contains("there is no run 987654"), "{error}");
    assert_eq!(target.content().await, before, "the refused rollbacks changed nothing");

    // An upsert without an undo log.
    let upsert = job(SyncMode::Upsert, false);
    let summary = upsert.run(RunRequest::all()).await.unwrap_or_else(|e| panic!("upsert: {}", e.chain()));
    assert!(summary.succeeded(), "{summary}");
    let upserted = target.content().await;
    assert_ne!(upserted, before, "the upsert changed the target");
    assert_eq!(target.undo_entries(summary.run).await, 0, "no undo log kept");
    let error = upsert.rollback(Some(summary.run), false).await.map(|(run, _)| run);
    let error = refused(error, "a run without an undo log cannot be rolled back");
    assert!(error.contains("kept no undo log"), "{error}");
    assert_eq!(target.content().await, upserted, "the refused rollback changed nothing");
    let store = target.database.run_store().await.unwrap_or_else(|e| panic!("{}", e.chain()));
    let status = store.run(summary.run).await.unwrap_or_else(|e| panic!("{}", e.chain())).map(|r| r.status);
    assert_eq!(status, Some(RunStatus::Completed), "the run is not recorded as rolled back");

    // A full sync, undo log asked for: its table loads keep none, it emptied the tables.
    let full = job(SyncMode::Full, true);
    // Forced, as `dmf sync` runs a sync that does not resume one: the tables' loads
    // completed in the upsert's run are run again, not skipped.
    let summary = full.run(RunRequest::all().force()).await.unwrap_or_else(|e| panic!("full: {}", e.chain()));
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(target.content().await, source_content, "the full sync copied the source");
    assert_eq!(target.undo_entries(summary.run).await, 0, "a full sync's table loads keep no undo log\n{summary}");
    let error = full.rollback(None, false).await.map(|(run, _)| run);
    let error = refused(error, "a full sync without a backup cannot be rolled back");
    assert!(error.contains("emptied the target tables (full mode): only a backup"), "{error}");
    assert_eq!(target.content().await, source_content, "the refused rollback changed nothing");
    let status = store.run(summary.run).await.unwrap_or_else(|e| panic!("{}", e.chain())).map(|r| r.status);
    assert_eq!(status, Some(RunStatus::Completed), "the full run is not recorded as rolled back");
}
