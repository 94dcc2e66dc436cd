//! Writing batches: COPY, the per-connection stage table, upsert, delete, update, emptying
//! tables, and catching sequences up after explicit ids were loaded.

use std::collections::BTreeSet;

use dmf_core::catalog::{Column, DataType, TableName};

use super::{column_list, qualified, quote_ident};
use crate::copy::CopyFormat;

/// The stage table of a loader's connection (a temporary table: private to the session).
pub(crate) const STAGE: &str = "pg_temp.\"dmf_stage\"";

/// `COPY relation (cols) FROM STDIN (FORMAT text|binary)`; `relation` is already quoted.
pub(crate) fn copy_in(relation: &str, columns: &[Column], format: CopyFormat) -> String {
    format!("COPY {relation} ({}) FROM STDIN (FORMAT {format})", column_list(columns.iter().map(|c| c.name.as_str())))
}

/// `SELECT cols FROM table LIMIT 0`, prepared (never run) for the columns' types: PostgreSQL
/// describes a domain column by its base type, as binary COPY receives it.
pub(crate) fn column_types(table: &TableName, columns: &[Column]) -> String {
    format!("SELECT {} FROM {} LIMIT 0", column_list(columns.iter().map(|c| c.name.as_str())), qualified(table))
}

/// (Re)creates the stage table with exactly the loaded columns and their types (no
/// constraints, defaults or identity), emptied at every commit. Two statements, for
/// `batch_execute`.
pub(crate) fn create_stage(table: &TableName, columns: &[Column]) -> String {
    format!(
        "DROP TABLE IF EXISTS {STAGE}; CREATE TEMP TABLE \"dmf_stage\" ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA",
        column_list(columns.iter().map(|c| c.name.as_str())),
        qualified(table)
    )
}

/// Types without an equality operator (json, and anything DMF has no neutral type for) are
/// compared by their text.
fn comparable(prefix: &str, column: &Column) -> String {
    let by_text = match &column.data_type {
        DataType::Other(_) => true,
        DataType::Json => column.native_type == "json",
        _ => false,
    };
    let expr = format!("{prefix}.{}", quote_ident(&column.name));
    if by_text { format!("{expr}::text") } else { expr }
}

/// `(t."a", t."b") IS DISTINCT FROM (s."a", s."b")`.
fn differs(left: &str, right: &str, columns: &[&Column]) -> String {
    let side = |prefix| columns.iter().map(|c| comparable(prefix, c)).collect::<Vec<_>>().join(", ");
    format!("({}) IS DISTINCT FROM ({})", side(left), side(right))
}

fn overriding(columns: &[Column]) -> &'static str {
    if columns.iter().any(|c| c.identity) { " OVERRIDING SYSTEM VALUE" } else { "" }
}

/// Inserts the staged rows, updating existing keys whose values differ, and returns one row:
/// `(inserted, updated)`. Columns in `keep` are written for new rows only (on existing rows a
/// later pass sets them); an identity column is written with `OVERRIDING SYSTEM VALUE`.
pub(crate) fn upsert(table: &TableName, columns: &[Column], key: &[String], keep: &BTreeSet<String>) -> String {
    let names = column_list(columns.iter().map(|c| c.name.as_str()));
    let updated: Vec<&Column> = columns.iter().filter(|c| !key.contains(&c.name) && !keep.contains(&c.name)).collect();
    let on_conflict = if updated.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        let set: Vec<String> = updated.iter().map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name))).collect();
        format!("DO UPDATE SET {} WHERE {}", set.join(", "), differs("t", "EXCLUDED", &updated))
    };
    format!(
        "WITH written AS (INSERT INTO {} AS t ({names}){} SELECT {names} FROM {STAGE} ON CONFLICT ({}) {on_conflict} \
         RETURNING (xmax = 0) AS inserted) \
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
        qualified(table),
        overriding(columns),
        column_list(key.iter().map(String::as_str)),
    )
}

/// The condition under which an upsert or update changes an existing row `t` from the staged
/// row `s` (`None`: it never does), for the undo log.
pub(crate) fn changed(columns: &[Column], key: &[String], keep: &BTreeSet<String>) -> Option<String> {
    let updated: Vec<&Column> = columns.iter().filter(|c| !key.contains(&c.name) && !keep.contains(&c.name)).collect();
    (!updated.is_empty()).then(|| differs("t", "s", &updated))
}

/// Inserts the staged rows (plain inserts that keep an undo log go through the stage).
pub(crate) fn insert_from_stage(table: &TableName, columns: &[Column]) -> String {
    let names = column_list(columns.iter().map(|c| c.name.as_str()));
    format!("INSERT INTO {} ({names}){} SELECT {names} FROM {STAGE}", qualified(table), overriding(columns))
}

fn key_match(key: &[String]) -> String {
    key.iter().map(|k| format!("t.{0} = s.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ")
}

/// Deletes the rows whose keys are staged.
pub(crate) fn delete(table: &TableName, key: &[String]) -> String {
    format!("DELETE FROM {} AS t USING {STAGE} AS s WHERE {}", qualified(table), key_match(key))
}

/// Updates the non-key columns of existing rows from the stage where they differ; `None`
/// when every column is a key column (nothing to update).
pub(crate) fn update(table: &TableName, columns: &[Column], key: &[String]) -> Option<String> {
    let updated: Vec<&Column> = columns.iter().filter(|c| !key.contains(&c.name)).collect();
    if updated.is_empty() {
        return None;
    }
    let set: Vec<String> = updated.iter().map(|c| format!("{0} = s.{0}", quote_ident(&c.name))).collect();
    Some(format!(
        "UPDATE {} AS t SET {} FROM {STAGE} AS s WHERE {} AND {}",
        qualified(table),
        set.join(", "),
        key_match(key),
        differs("t", "s", &updated)
    ))
}

/// Empties `tables` in one statement. Without `CASCADE`: PostgreSQL refuses when a table
/// outside the list references one of them, rather than silently emptying more.
/// `SELECT count(*)` of every table, summed (the rows a truncate removes).
pub(crate) fn count_all(tables: &[TableName]) -> String {
    let counts: Vec<String> = tables.iter().map(|t| format!("(SELECT count(*) FROM {})", qualified(t))).collect();
    format!("SELECT {}", counts.join(" + "))
}

pub(crate) fn truncate(tables: &[TableName]) -> String {
    format!("TRUNCATE TABLE {}", tables.iter().map(qualified).collect::<Vec<_>>().join(", "))
}

/// Moves the sequence behind an identity or serial column past the largest value loaded, so
/// the target's own inserts do not collide with copied ids. Never moves it back. Parameters:
/// `$1` the quoted qualified table name, `$2` the column name as stored.
pub(crate) fn sequence_catch_up(table: &TableName, column: &str) -> String {
    format!(
        "SELECT setval(s.seq, m.top) FROM (SELECT pg_get_serial_sequence($1, $2) AS seq) s, \
         (SELECT max({})::bigint AS top FROM {}) m \
         WHERE s.seq IS NOT NULL AND m.top IS NOT NULL AND m.top > coalesce(pg_sequence_last_value(s.seq::regclass), 0)",
        quote_ident(column),
        qualified(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName::new(Some("shop"), "Order")
    }

    fn columns() -> Vec<Column> {
        let mut id = Column::new("id", DataType::Int64, "bigint").not_null();
        id.identity = true;
        vec![
            id,
            Column::new("select", DataType::Text { max_len: None }, "text"),
            Column::new("doc", DataType::Json, "json"),
            Column::new("parent", DataType::Int64, "bigint"),
        ]
    }

    #[test]
    fn copy_names_every_column() {
        assert_eq!(
            copy_in(&qualified(&table()), &columns(), CopyFormat::Text),
            r#"COPY "shop"."Order" ("id", "select", "doc", "parent") FROM STDIN (FORMAT text)"#
        );
        assert_eq!(
            copy_in(STAGE, &columns()[..1], CopyFormat::Binary),
            r#"COPY pg_temp."dmf_stage" ("id") FROM STDIN (FORMAT binary)"#
        );
        assert_eq!(column_types(&table(), &columns()[..2]), r#"SELECT "id", "select" FROM "shop"."Order" LIMIT 0"#);
    }

    #[test]
    fn stage_has_the_loaded_columns_only() {
        assert_eq!(
            create_stage(&table(), &columns()[..2]),
            r#"DROP TABLE IF EXISTS pg_temp."dmf_stage"; CREATE TEMP TABLE "dmf_stage" ON COMMIT DELETE ROWS AS SELECT "id", "select" FROM "shop"."Order" WITH NO DATA"#
        );
    }

    #[test]
    fn upsert_updates_only_rows_that_differ_and_counts_both() {
        let keep = BTreeSet::from(["parent".to_owned()]);
        assert_eq!(
            upsert(&table(), &columns(), &["id".into()], &keep),
            "WITH written AS (INSERT INTO \"shop\".\"Order\" AS t (\"id\", \"select\", \"doc\", \"parent\") \
             OVERRIDING SYSTEM VALUE SELECT \"id\", \"select\", \"doc\", \"parent\" FROM pg_temp.\"dmf_stage\" \
             ON CONFLICT (\"id\") DO UPDATE SET \"select\" = EXCLUDED.\"select\", \"doc\" = EXCLUDED.\"doc\" \
             WHERE (t.\"select\", t.\"doc\"::text) IS DISTINCT FROM (EXCLUDED.\"select\", EXCLUDED.\"doc\"::text) \
             RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
        );
    }

    #[test]
    fn upsert_of_key_only_rows_does_nothing_on_conflict() {
        let columns = vec![Column::new("a", DataType::Int32, "integer"), Column::new("b", DataType::Int32, "integer")];
        assert_eq!(
            upsert(&TableName::new(None, "pairs"), &columns, &["a".into(), "b".into()], &BTreeSet::new()),
            "WITH written AS (INSERT INTO \"pairs\" AS t (\"a\", \"b\") SELECT \"a\", \"b\" FROM pg_temp.\"dmf_stage\" \
             ON CONFLICT (\"a\", \"b\") DO NOTHING RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
        );
    }

    #[test]
    fn delete_and_update_join_the_stage_by_key() {
        let key = ["id".to_owned(), "line".to_owned()];
        assert_eq!(
            delete(&table(), &key),
            r#"DELETE FROM "shop"."Order" AS t USING pg_temp."dmf_stage" AS s WHERE t."id" = s."id" AND t."line" = s."line""#
        );
        assert_eq!(
            update(&table(), &columns()[..2], &key[..1]).unwrap(),
            r#"UPDATE "shop"."Order" AS t SET "select" = s."select" FROM pg_temp."dmf_stage" AS s WHERE t."id" = s."id" AND (t."select") IS DISTINCT FROM (s."select")"#
        );
        assert_eq!(update(&table(), &columns()[..1], &key[..1]), None);
    }

    #[test]
    fn truncate_lists_the_tables_without_cascade() {
        let tables = [TableName::new(Some("public"), "lines"), TableName::new(Some("public"), "user")];
        assert_eq!(truncate(&tables), r#"TRUNCATE TABLE "public"."lines", "public"."user""#);
        assert_eq!(
            count_all(&tables),
            r#"SELECT (SELECT count(*) FROM "public"."lines") + (SELECT count(*) FROM "public"."user")"#
        );
    }

    #[test]
    fn sequences_only_move_forward() {
        assert_eq!(
            sequence_catch_up(&table(), "id"),
            "SELECT setval(s.seq, m.top) FROM (SELECT pg_get_serial_sequence($1, $2) AS seq) s, \
             (SELECT max(\"id\")::bigint AS top FROM \"shop\".\"Order\") m \
             WHERE s.seq IS NOT NULL AND m.top IS NOT NULL AND m.top > coalesce(pg_sequence_last_value(s.seq::regclass), 0)"
        );
    }
}
