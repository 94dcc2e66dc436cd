//! Reads the user tables of a database from `sys.*` into DMF's neutral catalog model:
//! schemas other than `dbo`, identity, computed, rowversion, sparse and temporal period
//! columns, primary and unique keys, foreign keys (disabled ones marked not enforced).

use std::collections::BTreeMap;

use dmf_core::catalog::{Catalog, Column, ForeignKey, Sequence, SequenceKind, Table, TableName, Trigger, TriggerEvent};

use crate::executor::{Executor, SqlError, SqlRow};
use crate::sql::catalog as sql;
use crate::types::SqlType;

/// A column as `sys.columns` describes it, with what the model does not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnFacts {
    /// The column in the neutral model.
    pub column: Column,
    /// Its type.
    pub sql_type: SqlType,
    /// Its collation (character columns).
    pub collation: Option<String>,
}

/// The column of one `sys.columns` row (see [`sql::TABLE_COLUMNS`] for the layout from
/// `offset`: name, type, max_length, precision, scale, nullable, identity, read-only,
/// collation).
fn column_facts(row: &SqlRow, offset: usize, default: Option<String>) -> Result<ColumnFacts, SqlError> {
    let sql_type = SqlType::from_catalog(
        &row.text_required(offset + 1)?,
        row.int(offset + 2)?.unwrap_or(0),
        row.int(offset + 3)?.unwrap_or(0),
        row.int(offset + 4)?.unwrap_or(0),
    );
    let read_only = row.bool(offset + 7)?.unwrap_or(false) || sql_type == SqlType::RowVersion;
    Ok(ColumnFacts {
        column: Column {
            name: row.text_required(offset)?,
            data_type: sql_type.data_type(),
            native_type: sql_type.native(),
            nullable: row.bool(offset + 5)?.unwrap_or(true),
            default,
            identity: row.bool(offset + 6)?.unwrap_or(false),
            generated: read_only,
        },
        sql_type,
        collation: row.text(offset + 8)?,
    })
}

/// The columns of one table (for a loader), in column order.
pub(crate) async fn table_columns(
    executor: &mut dyn Executor,
    table: &TableName,
) -> Result<Vec<ColumnFacts>, SqlError> {
    let rows = executor.query(sql::TABLE_COLUMNS, &[dmf_core::Value::Text(crate::sql::qualified(table))]).await?;
    rows.iter().map(|row| column_facts(row, 0, None)).collect()
}

/// Every user table (the `dmf` control schema and temporal history tables excluded), sorted
/// by schema and name, columns in table order, keys in key order.
pub(crate) async fn read_catalog(executor: &mut dyn Executor) -> Result<Catalog, SqlError> {
    let column_rows = executor.query(sql::COLUMNS, &[]).await?;
    let mut tables: Vec<Table> = Vec::new();
    let mut by_id: BTreeMap<i64, usize> = BTreeMap::new();
    for row in &column_rows {
        let id = row.int_required(0)?;
        let index = match by_id.get(&id) {
            Some(index) => *index,
            None => {
                tables.push(Table {
                    name: TableName::new(Some(&row.text_required(1)?), &row.text_required(2)?),
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    unique_keys: Vec::new(),
                    foreign_keys: Vec::new(),
                });
                by_id.insert(id, tables.len() - 1);
                tables.len() - 1
            }
        };
        // Layout of COLUMNS from column 3: name, type, max_length, precision, scale,
        // nullable, identity, computed, sparse, generated always, collation, default.
        let computed = row.bool(10)?.unwrap_or(false);
        let period = row.int(12)?.unwrap_or(0) != 0;
        let sql_type = SqlType::from_catalog(
            &row.text_required(4)?,
            row.int(5)?.unwrap_or(0),
            row.int(6)?.unwrap_or(0),
            row.int(7)?.unwrap_or(0),
        );
        let generated = computed || period || sql_type == SqlType::RowVersion;
        tables[index].columns.push(Column {
            name: row.text_required(3)?,
            data_type: sql_type.data_type(),
            native_type: sql_type.native(),
            nullable: row.bool(8)?.unwrap_or(true),
            default: row.text(14)?,
            identity: row.bool(9)?.unwrap_or(false),
            generated,
        });
    }

    let key_rows = executor.query(sql::KEYS, &[]).await?;
    let mut keys: BTreeMap<(i64, i64), (bool, Vec<String>)> = BTreeMap::new();
    for row in &key_rows {
        let entry = keys.entry((row.int_required(0)?, row.int_required(1)?)).or_insert((false, Vec::new()));
        entry.0 = row.bool(2)?.unwrap_or(false);
        entry.1.push(row.text_required(3)?);
    }
    for ((table_id, _), (primary, columns)) in keys {
        let Some(&index) = by_id.get(&table_id) else { continue };
        let table = &mut tables[index];
        if primary {
            table.primary_key = columns;
        } else if !table.unique_keys.contains(&columns) && table.primary_key != columns {
            table.unique_keys.push(columns);
        }
    }

    let fk_rows = executor.query(sql::FOREIGN_KEYS, &[]).await?;
    let mut fks: BTreeMap<(i64, i64), ForeignKey> = BTreeMap::new();
    let mut fk_tables: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for row in &fk_rows {
        let key = (row.int_required(0)?, row.int_required(1)?);
        fk_tables.insert(key, key.0);
        let fk = fks.entry(key).or_insert_with(|| ForeignKey {
            name: String::new(),
            columns: Vec::new(),
            referenced_table: TableName::new(None, ""),
            referenced_columns: Vec::new(),
            enforced: true,
        });
        if fk.name.is_empty() {
            fk.name = row.text_required(2)?;
            fk.referenced_table = TableName::new(Some(&row.text_required(3)?), &row.text_required(4)?);
            fk.enforced = !row.bool(7)?.unwrap_or(false);
        }
        fk.columns.push(row.text_required(5)?);
        fk.referenced_columns.push(row.text_required(6)?);
    }
    for (key, fk) in fks {
        if let Some(index) = fk_tables.get(&key).and_then(|table_id| by_id.get(table_id)) {
            tables[*index].foreign_keys.push(fk);
        }
    }
    for table in &mut tables {
        table.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(Catalog { tables })
}

/// The enabled user triggers on `tables` ([`sql::TRIGGERS`]). A bulk load without
/// `FIRE_TRIGGERS` (the fast path of a `full` sync) skips insert triggers; every other write
/// fires them.
pub(crate) async fn triggers(executor: &mut dyn Executor, tables: &[TableName]) -> Result<Vec<Trigger>, SqlError> {
    let mut triggers: Vec<Trigger> = Vec::new();
    for row in executor.query(sql::TRIGGERS, &[]).await? {
        let table = TableName::new(Some(&row.text_required(0)?), &row.text_required(1)?);
        let Some(table) = tables.iter().find(|t| t.matches(&table)) else { continue };
        let name = row.text_required(2)?;
        let event = match row.text_required(4)?.to_ascii_uppercase().as_str() {
            "INSERT" => TriggerEvent::Insert,
            "UPDATE" => TriggerEvent::Update,
            "DELETE" => TriggerEvent::Delete,
            other => return Err(SqlError::Conversion(format!("trigger {name} on {table}: unknown operation {other}"))),
        };
        match triggers.iter_mut().find(|t| &t.table == table && t.name == name) {
            Some(trigger) => {
                trigger.events.insert(event);
            }
            None => triggers.push(Trigger {
                table: table.clone(),
                timing: if row.int(3)? == Some(1) { "INSTEAD OF" } else { "AFTER" }.to_owned(),
                name,
                events: [event].into(),
                fires: true,
                fires_when_skipped: false,
            }),
        }
    }
    Ok(triggers)
}

/// The identities of `tables` ([`sql::IDENTITIES`]), each a counter of its table with the last
/// value it handed out.
pub(crate) async fn identities(executor: &mut dyn Executor, tables: &[TableName]) -> Result<Vec<Sequence>, SqlError> {
    let mut identities = Vec::new();
    for row in executor.query(sql::IDENTITIES, &[]).await? {
        let table = TableName::new(Some(&row.text_required(0)?), &row.text_required(1)?);
        if !tables.iter().any(|t| t.matches(&table)) {
            continue;
        }
        identities.push(Sequence {
            name: table.clone(),
            kind: SequenceKind::TableCounter,
            table,
            column: Some(row.text_required(2)?),
            last_value: row.int(3)?,
        });
    }
    Ok(identities)
}

/// The sequence objects the defaults of `tables` use ([`sql::sequences`]), each once per table
/// and column whose default names it (a sequence shared by two tables is listed for each), with
/// the last value it handed out. On SQL Server 2016, which has no `last_used_value` (error 207
/// on it), by `current_value`.
pub(crate) async fn sequences(executor: &mut dyn Executor, tables: &[TableName]) -> Result<Vec<Sequence>, SqlError> {
    let rows = match executor.query(&sql::sequences(true), &[]).await {
        Err(error) if error.number() == Some(207) && error.to_string().contains("last_used_value") => {
            executor.query(&sql::sequences(false), &[]).await?
        }
        other => other?,
    };
    let mut sequences = Vec::new();
    for row in rows {
        let table = TableName::new(Some(&row.text_required(2)?), &row.text_required(3)?);
        if !tables.iter().any(|t| t.matches(&table)) {
            continue;
        }
        sequences.push(Sequence {
            name: TableName::new(Some(&row.text_required(0)?), &row.text_required(1)?),
            kind: SequenceKind::Sequence,
            table,
            column: Some(row.text_required(4)?),
            last_value: row.int(5)?,
        });
    }
    Ok(sequences)
}
