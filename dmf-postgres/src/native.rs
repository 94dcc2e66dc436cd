//! Rows read in PostgreSQL's binary form and kept in it ([`PgBinary`]): a page is read by a
//! binary `COPY` out, and each of its rows stays one row of binary COPY data (the field count,
//! then each field's length and bytes), which a [`PgLoader`](crate::PgLoader) into columns of the
//! same binary forms writes as it is. The values are decoded only when something asks for them.

use std::any::Any;
use std::error::Error as StdError;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dmf_core::{NativeEncoding, Value};
use tokio_postgres::types::{FromSql, Kind, Type};

use crate::copy::binary::{BinaryRows, MICROS_PER_DAY, SIGNATURE, Wire};
use crate::copy::numeric;

type BoxError = Box<dyn StdError + Sync + Send>;

/// Rows whose columns are sent in these binary forms, in order: rows of a binary COPY of
/// columns of those forms.
#[derive(Debug)]
pub(crate) struct PgBinary {
    /// The table read, for messages.
    table: String,
    columns: BinaryRows,
}

/// Why a page of binary COPY data cannot be kept.
#[derive(Debug)]
pub(crate) enum BadPage {
    /// A field does not decode as its column's binary form says (a value DMF cannot
    /// represent: a timestamp of `infinity`, text that is not UTF-8).
    Field {
        /// Where the row starts in the data.
        row: usize,
        /// The column's index.
        column: usize,
        /// Why the field does not decode.
        error: BoxError,
    },
    /// The data is not binary COPY data of these columns.
    Malformed(String),
}

impl PgBinary {
    /// Rows of `table` with columns of `types` (the statement's result types); `Err` with the
    /// index of a column whose type has no binary form DMF decodes (past 32767 columns: the
    /// last one).
    pub(crate) fn new(table: String, types: &[&Type]) -> Result<Self, usize> {
        let wires: Vec<Wire> =
            types.iter().enumerate().map(|(i, ty)| Wire::of(ty).ok_or(i)).collect::<Result<_, _>>()?;
        let last = wires.len().saturating_sub(1);
        Ok(Self { table, columns: BinaryRows::new(wires).ok_or(last)? })
    }

    /// The rows' binary forms, as those of a COPY.
    pub(crate) fn columns(&self) -> &BinaryRows {
        &self.columns
    }

    /// Walks the rows of a binary COPY out of columns of these binary forms (the signature and
    /// header, the rows, the trailer), passing `row` the range of `bytes` of each, one row of
    /// binary COPY data, in order; checks that every field decodes, so that
    /// [`NativeEncoding::decode`] cannot fail later.
    pub(crate) fn rows(&self, bytes: &[u8], mut row: impl FnMut(Range<usize>)) -> Result<(), BadPage> {
        let mut data = Cursor { bytes, at: 0 };
        if data.take(SIGNATURE.len()) != Some(SIGNATURE) {
            return Err(data.malformed("no binary COPY signature"));
        }
        let flags = data.i32().ok_or_else(|| data.malformed("the header ends early"))?;
        // The low 16 bits are flags a reader may ignore; bit 16 says rows carry OIDs.
        if flags >> 16 != 0 {
            return Err(data.malformed(&format!("header flags {flags:#x}, which DMF does not read")));
        }
        let extension = data.i32().ok_or_else(|| data.malformed("the header ends early"))?;
        usize::try_from(extension)
            .ok()
            .and_then(|len| data.take(len))
            .ok_or_else(|| data.malformed("the header extension runs past the data"))?;
        let wires = self.columns.wires();
        loop {
            let start = data.at;
            let count = data.i16().ok_or_else(|| data.malformed("the data ends without its trailer"))?;
            if count == -1 {
                if data.at != bytes.len() {
                    return Err(data.malformed("data after the trailer"));
                }
                return Ok(());
            }
            if usize::try_from(count).ok() != Some(wires.len()) {
                return Err(data.malformed(&format!("a row of {count} fields, not {}", wires.len())));
            }
            for (column, wire) in wires.iter().enumerate() {
                let len = data.i32().ok_or_else(|| data.malformed("a row ends early"))?;
                if len == -1 {
                    continue;
                }
                let raw = usize::try_from(len)
                    .ok()
                    .and_then(|len| data.take(len))
                    .ok_or_else(|| data.malformed(&format!("a field of length {len} runs past the data")))?;
                check(*wire, raw).map_err(|error| BadPage::Field { row: start, column, error })?;
            }
            row(start..data.at);
        }
    }

    /// The most rows `len` bytes of binary COPY data can hold (each is at least its field count
    /// and each field's length).
    pub(crate) fn most_rows(&self, len: usize) -> usize {
        len / (2 + 4 * self.columns.wires().len())
    }

    /// The value of `column` in the row of binary COPY data that `row` starts with; `None` when
    /// it does not decode.
    pub(crate) fn field(&self, row: &[u8], column: usize) -> Option<Value> {
        let raw = *self.fields(row).ok()?.get(column)?;
        let wire = *self.columns.wires().get(column)?;
        raw.map_or(Some(Value::Null), |raw| decode(wire, raw).ok())
    }

    fn decode_row(&self, bytes: &[u8]) -> Result<Vec<Value>, BoxError> {
        let fields = self.fields(bytes)?;
        fields
            .into_iter()
            .zip(self.columns.wires())
            .map(|(raw, wire)| raw.map_or(Ok(Value::Null), |raw| decode(*wire, raw)))
            .collect()
    }

    /// The fields of the row of binary COPY data that `bytes` starts with (`None` for a NULL);
    /// `Err` when it has another field count or is cut short.
    fn fields<'a>(&self, mut bytes: &'a [u8]) -> Result<Vec<Option<&'a [u8]>>, BoxError> {
        if take::<2>(&mut bytes)? != self.columns.field_count() {
            return Err("the row's field count is not its columns'".into());
        }
        self.columns
            .wires()
            .iter()
            .map(|_| {
                let len = i32::from_be_bytes(take::<4>(&mut bytes)?);
                let Ok(len) = usize::try_from(len) else { return Ok(None) };
                let raw = bytes.get(..len).ok_or("a field runs past the row")?;
                bytes = &bytes[len..];
                Ok(Some(raw))
            })
            .collect()
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
            vec![Value::Null; self.columns.wires().len()]
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

/// Reads binary COPY data front to back.
struct Cursor<'a> {
    bytes: &'a [u8],
    /// The offset of the next byte.
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let taken = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(taken)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }

    fn malformed(&self, what: &str) -> BadPage {
        BadPage::Malformed(format!("{what} (at byte {} of {})", self.at, self.bytes.len()))
    }
}

/// Checks that a field decodes, without allocating.
pub(crate) fn check(wire: Wire, raw: &[u8]) -> Result<(), BoxError> {
    match wire {
        Wire::Text | Wire::Json => std::str::from_utf8(raw).map(drop).map_err(Into::into),
        Wire::Jsonb => jsonb_text(raw).map(drop),
        Wire::Bytea => Ok(()),
        Wire::Numeric => numeric::check(raw),
        // No allocation for these.
        _ => decode(wire, raw).map(drop),
    }
}

/// A field's value, as [`crate::types::decode`] gives it for a result column of this type:
/// numerics as [`Value::Decimal`] in `numeric_out`'s text, JSON as [`Value::Json`].
fn decode(wire: Wire, raw: &[u8]) -> Result<Value, BoxError> {
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
        Wire::Numeric => Value::Decimal(numeric::read_text(raw)?),
        Wire::Text => Value::Text(get(&Type::TEXT, raw)?),
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
    if !(0..MICROS_PER_DAY).contains(&micros) {
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

/// A result column of any type DMF decodes, read as [`decode`] reads a field of its binary
/// form (numerics as [`Value::Decimal`], JSON as [`Value::Json`]); `oid` as an integer and
/// other text-like types (`name`, `citext`…) as text. NULL is [`Value::Null`].
pub(crate) struct AnyValue(pub(crate) Value);

impl<'a> FromSql<'a> for AnyValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        match Wire::of(ty) {
            Some(wire) => decode(wire, raw),
            None if *ty == Type::OID => u32::from_sql(ty, raw).map(|oid| Value::Int(oid.into())),
            // An enum's binary form is its label (rule checks read enum keys).
            None if matches!(ty.kind(), Kind::Enum(_)) => Ok(Value::Text(std::str::from_utf8(raw)?.to_owned())),
            None => String::from_sql(ty, raw).map(Value::Text),
        }
        .map(AnyValue)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(AnyValue(Value::Null))
    }

    fn accepts(ty: &Type) -> bool {
        Wire::of(ty).is_some()
            || *ty == Type::OID
            || matches!(ty.kind(), Kind::Enum(_))
            || <String as FromSql>::accepts(ty)
    }
}

/// The text of a `jsonb` field: a version byte (1), then the JSON text.
fn jsonb_text(raw: &[u8]) -> Result<&str, BoxError> {
    match raw.split_first() {
        Some((1, text)) => Ok(std::str::from_utf8(text)?),
        _ => Err("unknown jsonb binary version".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::binary::{HEADER, NULL, TRAILER};

    fn binary(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        numeric::write_text(&mut out, text).unwrap();
        out
    }

    #[test]
    fn fields_are_checked_and_decoded_by_their_binary_form() {
        assert_eq!(decode(Wire::Int4, &7_i32.to_be_bytes()).unwrap(), Value::Int(7));
        assert!(check(Wire::Int4, &[0, 1]).is_err(), "wrong length");
        assert!(check(Wire::Text, &[0xff]).is_err(), "not UTF-8");
        assert_eq!(decode(Wire::Jsonb, b"\x01{}").unwrap(), Value::Json("{}".into()));
        assert!(check(Wire::Jsonb, b"\x02{}").is_err(), "unknown version");
        // infinity: PostgreSQL keeps it, chrono cannot.
        assert!(check(Wire::TimestampTz, &i64::MAX.to_be_bytes()).is_err());
        // 24:00:00: PostgreSQL keeps it, chrono would wrap it to midnight.
        assert!(check(Wire::Time, &86_400_000_000_i64.to_be_bytes()).is_err());
        let noon = decode(Wire::Time, &43_200_000_000_i64.to_be_bytes()).unwrap();
        assert_eq!(noon, Value::Time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
        let encoding = PgBinary::new("t".into(), &[&Type::INT8, &Type::TEXT, &Type::NUMERIC]).unwrap();
        let mut row = vec![0, 3];
        row.extend_from_slice(&8_i32.to_be_bytes());
        row.extend_from_slice(&42_i64.to_be_bytes());
        row.extend_from_slice(&NULL);
        let amount = binary("-1.50");
        row.extend_from_slice(&(amount.len() as i32).to_be_bytes());
        row.extend_from_slice(&amount);
        assert_eq!(encoding.decode(&row), [Value::Int(42), Value::Null, Value::Decimal("-1.50".into())]);
        assert_eq!(encoding.decode(&row[..5]), [Value::Null, Value::Null, Value::Null], "a cut row");

        // A page read by a binary COPY out: its rows, each field checked.
        let page = |rows: &[&[u8]]| {
            let mut out = HEADER.to_vec();
            rows.iter().for_each(|row| out.extend_from_slice(row));
            out.extend_from_slice(TRAILER);
            out
        };
        let (at, len) = (HEADER.len(), row.len());
        let ranges = |bytes: &[u8]| {
            let mut ranges = Vec::new();
            encoding.rows(bytes, |range| ranges.push(range)).map(|()| ranges)
        };
        let two = page(&[&row, &row]);
        assert_eq!(ranges(&two).unwrap(), [at..at + len, at + len..at + 2 * len]);
        assert!(ranges(&page(&[])).unwrap().is_empty());
        let mut extended = two.clone();
        extended.splice(15..19, [0, 0, 0, 2, 7, 7]);
        assert_eq!(ranges(&extended).unwrap(), [at + 2..at + 2 + len, at + 2 + len..at + 2 + 2 * len]);
        let malformed = |bytes: &[u8]| matches!(ranges(bytes), Err(BadPage::Malformed(_)));
        assert!(malformed(&two[1..]), "no signature");
        assert!(malformed(&two[..two.len() - 1]), "no trailer");
        assert!(malformed(&[two.as_slice(), &[0]].concat()), "data after the trailer");
        assert!(malformed(&page(&[&row[..len - 1]])), "a cut row");
        assert!(malformed(&page(&[&[0, 2]])), "another field count");
        let mut negative = page(&[&row]);
        negative[at + 2..at + 6].copy_from_slice(&(-2_i32).to_be_bytes());
        assert!(malformed(&negative), "a field length of -2");
        let mut extension = two.clone();
        extension[15..19].copy_from_slice(&(-1_i32).to_be_bytes());
        assert!(malformed(&extension), "a negative header extension");
        let mut oids = two.clone();
        oids[11..15].copy_from_slice(&0x1_0000_i32.to_be_bytes());
        assert!(malformed(&oids), "rows with OIDs");
        let mut not_utf8 = vec![0, 3];
        not_utf8.extend_from_slice(&NULL);
        not_utf8.extend_from_slice(&[0, 0, 0, 1, 0xff]);
        not_utf8.extend_from_slice(&NULL);
        let bad = ranges(&page(&[&row, &not_utf8]));
        let second = at + len;
        assert!(matches!(bad, Err(BadPage::Field { row, column: 1, .. }) if row == second), "{bad:?}");
        let data = page(&[&row, &not_utf8]);
        assert_eq!(encoding.field(&data[second..], 0), Some(Value::Null));
        assert_eq!(encoding.field(&data[second..], 1), None, "does not decode");
        assert_eq!(encoding.field(&data[at..], 0), Some(Value::Int(42)));
        assert_eq!(encoding.field(&data[at..], 2), Some(Value::Decimal("-1.50".into())));

        // A COPY into columns of the same binary forms takes the bytes as they are.
        let copy = |wires: Vec<Wire>| crate::copy::binary::BinaryRows::new(wires).unwrap();
        assert!(copy(vec![Wire::Int8, Wire::Text, Wire::Numeric]).takes(&encoding));
        assert!(!copy(vec![Wire::Int4, Wire::Text, Wire::Numeric]).takes(&encoding), "bigint into integer");
        assert!(!copy(vec![Wire::Int8, Wire::Text]).takes(&encoding), "fewer columns");
    }
}
