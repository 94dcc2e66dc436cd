//! The loader of a delete pass: a row the target will not delete because one of its own rows
//! still references it is rejected with that reason, never deferred as a missing parent.

use crate::error::{Error, ErrorKind, Result, Stage};
use crate::names::{MigrationName, RunId};
use crate::pipeline::{LoadBatch, LoadReport, Loader};
use crate::{Checkpoint, RollbackReport};

/// Wraps the loader of a delete pass (`diff`, `incremental` with deletes). A delete refused by
/// a foreign key (the adapters classify that as [`ErrorKind::MissingParent`], the kind of a
/// foreign-key violation) means a row of the target still references the row: a table the
/// sync does not write (not selected, without a key, or only in the target) holds a child of
/// it. That is not a parent arriving late, so it is turned into a [`ErrorKind::Data`] error
/// naming the cause: the engine isolates the row and rejects it into the quarantine, instead
/// of deferring it to the catch-up pass (which would report it as "waited for a parent row the
/// target lacked" and never delete it).
pub struct DeleteLoader<L> {
    inner: L,
}

impl<L> DeleteLoader<L> {
    /// Wraps `inner`, a loader writing [`WriteMode::Delete`](super::WriteMode::Delete).
    pub fn new(inner: L) -> Self {
        Self { inner }
    }
}

fn referenced(error: Error) -> Error {
    if error.kind() != ErrorKind::MissingParent {
        return error;
    }
    Error::with_source(
        Stage::Load,
        ErrorKind::Data,
        "the row is still referenced by a row of the target that this sync does not delete (a table it does not \
         write, or a row kept there); delete or re-point that row first",
        error,
    )
}

impl<L: Loader> Loader for DeleteLoader<L> {
    type Item = L::Item;

    async fn load(&mut self, batch: LoadBatch<'_, Self::Item>) -> Result<LoadReport> {
        self.inner.load(batch).await.map_err(referenced)
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, Self::Item>) -> Result<crate::LoadOutcome> {
        let outcome = self.inner.load_isolating(batch).await.map_err(referenced)?;
        let failed = outcome
            .failed
            .into_iter()
            .map(|failure| crate::RowFailure { index: failure.index, error: referenced(failure.error) })
            .collect();
        Ok(crate::LoadOutcome { report: outcome.report, failed })
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        self.inner.clear_checkpoint(migration).await
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> Result<RollbackReport> {
        self.inner.rollback(migration, run).await
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        self.inner.committed(migration, checkpoint, records).await
    }

    async fn finish(&mut self, migration: &MigrationName) -> Result<()> {
        self.inner.finish(migration).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_key_refusing_a_delete_is_a_data_error_naming_the_cause() {
        let refused =
            Error::stage(Stage::Load, ErrorKind::MissingParent, "violates foreign key constraint \"kids_fk\"");
        let error = referenced(refused);
        assert_eq!(error.kind(), ErrorKind::Data);
        assert!(error.chain().contains("still referenced by a row of the target"), "{}", error.chain());
        assert!(error.chain().contains("kids_fk"), "the driver's message is kept: {}", error.chain());
        let other = referenced(Error::transient(Stage::Load, "connection reset"));
        assert_eq!(other.kind(), ErrorKind::Transient);
    }
}
