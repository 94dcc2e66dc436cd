//! Rule checks run on any database of the control plane ([`SqlConnector`]): the count of the
//! rows that break a [`RuleCheck`] and a page of their keys, each one set-based query, inside a
//! read-only transaction ([`ControlDialect::begin_read_only`]). Written once for every
//! adapter; a dialect supplies only quoting, the row count's aggregate, the page limit and the
//! read-only transaction.
//!
//! In the statements the table's rows are `c` (a foreign key's referenced rows `p`), except in
//! a predicate, which sees the table unaliased. Identifiers pass through the dialect's quoting
//! and the sample size is bound; a predicate's SQL is the one text spliced in as given: it is
//! the user's own (see [`RuleCheck::Predicate`]), checked to be one expression
//! ([`check_predicate`]) and run where it cannot write.

use std::sync::Arc;

use super::rules::{RuleCheck, Violations, check_predicate};
use crate::control::{ControlDialect, SqlConnector, SqlSession};
use crate::error::{Error, Result, Stage};
use crate::record::Record;
use crate::value::{Row, Value};

/// `FROM … WHERE …` (without the `FROM`) selecting the rows that break `check`, and how the
/// table's columns are qualified in it (`c.` or nothing).
///
/// "The predicate is not TRUE" (FALSE or NULL) is `CASE WHEN (…) THEN 1 ELSE 0 END = 0` in
/// every dialect: T-SQL has no boolean values, and `NOT (…)` would miss the rows where the
/// predicate is NULL.
fn violating(dialect: &dyn ControlDialect, check: &RuleCheck) -> (String, &'static str) {
    let q = |name: &str| dialect.column(name);
    match check {
        RuleCheck::ForeignKey { table, foreign_key: fk, .. } => {
            let not_null: Vec<String> = fk.columns.iter().map(|c| format!("c.{} IS NOT NULL", q(c))).collect();
            let matches: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.referenced_columns)
                .map(|(c, r)| format!("p.{} = c.{}", q(r), q(c)))
                .collect();
            let from = format!(
                "{} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})",
                dialect.user_table(table),
                not_null.join(" AND "),
                dialect.user_table(&fk.referenced_table),
                matches.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::NotNull { table, column, .. } => {
            (format!("{} AS c WHERE c.{} IS NULL", dialect.user_table(table), q(column)), "c.")
        }
        RuleCheck::Unique { table, columns, .. } => {
            let grouped: Vec<String> = columns.iter().map(|c| format!("g.{}", q(c))).collect();
            let not_null: Vec<String> = grouped.iter().map(|c| format!("{c} IS NOT NULL")).collect();
            let on: Vec<String> = columns.iter().map(|c| format!("d.{0} = c.{0}", q(c))).collect();
            let from = format!(
                "{0} AS c JOIN (SELECT {1} FROM {0} AS g WHERE {2} GROUP BY {1} HAVING {3} > 1) AS d ON {4}",
                dialect.user_table(table),
                grouped.join(", "),
                not_null.join(" AND "),
                dialect.count_rows(),
                on.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::Predicate { table, sql, .. } => {
            (format!("{} WHERE CASE WHEN ({sql}) THEN 1 ELSE 0 END = 0", dialect.user_table(table)), "")
        }
    }
}

/// `SELECT count(*) FROM … WHERE …`: how many rows break `check`.
pub fn count_statement(dialect: &dyn ControlDialect, check: &RuleCheck) -> String {
    format!("SELECT {} FROM {}", dialect.count_rows(), violating(dialect, check).0)
}

/// `SELECT key FROM … WHERE … ORDER BY key`, limited to the number bound to parameter 1 (the
/// sample size): the keys of the first rows that break `check`.
pub fn sample_statement(dialect: &dyn ControlDialect, check: &RuleCheck) -> String {
    let (from, prefix) = violating(dialect, check);
    let key = check.key().iter().map(|k| format!("{prefix}{}", dialect.column(k))).collect::<Vec<_>>().join(", ");
    dialect.select_page(&key, &from, &key, Some(1), None)
}

/// The rows of `connector`'s database that break `check`: how many, and the keys of up to
/// `sample` of them in key order, formatted through [`RuleCheck::key_shape`]. Both queries
/// run in one read-only transaction on a session of their own, so that a predicate that
/// tries to write (`setval`, a function with side effects) fails instead. An error names the
/// check and the database.
///
/// This is what adapters answer [`Database::find_violations`](crate::sync::Database::find_violations)
/// with.
pub async fn find_violations(connector: &dyn SqlConnector, check: &RuleCheck, sample: usize) -> Result<Violations> {
    let doing = || format!("checking `{check}` on {} (in a read-only transaction)", connector.name());
    let wrap = |error: Error| Error::with_source(Stage::Validate, error.kind(), doing(), error);
    if let RuleCheck::Predicate { sql, .. } = check {
        check_predicate(sql).map_err(|why| Error::Config(format!("rule `{check}`: {why}")))?;
    }
    let dialect = connector.dialect();
    let mut session = connector.session().await.map_err(wrap)?;
    session.batch(dialect.begin_read_only()).await.map_err(wrap)?;
    let found = read_violations(session.as_mut(), dialect, check, sample).await;
    // Rolled back whatever happened: it wrote nothing, and a failed query's error is the one
    // worth reporting.
    let ended = session.batch(dialect.end_read_only()).await;
    let found = found.map_err(wrap)?;
    ended.map_err(wrap)?;
    Ok(found)
}

async fn read_violations(
    session: &mut dyn SqlSession,
    dialect: &dyn ControlDialect,
    check: &RuleCheck,
    sample: usize,
) -> Result<Violations> {
    let rows = session.query(&count_statement(dialect, check), &[]).await?;
    let count = match rows.first().and_then(|row| row.first()) {
        Some(Value::Int(count)) => u64::try_from(*count).unwrap_or(0),
        other => {
            return Err(Error::fatal(Stage::Validate, format!("the count of violating rows came back as {other:?}")));
        }
    };
    if count == 0 || sample == 0 {
        return Ok(Violations { count, sample: Vec::new() });
    }
    let limit = Value::Int(i64::try_from(sample).unwrap_or(i64::MAX));
    let rows = session.query(&sample_statement(dialect, check), &[limit]).await?;
    let shape = check.key_shape();
    let mut keys = Vec::with_capacity(rows.len().min(sample));
    for values in rows.into_iter().take(sample) {
        if values.len() != shape.columns.len() {
            return Err(Error::fatal(
                Stage::Validate,
                format!("the database returned {} key columns, {} expected", values.len(), shape.columns.len()),
            ));
        }
        keys.push(Row::new(Arc::clone(&shape), values).key());
    }
    Ok(Violations { count, sample: keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ForeignKey, TableName};

    /// Standard quoting and `LIMIT`, as PostgreSQL writes them.
    struct Standard;

    impl ControlDialect for Standard {
        fn table(&self, name: &str) -> String {
            format!("dmf.{name}")
        }
        fn column(&self, name: &str) -> String {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
        fn param(&self, n: usize) -> String {
            format!("${n}")
        }
        fn max_params(&self) -> usize {
            65_535
        }
        fn select_page(
            &self,
            columns: &str,
            from: &str,
            order: &str,
            limit: Option<usize>,
            _: Option<usize>,
        ) -> String {
            let limit = limit.map(|n| format!(" LIMIT ${n}")).unwrap_or_default();
            format!("SELECT {columns} FROM {from} ORDER BY {order}{limit}")
        }
        fn insert_returning_id(&self, table: &str, columns: &str, values: &str) -> String {
            format!("INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id")
        }
        fn upsert(&self, table: &str, _: &[&str], _: &[&str]) -> String {
            format!("UPSERT {table}")
        }
        fn begin(&self) -> &'static str {
            "BEGIN"
        }
        fn commit(&self) -> &'static str {
            "COMMIT"
        }
        fn rollback(&self) -> &'static str {
            "ROLLBACK"
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn fk(table: &str, columns: &[&str], to: &str, referenced: &[&str]) -> RuleCheck {
        RuleCheck::ForeignKey {
            table: TableName::new(Some("shop"), table),
            key: names(&["id"]),
            foreign_key: ForeignKey {
                name: format!("{table}_fk"),
                columns: names(columns),
                referenced_table: TableName::new(Some("shop"), to),
                referenced_columns: names(referenced),
                enforced: false,
            },
        }
    }

    #[test]
    fn foreign_keys_are_an_anti_join_skipping_rows_with_a_null() {
        let check = fk("orders", &["customer_id"], "customers", &["id"]);
        assert_eq!(
            count_statement(&Standard, &check),
            r#"SELECT count(*) FROM "shop"."orders" AS c WHERE c."customer_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."customers" AS p WHERE p."id" = c."customer_id")"#
        );
        assert_eq!(
            sample_statement(&Standard, &check),
            r#"SELECT c."id" FROM "shop"."orders" AS c WHERE c."customer_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."customers" AS p WHERE p."id" = c."customer_id") ORDER BY c."id" LIMIT $1"#
        );
    }

    #[test]
    fn composite_and_self_referencing_foreign_keys() {
        let composite = fk("shipments", &["order_id", "Line"], "order_lines", &["order_id", "line \"no\""]);
        assert_eq!(
            count_statement(&Standard, &composite),
            r#"SELECT count(*) FROM "shop"."shipments" AS c WHERE c."order_id" IS NOT NULL AND c."Line" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."order_lines" AS p WHERE p."order_id" = c."order_id" AND p."line ""no""" = c."Line")"#
        );
        let own = fk("employees", &["manager_id"], "employees", &["id"]);
        assert_eq!(
            count_statement(&Standard, &own),
            r#"SELECT count(*) FROM "shop"."employees" AS c WHERE c."manager_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."employees" AS p WHERE p."id" = c."manager_id")"#
        );
    }

    #[test]
    fn not_null_unique_and_predicates() {
        let t = TableName::new(Some("shop"), "lines");
        let key = names(&["order_id", "code"]);
        let not_null = RuleCheck::NotNull { table: t.clone(), key: key.clone(), column: "sku".into() };
        assert_eq!(
            sample_statement(&Standard, &not_null),
            r#"SELECT c."order_id", c."code" FROM "shop"."lines" AS c WHERE c."sku" IS NULL ORDER BY c."order_id", c."code" LIMIT $1"#
        );
        let unique = RuleCheck::Unique { table: t.clone(), key: key.clone(), columns: names(&["sku", "batch"]) };
        assert_eq!(
            count_statement(&Standard, &unique),
            r#"SELECT count(*) FROM "shop"."lines" AS c JOIN (SELECT g."sku", g."batch" FROM "shop"."lines" AS g WHERE g."sku" IS NOT NULL AND g."batch" IS NOT NULL GROUP BY g."sku", g."batch" HAVING count(*) > 1) AS d ON d."sku" = c."sku" AND d."batch" = c."batch""#
        );
        let predicate = RuleCheck::Predicate { table: t, key, sql: "qty > 0 AND lines.sku <> ''".into() };
        assert_eq!(
            sample_statement(&Standard, &predicate),
            r#"SELECT "order_id", "code" FROM "shop"."lines" WHERE CASE WHEN (qty > 0 AND lines.sku <> '') THEN 1 ELSE 0 END = 0 ORDER BY "order_id", "code" LIMIT $1"#
        );
    }

    #[test]
    fn the_default_read_only_transaction_is_the_standard_one() {
        assert_eq!(Standard.begin_read_only(), "START TRANSACTION READ ONLY");
        assert_eq!(Standard.end_read_only(), "ROLLBACK");
    }
}
