//! Keyset page queries and the row estimate.

use super::quote_ident;

/// A column of a page query's select list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected<'a> {
    /// Its name.
    pub name: &'a str,
    /// Read as `col::text` (numeric, json and any type without a native decoding).
    pub as_text: bool,
}

/// A column the pages are ordered by (the watermark, then the key columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ordered<'a> {
    /// Its name.
    pub name: &'a str,
    /// The type a text parameter is cast to before comparing (see [`super::cast_type`]).
    pub cast: String,
    /// A text column: ordered and compared with `COLLATE "C"`, byte order on every database.
    pub binary_collation: bool,
    /// Ordered by its text (a type DMF has no neutral form for, read as text: its rows must
    /// come in the order their text values compare in, or merges would disagree).
    pub by_text: bool,
    /// A nullable watermark: NULLs come first (rows without a watermark are read by the
    /// first run, before any watermark).
    pub nulls_first: bool,
}

/// Which page a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The first page: no position. Parameters: `$1` the limit.
    First,
    /// The page after a position holding one value per order column. Parameters: the
    /// position's values as text, then the limit.
    After,
    /// The page after a position whose first value (the watermark) is NULL. Parameters: the
    /// other order columns' values as text, then the limit.
    AfterNullLead,
}

/// `"a", "b"::text`.
fn select_list(select: &[Selected<'_>]) -> String {
    let columns: Vec<String> = select
        .iter()
        .map(|c| if c.as_text { format!("{}::text", quote_ident(c.name)) } else { quote_ident(c.name) })
        .collect();
    columns.join(", ")
}

fn order_expr(column: &Ordered<'_>) -> String {
    let name = if column.by_text { format!("{}::text", quote_ident(column.name)) } else { quote_ident(column.name) };
    if column.binary_collation { format!("{name} COLLATE \"C\"") } else { name }
}

/// How a page query takes its (text) parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parameters {
    /// Bound: `$1`, `$2`…
    Bound,
    /// Read from the settings `dmf.p1`, `dmf.p2`… ([`parameter_setting`]), set just before in
    /// the same transaction by [`SET_PARAMETERS`]: a `COPY` takes no bound parameters.
    Settings,
}

impl Parameters {
    /// Parameter `n`, as text.
    fn text(self, n: usize) -> String {
        match self {
            Parameters::Bound => format!("${n}::text"),
            Parameters::Settings => format!("current_setting('{}')", parameter_setting(n)),
        }
    }

    /// Parameter `n`, a `bigint`.
    fn bigint(self, n: usize) -> String {
        match self {
            Parameters::Bound => format!("${n}"),
            Parameters::Settings => format!("current_setting('{}')::bigint", parameter_setting(n)),
        }
    }
}

/// The setting holding parameter `n` of a page read by `COPY` ([`Parameters::Settings`]).
pub(crate) fn parameter_setting(n: usize) -> String {
    format!("dmf.p{n}")
}

/// Sets the settings named by `$1` to the values of `$2` (text arrays of one length) until the
/// transaction ends: the parameters of the page read by `COPY` next in it.
pub(crate) const SET_PARAMETERS: &str =
    "SELECT set_config(name, value, true) FROM unnest($1::text[], $2::text[]) AS p(name, value)";

fn param_expr(column: &Ordered<'_>, n: usize, parameters: Parameters) -> String {
    let value = format!("({})::{}", parameters.text(n), column.cast);
    if column.binary_collation { format!("({value}) COLLATE \"C\"") } else { value }
}

/// `(a, b) > ($1, $2)` over `columns`, parameters numbered from `first`.
fn after(columns: &[Ordered<'_>], first: usize, parameters: Parameters) -> String {
    compare(columns, ">", first, parameters)
}

/// `(a, b) OP ($n, $n+1)` over `columns`, parameters numbered from `first`.
fn compare(columns: &[Ordered<'_>], op: &str, first: usize, parameters: Parameters) -> String {
    let left: Vec<String> = columns.iter().map(order_expr).collect();
    let right: Vec<String> = columns.iter().enumerate().map(|(i, c)| param_expr(c, first + i, parameters)).collect();
    format!("({}) {op} ({})", left.join(", "), right.join(", "))
}

/// One page of `relation` in the order of `order`:
/// `SELECT cols FROM t [WHERE (k1, k2) > ($1, $2)] [AND (k1, k2) <= ($3, $4)] ORDER BY k1, k2
/// LIMIT $n`. With `up_to`, the page stops at a key range's upper bound, whose values follow
/// the position's (the first page: `$1`, `$2`…). `relation` names the table as
/// [`super::relation::relation`] does (`ONLY "s"."t"`: an inheritance parent's rows without its
/// children's).
pub(crate) fn page_query(
    relation: &str,
    select: &[Selected<'_>],
    order: &[Ordered<'_>],
    page: Page,
    up_to: bool,
) -> String {
    page_select(relation, select, order, page, up_to, Parameters::Bound)
}

/// The [`page_query`] as one binary `COPY` out, its parameters read from settings
/// ([`Parameters::Settings`]): `COPY (SELECT … LIMIT current_setting('dmf.p3')::bigint) TO
/// STDOUT (FORMAT binary)`. The rows come as rows of binary COPY data, with no per-row message
/// to parse.
pub(crate) fn page_copy(
    relation: &str,
    select: &[Selected<'_>],
    order: &[Ordered<'_>],
    page: Page,
    up_to: bool,
) -> String {
    let select = page_select(relation, select, order, page, up_to, Parameters::Settings);
    format!("COPY ({select}) TO STDOUT (FORMAT binary)")
}

fn page_select(
    relation: &str,
    select: &[Selected<'_>],
    order: &[Ordered<'_>],
    page: Page,
    up_to: bool,
    parameters: Parameters,
) -> String {
    let mut sql = format!("SELECT {} FROM {relation}", select_list(select));
    let mut conditions = Vec::new();
    let mut next = match (page, order.split_first()) {
        (Page::First, _) | (_, None) => 1,
        (Page::After, _) => {
            conditions.push(after(order, 1, parameters));
            order.len() + 1
        }
        (Page::AfterNullLead, Some((lead, rest))) => {
            let lead = quote_ident(lead.name);
            if rest.is_empty() {
                conditions.push(format!("{lead} IS NOT NULL"));
            } else {
                let resume = format!("({lead} IS NULL AND {}) OR {lead} IS NOT NULL", after(rest, 1, parameters));
                conditions.push(if up_to { format!("({resume})") } else { resume });
            }
            order.len()
        }
    };
    if up_to && !order.is_empty() {
        conditions.push(compare(order, "<=", next, parameters));
        next += order.len();
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let order_by: Vec<String> = order
        .iter()
        .map(|c| if c.nulls_first { format!("{} NULLS FIRST", order_expr(c)) } else { order_expr(c) })
        .collect();
    if !order_by.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&order_by.join(", "));
    }
    sql.push_str(&format!(" LIMIT {}", parameters.bigint(next)));
    sql
}

/// `SELECT cols FROM t LIMIT 0`: the columns of the pages, no rows.
pub(crate) fn columns_probe(relation: &str, select: &[Selected<'_>]) -> String {
    format!("SELECT {} FROM {relation} LIMIT 0", select_list(select))
}

/// `SELECT min(k)::int8, max(k)::int8 FROM t`: the bounds of a single integer key, two index
/// lookups.
pub(crate) fn key_min_max(relation: &str, key: &str) -> String {
    let key = quote_ident(key);
    format!("SELECT min({key})::int8, max({key})::int8 FROM {relation}")
}

/// The last key of each of the first `$1 - 1` of `$1` equal parts of the keys in key order
/// (`ntile`), optionally of a `TABLESAMPLE SYSTEM ($2)` percent sample of the table's pages:
/// the boundaries of key ranges of about as many rows each. Keys are selected as the
/// extractor selects them and ordered as it orders them (`COLLATE "C"`).
pub(crate) fn key_boundaries(relation: &str, key: &[Selected<'_>], order: &[Ordered<'_>], sampled: bool) -> String {
    let tile = quote_ident("dmf tile");
    let inner: Vec<String> = key.iter().map(|c| quote_ident(c.name)).collect();
    let outer: Vec<String> = key
        .iter()
        .map(|c| if c.as_text { format!("{}::text", quote_ident(c.name)) } else { quote_ident(c.name) })
        .collect();
    let ascending: Vec<String> = order.iter().map(order_expr).collect();
    let descending: Vec<String> = order.iter().map(|c| format!("{} DESC", order_expr(c))).collect();
    let sample = if sampled { " TABLESAMPLE SYSTEM ($2)" } else { "" };
    format!(
        "SELECT DISTINCT ON ({tile}) {} FROM (SELECT {}, ntile($1) OVER (ORDER BY {}) AS {tile} FROM {relation}{sample}) AS s \
         WHERE {tile} < $1 ORDER BY {tile}, {}",
        outer.join(", "),
        inner.join(", "),
        ascending.join(", "),
        descending.join(", ")
    )
}

/// The planner's row count of a table (all its partitions), from `pg_class.reltuples`: cheap,
/// approximate, and unknown (a negative count) until the table was first analysed.
/// Parameter: the quoted qualified name.
pub(crate) const ESTIMATE: &str = "SELECT sum(c.reltuples)::float8, coalesce(bool_or(c.reltuples < 0), true) \
     FROM pg_class c WHERE c.relkind = 'r' AND (c.oid = $1::text::regclass \
     OR c.oid IN (SELECT p.relid FROM pg_partition_tree($1::text::regclass) p WHERE p.isleaf))";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::qualified;
    use dmf_core::catalog::TableName;

    fn table() -> String {
        qualified(&TableName::new(Some("public"), "Order"))
    }

    fn select() -> Vec<Selected<'static>> {
        vec![
            Selected { name: "id", as_text: false },
            Selected { name: "code", as_text: false },
            Selected { name: "amount", as_text: true },
        ]
    }

    fn key() -> Vec<Ordered<'static>> {
        vec![
            Ordered { name: "id", cast: "bigint".into(), binary_collation: false, by_text: false, nulls_first: false },
            Ordered {
                name: "code",
                cast: "character varying".into(),
                binary_collation: true,
                by_text: false,
                nulls_first: false,
            },
        ]
    }

    #[test]
    fn first_page_has_no_where() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::First, false),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" ORDER BY "id", "code" COLLATE "C" LIMIT $1"#
        );
    }

    #[test]
    fn next_pages_compare_the_whole_key_with_text_parameters() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::After, false),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" WHERE ("id", "code" COLLATE "C") > (($1::text)::bigint, (($2::text)::character varying) COLLATE "C") ORDER BY "id", "code" COLLATE "C" LIMIT $3"#
        );
    }

    #[test]
    fn keys_of_other_types_are_ordered_by_their_text() {
        let order =
            [Ordered { name: "ip", cast: "text".into(), binary_collation: true, by_text: true, nulls_first: false }];
        assert_eq!(
            page_query(&table(), &[Selected { name: "ip", as_text: true }], &order, Page::After, false),
            r#"SELECT "ip"::text FROM "public"."Order" WHERE ("ip"::text COLLATE "C") > ((($1::text)::text) COLLATE "C") ORDER BY "ip"::text COLLATE "C" LIMIT $2"#
        );
    }

    #[test]
    fn key_range_pages_stop_at_the_upper_bound() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::First, true),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" WHERE ("id", "code" COLLATE "C") <= (($1::text)::bigint, (($2::text)::character varying) COLLATE "C") ORDER BY "id", "code" COLLATE "C" LIMIT $3"#
        );
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::After, true),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" WHERE ("id", "code" COLLATE "C") > (($1::text)::bigint, (($2::text)::character varying) COLLATE "C") AND ("id", "code" COLLATE "C") <= (($3::text)::bigint, (($4::text)::character varying) COLLATE "C") ORDER BY "id", "code" COLLATE "C" LIMIT $5"#
        );
    }

    #[test]
    fn pages_read_by_copy_take_their_parameters_from_settings() {
        assert_eq!(
            page_copy(&table(), &select(), &key(), Page::After, true),
            r#"COPY (SELECT "id", "code", "amount"::text FROM "public"."Order" WHERE ("id", "code" COLLATE "C") > ((current_setting('dmf.p1'))::bigint, ((current_setting('dmf.p2'))::character varying) COLLATE "C") AND ("id", "code" COLLATE "C") <= ((current_setting('dmf.p3'))::bigint, ((current_setting('dmf.p4'))::character varying) COLLATE "C") ORDER BY "id", "code" COLLATE "C" LIMIT current_setting('dmf.p5')::bigint) TO STDOUT (FORMAT binary)"#
        );
        assert_eq!(
            page_copy(&table(), &select(), &key(), Page::First, false),
            r#"COPY (SELECT "id", "code", "amount"::text FROM "public"."Order" ORDER BY "id", "code" COLLATE "C" LIMIT current_setting('dmf.p1')::bigint) TO STDOUT (FORMAT binary)"#
        );
        assert_eq!(
            columns_probe(&table(), &select()),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" LIMIT 0"#
        );
    }

    #[test]
    fn key_splits() {
        assert_eq!(
            key_min_max(&table(), "i\"d"),
            r#"SELECT min("i""d")::int8, max("i""d")::int8 FROM "public"."Order""#
        );
        let key = [Selected { name: "id", as_text: false }, Selected { name: "code", as_text: false }];
        assert_eq!(
            key_boundaries(&table(), &key, &self::key(), false),
            r#"SELECT DISTINCT ON ("dmf tile") "id", "code" FROM (SELECT "id", "code", ntile($1) OVER (ORDER BY "id", "code" COLLATE "C") AS "dmf tile" FROM "public"."Order") AS s WHERE "dmf tile" < $1 ORDER BY "dmf tile", "id" DESC, "code" COLLATE "C" DESC"#
        );
        let order =
            [Ordered { name: "ip", cast: "text".into(), binary_collation: true, by_text: true, nulls_first: false }];
        assert_eq!(
            key_boundaries(&table(), &[Selected { name: "ip", as_text: true }], &order, true),
            r#"SELECT DISTINCT ON ("dmf tile") "ip"::text FROM (SELECT "ip", ntile($1) OVER (ORDER BY "ip"::text COLLATE "C") AS "dmf tile" FROM "public"."Order" TABLESAMPLE SYSTEM ($2)) AS s WHERE "dmf tile" < $1 ORDER BY "dmf tile", "ip"::text COLLATE "C" DESC"#
        );
    }

    #[test]
    fn a_nullable_watermark_sorts_nulls_first_and_resumes_inside_them() {
        let mut order = vec![Ordered {
            name: "updated_at",
            cast: "timestamp with time zone".into(),
            binary_collation: false,
            by_text: false,
            nulls_first: true,
        }];
        order.push(key().remove(0));
        let select = [Selected { name: "id", as_text: false }, Selected { name: "updated_at", as_text: false }];
        assert_eq!(
            page_query(&table(), &select, &order, Page::After, false),
            r#"SELECT "id", "updated_at" FROM "public"."Order" WHERE ("updated_at", "id") > (($1::text)::timestamp with time zone, ($2::text)::bigint) ORDER BY "updated_at" NULLS FIRST, "id" LIMIT $3"#
        );
        assert_eq!(
            page_query(&table(), &select, &order, Page::AfterNullLead, false),
            r#"SELECT "id", "updated_at" FROM "public"."Order" WHERE ("updated_at" IS NULL AND ("id") > (($1::text)::bigint)) OR "updated_at" IS NOT NULL ORDER BY "updated_at" NULLS FIRST, "id" LIMIT $2"#
        );
    }
}
