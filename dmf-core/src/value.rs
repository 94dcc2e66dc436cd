//! Dynamic rows for catalog-driven sync: [`Value`], [`Row`] and the shape they share.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::ser::SerializeMap;

use crate::catalog::TableName;
use crate::native::NativeRow;
use crate::record::Record;

/// One value of a dynamic row, in dialect-neutral form.
///
/// `Decimal` keeps its exact text (numeric(38,10) does not fit any binary type), `Json` its
/// text as stored. [`Value::canonical`] gives the text that is hashed identically on every
/// dialect.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer up to 64 bits.
    Int(i64),
    /// A binary floating-point number.
    Float(f64),
    /// An exact decimal, as text (`-12.3400`).
    Decimal(String),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A date.
    Date(NaiveDate),
    /// A time of day.
    Time(NaiveTime),
    /// A timestamp without time zone.
    Timestamp(NaiveDateTime),
    /// A timestamp with time zone, normalised to UTC.
    TimestampTz(DateTime<Utc>),
    /// A UUID.
    Uuid(uuid::Uuid),
    /// JSON text.
    Json(String),
}

impl Value {
    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A text form that is the same for equal values whatever the database they came from:
    /// decimals without trailing zeros, timestamps in ISO 8601 with microseconds, bytes in hex,
    /// JSON re-serialised with sorted keys. NULL is `\N`, which no other value produces.
    pub fn canonical(&self) -> String {
        let mut text = String::new();
        self.write_canonical(&mut text);
        text
    }

    /// Appends [`canonical`](Self::canonical) to `out`.
    pub fn write_canonical(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("\\N"),
            Value::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            Value::Decimal(d) => out.push_str(&canonical_decimal(d)),
            Value::Text(s) => escape_into(s, out),
            Value::Bytes(b) => {
                out.push_str("\\x");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            Value::Date(d) => {
                let _ = write!(out, "{}", d.format("%Y-%m-%d"));
            }
            Value::Time(t) => {
                let _ = write!(out, "{}", t.format("%H:%M:%S%.6f"));
            }
            Value::Timestamp(ts) => {
                let _ = write!(out, "{}", ts.format("%Y-%m-%dT%H:%M:%S%.6f"));
            }
            Value::TimestampTz(ts) => {
                let _ = write!(out, "{}", ts.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
            }
            Value::Uuid(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Json(j) => match serde_json::from_str::<serde_json::Value>(j) {
                Ok(parsed) => escape_into(&sorted_json(&parsed), out),
                Err(_) => escape_into(j, out),
            },
        }
    }

    /// Orders two values of the same kind (keys for keyset pagination and merges); NULL sorts
    /// first, values of different kinds by kind.
    pub fn cmp_key(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Int(a), Float(b)) => (*a as f64).total_cmp(b),
            (Float(a), Int(b)) => a.total_cmp(&(*b as f64)),
            (Decimal(a), Decimal(b)) => compare_decimal(a, b),
            (Text(a), Text(b)) | (Json(a), Json(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (a, b) => a.kind_rank().cmp(&b.kind_rank()),
        }
    }

    fn kind_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Decimal(_) => 3,
            Value::Text(_) => 4,
            Value::Bytes(_) => 5,
            Value::Date(_) => 6,
            Value::Time(_) => 7,
            Value::Timestamp(_) => 8,
            Value::TimestampTz(_) => 9,
            Value::Uuid(_) => 10,
            Value::Json(_) => 11,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Text(s) | Value::Json(s) => write!(f, "{s:?}"),
            other => f.write_str(&other.canonical()),
        }
    }
}

/// Escapes `\` and the separators used by row hashing, so that concatenated canonical values
/// cannot collide.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn sorted_json(value: &serde_json::Value) -> String {
    // serde_json's Map is a BTreeMap (no preserve_order feature): keys come out sorted.
    serde_json::to_string(value).unwrap_or_default()
}

/// `-0012.3400` → `-12.34`, `0.000` → `0`, `1e3` stays as given (decimals from databases have
/// no exponent).
pub fn canonical_decimal(text: &str) -> String {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '.') || digits.is_empty() {
        return text.to_owned();
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.is_empty();
    let mut out = String::with_capacity(text.len());
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn compare_decimal(a: &str, b: &str) -> Ordering {
    let (a, b) = (canonical_decimal(a), canonical_decimal(b));
    let (a_neg, b_neg) = (a.starts_with('-'), b.starts_with('-'));
    if a_neg != b_neg {
        return if a_neg { Ordering::Less } else { Ordering::Greater };
    }
    let magnitude = |s: &str| {
        let s = s.trim_start_matches('-').to_owned();
        let (int, frac) = s.split_once('.').map(|(i, f)| (i.to_owned(), f.to_owned())).unwrap_or((s, String::new()));
        (int, frac)
    };
    let ((ai, af), (bi, bf)) = (magnitude(&a), magnitude(&b));
    let by_magnitude = ai.len().cmp(&bi.len()).then_with(|| ai.cmp(&bi)).then_with(|| {
        let width = af.len().max(bf.len());
        format!("{af:0<width$}").cmp(&format!("{bf:0<width$}"))
    });
    if a_neg { by_magnitude.reverse() } else { by_magnitude }
}

/// The columns of a dynamic row and which of them form its key, shared by every row of a
/// table (cheap to clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowShape {
    /// The table the rows come from or go to.
    pub table: TableName,
    /// Column names, in value order.
    pub columns: Vec<String>,
    /// Indexes (into `columns`) of the key columns.
    pub key: Vec<usize>,
}

/// A dynamic row: values in the order of its shape's columns.
///
/// Made from values ([`Row::new`]), or from the bytes of a row in its source database's own
/// encoding ([`Row::native`]), whose values are decoded on first use: a loader of the same kind
/// writes those bytes as they are ([`Row::native_bytes`]).
#[derive(Clone)]
pub struct Row {
    shape: Arc<RowShape>,
    /// Set when made from values; decoded from `native` on first use otherwise.
    values: OnceLock<Vec<Value>>,
    native: Option<NativeRow>,
}

impl Row {
    /// A row of `shape`; `values` must have one value per column.
    pub fn new(shape: Arc<RowShape>, values: Vec<Value>) -> Self {
        debug_assert_eq!(shape.columns.len(), values.len());
        Self { shape, values: OnceLock::from(values), native: None }
    }

    /// A row of `shape` in its source's encoding: one value per column once decoded.
    pub fn native(shape: Arc<RowShape>, native: NativeRow) -> Self {
        Self { shape, values: OnceLock::new(), native: Some(native) }
    }

    /// The bytes of a row made with [`Row::native`].
    pub fn native_bytes(&self) -> Option<&NativeRow> {
        self.native.as_ref()
    }

    /// False for a row made with [`Row::native`] whose values nothing has asked for yet.
    pub fn is_decoded(&self) -> bool {
        self.values.get().is_some()
    }

    /// The row, keeping none of the rest of its native page alive (for a row kept while the
    /// rows read with it are dropped, such as a changed row a merge emits).
    pub fn detached(mut self) -> Self {
        if let Some(native) = self.native.as_ref().map(NativeRow::detach) {
            self.native = Some(native);
        }
        self
    }

    /// The shape.
    pub fn shape(&self) -> &Arc<RowShape> {
        &self.shape
    }

    /// The values, in column order (decoded now if the row was made from native bytes).
    pub fn values(&self) -> &[Value] {
        self.values.get_or_init(|| self.native.as_ref().map(NativeRow::decode).unwrap_or_default())
    }

    /// Takes the values.
    pub fn into_values(mut self) -> Vec<Value> {
        match self.values.take() {
            Some(values) => values,
            None => self.native.as_ref().map(NativeRow::decode).unwrap_or_default(),
        }
    }

    /// The value of a column by name.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.shape.columns.iter().position(|c| c == column).and_then(|i| self.values().get(i))
    }

    /// The key values, in key order.
    pub fn key_values(&self) -> impl Iterator<Item = &Value> {
        let values = self.values();
        self.shape.key.iter().map(|i| &values[*i])
    }

    /// Compares two rows of the same shape by key.
    pub fn cmp_key(&self, other: &Row) -> Ordering {
        for (a, b) in self.key_values().zip(other.key_values()) {
            match a.cmp_key(b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row").field("shape", &self.shape).field("values", &self.values()).finish()
    }
}

/// Rows are equal when their shapes and values are, however they were made.
impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.values() == other.values()
    }
}

impl Record for Row {
    /// `id=42` or `(order_id=7, line=2)`.
    fn key(&self) -> String {
        let values = self.values();
        let mut parts = self.shape.key.iter().map(|i| format!("{}={}", self.shape.columns[*i], values[*i]));
        match self.shape.key.len() {
            1 => parts.next().unwrap_or_default(),
            _ => format!("({})", parts.collect::<Vec<_>>().join(", ")),
        }
    }
}

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let values = self.values();
        let mut map = serializer.serialize_map(Some(values.len()))?;
        for (column, value) in self.shape.columns.iter().zip(values) {
            map.serialize_entry(column, &JsonValue(value))?;
        }
        map.end()
    }
}

/// A value as plain JSON (for reject payloads and undo logs read by people).
struct JsonValue<'a>(&'a Value);

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) => serializer.serialize_str(s),
            other => serializer.serialize_str(&other.canonical()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_decimals() {
        assert_eq!(canonical_decimal("-0012.3400"), "-12.34");
        assert_eq!(canonical_decimal("0.000"), "0");
        assert_eq!(canonical_decimal("-0.0"), "0");
        assert_eq!(
            canonical_decimal("12345678901234567890123456789.0123456789"),
            "12345678901234567890123456789.0123456789"
        );
        assert_eq!(canonical_decimal("NaN"), "NaN");
    }

    #[test]
    fn decimal_order() {
        let d = |s: &str| Value::Decimal(s.into());
        assert_eq!(d("-2.5").cmp_key(&d("-10")), Ordering::Greater);
        assert_eq!(d("10.01").cmp_key(&d("9.999")), Ordering::Greater);
        assert_eq!(d("1.50").cmp_key(&d("1.5")), Ordering::Equal);
        assert_eq!(d("0.1").cmp_key(&d("0.09")), Ordering::Greater);
    }

    #[test]
    fn canonical_forms_do_not_collide() {
        assert_ne!(Value::Null.canonical(), Value::Text("\\N".into()).canonical());
        assert_eq!(Value::Text("a\tb".into()).canonical(), "a\\tb");
        assert_eq!(Value::Json(r#"{"b":1, "a":[1,2]}"#.into()).canonical(), r#"{"a":[1,2],"b":1}"#);
        assert_eq!(Value::Bytes(vec![0, 255]).canonical(), "\\x00ff");
    }

    #[test]
    fn native_rows_decode_on_first_use_and_equal_rows_of_the_same_values() {
        /// One byte per integer column.
        #[derive(Debug)]
        struct OneByte;
        impl crate::NativeEncoding for OneByte {
            fn decode(&self, bytes: &[u8]) -> Vec<Value> {
                bytes.iter().map(|b| Value::Int((*b).into())).collect()
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
        let shape = Arc::new(RowShape {
            table: TableName::new(None, "t"),
            columns: vec!["id".into(), "n".into()],
            key: vec![0],
        });
        let page = crate::NativeRows::new(Arc::new(OneByte), vec![7, 8, 9, 10]);
        let native = Row::native(Arc::clone(&shape), NativeRow::new(&page, 2..4).unwrap());
        assert_eq!(native.native_bytes().unwrap().bytes(), [9, 10]);
        assert!(!native.is_decoded());
        let detached = native.clone().detached();
        assert_eq!(detached.native_bytes().unwrap().bytes(), [9, 10]);
        assert_eq!(native.key(), "id=9");
        assert!(native.is_decoded());
        assert_eq!(native, Row::new(Arc::clone(&shape), vec![Value::Int(9), Value::Int(10)]));
        assert_eq!(serde_json::to_string(&native).unwrap(), r#"{"id":9,"n":10}"#);
        assert_eq!(native.clone().into_values(), [Value::Int(9), Value::Int(10)]);
        assert!(NativeRow::new(&page, 3..5).is_none(), "past the page");
    }

    #[test]
    fn row_keys_name_their_columns() {
        let shape = Arc::new(RowShape {
            table: TableName::new(None, "lines"),
            columns: vec!["order_id".into(), "line".into(), "note".into()],
            key: vec![0, 1],
        });
        let row = Row::new(shape, vec![Value::Int(7), Value::Int(2), Value::Text("x".into())]);
        assert_eq!(row.key(), "(order_id=7, line=2)");
        assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"order_id":7,"line":2,"note":"x"}"#);
    }
}
