//! Rows in PostgreSQL's binary COPY format: a header, then per row the number of fields and each
//! field as its length (-1 for NULL) and the binary (`send`) form of the target column's type,
//! then a trailer.
//!
//! Each [`Value`] is encoded as what PostgreSQL's input function would make of its text (the
//! text COPY path), so both formats load the same data: fractions of microseconds are rounded
//! the way `timestamp_in` rounds them, decimals are read the way `numeric_in` reads them, a
//! float into a `real` column is rounded from its shortest text. A value that has no such exact
//! form is refused ([`Refusal`]); the loader then sends that batch as text.

use chrono::{Datelike, NaiveDateTime, NaiveTime, Timelike};
use dmf_core::{NativeEncoding, Value};
use tokio_postgres::types::{Kind, Type};

use super::numeric;
use crate::native::PgBinary;
use crate::types::pg_text;

/// The signature, no flags, no header extension.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The signature that starts the header: 11 bytes.
pub(crate) const SIGNATURE: &[u8] = HEADER.split_at(11).0;

/// A field count of -1 ends the data.
pub(crate) const TRAILER: &[u8] = &(-1_i16).to_be_bytes();

/// The length of a NULL field.
pub(crate) const NULL: [u8; 4] = (-1_i32).to_be_bytes();

/// chrono's day number (from 0001-01-01, day 1) of 2000-01-01, PostgreSQL's epoch.
const EPOCH_DAYS_FROM_CE: i64 = 730_120;
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
/// The dates PostgreSQL accepts, in days from 2000-01-01: from 4714-11-24 BC (Julian day 0)
/// up to, not including, Julian day 2147483494.
const DATE_RANGE: std::ops::Range<i64> = -2_451_545..2_147_483_494 - 2_451_545;
/// The timestamps PostgreSQL accepts, in microseconds from 2000-01-01: from 4714-11-24 BC up
/// to, not including, 294277-01-01.
const TIMESTAMP_RANGE: std::ops::Range<i64> = -211_813_488_000_000_000..9_223_371_331_200_000_000;

/// The binary form a column is sent in: one per PostgreSQL type DMF can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// `text`, `varchar` and `bpchar`: the bytes of the text (the receive function applies the
    /// column's length limit and padding, as the input function does).
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    /// A version byte (1), then the JSON text.
    Jsonb,
}

impl Wire {
    /// The binary form of a column of type `ty` (a domain's is its base type's); `None` for a
    /// type DMF does not encode (enums, ranges, arrays, composites, `interval`, `money`,
    /// extension types…).
    pub(crate) fn of(ty: &Type) -> Option<Wire> {
        if let Kind::Domain(base) = ty.kind() {
            return Wire::of(base);
        }
        Some(match *ty {
            Type::BOOL => Wire::Bool,
            Type::INT2 => Wire::Int2,
            Type::INT4 => Wire::Int4,
            Type::INT8 => Wire::Int8,
            Type::FLOAT4 => Wire::Float4,
            Type::FLOAT8 => Wire::Float8,
            Type::NUMERIC => Wire::Numeric,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR => Wire::Text,
            Type::BYTEA => Wire::Bytea,
            Type::DATE => Wire::Date,
            Type::TIME => Wire::Time,
            Type::TIMESTAMP => Wire::Timestamp,
            Type::TIMESTAMPTZ => Wire::TimestampTz,
            Type::UUID => Wire::Uuid,
            Type::JSON => Wire::Json,
            Type::JSONB => Wire::Jsonb,
            _ => return None,
        })
    }
}

/// Why a value was not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The value's kind has no exact binary form for the column's type (text into a `uuid`
    /// column: only the type's input function knows every spelling it accepts). Values of the
    /// column will keep coming in that kind: the loader switches to text for good.
    Kind,
    /// This value is outside what the binary form carries exactly (an integer out of the
    /// column's range, a decimal spelled in a way DMF does not read, a date before 4714 BC):
    /// PostgreSQL's input function decides, and names the value in its error if it refuses it.
    Value,
}

/// A value that was not encoded: where, what kind, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unencodable {
    /// The column's index among the loaded columns.
    pub(crate) column: usize,
    /// The value's kind (`Text`, `Int`…).
    pub(crate) kind: &'static str,
    /// Why.
    pub(crate) refusal: Refusal,
}

/// Encodes rows for a COPY of columns of known types.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BinaryRows {
    wires: Vec<Wire>,
    /// The number of fields, as each row starts with it.
    field_count: [u8; 2],
}

impl BinaryRows {
    /// Rows of columns sent as `wires`, in order (`None` past 32767 columns; PostgreSQL has at
    /// most 1600).
    pub(crate) fn new(wires: Vec<Wire>) -> Option<Self> {
        let field_count = i16::try_from(wires.len()).ok()?.to_be_bytes();
        Some(Self { wires, field_count })
    }

    /// The binary forms of the columns, in order.
    pub(crate) fn wires(&self) -> &[Wire] {
        &self.wires
    }

    /// The number of fields, as each row starts with it.
    pub(crate) fn field_count(&self) -> [u8; 2] {
        self.field_count
    }

    /// True for rows read from PostgreSQL in exactly these binary forms ([`PgBinary`]): their
    /// bytes are already rows of this COPY. The receive functions apply each target column's
    /// limits (length, precision, domain checks), as the input functions do for text.
    pub(crate) fn takes(&self, encoding: &dyn NativeEncoding) -> bool {
        encoding.as_any().downcast_ref::<PgBinary>().is_some_and(|read| read.columns() == self)
    }

    /// Appends one row. `null[i]` forces column `i` to NULL. On a refusal, `out` holds part of
    /// the row: the COPY must be abandoned.
    pub(crate) fn write_row<'v>(
        &self,
        out: &mut Vec<u8>,
        values: impl Iterator<Item = &'v Value>,
        null: &[bool],
    ) -> Result<(), Unencodable> {
        out.extend_from_slice(&self.field_count);
        for (column, (value, wire)) in values.zip(&self.wires).enumerate() {
            let value = if null.get(column).copied().unwrap_or(false) { &Value::Null } else { value };
            encode(out, *wire, value).map_err(|refusal| Unencodable { column, kind: kind_name(value), refusal })?;
        }
        Ok(())
    }
}

/// The name of a value's kind, for messages.
pub(crate) fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(_) => "Bool",
        Value::Int(_) => "Int",
        Value::Float(_) => "Float",
        Value::Decimal(_) => "Decimal",
        Value::Text(_) => "Text",
        Value::Bytes(_) => "Bytes",
        Value::Date(_) => "Date",
        Value::Time(_) => "Time",
        Value::Timestamp(_) => "Timestamp",
        Value::TimestampTz(_) => "TimestampTz",
        Value::Uuid(_) => "Uuid",
        Value::Json(_) => "Json",
    }
}

/// A value in the binary form of `wire` as a bound parameter carries it: the bytes of its COPY
/// field, without the length before them; `None` for NULL.
pub(crate) fn parameter(wire: Wire, value: &Value) -> Result<Option<Vec<u8>>, Refusal> {
    if value.is_null() {
        return Ok(None);
    }
    let mut field = Vec::new();
    encode(&mut field, wire, value)?;
    // A field starts with its length: four bytes.
    field.drain(..4);
    Ok(Some(field))
}

/// Appends one field: its length, then its bytes.
fn encode(out: &mut Vec<u8>, wire: Wire, value: &Value) -> Result<(), Refusal> {
    match (wire, value) {
        (_, Value::Null) => out.extend_from_slice(&NULL),
        (Wire::Bool, Value::Bool(b)) => fixed(out, &[u8::from(*b)]),
        // Text arrives for a domain column (read as text): its plainest spellings are read
        // here, any other is left to the input function.
        (Wire::Bool, Value::Text(text)) => fixed(out, &[u8::from(plain_bool(text)?)]),
        (Wire::Int2, Value::Int(i)) => fixed(out, &i16::try_from(*i).map_err(|_| Refusal::Value)?.to_be_bytes()),
        (Wire::Int2, Value::Text(text)) => fixed(out, &plain_int::<i16>(text)?.to_be_bytes()),
        (Wire::Int4, Value::Int(i)) => fixed(out, &i32::try_from(*i).map_err(|_| Refusal::Value)?.to_be_bytes()),
        (Wire::Int4, Value::Text(text)) => fixed(out, &plain_int::<i32>(text)?.to_be_bytes()),
        (Wire::Int8, Value::Int(i)) => fixed(out, &i.to_be_bytes()),
        (Wire::Int8, Value::Text(text)) => fixed(out, &plain_int::<i64>(text)?.to_be_bytes()),
        // Rounded to the nearest, ties to even, as strtof/strtod round the integer's text.
        (Wire::Float4, Value::Int(i)) => fixed(out, &(*i as f32).to_be_bytes()),
        (Wire::Float4, Value::Float(f)) => fixed(out, &float4(*f)?.to_be_bytes()),
        (Wire::Float8, Value::Int(i)) => fixed(out, &(*i as f64).to_be_bytes()),
        (Wire::Float8, Value::Float(f)) => {
            let f = if f.is_nan() { f64::NAN } else { *f };
            fixed(out, &f.to_be_bytes())
        }
        (Wire::Numeric, Value::Decimal(text) | Value::Text(text)) => {
            variable(out, |out| numeric::write_text(out, text))?
        }
        (Wire::Numeric, Value::Int(i)) => variable(out, |out| {
            numeric::write_int(out, *i);
            Ok(())
        })?,
        (Wire::Numeric, Value::Float(f)) => variable(out, |out| numeric::write_float(out, *f))?,
        // Every value's input text is valid input for these types' receive functions, which
        // read it exactly as their input functions do.
        (Wire::Text | Wire::Json, value) => bytes(out, &[], value_text(value)?.as_bytes())?,
        (Wire::Jsonb, value) => bytes(out, &[1], value_text(value)?.as_bytes())?,
        (Wire::Bytea, Value::Bytes(b)) => bytes(out, &[], b)?,
        (Wire::Date, Value::Date(d)) => {
            let days = i64::from(d.num_days_from_ce()) - EPOCH_DAYS_FROM_CE;
            if !DATE_RANGE.contains(&days) {
                return Err(Refusal::Value);
            }
            fixed(out, &i32::try_from(days).map_err(|_| Refusal::Value)?.to_be_bytes())
        }
        (Wire::Time, Value::Time(t)) => fixed(out, &time_micros(*t)?.to_be_bytes()),
        (Wire::Timestamp, Value::Timestamp(ts)) => fixed(out, &timestamp_micros(*ts)?.to_be_bytes()),
        // `2024-01-31` is midnight; `… 12:00:00+00` into a timestamp without time zone keeps
        // the wall time and drops the zone.
        (Wire::Timestamp, Value::Date(d)) => fixed(out, &timestamp_micros(d.and_time(NaiveTime::MIN))?.to_be_bytes()),
        (Wire::Timestamp | Wire::TimestampTz, Value::TimestampTz(ts)) => {
            fixed(out, &timestamp_micros(ts.naive_utc())?.to_be_bytes())
        }
        (Wire::Uuid, Value::Uuid(u)) => fixed(out, u.as_bytes()),
        (Wire::Uuid, Value::Text(text)) => fixed(out, plain_uuid(text)?.as_bytes()),
        _ => return Err(Refusal::Kind),
    }
    Ok(())
}

/// `[+-]digits` as `int2in`/`int4in`/`int8in` read it; any other spelling (spaces, and from
/// PostgreSQL 16 underscores and `0x` prefixes) is refused, as is a value out of range.
fn plain_int<T: std::str::FromStr>(text: &str) -> Result<T, Refusal> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Value);
    }
    text.parse().map_err(|_| Refusal::Value)
}

/// `t`, `f`, `true` or `false` (what PostgreSQL prints, and `boolin` reads in any case); its
/// other spellings are refused.
fn plain_bool(text: &str) -> Result<bool, Refusal> {
    match text {
        _ if text.eq_ignore_ascii_case("t") || text.eq_ignore_ascii_case("true") => Ok(true),
        _ if text.eq_ignore_ascii_case("f") || text.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(Refusal::Value),
    }
}

/// A UUID as 32 hex digits, plain or hyphenated 8-4-4-4-12 (which `uuid_in` and the uuid crate
/// read alike); braces and other hyphenations are refused.
fn plain_uuid(text: &str) -> Result<uuid::Uuid, Refusal> {
    let hyphenated = text.len() == 36 && [8, 13, 18, 23].iter().all(|&i| text.as_bytes()[i] == b'-');
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let plain = (text.len() == 32 && hex(text))
        || (hyphenated && text.split('-').all(hex) && text.bytes().filter(|&b| b == b'-').count() == 4);
    if !plain {
        return Err(Refusal::Value);
    }
    uuid::Uuid::parse_str(text).map_err(|_| Refusal::Value)
}

fn value_text(value: &Value) -> Result<std::borrow::Cow<'_, str>, Refusal> {
    pg_text(value).ok_or(Refusal::Value)
}

/// A field of fixed length (at most 16 bytes).
fn fixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A field of `prefix` then `bytes`.
fn bytes(out: &mut Vec<u8>, prefix: &[u8], bytes: &[u8]) -> Result<(), Refusal> {
    let len = i32::try_from(prefix.len() + bytes.len()).map_err(|_| Refusal::Value)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(prefix);
    out.extend_from_slice(bytes);
    Ok(())
}

/// A field written by `write`, its length filled in afterwards.
fn variable(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> Result<(), Refusal>) -> Result<(), Refusal> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out)?;
    let len = i32::try_from(out.len() - start - 4).map_err(|_| Refusal::Value)?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A float as a `real`: what `float4in` makes of its shortest text (strtof, correctly
/// rounded), refused where `float4in` reports it out of range (it overflows to infinity or a
/// non-zero value underflows to zero).
fn float4(f: f64) -> Result<f32, Refusal> {
    if f.is_nan() {
        return Ok(f32::NAN);
    }
    let narrow = f as f32;
    if f64::from(narrow) == f {
        return Ok(narrow);
    }
    // Not exactly a float4: round its text, as the text path does (rounding the f64 itself
    // could differ where the f64 lies exactly between two float4 values).
    let rounded: f32 = format!("{f:?}").parse().map_err(|_| Refusal::Value)?;
    if rounded.is_infinite() || rounded == 0.0 {
        return Err(Refusal::Value);
    }
    Ok(rounded)
}

/// Microseconds since midnight. Fractions of a microsecond are rounded as PostgreSQL rounds the
/// nine digits the text path prints: `rint(strtod(".123456789") * 1e6)`, ties to even.
fn time_micros(time: NaiveTime) -> Result<i64, Refusal> {
    let nanos = time.nanosecond();
    if nanos >= 1_000_000_000 {
        // A leap second (`23:59:60`): left to the input function.
        return Err(Refusal::Value);
    }
    let fraction = if nanos % 1000 == 0 {
        i64::from(nanos / 1000)
    } else {
        // Both operands are exact, so the quotient is the double nearest to 0.nnnnnnnnn, as
        // strtod reads it.
        (f64::from(nanos) / 1e9 * 1e6).round_ties_even() as i64
    };
    Ok(i64::from(time.num_seconds_from_midnight()) * 1_000_000 + fraction)
}

/// Microseconds since 2000-01-01 00:00, refused outside PostgreSQL's range.
fn timestamp_micros(ts: NaiveDateTime) -> Result<i64, Refusal> {
    let days = i64::from(ts.date().num_days_from_ce()) - EPOCH_DAYS_FROM_CE;
    let micros = days
        .checked_mul(MICROS_PER_DAY)
        .and_then(|m| m.checked_add(time_micros(ts.time()).ok()?))
        .ok_or(Refusal::Value)?;
    if TIMESTAMP_RANGE.contains(&micros) { Ok(micros) } else { Err(Refusal::Value) }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn field(wire: Wire, value: Value) -> Result<Vec<u8>, Refusal> {
        let mut out = Vec::new();
        encode(&mut out, wire, &value)?;
        let len = i32::from_be_bytes(out[..4].try_into().unwrap());
        if len >= 0 {
            assert_eq!(out.len(), 4 + len as usize, "{wire:?}");
        }
        Ok(out[4..].to_vec())
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_parameter_is_its_field_without_the_length() {
        assert_eq!(parameter(Wire::Int2, &Value::Int(-2)).unwrap(), Some(vec![0xff, 0xfe]));
        assert_eq!(parameter(Wire::Jsonb, &Value::Json("[1]".into())).unwrap(), Some(b"\x01[1]".to_vec()));
        assert_eq!(parameter(Wire::Uuid, &Value::Null).unwrap(), None);
        assert_eq!(parameter(Wire::Int2, &Value::Int(40_000)), Err(Refusal::Value));
        assert_eq!(parameter(Wire::Date, &Value::Bool(true)), Err(Refusal::Kind));
    }

    #[test]
    fn the_stream_starts_with_the_signature_and_ends_with_minus_one() {
        assert_eq!(HEADER.len(), 19);
        assert_eq!(&HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(TRAILER, [0xff, 0xff]);
    }

    #[test]
    fn rows_carry_their_field_count_and_deferred_columns_are_null() {
        let rows = BinaryRows::new(vec![Wire::Int4, Wire::Int8, Wire::Text]).unwrap();
        let mut out = Vec::new();
        let values = [Value::Int(1), Value::Int(7), Value::Text("x".into())];
        rows.write_row(&mut out, values.iter(), &[false, true, false]).unwrap();
        assert_eq!(out, [&[0, 3][..], &[0, 0, 0, 4, 0, 0, 0, 1], &NULL, &[0, 0, 0, 1, b'x']].concat());
    }

    #[test]
    fn a_refusal_names_the_column_and_the_kind() {
        let rows = BinaryRows::new(vec![Wire::Int4, Wire::Date]).unwrap();
        let values = [Value::Int(1), Value::Text("2024-01-31".into())];
        let refused = rows.write_row(&mut Vec::new(), values.iter(), &[]).unwrap_err();
        assert_eq!(refused, Unencodable { column: 1, kind: "Text", refusal: Refusal::Kind });
    }

    #[test]
    fn only_types_with_an_encoding_are_sent_in_binary() {
        assert_eq!(Wire::of(&Type::VARCHAR), Some(Wire::Text));
        assert_eq!(Wire::of(&Type::JSONB), Some(Wire::Jsonb));
        assert_eq!(Wire::of(&Type::INTERVAL), None);
        assert_eq!(Wire::of(&Type::INT4_ARRAY), None);
        assert_eq!(Wire::of(&Type::NAME), None);
        let domain = Type::new("positive".into(), 99_999, Kind::Domain(Type::INT4), "public".into());
        assert_eq!(Wire::of(&domain), Some(Wire::Int4));
        let mood = Type::new("mood".into(), 99_998, Kind::Enum(vec!["ok".into()]), "public".into());
        assert_eq!(Wire::of(&mood), None);
    }

    #[test]
    fn integers_fit_their_column_or_are_left_to_postgresql() {
        assert_eq!(field(Wire::Int2, Value::Int(-2)).unwrap(), [0xff, 0xfe]);
        assert_eq!(field(Wire::Int2, Value::Int(40_000)), Err(Refusal::Value));
        assert_eq!(field(Wire::Int4, Value::Int(i64::from(i32::MIN))).unwrap(), [0x80, 0, 0, 0]);
        assert_eq!(field(Wire::Int4, Value::Int(1 << 31)), Err(Refusal::Value));
        assert_eq!(field(Wire::Int8, Value::Int(i64::MAX)).unwrap(), i64::MAX.to_be_bytes());
        assert_eq!(field(Wire::Int8, Value::Float(1.0)), Err(Refusal::Kind));
        assert_eq!(field(Wire::Bool, Value::Bool(true)).unwrap(), [1]);
        assert_eq!(field(Wire::Bool, Value::Int(1)), Err(Refusal::Kind));
    }

    #[test]
    fn text_of_a_domain_column_is_read_in_its_plainest_spellings_only() {
        assert_eq!(field(Wire::Int4, Value::Text("-42".into())).unwrap(), (-42_i32).to_be_bytes());
        assert_eq!(field(Wire::Int8, Value::Text("+7".into())).unwrap(), 7_i64.to_be_bytes());
        for text in [" 1", "1 ", "", "-", "1_000", "0x1F", "40000"] {
            assert_eq!(field(Wire::Int2, Value::Text(text.into())), Err(Refusal::Value), "{text:?}");
        }
        assert_eq!(field(Wire::Bool, Value::Text("TRUE".into())).unwrap(), [1]);
        assert_eq!(field(Wire::Bool, Value::Text("f".into())).unwrap(), [0]);
        assert_eq!(field(Wire::Bool, Value::Text("yes".into())), Err(Refusal::Value));
        assert_eq!(
            field(Wire::Numeric, Value::Text("1.50".into())).unwrap(),
            [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]
        );
        let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        for text in ["01234567-89ab-cdef-0123-456789ABCDEF", "0123456789abcdef0123456789abcdef"] {
            assert_eq!(field(Wire::Uuid, Value::Text(text.into())).unwrap(), uuid.as_bytes(), "{text}");
        }
        for text in ["{01234567-89ab-cdef-0123-456789abcdef}", "0123-4567-89ab-cdef-0123-4567-89ab-cdef", "urn:uuid:x"]
        {
            assert_eq!(field(Wire::Uuid, Value::Text(text.into())), Err(Refusal::Value), "{text}");
        }
        assert_eq!(field(Wire::Date, Value::Text("2024-01-01".into())), Err(Refusal::Kind));
    }

    #[test]
    fn floats_keep_their_bits_and_reals_round_like_strtof() {
        assert_eq!(field(Wire::Float8, Value::Float(-0.0)).unwrap(), (-0.0_f64).to_be_bytes());
        assert_eq!(field(Wire::Float8, Value::Float(f64::INFINITY)).unwrap(), f64::INFINITY.to_be_bytes());
        assert_eq!(field(Wire::Float8, Value::Float(-f64::NAN)).unwrap(), f64::NAN.to_be_bytes());
        assert_eq!(field(Wire::Float8, Value::Int((1 << 53) + 1)).unwrap(), ((1_u64 << 53) as f64).to_be_bytes());
        assert_eq!(field(Wire::Float4, Value::Float(f64::from(0.1_f32))).unwrap(), 0.1_f32.to_be_bytes());
        assert_eq!(field(Wire::Float4, Value::Float(0.1)).unwrap(), 0.1_f32.to_be_bytes());
        assert_eq!(field(Wire::Float4, Value::Float(f64::NEG_INFINITY)).unwrap(), f32::NEG_INFINITY.to_be_bytes());
        assert_eq!(field(Wire::Float4, Value::Float(1e300)), Err(Refusal::Value));
        assert_eq!(field(Wire::Float4, Value::Float(1e-300)), Err(Refusal::Value));
        assert_eq!(field(Wire::Float4, Value::Int(16_777_217)).unwrap(), 16_777_216_f32.to_be_bytes());
    }

    #[test]
    fn dates_and_times_count_from_2000() {
        assert_eq!(field(Wire::Date, Value::Date(date(2000, 1, 1))).unwrap(), 0_i32.to_be_bytes());
        assert_eq!(field(Wire::Date, Value::Date(date(1999, 12, 31))).unwrap(), (-1_i32).to_be_bytes());
        assert_eq!(field(Wire::Date, Value::Date(date(-4713, 11, 24))).unwrap(), (-2_451_545_i32).to_be_bytes());
        assert_eq!(field(Wire::Date, Value::Date(date(-4713, 11, 23))), Err(Refusal::Value));
        let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
        let micros = |ts: NaiveDateTime| {
            i64::from_be_bytes(field(Wire::Timestamp, Value::Timestamp(ts)).unwrap()[..].try_into().unwrap())
        };
        assert_eq!(micros(date(2000, 1, 2).and_time(noon)), MICROS_PER_DAY * 3 / 2);
        assert_eq!(micros(date(1970, 1, 1).and_time(NaiveTime::MIN)), -946_684_800_000_000);
        assert_eq!(field(Wire::Timestamp, Value::Date(date(2000, 1, 2))).unwrap(), MICROS_PER_DAY.to_be_bytes());
        assert_eq!(
            field(Wire::Timestamp, Value::TimestampTz(date(2000, 1, 2).and_time(noon).and_utc())).unwrap(),
            (MICROS_PER_DAY * 3 / 2).to_be_bytes()
        );
        assert_eq!(field(Wire::TimestampTz, Value::Timestamp(date(2000, 1, 2).and_time(noon))), Err(Refusal::Kind));
        assert_eq!(field(Wire::Timestamp, Value::Timestamp(date(-4714, 1, 1).and_time(noon))), Err(Refusal::Value));
    }

    #[test]
    fn fractions_of_a_microsecond_round_half_to_even_like_the_text_path() {
        let at = |nanos| time_micros(NaiveTime::from_hms_nano_opt(0, 0, 0, nanos).unwrap()).unwrap();
        assert_eq!(at(123_456_000), 123_456);
        assert_eq!(at(123_456_789), 123_457);
        assert_eq!(at(123_456_499), 123_456);
        assert_eq!(at(999_999_600), 1_000_000);
        let late = NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_900).unwrap();
        assert_eq!(time_micros(late).unwrap(), MICROS_PER_DAY);
        let leap = NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
        assert_eq!(time_micros(leap), Err(Refusal::Value));
    }

    #[test]
    fn text_json_and_bytes_are_sent_as_they_are() {
        assert_eq!(field(Wire::Text, Value::Text("a\tb\\n".into())).unwrap(), b"a\tb\\n");
        assert_eq!(field(Wire::Text, Value::Text(String::new())).unwrap(), b"");
        assert_eq!(field(Wire::Text, Value::Int(-5)).unwrap(), b"-5");
        assert_eq!(field(Wire::Json, Value::Json("{\"é\": 1}".into())).unwrap(), "{\"é\": 1}".as_bytes());
        assert_eq!(field(Wire::Jsonb, Value::Json("[]".into())).unwrap(), b"\x01[]");
        assert_eq!(field(Wire::Bytea, Value::Bytes(vec![0, 0x5c, 0])).unwrap(), [0, 0x5c, 0]);
        assert_eq!(field(Wire::Bytea, Value::Text("\\x00".into())), Err(Refusal::Kind));
        let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(field(Wire::Uuid, Value::Uuid(uuid)).unwrap(), uuid.as_bytes());
        let mut out = Vec::new();
        encode(&mut out, Wire::Uuid, &Value::Null).unwrap();
        assert_eq!(out, NULL);
    }
}
