//! Rows read in PostgreSQL's binary form and kept in it ([`PgBinary`]): a page query's result
//! row is turned into one row of binary COPY data (the field count, then each field's length and
//! bytes), which a [`PgLoader`](crate::PgLoader) into columns of the same binary forms writes as
//! it is. The values are decoded only when something asks for them.

use std::any::Any;
use std::error::Error as StdError;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dmf_core::catalog::DataType;
use dmf_core::{NativeEncoding, Value};
use tokio_postgres::types::{FromSql, Type};

use crate::copy::binary::Wire;

type BoxError = Box<dyn StdError + Sync + Send>;

const NULL: [u8; 4] = (-1_i32).to_be_bytes();

/// Rows whose columns are sent in these binary forms, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgBinary {
    /// The table read, for messages.
    table: String,
    wires: Vec<Wire>,
    /// The columns' neutral types, which decide a text field's [`Value`] kind.
    types: Vec<DataType>,
    field_count: [u8; 2],
}

/// Why a field of a result row cannot be kept.
#[derive(Debug)]
pub(crate) struct BadField {
    /// The column's index.
    pub(crate) column: usize,
    pub(crate) error: BoxError,
}

impl PgBinary {
    /// Rows of `table` with columns of `types` (the statement's result types) and
    /// `data_types`; `Err` with the index of a column whose type has no binary form DMF decodes
    /// (past 32767 columns: the last one).
    pub(crate) fn new(table: String, types: &[&Type], data_types: &[DataType]) -> Result<Self, usize> {
        let wires: Vec<Wire> =
            types.iter().enumerate().map(|(i, ty)| Wire::of(ty).ok_or(i)).collect::<Result<_, _>>()?;
        let field_count = i16::try_from(wires.len()).map_err(|_| wires.len().saturating_sub(1))?.to_be_bytes();
        Ok(Self { table, wires, types: data_types.to_vec(), field_count })
    }

    /// The binary forms of the columns.
    pub(crate) fn wires(&self) -> &[Wire] {
        &self.wires
    }

    /// Appends `row` as one row of binary COPY data, after checking that each field decodes
    /// (so that [`NativeEncoding::decode`] cannot fail later); on an error `out` holds part of
    /// the row.
    pub(crate) fn append(&self, out: &mut Vec<u8>, row: &tokio_postgres::Row) -> Result<(), BadField> {
        out.extend_from_slice(&self.field_count);
        for (column, wire) in self.wires.iter().enumerate() {
            let field = row.try_get::<_, Option<Raw<'_>>>(column).map_err(|e| BadField { column, error: e.into() })?;
            match field {
                None => out.extend_from_slice(&NULL),
                Some(Raw(raw)) => {
                    check(*wire, raw).map_err(|error| BadField { column, error })?;
                    let len = i32::try_from(raw.len()).map_err(|e| BadField { column, error: e.into() })?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(raw);
                }
            }
        }
        Ok(())
    }

    fn decode_row(&self, mut bytes: &[u8]) -> Result<Vec<Value>, BoxError> {
        let count = take::<2>(&mut bytes)?;
        if count != self.field_count {
            return Err("the row's field count is not its columns'".into());
        }
        let mut values = Vec::with_capacity(self.wires.len());
        for (wire, data_type) in self.wires.iter().zip(&self.types) {
            let len = i32::from_be_bytes(take::<4>(&mut bytes)?);
            let Ok(len) = usize::try_from(len) else {
                values.push(Value::Null);
                continue;
            };
            let raw = bytes.get(..len).ok_or("a field runs past the row")?;
            bytes = &bytes[len..];
            values.push(decode(*wire, data_type, raw)?);
        }
        Ok(values)
    }
}

impl NativeEncoding for PgBinary {
    fn decode(&self, bytes: &[u8]) -> Vec<Value> {
        self.decode_row(bytes).unwrap_or_else(|error| {
            // Checked when read: cannot happen short of a bug.
            tracing::error!(
                table = %self.table, %error,
                "a PostgreSQL row checked when read did not decode; its values are NULL"
            );
            vec![Value::Null; self.wires.len()]
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], BoxError> {
    let (head, rest) = bytes.split_first_chunk::<N>().ok_or("the row ends early")?;
    *bytes = rest;
    Ok(*head)
}

/// A field's bytes, whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Checks that a field decodes, without allocating.
pub(crate) fn check(wire: Wire, raw: &[u8]) -> Result<(), BoxError> {
    match wire {
        Wire::Text | Wire::Json => std::str::from_utf8(raw).map(drop).map_err(Into::into),
        Wire::Jsonb => jsonb_text(raw).map(drop),
        Wire::Bytea => Ok(()),
        Wire::Numeric => numeric_parts(raw).map(drop),
        // No allocation for these.
        _ => decode(wire, &DataType::Bool, raw).map(drop),
    }
}

/// A field's value, as [`crate::types::decode`] gives it for a result column of this type:
/// numerics as [`Value::Decimal`] in `numeric_out`'s text, JSON as [`Value::Json`].
fn decode(wire: Wire, data_type: &DataType, raw: &[u8]) -> Result<Value, BoxError> {
    fn get<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> Result<T, BoxError> {
        T::from_sql(ty, raw)
    }
    Ok(match wire {
        Wire::Bool => Value::Bool(get(&Type::BOOL, raw)?),
        Wire::Int2 => Value::Int(get::<i16>(&Type::INT2, raw)?.into()),
        Wire::Int4 => Value::Int(get::<i32>(&Type::INT4, raw)?.into()),
        Wire::Int8 => Value::Int(get(&Type::INT8, raw)?),
        Wire::Float4 => Value::Float(get::<f32>(&Type::FLOAT4, raw)?.into()),
        Wire::Float8 => Value::Float(get(&Type::FLOAT8, raw)?),
        Wire::Numeric => Value::Decimal(numeric_text(raw)?),
        Wire::Text => {
            let text = get::<String>(&Type::TEXT, raw)?;
            match data_type {
                DataType::Decimal { .. } => Value::Decimal(text),
                DataType::Json => Value::Json(text),
                _ => Value::Text(text),
            }
        }
        Wire::Json => Value::Json(get(&Type::TEXT, raw)?),
        Wire::Jsonb => Value::Json(jsonb_text(raw)?.to_owned()),
        Wire::Bytea => Value::Bytes(raw.to_vec()),
        Wire::Date => Value::Date(get::<NaiveDate>(&Type::DATE, raw)?),
        Wire::Time => Value::Time(time(raw)?),
        Wire::Timestamp => Value::Timestamp(get::<NaiveDateTime>(&Type::TIMESTAMP, raw)?),
        Wire::TimestampTz => Value::TimestampTz(get::<DateTime<Utc>>(&Type::TIMESTAMPTZ, raw)?),
        Wire::Uuid => Value::Uuid(get(&Type::UUID, raw)?),
    })
}

/// A `time`: microseconds since midnight. PostgreSQL also has `24:00:00`, which a `NaiveTime`
/// cannot hold (chrono's decoding would wrap it to midnight): refused.
pub(crate) fn time(raw: &[u8]) -> Result<NaiveTime, BoxError> {
    let micros = i64::from_sql(&Type::INT8, raw)?;
    if !(0..86_400_000_000).contains(&micros) {
        return Err(format!(
            "the time {micros} microseconds after midnight (24:00:00 or more) has no time-of-day value"
        )
        .into());
    }
    NaiveTime::from_sql(&Type::TIME, raw)
}

/// A `time` read as [`time`] reads it, for a result column decoded as it arrives.
pub(crate) struct TimeOfDay(pub(crate) NaiveTime);

impl<'a> FromSql<'a> for TimeOfDay {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        time(raw).map(TimeOfDay)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIME
    }
}

/// The text of a `jsonb` field: a version byte (1), then the JSON text.
fn jsonb_text(raw: &[u8]) -> Result<&str, BoxError> {
    match raw.split_first() {
        Some((1, text)) => Ok(std::str::from_utf8(text)?),
        _ => Err("unknown jsonb binary version".into()),
    }
}

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;
const NAN: u16 = 0xC000;
const INFINITY: u16 = 0xD000;
const NEG_INFINITY: u16 = 0xF000;

/// The parts of a binary `numeric`: sign, weight, display scale and base-10000 digits.
struct NumericParts<'a> {
    sign: u16,
    weight: i16,
    scale: u16,
    /// Big-endian i16 digits, each 0..=9999.
    digits: &'a [u8],
}

impl NumericParts<'_> {
    fn digit(&self, index: i32) -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.digits.get(2 * i..2 * i + 2))
            .map_or(0, |d| u16::from_be_bytes([d[0], d[1]]))
    }

    fn count(&self) -> i32 {
        (self.digits.len() / 2) as i32
    }
}

fn numeric_parts(raw: &[u8]) -> Result<NumericParts<'_>, BoxError> {
    let (header, digits) = raw.split_first_chunk::<8>().ok_or("a numeric shorter than its header")?;
    let count = i16::from_be_bytes([header[0], header[1]]);
    let parts = NumericParts {
        weight: i16::from_be_bytes([header[2], header[3]]),
        sign: u16::from_be_bytes([header[4], header[5]]),
        scale: u16::from_be_bytes([header[6], header[7]]),
        digits,
    };
    if usize::try_from(count).ok().map(|c| 2 * c) != Some(digits.len()) {
        return Err("a numeric's digits do not match its digit count".into());
    }
    if !matches!(parts.sign, POSITIVE | NEGATIVE | NAN | INFINITY | NEG_INFINITY) {
        return Err(format!("a numeric with an unknown sign {:#06x}", parts.sign).into());
    }
    if parts.scale > 0x3FFF {
        return Err(format!("a numeric with a display scale of {}", parts.scale).into());
    }
    if (0..parts.count()).any(|i| parts.digit(i) > 9999) {
        return Err("a numeric digit above 9999".into());
    }
    Ok(parts)
}

/// A binary `numeric` as `numeric_out` prints it: every integer digit, then exactly the display
/// scale's digits after the point (`12.30`, `-0.001`, `0`), or `NaN`, `Infinity`, `-Infinity`.
fn numeric_text(raw: &[u8]) -> Result<String, BoxError> {
    use std::fmt::Write as _;
    let parts = numeric_parts(raw)?;
    match parts.sign {
        NAN => return Ok("NaN".to_owned()),
        INFINITY => return Ok("Infinity".to_owned()),
        NEG_INFINITY => return Ok("-Infinity".to_owned()),
        _ => {}
    }
    let weight = i32::from(parts.weight);
    let scale = usize::from(parts.scale);
    let mut text = String::with_capacity(2 + 4 * (weight.max(0) as usize + 1) + scale);
    if parts.sign == NEGATIVE {
        text.push('-');
    }
    let mut index = 0;
    if weight < 0 {
        text.push('0');
        index = weight + 1;
    } else {
        while index <= weight {
            let digit = parts.digit(index);
            let _ = if index == 0 { write!(text, "{digit}") } else { write!(text, "{digit:04}") };
            index += 1;
        }
    }
    if scale > 0 {
        text.push('.');
        let end = text.len() + scale;
        while text.len() < end {
            let _ = write!(text, "{:04}", parts.digit(index));
            index += 1;
        }
        text.truncate(end);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::numeric;
    use proptest::prelude::*;

    fn binary(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        numeric::write_text(&mut out, text).unwrap();
        out
    }

    #[test]
    fn numerics_print_as_numeric_out_does() {
        for text in [
            "0",
            "12.30",
            "-0.001",
            "10000",
            "99990000.0001",
            "0.00000001",
            "1234567890123456789.123456789",
            "-5",
            "NaN",
            "Infinity",
            "-Infinity",
            "0.0",
            "100000000",
        ] {
            assert_eq!(numeric_text(&binary(text)).unwrap(), text);
        }
    }

    #[test]
    fn malformed_numerics_are_refused() {
        assert!(numeric_text(&[0, 1, 0, 0, 0, 0, 0, 0]).is_err(), "a digit missing");
        assert!(numeric_text(&[0, 0, 0, 0, 0x12, 0x34, 0, 0]).is_err(), "unknown sign");
        assert!(numeric_text(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).is_err(), "digit 10000");
        assert!(numeric_text(&[0, 0]).is_err(), "short header");
        assert!(numeric_text(&[0, 0, 0, 0, 0, 0, 0x40, 0]).is_err(), "scale above 0x3FFF");
    }

    proptest! {
        /// Decimals in the form `numeric_out` prints (no leading zeros, any scale) come back
        /// as they were written.
        #[test]
        fn numerics_round_trip(negative: bool, int in "[1-9][0-9]{0,30}|0", frac in "[0-9]{0,30}") {
            let mut text = String::new();
            if negative && !(int == "0" && frac.chars().all(|c| c == '0')) {
                text.push('-');
            }
            text.push_str(&int);
            if !frac.is_empty() {
                text.push('.');
                text.push_str(&frac);
            }
            prop_assert_eq!(numeric_text(&binary(&text)).unwrap(), text);
        }
    }

    #[test]
    fn fields_are_checked_and_decoded_by_their_binary_form() {
        assert_eq!(decode(Wire::Int4, &DataType::Int32, &7_i32.to_be_bytes()).unwrap(), Value::Int(7));
        assert!(check(Wire::Int4, &[0, 1]).is_err(), "wrong length");
        assert!(check(Wire::Text, &[0xff]).is_err(), "not UTF-8");
        assert_eq!(decode(Wire::Jsonb, &DataType::Json, b"\x01{}").unwrap(), Value::Json("{}".into()));
        assert!(check(Wire::Jsonb, b"\x02{}").is_err(), "unknown version");
        // infinity: PostgreSQL keeps it, chrono cannot.
        assert!(check(Wire::TimestampTz, &i64::MAX.to_be_bytes()).is_err());
        // 24:00:00: PostgreSQL keeps it, chrono would wrap it to midnight.
        assert!(check(Wire::Time, &86_400_000_000_i64.to_be_bytes()).is_err());
        let noon = decode(Wire::Time, &DataType::Time, &43_200_000_000_i64.to_be_bytes()).unwrap();
        assert_eq!(noon, Value::Time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
        let encoding = PgBinary {
            table: "t".into(),
            wires: vec![Wire::Int8, Wire::Text, Wire::Numeric],
            types: vec![
                DataType::Int64,
                DataType::Text { max_len: None },
                DataType::Decimal { precision: None, scale: None },
            ],
            field_count: 3_i16.to_be_bytes(),
        };
        let mut row = vec![0, 3];
        row.extend_from_slice(&8_i32.to_be_bytes());
        row.extend_from_slice(&42_i64.to_be_bytes());
        row.extend_from_slice(&NULL);
        let amount = binary("-1.50");
        row.extend_from_slice(&(amount.len() as i32).to_be_bytes());
        row.extend_from_slice(&amount);
        assert_eq!(encoding.decode(&row), [Value::Int(42), Value::Null, Value::Decimal("-1.50".into())]);
        assert_eq!(encoding.decode(&row[..5]), [Value::Null, Value::Null, Value::Null], "a cut row");

        // A COPY into columns of the same binary forms takes the bytes as they are.
        let copy = |wires: Vec<Wire>| crate::copy::binary::BinaryRows::new(wires).unwrap();
        assert!(copy(vec![Wire::Int8, Wire::Text, Wire::Numeric]).takes(&encoding));
        assert!(!copy(vec![Wire::Int4, Wire::Text, Wire::Numeric]).takes(&encoding), "bigint into integer");
        assert!(!copy(vec![Wire::Int8, Wire::Text]).takes(&encoding), "fewer columns");
    }
}
