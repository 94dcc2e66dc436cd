//! Reading control rows back: each database returns its own types for the same column (a
//! time is a `timestamptz`, a `datetime2` or RFC 3339 text; a flag a boolean, a bit or an
//! integer), so cells are read by meaning, whatever the type they came in.

use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result, Stage};
use crate::value::Value;

/// The snake_case name serde gives a status (`rolled_back`).
pub(crate) fn status_name<T: Serialize>(status: &T) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// One row of a control table, read cell by cell; errors name the table and the column.
pub(crate) struct Cells {
    row: Vec<Value>,
    table: &'static str,
}

impl Cells {
    pub(crate) fn new(row: Vec<Value>, table: &'static str) -> Self {
        Self { row, table }
    }

    fn cell(&self, index: usize) -> Result<&Value> {
        self.row.get(index).ok_or_else(|| self.bad(index, "a value", &Value::Null))
    }

    fn bad(&self, index: usize, wanted: &str, got: &Value) -> Error {
        Error::stage(
            Stage::RunStore,
            ErrorKind::Fatal,
            format!("column {} of a row of control table `{}` is not {wanted}: {got:?}", index + 1, self.table),
        )
    }

    pub(crate) fn int_opt(&self, index: usize) -> Result<Option<i64>> {
        Ok(match self.cell(index)? {
            Value::Null => None,
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            value @ (Value::Decimal(text) | Value::Text(text)) => {
                Some(text.trim().parse().map_err(|_| self.bad(index, "an integer", value))?)
            }
            other => return Err(self.bad(index, "an integer", other)),
        })
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64> {
        self.int_opt(index)?.ok_or_else(|| self.bad(index, "an integer", &Value::Null))
    }

    /// A count: NULL and negative numbers read as 0.
    pub(crate) fn count(&self, index: usize) -> Result<u64> {
        Ok(self.int_opt(index)?.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    pub(crate) fn bool(&self, index: usize) -> Result<Option<bool>> {
        Ok(match self.cell(index)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            value @ Value::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "1" | "t" | "true" => Some(true),
                "0" | "f" | "false" => Some(false),
                _ => return Err(self.bad(index, "a boolean", value)),
            },
            other => return Err(self.bad(index, "a boolean", other)),
        })
    }

    pub(crate) fn text_opt(&self, index: usize) -> Result<Option<String>> {
        Ok(match self.cell(index)? {
            Value::Null => None,
            Value::Text(text) | Value::Json(text) | Value::Decimal(text) => Some(text.clone()),
            Value::Int(i) => Some(i.to_string()),
            other => return Err(self.bad(index, "text", other)),
        })
    }

    pub(crate) fn text(&self, index: usize) -> Result<String> {
        self.text_opt(index)?.ok_or_else(|| self.bad(index, "text", &Value::Null))
    }

    pub(crate) fn status<T: DeserializeOwned>(&self, index: usize) -> Result<T> {
        let name = self.text(index)?;
        serde_json::from_value(serde_json::Value::String(name.clone())).map_err(|e| {
            Error::with_source(
                Stage::RunStore,
                ErrorKind::Fatal,
                format!("unknown status `{name}` in control table `{}`", self.table),
                e,
            )
        })
    }

    pub(crate) fn json_opt<T: DeserializeOwned>(&self, index: usize) -> Result<Option<T>> {
        let Some(text) = self.text_opt(index)? else { return Ok(None) };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::with_source(
                Stage::RunStore,
                ErrorKind::Fatal,
                format!("column {} of control table `{}` is not the JSON DMF writes", index + 1, self.table),
                e,
            )
        })
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, index: usize) -> Result<T> {
        self.json_opt(index)?.ok_or_else(|| self.bad(index, "JSON", &Value::Null))
    }

    /// A time: a timestamp with time zone, one without (taken as UTC), or text in RFC 3339
    /// or `YYYY-MM-DD HH:MM:SS[.f][+00:00]`.
    pub(crate) fn time(&self, index: usize) -> Result<Option<SystemTime>> {
        Ok(match self.cell(index)? {
            Value::Null => None,
            Value::TimestampTz(t) => Some((*t).into()),
            Value::Timestamp(t) => Some(t.and_utc().into()),
            value @ Value::Text(text) => Some(parse_time(text).ok_or_else(|| self.bad(index, "a time", value))?),
            other => return Err(self.bad(index, "a time", other)),
        })
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.into());
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(time.into());
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(DateTime::<Utc>::from_naive_utc_and_offset(naive, Utc).into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_read_alike_whatever_form_they_are_stored_in() {
        let expected = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_005_123_456);
        let utc: DateTime<Utc> = expected.into();
        let forms = vec![
            Value::TimestampTz(utc),
            Value::Timestamp(utc.naive_utc()),
            Value::Text("2023-11-14T22:13:25.123456Z".into()),
            Value::Text("2023-11-14 22:13:25.123456+00:00".into()),
            Value::Text("2023-11-14 22:13:25.123456".into()),
        ];
        let cells = Cells::new(forms.clone(), "runs");
        for (index, form) in forms.iter().enumerate() {
            assert_eq!(cells.time(index).unwrap(), Some(expected), "{form:?}");
        }
    }

    #[test]
    fn flags_and_counts_read_from_every_form_and_bad_cells_are_named() {
        let cells = Cells::new(vec![Value::Int(1), Value::Bool(false), Value::Text("t".into()), Value::Int(-3)], "x");
        assert_eq!(
            (cells.bool(0).unwrap(), cells.bool(1).unwrap(), cells.bool(2).unwrap()),
            (Some(true), Some(false), Some(true))
        );
        assert_eq!(cells.count(3).unwrap(), 0);
        let error = Cells::new(vec![Value::Text("soon".into())], "runs").time(0).unwrap_err().to_string();
        assert!(error.contains("column 1 of a row of control table `runs` is not a time"), "{error}");
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        let name = status_name(&crate::orchestrator::RunStatus::RolledBack);
        assert_eq!(name, "rolled_back");
        let cells = Cells::new(vec![Value::Text(name), Value::Text("exploded".into())], "runs");
        assert_eq!(
            cells.status::<crate::orchestrator::RunStatus>(0).unwrap(),
            crate::orchestrator::RunStatus::RolledBack
        );
        assert!(
            cells
                .status::<crate::orchestrator::RunStatus>(1)
                .unwrap_err()
                .to_string()
                .contains("unknown status `exploded`")
        );
    }
}
