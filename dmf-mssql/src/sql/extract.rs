//! Keyset page queries. SQL Server has no row-value comparison (`(a, b) > (x, y)`), so "after
//! the last key" is spelled out: `(k1 > @P2) OR (k1 = @P2 AND k2 > @P3)`.

use dmf_core::catalog::TableName;

use super::{BINARY_COLLATION, qualified, quote_ident};

/// A column of a page query's select list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected<'a> {
    /// Its name.
    pub name: &'a str,
    /// Read through `CAST(… AS type)` (money as decimal, rowversion as bigint).
    pub read_as: Option<&'a str>,
}

/// How a column the pages are ordered by is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Compare {
    /// Natively; the parameter cast to `cast` when given (`datetime`, integer types), so the
    /// comparison has the column's semantics and can seek.
    Native {
        /// The type the parameter is cast to.
        cast: Option<String>,
    },
    /// Text in code-point order (`COLLATE Latin1_General_100_BIN2`), the order every DMF
    /// adapter reads in.
    Text,
    /// A `uniqueidentifier` by its text (`CONVERT(char(36), …)`), which orders like its bytes;
    /// SQL Server's own GUID order does not.
    GuidText,
    /// A `rowversion` watermark, compared as `binary(8)` with a `bigint` parameter.
    RowVersion,
}

/// A column the pages are ordered by (the watermark first, then the key columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ordered<'a> {
    /// Its name.
    pub name: &'a str,
    /// How it is compared and ordered.
    pub compare: Compare,
}

/// Which page a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The first page. Parameters: `@P1` the page size.
    First,
    /// The page after a position holding one value per order column. Parameters: `@P1` the
    /// page size, then the position's values.
    After,
    /// The page after a position whose first value (a nullable watermark) is NULL: SQL
    /// Server sorts NULLs first. Parameters: `@P1` the page size, then the other order
    /// columns' values.
    AfterNullLead,
}

fn order_expr(column: &Ordered<'_>) -> String {
    let name = format!("t.{}", quote_ident(column.name));
    match column.compare {
        Compare::Native { .. } | Compare::RowVersion => name,
        Compare::Text => format!("{name} COLLATE {BINARY_COLLATION}"),
        Compare::GuidText => format!("CONVERT(char(36), {name}) COLLATE {BINARY_COLLATION}"),
    }
}

fn param_expr(column: &Ordered<'_>, n: usize) -> String {
    match &column.compare {
        Compare::Native { cast: Some(cast) } => format!("CAST(@P{n} AS {cast})"),
        Compare::Native { cast: None } | Compare::Text => format!("@P{n}"),
        Compare::GuidText => format!("CONVERT(char(36), CAST(@P{n} AS uniqueidentifier))"),
        Compare::RowVersion => format!("CAST(@P{n} AS binary(8))"),
    }
}

/// `(a > @P2) OR (a = @P2 AND b > @P3)` over `columns`, parameters numbered from `first`.
fn after(columns: &[Ordered<'_>], first: usize) -> String {
    let terms: Vec<String> = (0..columns.len())
        .map(|i| {
            let mut parts: Vec<String> = columns[..i]
                .iter()
                .enumerate()
                .map(|(j, c)| format!("{} = {}", order_expr(c), param_expr(c, first + j)))
                .collect();
            parts.push(format!("{} > {}", order_expr(&columns[i]), param_expr(&columns[i], first + i)));
            format!("({})", parts.join(" AND "))
        })
        .collect();
    terms.join(" OR ")
}

/// `(a < @P5) OR (a = @P5 AND b <= @P6)` over `columns`, parameters numbered from `first`:
/// at or before a key (a key range's upper bound).
fn at_most(columns: &[Ordered<'_>], first: usize) -> String {
    let terms: Vec<String> = (0..columns.len())
        .map(|i| {
            let mut parts: Vec<String> = columns[..i]
                .iter()
                .enumerate()
                .map(|(j, c)| format!("{} = {}", order_expr(c), param_expr(c, first + j)))
                .collect();
            let op = if i + 1 == columns.len() { "<=" } else { "<" };
            parts.push(format!("{} {op} {}", order_expr(&columns[i]), param_expr(&columns[i], first + i)));
            format!("({})", parts.join(" AND "))
        })
        .collect();
    terms.join(" OR ")
}

fn select_list(select: &[Selected<'_>]) -> Vec<String> {
    select
        .iter()
        .map(|c| match c.read_as {
            Some(ty) => format!("CAST(t.{0} AS {ty}) AS {0}", quote_ident(c.name)),
            None => format!("t.{}", quote_ident(c.name)),
        })
        .collect()
}

/// One page of `table` in the order of `order`:
/// `SELECT TOP (@P1) cols FROM t [WHERE after-position] [AND at-most-bound] ORDER BY order`.
/// With `up_to`, the page stops at a key range's upper bound, whose values follow the
/// position's (the first page: `@P2`…). A rowversion watermark also bounds the page below
/// `MIN_ACTIVE_ROWVERSION()`, so rows of transactions still open (whose versions are lower than
/// rows already committed) are read by a later run instead of being skipped for ever.
pub(crate) fn page_query(
    table: &TableName,
    select: &[Selected<'_>],
    order: &[Ordered<'_>],
    page: Page,
    up_to: bool,
) -> String {
    let columns = select_list(select);
    let mut conditions = Vec::new();
    let next = match (page, order.split_first()) {
        (Page::First, _) | (_, None) => 2,
        (Page::After, _) => {
            conditions.push(format!("({})", after(order, 2)));
            2 + order.len()
        }
        (Page::AfterNullLead, Some((lead, rest))) => {
            let lead = format!("t.{}", quote_ident(lead.name));
            if rest.is_empty() {
                conditions.push(format!("{lead} IS NOT NULL"));
            } else {
                conditions.push(format!("(({lead} IS NULL AND ({})) OR {lead} IS NOT NULL)", after(rest, 2)));
            }
            2 + rest.len()
        }
    };
    if up_to && !order.is_empty() {
        conditions.push(format!("({})", at_most(order, next)));
    }
    if let Some(rowversion) = order.iter().find(|c| c.compare == Compare::RowVersion) {
        conditions.push(format!("t.{} < MIN_ACTIVE_ROWVERSION()", quote_ident(rowversion.name)));
    }
    let mut sql = format!("SELECT TOP (@P1) {} FROM {} AS t", columns.join(", "), qualified(table));
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    if !order.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.iter().map(order_expr).collect::<Vec<_>>().join(", "));
    }
    sql
}

/// `SELECT CAST(MIN(t.[k]) AS bigint), CAST(MAX(t.[k]) AS bigint) FROM t`: the bounds of a
/// single integer key, two index lookups.
pub(crate) fn key_min_max(table: &TableName, key: &str) -> String {
    let key = quote_ident(key);
    format!("SELECT CAST(MIN(t.{key}) AS bigint), CAST(MAX(t.{key}) AS bigint) FROM {} AS t", qualified(table))
}

/// The last key of each of the first `@P1 - 1` of `@P1` equal parts (`NTILE`) of the keys in
/// the extractor's order (code-point order for text): the boundaries of key ranges of about as
/// many rows each. One ordered scan of the key; the keys are selected as the extractor selects
/// them, and the outer queries order by the rank the inner one computed, so no collation is
/// needed past it.
pub(crate) fn key_boundaries(table: &TableName, key: &[Selected<'_>], order: &[Ordered<'_>]) -> String {
    let (tile, rank, last) = (quote_ident("dmf tile"), quote_ident("dmf rank"), quote_ident("dmf last"));
    let names = |alias: &str| key.iter().map(|c| format!("{alias}.{}", quote_ident(c.name))).collect::<Vec<_>>();
    let order_by = order.iter().map(order_expr).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {} FROM (SELECT {}, s.{tile}, ROW_NUMBER() OVER (PARTITION BY s.{tile} ORDER BY s.{rank} DESC) AS {last} \
         FROM (SELECT {}, NTILE(@P1) OVER (ORDER BY {order_by}) AS {tile}, ROW_NUMBER() OVER (ORDER BY {order_by}) AS {rank} \
         FROM {} AS t) AS s) AS r WHERE r.{last} = 1 AND r.{tile} < @P1 ORDER BY r.{tile}",
        names("r").join(", "),
        names("s").join(", "),
        select_list(key).join(", "),
        qualified(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName::new(Some("sales"), "Order Lines")
    }

    fn select() -> Vec<Selected<'static>> {
        vec![
            Selected { name: "order_id", read_as: None },
            Selected { name: "line", read_as: None },
            Selected { name: "price", read_as: Some("decimal(19,4)") },
        ]
    }

    fn key() -> Vec<Ordered<'static>> {
        vec![
            Ordered { name: "order_id", compare: Compare::Native { cast: Some("int".into()) } },
            Ordered { name: "line", compare: Compare::Native { cast: Some("smallint".into()) } },
        ]
    }

    #[test]
    fn first_page_has_no_where() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::First, false),
            "SELECT TOP (@P1) t.[order_id], t.[line], CAST(t.[price] AS decimal(19,4)) AS [price] FROM [sales].[Order Lines] AS t ORDER BY t.[order_id], t.[line]"
        );
    }

    #[test]
    fn next_pages_spell_out_the_keyset_comparison() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::After, false),
            "SELECT TOP (@P1) t.[order_id], t.[line], CAST(t.[price] AS decimal(19,4)) AS [price] FROM [sales].[Order Lines] AS t \
             WHERE ((t.[order_id] > CAST(@P2 AS int)) OR (t.[order_id] = CAST(@P2 AS int) AND t.[line] > CAST(@P3 AS smallint))) \
             ORDER BY t.[order_id], t.[line]"
        );
    }

    #[test]
    fn key_range_pages_stop_at_the_upper_bound() {
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::First, true),
            "SELECT TOP (@P1) t.[order_id], t.[line], CAST(t.[price] AS decimal(19,4)) AS [price] FROM [sales].[Order Lines] AS t \
             WHERE ((t.[order_id] < CAST(@P2 AS int)) OR (t.[order_id] = CAST(@P2 AS int) AND t.[line] <= CAST(@P3 AS smallint))) \
             ORDER BY t.[order_id], t.[line]"
        );
        assert_eq!(
            page_query(&table(), &select(), &key(), Page::After, true),
            "SELECT TOP (@P1) t.[order_id], t.[line], CAST(t.[price] AS decimal(19,4)) AS [price] FROM [sales].[Order Lines] AS t \
             WHERE ((t.[order_id] > CAST(@P2 AS int)) OR (t.[order_id] = CAST(@P2 AS int) AND t.[line] > CAST(@P3 AS smallint))) \
             AND ((t.[order_id] < CAST(@P4 AS int)) OR (t.[order_id] = CAST(@P4 AS int) AND t.[line] <= CAST(@P5 AS smallint))) \
             ORDER BY t.[order_id], t.[line]"
        );
        let text = [Ordered { name: "code", compare: Compare::Text }];
        assert_eq!(
            page_query(
                &TableName::new(None, "t"),
                &[Selected { name: "code", read_as: None }],
                &text,
                Page::After,
                true
            ),
            "SELECT TOP (@P1) t.[code] FROM [t] AS t WHERE ((t.[code] COLLATE Latin1_General_100_BIN2 > @P2)) \
             AND ((t.[code] COLLATE Latin1_General_100_BIN2 <= @P3)) ORDER BY t.[code] COLLATE Latin1_General_100_BIN2"
        );
    }

    #[test]
    fn key_splits() {
        assert_eq!(
            key_min_max(&table(), "order]id"),
            "SELECT CAST(MIN(t.[order]]id]) AS bigint), CAST(MAX(t.[order]]id]) AS bigint) FROM [sales].[Order Lines] AS t"
        );
        let order =
            [Ordered { name: "code", compare: Compare::Text }, Ordered { name: "g", compare: Compare::GuidText }];
        let select = [Selected { name: "code", read_as: None }, Selected { name: "g", read_as: None }];
        assert_eq!(
            key_boundaries(&table(), &select, &order),
            "SELECT r.[code], r.[g] FROM (SELECT s.[code], s.[g], s.[dmf tile], \
             ROW_NUMBER() OVER (PARTITION BY s.[dmf tile] ORDER BY s.[dmf rank] DESC) AS [dmf last] \
             FROM (SELECT t.[code], t.[g], \
             NTILE(@P1) OVER (ORDER BY t.[code] COLLATE Latin1_General_100_BIN2, CONVERT(char(36), t.[g]) COLLATE Latin1_General_100_BIN2) AS [dmf tile], \
             ROW_NUMBER() OVER (ORDER BY t.[code] COLLATE Latin1_General_100_BIN2, CONVERT(char(36), t.[g]) COLLATE Latin1_General_100_BIN2) AS [dmf rank] \
             FROM [sales].[Order Lines] AS t) AS s) AS r WHERE r.[dmf last] = 1 AND r.[dmf tile] < @P1 ORDER BY r.[dmf tile]"
        );
    }

    #[test]
    fn three_key_columns() {
        let order = [
            Ordered { name: "a", compare: Compare::Native { cast: None } },
            Ordered { name: "b", compare: Compare::Native { cast: None } },
            Ordered { name: "c", compare: Compare::Native { cast: None } },
        ];
        let select = [Selected { name: "a", read_as: None }];
        assert_eq!(
            page_query(&TableName::new(None, "t"), &select, &order, Page::After, false),
            "SELECT TOP (@P1) t.[a] FROM [t] AS t WHERE ((t.[a] > @P2) OR (t.[a] = @P2 AND t.[b] > @P3) OR (t.[a] = @P2 AND t.[b] = @P3 AND t.[c] > @P4)) ORDER BY t.[a], t.[b], t.[c]"
        );
    }

    #[test]
    fn text_and_guid_keys_are_ordered_by_code_point() {
        let order =
            [Ordered { name: "code]x", compare: Compare::Text }, Ordered { name: "g", compare: Compare::GuidText }];
        let select = [Selected { name: "code]x", read_as: None }, Selected { name: "g", read_as: None }];
        assert_eq!(
            page_query(&TableName::new(Some("dbo"), "t"), &select, &order, Page::After, false),
            "SELECT TOP (@P1) t.[code]]x], t.[g] FROM [dbo].[t] AS t WHERE ((t.[code]]x] COLLATE Latin1_General_100_BIN2 > @P2) \
             OR (t.[code]]x] COLLATE Latin1_General_100_BIN2 = @P2 AND CONVERT(char(36), t.[g]) COLLATE Latin1_General_100_BIN2 > CONVERT(char(36), CAST(@P3 AS uniqueidentifier)))) \
             ORDER BY t.[code]]x] COLLATE Latin1_General_100_BIN2, CONVERT(char(36), t.[g]) COLLATE Latin1_General_100_BIN2"
        );
    }

    #[test]
    fn rowversion_watermark_pages_stop_below_the_oldest_open_transaction() {
        let order = [
            Ordered { name: "rv", compare: Compare::RowVersion },
            Ordered { name: "id", compare: Compare::Native { cast: Some("bigint".into()) } },
        ];
        let select = [Selected { name: "id", read_as: None }, Selected { name: "rv", read_as: Some("bigint") }];
        assert_eq!(
            page_query(&TableName::new(Some("dbo"), "Orders"), &select, &order, Page::First, false),
            "SELECT TOP (@P1) t.[id], CAST(t.[rv] AS bigint) AS [rv] FROM [dbo].[Orders] AS t WHERE t.[rv] < MIN_ACTIVE_ROWVERSION() ORDER BY t.[rv], t.[id]"
        );
        assert_eq!(
            page_query(&TableName::new(Some("dbo"), "Orders"), &select, &order, Page::After, false),
            "SELECT TOP (@P1) t.[id], CAST(t.[rv] AS bigint) AS [rv] FROM [dbo].[Orders] AS t \
             WHERE ((t.[rv] > CAST(@P2 AS binary(8))) OR (t.[rv] = CAST(@P2 AS binary(8)) AND t.[id] > CAST(@P3 AS bigint))) \
             AND t.[rv] < MIN_ACTIVE_ROWVERSION() ORDER BY t.[rv], t.[id]"
        );
    }

    #[test]
    fn a_nullable_date_watermark_resumes_inside_its_nulls() {
        let order = [
            Ordered { name: "modified_at", compare: Compare::Native { cast: Some("datetime".into()) } },
            Ordered { name: "id", compare: Compare::Native { cast: Some("int".into()) } },
        ];
        let select = [Selected { name: "id", read_as: None }, Selected { name: "modified_at", read_as: None }];
        let table = TableName::new(Some("dbo"), "T");
        assert_eq!(
            page_query(&table, &select, &order, Page::After, false),
            "SELECT TOP (@P1) t.[id], t.[modified_at] FROM [dbo].[T] AS t \
             WHERE ((t.[modified_at] > CAST(@P2 AS datetime)) OR (t.[modified_at] = CAST(@P2 AS datetime) AND t.[id] > CAST(@P3 AS int))) \
             ORDER BY t.[modified_at], t.[id]"
        );
        assert_eq!(
            page_query(&table, &select, &order, Page::AfterNullLead, false),
            "SELECT TOP (@P1) t.[id], t.[modified_at] FROM [dbo].[T] AS t \
             WHERE ((t.[modified_at] IS NULL AND ((t.[id] > CAST(@P2 AS int)))) OR t.[modified_at] IS NOT NULL) \
             ORDER BY t.[modified_at], t.[id]"
        );
        assert_eq!(
            page_query(&table, &select, &order[..1], Page::AfterNullLead, false),
            "SELECT TOP (@P1) t.[id], t.[modified_at] FROM [dbo].[T] AS t WHERE t.[modified_at] IS NOT NULL ORDER BY t.[modified_at]"
        );
    }
}
