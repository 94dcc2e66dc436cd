//! Catalog queries on `sys.*` (INFORMATION_SCHEMA has no identity, computed or rowversion
//! facts): user tables with their columns, their keys, their foreign keys, and the columns
//! of one table for a loader.

/// Every column of every user table, the control schema and temporal history tables left
/// out, in schema, table and column order.
///
/// Columns: 0 object_id, 1 schema, 2 table, 3 column, 4 system type name (the base type of
/// alias types), 5 max_length (bytes, -1 for max), 6 precision, 7 scale, 8 nullable,
/// 9 identity, 10 computed, 11 sparse, 12 generated always (temporal period), 13 collation,
/// 14 default definition.
pub(crate) const COLUMNS: &str = "\
SELECT t.object_id, s.name AS schema_name, t.name AS table_name, c.name AS column_name,
       TYPE_NAME(c.system_type_id) AS type_name, CAST(c.max_length AS int) AS max_length,
       CAST(c.[precision] AS int) AS [precision], CAST(c.scale AS int) AS scale,
       CAST(c.is_nullable AS int) AS is_nullable, CAST(c.is_identity AS int) AS is_identity,
       CAST(c.is_computed AS int) AS is_computed, CAST(c.is_sparse AS int) AS is_sparse,
       CAST(c.generated_always_type AS int) AS generated_always_type, c.collation_name,
       dc.[definition] AS default_definition
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.columns AS c ON c.object_id = t.object_id
LEFT JOIN sys.default_constraints AS dc ON dc.parent_object_id = c.object_id AND dc.parent_column_id = c.column_id
WHERE t.is_ms_shipped = 0 AND t.temporal_type <> 1 AND s.name <> N'dmf'
ORDER BY s.name, t.name, c.column_id";

/// Primary keys, unique constraints and unfiltered unique indexes, columns in key order.
///
/// Columns: 0 object_id, 1 index id, 2 is primary key, 3 key column name.
pub(crate) const KEYS: &str = "\
SELECT i.object_id, i.index_id, CAST(i.is_primary_key AS int) AS is_primary_key, c.name AS column_name
FROM sys.indexes AS i
JOIN sys.tables AS t ON t.object_id = i.object_id
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE t.is_ms_shipped = 0 AND i.is_unique = 1 AND i.has_filter = 0 AND i.is_disabled = 0
  AND ic.is_included_column = 0
ORDER BY i.object_id, i.is_primary_key DESC, i.index_id, ic.key_ordinal";

/// Foreign keys with their columns in order, disabled ones included (`is_disabled`: not
/// enforced).
///
/// Columns: 0 child object_id, 1 foreign key object_id, 2 name, 3 parent schema, 4 parent
/// table, 5 child column, 6 parent column, 7 is_disabled, 8 is_not_trusted.
pub(crate) const FOREIGN_KEYS: &str = "\
SELECT fk.parent_object_id, fk.object_id, fk.name AS fk_name,
       SCHEMA_NAME(pt.schema_id) AS parent_schema, pt.name AS parent_table,
       cc.name AS child_column, pc.name AS parent_column,
       CAST(fk.is_disabled AS int) AS is_disabled, CAST(fk.is_not_trusted AS int) AS is_not_trusted
FROM sys.foreign_keys AS fk
JOIN sys.tables AS pt ON pt.object_id = fk.referenced_object_id
JOIN sys.foreign_key_columns AS fkc ON fkc.constraint_object_id = fk.object_id
JOIN sys.columns AS cc ON cc.object_id = fkc.parent_object_id AND cc.column_id = fkc.parent_column_id
JOIN sys.columns AS pc ON pc.object_id = fkc.referenced_object_id AND pc.column_id = fkc.referenced_column_id
ORDER BY fk.parent_object_id, fk.name, fkc.constraint_column_id";

/// The columns of one table, for a loader building its stage and merge log. Parameter: the
/// quoted qualified name (`[dbo].[Orders]`).
///
/// Columns: 0 column, 1 system type name, 2 max_length, 3 precision, 4 scale, 5 nullable,
/// 6 identity, 7 computed or rowversion or generated always, 8 collation.
pub(crate) const TABLE_COLUMNS: &str = "\
SELECT c.name, TYPE_NAME(c.system_type_id) AS type_name, CAST(c.max_length AS int) AS max_length,
       CAST(c.[precision] AS int) AS [precision], CAST(c.scale AS int) AS scale,
       CAST(c.is_nullable AS int) AS is_nullable, CAST(c.is_identity AS int) AS is_identity,
       CAST(CASE WHEN c.is_computed = 1 OR c.system_type_id = 189 OR c.generated_always_type <> 0
                 THEN 1 ELSE 0 END AS int) AS is_read_only,
       c.collation_name
FROM sys.columns AS c
WHERE c.object_id = OBJECT_ID(@P1)
ORDER BY c.column_id";

/// The identity column of every user table with the last value it handed out: `IDENT_CURRENT`,
/// or NULL when `sys.identity_columns.last_value` says none was (before the first insert, or
/// after a `TRUNCATE`). `last_value` is only tested for NULL: Babelfish 4.3 pairs every identity
/// column with every identity's `last_value` in that view, and its `IDENT_CURRENT` is right.
///
/// Columns: 0 schema, 1 table, 2 column, 3 last value (bigint).
pub(crate) const IDENTITIES: &str = "\
SELECT s.name AS schema_name, t.name AS table_name, c.name AS column_name,
       CASE WHEN EXISTS (SELECT 1 FROM sys.identity_columns AS ic
                         WHERE ic.object_id = t.object_id AND ic.last_value IS NOT NULL)
            THEN CAST(IDENT_CURRENT(QUOTENAME(s.name) + N'.' + QUOTENAME(t.name)) AS bigint) END AS last_value
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.columns AS c ON c.object_id = t.object_id AND c.is_identity = 1
WHERE t.is_ms_shipped = 0 AND s.name <> N'dmf'
ORDER BY s.name, t.name";

/// The sequence objects (`CREATE SEQUENCE`) that the default constraints of user tables use
/// (`DEFAULT (NEXT VALUE FOR [dbo].[ticket_numbers])`), one row per (sequence, table, column),
/// with the last value handed out: `sys.sequences.last_used_value` (NULL before the first
/// `NEXT VALUE FOR`, SQL Server 2017 and later), or with `last_used_value` false (SQL Server
/// 2016, which lacks that column) `current_value`, which a never-used sequence also holds (its
/// start value): there it reads as handed out.
///
/// A default is matched to its sequence by `sys.sql_expression_dependencies`, where SQL Server
/// records the reference by object id (the reason it refuses to drop a sequence a default
/// uses), not by searching `sys.default_constraints.definition` for `NEXT VALUE FOR`: a name
/// in that text may be bracketed or not, qualified or not (resolved in the creator's default
/// schema), and appear in a larger expression.
///
/// Columns: 0 sequence schema, 1 sequence, 2 table schema, 3 table, 4 column, 5 last value
/// (bigint).
pub(crate) fn sequences(last_used_value: bool) -> String {
    let last = if last_used_value { "sq.last_used_value" } else { "sq.current_value" };
    format!(
        "\
SELECT qs.name AS sequence_schema, sq.name AS sequence_name, s.name AS schema_name, t.name AS table_name,
       c.name AS column_name, CAST({last} AS bigint) AS last_value
FROM sys.sequences AS sq
JOIN sys.schemas AS qs ON qs.schema_id = sq.schema_id
JOIN sys.sql_expression_dependencies AS d ON d.referenced_id = sq.object_id
JOIN sys.default_constraints AS dc ON dc.object_id = d.referencing_id
JOIN sys.tables AS t ON t.object_id = dc.parent_object_id
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.columns AS c ON c.object_id = dc.parent_object_id AND c.column_id = dc.parent_column_id
WHERE t.is_ms_shipped = 0 AND s.name <> N'dmf'
ORDER BY s.name, t.name, c.column_id, qs.name, sq.name"
    )
}

/// A table's row count from its heap or clustered index partitions: cheap and approximate.
/// Parameter: the quoted qualified name.
pub(crate) const ESTIMATE: &str = "\
SELECT CAST(SUM(p.rows) AS bigint) AS row_count
FROM sys.partitions AS p
WHERE p.object_id = OBJECT_ID(@P1) AND p.index_id IN (0, 1)";

/// The enabled user triggers on tables, one row per operation each fires on.
///
/// Columns: 0 schema, 1 table, 2 trigger, 3 `INSTEAD OF` (int), 4 operation (`INSERT`,
/// `UPDATE`, `DELETE`).
pub(crate) const TRIGGERS: &str = "\
SELECT s.name AS schema_name, o.name AS table_name, tr.name AS trigger_name,
       CAST(tr.is_instead_of_trigger AS int) AS instead_of, te.type_desc AS operation
FROM sys.triggers AS tr
JOIN sys.objects AS o ON o.object_id = tr.parent_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
JOIN sys.trigger_events AS te ON te.object_id = tr.object_id
WHERE tr.parent_class = 1 AND tr.is_disabled = 0 AND tr.is_ms_shipped = 0 AND s.name <> N'dmf'
ORDER BY s.name, o.name, tr.name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_reads_what_the_model_needs() {
        for fact in ["c.is_identity", "c.is_computed", "c.is_sparse", "c.generated_always_type", "c.collation_name"] {
            assert!(COLUMNS.contains(fact), "{fact}");
        }
        assert!(COLUMNS.contains("WHERE t.is_ms_shipped = 0 AND t.temporal_type <> 1 AND s.name <> N'dmf'"));
        assert!(KEYS.contains("i.is_unique = 1 AND i.has_filter = 0"));
        assert!(IDENTITIES.contains("CAST(IDENT_CURRENT(QUOTENAME(s.name) + N'.' + QUOTENAME(t.name)) AS bigint)"));
        assert!(IDENTITIES.contains("WHERE t.is_ms_shipped = 0 AND s.name <> N'dmf'"));
        assert!(FOREIGN_KEYS.contains("CAST(fk.is_disabled AS int) AS is_disabled"));
        assert!(TABLE_COLUMNS.contains("c.system_type_id = 189"), "rowversion is read-only");
        assert!(TABLE_COLUMNS.ends_with("WHERE c.object_id = OBJECT_ID(@P1)\nORDER BY c.column_id"));
        assert!(ESTIMATE.contains("p.index_id IN (0, 1)"));
    }

    #[test]
    fn sequences_are_matched_to_defaults_by_dependency_and_read_by_their_last_used_value() {
        let sql = sequences(true);
        assert!(sql.contains("c.name AS column_name, CAST(sq.last_used_value AS bigint) AS last_value\n"), "{sql}");
        assert!(sql.contains("JOIN sys.sql_expression_dependencies AS d ON d.referenced_id = sq.object_id\n"));
        assert!(sql.contains("JOIN sys.default_constraints AS dc ON dc.object_id = d.referencing_id\n"));
        assert!(
            sql.contains("AND c.column_id = dc.parent_column_id\nWHERE t.is_ms_shipped = 0 AND s.name <> N'dmf'\n")
        );
        assert!(sql.ends_with("ORDER BY s.name, t.name, c.column_id, qs.name, sq.name"));
        assert!(!sql.contains("definition"), "not by the default's text");
        let before_2017 = sequences(false);
        assert_eq!(before_2017, sql.replace("sq.last_used_value", "sq.current_value"));
    }
}
