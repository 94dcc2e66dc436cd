//! [`PgExtractor`]: reads a table in keyset pages (by key, or by watermark then key), one
//! page per batch, never more than a page in memory.

use std::num::NonZeroUsize;
use std::sync::Arc;

use dmf_core::catalog::{Column, DataType};
use dmf_core::sync::{ExtractSpec, ReadOrder, key_position};
use dmf_core::{
    Error, Extractor, NativeEncoding, NativeRow, NativeRows, Position, Result, Row, RowShape, SourceBatch, Stage, Value,
};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use tokio_postgres::Statement;
use tokio_postgres::types::{ToSql, Type};

use crate::config::Connector;
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::native::{BadPage, PgBinary};
use crate::session::Session;
use crate::snapshot::ExportedSnapshot;
use crate::sql::extract::{
    ESTIMATE, Ordered, Page, SET_PARAMETERS, Selected, columns_probe, page_copy, page_query, parameter_setting,
};
use crate::sql::relation::relation;
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
/// type without one), each page is one binary `COPY (SELECT …) TO STDOUT` and each row is kept
/// as the server sent it, one row of binary COPY data ([`Row::native`]). A `COPY` takes no
/// bound parameters, so the page's (text) parameters are first bound to `set_config` in the
/// page's transaction (`dmf.p1`, `dmf.p2`…) and the `COPY` reads them with `current_setting`:
/// values are never spliced into the SQL. A prepared `SELECT … LIMIT 0` of the same columns runs
/// first in that transaction and fails if a column's type changed since (binary COPY data
/// carries no types). The rows' values are decoded only when asked for, and a
/// [`PgLoader`](crate::PgLoader) into columns of the same binary forms copies the bytes as they
/// are. A value DMF cannot
/// represent (a timestamp of `infinity`, text that is not UTF-8) still fails the read, naming
/// the column and the row's key. Other tables read numerics and JSON as text and decode each row as it arrives.
///
/// Each page is read in a transaction of its own (one query, or the `COPY` with the statements
/// that set its parameters): nothing stays open on the server between pages. The extractor of a [snapshot handle](dmf_core::sync::Database::snapshot) instead reads
/// every page (and its estimate) in one read-only `REPEATABLE READ` transaction on the exported
/// snapshot, open until the extractor is dropped.
pub struct PgExtractor {
    shared: Arc<Shared>,
    spec: ExtractSpec,
    /// Built on the first read, once the catalog said how to name the table
    /// ([`RelationKind`]).
    layout: Option<std::result::Result<Layout, String>>,
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
    /// The page queries.
    select: PageSql,
    /// When every column has a binary form DMF decodes, rows are kept in it ([`PgBinary`]):
    /// the same pages as binary `COPY`s out.
    copy: Option<CopyPages>,
    /// A key range's upper bound, as text parameters (empty: no upper bound).
    up_to: Vec<String>,
}

/// The statement of each kind of [`Page`].
struct PageSql {
    first: String,
    after: String,
    after_null: Option<String>,
}

impl PageSql {
    fn new(nullable_watermark: bool, sql: impl Fn(Page) -> String) -> Self {
        Self {
            first: sql(Page::First),
            after: sql(Page::After),
            after_null: nullable_watermark.then(|| sql(Page::AfterNullLead)),
        }
    }
}

/// Pages read by binary `COPY`s out.
struct CopyPages {
    pages: PageSql,
    /// The columns read, no rows ([`columns_probe`]). Prepared, its result types are the
    /// rows' binary forms; run before each `COPY`, it fails if a column's type changed since
    /// (binary COPY data says nothing of its types).
    probe: String,
}

/// The [`PageSql`], prepared on the extractor's connection.
struct PageStatements {
    first: Statement,
    after: Statement,
    after_null: Option<Statement>,
}

impl PageStatements {
    async fn prepare(
        client: &tokio_postgres::Client,
        sql: &PageSql,
    ) -> std::result::Result<Self, tokio_postgres::Error> {
        Ok(Self {
            first: client.prepare(&sql.first).await?,
            after: client.prepare(&sql.after).await?,
            after_null: match &sql.after_null {
                Some(sql) => Some(client.prepare(sql).await?),
                None => None,
            },
        })
    }

    fn get(&self, page: Page) -> &Statement {
        match page {
            Page::First => &self.first,
            Page::After => &self.after,
            Page::AfterNullLead => self.after_null.as_ref().unwrap_or(&self.after),
        }
    }
}

/// How pages are read on the current connection.
enum Statements {
    /// By the page queries, each row decoded as it arrives.
    Decoded(PageStatements),
    /// By binary `COPY`s out, the rows kept in their binary forms; the `COPY`s read their
    /// parameters from settings that `set_parameters` ([`SET_PARAMETERS`]) sets first.
    Native {
        pages: PageStatements,
        binary: Arc<PgBinary>,
        /// [`CopyPages::probe`], prepared.
        probe: Statement,
        set_parameters: Statement,
    },
    /// Not at all: a column arrives in a type with no binary form DMF reads, although the
    /// catalog said it has one (`column `x` arrives as interval`).
    Unreadable(String),
}

/// A page as read.
enum Fetched {
    Rows(Vec<tokio_postgres::Row>),
    /// Binary COPY data of rows of these binary forms.
    Native(Arc<PgBinary>, Vec<u8>),
    /// See [`Statements::Unreadable`].
    Unreadable(String),
}

impl Layout {
    /// `relation`: how the statements name the table ([`relation`]).
    fn new(spec: &ExtractSpec, relation: &str) -> std::result::Result<Self, String> {
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
        Ok(Self {
            table: spec.table.to_string(),
            types: spec.columns.iter().map(|c| c.data_type.clone()).collect(),
            select: PageSql::new(nullable_watermark, |page| page_query(relation, &select, &ordered, page, bounded)),
            copy: native.then(|| CopyPages {
                pages: PageSql::new(nullable_watermark, |page| page_copy(relation, &select, &ordered, page, bounded)),
                probe: columns_probe(relation, &select),
            }),
            order,
            nullable_watermark,
            up_to,
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
        Self { shared, spec, layout: None, session: Session::in_snapshot(snapshot), statements: None, page_bytes: 0 }
    }

    /// Works the page queries out on the first read: an ordinary table is read `ONLY` (an
    /// inheritance parent without its children's rows), a partitioned one with its partitions'.
    async fn layout(&mut self) -> Result<()> {
        if self.layout.is_some() {
            return Ok(());
        }
        if let Some(query) = &self.spec.query {
            self.layout = Some(Layout::new(&self.spec, &format!("({query}) AS \"dmf_query\"")));
            return Ok(());
        }
        let client = connected(&mut self.session, &self.shared.connector, &mut self.statements).await?;
        let kind = match crate::catalog::relation_kind(client, &self.spec.table).await {
            Ok(kind) => kind,
            Err(error) => {
                self.session.after_error(&error);
                return Err(to_dmf_error(
                    error,
                    Stage::Extract,
                    format!("looking {} up in the catalog", self.spec.table),
                ));
            }
        };
        self.layout = Some(Layout::new(&self.spec, &relation(&self.spec.table, kind)));
        Ok(())
    }

    /// Reads the page after `from`; `None` when nothing is left.
    async fn read_page(&mut self, from: Option<&Position>, limit: usize) -> Result<Option<SourceBatch<Row>>> {
        self.layout().await?;
        let layout = match &self.layout {
            Some(Ok(layout)) => layout,
            Some(Err(message)) => return Err(Error::fatal(Stage::Extract, message.clone())),
            None => return Err(Error::fatal(Stage::Extract, format!("reading {}: no page queries", self.spec.table))),
        };
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
        let bound_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let doing = || match from {
            None => format!("reading the first rows of {table} from {server}"),
            Some(position) => format!("reading rows of {table} after {} from {server}", position.as_str()),
        };

        let in_snapshot = self.session.in_transaction();
        let client = connected(&mut self.session, &self.shared.connector, &mut self.statements).await?;
        let request = PageRequest { page, params: &params, limit: bound_limit, hint: self.page_bytes };
        let result = fetch_page(client, in_snapshot, &mut self.statements, layout, request).await;
        let fetched = match result {
            Ok(fetched) => fetched,
            Err(error) => {
                self.session.after_error(&error);
                return Err(to_dmf_error(error, Stage::Extract, doing()));
            }
        };
        let records = match fetched {
            Fetched::Native(binary, bytes) => {
                self.page_bytes = bytes.len();
                native_rows(binary, bytes, &self.spec, limit)?
            }
            Fetched::Rows(rows) => {
                let mut records = Vec::with_capacity(rows.len());
                for row in &rows {
                    records.push(Row::new(Arc::clone(&self.spec.shape), decode_row(row, layout, &self.spec)?));
                }
                records
            }
            Fetched::Unreadable(column) => {
                let message = format!("reading {table}: {column}, which DMF does not read in binary");
                return Err(Error::fatal(Stage::Extract, message));
            }
        };
        tracing::debug!(table = %table, rows = records.len(), "page read");
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

/// The extractor's connection (a new one when there was none or it closed), with `statements`
/// dropped when it is new: statements prepared on an earlier connection are gone with it.
async fn connected<'s>(
    session: &'s mut Session,
    connector: &Connector,
    statements: &mut Option<Statements>,
) -> Result<&'s mut tokio_postgres::Client> {
    let (client, fresh) = session.client(connector, Stage::Extract).await?;
    if fresh {
        *statements = None;
    }
    Ok(client)
}

/// What one page read asks for.
struct PageRequest<'a> {
    page: Page,
    /// The page's text parameters, but the limit.
    params: &'a [String],
    limit: i64,
    /// About the bytes of the page (the last page's size), for its buffer when its rows are
    /// kept in binary.
    hint: usize,
}

/// Reads one page, preparing the statements on a new connection.
async fn fetch_page(
    client: &mut tokio_postgres::Client,
    in_snapshot: bool,
    slot: &mut Option<Statements>,
    layout: &Layout,
    request: PageRequest<'_>,
) -> std::result::Result<Fetched, tokio_postgres::Error> {
    let PageRequest { page, params, limit, hint } = request;
    let statements = match slot.take() {
        Some(statements) => statements,
        None => prepare(client, layout).await?,
    };
    match slot.insert(statements) {
        Statements::Decoded(pages) => {
            let mut refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            refs.push(&limit);
            client.query(pages.get(page), &refs).await.map(Fetched::Rows)
        }
        Statements::Native { pages, binary, probe, set_parameters } => {
            let names: Vec<String> = (1..=params.len() + 1).map(parameter_setting).collect();
            let values: Vec<String> = params.iter().cloned().chain([limit.to_string()]).collect();
            // In one transaction (the snapshot's, or one of the page's own): the parameters are
            // local to it, so that a connection pooler that runs each transaction on any server
            // connection still runs the COPY where they were set; and the probe's lock keeps
            // the columns' types until the COPY has run.
            let mut own = None;
            let client = if in_snapshot { &*client } else { own.insert(client.transaction().await?).client() };
            let set: [&(dyn ToSql + Sync); 2] = [&names, &values];
            futures::try_join!(client.execute(probe, &[]), client.execute(set_parameters, &set))?;
            let mut data = std::pin::pin!(client.copy_out(pages.get(page)).await?);
            // A little more than the last page, so that a slightly larger one does not double it.
            let mut bytes = Vec::with_capacity(hint + hint / 8);
            while let Some(chunk) = data.try_next().await? {
                bytes.extend_from_slice(&chunk);
            }
            // The page is kept until its rows are loaded: no spare room kept with it (a page that
            // outgrew the hint would keep up to twice its size).
            bytes.shrink_to_fit();
            if let Some(transaction) = own {
                transaction.commit().await?;
            }
            Ok(Fetched::Native(Arc::clone(binary), bytes))
        }
        Statements::Unreadable(column) => Ok(Fetched::Unreadable(column.clone())),
    }
}

/// Prepares the statements that read pages of `layout`: the page `COPY`s when rows are kept in
/// binary, after learning their binary forms from the probe's result types.
async fn prepare(
    client: &tokio_postgres::Client,
    layout: &Layout,
) -> std::result::Result<Statements, tokio_postgres::Error> {
    let Some(copy) = &layout.copy else {
        return Ok(Statements::Decoded(PageStatements::prepare(client, &layout.select).await?));
    };
    let probe = client.prepare(&copy.probe).await?;
    let columns = probe.columns();
    let types: Vec<&Type> = columns.iter().map(|c| c.type_()).collect();
    Ok(match PgBinary::new(layout.table.clone(), &types) {
        Ok(binary) => Statements::Native {
            pages: PageStatements::prepare(client, &copy.pages).await?,
            binary: Arc::new(binary),
            set_parameters: client.prepare(SET_PARAMETERS).await?,
            probe,
        },
        Err(i) => Statements::Unreadable(
            columns.get(i).map_or_else(String::new, |c| format!("column `{}` arrives as {}", c.name(), c.type_())),
        ),
    })
}

/// A page of at most `limit` rows read by a binary `COPY` out, each row a range of its buffer
/// kept in binary.
fn native_rows(binary: Arc<PgBinary>, bytes: Vec<u8>, spec: &ExtractSpec, limit: usize) -> Result<Vec<Row>> {
    let page = NativeRows::new(Arc::clone(&binary) as Arc<dyn NativeEncoding>, bytes);
    let mut rows = Vec::with_capacity(limit.min(binary.most_rows(page.bytes().len())));
    let mut outside = false;
    let walked = binary.rows(page.bytes(), |range| match NativeRow::new(&page, range) {
        Some(row) => rows.push(Row::native(Arc::clone(&spec.shape), row)),
        None => outside = true,
    });
    walked.map_err(|bad| match bad {
        BadPage::Field { row, column, error } => {
            let (name, native_type) =
                spec.columns.get(column).map_or(("?", "?"), |c| (c.name.as_str(), c.native_type.as_str()));
            let key = page.bytes().get(row..).map_or_else(|| "?".to_owned(), |row| row_key(&binary, row, &spec.shape));
            Error::fatal(
                Stage::Extract,
                format!(
                    "reading column `{name}` ({native_type}) of {}, row {key}: the value cannot be represented: \
                     {error}",
                    spec.table
                ),
            )
        }
        BadPage::Malformed(what) => {
            Error::fatal(Stage::Extract, format!("reading {}: malformed binary COPY data: {what}", spec.table))
        }
    })?;
    if outside {
        return Err(Error::fatal(Stage::Extract, format!("reading {}: a row outside its page", spec.table)));
    }
    Ok(rows)
}

/// The key of the row of binary COPY data that `row` starts with, as [`Record::key`](dmf_core::Record::key) prints
/// a row's (`id=42`, `(order_id=7, line=2)`); `?` for a value that does not decode.
fn row_key(binary: &PgBinary, row: &[u8], shape: &RowShape) -> String {
    let parts: Vec<String> = shape
        .key
        .iter()
        .map(|&i| {
            let value = binary.field(row, i).map_or_else(|| "?".to_owned(), |value| value.to_string());
            format!("{}={value}", shape.columns.get(i).map_or("?", String::as_str))
        })
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", parts.join(", ")),
    }
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
        if from.is_some() || self.spec.range.is_some() || self.spec.query.is_some() {
            return Ok(None);
        }
        let name = qualified(&self.spec.table);
        let client = connected(&mut self.session, &self.shared.connector, &mut self.statements).await?;
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
    /// A page read abandoned mid-flight (the engine's read timeout) leaves its connection to
    /// be replaced by the next read (`Session::begin_call`).
    async fn page(&mut self, after: Option<&Position>, limit: usize) -> Result<Option<SourceBatch<Row>>> {
        self.session.begin_call();
        let page = self.read_page(after, limit).await;
        self.session.end_call();
        page
    }
}
