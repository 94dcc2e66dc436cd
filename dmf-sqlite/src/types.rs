//! SQLite declared types ⇄ DMF's neutral types, and values both ways.
//!
//! SQLite stores values by storage class (NULL, INTEGER, REAL, TEXT, BLOB), whatever a column's
//! declared type. DMF reads the declared type to know what a value means:
//!
//! | declared type contains | neutral type | stored as |
//! |---|---|---|
//! | `BOOL` | Bool | INTEGER 0/1 |
//! | `INT` (`SMALLINT`/`INT2` → Int16, `INT4`/`MEDIUMINT` → Int32, else Int64) | Int | INTEGER |
//! | `REAL`, `FLOA`, `DOUB` | Float64 | REAL |
//! | `DECIMAL`, `NUMERIC` (with `(p,s)`) | Decimal | TEXT when the type also contains `TEXT`, else what SQLite's NUMERIC affinity makes of it |
//! | `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE` | TimestampTz | TEXT `YYYY-MM-DD HH:MM:SS[.ffffff]+00:00` |
//! | `TIMESTAMP`, `DATETIME` | Timestamp | TEXT `YYYY-MM-DD HH:MM:SS[.ffffff]` |
//! | `DATE` | Date | TEXT `YYYY-MM-DD` |
//! | `TIME` | Time | TEXT `HH:MM:SS[.ffffff]` |
//! | `UUID` | Uuid | TEXT, lower-case with hyphens |
//! | `JSON` | Json | TEXT |
//! | `CHAR`, `CLOB`, `TEXT` (`VARCHAR(n)` keeps n) | Text | TEXT |
//! | `BLOB`, `BYTEA`, or no type | Bytes | BLOB |
//!
//! A fraction of a second is written (six digits) only when it is not zero: `2024-01-02 03:04:05`
//! stays as SQLite's `datetime()` wrote it. Values compare by what they mean, not by their text.
//!
//! SQLite's NUMERIC affinity turns `12345678901234567890.5` into a floating-point number, losing
//! digits. To keep every digit of an exact decimal, declare it with `TEXT` in the type name, for
//! example `DECIMAL_TEXT(38,10)`: it reads as `Decimal { 38, 10 }` and is stored as text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dmf_core::Value;
use dmf_core::catalog::DataType;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::timestamp_text::{format_timestamp, parse_common_timestamp};

/// The neutral type of a declared SQLite type.
pub fn data_type(declared: &str) -> DataType {
    let upper = declared.to_ascii_uppercase();
    let (base, params) = match upper.split_once('(') {
        Some((base, rest)) => (base.trim().to_owned(), rest.trim_end_matches(')').to_owned()),
        None => (upper.trim().to_owned(), String::new()),
    };
    let numbers: Vec<u32> = params.split(',').filter_map(|p| p.trim().parse().ok()).collect();
    let has = |word: &str| base.contains(word);
    if base.is_empty() || has("BLOB") || has("BYTEA") {
        DataType::Bytes
    } else if has("BOOL") {
        DataType::Bool
    } else if has("DECIMAL") || has("NUMERIC") {
        DataType::Decimal { precision: numbers.first().copied(), scale: numbers.get(1).copied() }
    } else if has("TIMESTAMPTZ") || (has("TIMESTAMP") && has("TIME ZONE") && !has("WITHOUT")) {
        DataType::TimestampTz
    } else if has("TIMESTAMP") || has("DATETIME") {
        DataType::Timestamp
    } else if has("INT") {
        if has("SMALLINT") || has("INT2") {
            DataType::Int16
        } else if has("INT4") || has("MEDIUMINT") {
            DataType::Int32
        } else {
            DataType::Int64
        }
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        DataType::Float64
    } else if has("UUID") {
        DataType::Uuid
    } else if has("JSON") {
        DataType::Json
    } else if base == "DATE" {
        DataType::Date
    } else if base == "TIME" {
        DataType::Time
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        DataType::Text { max_len: numbers.first().copied() }
    } else {
        DataType::Other(declared.to_owned())
    }
}

/// A value as SQLite stores it.
pub fn to_sql(value: &Value) -> ToSqlOutput<'_> {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Null => ToSqlOutput::Owned(Sql::Null),
        Value::Bool(b) => ToSqlOutput::Owned(Sql::Integer(i64::from(*b))),
        Value::Int(i) => ToSqlOutput::Owned(Sql::Integer(*i)),
        Value::Float(f) => ToSqlOutput::Owned(Sql::Real(*f)),
        Value::Decimal(text) | Value::Text(text) | Value::Json(text) => {
            ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
        }
        Value::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        Value::Date(d) => ToSqlOutput::Owned(Sql::Text(d.format("%Y-%m-%d").to_string())),
        Value::Time(t) => ToSqlOutput::Owned(Sql::Text(format_time(t))),
        Value::Timestamp(ts) => ToSqlOutput::Owned(Sql::Text(format_timestamp(ts, ""))),
        Value::TimestampTz(ts) => ToSqlOutput::Owned(Sql::Text(format_timestamp(&ts.naive_utc(), "+00:00"))),
        Value::Uuid(u) => ToSqlOutput::Owned(Sql::Text(u.hyphenated().to_string())),
    }
}

/// `HH:MM:SS.ffffff`, without the fraction when it is zero (as timestamps are written).
fn format_time(time: &NaiveTime) -> String {
    use chrono::Timelike;
    let format = if time.nanosecond() / 1000 == 0 { "%H:%M:%S" } else { "%H:%M:%S%.6f" };
    time.format(format).to_string()
}

/// Why a stored value could not be read as its column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The value as stored, shortened.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

/// Reads a stored value as `data_type`.
pub fn from_sql(raw: ValueRef<'_>, data_type: &DataType) -> Result<Value, Unreadable> {
    let unreadable = |value: String, expected| Err(Unreadable { value: shorten(&value), expected });
    Ok(match (raw, data_type) {
        (ValueRef::Null, _) => Value::Null,
        // An expression of a query source has no declared type: read by its storage class.
        (ValueRef::Integer(i), DataType::Other(t)) if t.is_empty() => Value::Int(i),
        (ValueRef::Real(f), DataType::Other(t)) if t.is_empty() => Value::Float(f),
        (ValueRef::Integer(i), DataType::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), DataType::Float32 | DataType::Float64) => Value::Float(i as f64),
        (ValueRef::Integer(i), DataType::Decimal { .. }) => Value::Decimal(i.to_string()),
        (ValueRef::Integer(i), DataType::Text { .. } | DataType::Other(_)) => Value::Text(i.to_string()),
        (ValueRef::Integer(i), _) => Value::Int(i),
        (ValueRef::Real(f), DataType::Decimal { .. }) => Value::Decimal(format!("{f}")),
        (ValueRef::Real(f), DataType::Int16 | DataType::Int32 | DataType::Int64) if f.fract() == 0.0 => {
            Value::Int(f as i64)
        }
        (ValueRef::Real(f), DataType::Text { .. } | DataType::Other(_)) => Value::Text(format!("{f}")),
        (ValueRef::Real(f), _) => Value::Float(f),
        (ValueRef::Blob(b), DataType::Uuid) if b.len() == 16 => {
            Value::Uuid(uuid::Uuid::from_slice(b).map_err(|_| Unreadable { value: hex(b), expected: "a UUID" })?)
        }
        (ValueRef::Blob(b), DataType::Text { .. } | DataType::Json) => match std::str::from_utf8(b) {
            Ok(text) if matches!(data_type, DataType::Json) => Value::Json(text.to_owned()),
            Ok(text) => Value::Text(text.to_owned()),
            Err(_) => Value::Bytes(b.to_vec()),
        },
        (ValueRef::Blob(b), _) => Value::Bytes(b.to_vec()),
        (ValueRef::Text(bytes), _) => {
            let text = String::from_utf8_lossy(bytes);
            match data_type {
                DataType::Bool => match text.trim().to_ascii_lowercase().as_str() {
                    "1" | "t" | "true" | "y" | "yes" => Value::Bool(true),
                    "0" | "f" | "false" | "n" | "no" => Value::Bool(false),
                    _ => return unreadable(text.into_owned(), "a boolean"),
                },
                DataType::Int16 | DataType::Int32 | DataType::Int64 => match text.trim().parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => return unreadable(text.into_owned(), "an integer"),
                },
                DataType::Float32 | DataType::Float64 => match text.trim().parse::<f64>() {
                    Ok(f) => Value::Float(f),
                    Err(_) => return unreadable(text.into_owned(), "a number"),
                },
                DataType::Decimal { .. } => Value::Decimal(text.trim().to_owned()),
                DataType::Date => match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
                    Ok(d) => Value::Date(d),
                    Err(_) => return unreadable(text.into_owned(), "a date (YYYY-MM-DD)"),
                },
                DataType::Time => match NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f") {
                    Ok(t) => Value::Time(t),
                    Err(_) => return unreadable(text.into_owned(), "a time (HH:MM:SS)"),
                },
                DataType::Timestamp => match parse_timestamp(&text) {
                    Some(ts) => Value::Timestamp(ts),
                    None => return unreadable(text.into_owned(), "a timestamp (YYYY-MM-DD HH:MM:SS)"),
                },
                DataType::TimestampTz => match parse_timestamptz(&text) {
                    Some(ts) => Value::TimestampTz(ts),
                    None => return unreadable(text.into_owned(), "a timestamp with a UTC offset"),
                },
                DataType::Uuid => match uuid::Uuid::parse_str(text.trim()) {
                    Ok(u) => Value::Uuid(u),
                    Err(_) => return unreadable(text.into_owned(), "a UUID"),
                },
                DataType::Json => Value::Json(text.into_owned()),
                DataType::Bytes => Value::Bytes(bytes.to_vec()),
                DataType::Text { .. } | DataType::Other(_) => Value::Text(text.into_owned()),
            }
        }
    })
}

fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Some(ts) = parse_common_timestamp(text) {
        return Some(ts);
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
}

fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // The form DMF writes, read without chrono's format interpreter.
    if let Some(ts) = text.strip_suffix("+00:00").or_else(|| text.strip_suffix('Z')).and_then(parse_common_timestamp) {
        return Some(ts.and_utc());
    }
    let normalized = match text.strip_suffix('Z') {
        Some(rest) => format!("{rest}+00:00"),
        None => text.to_owned(),
    };
    ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
        .iter()
        .find_map(|format| DateTime::parse_from_str(&normalized, format).ok())
        .map(|ts| ts.with_timezone(&Utc))
        // A timestamp stored without an offset is taken as UTC.
        .or_else(|| parse_timestamp(text).map(|naive| naive.and_utc()))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types() {
        assert_eq!(data_type("INTEGER"), DataType::Int64);
        assert_eq!(data_type("smallint"), DataType::Int16);
        assert_eq!(data_type("VARCHAR(40)"), DataType::Text { max_len: Some(40) });
        assert_eq!(data_type("DECIMAL_TEXT(38,10)"), DataType::Decimal { precision: Some(38), scale: Some(10) });
        assert_eq!(data_type("NUMERIC"), DataType::Decimal { precision: None, scale: None });
        assert_eq!(data_type("TIMESTAMPTZ"), DataType::TimestampTz);
        assert_eq!(data_type("TIMESTAMP WITH TIME ZONE"), DataType::TimestampTz);
        assert_eq!(data_type("TIMESTAMP WITHOUT TIME ZONE"), DataType::Timestamp);
        assert_eq!(data_type("DATETIME"), DataType::Timestamp);
        assert_eq!(data_type("DATE"), DataType::Date);
        assert_eq!(data_type("TIME"), DataType::Time);
        assert_eq!(data_type(""), DataType::Bytes);
        assert_eq!(data_type("BLOB"), DataType::Bytes);
        assert_eq!(data_type("UUID"), DataType::Uuid);
        assert_eq!(data_type("JSONB"), DataType::Json);
        assert_eq!(data_type("BOOLEAN"), DataType::Bool);
        assert_eq!(data_type("DOUBLE PRECISION"), DataType::Float64);
        assert_eq!(data_type("GEOMETRY"), DataType::Other("GEOMETRY".into()));
    }

    fn round_trip(value: Value, data_type: DataType) {
        let stored = match to_sql(&value) {
            ToSqlOutput::Borrowed(v) => match v {
                ValueRef::Null => rusqlite::types::Value::Null,
                ValueRef::Integer(i) => rusqlite::types::Value::Integer(i),
                ValueRef::Real(f) => rusqlite::types::Value::Real(f),
                ValueRef::Text(t) => rusqlite::types::Value::Text(String::from_utf8(t.to_vec()).unwrap()),
                ValueRef::Blob(b) => rusqlite::types::Value::Blob(b.to_vec()),
            },
            ToSqlOutput::Owned(v) => v,
            _ => unreachable!(),
        };
        let back = from_sql(ValueRef::from(&stored), &data_type).unwrap();
        assert_eq!(back, value, "through {stored:?}");
    }

    #[test]
    fn values_round_trip() {
        let ts = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_hms_micro_opt(23, 59, 58, 123_456).unwrap();
        round_trip(Value::Null, DataType::Int64);
        round_trip(Value::Bool(true), DataType::Bool);
        round_trip(Value::Int(-7), DataType::Int64);
        round_trip(Value::Float(0.1), DataType::Float64);
        round_trip(
            Value::Decimal("12345678901234567890123456789.0123456789".into()),
            DataType::Decimal { precision: Some(38), scale: Some(10) },
        );
        round_trip(Value::Text("héllo 🦀".into()), DataType::Text { max_len: None });
        round_trip(Value::Bytes(vec![0, 1, 255]), DataType::Bytes);
        round_trip(Value::Date(ts.date()), DataType::Date);
        round_trip(Value::Time(ts.time()), DataType::Time);
        round_trip(Value::Timestamp(ts), DataType::Timestamp);
        round_trip(Value::TimestampTz(ts.and_utc()), DataType::TimestampTz);
        round_trip(Value::Uuid(uuid::Uuid::from_u128(0x1234)), DataType::Uuid);
        round_trip(Value::Json(r#"{"a": [1, 2]}"#.into()), DataType::Json);
    }

    #[test]
    fn whole_seconds_keep_their_text_form() {
        let stored = |value: &Value| match to_sql(value) {
            ToSqlOutput::Owned(rusqlite::types::Value::Text(text)) => text,
            other => panic!("{other:?}"),
        };
        for (text, data_type) in [
            ("2024-01-02 03:04:05", DataType::Timestamp),
            ("2024-01-02 03:04:05.250000", DataType::Timestamp),
            ("2024-01-02 03:04:05+00:00", DataType::TimestampTz),
            ("03:04:05", DataType::Time),
            ("03:04:05.000001", DataType::Time),
        ] {
            let value = from_sql(ValueRef::Text(text.as_bytes()), &data_type).unwrap();
            assert_eq!(stored(&value), text, "{data_type:?}");
            round_trip(value, data_type);
        }
        // Another spelling of the same instant reads as the same value: verification calls them
        // equal whatever their text.
        let six = from_sql(ValueRef::Text(b"2024-01-02 03:04:05.000000"), &DataType::Timestamp).unwrap();
        let none = from_sql(ValueRef::Text(b"2024-01-02 03:04:05"), &DataType::Timestamp).unwrap();
        assert_eq!(six, none);
        assert_eq!(six.canonical(), none.canonical());
    }

    #[test]
    fn other_spellings_are_read_and_bad_values_named() {
        let text = |s: &'static str| ValueRef::Text(s.as_bytes());
        let tz = from_sql(text("2024-01-02T03:04:05Z"), &DataType::TimestampTz).unwrap();
        assert_eq!(tz.canonical(), "2024-01-02T03:04:05.000000Z");
        let shifted = from_sql(text("2024-01-02 05:04:05+02:00"), &DataType::TimestampTz).unwrap();
        assert_eq!(shifted, tz);
        assert_eq!(from_sql(ValueRef::Integer(1), &DataType::Bool).unwrap(), Value::Bool(true));
        let bad = from_sql(text("yesterday"), &DataType::Date).unwrap_err();
        assert_eq!(bad, Unreadable { value: "yesterday".into(), expected: "a date (YYYY-MM-DD)" });
    }
}
