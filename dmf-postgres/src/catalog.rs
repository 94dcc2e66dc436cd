//! Reads the user tables of a database from `pg_catalog` into DMF's neutral catalog model.

use std::collections::HashMap;

use dmf_core::catalog::{Catalog, Column, ForeignKey, Sequence, SequenceKind, Table, TableName, Trigger, TriggerEvent};
use dmf_core::{Result, Stage};
use tokio_postgres::Client;

use crate::error::to_dmf_error;
use crate::sql;
use crate::sql::relation::RelationKind;
use crate::types::data_type;

/// Every table of every non-system schema (the `dmf` control schema excluded), sorted by
/// schema and name, with columns in table order and keys in key order.
pub(crate) async fn read_catalog(client: &Client, server: &str) -> Result<Catalog> {
    let doing = || format!("reading the catalog of {server}");
    let version: i32 = client
        .query_one(sql::catalog::SERVER_VERSION_NUM, &[])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?
        .get(0);
    let excluded: &[&str] = &sql::catalog::EXCLUDED_SCHEMAS;
    let rows = client
        .query(sql::catalog::COLUMNS, &[&excluded])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?;

    let mut tables: Vec<Table> = Vec::new();
    let mut by_oid: HashMap<u32, usize> = HashMap::new();
    for row in &rows {
        let oid: u32 = row.get(0);
        let index = *by_oid.entry(oid).or_insert_with(|| {
            tables.push(Table {
                name: TableName::new(Some(row.get(1)), row.get(2)),
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
            });
            tables.len() - 1
        });
        let native: String = row.get(4);
        let pg_name: Option<&str> = row.get(5);
        let default: Option<String> = row.get(7);
        let identity: &str = row.get(8);
        let generated: &str = row.get(9);
        let serial = default.as_deref().is_some_and(|d| d.starts_with("nextval("));
        tables[index].columns.push(Column {
            name: row.get(3),
            data_type: data_type(pg_name, &native),
            native_type: native,
            nullable: !row.get::<_, bool>(6),
            default,
            identity: !identity.is_empty() || serial,
            generated: !generated.is_empty(),
        });
    }

    let oids: Vec<u32> = by_oid.keys().copied().collect();
    let constraints = client
        .query(&sql::catalog::constraints(version), &[&oids])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?;
    for row in &constraints {
        let Some(&index) = by_oid.get(&row.get::<_, u32>(0)) else { continue };
        let table = &mut tables[index];
        let kind: &str = row.get(1);
        let columns: Vec<String> = row.get(3);
        match kind {
            "p" => table.primary_key = columns,
            "u" => table.unique_keys.push(columns),
            "f" => {
                let schema: Option<&str> = row.get(4);
                let referenced: Option<&str> = row.get(5);
                table.foreign_keys.push(ForeignKey {
                    name: row.get(2),
                    columns,
                    referenced_table: TableName::new(schema, referenced.unwrap_or_default()),
                    referenced_columns: row.get(6),
                    enforced: row.get(7),
                });
            }
            _ => {}
        }
    }
    Ok(Catalog { tables })
}

/// How statements must name `table` ([`RelationKind`]): one catalog lookup.
pub(crate) async fn relation_kind(
    client: &Client,
    table: &TableName,
) -> std::result::Result<RelationKind, tokio_postgres::Error> {
    let row = client.query_one(sql::relation::RELATION_KIND, &[&sql::qualified(table)]).await?;
    Ok(RelationKind::from_catalog(row.get(0), row.get(1)))
}

/// The sequences that fill columns of `tables` ([`sql::catalog::SEQUENCES`]), with their values.
pub(crate) async fn sequences(client: &Client, server: &str, tables: &[TableName]) -> Result<Vec<Sequence>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = tables.iter().map(sql::qualified).collect();
    let rows = client
        .query(sql::catalog::SEQUENCES, &[&names])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, format!("reading the sequences of {server}")))?;
    Ok(rows
        .iter()
        .map(|row| Sequence {
            name: TableName::new(Some(row.get(0)), row.get(1)),
            kind: SequenceKind::Sequence,
            table: TableName::new(Some(row.get(2)), row.get(3)),
            column: Some(row.get(4)),
            last_value: row.get(5),
        })
        .collect())
}

/// The enabled user triggers on `tables` ([`sql::catalog::TRIGGERS`]), decoded from
/// `pg_trigger.tgtype`'s bits (PostgreSQL's `TRIGGER_TYPE_*`).
pub(crate) async fn triggers(client: &Client, server: &str, tables: &[TableName]) -> Result<Vec<Trigger>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = tables.iter().map(sql::qualified).collect();
    let rows = client
        .query(sql::catalog::TRIGGERS, &[&names])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, format!("reading the triggers of {server}")))?;
    Ok(rows
        .iter()
        .map(|row| {
            let (tgtype, enabled): (i32, String) = (row.get(3), row.get(4));
            trigger(TableName::new(Some(row.get(0)), row.get(1)), row.get(2), tgtype, &enabled)
        })
        .collect())
}

/// One trigger from its `tgtype` and `tgenabled`.
fn trigger(table: TableName, name: String, tgtype: i32, enabled: &str) -> Trigger {
    const BEFORE: i32 = 1 << 1;
    const INSTEAD: i32 = 1 << 6;
    let bits = [
        (1 << 2, TriggerEvent::Insert),
        (1 << 3, TriggerEvent::Delete),
        (1 << 4, TriggerEvent::Update),
        (1 << 5, TriggerEvent::Truncate),
    ];
    let timing = match (tgtype & INSTEAD != 0, tgtype & BEFORE != 0) {
        (true, _) => "INSTEAD OF",
        (false, true) => "BEFORE",
        (false, false) => "AFTER",
    };
    Trigger {
        table,
        name,
        timing: timing.to_owned(),
        events: bits.iter().filter(|(bit, _)| tgtype & bit != 0).map(|(_, event)| *event).collect(),
        fires: enabled != "R",
        fires_when_skipped: enabled == "A" || enabled == "R",
    }
}

/// Sets `sequences` ([`sql::catalog::SET_SEQUENCE`]) in one transaction; an error names the
/// sequence and the value.
pub(crate) async fn set_sequences(client: &mut Client, server: &str, sequences: &[Sequence]) -> Result<()> {
    let doing = |sequence: &Sequence| format!("setting sequence {sequence} in {server}");
    let tx = client
        .transaction()
        .await
        .map_err(|e| to_dmf_error(e, Stage::Load, format!("setting sequences in {server}")))?;
    let statement = tx
        .prepare(sql::catalog::SET_SEQUENCE)
        .await
        .map_err(|e| to_dmf_error(e, Stage::Load, format!("setting sequences in {server}")))?;
    for sequence in sequences {
        let name = sql::qualified(&sequence.name);
        let rows = tx
            .query(&statement, &[&name, &sequence.last_value])
            .await
            .map_err(|e| to_dmf_error(e, Stage::Load, doing(sequence)))?;
        if rows.is_empty() {
            return Err(dmf_core::Error::fatal(Stage::Load, format!("{}: no such sequence", doing(sequence))));
        }
    }
    tx.commit().await.map_err(|e| to_dmf_error(e, Stage::Load, format!("setting sequences in {server}")))
}
