//! The target side of a pipeline.

use std::future::Future;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::names::{MigrationName, RunId};
use crate::record::Record;
use crate::{Counts, RollbackReport};

/// One batch to write, with the checkpoint to store in the same transaction.
#[derive(Debug)]
pub struct LoadBatch<'a, T> {
    /// The migration writing.
    pub migration: &'a MigrationName,
    /// The run writing (for undo logs).
    pub run: RunId,
    /// The records; may be empty when only the checkpoint moves (every row skipped or rejected).
    pub records: &'a [T],
    /// Where to resume once this batch is committed.
    pub checkpoint: &'a Checkpoint,
}

/// What a loader did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// New rows.
    pub inserted: u64,
    /// Rows that existed and differed.
    pub updated: u64,
    /// Rows that existed and were equal (not written).
    pub unchanged: u64,
    /// Rows removed from the target.
    pub deleted: u64,
    /// Rows not written because their key was in the target already
    /// ([`WriteMode::InsertOrSkip`](crate::sync::WriteMode::InsertOrSkip)).
    #[serde(default)]
    pub skipped: u64,
}

impl LoadReport {
    /// Adds `other`'s counts to this report's.
    pub fn add(&mut self, other: &LoadReport) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.skipped += other.skipped;
    }

    /// Adds the report to a migration's counts.
    pub fn add_to(&self, counts: &mut Counts) {
        counts.inserted += self.inserted;
        counts.updated += self.updated;
        counts.unchanged += self.unchanged;
        counts.deleted += self.deleted;
        counts.skipped += self.skipped;
    }
}

/// A row a loader refused while it wrote the rest of its batch ([`Loader::load_isolating`]).
#[derive(Debug)]
pub struct RowFailure {
    /// The row's position in the batch's records.
    pub index: usize,
    /// Why the target refused it: a row error ([`ErrorKind::Data`] or
    /// [`ErrorKind::MissingParent`]) naming the table, and the constraint where the target says.
    pub error: Error,
}

/// What a loader did with a batch, with the rows it refused one by one.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// What was written.
    pub report: LoadReport,
    /// The rows refused, in batch order; every other row was written, with the checkpoint.
    pub failed: Vec<RowFailure>,
}

impl From<LoadReport> for LoadOutcome {
    fn from(report: LoadReport) -> Self {
        Self { report, failed: Vec::new() }
    }
}

impl LoadOutcome {
    /// Checks the loader's answer for a batch of `records` rows: indexes in range and
    /// increasing, errors about row content. A loader breaking this is a bug, reported as a
    /// fatal error rather than a wrong reject.
    pub fn checked(self, records: usize) -> Result<Self> {
        let mut previous = None;
        for failure in &self.failed {
            let in_order = previous.is_none_or(|p| failure.index > p);
            let row_error = matches!(failure.error.kind(), ErrorKind::Data | ErrorKind::MissingParent);
            if failure.index >= records || !in_order || !row_error {
                return Err(Error::fatal(
                    Stage::Load,
                    format!(
                        "the loader reported row {} of a batch of {records} as refused ({}): not a row of the batch \
                         in order, or not an error about the row's content",
                        failure.index,
                        failure.error.chain()
                    ),
                ));
            }
            previous = Some(failure.index);
        }
        Ok(self)
    }
}

/// Writes batches to the target.
///
/// The contract that makes resume exact: [`Loader::load`] writes the records **and** the
/// checkpoint atomically (one transaction), and a failed call writes nothing. Errors are
/// classified: [`ErrorKind::Data`](crate::ErrorKind::Data) when row content caused it (the
/// engine then bisects the batch to reject only the bad rows), transient when a retry may help.
///
/// Used only through generics, so native `async` methods (no `async-trait`).
pub trait Loader: Send + 'static {
    /// The record type written.
    type Item: Record;

    /// Writes `batch.records` and stores `batch.checkpoint` for `batch.migration`, atomically.
    ///
    /// A loader may commit several batches at once (a group commit): a batch it returned from
    /// can then still be lost in a crash, but only together with its checkpoint, so that the
    /// resumed run repeats exactly the lost batches. A batch whose checkpoint is
    /// [`done`](Checkpoint::done) (the migration's last) is committed, with every batch before
    /// it, when `load` returns. Should a group fail to commit, the loader's next call must fail
    /// with a fatal error rather than store a checkpoint past the lost rows.
    fn load(&mut self, batch: LoadBatch<'_, Self::Item>) -> impl Future<Output = Result<LoadReport>> + Send;

    /// Writes `batch` like [`load`](Self::load), except that rows the target refuses for their
    /// content are left out and listed instead of failing the batch: the other rows and the
    /// checkpoint are written atomically, and each refused row costs the target one failed
    /// statement, not a re-sent batch. What the engine calls.
    ///
    /// A loader that cannot tell which rows failed returns the error (the engine then bisects
    /// the batch, as after [`load`](Self::load)). The default does exactly that: it calls
    /// `load` and lists no row.
    fn load_isolating(&mut self, batch: LoadBatch<'_, Self::Item>) -> impl Future<Output = Result<LoadOutcome>> + Send {
        async move { self.load(batch).await.map(LoadOutcome::from) }
    }

    /// The last checkpoint stored for `migration`, if any.
    fn checkpoint(&mut self, migration: &MigrationName) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// Forgets `migration`'s checkpoint (before a forced re-run, and by rollback), so the next
    /// run starts from the beginning.
    fn clear_checkpoint(&mut self, migration: &MigrationName) -> impl Future<Output = Result<()>> + Send;

    /// Undoes what `run` wrote for `migration` (from an undo log, for example). The default
    /// refuses: a loader that keeps no undo information cannot roll back.
    fn rollback(
        &mut self,
        migration: &MigrationName,
        run: RunId,
    ) -> impl Future<Output = Result<RollbackReport>> + Send {
        let message =
            format!("the loader of migration `{migration}` keeps no undo log, so run {run} cannot be rolled back");
        async move { Err(Error::fatal(Stage::Rollback, message)) }
    }

    /// After [`load`](Self::load) of a batch of `records` rows with `checkpoint` failed with a
    /// transient error, says whether that batch committed anyway: a connection can break after
    /// COMMIT reached the server and before its answer came back (a lost acknowledgement), and
    /// sending the batch again would then write its rows twice. `Some(report)` when it
    /// committed (the engine does not send it again), `None` when it did not, or when sending
    /// it again is harmless. Called on a new connection, before every retry that follows a
    /// transient failure.
    ///
    /// The default answers `None`: right for loaders whose writes are idempotent (an upsert
    /// sent again changes nothing and reports its rows unchanged). A loader that inserts
    /// answers from the checkpoint it commits with each batch: [`committed_insert`].
    fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> impl Future<Output = Result<Option<LoadReport>>> + Send {
        let _ = (migration, checkpoint, records);
        async { Ok(None) }
    }

    /// Called once when the migration has loaded everything, before its checkpoint is cleared
    /// (flush buffers, refresh statistics). Default: nothing.
    fn finish(&mut self, migration: &MigrationName) -> impl Future<Output = Result<()>> + Send {
        let _ = migration;
        async { Ok(()) }
    }
}

/// [`Loader::committed`] for a loader that stores each batch's checkpoint in the batch's
/// transaction and inserts every record of a batch or none: the batch committed exactly when
/// the checkpoint stored for `migration` is `checkpoint` (checkpoints move forward with every
/// batch, so no other batch stored the same one), and then it inserted `records` rows.
///
/// ```
/// # use dmf_core::{Checkpoint, Loader, LoadReport, MigrationName, Position};
/// # async fn demo(loader: &mut impl Loader) -> dmf_core::Result<()> {
/// let checkpoint = Checkpoint::at(Position::new("[42]"));
/// let migration = MigrationName::new("customers");
/// if let Some(report) = dmf_core::committed_insert(loader, &migration, &checkpoint, 500).await? {
///     assert_eq!(report.inserted, 500); // in the target already: not sent again
/// }
/// # Ok(()) }
/// ```
pub async fn committed_insert<L: Loader>(
    loader: &mut L,
    migration: &MigrationName,
    checkpoint: &Checkpoint,
    records: usize,
) -> Result<Option<LoadReport>> {
    let stored = loader.checkpoint(migration).await?;
    Ok((stored.as_ref() == Some(checkpoint))
        .then(|| LoadReport { inserted: u64::try_from(records).unwrap_or(u64::MAX), ..LoadReport::default() }))
}
