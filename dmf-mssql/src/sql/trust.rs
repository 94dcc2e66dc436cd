//! Constraint trust around the fast path of a `full` load: whether the login may re-validate a
//! table's constraints, which insert triggers a bulk load without `FIRE_TRIGGERS` would not
//! fire, which foreign keys and CHECK constraints are enabled and trusted, and the statement
//! that re-validates one of them.
//!
//! A bulk load without `CHECK_CONSTRAINTS` checks neither the table's foreign keys nor its
//! CHECK constraints and marks them not trusted (`is_not_trusted = 1`), so the optimizer
//! stops relying on them. `ALTER TABLE … WITH CHECK CHECK CONSTRAINT` validates every row
//! against the constraint (set-based, by SQL Server) and marks it trusted again; it changes
//! no column, key or index, but needs ALTER permission on the table.

use dmf_core::catalog::TableName;

use super::{qualified, quote_ident};

/// May the current user re-validate the table's constraints (ALTER on the table)? Parameter:
/// the quoted qualified name (`[dbo].[Orders]`).
///
/// Columns: 0 may alter (1, 0, or NULL when the name does not resolve), 1 the database user.
pub(crate) const MAY_ALTER: &str =
    "SELECT CAST(HAS_PERMS_BY_NAME(@P1, N'OBJECT', N'ALTER') AS int) AS may_alter, USER_NAME() AS user_name";

/// The table's enabled triggers that fire on INSERT (AFTER and INSTEAD OF), by name.
/// Parameter: the quoted qualified name.
///
/// Columns: 0 trigger name.
pub(crate) const INSERT_TRIGGERS: &str = "\
SELECT tr.name
FROM sys.triggers AS tr
WHERE tr.parent_id = OBJECT_ID(@P1) AND tr.is_disabled = 0
  AND EXISTS (SELECT 1 FROM sys.trigger_events AS te WHERE te.object_id = tr.object_id AND te.type_desc = N'INSERT')
ORDER BY tr.name";

/// The table's enabled foreign keys (the table referencing) and CHECK constraints, with their
/// trust. Parameter: the quoted qualified name.
///
/// Columns: 0 kind (`FOREIGN KEY` or `CHECK`), 1 constraint name, 2 is_not_trusted.
pub(crate) const CONSTRAINTS: &str = "\
SELECT N'FOREIGN KEY' AS kind, fk.name, CAST(fk.is_not_trusted AS int) AS is_not_trusted
FROM sys.foreign_keys AS fk
WHERE fk.parent_object_id = OBJECT_ID(@P1) AND fk.is_disabled = 0
UNION ALL
SELECT N'CHECK' AS kind, ck.name, CAST(ck.is_not_trusted AS int) AS is_not_trusted
FROM sys.check_constraints AS ck
WHERE ck.parent_object_id = OBJECT_ID(@P1) AND ck.is_disabled = 0
ORDER BY kind, name";

/// Validates every row of `table` against `constraint` and marks it trusted again (error 547
/// names the constraint when a row breaks it). Beyond `sqlparser`; sqlfluff parses it.
pub(crate) fn retrust(table: &TableName, constraint: &str) -> String {
    format!("ALTER TABLE {} WITH CHECK CHECK CONSTRAINT {}", qualified(table), quote_ident(constraint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_validation_quotes_the_table_and_the_constraint() {
        assert_eq!(
            retrust(&TableName::new(Some("dbo"), "Orders"), "FK_Orders_Customers"),
            "ALTER TABLE [dbo].[Orders] WITH CHECK CHECK CONSTRAINT [FK_Orders_Customers]"
        );
        assert_eq!(
            retrust(&TableName::new(Some("sales ]x"), "Order Lines"), "CK_qty]>0"),
            "ALTER TABLE [sales ]]x].[Order Lines] WITH CHECK CHECK CONSTRAINT [CK_qty]]>0]"
        );
    }

    #[test]
    fn the_fact_queries_read_exactly_what_the_decision_needs() {
        assert_eq!(
            MAY_ALTER,
            "SELECT CAST(HAS_PERMS_BY_NAME(@P1, N'OBJECT', N'ALTER') AS int) AS may_alter, USER_NAME() AS user_name"
        );
        assert_eq!(
            INSERT_TRIGGERS,
            "SELECT tr.name\nFROM sys.triggers AS tr\nWHERE tr.parent_id = OBJECT_ID(@P1) AND tr.is_disabled = 0\n  \
             AND EXISTS (SELECT 1 FROM sys.trigger_events AS te WHERE te.object_id = tr.object_id AND te.type_desc = \
             N'INSERT')\nORDER BY tr.name"
        );
        assert_eq!(
            CONSTRAINTS,
            "SELECT N'FOREIGN KEY' AS kind, fk.name, CAST(fk.is_not_trusted AS int) AS is_not_trusted\n\
             FROM sys.foreign_keys AS fk\n\
             WHERE fk.parent_object_id = OBJECT_ID(@P1) AND fk.is_disabled = 0\n\
             UNION ALL\n\
             SELECT N'CHECK' AS kind, ck.name, CAST(ck.is_not_trusted AS int) AS is_not_trusted\n\
             FROM sys.check_constraints AS ck\n\
             WHERE ck.parent_object_id = OBJECT_ID(@P1) AND ck.is_disabled = 0\n\
             ORDER BY kind, name"
        );
    }
}
