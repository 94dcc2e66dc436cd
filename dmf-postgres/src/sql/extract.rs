//! Keyset page queries and the row estimate.

use dmf_core::catalog::TableName;

use super::{qualified, quote_ident};

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

fn order_expr(column: &Ordered<'_>) -> String {
    let name = if column.by_text { format!("{}::text", quote_ident(column.name)) } else { quote_ident(column.name) };
    if column.binary_collation { format!("{name} COLLATE \"C\"") } else { name }
}

fn param_expr(column: &Ordered<'_>, n: usize) -> String {
    let value = format!("(${n}::text)::{}", column.cast);
    if column.binary_collation { format!("({value}) COLLATE \"C\"") } else { value }
}

/// `(a, b) > ($1, $2)` over `columns`, parameters numbered from `first`.
fn after(columns: &[Ordered<'_>], first: usize) -> String {
    let left: Vec<String> = columns.iter().map(order_expr).collect();
    let right: Vec<String> = columns.iter().enumerate().map(|(i, c)| param_expr(c, first + i)).collect();
    format!("({}) > ({})", left.join(", "), right.join(", "))
}

/// One page of `table` in the order of `order`:
/// `SELECT cols FROM t [WHERE (k1, k2) > ($1, $2)] ORDER BY k1, k2 LIMIT $n`.
pub(crate) fn page_query(table: &TableName, select: &[Selected<'_>], order: &[Ordered<'_>], page: Page) -> String {
    let columns: Vec<String> = select
        .iter()
        .map(|c| if c.as_text { format!("{}::text", quote_ident(c.name)) } else { quote_ident(c.name) })
        .collect();
    let mut sql = format!("SELECT {} FROM {}", columns.join(", "), qualified(table));
    let limit = match (page, order.split_first()) {
        (Page::First, _) | (_, None) => 1,
        (Page::After, _) => {
            sql.push_str(" WHERE ");
            sql.push_str(&after(order, 1));
            order.len() + 1
        }
        (Page::AfterNullLead, Some((lead, rest))) => {
            let lead = quote_ident(lead.name);
            if rest.is_empty() {
                sql.push_str(&format!(" WHERE {lead} IS NOT NULL"));
            } else {
                sql.push_str(&format!(" WHERE ({lead} IS NULL AND {}) OR {lead} IS NOT NULL", after(rest, 1)));
            }
            order.len()
        }
    };
    let order_by: Vec<String> = order
        .iter()
        .map(|c| if c.nulls_first { format!("{} NULLS FIRST", order_expr(c)) } else { order_expr(c) })
        .collect();
    if !order_by.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&order_by.join(", "));
    }
    sql.push_str(&format!(" LIMIT ${limit}"));
    sql
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

    fn table() -> TableName {
        TableName::new(Some("public"), "Order")
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
            page_query(&table(), &select(), &key(), Page::First),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" ORDER BY "id", "code" COLLATE "C" LIMIT $1"#
        );
    }

    #[test]
    fn next_pages_compare_the_whole_key_with_text_parameters() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::After),
            r#"SELECT "id", "code", "amount"::text FROM "public"."Order" WHERE ("id", "code" COLLATE "C") > (($1::text)::bigint, (($2::text)::character varying) COLLATE "C") ORDER BY "id", "code" COLLATE "C" LIMIT $3"#
        );
    }

    #[test]
    fn keys_of_other_types_are_ordered_by_their_text() {
        let order =
            [Ordered { name: "ip", cast: "text".into(), binary_collation: true, by_text: true, nulls_first: false }];
        assert_eq!(
            page_query(&table(), &[Selected { name: "ip", as_text: true }], &order, Page::After),
            r#"SELECT "ip"::text FROM "public"."Order" WHERE ("ip"::text COLLATE "C") > ((($1::text)::text) COLLATE "C") ORDER BY "ip"::text COLLATE "C" LIMIT $2"#
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
            page_query(&table(), &select, &order, Page::After),
            r#"SELECT "id", "updated_at" FROM "public"."Order" WHERE ("updated_at", "id") > (($1::text)::timestamp with time zone, ($2::text)::bigint) ORDER BY "updated_at" NULLS FIRST, "id" LIMIT $3"#
        );
        assert_eq!(
            page_query(&table(), &select, &order, Page::AfterNullLead),
            r#"SELECT "id", "updated_at" FROM "public"."Order" WHERE ("updated_at" IS NULL AND ("id") > (($1::text)::bigint)) OR "updated_at" IS NOT NULL ORDER BY "updated_at" NULLS FIRST, "id" LIMIT $2"#
        );
    }
}
