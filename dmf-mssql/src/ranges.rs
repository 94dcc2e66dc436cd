//! Splitting a table's key space into ranges read at the same time
//! ([`Database::key_ranges`](dmf_core::sync::Database::key_ranges)).

use std::num::NonZeroUsize;

use dmf_core::sync::{ExtractSpec, KeyRange, single_integer_key};
use dmf_core::{Error, Result, Stage, Value};

use crate::error::to_dmf_error;
use crate::executor::Executor;
use crate::extract::compare_of;
use crate::sql::extract::{Ordered, Selected, key_boundaries, key_min_max};
use crate::types::{SqlType, decode};

/// A single integer key is cut at equal widths between `MIN` and `MAX` (two index lookups);
/// other keys at the last key of each of `parts` equal tiles (`NTILE`) of every key in the
/// extractor's order (one ordered scan of the key: SQL Server takes no sample size as a
/// parameter, and a split is worth one scan of the key next to the copy of the table).
pub(crate) async fn key_ranges(
    session: &mut dyn Executor,
    server: &str,
    spec: &ExtractSpec,
    parts: NonZeroUsize,
) -> Result<Vec<KeyRange>> {
    let doing = || format!("splitting {} into key ranges by ({}) in {server}", spec.table, spec.key.join(", "));
    if let Some(key) = single_integer_key(spec) {
        let rows = session
            .query(&key_min_max(&spec.table, &key.name), &[])
            .await
            .map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
        let bounds = match rows.first() {
            Some(row) => (row.int(0), row.int(1)),
            None => (Ok(None), Ok(None)),
        };
        return match bounds {
            (Ok(Some(min)), Ok(Some(max))) => Ok(KeyRange::split_integers(min, max, parts)),
            (Ok(_), Ok(_)) => Ok(vec![KeyRange::all()]),
            (Err(e), _) | (_, Err(e)) => Err(to_dmf_error(e, Stage::Extract, doing())),
        };
    }
    let mut columns = Vec::with_capacity(spec.key.len());
    for name in &spec.key {
        let column = spec.columns.iter().find(|c| &c.name == name).ok_or_else(|| {
            Error::fatal(Stage::Extract, format!("{}: key column `{name}` is not among the columns", doing()))
        })?;
        columns.push((name.as_str(), SqlType::parse(&column.native_type)));
    }
    let select: Vec<Selected<'_>> = columns.iter().map(|(name, ty)| Selected { name, read_as: ty.read_as() }).collect();
    let order: Vec<Ordered<'_>> = columns.iter().map(|(name, ty)| Ordered { name, compare: compare_of(ty) }).collect();
    let tiles = Value::Int(i64::try_from(parts.get()).unwrap_or(i64::MAX));
    let rows = session
        .query(&key_boundaries(&spec.table, &select, &order), &[tiles])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
    let mut boundaries = Vec::with_capacity(rows.len());
    for row in &rows {
        let key = row
            .0
            .iter()
            .zip(&spec.key)
            .map(|(cell, name)| {
                decode(cell).map_err(|problem| {
                    Error::fatal(Stage::Extract, format!("{}: key column `{name}`: {problem}", doing()))
                })
            })
            .collect::<Result<Vec<Value>>>()?;
        boundaries.push(key);
    }
    Ok(KeyRange::between(boundaries))
}
