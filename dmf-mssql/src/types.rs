//! SQL Server types and DMF's neutral ones: every native type ([`SqlType`]) with its
//! [`DataType`], a result cell ([`ColumnData`]) decoded into a [`Value`], and a [`Value`]
//! encoded as the exact [`ColumnData`] a column of a given type takes in a bulk load (tiberius
//! sends bulk rows without any implicit conversion) or as a parameter.
//!
//! | SQL Server type | [`DataType`] | read as [`Value`] | written from [`Value`] (bulk) |
//! |---|---|---|---|
//! | `bit` | `Bool` | `Bool` | `Bool`; `Int` 0/1 |
//! | `tinyint` | `Int16` | `Int` | `Int` in 0..=255 (also `Bool`, integral `Float`/`Decimal`/`Text`) |
//! | `smallint` | `Int16` | `Int` | `Int` in range (as above) |
//! | `int` | `Int32` | `Int` | `Int` in range (as above) |
//! | `bigint` | `Int64` | `Int` | `Int` (as above) |
//! | `decimal(p,s)`, `numeric(p,s)` | `Decimal { p, s }` | `Decimal` (exact text) | `Decimal`, `Int`, `Float`, `Text` with at most `s` decimals |
//! | `money` | `Decimal { 19, 4 }` | `Decimal` (read as `CAST(… AS decimal(19,4))`: tiberius would give a lossy float) | as `decimal(19,4)` |
//! | `smallmoney` | `Decimal { 10, 4 }` | `Decimal` (read as `decimal(10,4)`) | as `decimal(10,4)` |
//! | `float` | `Float64` | `Float` | `Float`, `Int`, `Decimal` |
//! | `real` | `Float32` | `Float` | `Float` (as `f32`), `Int` |
//! | `date` | `Date` | `Date` | `Date`; `Timestamp` at midnight |
//! | `time(n)` | `Time` | `Time` | `Time`, truncated to `n` digits |
//! | `datetime` | `Timestamp` | `Timestamp` (1/300 s ticks, exact) | `Timestamp`, rounded to 1/300 s; `Date` |
//! | `datetime2(n)` | `Timestamp` | `Timestamp` | `Timestamp`, truncated to `n` digits; `Date`; `TimestampTz` as UTC |
//! | `smalldatetime` | `Timestamp` | `Timestamp` | `Timestamp`, rounded to the minute |
//! | `datetimeoffset(n)` | `TimestampTz` | `TimestampTz` (UTC) | `TimestampTz`, stored with offset +00:00; `Timestamp` taken as UTC |
//! | `char(n)`, `varchar(n)`, `nchar(n)`, `nvarchar(n)` | `Text { Some(n) }` | `Text` | any value, as its text (`Text`/`Json` as is) |
//! | `varchar(max)`, `nvarchar(max)`, `text`, `ntext` | `Text { None }` | `Text` | as above (an empty `text` or `ntext` value by a parameterised insert of its row: Babelfish 4.3 stores a bulk-loaded one as NULL) |
//! | `binary(n)`, `varbinary(n)`, `varbinary(max)`, `image` | `Bytes` | `Bytes` | `Bytes` (a row with an `image` column by a parameterised insert: tiberius cannot bulk-load one) |
//! | `uniqueidentifier` | `Uuid` | `Uuid` | `Uuid`; `Text` holding a UUID |
//! | `xml` | `Other("xml")` | `Text` | `Text`/`Json` |
//! | `rowversion` (`timestamp`) | `Other("rowversion")`, generated | `Int` (the 8 bytes as a big-endian bigint, a watermark) | never written |
//! | `sql_variant`, `hierarchyid`, `geometry`, `geography`, other CLR types | `Other(name)` | refused: [`unsupported_reason`] names the column and what to do | refused |
//!
//! `varchar` values are sent as Unicode and encoded by tiberius with the column's code page;
//! a character the code page lacks fails the batch as a data error.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use dmf_core::Value;
use dmf_core::catalog::DataType;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime as TdsDateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::xml::XmlData;
use tiberius::{ColumnData, Uuid};

/// A length of a character or binary type: characters for `char`/`nchar` families, bytes
/// for `binary` families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// `(max)`.
    Max,
    /// `(n)`.
    Fixed(u32),
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Length::Max => f.write_str("max"),
            Length::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A SQL Server column type, as DMF understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    /// `bit`.
    Bit,
    /// `tinyint` (0 to 255).
    TinyInt,
    /// `smallint`.
    SmallInt,
    /// `int`.
    Int,
    /// `bigint`.
    BigInt,
    /// `decimal(p,s)` / `numeric(p,s)`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `money` (read and written as `decimal(19,4)`).
    Money,
    /// `smallmoney` (as `decimal(10,4)`).
    SmallMoney,
    /// `float` (`float(53)`).
    Float,
    /// `real` (`float(24)`).
    Real,
    /// `date`.
    Date,
    /// `time(n)`.
    Time {
        /// Fractional-second digits (0 to 7).
        scale: u8,
    },
    /// `datetime` (1/300 s ticks).
    DateTime,
    /// `datetime2(n)`.
    DateTime2 {
        /// Fractional-second digits (0 to 7).
        scale: u8,
    },
    /// `smalldatetime` (minutes).
    SmallDateTime,
    /// `datetimeoffset(n)`.
    DateTimeOffset {
        /// Fractional-second digits (0 to 7).
        scale: u8,
    },
    /// `char(n)`.
    Char(Length),
    /// `varchar(n)` / `varchar(max)`.
    VarChar(Length),
    /// `nchar(n)`.
    NChar(Length),
    /// `nvarchar(n)` / `nvarchar(max)`.
    NVarChar(Length),
    /// `text` (deprecated).
    Text,
    /// `ntext` (deprecated).
    NText,
    /// `binary(n)`.
    Binary(Length),
    /// `varbinary(n)` / `varbinary(max)`.
    VarBinary(Length),
    /// `image` (deprecated).
    Image,
    /// `uniqueidentifier`.
    UniqueIdentifier,
    /// `xml`.
    Xml,
    /// `rowversion` / `timestamp`: filled by SQL Server, a watermark, never written.
    RowVersion,
    /// `sql_variant`, CLR types and anything else DMF cannot move.
    Unsupported(String),
}

impl SqlType {
    /// The type of a `sys.columns` row: `name` is the system type (`TYPE_NAME(system_type_id)`),
    /// `max_length` in bytes (`-1` for `max`), `precision` and `scale` as stored.
    pub fn from_catalog(name: &str, max_length: i64, precision: i64, scale: i64) -> Self {
        let scale_u8 = u8::try_from(scale.clamp(0, 38)).unwrap_or(0);
        let precision_u8 = u8::try_from(precision.clamp(1, 38)).unwrap_or(38);
        let bytes = || if max_length < 0 { Length::Max } else { Length::Fixed(u32::try_from(max_length).unwrap_or(0)) };
        let chars =
            || if max_length < 0 { Length::Max } else { Length::Fixed(u32::try_from(max_length / 2).unwrap_or(0)) };
        match name.to_ascii_lowercase().as_str() {
            "decimal" | "numeric" => SqlType::Decimal { precision: precision_u8, scale: scale_u8 },
            "time" => SqlType::Time { scale: scale_u8.min(7) },
            "datetime2" => SqlType::DateTime2 { scale: scale_u8.min(7) },
            "datetimeoffset" => SqlType::DateTimeOffset { scale: scale_u8.min(7) },
            "char" => SqlType::Char(bytes()),
            "varchar" => SqlType::VarChar(bytes()),
            "nchar" => SqlType::NChar(chars()),
            "nvarchar" => SqlType::NVarChar(chars()),
            "binary" => SqlType::Binary(bytes()),
            "varbinary" => SqlType::VarBinary(bytes()),
            other => Self::parse(other),
        }
    }

    /// Parses a native type as DMF spells it (`nvarchar(200)`, `decimal(19,4)`,
    /// `datetime2(3)`, `varbinary(max)`, `timestamp`); any case, spaces ignored.
    pub fn parse(native: &str) -> Self {
        let compact: String = native.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        let (name, args) = match compact.split_once('(') {
            Some((name, rest)) => (name.to_owned(), rest.trim_end_matches(')').to_owned()),
            None => (compact.clone(), String::new()),
        };
        let numbers: Vec<u32> = args.split(',').filter_map(|n| n.parse().ok()).collect();
        let length = || {
            if args == "max" { Length::Max } else { Length::Fixed(numbers.first().copied().unwrap_or(1)) }
        };
        let scale = |default: u8| numbers.first().map_or(default, |n| u8::try_from(*n).unwrap_or(7).min(7));
        match name.as_str() {
            "bit" => SqlType::Bit,
            "tinyint" => SqlType::TinyInt,
            "smallint" => SqlType::SmallInt,
            "int" | "integer" => SqlType::Int,
            "bigint" => SqlType::BigInt,
            "decimal" | "numeric" | "dec" => {
                let precision = numbers.first().copied().unwrap_or(18);
                let scale = numbers.get(1).copied().unwrap_or(0);
                SqlType::Decimal {
                    precision: u8::try_from(precision.clamp(1, 38)).unwrap_or(38),
                    scale: u8::try_from(scale.min(precision.min(38))).unwrap_or(0),
                }
            }
            "money" => SqlType::Money,
            "smallmoney" => SqlType::SmallMoney,
            "float" => match numbers.first() {
                Some(n) if *n <= 24 => SqlType::Real,
                _ => SqlType::Float,
            },
            "real" => SqlType::Real,
            "date" => SqlType::Date,
            "time" => SqlType::Time { scale: scale(7) },
            "datetime" => SqlType::DateTime,
            "datetime2" => SqlType::DateTime2 { scale: scale(7) },
            "smalldatetime" => SqlType::SmallDateTime,
            "datetimeoffset" => SqlType::DateTimeOffset { scale: scale(7) },
            "char" | "character" => SqlType::Char(length()),
            "varchar" => SqlType::VarChar(length()),
            "nchar" => SqlType::NChar(length()),
            "nvarchar" => SqlType::NVarChar(length()),
            "text" => SqlType::Text,
            "ntext" => SqlType::NText,
            "binary" => SqlType::Binary(length()),
            "varbinary" => SqlType::VarBinary(length()),
            "image" => SqlType::Image,
            "uniqueidentifier" => SqlType::UniqueIdentifier,
            "xml" => SqlType::Xml,
            "rowversion" | "timestamp" => SqlType::RowVersion,
            _ => SqlType::Unsupported(compact),
        }
    }

    /// The native spelling, as DMF stores it in [`Column::native_type`](dmf_core::catalog::Column)
    /// and writes it in `CREATE TABLE #dmf_stage` and `CAST(… AS …)`.
    pub fn native(&self) -> String {
        match self {
            SqlType::Bit => "bit".into(),
            SqlType::TinyInt => "tinyint".into(),
            SqlType::SmallInt => "smallint".into(),
            SqlType::Int => "int".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            SqlType::Money => "money".into(),
            SqlType::SmallMoney => "smallmoney".into(),
            SqlType::Float => "float".into(),
            SqlType::Real => "real".into(),
            SqlType::Date => "date".into(),
            SqlType::Time { scale } => format!("time({scale})"),
            SqlType::DateTime => "datetime".into(),
            SqlType::DateTime2 { scale } => format!("datetime2({scale})"),
            SqlType::SmallDateTime => "smalldatetime".into(),
            SqlType::DateTimeOffset { scale } => format!("datetimeoffset({scale})"),
            SqlType::Char(n) => format!("char({n})"),
            SqlType::VarChar(n) => format!("varchar({n})"),
            SqlType::NChar(n) => format!("nchar({n})"),
            SqlType::NVarChar(n) => format!("nvarchar({n})"),
            SqlType::Text => "text".into(),
            SqlType::NText => "ntext".into(),
            SqlType::Binary(n) => format!("binary({n})"),
            SqlType::VarBinary(n) => format!("varbinary({n})"),
            SqlType::Image => "image".into(),
            SqlType::UniqueIdentifier => "uniqueidentifier".into(),
            SqlType::Xml => "xml".into(),
            SqlType::RowVersion => "rowversion".into(),
            SqlType::Unsupported(name) => name.clone(),
        }
    }

    /// The neutral type.
    pub fn data_type(&self) -> DataType {
        let text = |n: &Length| DataType::Text {
            max_len: match n {
                Length::Max => None,
                Length::Fixed(n) => Some(*n),
            },
        };
        match self {
            SqlType::Bit => DataType::Bool,
            SqlType::TinyInt | SqlType::SmallInt => DataType::Int16,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Decimal { precision, scale } => {
                DataType::Decimal { precision: Some(u32::from(*precision)), scale: Some(u32::from(*scale)) }
            }
            SqlType::Money => DataType::Decimal { precision: Some(19), scale: Some(4) },
            SqlType::SmallMoney => DataType::Decimal { precision: Some(10), scale: Some(4) },
            SqlType::Float => DataType::Float64,
            SqlType::Real => DataType::Float32,
            SqlType::Date => DataType::Date,
            SqlType::Time { .. } => DataType::Time,
            SqlType::DateTime | SqlType::DateTime2 { .. } | SqlType::SmallDateTime => DataType::Timestamp,
            SqlType::DateTimeOffset { .. } => DataType::TimestampTz,
            SqlType::Char(n) | SqlType::VarChar(n) | SqlType::NChar(n) | SqlType::NVarChar(n) => text(n),
            SqlType::Text | SqlType::NText => DataType::Text { max_len: None },
            SqlType::Binary(_) | SqlType::VarBinary(_) | SqlType::Image => DataType::Bytes,
            SqlType::UniqueIdentifier => DataType::Uuid,
            SqlType::Xml => DataType::Other("xml".into()),
            SqlType::RowVersion => DataType::Other("rowversion".into()),
            SqlType::Unsupported(name) => DataType::Other(name.clone()),
        }
    }

    /// True for character types (they carry a collation).
    pub fn is_character(&self) -> bool {
        matches!(
            self,
            SqlType::Char(_)
                | SqlType::VarChar(_)
                | SqlType::NChar(_)
                | SqlType::NVarChar(_)
                | SqlType::Text
                | SqlType::NText
        )
    }

    /// True for types whose values cannot be compared with `=` or `EXCEPT` (`text`, `ntext`,
    /// `image`, `xml`): they are compared through a cast to a `(max)` type.
    pub fn comparable_as(&self) -> Option<&'static str> {
        match self {
            SqlType::Text => Some("varchar(max)"),
            SqlType::NText | SqlType::Xml => Some("nvarchar(max)"),
            SqlType::Image => Some("varbinary(max)"),
            _ => None,
        }
    }

    /// The type a column is selected as, when tiberius would not decode it exactly: money
    /// comes as a float, rowversion as 8 bytes.
    pub fn read_as(&self) -> Option<&'static str> {
        match self {
            SqlType::Money => Some("decimal(19,4)"),
            SqlType::SmallMoney => Some("decimal(10,4)"),
            SqlType::RowVersion => Some("bigint"),
            _ => None,
        }
    }
}

/// Why a column of type `native` cannot be synced, or `None` when it can.
pub fn unsupported_reason(native: &str) -> Option<String> {
    match SqlType::parse(native) {
        SqlType::Unsupported(name) if name == "sql_variant" => Some(
            "sql_variant holds values of many types that DMF cannot carry faithfully; cast it in a view to one \
             type, or leave the column out of the sync"
                .into(),
        ),
        SqlType::Unsupported(name) => Some(format!(
            "type `{name}` (a CLR or user-defined type) is not supported; cast it to varbinary(max) or nvarchar(max) \
             in a view, or leave the column out of the sync"
        )),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Dates and times in TDS form.

fn day_one() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN)
}

fn day_1900() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

fn nanos_of(time: NaiveTime) -> u64 {
    u64::from(time.num_seconds_from_midnight()) * 1_000_000_000 + u64::from(time.nanosecond().min(999_999_999))
}

fn time_of(nanos: u64) -> Option<NaiveTime> {
    let seconds = u32::try_from(nanos / 1_000_000_000).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, u32::try_from(nanos % 1_000_000_000).ok()?)
}

fn pow10(exponent: u32) -> u64 {
    10_u64.pow(exponent)
}

/// A `time(scale)` value: the time truncated to `scale` decimals.
pub(crate) fn tds_time(time: NaiveTime, scale: u8) -> Time {
    let scale = scale.min(7);
    Time::new(nanos_of(time) / pow10(9 - u32::from(scale)), scale)
}

fn from_tds_time(time: Time) -> Option<NaiveTime> {
    let scale = u32::from(time.scale().min(9));
    time_of(time.increments().checked_mul(pow10(9 - scale))?)
}

fn tds_date(date: NaiveDate) -> Result<Date, String> {
    let days = date.signed_duration_since(day_one()).num_days();
    u32::try_from(days).map(Date::new).map_err(|_| format!("date {date} is before 0001-01-01"))
}

fn from_tds_date(date: Date) -> Option<NaiveDate> {
    day_one().checked_add_days(chrono::Days::new(u64::from(date.days())))
}

/// A legacy `datetime`: days since 1900-01-01 and 1/300 s ticks, rounded to the nearest tick
/// as SQL Server does (`.001` → `.000`, `.002` → `.003`).
pub(crate) fn tds_datetime(value: NaiveDateTime) -> Result<TdsDateTime, String> {
    let mut days = value.date().signed_duration_since(day_1900()).num_days();
    let nanos = nanos_of(value.time());
    let mut ticks = (nanos * 3 + 5_000_000) / 10_000_000;
    if ticks >= 300 * 86_400 {
        ticks -= 300 * 86_400;
        days += 1;
    }
    let days = i32::try_from(days).map_err(|_| format!("{value} is out of the range of datetime"))?;
    if value.year() < 1753 || days > 2_958_463 {
        return Err(format!("{value} is out of the range of datetime (1753-01-01 to 9999-12-31)"));
    }
    Ok(TdsDateTime::new(days, u32::try_from(ticks).unwrap_or(0)))
}

fn from_tds_datetime(value: TdsDateTime) -> Option<NaiveDateTime> {
    let date = day_1900().checked_add_signed(chrono::Duration::days(i64::from(value.days())))?;
    let nanos = (u64::from(value.seconds_fragments()) * 10_000_000 + 1) / 3;
    Some(date.and_time(time_of(nanos.min(NANOS_PER_DAY - 1))?))
}

/// A `smalldatetime`: days since 1900-01-01 and minutes, rounded to the nearest minute.
pub(crate) fn tds_smalldatetime(value: NaiveDateTime) -> Result<SmallDateTime, String> {
    let mut days = value.date().signed_duration_since(day_1900()).num_days();
    let mut minutes = (nanos_of(value.time()) + 30_000_000_000) / 60_000_000_000;
    if minutes >= 1440 {
        minutes -= 1440;
        days += 1;
    }
    let days =
        u16::try_from(days).map_err(|_| format!("{value} is out of the range of smalldatetime (1900 to 2079)"))?;
    Ok(SmallDateTime::new(days, u16::try_from(minutes).unwrap_or(0)))
}

fn from_tds_smalldatetime(value: SmallDateTime) -> Option<NaiveDateTime> {
    let date = day_1900().checked_add_days(chrono::Days::new(u64::from(value.days())))?;
    Some(date.and_time(time_of(u64::from(value.seconds_fragments()) * 60_000_000_000)?))
}

fn tds_datetime2(value: NaiveDateTime, scale: u8) -> Result<DateTime2, String> {
    Ok(DateTime2::new(tds_date(value.date())?, tds_time(value.time(), scale)))
}

fn from_tds_datetime2(value: DateTime2) -> Option<NaiveDateTime> {
    Some(from_tds_date(value.date())?.and_time(from_tds_time(value.time())?))
}

/// A `datetimeoffset`: TDS carries the UTC date and time and the offset in minutes; DMF
/// writes offset 0.
fn tds_datetimeoffset(value: DateTime<Utc>, scale: u8) -> Result<DateTimeOffset, String> {
    Ok(DateTimeOffset::new(tds_datetime2(value.naive_utc(), scale)?, 0))
}

fn from_tds_datetimeoffset(value: DateTimeOffset) -> Option<DateTime<Utc>> {
    Some(from_tds_datetime2(value.datetime2())?.and_utc())
}

// ---------------------------------------------------------------------------------------
// Decimals.

/// `-12.3400` with 4 decimals from a [`Numeric`].
pub(crate) fn numeric_text(value: Numeric) -> String {
    let raw = value.value();
    let digits = raw.unsigned_abs().to_string();
    let scale = usize::from(value.scale());
    let sign = if raw < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Parses decimal text (`-12.34`, `1e3` is refused) into a [`Numeric`] with exactly `scale`
/// decimals; `None` when it is not a number, does not fit 38 digits, or has non-zero digits
/// beyond `scale`.
pub(crate) fn parse_numeric(text: &str, scale: u8) -> Option<Numeric> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let scale_usize = usize::from(scale.min(38));
    let (kept, dropped) = if frac.len() > scale_usize { frac.split_at(scale_usize) } else { (frac, "") };
    if dropped.chars().any(|c| c != '0') {
        return None;
    }
    let all = format!("{int}{kept:0<scale_usize$}");
    let trimmed = all.trim_start_matches('0');
    if trimmed.len() > 38 {
        return None;
    }
    let magnitude: i128 = if trimmed.is_empty() { 0 } else { trimmed.parse().ok()? };
    Some(Numeric::new_with_scale(if negative { -magnitude } else { magnitude }, scale.min(38)))
}

/// The scale a parameter needs to carry `text` exactly (its decimals, at most 38).
fn decimals_of(text: &str) -> u8 {
    let frac = text.trim().split_once('.').map_or("", |(_, f)| f);
    u8::try_from(frac.len().min(38)).unwrap_or(38)
}

// ---------------------------------------------------------------------------------------
// Decoding result cells.

/// A result cell as a [`Value`]. `money` and `rowversion` are selected cast (see
/// [`SqlType::read_as`]); a `binary(8)` arriving for a rowversion would be bytes.
pub(crate) fn decode(data: &ColumnData<'_>) -> Result<Value, String> {
    let invalid = |what: &str| format!("the server sent an invalid {what} value");
    Ok(match data {
        ColumnData::U8(v) => v.map_or(Value::Null, |v| Value::Int(v.into())),
        ColumnData::I16(v) => v.map_or(Value::Null, |v| Value::Int(v.into())),
        ColumnData::I32(v) => v.map_or(Value::Null, |v| Value::Int(v.into())),
        ColumnData::I64(v) => v.map_or(Value::Null, Value::Int),
        ColumnData::F32(v) => v.map_or(Value::Null, |v| Value::Float(v.into())),
        ColumnData::F64(v) => v.map_or(Value::Null, Value::Float),
        ColumnData::Bit(v) => v.map_or(Value::Null, Value::Bool),
        ColumnData::String(v) => v.as_ref().map_or(Value::Null, |s| Value::Text(s.to_string())),
        ColumnData::Guid(v) => v.map_or(Value::Null, Value::Uuid),
        ColumnData::Binary(v) => v.as_ref().map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ColumnData::Numeric(v) => v.map_or(Value::Null, |n| Value::Decimal(numeric_text(n))),
        ColumnData::Xml(v) => v.as_ref().map_or(Value::Null, |x| Value::Text(x.to_string())),
        ColumnData::DateTime(v) => match v {
            None => Value::Null,
            Some(v) => Value::Timestamp(from_tds_datetime(*v).ok_or_else(|| invalid("datetime"))?),
        },
        ColumnData::SmallDateTime(v) => match v {
            None => Value::Null,
            Some(v) => Value::Timestamp(from_tds_smalldatetime(*v).ok_or_else(|| invalid("smalldatetime"))?),
        },
        ColumnData::Time(v) => match v {
            None => Value::Null,
            Some(v) => Value::Time(from_tds_time(*v).ok_or_else(|| invalid("time"))?),
        },
        ColumnData::Date(v) => match v {
            None => Value::Null,
            Some(v) => Value::Date(from_tds_date(*v).ok_or_else(|| invalid("date"))?),
        },
        ColumnData::DateTime2(v) => match v {
            None => Value::Null,
            Some(v) => Value::Timestamp(from_tds_datetime2(*v).ok_or_else(|| invalid("datetime2"))?),
        },
        ColumnData::DateTimeOffset(v) => match v {
            None => Value::Null,
            Some(v) => Value::TimestampTz(from_tds_datetimeoffset(*v).ok_or_else(|| invalid("datetimeoffset"))?),
        },
    })
}

// ---------------------------------------------------------------------------------------
// Encoding values.

/// A value as a parameter (`@P1`…), typed by the value alone: statements cast parameters to
/// the column's type where it matters (`CAST(@P2 AS datetime)`).
pub(crate) fn param_data(value: &Value) -> ColumnData<'static> {
    match value {
        Value::Null => ColumnData::String(None),
        Value::Bool(b) => ColumnData::Bit(Some(*b)),
        Value::Int(i) => ColumnData::I64(Some(*i)),
        Value::Float(f) => ColumnData::F64(Some(*f)),
        Value::Decimal(text) => match parse_numeric(text, decimals_of(text)) {
            Some(numeric) => ColumnData::Numeric(Some(numeric)),
            None => ColumnData::String(Some(Cow::Owned(text.clone()))),
        },
        Value::Text(text) | Value::Json(text) => ColumnData::String(Some(Cow::Owned(text.clone()))),
        Value::Bytes(bytes) => ColumnData::Binary(Some(Cow::Owned(bytes.clone()))),
        Value::Date(date) => match tds_date(*date) {
            Ok(date) => ColumnData::Date(Some(date)),
            Err(_) => ColumnData::String(Some(Cow::Owned(date.to_string()))),
        },
        Value::Time(time) => ColumnData::Time(Some(tds_time(*time, 7))),
        Value::Timestamp(ts) => match tds_datetime2(*ts, 7) {
            Ok(ts) => ColumnData::DateTime2(Some(ts)),
            Err(_) => ColumnData::String(Some(Cow::Owned(ts.to_string()))),
        },
        Value::TimestampTz(ts) => match tds_datetimeoffset(*ts, 7) {
            Ok(ts) => ColumnData::DateTimeOffset(Some(ts)),
            Err(_) => ColumnData::String(Some(Cow::Owned(ts.to_rfc3339()))),
        },
        Value::Uuid(uuid) => ColumnData::Guid(Some(*uuid)),
    }
}

/// The text of a value written into a character column.
fn as_text(value: &Value) -> String {
    match value {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Time(t) => t.format("%H:%M:%S%.f").to_string(),
        Value::Timestamp(ts) => ts.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        Value::TimestampTz(ts) => ts.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        Value::Bytes(_) | Value::Null => value.canonical(),
    }
}

fn integer_of(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(i128::from(*i)),
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i128),
        Value::Decimal(text) | Value::Text(text) => {
            parse_numeric(text, 0).filter(|n| n.scale() == 0).map(|n| n.value())
        }
        _ => None,
    }
}

fn float_of(value: &Value) -> Option<f64> {
    match value {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        Value::Decimal(text) | Value::Text(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A value as the exact [`ColumnData`] a bulk load into a column of type `ty` needs; the
/// error says why it does not fit (the loader adds the column and the row's key).
pub(crate) fn bulk_data(value: &Value, ty: &SqlType) -> Result<ColumnData<'static>, String> {
    if let Value::Null = value {
        return Ok(null_of(ty));
    }
    let mismatch = || format!("{} does not convert to {}", describe(value), ty.native());
    let range = |v: i128, lo: i128, hi: i128| {
        if (lo..=hi).contains(&v) { Ok(v) } else { Err(format!("{v} is out of the range of {}", ty.native())) }
    };
    Ok(match ty {
        SqlType::Bit => match value {
            Value::Bool(b) => ColumnData::Bit(Some(*b)),
            other => match integer_of(other) {
                Some(0) => ColumnData::Bit(Some(false)),
                Some(1) => ColumnData::Bit(Some(true)),
                _ => return Err(mismatch()),
            },
        },
        SqlType::TinyInt => {
            let v = range(integer_of(value).ok_or_else(mismatch)?, 0, 255)?;
            ColumnData::U8(Some(u8::try_from(v).map_err(|_| mismatch())?))
        }
        SqlType::SmallInt => {
            let v = range(integer_of(value).ok_or_else(mismatch)?, i128::from(i16::MIN), i128::from(i16::MAX))?;
            ColumnData::I16(Some(i16::try_from(v).map_err(|_| mismatch())?))
        }
        SqlType::Int => {
            let v = range(integer_of(value).ok_or_else(mismatch)?, i128::from(i32::MIN), i128::from(i32::MAX))?;
            ColumnData::I32(Some(i32::try_from(v).map_err(|_| mismatch())?))
        }
        SqlType::BigInt => {
            let v = range(integer_of(value).ok_or_else(mismatch)?, i128::from(i64::MIN), i128::from(i64::MAX))?;
            ColumnData::I64(Some(i64::try_from(v).map_err(|_| mismatch())?))
        }
        SqlType::Decimal { scale, precision } => ColumnData::Numeric(Some(numeric_for(value, *precision, *scale)?)),
        SqlType::Money => ColumnData::Numeric(Some(numeric_for(value, 19, 4)?)),
        SqlType::SmallMoney => ColumnData::Numeric(Some(numeric_for(value, 10, 4)?)),
        SqlType::Float => ColumnData::F64(Some(float_of(value).ok_or_else(mismatch)?)),
        SqlType::Real => ColumnData::F32(Some(float_of(value).ok_or_else(mismatch)? as f32)),
        SqlType::Date => match value {
            Value::Date(d) => ColumnData::Date(Some(tds_date(*d)?)),
            Value::Timestamp(ts) if ts.time() == NaiveTime::MIN => ColumnData::Date(Some(tds_date(ts.date())?)),
            _ => return Err(mismatch()),
        },
        SqlType::Time { scale } => match value {
            Value::Time(t) => ColumnData::Time(Some(tds_time(*t, *scale))),
            _ => return Err(mismatch()),
        },
        SqlType::DateTime => ColumnData::DateTime(Some(tds_datetime(naive_of(value).ok_or_else(mismatch)?)?)),
        SqlType::SmallDateTime => {
            ColumnData::SmallDateTime(Some(tds_smalldatetime(naive_of(value).ok_or_else(mismatch)?)?))
        }
        SqlType::DateTime2 { scale } => {
            ColumnData::DateTime2(Some(tds_datetime2(naive_of(value).ok_or_else(mismatch)?, *scale)?))
        }
        SqlType::DateTimeOffset { scale } => match value {
            Value::TimestampTz(ts) => ColumnData::DateTimeOffset(Some(tds_datetimeoffset(*ts, *scale)?)),
            Value::Timestamp(ts) => ColumnData::DateTimeOffset(Some(tds_datetimeoffset(ts.and_utc(), *scale)?)),
            _ => return Err(mismatch()),
        },
        SqlType::Char(_)
        | SqlType::VarChar(_)
        | SqlType::NChar(_)
        | SqlType::NVarChar(_)
        | SqlType::Text
        | SqlType::NText => match value {
            Value::Bytes(_) => return Err(mismatch()),
            other => ColumnData::String(Some(Cow::Owned(as_text(other)))),
        },
        SqlType::Binary(_) | SqlType::VarBinary(_) | SqlType::Image => match value {
            Value::Bytes(b) => ColumnData::Binary(Some(Cow::Owned(b.clone()))),
            _ => return Err(mismatch()),
        },
        SqlType::UniqueIdentifier => match value {
            Value::Uuid(u) => ColumnData::Guid(Some(*u)),
            Value::Text(t) => ColumnData::Guid(Some(Uuid::parse_str(t.trim()).map_err(|_| mismatch())?)),
            _ => return Err(mismatch()),
        },
        SqlType::Xml => match value {
            Value::Text(t) | Value::Json(t) => ColumnData::Xml(Some(Cow::Owned(XmlData::new(t)))),
            _ => return Err(mismatch()),
        },
        SqlType::RowVersion => return Err("rowversion columns are filled by SQL Server and never written".into()),
        SqlType::Unsupported(_) => {
            return Err(unsupported_reason(&ty.native()).unwrap_or_else(|| format!("{} is not supported", ty.native())));
        }
    })
}

/// The most bytes tiberius 0.13 bulk-loads into one value: it compares each value with the
/// length the column declares, and a `(max)` column declares `0xFFFF` (the TDS marker for
/// "partially length-prefixed", not a limit), so longer values fail with "Encoded string
/// length … exceed column limit 65535" on any server.
pub(crate) const BULK_VALUE_LIMIT: usize = 0xFFFF;

/// True when tiberius 0.13 would refuse `data` in a bulk load into a column of type `ty`:
/// longer than [`BULK_VALUE_LIMIT`], or any value of an `image` column, NULL included
/// (tiberius has no bulk encoding for `image` and fails the row with "invalid data type,
/// expecting … Image but found Binary"). Also an empty `text` or `ntext` value: tiberius sends
/// it rightly (a text pointer and a zero length), but Babelfish 4.3 stores it as NULL. Such a row is inserted with bound parameters instead. For `varchar(max)`
/// the UTF-8 length stands for the code-page length, which is never longer.
pub(crate) fn exceeds_bulk_limit(data: &ColumnData<'_>, ty: &SqlType) -> bool {
    let bytes = match (data, ty) {
        (_, SqlType::Image) => return true,
        (ColumnData::String(Some(s)), SqlType::Text | SqlType::NText) if s.is_empty() => return true,
        (ColumnData::String(Some(s)), SqlType::NVarChar(Length::Max)) => s.encode_utf16().count() * 2,
        (ColumnData::String(Some(s)), SqlType::VarChar(Length::Max)) => s.len(),
        (ColumnData::Binary(Some(b)), SqlType::VarBinary(Length::Max)) => b.len(),
        _ => return false,
    };
    bytes > BULK_VALUE_LIMIT
}

fn naive_of(value: &Value) -> Option<NaiveDateTime> {
    match value {
        Value::Timestamp(ts) => Some(*ts),
        Value::TimestampTz(ts) => Some(ts.naive_utc()),
        Value::Date(d) => Some(d.and_time(NaiveTime::MIN)),
        _ => None,
    }
}

fn numeric_for(value: &Value, precision: u8, scale: u8) -> Result<Numeric, String> {
    let text = match value {
        Value::Decimal(t) | Value::Text(t) => t.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Float(f) if f.is_finite() => format!("{f}"),
        other => return Err(format!("{} does not convert to decimal({precision},{scale})", describe(other))),
    };
    let numeric = parse_numeric(&text, scale).ok_or_else(|| {
        format!("{text} does not fit decimal({precision},{scale}) (not a number, or more than {scale} decimals)")
    })?;
    let integer_digits = numeric.int_part().unsigned_abs().to_string().trim_start_matches('0').len();
    if integer_digits > usize::from(precision.saturating_sub(scale)) {
        return Err(format!("{text} has too many digits for decimal({precision},{scale})"));
    }
    Ok(numeric)
}

/// A value named for messages: its kind and, for short values, the value.
fn describe(value: &Value) -> String {
    let shown = value.to_string();
    let kind = match value {
        Value::Null => "NULL",
        Value::Bool(_) => "boolean",
        Value::Int(_) => "integer",
        Value::Float(_) => "float",
        Value::Decimal(_) => "decimal",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(_) => "timestamptz",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "json",
    };
    if shown.chars().count() <= 60 { format!("{kind} {shown}") } else { format!("a {kind} value") }
}

/// A typed NULL for a column of type `ty`.
fn null_of(ty: &SqlType) -> ColumnData<'static> {
    match ty {
        SqlType::Bit => ColumnData::Bit(None),
        SqlType::TinyInt => ColumnData::U8(None),
        SqlType::SmallInt => ColumnData::I16(None),
        SqlType::Int => ColumnData::I32(None),
        SqlType::BigInt | SqlType::RowVersion => ColumnData::I64(None),
        SqlType::Decimal { .. } | SqlType::Money | SqlType::SmallMoney => ColumnData::Numeric(None),
        SqlType::Float => ColumnData::F64(None),
        SqlType::Real => ColumnData::F32(None),
        SqlType::Date => ColumnData::Date(None),
        SqlType::Time { .. } => ColumnData::Time(None),
        SqlType::DateTime => ColumnData::DateTime(None),
        SqlType::SmallDateTime => ColumnData::SmallDateTime(None),
        SqlType::DateTime2 { .. } => ColumnData::DateTime2(None),
        SqlType::DateTimeOffset { .. } => ColumnData::DateTimeOffset(None),
        SqlType::Binary(_) | SqlType::VarBinary(_) | SqlType::Image => ColumnData::Binary(None),
        SqlType::UniqueIdentifier => ColumnData::Guid(None),
        SqlType::Xml => ColumnData::Xml(None),
        _ => ColumnData::String(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    /// Writes `value` to a column of `native` type and reads it back as the server would send it.
    fn round_trip(native: &str, value: Value) -> Value {
        decode(&bulk_data(&value, &SqlType::parse(native)).unwrap()).unwrap()
    }

    #[test]
    fn long_values_image_values_and_empty_legacy_texts_need_a_row_insert() {
        let text = |chars: usize| ColumnData::String(Some(Cow::Owned("é".repeat(chars))));
        let nvarchar_max = SqlType::parse("nvarchar(max)");
        assert!(!exceeds_bulk_limit(&text(BULK_VALUE_LIMIT / 2), &nvarchar_max), "32767 UTF-16 units fit");
        assert!(exceeds_bulk_limit(&text(BULK_VALUE_LIMIT / 2 + 1), &nvarchar_max));
        let emoji = ColumnData::String(Some(Cow::Owned("🦀".repeat(BULK_VALUE_LIMIT / 4 + 1))));
        assert!(exceeds_bulk_limit(&emoji, &nvarchar_max), "a surrogate pair is four bytes");
        let varchar_max = SqlType::parse("varchar(max)");
        assert!(!exceeds_bulk_limit(&ColumnData::String(Some("a".repeat(BULK_VALUE_LIMIT).into())), &varchar_max));
        assert!(exceeds_bulk_limit(&ColumnData::String(Some("a".repeat(BULK_VALUE_LIMIT + 1).into())), &varchar_max));
        let bytes = ColumnData::Binary(Some(vec![0; BULK_VALUE_LIMIT + 1].into()));
        assert!(exceeds_bulk_limit(&bytes, &SqlType::parse("varbinary(max)")));
        assert!(!exceeds_bulk_limit(&bytes, &SqlType::parse("varbinary(8000)")), "tiberius refuses it rightly");
        assert!(!exceeds_bulk_limit(&ColumnData::String(None), &nvarchar_max));
        let image = SqlType::parse("image");
        assert!(
            exceeds_bulk_limit(&ColumnData::Binary(Some(vec![1, 2].into())), &image),
            "tiberius has no image encoding"
        );
        assert!(exceeds_bulk_limit(&ColumnData::Binary(None), &image), "nor a NULL");
        let empty = ColumnData::String(Some("".into()));
        assert!(exceeds_bulk_limit(&empty, &SqlType::Text) && exceeds_bulk_limit(&empty, &SqlType::NText));
        assert!(!exceeds_bulk_limit(&ColumnData::String(Some("a".into())), &SqlType::NText));
        assert!(!exceeds_bulk_limit(&empty, &nvarchar_max), "a PLP empty string loads as itself");
    }

    #[test]
    fn catalog_rows_become_types() {
        let cases = [
            ("int", 4, 10, 0, "int"),
            ("nvarchar", 400, 0, 0, "nvarchar(200)"),
            ("nvarchar", -1, 0, 0, "nvarchar(max)"),
            ("varchar", 8000, 0, 0, "varchar(8000)"),
            ("nchar", 20, 0, 0, "nchar(10)"),
            ("char", 3, 0, 0, "char(3)"),
            ("varbinary", -1, 0, 0, "varbinary(max)"),
            ("binary", 16, 0, 0, "binary(16)"),
            ("decimal", 17, 38, 10, "decimal(38,10)"),
            ("numeric", 9, 12, 2, "decimal(12,2)"),
            ("datetime2", 8, 27, 7, "datetime2(7)"),
            ("time", 4, 12, 3, "time(3)"),
            ("datetimeoffset", 10, 34, 7, "datetimeoffset(7)"),
            ("timestamp", 8, 0, 0, "rowversion"),
            ("sql_variant", 8016, 0, 0, "sql_variant"),
            ("hierarchyid", 892, 0, 0, "hierarchyid"),
        ];
        for (name, length, precision, scale, native) in cases {
            assert_eq!(SqlType::from_catalog(name, length, precision, scale).native(), native, "{name}");
            assert_eq!(SqlType::parse(native).native(), native, "{native} parses back");
        }
    }

    /// One test per type of the module's table: its neutral type, and a value through a bulk
    /// encoding and back.
    macro_rules! type_tests {
        ($($name:ident: $native:literal => $data_type:expr, $value:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(SqlType::parse($native).data_type(), $data_type, "{}", $native);
                let value: Value = $value;
                assert_eq!(round_trip($native, value.clone()), value, "{}", $native);
                assert_eq!(round_trip($native, Value::Null), Value::Null, "NULL {}", $native);
            }
        )*};
    }

    type_tests! {
        bit_maps_to_bool: "bit" => DataType::Bool, Value::Bool(true);
        tinyint_maps_to_int16: "tinyint" => DataType::Int16, Value::Int(255);
        smallint_maps_to_int16: "smallint" => DataType::Int16, Value::Int(-32768);
        int_maps_to_int32: "int" => DataType::Int32, Value::Int(2_147_483_647);
        bigint_maps_to_int64: "bigint" => DataType::Int64, Value::Int(i64::MIN);
        decimal_maps_to_exact_decimal: "decimal(38,10)" => DataType::Decimal { precision: Some(38), scale: Some(10) },
            Value::Decimal("-9999999999999999999999999999.9999999999".into());
        numeric_maps_to_exact_decimal: "numeric(12,2)" => DataType::Decimal { precision: Some(12), scale: Some(2) },
            Value::Decimal("1234567890.12".into());
        money_maps_to_decimal_19_4: "money" => DataType::Decimal { precision: Some(19), scale: Some(4) },
            Value::Decimal("-922337203685477.5808".into());
        smallmoney_maps_to_decimal_10_4: "smallmoney" => DataType::Decimal { precision: Some(10), scale: Some(4) },
            Value::Decimal("214748.3647".into());
        float_maps_to_float64: "float" => DataType::Float64, Value::Float(0.1);
        real_maps_to_float32: "real" => DataType::Float32, Value::Float(0.5);
        date_maps_to_date: "date" => DataType::Date, Value::Date(NaiveDate::from_ymd_opt(1, 1, 1).unwrap());
        time_maps_to_time: "time(7)" => DataType::Time, Value::Time(NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_900).unwrap());
        datetime_maps_to_timestamp: "datetime" => DataType::Timestamp, Value::Timestamp(ts("1753-01-01 00:00:00"));
        datetime2_maps_to_timestamp: "datetime2(7)" => DataType::Timestamp, Value::Timestamp(ts("9999-12-31 23:59:59.9999999"));
        datetimeoffset_maps_to_timestamptz: "datetimeoffset(7)" => DataType::TimestampTz,
            Value::TimestampTz(ts("2024-02-29 13:45:00.1234567").and_utc());
        smalldatetime_maps_to_timestamp: "smalldatetime" => DataType::Timestamp, Value::Timestamp(ts("2079-06-06 23:59:00"));
        char_maps_to_bounded_text: "char(4)" => DataType::Text { max_len: Some(4) }, Value::Text("abcd".into());
        varchar_maps_to_bounded_text: "varchar(20)" => DataType::Text { max_len: Some(20) }, Value::Text("plain".into());
        varchar_max_maps_to_text: "varchar(max)" => DataType::Text { max_len: None }, Value::Text("x".repeat(10_000));
        nchar_maps_to_bounded_text: "nchar(2)" => DataType::Text { max_len: Some(2) }, Value::Text("日本".into());
        nvarchar_maps_to_bounded_text: "nvarchar(200)" => DataType::Text { max_len: Some(200) }, Value::Text("Zoë 🦀 '[x]]".into());
        nvarchar_max_maps_to_text: "nvarchar(max)" => DataType::Text { max_len: None }, Value::Text("日本語🦀".repeat(1000));
        text_maps_to_text: "text" => DataType::Text { max_len: None }, Value::Text("legacy".into());
        ntext_maps_to_text: "ntext" => DataType::Text { max_len: None }, Value::Text("légacy".into());
        binary_maps_to_bytes: "binary(4)" => DataType::Bytes, Value::Bytes(vec![0, 0x5c, 0, 0xff]);
        varbinary_maps_to_bytes: "varbinary(max)" => DataType::Bytes, Value::Bytes(vec![0; 9000]);
        image_maps_to_bytes: "image" => DataType::Bytes, Value::Bytes(vec![1, 2, 3]);
        uniqueidentifier_maps_to_uuid: "uniqueidentifier" => DataType::Uuid,
            Value::Uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        xml_maps_to_other_read_as_text: "xml" => DataType::Other("xml".into()), Value::Text("<a b=\"1\">x</a>".into());
    }

    #[test]
    fn rowversion_is_a_generated_watermark_never_written() {
        assert_eq!(SqlType::parse("rowversion").data_type(), DataType::Other("rowversion".into()));
        assert_eq!(SqlType::parse("timestamp"), SqlType::RowVersion);
        assert_eq!(SqlType::RowVersion.read_as(), Some("bigint"));
        assert_eq!(decode(&ColumnData::I64(Some(0x7d3))).unwrap(), Value::Int(2003));
        assert!(bulk_data(&Value::Int(1), &SqlType::RowVersion).unwrap_err().contains("never written"));
    }

    #[test]
    fn sql_variant_is_refused_clearly() {
        assert_eq!(SqlType::parse("sql_variant").data_type(), DataType::Other("sql_variant".into()));
        let reason = unsupported_reason("sql_variant").unwrap();
        assert!(reason.starts_with("sql_variant holds values of many types"), "{reason}");
        assert!(bulk_data(&Value::Int(1), &SqlType::parse("sql_variant")).unwrap_err().contains("sql_variant"));
        assert!(unsupported_reason("geography").unwrap().contains("`geography` (a CLR or user-defined type)"));
        assert_eq!(unsupported_reason("nvarchar(10)"), None);
    }

    #[test]
    fn money_is_read_exactly() {
        assert_eq!(SqlType::Money.read_as(), Some("decimal(19,4)"));
        assert_eq!(SqlType::SmallMoney.read_as(), Some("decimal(10,4)"));
        assert_eq!(SqlType::Int.read_as(), None);
    }

    #[test]
    fn numerics_keep_every_digit() {
        assert_eq!(numeric_text(Numeric::new_with_scale(-1234, 2)), "-12.34");
        assert_eq!(numeric_text(Numeric::new_with_scale(5, 3)), "0.005");
        assert_eq!(numeric_text(Numeric::new_with_scale(-5, 3)), "-0.005");
        assert_eq!(numeric_text(Numeric::new_with_scale(42, 0)), "42");
        assert_eq!(parse_numeric("12.3", 4).map(numeric_text), Some("12.3000".into()));
        assert_eq!(parse_numeric("12.3000", 1).map(numeric_text), Some("12.3".into()));
        assert_eq!(parse_numeric("12.34", 1), None, "digits would be lost");
        assert_eq!(parse_numeric("1e5", 0), None);
        assert_eq!(parse_numeric("", 0), None);
        assert_eq!(parse_numeric(&"9".repeat(39), 0), None);
        assert!(
            bulk_data(&Value::Decimal("1234.5".into()), &SqlType::parse("decimal(5,2)"))
                .unwrap_err()
                .contains("too many digits")
        );
        assert_eq!(
            param_data(&Value::Decimal("-0.25".into())),
            ColumnData::Numeric(Some(Numeric::new_with_scale(-25, 2)))
        );
    }

    #[test]
    fn legacy_datetimes_round_to_their_ticks() {
        let to_ticks = |text: &str| tds_datetime(ts(text)).unwrap().seconds_fragments();
        assert_eq!(to_ticks("2000-01-01 00:00:00.001"), 0);
        assert_eq!(to_ticks("2000-01-01 00:00:00.002"), 1);
        assert_eq!(to_ticks("2000-01-01 00:00:00.003333"), 1);
        let carried = tds_datetime(ts("2000-01-01 23:59:59.999")).unwrap();
        assert_eq!((carried.days(), carried.seconds_fragments()), (36_525, 0), "rounds into the next day");
        assert_eq!(from_tds_datetime(TdsDateTime::new(0, 1)).unwrap(), ts("1900-01-01 00:00:00.003333333"));
        assert!(tds_datetime(ts("1752-12-31 00:00:00")).unwrap_err().contains("out of the range of datetime"));
        let minute = tds_smalldatetime(ts("2000-01-01 10:00:29.998")).unwrap();
        assert_eq!(minute.seconds_fragments(), 600);
        assert_eq!(tds_smalldatetime(ts("2000-01-01 10:00:30")).unwrap().seconds_fragments(), 601);
        assert!(tds_smalldatetime(ts("1899-12-31 00:00:00")).is_err());
    }

    #[test]
    fn times_take_the_columns_scale() {
        let time = NaiveTime::from_hms_nano_opt(1, 2, 3, 456_789_123).unwrap();
        let t3 = tds_time(time, 3);
        assert_eq!((t3.increments(), t3.scale()), (3_723_456, 3));
        assert_eq!(
            round_trip("time(3)", Value::Time(time)),
            Value::Time(NaiveTime::from_hms_milli_opt(1, 2, 3, 456).unwrap())
        );
        assert_eq!(
            round_trip("datetime2(0)", Value::Timestamp(ts("2024-01-01 10:00:00.9"))),
            Value::Timestamp(ts("2024-01-01 10:00:00"))
        );
    }

    #[test]
    fn values_convert_leniently_but_never_silently_lose_data() {
        let int = SqlType::Int;
        assert_eq!(bulk_data(&Value::Text("42".into()), &int).unwrap(), ColumnData::I32(Some(42)));
        assert_eq!(bulk_data(&Value::Decimal("7.000".into()), &int).unwrap(), ColumnData::I32(Some(7)));
        assert_eq!(bulk_data(&Value::Bool(true), &SqlType::TinyInt).unwrap(), ColumnData::U8(Some(1)));
        assert!(bulk_data(&Value::Int(1 << 40), &int).unwrap_err().contains("out of the range of int"));
        assert!(bulk_data(&Value::Int(256), &SqlType::TinyInt).is_err());
        assert!(bulk_data(&Value::Float(1.5), &int).unwrap_err().contains("float 1.5 does not convert to int"));
        assert!(bulk_data(&Value::Int(2), &SqlType::Bit).is_err());
        assert_eq!(
            bulk_data(&Value::Int(5), &SqlType::parse("nvarchar(10)")).unwrap(),
            ColumnData::String(Some("5".into()))
        );
        assert!(bulk_data(&Value::Bytes(vec![1]), &SqlType::parse("nvarchar(10)")).is_err());
        assert!(bulk_data(&Value::Text("nope".into()), &SqlType::UniqueIdentifier).is_err());
        let uuid = "01234567-89ab-cdef-0123-456789abcdef";
        assert_eq!(
            bulk_data(&Value::Text(uuid.into()), &SqlType::UniqueIdentifier).unwrap(),
            ColumnData::Guid(Some(Uuid::parse_str(uuid).unwrap()))
        );
        assert_eq!(
            round_trip("datetimeoffset(3)", Value::Timestamp(ts("2024-01-01 10:00:00.5"))),
            Value::TimestampTz(ts("2024-01-01 10:00:00.5").and_utc())
        );
        assert_eq!(
            round_trip("date", Value::Timestamp(ts("2024-01-01 00:00:00"))),
            Value::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap())
        );
        assert!(bulk_data(&Value::Timestamp(ts("2024-01-01 10:00:00")), &SqlType::Date).is_err());
    }

    #[test]
    fn parameters_are_typed_by_their_value() {
        assert_eq!(param_data(&Value::Null), ColumnData::String(None));
        assert_eq!(param_data(&Value::Int(7)), ColumnData::I64(Some(7)));
        assert_eq!(param_data(&Value::Text("a'b".into())), ColumnData::String(Some("a'b".into())));
        assert!(matches!(param_data(&Value::Timestamp(ts("2024-01-01 00:00:00"))), ColumnData::DateTime2(Some(_))));
        assert!(matches!(
            param_data(&Value::TimestampTz(ts("2024-01-01 00:00:00").and_utc())),
            ColumnData::DateTimeOffset(Some(_))
        ));
        assert_eq!(param_data(&Value::Decimal("NaN".into())), ColumnData::String(Some("NaN".into())));
    }
}
