//! Splitting a table's key space into ranges read at the same time
//! ([`Database::key_ranges`](dmf_core::sync::Database::key_ranges)).

use std::num::NonZeroUsize;

use dmf_core::sync::{ExtractSpec, KeyRange, single_integer_key};
use dmf_core::{Error, Result, Stage, Value};
use tokio_postgres::Client;

use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::extract::ordered;
use crate::sql::extract::{ESTIMATE, Selected, key_boundaries, key_min_max};
use crate::sql::qualified;
use crate::sql::relation::relation;
use crate::types::{decode, read_as_text};

/// Tables the planner counts above this many rows are split from a sample of their pages.
const SAMPLE_ABOVE: f64 = 200_000.0;

/// Rows sampled per range wanted (about): enough for boundaries within a percent or so.
const SAMPLE_ROWS_PER_RANGE: f64 = 2_000.0;

/// A single integer key is cut at equal widths between `min` and `max` (two index lookups).
/// Other keys are cut at the last key of each of `parts` equal tiles (`ntile`) of the keys in
/// the extractor's order: of a `TABLESAMPLE SYSTEM` sample of the pages for a table the planner
/// counts above [`SAMPLE_ABOVE`] rows (about [`SAMPLE_ROWS_PER_RANGE`] rows per range, so a
/// split costs a fraction of a scan), of every key otherwise (or when the sample is too small).
pub(crate) async fn key_ranges(shared: &Shared, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
    let client = shared.connector.connect(Stage::Extract).await?;
    let doing = || {
        format!("splitting {} into key ranges by ({}) in {}", spec.table, spec.key.join(", "), shared.connector.name())
    };
    let kind = crate::catalog::relation_kind(&client, &spec.table)
        .await
        .map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
    let from = relation(&spec.table, kind);
    if let Some(key) = single_integer_key(spec) {
        let row = client
            .query_one(&key_min_max(&from, &key.name), &[])
            .await
            .map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
        let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        return Ok(match (min, max) {
            (Some(min), Some(max)) => KeyRange::split_integers(min, max, parts),
            _ => vec![KeyRange::all()],
        });
    }
    let row = client
        .query_one(ESTIMATE, &[&qualified(&spec.table)])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
    let (rows, unknown): (Option<f64>, bool) = (row.get(0), row.get(1));
    let wanted = SAMPLE_ROWS_PER_RANGE * parts.get() as f64;
    let percent = rows
        .filter(|rows| !unknown && *rows > SAMPLE_ABOVE)
        .map(|rows| (wanted / rows * 100.0).clamp(0.001, 100.0) as f32);
    if let Some(percent) = percent {
        let sampled = boundaries(&client, spec, &from, parts, Some(percent)).await.map_err(|e| e.context(doing()))?;
        if sampled.len() + 1 >= parts.get() {
            return Ok(KeyRange::between(sampled));
        }
        tracing::debug!(table = %spec.table, percent, "the sample was too small; splitting from every key");
    }
    let every = boundaries(&client, spec, &from, parts, None).await.map_err(|e| e.context(doing()))?;
    Ok(KeyRange::between(every))
}

/// Wraps a driver error or a decoding problem with what was being done.
enum Problem {
    Driver(tokio_postgres::Error),
    Decode(String),
}

impl Problem {
    fn context(self, doing: String) -> Error {
        match self {
            Problem::Driver(error) => to_dmf_error(error, Stage::Extract, doing),
            Problem::Decode(message) => Error::fatal(Stage::Extract, format!("{doing}: {message}")),
        }
    }
}

/// The last key of each tile but the last, in key order.
async fn boundaries(
    client: &Client,
    spec: &ExtractSpec,
    from: &str,
    parts: NonZeroUsize,
    sample_percent: Option<f32>,
) -> std::result::Result<Vec<Vec<Value>>, Problem> {
    let columns: Vec<_> = spec.key.iter().filter_map(|k| spec.columns.iter().find(|c| &c.name == k)).collect();
    if columns.len() != spec.key.len() {
        return Err(Problem::Decode(format!(
            "the key columns ({}) are not all among the columns",
            spec.key.join(", ")
        )));
    }
    let select: Vec<Selected<'_>> =
        columns.iter().map(|c| Selected { name: &c.name, as_text: read_as_text(&c.data_type) }).collect();
    let order: Vec<_> = columns.iter().map(|c| ordered(c, false)).collect();
    let tiles = i32::try_from(parts.get()).unwrap_or(i32::MAX);
    let sql = key_boundaries(from, &select, &order, sample_percent.is_some());
    let rows = match sample_percent {
        Some(percent) => client.query(&sql, &[&tiles, &percent]).await,
        None => client.query(&sql, &[&tiles]).await,
    }
    .map_err(Problem::Driver)?;
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    decode(row, i, &column.data_type).map_err(|e| {
                        Problem::Decode(format!("key column `{}` ({}): {e}", column.name, column.native_type))
                    })
                })
                .collect()
        })
        .collect()
}
