//! The undo log's statements: what a loader records before it writes (inserted keys,
//! before-images of the rows it updates or deletes), and the rollback that replays it.
//!
//! Keys and before-images are JSON objects of each column's *text* form (`col::text`), and come
//! back with `(image->>'col')::type`: PostgreSQL's text input and output round-trip every
//! type exactly (json keeps its spacing, numeric its digits, bytea its bytes), which
//! `to_jsonb(row)` would not (it normalises json). Within one run and migration a key is
//! written at most once, so the log is replayed as sets, not row by row.

use dmf_core::catalog::TableName;
use dmf_core::sync::WriteMode;

use super::load::STAGE;
use super::relation::{RelationKind, relation};
use super::{qualified, quote_ident};

/// A column of the target as the undo log needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableColumn {
    /// Name as stored.
    pub name: String,
    /// `format_type` of its type.
    pub native: String,
    /// `GENERATED ALWAYS AS IDENTITY` (needs `OVERRIDING SYSTEM VALUE` to restore).
    pub identity_always: bool,
}

/// The table's columns that can be written (not generated), with their types and identity.
/// Parameter `$1`: the qualified table name.
pub(crate) const TABLE_COLUMNS: &str = "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity = 'a' \
     FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
     AND a.attgenerated = '' ORDER BY a.attnum";

/// A SQL string literal for an identifier-derived JSON key (`'it''s'`).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `jsonb_build_object('a', p."a"::text, …)` over `columns` of the row alias `alias`.
fn image(alias: &str, columns: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let pairs: Vec<String> = columns
        .into_iter()
        .map(|c| format!("{}, {alias}.{}::text", literal(c.as_ref()), quote_ident(c.as_ref())))
        .collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

fn key_match(key: &[String]) -> String {
    key.iter().map(|k| format!("t.{0} = s.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ")
}

/// Records, from the staged batch and before it is written, what undoes it. Parameters: `$1`
/// run id, `$2` migration, `$3` table name. `changed` is the condition under which an existing
/// row will be updated (`None`: never). `None` when the mode writes nothing to undo. The table's
/// rows are read as [`relation`] names it (an inheritance parent's own rows only).
pub(crate) fn capture(
    table: &TableName,
    kind: RelationKind,
    columns: &[TableColumn],
    key: &[String],
    mode: WriteMode,
    changed: Option<&str>,
) -> Option<String> {
    let target = relation(table, kind);
    let all: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let head = "INSERT INTO dmf.undo_log (run_id, migration, table_name, key, action, before_image)";
    let inserted =
        format!("SELECT $1::bigint, $2::text, $3::text, {}, 'insert', NULL FROM {STAGE} AS s", image("s", key));
    let new_only = format!("{inserted} WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {})", key_match(key));
    let existing = |action: &str, condition: Option<&str>| {
        let filter = condition.map(|c| format!(" AND {c}")).unwrap_or_default();
        format!(
            "SELECT $1::bigint, $2::text, $3::text, {}, '{action}', {} FROM {target} AS t JOIN {STAGE} AS s ON {}{filter}",
            image("t", key),
            image("t", &all),
            key_match(key)
        )
    };
    Some(match (mode, changed) {
        // Insert or skip: run once the stage holds only the rows inserted.
        (WriteMode::Insert | WriteMode::InsertOrSkip, _) => format!("{head} {inserted}"),
        (WriteMode::Upsert, Some(changed)) => {
            format!("{head} {} UNION ALL {new_only}", existing("update", Some(changed)))
        }
        (WriteMode::Upsert, None) => format!("{head} {new_only}"),
        (WriteMode::Update, Some(changed)) => format!("{head} {}", existing("update", Some(changed))),
        (WriteMode::Update, None) => return None,
        (WriteMode::Delete, _) => format!("{head} {}", existing("delete", None)),
    })
}

/// The rollback of one run and migration, in order: delete the inserted rows, restore the
/// updated ones (`None` when every column is a key column), re-insert the deleted ones,
/// forget the entries. Parameters: `$1` run id, `$2` migration.
pub(crate) struct Replay {
    pub delete_inserted: String,
    pub restore_updated: Option<String>,
    pub reinsert_deleted: String,
    pub forget: String,
}

/// See [`Replay`]. Rows are deleted and updated in the table as [`relation`] names it (an
/// inheritance parent's own rows only).
pub(crate) fn replay(table: &TableName, kind: RelationKind, columns: &[TableColumn], key: &[String]) -> Replay {
    let target = relation(table, kind);
    let value = |image: &str, c: &TableColumn| format!("({image}->>{})::{}", literal(&c.name), c.native);
    let by_key = |image: &str| {
        key.iter()
            .filter_map(|k| columns.iter().find(|c| c.name == *k))
            .map(|c| format!("t.{} = {}", quote_ident(&c.name), value(image, c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let entries = |action: &str| format!("u.run_id = $1 AND u.migration = $2 AND u.action = '{action}'");
    let delete_inserted = format!(
        "DELETE FROM {target} AS t USING dmf.undo_log AS u WHERE {} AND {}",
        entries("insert"),
        by_key("u.key")
    );
    let rest: Vec<&TableColumn> = columns.iter().filter(|c| !key.contains(&c.name)).collect();
    let restore_updated = (!rest.is_empty()).then(|| {
        let set: Vec<String> =
            rest.iter().map(|c| format!("{} = {}", quote_ident(&c.name), value("u.before_image", c))).collect();
        format!(
            "UPDATE {target} AS t SET {} FROM dmf.undo_log AS u WHERE {} AND {}",
            set.join(", "),
            entries("update"),
            by_key("u.before_image")
        )
    });
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let values: Vec<String> = columns.iter().map(|c| value("u.before_image", c)).collect();
    let overriding = if columns.iter().any(|c| c.identity_always) { " OVERRIDING SYSTEM VALUE" } else { "" };
    let reinsert_deleted = format!(
        "INSERT INTO {} ({}){overriding} SELECT {} FROM dmf.undo_log AS u WHERE {}",
        qualified(table),
        names.join(", "),
        values.join(", "),
        entries("delete")
    );
    let forget = "DELETE FROM dmf.undo_log WHERE run_id = $1 AND migration = $2".to_owned();
    Replay { delete_inserted, restore_updated, reinsert_deleted, forget }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<TableColumn> {
        vec![
            TableColumn { name: "id".into(), native: "bigint".into(), identity_always: false },
            TableColumn { name: "it's".into(), native: "numeric(38,10)".into(), identity_always: false },
        ]
    }

    fn table() -> TableName {
        TableName::new(Some("public"), "t")
    }

    const ORDINARY: RelationKind = RelationKind::Ordinary { rules: false };

    #[test]
    fn captures_per_mode() {
        let key = vec!["id".to_owned()];
        assert_eq!(
            capture(&table(), ORDINARY, &columns(), &key, WriteMode::Insert, None).unwrap(),
            "INSERT INTO dmf.undo_log (run_id, migration, table_name, key, action, before_image) \
             SELECT $1::bigint, $2::text, $3::text, jsonb_build_object('id', s.\"id\"::text), 'insert', NULL FROM pg_temp.\"dmf_stage\" AS s"
        );
        assert_eq!(
            capture(&table(), ORDINARY, &columns(), &key, WriteMode::Delete, None).unwrap(),
            "INSERT INTO dmf.undo_log (run_id, migration, table_name, key, action, before_image) \
             SELECT $1::bigint, $2::text, $3::text, jsonb_build_object('id', t.\"id\"::text), 'delete', \
             jsonb_build_object('id', t.\"id\"::text, 'it''s', t.\"it's\"::text) \
             FROM ONLY \"public\".\"t\" AS t JOIN pg_temp.\"dmf_stage\" AS s ON t.\"id\" = s.\"id\""
        );
        let upsert =
            capture(&table(), ORDINARY, &columns(), &key, WriteMode::Upsert, Some("(t.x) IS DISTINCT FROM (s.x)"))
                .unwrap();
        assert!(upsert.contains("'update', jsonb_build_object"), "{upsert}");
        assert!(
            upsert.contains("AND (t.x) IS DISTINCT FROM (s.x) UNION ALL SELECT $1::bigint, $2::text, $3::text"),
            "{upsert}"
        );
        assert!(
            upsert.ends_with("WHERE NOT EXISTS (SELECT 1 FROM ONLY \"public\".\"t\" AS t WHERE t.\"id\" = s.\"id\")")
        );
        assert_eq!(capture(&table(), ORDINARY, &columns(), &key, WriteMode::Update, None), None);
    }

    #[test]
    fn replays_as_sets() {
        let key = vec!["id".to_owned()];
        let Replay { delete_inserted: delete, restore_updated, reinsert_deleted: insert, forget } =
            replay(&table(), ORDINARY, &columns(), &key);
        let update = restore_updated.unwrap();
        assert_eq!(
            delete,
            "DELETE FROM ONLY \"public\".\"t\" AS t USING dmf.undo_log AS u WHERE u.run_id = $1 AND u.migration = $2 \
             AND u.action = 'insert' AND t.\"id\" = (u.key->>'id')::bigint"
        );
        assert_eq!(
            update,
            "UPDATE ONLY \"public\".\"t\" AS t SET \"it's\" = (u.before_image->>'it''s')::numeric(38,10) FROM dmf.undo_log AS u \
             WHERE u.run_id = $1 AND u.migration = $2 AND u.action = 'update' AND t.\"id\" = (u.before_image->>'id')::bigint"
        );
        assert_eq!(
            insert,
            "INSERT INTO \"public\".\"t\" (\"id\", \"it's\") SELECT (u.before_image->>'id')::bigint, \
             (u.before_image->>'it''s')::numeric(38,10) FROM dmf.undo_log AS u WHERE u.run_id = $1 AND u.migration = $2 \
             AND u.action = 'delete'"
        );
        assert_eq!(forget, "DELETE FROM dmf.undo_log WHERE run_id = $1 AND migration = $2");
    }
}
