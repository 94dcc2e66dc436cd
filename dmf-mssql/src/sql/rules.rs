//! Rule checks on a table ([`RuleCheck`]): the count of violating rows and a page of their
//! keys, each one set-based query. The table's rows are `c` (a foreign key's referenced rows
//! `p`), except in a predicate, which sees the table unaliased. Identifiers pass through the
//! quoting function and the sample size is bound; a predicate's SQL is the one text spliced in
//! as given: it is the user's own (see [`RuleCheck::Predicate`]). T-SQL has no boolean values,
//! so "the predicate is not TRUE" (FALSE or UNKNOWN) is `CASE WHEN (…) THEN 1 ELSE 0 END = 0`:
//! `NOT (…)` would miss the rows where it is UNKNOWN.

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
                "FROM {0} AS c JOIN (SELECT {1} FROM {0} AS g WHERE {2} GROUP BY {1} HAVING COUNT(*) > 1) AS d ON {3}",
                qualified(table),
                grouped.join(", "),
                not_null.join(" AND "),
                on.join(" AND ")
            );
            (from, "c.")
        }
        RuleCheck::Predicate { table, sql, .. } => {
            (format!("FROM {} WHERE CASE WHEN ({sql}) THEN 1 ELSE 0 END = 0", qualified(table)), "")
        }
    }
}

/// `SELECT COUNT_BIG(*) FROM … WHERE …`: how many rows break `check`.
pub(crate) fn count_violations(check: &RuleCheck) -> String {
    format!("SELECT COUNT_BIG(*) {}", violating(check).0)
}

/// `SELECT TOP (@P1) key FROM … WHERE … ORDER BY key`: the keys of the first rows that break
/// `check`. Parameter: `@P1` the sample size.
pub(crate) fn sample_violations(check: &RuleCheck) -> String {
    let (from, prefix) = violating(check);
    let key = check.key().iter().map(|k| format!("{prefix}{}", quote_ident(k))).collect::<Vec<_>>().join(", ");
    format!("SELECT TOP (@P1) {key} {from} ORDER BY {key}")
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
            table: TableName::new(Some("dbo"), table),
            key: names(&["id"]),
            foreign_key: ForeignKey {
                name: format!("FK_{table}"),
                columns: names(columns),
                referenced_table: TableName::new(Some("dbo"), to),
                referenced_columns: names(referenced),
                enforced: false,
            },
        }
    }

    #[test]
    fn foreign_keys_are_an_anti_join_skipping_rows_with_a_null() {
        let check = fk("Orders", &["customer_id"], "Customers", &["id"]);
        assert_eq!(
            count_violations(&check),
            "SELECT COUNT_BIG(*) FROM [dbo].[Orders] AS c WHERE c.[customer_id] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM [dbo].[Customers] AS p WHERE p.[id] = c.[customer_id])"
        );
        assert_eq!(
            sample_violations(&check),
            "SELECT TOP (@P1) c.[id] FROM [dbo].[Orders] AS c WHERE c.[customer_id] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM [dbo].[Customers] AS p WHERE p.[id] = c.[customer_id]) ORDER BY c.[id]"
        );
    }

    #[test]
    fn composite_and_self_referencing_foreign_keys() {
        let composite = fk("Shipments", &["order_id", "li]ne"], "Order Lines", &["order_id", "line"]);
        assert_eq!(
            count_violations(&composite),
            "SELECT COUNT_BIG(*) FROM [dbo].[Shipments] AS c WHERE c.[order_id] IS NOT NULL AND c.[li]]ne] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM [dbo].[Order Lines] AS p WHERE p.[order_id] = c.[order_id] AND p.[line] = c.[li]]ne])"
        );
        let own = fk("Employees", &["manager_id"], "Employees", &["id"]);
        assert_eq!(
            count_violations(&own),
            "SELECT COUNT_BIG(*) FROM [dbo].[Employees] AS c WHERE c.[manager_id] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM [dbo].[Employees] AS p WHERE p.[id] = c.[manager_id])"
        );
    }

    #[test]
    fn not_null_unique_and_predicates() {
        let t = TableName::new(Some("dbo"), "Lines");
        let key = names(&["order_id", "line"]);
        let not_null = RuleCheck::NotNull { table: t.clone(), key: key.clone(), column: "sku".into() };
        assert_eq!(
            sample_violations(&not_null),
            "SELECT TOP (@P1) c.[order_id], c.[line] FROM [dbo].[Lines] AS c WHERE c.[sku] IS NULL ORDER BY c.[order_id], c.[line]"
        );
        let unique = RuleCheck::Unique { table: t.clone(), key: key.clone(), columns: names(&["sku", "batch"]) };
        assert_eq!(
            count_violations(&unique),
            "SELECT COUNT_BIG(*) FROM [dbo].[Lines] AS c JOIN (SELECT g.[sku], g.[batch] FROM [dbo].[Lines] AS g WHERE g.[sku] IS NOT NULL AND g.[batch] IS NOT NULL GROUP BY g.[sku], g.[batch] HAVING COUNT(*) > 1) AS d ON d.[sku] = c.[sku] AND d.[batch] = c.[batch]"
        );
        let predicate = RuleCheck::Predicate { table: t, key, sql: "qty > 0 AND [Lines].sku <> N''".into() };
        assert_eq!(
            sample_violations(&predicate),
            "SELECT TOP (@P1) [order_id], [line] FROM [dbo].[Lines] WHERE CASE WHEN (qty > 0 AND [Lines].sku <> N'') THEN 1 ELSE 0 END = 0 ORDER BY [order_id], [line]"
        );
        assert_eq!(
            count_violations(&predicate),
            "SELECT COUNT_BIG(*) FROM [dbo].[Lines] WHERE CASE WHEN (qty > 0 AND [Lines].sku <> N'') THEN 1 ELSE 0 END = 0"
        );
    }
}
