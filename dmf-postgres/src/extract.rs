//! [`PgExtractor`]: reads a table in keyset pages (by key, or by watermark then key), one
//! page per batch, never more than a page in memory.

use std::num::NonZeroUsize;
use std::sync::Arc;

use dmf_core::catalog::{Column, DataType};
use dmf_core::sync::{ExtractSpec, ReadOrder, key_position};
use dmf_core::{Error, Extractor, NativeRow, NativeRows, Position, Result, Row, SourceBatch, Stage, Value};
use futures::stream::BoxStream;
use tokio_postgres::Statement;
use tokio_postgres::types::{ToSql, Type};

use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::native::PgBinary;
use crate::session::Session;
use crate::snapshot::ExportedSnapshot;
use crate::sql::extract::{ESTIMATE, Ordered, Page, Selected, page_query};
use crate::sql::{cast_type, qualified};
use crate::types::{decode, pg_text, read_as_text};

/// Reads one table for a sync, in the order of its [`ExtractSpec`]:
///
/// - [`ReadOrder::Key`]: `SELECT … WHERE (k1, k2) > ($1, $2) ORDER BY k1, k2 LIMIT n`;
///   positions are the last key ([`key_position`]);
/// - [`ReadOrder::Watermark`]: ordered by the watermark column then the key, positions
///   `[watermark, key…]`; the position stays meaningful after the migration completed, so the
///   next run reads only rows whose watermark grew.
///
/// With a [key range](ExtractSpec::range), pages start after its lower bound (or the position
/// past it) and stop at its upper bound (`AND (k1, k2) <= (…)`).
///
/// Text key columns are compared and ordered with `COLLATE "C"` (byte order), the order every
/// DMF adapter reads in, so merges across databases agree. Position values are bound as text
/// and cast in SQL to the column's type, so any key type works. Built by
/// [`PgDatabase::extractor`](dmf_core::sync::Database::extractor); connects on first use.
///
/// When every column has a binary form DMF reads (no enum, array, range, `interval` or other
/// type without one), each row is kept as the server sent it, as one row of binary COPY data
/// ([`Row::native`]): its values are decoded only when asked for, and a [`PgLoader`](crate::PgLoader)
/// into columns of the same binary forms copies the bytes as they are. A value DMF cannot
/// represent (a timestamp of `infinity`, text that is not UTF-8) still fails the read, naming
/// the column. Other tables read numerics and JSON as text and decode each row as it arrives.
///
/// Each page is one query in a transaction of its own: nothing stays open on the server between
/// pages. The extractor of a [snapshot handle](dmf_core::sync::Database::snapshot) instead reads
/// every page (and its estimate) in one read-only `REPEATABLE READ` transaction on the exported
/// snapshot, open until the extractor is dropped.
pub struct PgExtractor {
    shared: Arc<Shared>,
    spec: ExtractSpec,
    layout: std::result::Result<Layout, String>,
    session: Session,
    statements: Option<Statements>,
    /// The bytes of the last page kept in binary, to size the next one's buffer.
    page_bytes: usize,
}

/// What the queries select and order by, worked out once from the spec.
struct Layout {
    /// The table, for messages.
    table: String,
    /// Neutral types of the selected columns, for decoding.
    types: Vec<DataType>,
    /// Indexes (into the select list) of the order columns: the watermark first, then the key.
    order: Vec<usize>,
    /// A nullable watermark leads the order.
    nullable_watermark: bool,
    first: String,
    after: String,
    after_null: Option<String>,
    /// A key range's upper bound, as text parameters (empty: no upper bound).
    up_to: Vec<String>,
    /// Every column has a binary form DMF decodes: rows are kept in it ([`PgBinary`]).
    native: bool,
}

struct Statements {
    first: Statement,
    after: Statement,
    after_null: Option<Statement>,
    /// The rows' binary forms, when kept in them; `Err` naming a column whose type has none
    /// although the catalog said it has (`column `x` arrives as interval`).
    native: std::result::Result<Option<Arc<PgBinary>>, String>,
}

impl Layout {
    fn new(spec: &ExtractSpec) -> std::result::Result<Self, String> {
        let position_of = |name: &str| {
            spec.columns.iter().position(|c| c.name == name).ok_or_else(|| {
                format!("reading {}: column `{name}` orders the rows but is not among the columns read", spec.table)
            })
        };
        if spec.key.is_empty() {
            return Err(format!("reading {}: no key columns to read it in resumable order", spec.table));
        }
        let range = spec.key_range().map_err(|e| e.to_string())?;
        // `key_range` checked the bound holds no NULL.
        let up_to = text_params(range.and_then(|r| r.up_to.as_deref()).unwrap_or(&[])).unwrap_or_default();
        let bounded = !up_to.is_empty();
        let watermark = match &spec.order {
            ReadOrder::Key => None,
            ReadOrder::Watermark { column } => Some(position_of(column)?),
        };
        let mut order = Vec::with_capacity(spec.key.len() + 1);
        order.extend(watermark);
        for key in &spec.key {
            order.push(position_of(key)?);
        }
        let nullable_watermark = watermark.is_some_and(|w| spec.columns[w].nullable);
        let native = !spec.columns.iter().any(|c| matches!(c.data_type, DataType::Other(_)));
        let select: Vec<Selected<'_>> = spec
            .columns
            .iter()
            .map(|c| Selected { name: &c.name, as_text: !native && read_as_text(&c.data_type) })
            .collect();
        let ordered: Vec<Ordered<'_>> = order
            .iter()
            .enumerate()
            .map(|(i, &index)| ordered(&spec.columns[index], i == 0 && nullable_watermark))
            .collect();
        let query = |page| page_query(&spec.table, &select, &ordered, page, bounded);
        Ok(Self {
            table: spec.table.to_string(),
            types: spec.columns.iter().map(|c| c.data_type.clone()).collect(),
            first: query(Page::First),
            after: query(Page::After),
            after_null: nullable_watermark.then(|| query(Page::AfterNullLead)),
            order,
            nullable_watermark,
            up_to,
            native,
        })
    }
}

/// How the pages order and compare `column`: text (and types read as text) in byte order,
/// `COLLATE "C"`, the order every DMF adapter reads in.
pub(crate) fn ordered(column: &Column, nulls_first: bool) -> Ordered<'_> {
    let by_text = matches!(column.data_type, DataType::Other(_));
    Ordered {
        name: &column.name,
        cast: if by_text { "text".to_owned() } else { cast_type(&column.native_type) },
        binary_collation: by_text || matches!(column.data_type, DataType::Text { .. }),
        by_text,
        nulls_first,
    }
}

/// Key values as the text parameters the page queries cast; `Err` for a NULL.
fn text_params(values: &[Value]) -> std::result::Result<Vec<String>, ()> {
    values.iter().map(|v| pg_text(v).map(|t| t.into_owned()).ok_or(())).collect()
}

impl PgExtractor {
    pub(crate) fn new(shared: Arc<Shared>, spec: ExtractSpec, snapshot: Option<Arc<ExportedSnapshot>>) -> Self {
        let layout = Layout::new(&spec);
        Self { shared, spec, layout, session: Session::in_snapshot(snapshot), statements: None, page_bytes: 0 }
    }

    /// Reads the page after `from`; `None` when nothing is left.
    async fn read_page(&mut self, from: Option<&Position>, limit: usize) -> Result<Option<SourceBatch<Row>>> {
        let layout = self.layout.as_ref().map_err(|message| Error::fatal(Stage::Extract, message.clone()))?;
        let table = &self.spec.table;
        let server = self.shared.connector.name();
        let start = self.spec.start_after(from, layout.order.len())?;
        // The statement to run and its text parameters.
        let (page, mut params) = match &start {
            None => (Page::First, Vec::new()),
            Some(values) => {
                let lead_null = layout.nullable_watermark && values[0].is_null();
                let values = if lead_null { &values[1..] } else { &values[..] };
                let Ok(params) = text_params(values) else {
                    let shown = from.map_or_else(|| format!("{values:?}"), |p| p.as_str().to_owned());
                    return Err(Error::fatal(
                        Stage::Extract,
                        format!("reading {table}: position `{shown}` has a NULL key value"),
                    ));
                };
                (if lead_null { Page::AfterNullLead } else { Page::After }, params)
            }
        };
        params.extend(layout.up_to.iter().cloned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let doing = || match from {
            None => format!("reading the first rows of {table} from {server}"),
            Some(position) => format!("reading rows of {table} after {} from {server}", position.as_str()),
        };

        let (client, fresh) = self.session.client(&self.shared.connector, Stage::Extract).await?;
        if fresh {
            self.statements = None;
        }
        let result = query_page(client, &mut self.statements, layout, page, &params, limit).await;
        let rows = match result {
            Ok(rows) => rows,
            Err(error) => {
                self.session.after_error(&error);
                return Err(to_dmf_error(error, Stage::Extract, doing()));
            }
        };
        tracing::debug!(table = %table, rows = rows.len(), "page read");
        let native = match self.statements.as_ref().map(|s| &s.native) {
            Some(Ok(native)) => native.clone(),
            Some(Err(column)) => {
                let message = format!("reading {table}: {column}, which DMF does not read in binary");
                return Err(Error::fatal(Stage::Extract, message));
            }
            None => None,
        };
        let records = match native {
            Some(native) => {
                let (records, bytes) = native_rows(&rows, native, &self.spec, self.page_bytes)?;
                self.page_bytes = bytes;
                records
            }
            None => {
                let mut records = Vec::with_capacity(rows.len());
                for row in &rows {
                    records.push(Row::new(Arc::clone(&self.spec.shape), decode_row(row, layout, &self.spec)?));
                }
                records
            }
        };
        let Some(last) = records.last() else { return Ok(None) };
        // Decoded apart, so that a row kept in binary stays undecoded on its way to the loader.
        let values = match last.native_bytes() {
            Some(native) => std::borrow::Cow::Owned(native.decode()),
            None => std::borrow::Cow::Borrowed(last.values()),
        };
        let key: Vec<Value> = layout.order.iter().filter_map(|&i| values.get(i).cloned()).collect();
        Ok(Some(SourceBatch { records, position: key_position(&key)? }))
    }
}

/// Runs one page query, preparing the statements on a new connection.
async fn query_page(
    client: &tokio_postgres::Client,
    slot: &mut Option<Statements>,
    layout: &Layout,
    page: Page,
    params: &[String],
    limit: i64,
) -> std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let statements = match slot.take() {
        Some(statements) => statements,
        None => {
            let first = client.prepare(&layout.first).await?;
            let native = if layout.native {
                let columns = first.columns();
                let types: Vec<&Type> = columns.iter().map(|c| c.type_()).collect();
                PgBinary::new(layout.table.clone(), &types).map(|native| Some(Arc::new(native))).map_err(|i| {
                    columns
                        .get(i)
                        .map_or_else(String::new, |c| format!("column `{}` arrives as {}", c.name(), c.type_()))
                })
            } else {
                Ok(None)
            };
            Statements {
                after: client.prepare(&layout.after).await?,
                after_null: match &layout.after_null {
                    Some(sql) => Some(client.prepare(sql).await?),
                    None => None,
                },
                first,
                native,
            }
        }
    };
    let statements = slot.insert(statements);
    let statement = match page {
        Page::First => &statements.first,
        Page::After => &statements.after,
        Page::AfterNullLead => statements.after_null.as_ref().unwrap_or(&statements.after),
    };
    let mut refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    refs.push(&limit);
    client.query(statement, &refs).await
}

/// A page's rows kept in their binary form: one buffer for the page (sized from the last
/// page's `hint` bytes), each row a range of it; returns the rows and the page's size.
fn native_rows(
    rows: &[tokio_postgres::Row],
    native: Arc<PgBinary>,
    spec: &ExtractSpec,
    hint: usize,
) -> Result<(Vec<Row>, usize)> {
    // A little more than the last page, so that a slightly larger one does not double it.
    let mut bytes = Vec::with_capacity(hint + hint / 8);
    let mut ends = Vec::with_capacity(rows.len());
    for row in rows {
        native.append(&mut bytes, row).map_err(|bad| {
            let (name, native_type) =
                spec.columns.get(bad.column).map_or(("?", "?"), |c| (c.name.as_str(), c.native_type.as_str()));
            Error::fatal(
                Stage::Extract,
                format!(
                    "reading column `{name}` ({native_type}) of {}: the value cannot be represented: {}",
                    spec.table, bad.error
                ),
            )
        })?;
        ends.push(bytes.len());
    }
    let size = bytes.len();
    let page = NativeRows::new(native, bytes);
    let mut start = 0;
    let mut records = Vec::with_capacity(rows.len());
    for end in ends {
        let row = NativeRow::new(&page, start..end)
            .ok_or_else(|| Error::fatal(Stage::Extract, format!("reading {}: a row outside its page", spec.table)))?;
        records.push(Row::native(Arc::clone(&spec.shape), row));
        start = end;
    }
    Ok((records, size))
}

fn decode_row(row: &tokio_postgres::Row, layout: &Layout, spec: &ExtractSpec) -> Result<Vec<Value>> {
    layout
        .types
        .iter()
        .enumerate()
        .map(|(i, data_type)| {
            decode(row, i, data_type).map_err(|error| {
                let column = &spec.columns[i];
                to_dmf_error(
                    error,
                    Stage::Extract,
                    format!(
                        "reading column `{}` ({}) of {}: the value cannot be represented",
                        column.name, column.native_type, spec.table
                    ),
                )
            })
        })
        .collect()
}

impl Extractor for PgExtractor {
    type Item = Row;

    fn continues_after_completion(&self) -> bool {
        matches!(self.spec.order, ReadOrder::Watermark { .. })
    }

    fn scope(&self) -> Option<String> {
        self.spec.scope()
    }

    /// The planner's count of the table's rows (`pg_class.reltuples`), for a first read of the
    /// whole table; none for a key range or a resumed read (counting them would scan).
    async fn estimate(&mut self, from: Option<&Position>) -> Result<Option<u64>> {
        if from.is_some() || self.spec.range.is_some() {
            return Ok(None);
        }
        let name = qualified(&self.spec.table);
        let (client, _) = self.session.client(&self.shared.connector, Stage::Extract).await?;
        let result = client.query_one(ESTIMATE, &[&name]).await;
        match result {
            Ok(row) => {
                let (rows, unknown): (Option<f64>, bool) = (row.get(0), row.get(1));
                Ok(rows.filter(|_| !unknown).map(|rows| rows.max(0.0) as u64))
            }
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

impl dmf_core::sync::PagedSource for PgExtractor {
    async fn page(&mut self, after: Option<&Position>, limit: usize) -> Result<Option<SourceBatch<Row>>> {
        self.read_page(after, limit).await
    }
}
