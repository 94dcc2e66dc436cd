//! PostgreSQL types and DMF's neutral ones: the catalog's [`DataType`] of a native type, a
//! result column decoded into a [`Value`], and a [`Value`] written as PostgreSQL input text
//! (for parameters and COPY).

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dmf_core::Value;
use dmf_core::catalog::DataType;
use tokio_postgres::types::Type;

/// The neutral type of a column. `pg_name` is the `pg_catalog` type name (`int4`, `varchar`;
/// `None` for types defined elsewhere: domains, enums, extensions), `formatted` the native
/// name from `format_type` (`character varying(20)`), which also gives length, precision and
/// scale.
pub(crate) fn data_type(pg_name: Option<&str>, formatted: &str) -> DataType {
    let modifiers = || -> Vec<u32> {
        let Some(open) = formatted.find('(') else { return Vec::new() };
        let Some(close) = formatted[open..].find(')') else { return Vec::new() };
        formatted[open + 1..open + close].split(',').filter_map(|n| n.trim().parse().ok()).collect()
    };
    match pg_name {
        Some("bool") => DataType::Bool,
        Some("int2") => DataType::Int16,
        Some("int4") => DataType::Int32,
        Some("int8") => DataType::Int64,
        Some("float4") => DataType::Float32,
        Some("float8") => DataType::Float64,
        Some("numeric") => match modifiers().as_slice() {
            [precision, scale] => DataType::Decimal { precision: Some(*precision), scale: Some(*scale) },
            [precision] => DataType::Decimal { precision: Some(*precision), scale: Some(0) },
            _ => DataType::Decimal { precision: None, scale: None },
        },
        Some("text") => DataType::Text { max_len: None },
        Some("varchar" | "bpchar") => DataType::Text { max_len: modifiers().first().copied() },
        Some("bytea") => DataType::Bytes,
        Some("date") => DataType::Date,
        Some("time") => DataType::Time,
        Some("timestamp") => DataType::Timestamp,
        Some("timestamptz") => DataType::TimestampTz,
        Some("uuid") => DataType::Uuid,
        Some("json" | "jsonb") => DataType::Json,
        _ => DataType::Other(formatted.to_owned()),
    }
}

/// True for columns read as `col::text` in a table whose rows are decoded as they are read
/// (one with a column of a type without a neutral form): exact decimals, JSON (kept as its
/// text) and every type without a neutral form.
pub(crate) fn read_as_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Decimal { .. } | DataType::Json | DataType::Other(_))
}

/// Decodes column `index` of `row`. The column's wire type decides the decoding; text
/// columns become [`Value::Decimal`], [`Value::Json`] or [`Value::Text`] by `data_type`.
pub(crate) fn decode(
    row: &tokio_postgres::Row,
    index: usize,
    data_type: &DataType,
) -> Result<Value, tokio_postgres::Error> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        index: usize,
        wrap: impl FnOnce(T) -> Value,
    ) -> Result<Value, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<T>>(index)?.map_or(Value::Null, wrap))
    }
    let ty = row.columns().get(index).map(|c| c.type_().clone()).unwrap_or(Type::TEXT);
    match ty {
        Type::BOOL => get(row, index, Value::Bool),
        Type::INT2 => get(row, index, |v: i16| Value::Int(v.into())),
        Type::INT4 => get(row, index, |v: i32| Value::Int(v.into())),
        Type::INT8 => get(row, index, Value::Int),
        Type::OID => get(row, index, |v: u32| Value::Int(v.into())),
        Type::FLOAT4 => get(row, index, |v: f32| Value::Float(v.into())),
        Type::FLOAT8 => get(row, index, Value::Float),
        Type::BYTEA => get(row, index, Value::Bytes),
        Type::DATE => get(row, index, Value::Date),
        Type::TIME => get(row, index, |t: crate::native::TimeOfDay| Value::Time(t.0)),
        Type::TIMESTAMP => get(row, index, Value::Timestamp),
        Type::TIMESTAMPTZ => get(row, index, |v: DateTime<Utc>| Value::TimestampTz(v)),
        Type::UUID => get(row, index, Value::Uuid),
        _ => match data_type {
            DataType::Decimal { .. } => get(row, index, Value::Decimal),
            DataType::Json => get(row, index, Value::Json),
            _ => get(row, index, Value::Text),
        },
    }
}

/// Every column of a result row as a [`Value`], each decoded by its column's type
/// ([`AnyValue`](crate::native::AnyValue)): for statements whose columns are not a catalog's
/// (the control plane's). A column of a type DMF has no value for is an error naming it.
pub(crate) fn row_values(row: &tokio_postgres::Row) -> Result<Vec<Value>, tokio_postgres::Error> {
    (0..row.len()).map(|i| row.try_get::<_, crate::native::AnyValue>(i).map(|cell| cell.0)).collect()
}

/// A value as PostgreSQL input text (what `'…'::type` accepts), `None` for NULL: booleans
/// `t`/`f`, bytes `\x…` hex, dates and timestamps in ISO form (`BC` for years before 1),
/// `timestamptz` with `+00`, floats with `NaN`/`Infinity` spelled PostgreSQL's way.
pub(crate) fn pg_text(value: &Value) -> Option<Cow<'_, str>> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => Cow::Borrowed(if *b { "t" } else { "f" }),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::Float(f) if f.is_nan() => Cow::Borrowed("NaN"),
        Value::Float(f) if f.is_infinite() => Cow::Borrowed(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
        Value::Float(f) => Cow::Owned(format!("{f:?}")),
        Value::Decimal(text) | Value::Text(text) | Value::Json(text) => Cow::Borrowed(text.as_str()),
        Value::Bytes(bytes) => {
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("\\x");
            for byte in bytes {
                let _ = write!(hex, "{byte:02x}");
            }
            Cow::Owned(hex)
        }
        Value::Date(date) => Cow::Owned(date_text(*date, None, "")),
        Value::Time(time) => Cow::Owned(time.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(ts) => Cow::Owned(date_text(ts.date(), Some(ts.time()), "")),
        Value::TimestampTz(ts) => {
            let naive: NaiveDateTime = ts.naive_utc();
            Cow::Owned(date_text(naive.date(), Some(naive.time()), "+00"))
        }
        Value::Uuid(uuid) => Cow::Owned(uuid.hyphenated().to_string()),
    })
}

/// `2024-02-29`, `2024-02-29 13:45:00.25+00`, `0044-03-15 BC` (chrono's year 0 is 1 BC).
fn date_text(date: NaiveDate, time: Option<NaiveTime>, zone: &str) -> String {
    let year = date.year();
    let (shown, era) = if year <= 0 { (1 - year, " BC") } else { (year, "") };
    let mut text = format!("{shown:04}-{:02}-{:02}", date.month(), date.day());
    if let Some(time) = time {
        let _ = write!(text, " {}", time.format("%H:%M:%S%.f"));
    }
    text.push_str(zone);
    text.push_str(era);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_types_map_to_neutral_ones() {
        let cases = [
            (Some("int2"), "smallint", DataType::Int16),
            (Some("int4"), "integer", DataType::Int32),
            (Some("int8"), "bigint", DataType::Int64),
            (Some("float4"), "real", DataType::Float32),
            (Some("float8"), "double precision", DataType::Float64),
            (Some("numeric"), "numeric(38,10)", DataType::Decimal { precision: Some(38), scale: Some(10) }),
            (Some("numeric"), "numeric(12)", DataType::Decimal { precision: Some(12), scale: Some(0) }),
            (Some("numeric"), "numeric", DataType::Decimal { precision: None, scale: None }),
            (Some("text"), "text", DataType::Text { max_len: None }),
            (Some("varchar"), "character varying(20)", DataType::Text { max_len: Some(20) }),
            (Some("varchar"), "character varying", DataType::Text { max_len: None }),
            (Some("bpchar"), "character(3)", DataType::Text { max_len: Some(3) }),
            (Some("bytea"), "bytea", DataType::Bytes),
            (Some("bool"), "boolean", DataType::Bool),
            (Some("date"), "date", DataType::Date),
            (Some("time"), "time(3) without time zone", DataType::Time),
            (Some("timestamp"), "timestamp without time zone", DataType::Timestamp),
            (Some("timestamptz"), "timestamp with time zone", DataType::TimestampTz),
            (Some("uuid"), "uuid", DataType::Uuid),
            (Some("json"), "json", DataType::Json),
            (Some("jsonb"), "jsonb", DataType::Json),
            (Some("interval"), "interval", DataType::Other("interval".into())),
            (Some("_int4"), "integer[]", DataType::Other("integer[]".into())),
            (None, "mood", DataType::Other("mood".into())),
            (None, "public.\"Int4\"", DataType::Other("public.\"Int4\"".into())),
        ];
        for (pg_name, formatted, expected) in cases {
            assert_eq!(data_type(pg_name, formatted), expected, "{formatted}");
        }
    }

    #[test]
    fn values_become_postgresql_input_text() {
        let text = |v: Value| pg_text(&v).map(Cow::into_owned);
        assert_eq!(text(Value::Null), None);
        assert_eq!(text(Value::Bool(true)).unwrap(), "t");
        assert_eq!(text(Value::Int(-42)).unwrap(), "-42");
        assert_eq!(text(Value::Float(0.1)).unwrap(), "0.1");
        assert_eq!(text(Value::Float(1e300)).unwrap(), "1e300");
        assert_eq!(text(Value::Float(f64::NEG_INFINITY)).unwrap(), "-Infinity");
        assert_eq!(text(Value::Float(f64::NAN)).unwrap(), "NaN");
        assert_eq!(text(Value::Decimal("-12.3400".into())).unwrap(), "-12.3400");
        assert_eq!(text(Value::Bytes(vec![0, 0xab, 0xff])).unwrap(), "\\x00abff");
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(text(Value::Date(date)).unwrap(), "2024-02-29");
        assert_eq!(text(Value::Date(NaiveDate::from_ymd_opt(-43, 3, 15).unwrap())).unwrap(), "0044-03-15 BC");
        let time = NaiveTime::from_hms_micro_opt(13, 45, 0, 250_000).unwrap();
        assert_eq!(text(Value::Time(time)).unwrap(), "13:45:00.250");
        assert_eq!(text(Value::Timestamp(date.and_time(time))).unwrap(), "2024-02-29 13:45:00.250");
        assert_eq!(text(Value::TimestampTz(date.and_time(time).and_utc())).unwrap(), "2024-02-29 13:45:00.250+00");
        let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(text(Value::Uuid(uuid)).unwrap(), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(text(Value::Json(r#"{"a": [1]}"#.into())).unwrap(), r#"{"a": [1]}"#);
    }

    #[test]
    fn only_exact_json_and_unknown_types_are_read_as_text() {
        assert!(read_as_text(&DataType::Decimal { precision: None, scale: None }));
        assert!(read_as_text(&DataType::Json));
        assert!(read_as_text(&DataType::Other("interval".into())));
        assert!(!read_as_text(&DataType::Text { max_len: None }));
        assert!(!read_as_text(&DataType::TimestampTz));
    }
}
