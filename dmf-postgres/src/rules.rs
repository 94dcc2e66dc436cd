//! Rule checks on a PostgreSQL database ([`Database::find_violations`](dmf_core::sync::Database::find_violations)):
//! one count and one page of keys per check, with the statements of `sql::rules`.

use std::sync::Arc;

use dmf_core::catalog::DataType;
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::{Record, Result, Row, Stage};

use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::sql::rules::{count_violations, sample_violations};
use crate::types::{data_type, decode, read_as_text};

/// The rows that break `check`: how many, and the keys of up to `sample` of them in key order,
/// on a connection of its own.
pub(crate) async fn find_violations(shared: &Shared, check: &RuleCheck, sample: usize) -> Result<Violations> {
    let server = shared.connector.name();
    let doing = || format!("checking `{check}` on {server}");
    let fail = |error| to_dmf_error(error, Stage::Validate, doing());
    let client = shared.connector.connect(Stage::Validate).await?;
    let count: i64 = client.query_one(&count_violations(check), &[]).await.map_err(fail)?.get(0);
    let count = u64::try_from(count).unwrap_or(0);
    if count == 0 || sample == 0 {
        return Ok(Violations { count, sample: Vec::new() });
    }
    // The key columns' types come from the statement itself; those the adapter reads as text
    // (numeric, json, types without a neutral form) are selected again as `::text`.
    let native = client.prepare(&sample_violations(check, &[])).await.map_err(fail)?;
    let types: Vec<DataType> =
        native.columns().iter().map(|c| data_type(Some(c.type_().name()), c.type_().name())).collect();
    let as_text: Vec<bool> = types.iter().map(read_as_text).collect();
    let statement = if as_text.contains(&true) {
        client.prepare(&sample_violations(check, &as_text)).await.map_err(fail)?
    } else {
        native
    };
    let limit = i64::try_from(sample).unwrap_or(i64::MAX);
    let rows = client.query(&statement, &[&limit]).await.map_err(fail)?;
    let shape = check.key_shape();
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let values = types.iter().enumerate().map(|(i, t)| decode(row, i, t)).collect::<Result<Vec<_>, _>>();
        keys.push(Row::new(Arc::clone(&shape), values.map_err(fail)?).key());
    }
    Ok(Violations { count, sample: keys })
}
