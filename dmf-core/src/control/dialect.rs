//! What differs between databases in the control plane's SQL: names, placeholders, row
//! limits, returning a generated id, upserting a row, and how a read-only transaction starts.
//! Everything else is written once (the control tables here, the rule checks in
//! [`quality`](crate::quality)).

use crate::catalog::TableName;

/// The SQL dialect of a database's control tables.
///
/// Stored as `&dyn ControlDialect`: every method is object safe.
pub trait ControlDialect: Send + Sync {
    /// The quoted, qualified name of control table `name` (`runs` → `dmf.runs`, `dmf_runs`).
    fn table(&self, name: &str) -> String;

    /// A column name quoted for this dialect.
    fn column(&self, name: &str) -> String;

    /// The placeholder of the `n`-th parameter, from 1 (`$1`, `?1`, `@P1`).
    fn param(&self, n: usize) -> String;

    /// The most parameters one statement may bind.
    fn max_params(&self) -> usize;

    /// `SELECT {columns} FROM {from} ORDER BY {order}` returning at most the number in
    /// parameter `limit` of rows after skipping the number in parameter `offset` (either may
    /// be `None`: no limit, or no offset). The default is [`limit_offset_page`]'s
    /// `… LIMIT $n OFFSET $m` (PostgreSQL, and SQLite when there is a limit).
    fn select_page(
        &self,
        columns: &str,
        from: &str,
        order: &str,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> String {
        limit_offset_page(self, columns, from, order, limit, offset)
    }

    /// An `INSERT INTO {table} ({columns}) VALUES ({values})` that returns the row's
    /// generated `id` as its one result row (`columns` already quoted). The default ends it
    /// with `RETURNING id` (PostgreSQL, SQLite).
    fn insert_returning_id(&self, table: &str, columns: &str, values: &str) -> String {
        format!("INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {}", self.column("id"))
    }

    /// A statement that inserts the row of `columns` (unquoted names, bound to parameters
    /// 1..=n in that order) into `table`, or, when a row with the same `key` columns (the
    /// first of `columns`) exists, replaces its other columns. The default is
    /// `INSERT … ON CONFLICT (key) DO UPDATE SET c = excluded.c` (PostgreSQL, SQLite).
    fn upsert(&self, table: &str, key: &[&str], columns: &[&str]) -> String {
        let names: Vec<String> = columns.iter().map(|c| self.column(c)).collect();
        let keys: Vec<String> = key.iter().map(|c| self.column(c)).collect();
        let values: Vec<String> = (1..=columns.len()).map(|n| self.param(n)).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !key.contains(c))
            .map(|c| format!("{0} = excluded.{0}", self.column(c)))
            .collect();
        format!(
            "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
            names.join(", "),
            values.join(", "),
            keys.join(", "),
            updates.join(", ")
        )
    }

    /// A statement that inserts the row of `columns` (unquoted names, bound to parameters
    /// 1..=n in that order) into `table` unless a row with the same `key` (the first of
    /// `columns`) exists, atomically: of two at once, one inserts and the other changes
    /// nothing (and does not fail). The default is `INSERT … ON CONFLICT (key) DO NOTHING`
    /// (PostgreSQL, SQLite).
    fn insert_if_absent(&self, table: &str, key: &str, columns: &[&str]) -> String {
        let names: Vec<String> = columns.iter().map(|c| self.column(c)).collect();
        let params: Vec<String> = (1..=columns.len()).map(|n| self.param(n)).collect();
        format!(
            "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
            names.join(", "),
            params.join(", "),
            self.column(key)
        )
    }

    /// The statement that starts a transaction (`BEGIN`, `BEGIN IMMEDIATE`, `BEGIN TRANSACTION`).
    fn begin(&self) -> &'static str;

    /// The statement that commits it.
    fn commit(&self) -> &'static str;

    /// The statement that rolls it back.
    fn rollback(&self) -> &'static str;

    /// A user table's name, quoted and qualified as this database names it
    /// (`"public"."orders"`, `[dbo].[Orders]`). The default quotes each part with
    /// [`column`](Self::column); a database with one schema (SQLite) leaves the schema out.
    fn user_table(&self, table: &TableName) -> String {
        match &table.schema {
            Some(schema) => format!("{}.{}", self.column(schema), self.column(&table.name)),
            None => self.column(&table.name),
        }
    }

    /// The aggregate counting rows, as a 64-bit number: `count(*)` by default (`COUNT_BIG(*)`
    /// where `count(*)` is 32 bits).
    fn count_rows(&self) -> &'static str {
        "count(*)"
    }

    /// The statements that start a transaction in which any write fails, for queries that run
    /// SQL of the user's (rule predicates) and must change nothing. The default is the
    /// standard `START TRANSACTION READ ONLY` (PostgreSQL: a write, `setval` or `nextval`
    /// included, fails with SQLSTATE 25006). A database without read-only transactions starts
    /// the closest it has and says in its override why no write is possible there.
    fn begin_read_only(&self) -> &'static str {
        "START TRANSACTION READ ONLY"
    }

    /// The statements that end a [read-only transaction](Self::begin_read_only) (rolled back:
    /// it wrote nothing) and put the session back as it was.
    fn end_read_only(&self) -> &'static str {
        self.rollback()
    }
}

/// [`ControlDialect::select_page`] in the `LIMIT`/`OFFSET` form: `SELECT {columns} FROM {from}
/// ORDER BY {order} LIMIT <param limit> OFFSET <param offset>`, each clause only when its
/// parameter is given.
///
/// ```
/// use dmf_core::control::{ControlDialect, limit_offset_page};
/// # struct Dollar;
/// # impl ControlDialect for Dollar {
/// #     fn table(&self, name: &str) -> String { name.to_owned() }
/// #     fn column(&self, name: &str) -> String { name.to_owned() }
/// #     fn param(&self, n: usize) -> String { format!("${n}") }
/// #     fn max_params(&self) -> usize { 100 }
/// #     fn begin(&self) -> &'static str { "BEGIN" }
/// #     fn commit(&self) -> &'static str { "COMMIT" }
/// #     fn rollback(&self) -> &'static str { "ROLLBACK" }
/// # }
/// assert_eq!(limit_offset_page(&Dollar, "a", "t", "a", Some(1), Some(2)), "SELECT a FROM t ORDER BY a LIMIT $1 OFFSET $2");
/// assert_eq!(limit_offset_page(&Dollar, "a", "t", "a", None, Some(1)), "SELECT a FROM t ORDER BY a OFFSET $1");
/// ```
pub fn limit_offset_page<D: ControlDialect + ?Sized>(
    dialect: &D,
    columns: &str,
    from: &str,
    order: &str,
    limit: Option<usize>,
    offset: Option<usize>,
) -> String {
    let mut sql = format!("SELECT {columns} FROM {from} ORDER BY {order}");
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {}", dialect.param(limit)));
    }
    if let Some(offset) = offset {
        sql.push_str(&format!(" OFFSET {}", dialect.param(offset)));
    }
    sql
}
