//! Rule checks on a SQL Server database ([`Database::find_violations`](dmf_core::sync::Database::find_violations)):
//! one count and one page of keys per check, with the statements of `sql::rules`.

use std::sync::Arc;

use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::{Error, Record, Result, Row, Stage, Value};

use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::sql::rules::{count_violations, sample_violations};
use crate::types::decode;

/// The rows that break `check`: how many, and the keys of up to `sample` of them in key order,
/// on a session of its own.
pub(crate) async fn find_violations(shared: &Shared, check: &RuleCheck, sample: usize) -> Result<Violations> {
    let server = shared.name();
    let doing = || format!("checking `{check}` on {server}");
    let mut session = shared.connector.session().await.map_err(|e| to_dmf_error(e, Stage::Validate, doing()))?;
    let rows =
        session.query(&count_violations(check), &[]).await.map_err(|e| to_dmf_error(e, Stage::Validate, doing()))?;
    let count = match rows.first().map(|row| row.int_required(0)) {
        Some(Ok(count)) => u64::try_from(count).unwrap_or(0),
        Some(Err(error)) => return Err(to_dmf_error(error, Stage::Validate, doing())),
        None => return Err(Error::fatal(Stage::Validate, format!("{}: the count returned no row", doing()))),
    };
    if count == 0 || sample == 0 {
        return Ok(Violations { count, sample: Vec::new() });
    }
    let limit = Value::Int(i64::try_from(sample).unwrap_or(i64::MAX));
    let rows = session
        .query(&sample_violations(check), &[limit])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Validate, doing()))?;
    let shape = check.key_shape();
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let values = row
            .0
            .iter()
            .zip(check.key())
            .map(|(cell, column)| {
                decode(cell).map_err(|problem| {
                    Error::fatal(Stage::Validate, format!("{}: key column `{column}`: {problem}", doing()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if values.len() != shape.columns.len() {
            return Err(Error::fatal(
                Stage::Validate,
                format!(
                    "{}: the server returned {} key columns, {} expected",
                    doing(),
                    values.len(),
                    shape.columns.len()
                ),
            ));
        }
        keys.push(Row::new(Arc::clone(&shape), values).key());
    }
    Ok(Violations { count, sample: keys })
}
