//! The undo log: before each change a loader records what it takes to reverse it (the key of
//! an inserted row, the before-image of an updated or deleted row) in `dmf_undo_log`, in the
//! same transaction; rollback replays the log backwards.
//!
//! Before-images are the rows as SQLite stores them (storage class and bytes, every column),
//! so a restored row is exactly the row that was there.

use dmf_core::catalog::TableName;
use dmf_core::{MigrationName, Result, RollbackReport, RunId, Stage, Value};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior, params, params_from_iter};

use crate::{error, sql, types};

/// What a logged change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Insert,
    Update,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// A row as stored: every column with its stored value.
pub(crate) type Image = Vec<(String, Value)>;

fn stored(raw: ValueRef<'_>) -> Value {
    match raw {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// The row with `key` (values of the `key_columns`), as stored, if there is one.
pub(crate) fn image(
    tx: &Connection,
    table: &TableName,
    key_columns: &[String],
    key: &[rusqlite::types::ToSqlOutput<'_>],
) -> rusqlite::Result<Option<Image>> {
    let mut statement = tx.prepare_cached(&sql::select_row(table, key_columns))?;
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let mut rows = statement.query(params_from_iter(key.iter()))?;
    let Some(row) = rows.next()? else { return Ok(None) };
    let mut image = Vec::with_capacity(names.len());
    for (index, name) in names.into_iter().enumerate() {
        image.push((name, stored(row.get_ref(index)?)));
    }
    Ok(Some(image))
}

/// Records one change.
pub(crate) fn record(
    tx: &Connection,
    run: RunId,
    migration: &MigrationName,
    table: &TableName,
    key: &[Value],
    action: Action,
    before: Option<&Image>,
) -> rusqlite::Result<()> {
    let key = serde_json::to_string(key).unwrap_or_default();
    let before = before.map(|image| serde_json::to_string(image).unwrap_or_default());
    tx.prepare_cached(
        "INSERT INTO dmf_undo_log (run_id, migration, table_name, key, action, before_image) VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![run.0, migration.as_str(), table.to_string(), key, action.name(), before])?;
    Ok(())
}

/// Undoes every change `run` made to `table` for `migration`, newest first, in one
/// transaction, then forgets those log entries.
pub(crate) fn rollback(
    connection: &mut Connection,
    table: &TableName,
    key_columns: &[String],
    migration: &MigrationName,
    run: RunId,
) -> Result<RollbackReport> {
    let context = |e| error::map(Stage::Rollback, format!("rolling back `{migration}` of run {run} in `{table}`"), e);
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(context)?;
    // Children and parents are undone in separate migrations; within this table, rows that
    // reference each other are restored in any order and checked at commit.
    tx.execute_batch("PRAGMA defer_foreign_keys = ON").map_err(context)?;
    let entries: Vec<(String, String, Option<String>)> = tx
        .prepare(
            "SELECT key, action, before_image FROM dmf_undo_log WHERE run_id = ? AND migration = ? ORDER BY id DESC",
        )
        .and_then(|mut s| {
            s.query_map(params![run.0, migration.as_str()], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .map_err(context)?;
    let mut report = RollbackReport::default();
    let bad_entry =
        |what: &str| dmf_core::Error::fatal(Stage::Rollback, format!("undo log of `{migration}` (run {run}): {what}"));
    for (key, action, before) in entries {
        let key: Vec<Value> = serde_json::from_str(&key).map_err(|e| bad_entry(&format!("unreadable key: {e}")))?;
        let key_params: Vec<_> = key.iter().map(types::to_sql).collect();
        let image: Option<Image> = before
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| bad_entry(&format!("unreadable before-image: {e}")))?;
        match (action.as_str(), image) {
            ("insert", _) => {
                report.deleted += tx
                    .execute(&sql::delete(table, key_columns), params_from_iter(key_params.iter()))
                    .map_err(context)? as u64;
            }
            ("update", Some(image)) => {
                let columns: Vec<String> = image.iter().map(|(c, _)| c.clone()).collect();
                let values = image.iter().map(|(_, v)| types::to_sql(v));
                let statement = sql::update_all(table, &columns, key_columns);
                tx.execute(&statement, params_from_iter(values.chain(key_params))).map_err(context)?;
                report.restored += 1;
            }
            ("delete", Some(image)) => {
                let columns: Vec<String> = image.iter().map(|(c, _)| c.clone()).collect();
                let values = image.iter().map(|(_, v)| types::to_sql(v));
                tx.execute(&sql::insert(table, &columns), params_from_iter(values)).map_err(context)?;
                report.restored += 1;
            }
            (other, _) => return Err(bad_entry(&format!("unknown action `{other}` or missing before-image"))),
        }
    }
    tx.execute("DELETE FROM dmf_undo_log WHERE run_id = ? AND migration = ?", params![run.0, migration.as_str()])
        .map_err(context)?;
    tx.commit().map_err(context)?;
    Ok(report)
}
