//! Rule checks on a table ([`RuleCheck`]): the count of violating rows and a page of their
//! keys, each one set-based query. The table's rows are `c` (a foreign key's referenced rows
//! `p`), except in a predicate, which sees the table unaliased. Identifiers pass through the
//! quoting function and the sample size is bound; a predicate's SQL is the one text spliced in
//! as given: it is the user's own (see [`RuleCheck::Predicate`]).

use dmf_core::quality::RuleCheck;

use super::{quote, table};

/// `FROM … WHERE …` selecting the rows that break `check`, and how the table's columns are
/// qualified in it (`c.` or nothing).
fn violating(check: &RuleCheck) -> (String, &'static str) {
    match check {
        RuleCheck::ForeignKey { table: child, foreign_key: fk, .. } => {
            let not_null: Vec<String> = fk.columns.iter().map(|c| format!("c.{} IS NOT NULL", quote(c))).collect();
            let matches: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.referenced_columns)
                .map(|(c, r)| format!("p.{} = c.{}", quote(r), quote(c)))
                .collect();
            let from = format!(
                "FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})",
                table(child),
                not_null.join(" AND "),
                table(&fk.referenced_table),
                matches.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::NotNull { table: name, column, .. } => {
            (format!("FROM {} AS c WHERE c.{} IS NULL", table(name), quote(column)), "c.")
        }
        RuleCheck::Unique { table: name, columns, .. } => {
            let grouped: Vec<String> = columns.iter().map(|c| format!("g.{}", quote(c))).collect();
            let not_null: Vec<String> = grouped.iter().map(|c| format!("{c} IS NOT NULL")).collect();
            let on: Vec<String> = columns.iter().map(|c| format!("d.{0} = c.{0}", quote(c))).collect();
            let from = format!(
                "FROM {0} AS c JOIN (SELECT {1} FROM {0} AS g WHERE {2} GROUP BY {1} HAVING count(*) > 1) AS d ON {3}",
                table(name),
                grouped.join(", "),
                not_null.join(" AND "),
                on.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::Predicate { table: name, sql, .. } => {
            (format!("FROM {} WHERE NOT COALESCE(({sql}), 0)", table(name)), "")
        }
    }
}

/// `SELECT count(*) FROM … WHERE …`: how many rows break `check`.
pub fn count_violations(check: &RuleCheck) -> String {
    format!("SELECT count(*) {}", violating(check).0)
}

/// `SELECT key FROM … WHERE … ORDER BY key LIMIT ?`: the keys of the first rows that break
/// `check`. Parameter: the sample size.
pub fn sample_violations(check: &RuleCheck) -> String {
    let (from, prefix) = violating(check);
    let key = check.key().iter().map(|k| format!("{prefix}{}", quote(k))).collect::<Vec<_>>().join(", ");
    format!("SELECT {key} {from} ORDER BY {key} LIMIT ?")
}

#[cfg(test)]
mod tests {
    use dmf_core::catalog::{ForeignKey, TableName};

    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn composite_foreign_keys_are_an_anti_join_skipping_rows_with_a_null() {
        let check = RuleCheck::ForeignKey {
            table: TableName::new(None, "shipments"),
            key: names(&["id"]),
            foreign_key: ForeignKey {
                name: "shipments(order_id, line) -> order_lines".into(),
                columns: names(&["order_id", "line"]),
                referenced_table: TableName::new(None, "order lines"),
                referenced_columns: names(&["order_id", "li\"ne"]),
                enforced: true,
            },
        };
        let from = r#"FROM "shipments" AS c WHERE c."order_id" IS NOT NULL AND c."line" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "order lines" AS p WHERE p."order_id" = c."order_id" AND p."li""ne" = c."line")"#;
        assert_eq!(count_violations(&check), format!("SELECT count(*) {from}"));
        assert_eq!(sample_violations(&check), format!(r#"SELECT c."id" {from} ORDER BY c."id" LIMIT ?"#));
    }

    #[test]
    fn self_references_alias_both_sides() {
        let check = RuleCheck::ForeignKey {
            table: TableName::new(None, "employees"),
            key: names(&["id"]),
            foreign_key: ForeignKey {
                name: "employees(manager_id) -> employees".into(),
                columns: names(&["manager_id"]),
                referenced_table: TableName::new(None, "employees"),
                referenced_columns: names(&["id"]),
                enforced: true,
            },
        };
        assert_eq!(
            sample_violations(&check),
            r#"SELECT c."id" FROM "employees" AS c WHERE c."manager_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "employees" AS p WHERE p."id" = c."manager_id") ORDER BY c."id" LIMIT ?"#
        );
    }

    #[test]
    fn not_null_unique_and_predicates() {
        let t = TableName::new(None, "lines");
        let key = names(&["order_id", "line"]);
        let not_null = RuleCheck::NotNull { table: t.clone(), key: key.clone(), column: "sku".into() };
        assert_eq!(
            sample_violations(&not_null),
            r#"SELECT c."order_id", c."line" FROM "lines" AS c WHERE c."sku" IS NULL ORDER BY c."order_id", c."line" LIMIT ?"#
        );
        let unique = RuleCheck::Unique { table: t.clone(), key: key.clone(), columns: names(&["sku", "batch"]) };
        assert_eq!(
            count_violations(&unique),
            r#"SELECT count(*) FROM "lines" AS c JOIN (SELECT g."sku", g."batch" FROM "lines" AS g WHERE g."sku" IS NOT NULL AND g."batch" IS NOT NULL GROUP BY g."sku", g."batch" HAVING count(*) > 1) AS d ON d."sku" = c."sku" AND d."batch" = c."batch""#
        );
        let predicate = RuleCheck::Predicate { table: t, key, sql: "qty > 0 AND lines.sku <> ''".into() };
        assert_eq!(
            sample_violations(&predicate),
            r#"SELECT "order_id", "line" FROM "lines" WHERE NOT COALESCE((qty > 0 AND lines.sku <> ''), 0) ORDER BY "order_id", "line" LIMIT ?"#
        );
        assert_eq!(
            count_violations(&predicate),
            r#"SELECT count(*) FROM "lines" WHERE NOT COALESCE((qty > 0 AND lines.sku <> ''), 0)"#
        );
    }
}
