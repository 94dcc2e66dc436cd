//! Rule checks on a table ([`RuleCheck`]): the count of violating rows and a page of their
//! keys, each one set-based query. The table's rows are `c` (a foreign key's referenced rows
//! `p`), except in a predicate, which sees the table unaliased. Identifiers pass through the
//! quoting function and the sample size is bound; a predicate's SQL is the one text spliced in
//! as given: it is the user's own (see [`RuleCheck::Predicate`]).

use dmf_core::quality::RuleCheck;

use super::{qualified, quote_ident};

/// `FROM … WHERE …` selecting the rows that break `check`, and how the table's columns are
/// qualified in it (`c.` or nothing).
fn violating(check: &RuleCheck) -> (String, &'static str) {
    match check {
        RuleCheck::ForeignKey { table, foreign_key: fk, .. } => {
            let not_null: Vec<String> =
                fk.columns.iter().map(|c| format!("c.{} IS NOT NULL", quote_ident(c))).collect();
            let matches: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.referenced_columns)
                .map(|(c, r)| format!("p.{} = c.{}", quote_ident(r), quote_ident(c)))
                .collect();
            let from = format!(
                "FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})",
                qualified(table),
                not_null.join(" AND "),
                qualified(&fk.referenced_table),
                matches.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::NotNull { table, column, .. } => {
            (format!("FROM {} AS c WHERE c.{} IS NULL", qualified(table), quote_ident(column)), "c.")
        }
        RuleCheck::Unique { table, columns, .. } => {
            let grouped: Vec<String> = columns.iter().map(|c| format!("g.{}", quote_ident(c))).collect();
            let not_null: Vec<String> = grouped.iter().map(|c| format!("{c} IS NOT NULL")).collect();
            let on: Vec<String> = columns.iter().map(|c| format!("d.{0} = c.{0}", quote_ident(c))).collect();
            let from = format!(
                "FROM {0} AS c JOIN (SELECT {1} FROM {0} AS g WHERE {2} GROUP BY {1} HAVING count(*) > 1) AS d ON {3}",
                qualified(table),
                grouped.join(", "),
                not_null.join(" AND "),
                on.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::Predicate { table, sql, .. } => {
            (format!("FROM {} WHERE NOT COALESCE(({sql}), FALSE)", qualified(table)), "")
        }
    }
}

/// `SELECT count(*) FROM … WHERE …`: how many rows break `check`.
pub(crate) fn count_violations(check: &RuleCheck) -> String {
    format!("SELECT count(*) {}", violating(check).0)
}

/// `SELECT key FROM … WHERE … ORDER BY key LIMIT $1`: the keys of the first rows that break
/// `check`. Key column `i` is read as `col::text` when `as_text[i]` is true (types the adapter
/// reads as text: see [`read_as_text`](crate::types::read_as_text)). Parameter: the sample
/// size (`int8`).
pub(crate) fn sample_violations(check: &RuleCheck, as_text: &[bool]) -> String {
    let (from, prefix) = violating(check);
    let column = |k: &String| format!("{prefix}{}", quote_ident(k));
    let select: Vec<String> = check
        .key()
        .iter()
        .enumerate()
        .map(|(i, k)| if as_text.get(i).copied().unwrap_or(false) { format!("{}::text", column(k)) } else { column(k) })
        .collect();
    let order: Vec<String> = check.key().iter().map(column).collect();
    format!("SELECT {} {from} ORDER BY {} LIMIT $1", select.join(", "), order.join(", "))
}

#[cfg(test)]
mod tests {
    use dmf_core::catalog::{ForeignKey, TableName};

    use super::*;

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
            count_violations(&check),
            r#"SELECT count(*) FROM "shop"."orders" AS c WHERE c."customer_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."customers" AS p WHERE p."id" = c."customer_id")"#
        );
        assert_eq!(
            sample_violations(&check, &[]),
            r#"SELECT c."id" FROM "shop"."orders" AS c WHERE c."customer_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."customers" AS p WHERE p."id" = c."customer_id") ORDER BY c."id" LIMIT $1"#
        );
    }

    #[test]
    fn composite_and_self_referencing_foreign_keys() {
        let composite = fk("shipments", &["order_id", "Line"], "order_lines", &["order_id", "line \"no\""]);
        assert_eq!(
            count_violations(&composite),
            r#"SELECT count(*) FROM "shop"."shipments" AS c WHERE c."order_id" IS NOT NULL AND c."Line" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."order_lines" AS p WHERE p."order_id" = c."order_id" AND p."line ""no""" = c."Line")"#
        );
        let own = fk("employees", &["manager_id"], "employees", &["id"]);
        assert_eq!(
            count_violations(&own),
            r#"SELECT count(*) FROM "shop"."employees" AS c WHERE c."manager_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "shop"."employees" AS p WHERE p."id" = c."manager_id")"#
        );
    }

    #[test]
    fn not_null_unique_and_predicates() {
        let t = TableName::new(Some("shop"), "lines");
        let key = names(&["order_id", "code"]);
        let not_null = RuleCheck::NotNull { table: t.clone(), key: key.clone(), column: "sku".into() };
        assert_eq!(
            sample_violations(&not_null, &[false, true]),
            r#"SELECT c."order_id", c."code"::text FROM "shop"."lines" AS c WHERE c."sku" IS NULL ORDER BY c."order_id", c."code" LIMIT $1"#
        );
        let unique = RuleCheck::Unique { table: t.clone(), key: key.clone(), columns: names(&["sku", "batch"]) };
        assert_eq!(
            count_violations(&unique),
            r#"SELECT count(*) FROM "shop"."lines" AS c JOIN (SELECT g."sku", g."batch" FROM "shop"."lines" AS g WHERE g."sku" IS NOT NULL AND g."batch" IS NOT NULL GROUP BY g."sku", g."batch" HAVING count(*) > 1) AS d ON d."sku" = c."sku" AND d."batch" = c."batch""#
        );
        let predicate = RuleCheck::Predicate { table: t, key, sql: "qty > 0 AND lines.sku::text <> ''".into() };
        assert_eq!(
            sample_violations(&predicate, &[]),
            r#"SELECT "order_id", "code" FROM "shop"."lines" WHERE NOT COALESCE((qty > 0 AND lines.sku::text <> ''), FALSE) ORDER BY "order_id", "code" LIMIT $1"#
        );
    }
}
