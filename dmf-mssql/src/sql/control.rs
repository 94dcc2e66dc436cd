//! The control tables in schema `dmf` (runs, migration records, checkpoints, rejects, undo
//! log; the same columns as dmf-postgres's): their creation and inspection, and
//! [`MssqlDialect`], in which dmf-core's control plane writes the statements that read and
//! write them. JSON columns (`plan`, `backup`, `payload`, `key`, `before_image`) are
//! `nvarchar(max)`; times are UTC `datetime2(7)` (the control plane binds them as
//! `datetimeoffset` at `+00:00`, which converts to the same UTC time exactly).

use std::sync::OnceLock;

use dmf_core::control::{ControlDialect, checkpoints};

use super::quote_ident;

/// The control schema.
pub(crate) const SCHEMA: &str = "dmf";

/// The control tables with their columns, in creation order (pre-flight checks the shape).
pub(crate) const TABLES: [(&str, &[&str]); 6] = dmf_core::sync::CONTROL_TABLES;

/// Creates the schema and every missing control table, in one transaction holding an
/// application lock (two processes starting at once take turns). A plain batch: `CREATE
/// SCHEMA` must be alone in its batch, hence `sp_executesql`.
pub(crate) const CREATE: &str = "\
SET XACT_ABORT ON;
BEGIN TRANSACTION;
EXEC sp_getapplock @Resource = N'dmf:control-tables', @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
IF SCHEMA_ID(N'dmf') IS NULL EXEC sp_executesql N'CREATE SCHEMA dmf AUTHORIZATION dbo';
IF OBJECT_ID(N'dmf.runs', N'U') IS NULL CREATE TABLE dmf.runs (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    status nvarchar(20) NOT NULL,
    [plan] nvarchar(max) NOT NULL,
    host nvarchar(256) NOT NULL,
    started_at datetime2(7) NOT NULL,
    finished_at datetime2(7) NULL,
    [backup] nvarchar(max) NULL,
    error nvarchar(max) NULL
);
IF OBJECT_ID(N'dmf.migration_runs', N'U') IS NULL CREATE TABLE dmf.migration_runs (
    run_id bigint NOT NULL REFERENCES dmf.runs (id),
    migration nvarchar(450) NOT NULL,
    status nvarchar(20) NOT NULL,
    started_at datetime2(7) NULL,
    finished_at datetime2(7) NULL,
    rows_read bigint NULL,
    rows_inserted bigint NULL,
    rows_updated bigint NULL,
    rows_unchanged bigint NULL,
    rows_deleted bigint NULL,
    rows_skipped bigint NULL,
    rows_rejected bigint NULL,
    duration_ms bigint NULL,
    resumed bit NULL,
    error nvarchar(max) NULL,
    PRIMARY KEY (run_id, migration)
);
IF OBJECT_ID(N'dmf.checkpoints', N'U') IS NULL CREATE TABLE dmf.checkpoints (
    migration nvarchar(450) NOT NULL PRIMARY KEY,
    [position] nvarchar(max) NULL,
    skip bigint NOT NULL,
    done bit NOT NULL,
    updated_at datetime2(7) NOT NULL
);
IF OBJECT_ID(N'dmf.rejects', N'U') IS NULL CREATE TABLE dmf.rejects (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    run_id bigint NOT NULL,
    migration nvarchar(450) NOT NULL,
    stage nvarchar(20) NOT NULL,
    source_key nvarchar(max) NOT NULL,
    reason nvarchar(max) NOT NULL,
    payload nvarchar(max) NULL,
    created_at datetime2(7) NOT NULL DEFAULT SYSUTCDATETIME()
);
IF OBJECT_ID(N'dmf.undo_log', N'U') IS NULL CREATE TABLE dmf.undo_log (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    run_id bigint NOT NULL,
    migration nvarchar(450) NOT NULL,
    table_name nvarchar(400) NOT NULL,
    [key] nvarchar(max) NOT NULL,
    [action] nvarchar(10) NOT NULL,
    before_image nvarchar(max) NULL
);
IF OBJECT_ID(N'dmf.leases', N'U') IS NULL CREATE TABLE dmf.leases (
    scope nvarchar(450) NOT NULL PRIMARY KEY,
    holder nvarchar(450) NOT NULL,
    host nvarchar(256) NOT NULL,
    pid bigint NOT NULL,
    run_id bigint NULL,
    acquired_at datetime2(7) NOT NULL,
    heartbeat_at datetime2(7) NOT NULL,
    expires_at datetime2(7) NOT NULL
);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'migration_runs_by_migration' AND object_id = OBJECT_ID(N'dmf.migration_runs'))
    CREATE INDEX migration_runs_by_migration ON dmf.migration_runs (migration, run_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'rejects_by_run' AND object_id = OBJECT_ID(N'dmf.rejects'))
    CREATE INDEX rejects_by_run ON dmf.rejects (run_id, migration, id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'undo_log_by_run' AND object_id = OBJECT_ID(N'dmf.undo_log'))
    CREATE INDEX undo_log_by_run ON dmf.undo_log (run_id, migration, id);
COMMIT TRANSACTION;";

/// The columns of the control tables that exist, and whether the session may create what is
/// missing: rows `(table, column)`, plus one row `(NULL, NULL)` carrying in columns 2–4
/// whether the schema exists and the CREATE SCHEMA / CREATE TABLE permissions.
pub(crate) const INSPECT: &str = "\
SELECT t.name AS table_name, c.name AS column_name, NULL AS schema_exists, NULL AS can_create_schema, NULL AS can_create_table
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.columns AS c ON c.object_id = t.object_id
WHERE s.name = N'dmf'
UNION ALL
SELECT NULL, NULL, CAST(CASE WHEN SCHEMA_ID(N'dmf') IS NULL THEN 0 ELSE 1 END AS int),
       CAST(HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE SCHEMA') AS int),
       CAST(HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE TABLE') AS int)";

/// Opens a transaction of the control plane (and of a loader's plain bulk insert): under
/// `XACT_ABORT`, any error rolls the whole transaction back instead of leaving it open with
/// part of its work done.
pub(crate) const BEGIN: &str = "SET XACT_ABORT ON; BEGIN TRANSACTION;";

/// Commits it.
pub(crate) const COMMIT: &str = "COMMIT TRANSACTION;";

/// Rolls it back, if `XACT_ABORT` has not done so already (a bare `ROLLBACK` without an open
/// transaction is error 3903).
pub(crate) const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;";

/// SQL Server refuses a request of more than 2,100 parameters (error 8003), and
/// `sp_executesql` sends its own with ours (the statement, its declarations); DMF stays well
/// under.
pub(crate) const MAX_PARAMS: usize = 2000;

/// The control tables' T-SQL for dmf-core's control plane ([`SqlRunStore`] and
/// [`checkpoints`]): tables `[dmf].[runs]`, parameters `@P1`…, pages by `OFFSET … ROWS FETCH
/// NEXT … ROWS ONLY`, the new id by `OUTPUT INSERTED.[id]`, and an upsert without `MERGE`
/// (which Babelfish lacks).
///
/// | method | T-SQL |
/// |---|---|
/// | `table("runs")` | `[dmf].[runs]` |
/// | `param(3)` | `@P3` |
/// | `max_params()` | 2000 (SQL Server: 2,100 a request) |
/// | `select_page` | `SELECT … FROM … ORDER BY … OFFSET @Po ROWS FETCH NEXT @Pl ROWS ONLY` (`OFFSET 0 ROWS` with a limit alone) |
/// | `insert_returning_id` | `INSERT INTO … (…) OUTPUT INSERTED.[id] VALUES (…)` |
/// | `upsert` | `SET XACT_ABORT ON; BEGIN TRANSACTION; UPDATE … WITH (UPDLOCK, SERIALIZABLE) SET … WHERE …; IF @@ROWCOUNT = 0 INSERT INTO … VALUES (…); COMMIT TRANSACTION;` |
/// | `begin` / `commit` / `rollback` | `SET XACT_ABORT ON; BEGIN TRANSACTION;` / `COMMIT TRANSACTION;` / `IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;` |
///
/// A limit of 0 rows is refused by SQL Server (error 10744: `FETCH NEXT` must be positive);
/// Babelfish returns no rows.
///
/// [`SqlRunStore`]: dmf_core::control::SqlRunStore
/// [`checkpoints`]: dmf_core::control::checkpoints
#[derive(Debug, Clone, Copy, Default)]
pub struct MssqlDialect;

impl MssqlDialect {
    fn assignments(&self, columns: &[&str], wanted: impl Fn(&str) -> bool, separator: &str) -> String {
        columns
            .iter()
            .enumerate()
            .filter(|(_, column)| wanted(column))
            .map(|(i, column)| format!("{} = {}", self.column(column), self.param(i + 1)))
            .collect::<Vec<_>>()
            .join(separator)
    }
}

impl ControlDialect for MssqlDialect {
    fn table(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(SCHEMA), quote_ident(name))
    }

    fn column(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn param(&self, n: usize) -> String {
        format!("@P{n}")
    }

    fn max_params(&self) -> usize {
        MAX_PARAMS
    }

    fn select_page(
        &self,
        columns: &str,
        from: &str,
        order: &str,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> String {
        // T-SQL pages only after an ORDER BY, and FETCH only after an OFFSET.
        let mut sql = format!("SELECT {columns} FROM {from} ORDER BY {order}");
        match (limit, offset) {
            (Some(limit), Some(offset)) => {
                sql.push_str(&format!(
                    " OFFSET {} ROWS FETCH NEXT {} ROWS ONLY",
                    self.param(offset),
                    self.param(limit)
                ));
            }
            (Some(limit), None) => sql.push_str(&format!(" OFFSET 0 ROWS FETCH NEXT {} ROWS ONLY", self.param(limit))),
            (None, Some(offset)) => sql.push_str(&format!(" OFFSET {} ROWS", self.param(offset))),
            (None, None) => {}
        }
        sql
    }

    /// `OUTPUT` without `INTO`: SQL Server refuses it on a table with enabled triggers (error
    /// 334), and DMF's control tables have none.
    fn insert_returning_id(&self, table: &str, columns: &str, values: &str) -> String {
        format!("INSERT INTO {table} ({columns}) OUTPUT INSERTED.{} VALUES ({values})", self.column("id"))
    }

    /// The update-else-insert pattern: `UPDLOCK, SERIALIZABLE` holds the key range from the
    /// `UPDATE` to the `INSERT`, so two sessions upserting the same new key take turns
    /// instead of both inserting it. Those locks last only as long as a transaction, hence
    /// the statement's own (nested inside the caller's when there is one: a loader's batch).
    fn upsert(&self, table: &str, key: &[&str], columns: &[&str]) -> String {
        let is_key = |column: &str| key.contains(&column);
        let matched = self.assignments(columns, is_key, " AND ");
        let names: Vec<String> = columns.iter().map(|c| self.column(c)).collect();
        let values: Vec<String> = (1..=columns.len()).map(|n| self.param(n)).collect();
        let insert = format!("INSERT INTO {table} ({}) VALUES ({});", names.join(", "), values.join(", "));
        let updates = self.assignments(columns, |c| !is_key(c), ", ");
        let write = if updates.is_empty() {
            format!("IF NOT EXISTS (SELECT 1 FROM {table} WITH (UPDLOCK, SERIALIZABLE) WHERE {matched}) {insert}")
        } else {
            format!(
                "UPDATE {table} WITH (UPDLOCK, SERIALIZABLE) SET {updates} WHERE {matched}; IF @@ROWCOUNT = 0 {insert}"
            )
        };
        format!("{BEGIN} {write} {COMMIT}")
    }

    /// `UPDLOCK, SERIALIZABLE` holds the key range from the test to the insert, so two sessions
    /// inserting the same new key take turns: the second finds the row and inserts nothing.
    fn insert_if_absent(&self, table: &str, key: &str, columns: &[&str]) -> String {
        let names: Vec<String> = columns.iter().map(|c| self.column(c)).collect();
        let values: Vec<String> = (1..=columns.len()).map(|n| self.param(n)).collect();
        format!(
            "{BEGIN} IF NOT EXISTS (SELECT 1 FROM {table} WITH (UPDLOCK, SERIALIZABLE) WHERE {} = {}) \
             INSERT INTO {table} ({}) VALUES ({}); {COMMIT}",
            self.column(key),
            self.param(1),
            names.join(", "),
            values.join(", ")
        )
    }

    fn begin(&self) -> &'static str {
        BEGIN
    }

    fn commit(&self) -> &'static str {
        COMMIT
    }

    fn rollback(&self) -> &'static str {
        ROLLBACK
    }

    fn user_table(&self, table: &dmf_core::catalog::TableName) -> String {
        super::qualified(table)
    }

    /// `count(*)` is an `int` in T-SQL.
    fn count_rows(&self) -> &'static str {
        "COUNT_BIG(*)"
    }

    /// T-SQL has no read-only transaction: a READ COMMITTED one, rolled back at the end. No
    /// write is possible in it all the same: the only user text, a rule's predicate, is checked
    /// to be one expression before it is sent (it cannot end the statement and start another),
    /// and a T-SQL expression cannot write (functions may not have side effects, and
    /// `NEXT VALUE FOR` is refused in a `WHERE` clause).
    fn begin_read_only(&self) -> &'static str {
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN TRANSACTION;"
    }

    fn end_read_only(&self) -> &'static str {
        ROLLBACK
    }
}

/// Stores a checkpoint: dmf-core's [`checkpoints::write_statement`] in T-SQL, made once.
/// Parameters: [`checkpoints::write_params`] (`@P1`…`@P5`).
pub(crate) fn save_checkpoint() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| checkpoints::write_statement(&MssqlDialect))
}

/// Reads a checkpoint ([`checkpoints::read_statement`]). Parameter: the migration.
pub(crate) fn read_checkpoint() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| checkpoints::read_statement(&MssqlDialect))
}

/// Forgets a checkpoint ([`checkpoints::clear_statement`]). Parameter: the migration.
pub(crate) fn clear_checkpoint() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| checkpoints::clear_statement(&MssqlDialect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_checks_in_t_sql_count_big_and_page_with_fetch() {
        use dmf_core::catalog::{ForeignKey, TableName};
        use dmf_core::quality::{RuleCheck, count_statement, sample_statement};
        let names = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let composite = RuleCheck::ForeignKey {
            table: TableName::new(Some("dbo"), "Shipments"),
            key: names(&["id"]),
            foreign_key: ForeignKey {
                name: "FK_Shipments".into(),
                columns: names(&["order_id", "li]ne"]),
                referenced_table: TableName::new(Some("dbo"), "Order Lines"),
                referenced_columns: names(&["order_id", "line"]),
                enforced: false,
            },
        };
        let from = "FROM [dbo].[Shipments] AS c WHERE c.[order_id] IS NOT NULL AND c.[li]]ne] IS NOT NULL AND NOT EXISTS (SELECT 1 FROM [dbo].[Order Lines] AS p WHERE p.[order_id] = c.[order_id] AND p.[line] = c.[li]]ne])";
        assert_eq!(count_statement(&MssqlDialect, &composite), format!("SELECT COUNT_BIG(*) {from}"));
        assert_eq!(
            sample_statement(&MssqlDialect, &composite),
            format!("SELECT c.[id] {from} ORDER BY c.[id] OFFSET 0 ROWS FETCH NEXT @P1 ROWS ONLY")
        );
        let t = TableName::new(Some("dbo"), "Lines");
        let unique = RuleCheck::Unique { table: t.clone(), key: names(&["id"]), columns: names(&["sku"]) };
        assert_eq!(
            count_statement(&MssqlDialect, &unique),
            "SELECT COUNT_BIG(*) FROM [dbo].[Lines] AS c JOIN (SELECT g.[sku] FROM [dbo].[Lines] AS g WHERE g.[sku] IS NOT NULL GROUP BY g.[sku] HAVING COUNT_BIG(*) > 1) AS d ON d.[sku] = c.[sku]"
        );
        // No boolean values in T-SQL: "not TRUE" (FALSE or UNKNOWN) is a CASE.
        let predicate =
            RuleCheck::Predicate { table: t, key: names(&["id"]), sql: "qty > 0 AND [Lines].sku <> N''".into() };
        assert_eq!(
            count_statement(&MssqlDialect, &predicate),
            "SELECT COUNT_BIG(*) FROM [dbo].[Lines] WHERE CASE WHEN (qty > 0 AND [Lines].sku <> N'') THEN 1 ELSE 0 END = 0"
        );
    }

    #[test]
    fn every_control_table_is_created_if_missing_with_the_inspected_columns() {
        for (table, columns) in TABLES {
            let start = CREATE
                .find(&format!("IF OBJECT_ID(N'{SCHEMA}.{table}', N'U') IS NULL CREATE TABLE {SCHEMA}.{table} ("));
            let start = start.unwrap_or_else(|| panic!("{table} is not created"));
            let body = &CREATE[start..];
            let body = &body[..body.find(");").unwrap()];
            for column in columns.iter() {
                let plain = format!("\n    {column} ");
                let bracketed = format!("\n    [{column}] ");
                assert!(body.contains(&plain) || body.contains(&bracketed), "{table}.{column}");
            }
        }
        assert!(CREATE.starts_with("SET XACT_ABORT ON;\nBEGIN TRANSACTION;\nEXEC sp_getapplock"));
        assert!(CREATE.ends_with("COMMIT TRANSACTION;"));
    }

    #[test]
    fn names_parameters_and_transactions() {
        let dialect = MssqlDialect;
        assert_eq!(dialect.table("runs"), "[dmf].[runs]");
        assert_eq!(dialect.table("a]b"), "[dmf].[a]]b]", "through the one quoting function");
        assert_eq!(dialect.column("plan"), "[plan]");
        assert_eq!(dialect.param(12), "@P12");
        assert!(dialect.max_params() < 2100);
        assert_eq!(
            (dialect.begin(), dialect.commit(), dialect.rollback()),
            (
                "SET XACT_ABORT ON; BEGIN TRANSACTION;",
                "COMMIT TRANSACTION;",
                "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;"
            )
        );
    }

    #[test]
    fn pages_always_order_and_offset_before_fetching() {
        let page =
            |limit, offset| MssqlDialect.select_page("[a]", "[dmf].[t] WHERE [b] = @P1", "[id] DESC", limit, offset);
        let head = "SELECT [a] FROM [dmf].[t] WHERE [b] = @P1 ORDER BY [id] DESC";
        assert_eq!(page(Some(2), Some(3)), format!("{head} OFFSET @P3 ROWS FETCH NEXT @P2 ROWS ONLY"));
        assert_eq!(page(Some(2), None), format!("{head} OFFSET 0 ROWS FETCH NEXT @P2 ROWS ONLY"));
        assert_eq!(page(None, Some(3)), format!("{head} OFFSET @P3 ROWS"));
        assert_eq!(page(None, None), head);
    }

    #[test]
    fn new_ids_come_back_through_output_inserted() {
        assert_eq!(
            MssqlDialect.insert_returning_id("[dmf].[runs]", "[status], [plan]", "@P1, @P2"),
            "INSERT INTO [dmf].[runs] ([status], [plan]) OUTPUT INSERTED.[id] VALUES (@P1, @P2)"
        );
    }

    #[test]
    fn checkpoints_are_upserted_without_merge_in_one_batch_with_the_same_parameters() {
        assert_eq!(
            save_checkpoint(),
            "SET XACT_ABORT ON; BEGIN TRANSACTION; \
             UPDATE [dmf].[checkpoints] WITH (UPDLOCK, SERIALIZABLE) SET [position] = @P2, [skip] = @P3, [done] = @P4, \
             [updated_at] = @P5 WHERE [migration] = @P1; \
             IF @@ROWCOUNT = 0 INSERT INTO [dmf].[checkpoints] ([migration], [position], [skip], [done], [updated_at]) \
             VALUES (@P1, @P2, @P3, @P4, @P5); COMMIT TRANSACTION;"
        );
        assert!(!save_checkpoint().contains("MERGE"));
        assert_eq!(
            read_checkpoint(),
            "SELECT [position], [skip], [done] FROM [dmf].[checkpoints] WHERE [migration] = @P1"
        );
        assert_eq!(clear_checkpoint(), "DELETE FROM [dmf].[checkpoints] WHERE [migration] = @P1");
    }

    #[test]
    fn upserts_match_on_every_key_column_wherever_it_stands() {
        let columns = ["run_id", "migration", "status"];
        assert_eq!(
            MssqlDialect.upsert("[dmf].[migration_runs]", &columns[..2], &columns),
            "SET XACT_ABORT ON; BEGIN TRANSACTION; \
             UPDATE [dmf].[migration_runs] WITH (UPDLOCK, SERIALIZABLE) SET [status] = @P3 \
             WHERE [run_id] = @P1 AND [migration] = @P2; \
             IF @@ROWCOUNT = 0 INSERT INTO [dmf].[migration_runs] ([run_id], [migration], [status]) VALUES (@P1, @P2, @P3); \
             COMMIT TRANSACTION;"
        );
        assert_eq!(
            MssqlDialect.upsert("[dmf].[k]", &["b", "a"], &["a", "b"]),
            "SET XACT_ABORT ON; BEGIN TRANSACTION; \
             IF NOT EXISTS (SELECT 1 FROM [dmf].[k] WITH (UPDLOCK, SERIALIZABLE) WHERE [a] = @P1 AND [b] = @P2) \
             INSERT INTO [dmf].[k] ([a], [b]) VALUES (@P1, @P2); COMMIT TRANSACTION;",
            "a row that is all key is inserted when missing"
        );
    }
}
