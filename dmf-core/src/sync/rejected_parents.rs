//! Rows whose parent row was rejected: rejected too, with that reason, instead of deferred.
//!
//! A row the target refuses for a missing parent ([`ErrorKind::MissingParent`]) is deferred to
//! the [catch-up pass](super::CATCH_UP), on the bet that its parent arrived in the source after
//! the parent's table was copied. When the parent row is in the source but was *rejected* (its
//! own content failed, it is in the quarantine), that bet is lost in advance: the catch-up pass
//! rejects the parent again and the child waits for ever, counted nowhere, blamed on source
//! changes that did not happen. [`ParentAware`] wraps each loader of a sync so that such a
//! child is rejected as soon as it is refused, as a row-content error naming its rejected
//! parent (the engine quarantines and counts it like any reject), and noted in turn, so that
//! its own children follow it. "Deferred" stays for parents that really arrive late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::catalog::{ForeignKey, TableName};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::migration::RollbackReport;
use crate::names::{MigrationName, RunId};
use crate::pipeline::{LoadBatch, LoadReport, Loader};
use crate::record::Record;
use crate::value::Row;

/// The rows the loads of one sync rejected, per target table, with why: what [`ParentAware`]
/// loaders look a refused row's parent up in. Holds only rejected rows (bounded by the reject
/// limit) and is looked through linearly, only when a row is refused for a missing parent.
#[derive(Debug, Default)]
pub(crate) struct RejectedRows {
    rows: Mutex<HashMap<TableName, Vec<(Row, String)>>>,
}

impl RejectedRows {
    fn note(&self, table: &TableName, row: &Row, reason: String) {
        let mut rows = self.rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rows.entry(table.clone()).or_default().push((row.clone(), reason));
    }

    /// A rejected row that `row` references through one of `foreign_keys`, described as
    /// `public.customers id=7 (its reason)`; `None` when no parent of `row` was rejected.
    fn rejected_parent(&self, foreign_keys: &[ForeignKey], row: &Row) -> Option<String> {
        let rows = self.rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for fk in foreign_keys {
            // MATCH SIMPLE: a row with a NULL in the foreign key references nothing.
            let Some(values) =
                fk.columns.iter().map(|c| row.get(c).filter(|v| !v.is_null())).collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let parents = rows.iter().filter(|(table, _)| fk.referenced_table.matches(table));
            for (table, rejected) in parents {
                for (parent, reason) in rejected {
                    let same = fk.referenced_columns.iter().zip(&values).all(|(column, value)| {
                        parent
                            .get(column)
                            .is_some_and(|theirs| theirs == *value || theirs.canonical() == value.canonical())
                    });
                    if same {
                        return Some(format!("{table} {} (foreign key {}), rejected: {reason}", parent.key(), fk.name));
                    }
                }
            }
        }
        None
    }
}

/// A sync's loader for one table, which rejects rows whose parent was rejected (see the
/// module's documentation) and notes the rows rejected for their content.
///
/// It relies on how the engine treats a load that fails: a batch failing on row content is
/// bisected until the failing row is alone, and a one-row load that fails with a
/// [`Data`](ErrorKind::Data) error is that row's rejection.
pub(crate) struct ParentAware<L> {
    inner: L,
    table: TableName,
    foreign_keys: Vec<ForeignKey>,
    rejected: Arc<RejectedRows>,
}

impl<L> ParentAware<L> {
    /// `inner`, loading `table` whose `foreign_keys` are looked up in `rejected`.
    pub(crate) fn new(inner: L, table: TableName, foreign_keys: Vec<ForeignKey>, rejected: Arc<RejectedRows>) -> Self {
        Self { inner, table, foreign_keys, rejected }
    }
}

impl<L: Loader<Item = Row>> Loader for ParentAware<L> {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadReport> {
        let records = batch.records;
        let error = match self.inner.load(batch).await {
            Ok(report) => return Ok(report),
            Err(error) => error,
        };
        let [row] = records else { return Err(error) };
        Err(self.refused(row, error))
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, Row>) -> Result<crate::LoadOutcome> {
        let records = batch.records;
        let outcome = self.inner.load_isolating(batch).await.map_err(|error| match records {
            [row] => self.refused(row, error),
            _ => error,
        })?;
        let failed = outcome
            .failed
            .into_iter()
            .map(|failure| {
                let error = match records.get(failure.index) {
                    Some(row) => self.refused(row, failure.error),
                    None => failure.error,
                };
                crate::RowFailure { index: failure.index, error }
            })
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

impl<L> ParentAware<L> {
    /// The error for `row`, which the target refused with `error`: a rejected parent is named
    /// when there is one, and a row refused for its content is noted (its children are then
    /// rejected in turn).
    fn refused(&self, row: &Row, error: Error) -> Error {
        if !matches!(error.kind(), ErrorKind::Data | ErrorKind::MissingParent) {
            return error;
        }
        // Some targets report a missing parent as a plain constraint violation (SQL Server's
        // 547 is foreign keys and CHECKs alike): a rejected parent is named for those too.
        match self.rejected.rejected_parent(&self.foreign_keys, row) {
            Some(parent) => {
                let message = format!("its parent row was rejected in this run, so it cannot load: {parent}");
                self.rejected.note(&self.table, row, message.clone());
                Error::with_source(Stage::Load, ErrorKind::Data, message, error)
            }
            None if error.kind() == ErrorKind::Data => {
                self.rejected.note(&self.table, row, error.chain());
                error
            }
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::value::{RowShape, Value};

    fn row(table: &str, columns: &[&str], values: Vec<Value>) -> Row {
        let shape = RowShape {
            table: TableName::new(Some("public"), table),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key: vec![0],
        };
        Row::new(Arc::new(shape), values)
    }

    fn to_customers() -> ForeignKey {
        ForeignKey {
            name: "orders_customer_fk".into(),
            columns: vec!["customer_id".into()],
            referenced_table: TableName::new(Some("public"), "customers"),
            referenced_columns: vec!["id".into()],
            enforced: true,
        }
    }

    #[test]
    fn a_parent_is_found_by_the_referenced_columns_and_null_references_nothing() {
        let rejected = RejectedRows::default();
        let customers = TableName::new(Some("public"), "customers");
        rejected.note(
            &customers,
            &row("customers", &["id", "name"], vec![Value::Int(7), Value::Null]),
            "too long".into(),
        );
        let order = |customer| row("orders", &["id", "customer_id"], vec![Value::Int(1), customer]);
        assert_eq!(
            rejected.rejected_parent(&[to_customers()], &order(Value::Int(7))).as_deref(),
            Some("public.customers id=7 (foreign key orders_customer_fk), rejected: too long")
        );
        // Same canonical value, another representation (a source that reads integers as text).
        assert!(rejected.rejected_parent(&[to_customers()], &order(Value::Text("7".into()))).is_some());
        assert_eq!(rejected.rejected_parent(&[to_customers()], &order(Value::Int(8))), None);
        assert_eq!(rejected.rejected_parent(&[to_customers()], &order(Value::Null)), None);
        assert_eq!(rejected.rejected_parent(&[], &order(Value::Int(7))), None);
    }
}
