//! [`MssqlExtractor`]: reads a table in keyset pages (by key, or by watermark then key), one
//! page per batch, never more than a page in memory.

use std::num::NonZeroUsize;
use std::sync::Arc;

use dmf_core::sync::{ExtractSpec, ReadOrder, key_position};
use dmf_core::{Error, Extractor, Position, Result, Row, SourceBatch, Stage, Value};
use futures::stream::BoxStream;

use crate::catalog::table_columns;
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::session::Session;
use crate::sql::extract::{Compare, Ordered, Page, Selected, page_query};
use crate::sql::{catalog::ESTIMATE, qualified};
use crate::types::{SqlType, decode, unsupported_reason};

/// Reads one table for a sync, in the order of its [`ExtractSpec`]:
///
/// - [`ReadOrder::Key`]: `SELECT TOP (n) … WHERE (k1 > @P2) OR (k1 = @P2 AND k2 > @P3)
///   ORDER BY k1, k2`; positions are the last key ([`key_position`]);
/// - [`ReadOrder::Watermark`]: ordered by the watermark column then the key, positions
///   `[watermark, key…]`; the position stays meaningful after the migration completed, so
///   the next run reads only rows whose watermark grew. A `rowversion` watermark is read as
///   a `bigint`, compared as `binary(8)`, and bounded below `MIN_ACTIVE_ROWVERSION()`; it
///   need not be among the columns the rows carry (it is never written). A `datetime`
///   watermark is compared as `datetime` (not `datetime2`, whose extra precision would drift).
///
/// With a [key range](ExtractSpec::range), pages start after its lower bound (or the position
/// past it) and stop at its upper bound (`(k1 < @Pn) OR (k1 = @Pn AND k2 <= @Pn+1)`).
///
/// Text keys are compared and ordered in code-point order (`Latin1_General_100_BIN2`) and
/// `uniqueidentifier` keys by their text, the order every DMF adapter reads in, so merges
/// across databases agree (at the price of an index seek: such pages sort). `money` is read
/// as `decimal(19,4)`, exactly. Built by [`MssqlDatabase::extractor`](dmf_core::sync::Database::extractor);
/// connects on first use.
pub struct MssqlExtractor {
    shared: Arc<Shared>,
    spec: ExtractSpec,
    /// `None` until the type of a watermark the rows do not carry was looked up.
    layout: Option<std::result::Result<Layout, String>>,
    session: Session,
}

/// What the queries select and order by, worked out once from the spec.
struct Layout {
    /// Indexes (into the select list) of the order columns: the watermark first, then the key.
    order: Vec<usize>,
    /// A nullable watermark leads the order.
    nullable_watermark: bool,
    first: String,
    after: String,
    after_null: Option<String>,
    /// A key range's upper bound, bound after the position (empty: no upper bound).
    up_to: Vec<Value>,
}

pub(crate) fn compare_of(sql_type: &SqlType) -> Compare {
    match sql_type {
        SqlType::Char(_) | SqlType::VarChar(_) | SqlType::NChar(_) | SqlType::NVarChar(_) => Compare::Text,
        SqlType::UniqueIdentifier => Compare::GuidText,
        SqlType::RowVersion => Compare::RowVersion,
        SqlType::Bit
        | SqlType::TinyInt
        | SqlType::SmallInt
        | SqlType::Int
        | SqlType::BigInt
        | SqlType::DateTime
        | SqlType::SmallDateTime
        | SqlType::Date => Compare::Native { cast: Some(sql_type.native()) },
        _ => Compare::Native { cast: None },
    }
}

impl Layout {
    /// The layout for `spec`; `watermark_type` is the type of a watermark column the rows do
    /// not carry (a rowversion, computed or temporal period column: never written, so not
    /// among the columns a sync moves).
    fn new(spec: &ExtractSpec, watermark_type: Option<SqlType>) -> std::result::Result<Self, String> {
        if spec.key.is_empty() {
            return Err(format!("reading {}: no key columns to read it in resumable order", spec.table));
        }
        let range = spec.key_range().map_err(|e| e.to_string())?;
        let up_to: Vec<Value> = range.and_then(|r| r.up_to.clone()).unwrap_or_default();
        for column in &spec.columns {
            if let Some(reason) = unsupported_reason(&column.native_type) {
                return Err(format!("reading column `{}` of {}: {reason}", column.name, spec.table));
            }
        }
        let mut select: Vec<(String, SqlType)> =
            spec.columns.iter().map(|c| (c.name.clone(), SqlType::parse(&c.native_type))).collect();
        let position_of = |select: &[(String, SqlType)], name: &str| select.iter().position(|(n, _)| n == name);
        let mut order = Vec::with_capacity(spec.key.len() + 1);
        let mut nullable_watermark = false;
        if let ReadOrder::Watermark { column } = &spec.order {
            let index = match (position_of(&select, column), watermark_type) {
                (Some(index), _) => index,
                (None, Some(sql_type)) => {
                    // Read after the row's columns, for the position only.
                    select.push((column.clone(), sql_type));
                    select.len() - 1
                }
                (None, None) => {
                    return Err(format!("reading {}: watermark column `{column}` is not in the table", spec.table));
                }
            };
            nullable_watermark = spec.columns.get(index).is_some_and(|c| c.nullable);
            order.push(index);
        }
        for key in &spec.key {
            order.push(
                position_of(&select, key).ok_or_else(|| {
                    format!("reading {}: key column `{key}` is not among the columns read", spec.table)
                })?,
            );
        }
        let selected: Vec<Selected<'_>> =
            select.iter().map(|(name, ty)| Selected { name, read_as: ty.read_as() }).collect();
        let ordered: Vec<Ordered<'_>> =
            order.iter().map(|&i| Ordered { name: &select[i].0, compare: compare_of(&select[i].1) }).collect();
        let query = |page| page_query(&spec.table, &selected, &ordered, page, !up_to.is_empty());
        Ok(Self {
            first: query(Page::First),
            after: query(Page::After),
            after_null: nullable_watermark.then(|| query(Page::AfterNullLead)),
            order,
            nullable_watermark,
            up_to,
        })
    }
}

impl MssqlExtractor {
    pub(crate) fn new(shared: Arc<Shared>, spec: ExtractSpec) -> Self {
        let carried = match &spec.order {
            ReadOrder::Key => true,
            ReadOrder::Watermark { column } => spec.columns.iter().any(|c| &c.name == column),
        };
        let layout = carried.then(|| Layout::new(&spec, None));
        Self { shared, spec, layout, session: Session::new() }
    }

    /// Looks up the type of a watermark column the rows do not carry, once.
    async fn ensure_layout(&mut self) -> Result<()> {
        if self.layout.is_some() {
            return Ok(());
        }
        let ReadOrder::Watermark { column } = &self.spec.order else { return Ok(()) };
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Extract).await?;
        match table_columns(executor, &self.spec.table).await {
            Ok(columns) => {
                let sql_type = columns.into_iter().find(|c| &c.column.name == column).map(|c| c.sql_type);
                self.layout = Some(Layout::new(&self.spec, sql_type));
                Ok(())
            }
            Err(error) => {
                self.session.after_error(&error);
                Err(to_dmf_error(error, Stage::Extract, format!("reading the columns of {}", self.spec.table)))
            }
        }
    }

    /// Reads the page after `from`; `None` when nothing is left.
    async fn read_page(&mut self, from: Option<&Position>, limit: usize) -> Result<Option<SourceBatch<Row>>> {
        self.ensure_layout().await?;
        let layout = match &self.layout {
            Some(Ok(layout)) => layout,
            Some(Err(message)) => return Err(Error::fatal(Stage::Extract, message.clone())),
            None => return Err(Error::fatal(Stage::Extract, format!("reading {}: no layout", self.spec.table))),
        };
        let table = &self.spec.table;
        let mut params = vec![Value::Int(i64::try_from(limit).unwrap_or(i64::MAX))];
        let start = self.spec.start_after(from, layout.order.len())?;
        let sql = match &start {
            None => &layout.first,
            Some(values) => {
                let lead_null = layout.nullable_watermark && values[0].is_null();
                let values = if lead_null { &values[1..] } else { &values[..] };
                if values.iter().any(Value::is_null) {
                    let shown = from.map_or_else(|| format!("{values:?}"), |p| p.as_str().to_owned());
                    return Err(Error::fatal(
                        Stage::Extract,
                        format!("reading {table}: position `{shown}` has a NULL key value"),
                    ));
                }
                params.extend(values.iter().cloned());
                match (&layout.after_null, lead_null) {
                    (Some(after_null), true) => after_null,
                    _ => &layout.after,
                }
            }
        };
        params.extend(layout.up_to.iter().cloned());
        let server = self.shared.name();
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Extract).await?;
        let rows = match executor.query(sql, &params).await {
            Ok(rows) => rows,
            Err(error) => {
                self.session.after_error(&error);
                let doing = match from {
                    None => format!("reading the first rows of {table} from {server}"),
                    Some(position) => format!("reading rows of {table} after {} from {server}", position.as_str()),
                };
                return Err(to_dmf_error(error, Stage::Extract, doing));
            }
        };
        tracing::debug!(table = %table, rows = rows.len(), "page read");
        let width = self.spec.columns.len();
        let mut records = Vec::with_capacity(rows.len());
        let mut last_order = Vec::new();
        for row in &rows {
            let mut values = Vec::with_capacity(row.0.len());
            for (i, cell) in row.0.iter().enumerate() {
                values.push(decode(cell).map_err(|problem| {
                    let column = self.spec.columns.get(i).map_or("(watermark)", |c| c.name.as_str());
                    Error::fatal(Stage::Extract, format!("reading column `{column}` of {table}: {problem}"))
                })?);
            }
            last_order = layout.order.iter().filter_map(|&i| values.get(i).cloned()).collect();
            values.truncate(width);
            if values.len() != width {
                return Err(Error::fatal(
                    Stage::Extract,
                    format!("reading {table}: the server returned {} columns, {width} expected", values.len()),
                ));
            }
            records.push(Row::new(Arc::clone(&self.spec.shape), values));
        }
        if records.len() < limit {
            // A short page ends the read: the session goes back to the pool rather than idling
            // until the run ends (a later read opens one).
            self.session = Session::new();
        }
        if records.is_empty() {
            return Ok(None);
        }
        Ok(Some(SourceBatch { records, position: key_position(&last_order)? }))
    }
}

impl Extractor for MssqlExtractor {
    type Item = Row;

    fn continues_after_completion(&self) -> bool {
        matches!(self.spec.order, ReadOrder::Watermark { .. })
    }

    fn scope(&self) -> Option<String> {
        self.spec.scope()
    }

    /// The catalog's row count, for a first read of the whole table; none for a key range or
    /// a resumed read (counting them would scan).
    async fn estimate(&mut self, from: Option<&Position>) -> Result<Option<u64>> {
        if from.is_some() || self.spec.range.is_some() {
            return Ok(None);
        }
        let name = Value::Text(qualified(&self.spec.table));
        let (executor, _) = self.session.executor(self.shared.connector.as_ref(), Stage::Extract).await?;
        match executor.query(ESTIMATE, &[name]).await {
            Ok(rows) => Ok(rows.first().and_then(|row| row.int(0).ok().flatten()).and_then(|n| u64::try_from(n).ok())),
            Err(error) => {
                self.session.after_error(&error);
                Err(to_dmf_error(error, Stage::Extract, format!("estimating the rows of {}", self.spec.table)))
            }
        }
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
        dmf_core::sync::page_stream(self, from, batch_size)
    }
}

impl dmf_core::sync::PagedSource for MssqlExtractor {
    async fn page(&mut self, after: Option<&Position>, limit: usize) -> Result<Option<SourceBatch<Row>>> {
        self.read_page(after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_choose_their_comparison() {
        assert_eq!(compare_of(&SqlType::parse("nvarchar(20)")), Compare::Text);
        assert_eq!(compare_of(&SqlType::parse("char(3)")), Compare::Text);
        assert_eq!(compare_of(&SqlType::UniqueIdentifier), Compare::GuidText);
        assert_eq!(compare_of(&SqlType::RowVersion), Compare::RowVersion);
        assert_eq!(compare_of(&SqlType::Int), Compare::Native { cast: Some("int".into()) });
        assert_eq!(compare_of(&SqlType::DateTime), Compare::Native { cast: Some("datetime".into()) });
        assert_eq!(compare_of(&SqlType::parse("decimal(12,2)")), Compare::Native { cast: None }, "no rounding cast");
        assert_eq!(compare_of(&SqlType::parse("datetime2(3)")), Compare::Native { cast: None });
    }
}
