//! Splitting a table's key space into ranges read at the same time
//! ([`Database::key_ranges`](dmf_core::sync::Database::key_ranges)).

use std::num::NonZeroUsize;

use dmf_core::sync::{ExtractSpec, KeyRange, single_integer_key};
use dmf_core::{Error, Result, Stage, Value};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::{error, sql, types};

/// A single integer key is cut at equal widths between its minimum and maximum (two index
/// lookups); other keys at the keys of equal rank, found with `LIMIT 1 OFFSET n` walks of the
/// key's index in the extractor's order (a count, then `parts - 1` walks of at most the table's
/// size). A single integer key holding other values (SQLite's typing allows it) is split by
/// rank too.
pub(crate) fn key_ranges(connection: &Connection, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
    let context = || format!("splitting table `{}` into key ranges by ({})", spec.table, spec.key.join(", "));
    if let Some(key) = single_integer_key(spec) {
        let bounds = connection
            .query_row(&sql::key_min_max(&spec.table, &key.name), [], |row| {
                Ok(match (row.get_ref(0)?, row.get_ref(1)?) {
                    (ValueRef::Integer(min), ValueRef::Integer(max)) => Some(Some((min, max))),
                    (ValueRef::Null, ValueRef::Null) => Some(None),
                    _ => None,
                })
            })
            .map_err(|e| error::map(Stage::Extract, context(), e))?;
        match bounds {
            Some(Some((min, max))) => return Ok(KeyRange::split_integers(min, max, parts)),
            Some(None) => return Ok(vec![KeyRange::all()]),
            None => {}
        }
    }
    let rows: i64 = connection
        .query_row(&sql::count_after(&sql::relation(spec), &spec.key, false, false), [], |row| row.get(0))
        .map_err(|e| error::map(Stage::Extract, context(), e))?;
    let parts = i64::try_from(parts.get()).unwrap_or(i64::MAX).min(rows.max(1));
    let statement = sql::key_at(&spec.table, &spec.key);
    let mut at_rank = connection.prepare(&statement).map_err(|e| error::map(Stage::Extract, context(), e))?;
    let columns: Vec<_> =
        spec.key.iter().map(|name| spec.columns.iter().find(|c| &c.name == name).map(|c| &c.data_type)).collect();
    let mut boundaries = Vec::new();
    for part in 1..parts {
        let offset = rows / parts * part + rows % parts * part / parts - 1;
        let key = at_rank
            .query_row([offset], |row| {
                let mut values = Vec::with_capacity(columns.len());
                for (index, data_type) in columns.iter().enumerate() {
                    let raw = row.get_ref(index)?;
                    values.push(match data_type {
                        Some(data_type) => types::from_sql(raw, data_type),
                        None => Ok(Value::Null),
                    });
                }
                Ok(values)
            })
            .map_err(|e| error::map(Stage::Extract, context(), e))?;
        let mut boundary = Vec::with_capacity(key.len());
        for (value, name) in key.into_iter().zip(&spec.key) {
            boundary.push(value.map_err(|bad| {
                Error::fatal(
                    Stage::Extract,
                    format!("{}: key column `{name}` holds `{}`, not {}", context(), bad.value, bad.expected),
                )
            })?);
        }
        boundaries.push(boundary);
    }
    Ok(KeyRange::between(boundaries))
}
