//! Reads a SQLite database's tables into DMF's catalog model.

use std::collections::BTreeMap;

use dmf_core::catalog::{Catalog, Column, ForeignKey, Sequence, SequenceKind, Table, TableName, Trigger, TriggerEvent};
use rusqlite::{Connection, OptionalExtension};

use crate::{sql, types};

/// Every user table with its columns, keys and foreign keys (DMF's `dmf_` control tables and
/// SQLite's own tables left out).
pub fn read_catalog(connection: &Connection) -> rusqlite::Result<Catalog> {
    let names: Vec<String> =
        connection.prepare(sql::USER_TABLES)?.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut tables = Vec::with_capacity(names.len());
    for name in &names {
        tables.push(read_table(connection, name)?);
    }
    // Foreign keys that name no columns reference the parent's primary key.
    let primary_keys: BTreeMap<String, Vec<String>> =
        tables.iter().map(|t: &Table| (t.name.name.clone(), t.primary_key.clone())).collect();
    for table in &mut tables {
        for fk in &mut table.foreign_keys {
            if fk.referenced_columns.iter().any(String::is_empty) {
                if let Some(pk) = primary_keys.get(&fk.referenced_table.name) {
                    fk.referenced_columns = pk.clone();
                }
            }
        }
    }
    Ok(Catalog { tables })
}

pub(crate) fn read_table(connection: &Connection, name: &str) -> rusqlite::Result<Table> {
    let mut columns = Vec::new();
    let mut key: Vec<(i64, String)> = Vec::new();
    let mut statement = connection.prepare(&sql::table_info(name))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let column_name: String = row.get("name")?;
        let declared: String = row.get::<_, Option<String>>("type")?.unwrap_or_default();
        let pk: i64 = row.get("pk")?;
        let hidden: i64 = row.get("hidden")?;
        if pk > 0 {
            key.push((pk, column_name.clone()));
        }
        columns.push(Column {
            data_type: types::data_type(&declared),
            native_type: declared,
            nullable: row.get::<_, i64>("notnull")? == 0 && pk == 0,
            default: row.get("dflt_value")?,
            identity: false,
            generated: hidden == 2 || hidden == 3,
            name: column_name,
        });
    }
    key.sort();
    let primary_key: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
    // A single INTEGER PRIMARY KEY is the rowid: SQLite fills it when it is not given.
    if let [only] = primary_key.as_slice() {
        if let Some(column) = columns.iter_mut().find(|c| &c.name == only) {
            column.identity = column.native_type.eq_ignore_ascii_case("INTEGER");
        }
    }
    Ok(Table {
        name: TableName::new(None, name),
        unique_keys: unique_keys(connection, name)?,
        foreign_keys: foreign_keys(connection, name)?,
        columns,
        primary_key,
    })
}

fn unique_keys(connection: &Connection, table: &str) -> rusqlite::Result<Vec<Vec<String>>> {
    let mut keys = Vec::new();
    let indexes: Vec<(String, i64, String, i64)> = connection
        .prepare(&sql::index_list(table))?
        .query_map([], |row| Ok((row.get("name")?, row.get("unique")?, row.get("origin")?, row.get("partial")?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (index, unique, origin, partial) in indexes {
        if unique == 0 || partial != 0 || origin == "pk" {
            continue;
        }
        let mut columns: Vec<(i64, Option<String>)> = connection
            .prepare(&sql::index_info(&index))?
            .query_map([], |row| Ok((row.get("seqno")?, row.get("name")?)))?
            .collect::<rusqlite::Result<_>>()?;
        columns.sort();
        // An index on an expression has no column name: it is no row key.
        if let Some(names) = columns.into_iter().map(|(_, name)| name).collect::<Option<Vec<_>>>() {
            keys.push(names);
        }
    }
    Ok(keys)
}

fn foreign_keys(connection: &Connection, table: &str) -> rusqlite::Result<Vec<ForeignKey>> {
    let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    let mut statement = connection.prepare(&sql::foreign_keys(table))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get("id")?;
        let parent: String = row.get("table")?;
        let from: String = row.get("from")?;
        let to: Option<String> = row.get("to")?;
        let fk = by_id.entry(id).or_insert_with(|| ForeignKey {
            name: String::new(),
            columns: Vec::new(),
            referenced_table: TableName::new(None, &parent),
            referenced_columns: Vec::new(),
            enforced: true,
        });
        fk.columns.push(from);
        fk.referenced_columns.push(to.unwrap_or_default());
    }
    // SQLite does not report constraint names: name them as PostgreSQL names unnamed ones.
    Ok(by_id
        .into_values()
        .map(|mut fk| {
            fk.name = format!("{table}_{}_fkey", fk.columns.join("_"));
            fk
        })
        .collect())
}

/// The `AUTOINCREMENT` counters of `tables` (table counters named after their table), with
/// the value `sqlite_sequence` holds for each (none before the table's first insert).
pub(crate) fn sequences(connection: &Connection, tables: &[TableName]) -> rusqlite::Result<Vec<Sequence>> {
    let counted: Vec<String> = connection
        .prepare(sql::AUTOINCREMENT_TABLES)?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut sequences = Vec::new();
    for table in tables.iter().filter(|t| counted.contains(&t.name)) {
        let column = read_table(connection, &table.name)?.primary_key.first().cloned();
        let last_value: Option<i64> =
            connection.query_row(sql::SEQUENCE_VALUE, [&table.name], |row| row.get(0)).optional()?;
        let name = TableName::new(None, &table.name);
        sequences.push(Sequence {
            name: name.clone(),
            kind: SequenceKind::TableCounter,
            table: name,
            column,
            last_value,
        });
    }
    Ok(sequences)
}

/// The triggers on `tables`, read from `sqlite_schema` and their `CREATE TRIGGER` text
/// (SQLite keeps no other record of when they fire). SQLite cannot skip a trigger in a
/// session: each fires whatever the connection does.
pub(crate) fn triggers(connection: &Connection, tables: &[TableName]) -> rusqlite::Result<Vec<Trigger>> {
    let rows: Vec<(String, String, String)> = connection
        .prepare(sql::TRIGGERS)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(table, name, text)| {
            let table = tables.iter().find(|t| t.name == table)?.clone();
            let (timing, event) = trigger_timing_and_event(&text)?;
            Some(Trigger {
                table,
                name,
                timing: timing.to_owned(),
                events: [event].into(),
                fires: true,
                fires_when_skipped: true,
            })
        })
        .collect())
}

/// `BEFORE`/`AFTER`/`INSTEAD OF` (`BEFORE` when the statement names none, as SQLite does) and
/// the operation, from a `CREATE TRIGGER` statement; `None` when it cannot be read.
fn trigger_timing_and_event(text: &str) -> Option<(&'static str, TriggerEvent)> {
    let words = sql_words(text);
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let mut i = upper.iter().position(|w| w == "TRIGGER")? + 1;
    if upper.get(i..i + 3).is_some_and(|w| w == ["IF", "NOT", "EXISTS"]) {
        i += 3;
    }
    i += 1; // the trigger's name
    let timing = match upper.get(i).map(String::as_str) {
        Some("BEFORE") => {
            i += 1;
            "BEFORE"
        }
        Some("AFTER") => {
            i += 1;
            "AFTER"
        }
        Some("INSTEAD") => {
            i += 2;
            "INSTEAD OF"
        }
        _ => "BEFORE",
    };
    let event = match upper.get(i).map(String::as_str)? {
        "INSERT" => TriggerEvent::Insert,
        "UPDATE" => TriggerEvent::Update,
        "DELETE" => TriggerEvent::Delete,
        _ => return None,
    };
    Some((timing, event))
}

/// The words of an SQL statement, a quoted identifier (`"…"`, `[…]`, `` `…` ``) as one word
/// whatever it holds.
fn sql_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let close = match rest.as_bytes()[0] {
            b'"' => Some('"'),
            b'[' => Some(']'),
            b'`' => Some('`'),
            _ => None,
        };
        let end = match close {
            Some(close) => rest[1..].find(close).map_or(rest.len(), |i| i + 2),
            None => rest.find(|c: char| c.is_whitespace() || c == '(' || c == ';').unwrap_or(rest.len()).max(1),
        };
        words.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    words
}

/// Sets the `AUTOINCREMENT` counters of `sequences` in `transaction`: the row of
/// `sqlite_sequence` replaced by one holding the value, or removed for none.
pub(crate) fn set_sequences(transaction: &rusqlite::Transaction<'_>, sequences: &[Sequence]) -> rusqlite::Result<()> {
    for sequence in sequences {
        transaction.execute(sql::SEQUENCE_FORGET, [&sequence.name.name])?;
        if let Some(value) = sequence.last_value {
            transaction.execute(sql::SEQUENCE_SET, rusqlite::params![sequence.name.name, value])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_statement_gives_its_timing_and_operation() {
        let read = trigger_timing_and_event;
        assert_eq!(
            read("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END"),
            Some(("AFTER", TriggerEvent::Insert))
        );
        assert_eq!(
            read("create trigger if not exists \"before update\" update of x on a begin select 1; end"),
            Some(("BEFORE", TriggerEvent::Update))
        );
        assert_eq!(
            read("CREATE TEMP TRIGGER [x y] INSTEAD OF DELETE ON v BEGIN SELECT 1; END"),
            Some(("INSTEAD OF", TriggerEvent::Delete))
        );
        assert_eq!(
            read("CREATE TRIGGER `a` BEFORE\nUPDATE ON a BEGIN SELECT 1; END"),
            Some(("BEFORE", TriggerEvent::Update))
        );
        assert_eq!(read("CREATE VIEW v AS SELECT 1"), None);
    }
}
