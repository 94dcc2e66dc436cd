//! Writing batches: COPY, the per-connection stage table, upsert, delete, update, emptying
//! tables, and catching sequences up after explicit ids were loaded.

use std::collections::BTreeSet;

use dmf_core::catalog::{Column, DataType, TableName};

use super::relation::{RelationKind, relation};
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

/// (Re)creates the stage table with the loaded columns and their types (no constraints or
/// defaults), emptied at every commit, plus what isolating failing rows needs: `dmf_n`, the
/// row's place in the COPY (an identity, filled in COPY order), `dmf_state` (`inserted`,
/// `skipped`, `failed`, NULL while undecided) and the refused row's `dmf_sqlstate` and
/// `dmf_error`. Three statements, for `batch_execute`.
pub(crate) fn create_stage(table: &TableName, columns: &[Column]) -> String {
    format!(
        "DROP TABLE IF EXISTS {STAGE}; CREATE TEMP TABLE \"dmf_stage\" ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA; \
         ALTER TABLE {STAGE} ADD COLUMN \"dmf_n\" bigint GENERATED ALWAYS AS IDENTITY, ADD COLUMN \"dmf_state\" text, \
         ADD COLUMN \"dmf_sqlstate\" text, ADD COLUMN \"dmf_error\" text",
        column_list(columns.iter().map(|c| c.name.as_str())),
        qualified(table)
    )
}

/// Marks the staged rows whose key the table holds already as `skipped` (insert or skip).
pub(crate) fn mark_existing(table: &TableName, key: &[String]) -> String {
    format!(
        "UPDATE {STAGE} AS s SET \"dmf_state\" = 'skipped' WHERE EXISTS (SELECT 1 FROM {} AS t WHERE {})",
        qualified(table),
        key_match(key)
    )
}

/// Inserts the undecided staged rows in one statement, leaving out every row that conflicts
/// with a unique constraint or an earlier row (`ON CONFLICT DO NOTHING`), and marks the rows
/// inserted (by key; the first of staged rows sharing a key). Rows left undecided are the
/// conflicts.
pub(crate) fn insert_marking(table: &TableName, columns: &[Column], key: &[String]) -> String {
    let names = column_list(columns.iter().map(|c| c.name.as_str()));
    let keys = |prefix: &str| key.iter().map(|k| format!("{prefix}.{}", quote_ident(k))).collect::<Vec<_>>().join(", ");
    format!(
        "WITH ins AS (INSERT INTO {} ({names}){} SELECT {names} FROM {STAGE} WHERE \"dmf_state\" IS NULL \
         ORDER BY \"dmf_n\" ON CONFLICT DO NOTHING RETURNING {}) \
         UPDATE {STAGE} AS u SET \"dmf_state\" = 'inserted' FROM (SELECT DISTINCT ON ({}) s.\"dmf_n\" FROM {STAGE} AS s \
         JOIN ins AS t ON {} WHERE s.\"dmf_state\" IS NULL ORDER BY {}, s.\"dmf_n\") AS f WHERE u.\"dmf_n\" = f.\"dmf_n\"",
        qualified(table),
        overriding(columns),
        column_list(key.iter().map(String::as_str)),
        keys("s"),
        key_match(key),
        keys("s"),
    )
}

/// Inserts the undecided staged rows with a plain `INSERT … SELECT`: the statement that
/// raises the error of the first refused row, when refused rows are not isolated.
pub(crate) fn insert_undecided(table: &TableName, columns: &[Column]) -> String {
    let names = column_list(columns.iter().map(|c| c.name.as_str()));
    format!(
        "INSERT INTO {} ({names}){} SELECT {names} FROM {STAGE} WHERE \"dmf_state\" IS NULL ORDER BY \"dmf_n\"",
        qualified(table),
        overriding(columns)
    )
}

/// The dollar-quote tag of [`insert_each`].
const EACH_TAG: &str = "$dmf_each$";

/// A `DO` block inserting the undecided staged rows one at a time, each in a subtransaction
/// (a `BEGIN … EXCEPTION` block): a row the table refuses is marked `failed` with its
/// SQLSTATE and message, the others `inserted`. Run on the server, in one round trip; no value
/// appears in its text (rows are read from the stage). Each row is marked by its `ctid` (a
/// direct fetch: the stage has no index, and a search by `dmf_n` would scan it for every
/// row). `None` when an identifier holds the block's dollar-quote tag.
pub(crate) fn insert_each(table: &TableName, columns: &[Column]) -> Option<String> {
    let names = column_list(columns.iter().map(|c| c.name.as_str()));
    if names.contains(EACH_TAG) || qualified(table).contains(EACH_TAG) {
        return None;
    }
    let values: Vec<String> = columns.iter().map(|c| format!("r.{}", quote_ident(&c.name))).collect();
    Some(format!(
        "DO {EACH_TAG} DECLARE r record; detail text; BEGIN \
         FOR r IN SELECT ctid AS \"dmf_ctid\", {names} FROM {STAGE} WHERE \"dmf_state\" IS NULL ORDER BY \"dmf_n\" LOOP \
         BEGIN \
         INSERT INTO {} ({names}){} VALUES ({}); \
         UPDATE {STAGE} SET \"dmf_state\" = 'inserted' WHERE ctid = r.\"dmf_ctid\"; \
         EXCEPTION WHEN OTHERS THEN \
         GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL; \
         UPDATE {STAGE} SET \"dmf_state\" = 'failed', \"dmf_sqlstate\" = SQLSTATE, \
         \"dmf_error\" = SQLERRM || coalesce('; detail: ' || nullif(detail, ''), '') WHERE ctid = r.\"dmf_ctid\"; \
         END; \
         END LOOP; END {EACH_TAG}",
        qualified(table),
        overriding(columns),
        values.join(", ")
    ))
}

/// How the staged rows were decided: inserted, skipped, still undecided.
pub(crate) const STAGE_COUNTS: &str = "SELECT count(*) FILTER (WHERE \"dmf_state\" = 'inserted'), \
     count(*) FILTER (WHERE \"dmf_state\" = 'skipped'), count(*) FILTER (WHERE \"dmf_state\" IS NULL) \
     FROM pg_temp.\"dmf_stage\"";

/// The refused rows: their place in the batch (from 0), SQLSTATE and message, in batch order.
pub(crate) const STAGE_FAILURES: &str = "SELECT s.\"dmf_n\" - m.first, s.\"dmf_sqlstate\", s.\"dmf_error\" \
     FROM pg_temp.\"dmf_stage\" AS s, (SELECT min(\"dmf_n\") AS first FROM pg_temp.\"dmf_stage\") AS m \
     WHERE s.\"dmf_state\" = 'failed' ORDER BY s.\"dmf_n\"";

/// Leaves in the stage only the rows inserted, for the undo log to record their keys.
pub(crate) const STAGE_KEEP_INSERTED: &str =
    "DELETE FROM pg_temp.\"dmf_stage\" WHERE \"dmf_state\" IS DISTINCT FROM 'inserted'";

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

/// How a batch is upserted from the stage into a table of some [`RelationKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// One statement that returns one row, `(inserted, updated)`.
    Counted(String),
    /// A table with `INSERT` or `UPDATE` rules, which refuse `ON CONFLICT` and `RETURNING`: the
    /// update of existing rows that differ (`None`: every column is a key column), then the
    /// insert of the keys the table lacks, each counted by its row count.
    Separate {
        /// `UPDATE ONLY t … FROM` the stage.
        update: Option<String>,
        /// `INSERT INTO t … SELECT …` the staged rows whose key `ONLY t` lacks.
        insert: String,
    },
}

/// Inserts the staged rows, updating existing keys whose values differ (see [`Upsert`]).
/// Columns in `keep` are written for new rows only (on existing rows a later pass sets them);
/// an identity column is written with `OVERRIDING SYSTEM VALUE`.
///
/// An ordinary table tells new rows from updated ones by `xmax = 0` in `RETURNING`. A
/// partitioned table has no system column to return (`cannot retrieve a system column in this
/// context`): the staged keys it lacks are counted first, in the same statement and snapshot,
/// and the rest of the rows written are the updated ones.
pub(crate) fn upsert(
    table: &TableName,
    kind: RelationKind,
    columns: &[Column],
    key: &[String],
    keep: &BTreeSet<String>,
) -> Upsert {
    let names = column_list(columns.iter().map(|c| c.name.as_str()));
    let updated: Vec<&Column> = columns.iter().filter(|c| !key.contains(&c.name) && !keep.contains(&c.name)).collect();
    if let RelationKind::Ordinary { rules: true } = kind {
        let target = relation(table, kind);
        let update = (!updated.is_empty()).then(|| {
            let set: Vec<String> = updated.iter().map(|c| format!("{0} = s.{0}", quote_ident(&c.name))).collect();
            format!(
                "UPDATE {target} AS t SET {} FROM {STAGE} AS s WHERE {} AND {}",
                set.join(", "),
                key_match(key),
                differs("t", "s", &updated)
            )
        });
        let selected: Vec<String> = columns.iter().map(|c| format!("s.{}", quote_ident(&c.name))).collect();
        let insert = format!(
            "INSERT INTO {} ({names}){} SELECT {} FROM {STAGE} AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {})",
            qualified(table),
            overriding(columns),
            selected.join(", "),
            key_match(key)
        );
        return Upsert::Separate { update, insert };
    }
    let on_conflict = if updated.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        let set: Vec<String> = updated.iter().map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name))).collect();
        format!("DO UPDATE SET {} WHERE {}", set.join(", "), differs("t", "EXCLUDED", &updated))
    };
    let write = format!(
        "INSERT INTO {} AS t ({names}){} SELECT {names} FROM {STAGE} ON CONFLICT ({}) {on_conflict}",
        qualified(table),
        overriding(columns),
        column_list(key.iter().map(String::as_str)),
    );
    Upsert::Counted(match kind {
        RelationKind::Partitioned => format!(
            "WITH fresh AS (SELECT count(*) AS n FROM {STAGE} AS s WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})), \
             written AS ({write} RETURNING 1) \
             SELECT fresh.n, (SELECT count(*) FROM written) - fresh.n FROM fresh",
            relation(table, kind),
            key_match(key)
        ),
        RelationKind::Ordinary { .. } => format!(
            "WITH written AS ({write} RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
        ),
    })
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

/// Deletes the rows whose keys are staged (`relation`: see [`relation`]).
pub(crate) fn delete(relation: &str, key: &[String]) -> String {
    format!("DELETE FROM {relation} AS t USING {STAGE} AS s WHERE {}", key_match(key))
}

/// Updates the non-key columns of existing rows from the stage where they differ; `None`
/// when every column is a key column (nothing to update). `relation`: see [`relation`].
pub(crate) fn update(relation: &str, columns: &[Column], key: &[String]) -> Option<String> {
    let updated: Vec<&Column> = columns.iter().filter(|c| !key.contains(&c.name)).collect();
    if updated.is_empty() {
        return None;
    }
    let set: Vec<String> = updated.iter().map(|c| format!("{0} = s.{0}", quote_ident(&c.name))).collect();
    Some(format!(
        "UPDATE {relation} AS t SET {} FROM {STAGE} AS s WHERE {} AND {}",
        set.join(", "),
        key_match(key),
        differs("t", "s", &updated)
    ))
}

/// `SELECT count(*)` of every relation (named as [`relation`] names them), summed: the rows a
/// truncate removes.
pub(crate) fn count_all(relations: &[String]) -> String {
    let counts: Vec<String> = relations.iter().map(|r| format!("(SELECT count(*) FROM {r})")).collect();
    format!("SELECT {}", counts.join(" + "))
}

/// Empties `relations` (named as [`relation`] names them: an inheritance parent `ONLY`, so its
/// children keep their rows) in one statement. Without `CASCADE`: PostgreSQL refuses when a
/// table outside the list references one of them, rather than silently emptying more.
pub(crate) fn truncate(relations: &[String]) -> String {
    format!("TRUNCATE TABLE {}", relations.join(", "))
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
    fn stage_has_the_loaded_columns_and_the_row_decisions() {
        assert_eq!(
            create_stage(&table(), &columns()[..2]),
            r#"DROP TABLE IF EXISTS pg_temp."dmf_stage"; CREATE TEMP TABLE "dmf_stage" ON COMMIT DELETE ROWS AS SELECT "id", "select" FROM "shop"."Order" WITH NO DATA; ALTER TABLE pg_temp."dmf_stage" ADD COLUMN "dmf_n" bigint GENERATED ALWAYS AS IDENTITY, ADD COLUMN "dmf_state" text, ADD COLUMN "dmf_sqlstate" text, ADD COLUMN "dmf_error" text"#
        );
    }

    #[test]
    fn staged_inserts_decide_each_row_without_values_in_the_text() {
        let key = ["id".to_owned()];
        assert_eq!(
            mark_existing(&table(), &key),
            r#"UPDATE pg_temp."dmf_stage" AS s SET "dmf_state" = 'skipped' WHERE EXISTS (SELECT 1 FROM "shop"."Order" AS t WHERE t."id" = s."id")"#
        );
        assert_eq!(
            insert_marking(&table(), &columns()[..2], &key),
            r#"WITH ins AS (INSERT INTO "shop"."Order" ("id", "select") OVERRIDING SYSTEM VALUE SELECT "id", "select" FROM pg_temp."dmf_stage" WHERE "dmf_state" IS NULL ORDER BY "dmf_n" ON CONFLICT DO NOTHING RETURNING "id") UPDATE pg_temp."dmf_stage" AS u SET "dmf_state" = 'inserted' FROM (SELECT DISTINCT ON (s."id") s."dmf_n" FROM pg_temp."dmf_stage" AS s JOIN ins AS t ON t."id" = s."id" WHERE s."dmf_state" IS NULL ORDER BY s."id", s."dmf_n") AS f WHERE u."dmf_n" = f."dmf_n""#
        );
        let each = insert_each(&table(), &columns()[..2]).unwrap();
        assert!(each.starts_with("DO $dmf_each$ DECLARE r record;"), "{each}");
        assert!(
            each.contains(
                r#"INSERT INTO "shop"."Order" ("id", "select") OVERRIDING SYSTEM VALUE VALUES (r."id", r."select");"#
            ),
            "{each}"
        );
        let tricky = TableName::new(None, "a$dmf_each$b");
        assert_eq!(insert_each(&tricky, &columns()[..1]), None, "a name holding the quote tag is refused");
    }

    const ORDINARY: RelationKind = RelationKind::Ordinary { rules: false };

    #[test]
    fn upsert_updates_only_rows_that_differ_and_counts_both() {
        let keep = BTreeSet::from(["parent".to_owned()]);
        assert_eq!(
            upsert(&table(), ORDINARY, &columns(), &["id".into()], &keep),
            Upsert::Counted(
                "WITH written AS (INSERT INTO \"shop\".\"Order\" AS t (\"id\", \"select\", \"doc\", \"parent\") \
             OVERRIDING SYSTEM VALUE SELECT \"id\", \"select\", \"doc\", \"parent\" FROM pg_temp.\"dmf_stage\" \
             ON CONFLICT (\"id\") DO UPDATE SET \"select\" = EXCLUDED.\"select\", \"doc\" = EXCLUDED.\"doc\" \
             WHERE (t.\"select\", t.\"doc\"::text) IS DISTINCT FROM (EXCLUDED.\"select\", EXCLUDED.\"doc\"::text) \
             RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_partitioned_table_counts_new_keys_first_instead_of_returning_xmax() {
        let columns = vec![Column::new("day", DataType::Date, "date"), Column::new("v", DataType::Int32, "integer")];
        let key = ["day".to_owned()];
        assert_eq!(
            upsert(&table(), RelationKind::Partitioned, &columns, &key, &BTreeSet::new()),
            Upsert::Counted(
                "WITH fresh AS (SELECT count(*) AS n FROM pg_temp.\"dmf_stage\" AS s WHERE NOT EXISTS \
                 (SELECT 1 FROM \"shop\".\"Order\" AS t WHERE t.\"day\" = s.\"day\")), \
                 written AS (INSERT INTO \"shop\".\"Order\" AS t (\"day\", \"v\") SELECT \"day\", \"v\" FROM pg_temp.\"dmf_stage\" \
                 ON CONFLICT (\"day\") DO UPDATE SET \"v\" = EXCLUDED.\"v\" WHERE (t.\"v\") IS DISTINCT FROM (EXCLUDED.\"v\") \
                 RETURNING 1) \
                 SELECT fresh.n, (SELECT count(*) FROM written) - fresh.n FROM fresh"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_table_with_rules_is_upserted_without_on_conflict_or_returning() {
        let columns = vec![Column::new("id", DataType::Int32, "integer"), Column::new("v", DataType::Int32, "integer")];
        let key = ["id".to_owned()];
        assert_eq!(
            upsert(&table(), RelationKind::Ordinary { rules: true }, &columns, &key, &BTreeSet::new()),
            Upsert::Separate {
                update: Some(
                    "UPDATE ONLY \"shop\".\"Order\" AS t SET \"v\" = s.\"v\" FROM pg_temp.\"dmf_stage\" AS s \
                     WHERE t.\"id\" = s.\"id\" AND (t.\"v\") IS DISTINCT FROM (s.\"v\")"
                        .to_owned()
                ),
                insert: "INSERT INTO \"shop\".\"Order\" (\"id\", \"v\") SELECT s.\"id\", s.\"v\" FROM pg_temp.\"dmf_stage\" AS s \
                         WHERE NOT EXISTS (SELECT 1 FROM ONLY \"shop\".\"Order\" AS t WHERE t.\"id\" = s.\"id\")"
                    .to_owned(),
            }
        );
    }

    #[test]
    fn upsert_of_key_only_rows_does_nothing_on_conflict() {
        let columns = vec![Column::new("a", DataType::Int32, "integer"), Column::new("b", DataType::Int32, "integer")];
        assert_eq!(
            upsert(&TableName::new(None, "pairs"), ORDINARY, &columns, &["a".into(), "b".into()], &BTreeSet::new()),
            Upsert::Counted("WITH written AS (INSERT INTO \"pairs\" AS t (\"a\", \"b\") SELECT \"a\", \"b\" FROM pg_temp.\"dmf_stage\" \
             ON CONFLICT (\"a\", \"b\") DO NOTHING RETURNING (xmax = 0) AS inserted) \
             SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
                .to_owned())
        );
    }

    #[test]
    fn delete_and_update_join_the_stage_by_key() {
        let key = ["id".to_owned(), "line".to_owned()];
        assert_eq!(
            delete(&relation(&table(), ORDINARY), &key),
            r#"DELETE FROM ONLY "shop"."Order" AS t USING pg_temp."dmf_stage" AS s WHERE t."id" = s."id" AND t."line" = s."line""#
        );
        assert_eq!(
            update(&relation(&table(), ORDINARY), &columns()[..2], &key[..1]).unwrap(),
            r#"UPDATE ONLY "shop"."Order" AS t SET "select" = s."select" FROM pg_temp."dmf_stage" AS s WHERE t."id" = s."id" AND (t."select") IS DISTINCT FROM (s."select")"#
        );
        assert_eq!(update(&qualified(&table()), &columns()[..1], &key[..1]), None);
    }

    #[test]
    fn truncate_lists_the_tables_without_cascade() {
        let tables = [
            relation(&TableName::new(Some("public"), "lines"), ORDINARY),
            relation(&TableName::new(Some("public"), "user"), RelationKind::Partitioned),
        ];
        assert_eq!(truncate(&tables), r#"TRUNCATE TABLE ONLY "public"."lines", "public"."user""#);
        assert_eq!(
            count_all(&tables),
            r#"SELECT (SELECT count(*) FROM ONLY "public"."lines") + (SELECT count(*) FROM "public"."user")"#
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
