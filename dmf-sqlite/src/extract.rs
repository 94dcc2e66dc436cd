//! Streaming keyset extraction from a SQLite table: one page per batch, never the whole table.

use std::num::NonZeroUsize;
use std::sync::Arc;

use dmf_core::catalog::DataType;
use dmf_core::sync::{ExtractSpec, ReadOrder, decode_key_position, key_position};
use dmf_core::{Error, Extractor, Position, Result, Row, SourceBatch, Stage, Value};
use futures::stream::{self, BoxStream, StreamExt};
use rusqlite::params_from_iter;

use crate::connection::ReadConnection;
use crate::{error, sql, types};

/// Reads a table in key order (or watermark order), a page at a time: on a connection of its
/// own, each page a query of its own, or, for a snapshot handle, in the snapshot's read
/// transaction. With a [key range](ExtractSpec::range), only the keys in it: pages start after
/// the range's lower bound (or the resume position past it) and stop at its upper bound.
pub struct SqliteExtractor {
    connection: ReadConnection,
    spec: Arc<ExtractSpec>,
    /// The columns the pages are ordered and resumed by.
    order: Vec<String>,
    /// Their positions among the columns read.
    order_index: Vec<usize>,
}

impl SqliteExtractor {
    pub(crate) fn new(connection: ReadConnection, spec: ExtractSpec) -> Self {
        let order: Vec<String> = match &spec.order {
            ReadOrder::Key => spec.key.clone(),
            ReadOrder::Watermark { column } => {
                std::iter::once(column.clone()).chain(spec.key.iter().cloned()).collect()
            }
        };
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        let order_index = order.iter().filter_map(|o| names.iter().position(|n| n == o)).collect();
        Self { connection, spec: Arc::new(spec), order, order_index }
    }

    fn column_names(&self) -> Vec<String> {
        self.spec.columns.iter().map(|c| c.name.clone()).collect()
    }

    fn after(&self, from: Option<&Position>) -> Result<Option<Vec<Value>>> {
        let Some(position) = from else { return Ok(None) };
        let values = decode_key_position(position)?;
        if values.len() != self.order.len() {
            return Err(Error::fatal(
                Stage::Extract,
                format!(
                    "table `{}`: resume position {} does not have the {} values of ({})",
                    self.spec.table,
                    position.as_str(),
                    self.order.len(),
                    self.order.join(", ")
                ),
            ));
        }
        Ok(Some(values))
    }

    /// Where a read from `from` starts, within the spec's key range: the greater of the
    /// position and the range's lower bound. Errors for a range in watermark order.
    fn start(&self, from: Option<&Position>) -> Result<Option<Vec<Value>>> {
        let after = self.after(from)?;
        Ok(match self.spec.key_range()? {
            Some(range) => range.start(after),
            None => after,
        })
    }

    /// A page of rows after `after`, and the last row's order values as stored: a date or time
    /// stored as text is kept as that text, so that the next page starts exactly after it
    /// whatever its spelling (SQLite compares the stored text; `2024-01-02 03:04:05.000000`
    /// and `2024-01-02 03:04:05`, one instant, are different texts).
    fn read_page(&mut self, after: Option<&[Value]>, limit: usize) -> Result<(Vec<Row>, Vec<Value>)> {
        let spec = Arc::clone(&self.spec);
        let up_to = up_to(&spec);
        let statement = sql::keyset_page(
            &sql::relation(&spec),
            &self.column_names(),
            &self.order,
            after.is_some(),
            up_to.is_some(),
        );
        let context = || format!("reading table `{}`", spec.table);
        let order_index = &self.order_index;
        self.connection.run(|connection| {
            let mut prepared =
                connection.prepare_cached(&statement).map_err(|e| error::map(Stage::Extract, context(), e))?;
            let mut bound: Vec<rusqlite::types::ToSqlOutput<'_>> =
                after.unwrap_or(&[]).iter().chain(up_to.unwrap_or(&[])).map(types::to_sql).collect();
            bound.push(rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Integer(limit as i64)));
            let mut rows =
                prepared.query(params_from_iter(bound.iter())).map_err(|e| error::map(Stage::Extract, context(), e))?;
            let mut page = Vec::with_capacity(limit);
            let mut last_stored = Vec::new();
            while let Some(row) = rows.next().map_err(|e| error::map(Stage::Extract, context(), e))? {
                let mut values = Vec::with_capacity(spec.columns.len());
                for (index, column) in spec.columns.iter().enumerate() {
                    let raw = row.get_ref(index).map_err(|e| error::map(Stage::Extract, context(), e))?;
                    match types::from_sql(raw, &column.data_type) {
                        Ok(value) => values.push(value),
                        Err(bad) => {
                            return Err(Error::fatal(
                                Stage::Extract,
                                format!(
                                    "table `{}`, column `{}` ({}), row after {}: `{}` is not {}",
                                    spec.table,
                                    column.name,
                                    column.native_type,
                                    page.last()
                                        .map_or_else(|| "the start of the page".to_owned(), dmf_core::Record::key),
                                    bad.value,
                                    bad.expected
                                ),
                            ));
                        }
                    }
                }
                last_stored.clear();
                for &index in order_index {
                    let raw = row.get_ref(index).map_err(|e| error::map(Stage::Extract, context(), e))?;
                    last_stored.push(match (raw, &spec.columns[index].data_type) {
                        (
                            rusqlite::types::ValueRef::Text(text),
                            DataType::Date | DataType::Time | DataType::Timestamp | DataType::TimestampTz,
                        ) => Value::Text(String::from_utf8_lossy(text).into_owned()),
                        _ => values[index].clone(),
                    });
                }
                page.push(Row::new(Arc::clone(&spec.shape), values));
            }
            Ok((page, last_stored))
        })
    }
}

/// The key range's upper bound, if any.
fn up_to(spec: &ExtractSpec) -> Option<&[Value]> {
    spec.range.as_ref().and_then(|r| r.up_to.as_deref())
}

impl Extractor for SqliteExtractor {
    type Item = Row;

    fn continues_after_completion(&self) -> bool {
        matches!(self.spec.order, ReadOrder::Watermark { .. })
    }

    fn scope(&self) -> Option<String> {
        self.spec.scope()
    }

    async fn estimate(&mut self, from: Option<&Position>) -> Result<Option<u64>> {
        let after = self.start(from)?;
        let spec = Arc::clone(&self.spec);
        let up_to = up_to(&spec);
        let statement = sql::count_after(&sql::relation(&spec), &self.order, after.is_some(), up_to.is_some());
        let table = spec.table.clone();
        self.connection.run(|connection| {
            let bound: Vec<_> =
                after.as_deref().unwrap_or(&[]).iter().chain(up_to.unwrap_or(&[])).map(types::to_sql).collect();
            connection
                .query_row(&statement, params_from_iter(bound.iter()), |row| row.get::<_, i64>(0))
                .map(|n| Some(n.max(0) as u64))
                .map_err(|e| error::map(Stage::Extract, format!("counting the rows of `{table}`"), e))
        })
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
        if self.order_index.len() != self.order.len() {
            let message = format!(
                "table `{}`: the extractor must read its order columns ({})",
                self.spec.table,
                self.order.join(", ")
            );
            return stream::once(async move { Err(Error::fatal(Stage::Extract, message)) }).boxed();
        }
        let after = match self.start(from.as_ref()) {
            Ok(after) => after,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        stream::unfold((self, after, false), move |(extractor, after, finished)| async move {
            if finished {
                return None;
            }
            let (page, last_stored) = match extractor.read_page(after.as_deref(), batch_size.get()) {
                Ok(read) => read,
                Err(error) => return Some((Err(error), (extractor, after, true))),
            };
            let last = page.last()?;
            let last_order: Vec<Value> = extractor.order_index.iter().map(|i| last.values()[*i].clone()).collect();
            let finished = page.len() < batch_size.get();
            let batch = key_position(&last_order).map(|position| SourceBatch { records: page, position });
            // The next page starts after the stored values, the checkpoint keeps the typed ones.
            Some((batch, (extractor, Some(last_stored), finished)))
        })
        .boxed()
    }
}
