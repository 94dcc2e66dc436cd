//! Rule checks on a SQLite file ([`Database::find_violations`](dmf_core::sync::Database::find_violations)):
//! one count and one page of keys per check, with the statements of [`sql::rules`].

use std::path::Path;
use std::sync::Arc;

use dmf_core::catalog::DataType;
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::{Record, Result, Row, Stage, Value};

use crate::connection::{blocking, open};
use crate::{catalog, error, sql, types};

/// The rows of `path`'s table that break `check`: how many, and the keys of up to `sample` of
/// them in key order (decoded with the key columns' declared types, as the extractor reads
/// them).
pub(crate) fn find_violations(path: &Path, check: &RuleCheck, sample: usize) -> Result<Violations> {
    blocking(|| {
        let connection = open(path)?;
        let context = |e| error::map(Stage::Validate, format!("checking `{check}` in `{}`", path.display()), e);
        let count: i64 =
            connection.query_row(&sql::rules::count_violations(check), [], |row| row.get(0)).map_err(context)?;
        let count = u64::try_from(count).unwrap_or(0);
        if count == 0 || sample == 0 {
            return Ok(Violations { count, sample: Vec::new() });
        }
        let table = catalog::read_table(&connection, &check.table().name).map_err(context)?;
        let key_types: Vec<DataType> = check
            .key()
            .iter()
            .map(|k| table.column(k).map_or_else(|| DataType::Other(String::new()), |c| c.data_type.clone()))
            .collect();
        let shape = check.key_shape();
        let mut statement = connection.prepare(&sql::rules::sample_violations(check)).map_err(context)?;
        let limit = i64::try_from(sample).unwrap_or(i64::MAX);
        let mut rows = statement.query([limit]).map_err(context)?;
        let mut keys = Vec::with_capacity(sample.min(1024));
        while let Some(row) = rows.next().map_err(context)? {
            let mut values = Vec::with_capacity(key_types.len());
            for (index, data_type) in key_types.iter().enumerate() {
                let raw = row.get_ref(index).map_err(context)?;
                // A key the column's type cannot read is still shown, as stored.
                values.push(types::from_sql(raw, data_type).unwrap_or_else(|bad| Value::Text(bad.value)));
            }
            keys.push(Row::new(Arc::clone(&shape), values).key());
        }
        Ok(Violations { count, sample: keys })
    })
}
