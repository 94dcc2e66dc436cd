//! The two steps that sync sequences: one records the target's values before anything is
//! written (its rollback puts them back), one sets them to the source's after everything is.

use std::sync::Arc;

use async_trait::async_trait;

use super::Database;
use crate::catalog::{Sequence, SequencePair, TableName};
use crate::error::{Error, Result, Stage};
use crate::migration::{Counts, DataMigration, MigrationContext, MigrationResult, RollbackReport};
use crate::names::MigrationName;

/// The name of the step that records the target's sequence values before the first write.
pub const SEQUENCES_BEFORE: &str = "sequences (before the load)";

/// The name of the step that sets the target's sequences to the source's after the load.
pub const SEQUENCES: &str = "sequences";

/// Reads the current values of `pairs`' target sequences in `target`.
async fn current<T: Database>(target: &T, pairs: &[SequencePair]) -> Result<Vec<Sequence>> {
    let tables = tables_of(pairs.iter().map(|p| &p.target));
    let now = target.sequences(&tables).await?;
    Ok(pairs.iter().filter_map(|p| now.iter().find(|s| s.name == p.target.name).cloned()).collect())
}

fn tables_of<'a>(sequences: impl Iterator<Item = &'a Sequence>) -> Vec<TableName> {
    let mut tables: Vec<TableName> = Vec::new();
    for sequence in sequences {
        if !tables.contains(&sequence.table) {
            tables.push(sequence.table.clone());
        }
    }
    tables
}

fn result(name: &MigrationName, counts: Counts, started: std::time::Instant) -> MigrationResult {
    MigrationResult {
        migration: name.clone(),
        counts,
        duration: started.elapsed(),
        resumed: false,
        retries: 0,
        peak_rows_in_flight: 0,
    }
}

/// Records the target's sequence values in the run store before the run's first write; its
/// rollback sets them back, so that rolling a run back leaves every sequence where it was
/// (whatever moved it during the run: the sequence step, or a loader catching a sequence up
/// past the ids it loaded).
pub struct RecordSequences<T> {
    name: MigrationName,
    target: Arc<T>,
    pairs: Vec<SequencePair>,
}

impl<T: Database> RecordSequences<T> {
    /// Records the values of `pairs`' target sequences in `target`.
    pub fn new(target: Arc<T>, pairs: Vec<SequencePair>) -> Self {
        Self { name: MigrationName::new(SEQUENCES_BEFORE), target, pairs }
    }
}

#[async_trait]
impl<T: Database> DataMigration for RecordSequences<T> {
    fn name(&self) -> &MigrationName {
        &self.name
    }

    fn description(&self) -> &str {
        "records the target's sequence values before the load, for a rollback"
    }

    async fn execute(&self, ctx: &MigrationContext) -> Result<MigrationResult> {
        let started = std::time::Instant::now();
        let values = current(self.target.as_ref(), &self.pairs).await?;
        ctx.store.record_sequences(ctx.run, &self.name, &values).await?;
        Ok(result(&self.name, Counts { read: values.len() as u64, ..Counts::default() }, started))
    }

    async fn rollback(&self, ctx: &MigrationContext) -> Result<RollbackReport> {
        let values = ctx.store.recorded_sequences(ctx.run, &self.name).await?;
        self.target.set_sequences(&values).await?;
        ctx.store.forget_sequences(ctx.run, &self.name).await?;
        tracing::info!(run = %ctx.run, sequences = values.len(), "sequences set back to their values before the run");
        Ok(RollbackReport { deleted: 0, restored: values.len() as u64 })
    }
}

/// Sets the target's sequences to the source's values once every row is written: each
/// target sequence of [`SyncPlan::sequences`](super::SyncPlan::sequences) takes the value
/// its source sequence has now. Counts: `read` the sequences compared, `updated` those whose
/// value differs from the one recorded before the run (by this step, or by a loader that caught
/// a sequence up past the ids it loaded), `unchanged` the others.
pub struct SyncSequences<S, T> {
    name: MigrationName,
    source: Arc<S>,
    target: Arc<T>,
    pairs: Vec<SequencePair>,
    depends: Vec<MigrationName>,
}

impl<S: Database, T: Database> SyncSequences<S, T> {
    /// Syncs `pairs` from `source` into `target` after `depends`.
    pub fn new(source: Arc<S>, target: Arc<T>, pairs: Vec<SequencePair>, depends: Vec<MigrationName>) -> Self {
        Self { name: MigrationName::new(SEQUENCES), source, target, pairs, depends }
    }
}

/// The target sequences of `pairs` that must move, with the source's values, given the
/// values both sides have now (`source`, `target`): `(to set, compared)`.
pub(crate) fn moves(pairs: &[SequencePair], source: &[Sequence], target: &[Sequence]) -> Result<(Vec<Sequence>, u64)> {
    let mut moved = Vec::new();
    let mut compared = 0;
    for pair in pairs {
        let ours = source.iter().find(|s| s.name == pair.source.name && s.table == pair.source.table);
        let Some(ours) = ours.or_else(|| source.iter().find(|s| s.name == pair.source.name)) else {
            return Err(Error::fatal(
                Stage::Load,
                format!("sequence {} of the source is gone since the sync was planned", pair.source.name),
            ));
        };
        let Some(theirs) = target.iter().find(|s| s.name == pair.target.name) else {
            return Err(Error::fatal(
                Stage::Load,
                format!("sequence {} of the target is gone since the sync was planned", pair.target.name),
            ));
        };
        compared += 1;
        if theirs.last_value != ours.last_value {
            moved.push(Sequence { last_value: ours.last_value, ..theirs.clone() });
        }
    }
    Ok((moved, compared))
}

/// Both sides' current values of `pairs`: `(source, target)`.
pub(crate) async fn read_both<S: Database, T: Database>(
    source: &S,
    target: &T,
    pairs: &[SequencePair],
) -> Result<(Vec<Sequence>, Vec<Sequence>)> {
    let ours = source.sequences(&tables_of(pairs.iter().map(|p| &p.source))).await?;
    let theirs = current(target, pairs).await?;
    Ok((ours, theirs))
}

#[async_trait]
impl<S: Database, T: Database> DataMigration for SyncSequences<S, T> {
    fn name(&self) -> &MigrationName {
        &self.name
    }

    fn description(&self) -> &str {
        "sets the target's sequences to the source's values after the load"
    }

    fn dependencies(&self) -> &[MigrationName] {
        &self.depends
    }

    async fn execute(&self, ctx: &MigrationContext) -> Result<MigrationResult> {
        let started = std::time::Instant::now();
        let (ours, theirs) = read_both(self.source.as_ref(), self.target.as_ref(), &self.pairs).await?;
        let (moved, compared) = moves(&self.pairs, &ours, &theirs)?;
        self.target.set_sequences(&moved).await?;
        for sequence in &moved {
            tracing::info!(%sequence, "target sequence set to the source's value");
        }
        // Against the values before the run (a resumed run that did not record them: the
        // values this step found).
        let before = ctx.store.recorded_sequences(ctx.run, &MigrationName::new(SEQUENCES_BEFORE)).await?;
        let before = if before.is_empty() { theirs } else { before };
        let (changed, _) = moves(&self.pairs, &ours, &before)?;
        let updated = changed.len() as u64;
        let counts = Counts { read: compared, updated, unchanged: compared - updated, ..Counts::default() };
        Ok(result(&self.name, counts, started))
    }

    /// Nothing of its own: the values before the run come back with the rollback of
    /// [`SEQUENCES_BEFORE`], which runs after it.
    async fn rollback(&self, _ctx: &MigrationContext) -> Result<RollbackReport> {
        Ok(RollbackReport::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SequenceKind;

    fn sequence(name: &str, value: Option<i64>) -> Sequence {
        Sequence {
            name: TableName::parse(name),
            kind: SequenceKind::Sequence,
            table: TableName::parse("public.t"),
            column: Some("id".into()),
            last_value: value,
        }
    }

    #[test]
    fn only_sequences_whose_values_differ_move_to_the_source_value() {
        let pairs = vec![
            SequencePair { source: sequence("public.a", None), target: sequence("public.a", None) },
            SequencePair { source: sequence("public.b", None), target: sequence("public.b2", None) },
        ];
        let source = [sequence("public.a", Some(10)), sequence("public.b", None)];
        let target = [sequence("public.a", Some(10)), sequence("public.b2", Some(4))];
        let (moved, compared) = moves(&pairs, &source, &target).unwrap();
        assert_eq!(compared, 2);
        assert_eq!(moved, [sequence("public.b2", None)], "unused in the source: set back to unused");
        let gone = moves(&pairs, &source[..1], &target).unwrap_err();
        assert!(gone.to_string().contains("sequence public.b of the source is gone"), "{gone}");
    }
}
