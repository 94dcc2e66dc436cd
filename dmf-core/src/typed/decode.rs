//! Reading a [`Row`] as a `T: Deserialize` directly: a serde `Deserializer` over the row's
//! values, field by field, with no JSON in between. Which column feeds which field is worked
//! out once per row shape ([`FieldPlan`]).

use std::fmt;
use std::sync::Arc;

use serde::de::value::{SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use crate::value::{Row, RowShape, Value};

/// Why a value did not fit a field (serde's error type for [`RowDeserializer`]).
#[derive(Debug)]
pub(crate) struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        DecodeError(message.to_string())
    }
}

/// The named fields of `T`, when `T` deserializes as a struct (asked once: serde's derive
/// hands them to `deserialize_struct`).
pub(crate) fn struct_fields<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    struct Probe(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Probe {
        type Error = DecodeError;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
            Err(DecodeError("not a struct".into()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, DecodeError> {
            self.0 = Some(fields);
            Err(DecodeError("probed".into()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// For each field of a struct, the column of a row shape that feeds it (`None`: the shape has
/// no such column; the field is then missing, which an `Option` field reads as `None`).
#[derive(Debug, Clone)]
pub(crate) struct FieldPlan {
    shape: Arc<RowShape>,
    fields: &'static [&'static str],
    columns: Vec<Option<usize>>,
}

impl FieldPlan {
    pub(crate) fn new(shape: &Arc<RowShape>, fields: &'static [&'static str]) -> Self {
        let columns = fields.iter().map(|f| shape.columns.iter().position(|c| c == f)).collect();
        Self { shape: Arc::clone(shape), fields, columns }
    }

    /// True when the plan was made for `shape`.
    pub(crate) fn fits(&self, shape: &Arc<RowShape>) -> bool {
        Arc::ptr_eq(&self.shape, shape) || *self.shape == **shape
    }
}

/// Reads `row` as `T` through `plan` (made for the row's shape). The error names the column,
/// its value and what the field expected.
pub(crate) fn decode<T: DeserializeOwned>(row: &Row, plan: &FieldPlan) -> Result<T, DecodeError> {
    T::deserialize(RowDeserializer { row, plan })
}

struct RowDeserializer<'r> {
    row: &'r Row,
    plan: &'r FieldPlan,
}

impl<'de> Deserializer<'de> for RowDeserializer<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(Fields { row: self.row, plan: self.plan, next: 0, current: None })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The row's fields, as a map from field name to the column's value.
struct Fields<'r> {
    row: &'r Row,
    plan: &'r FieldPlan,
    next: usize,
    current: Option<usize>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        while self.next < self.plan.fields.len() {
            let at = self.next;
            self.next += 1;
            if let Some(column) = self.plan.columns[at] {
                self.current = Some(column);
                let name: StrDeserializer<'_, DecodeError> = self.plan.fields[at].into_deserializer();
                return seed.deserialize(name).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DecodeError> {
        let column = self.current.take().ok_or_else(|| DecodeError("a value was asked before its field".into()))?;
        let value = &self.row.values()[column];
        seed.deserialize(ValueDeserializer(value)).map_err(|e| {
            let mut shown = value.canonical();
            if shown.len() > 60 {
                let cut = (0..=60).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            DecodeError(format!("column `{}` holds `{shown}`: {e}", self.row.shape().columns[column]))
        })
    }
}

/// One value, read as whatever the field asks for, within what the value can be.
struct ValueDeserializer<'v>(&'v Value);

impl ValueDeserializer<'_> {
    /// The text chrono, uuid and serde read these values from.
    fn text(&self) -> Option<String> {
        Some(match self.0 {
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Time(t) => t.format("%H:%M:%S%.f").to_string(),
            Value::Timestamp(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            Value::TimestampTz(t) => t.to_rfc3339(),
            Value::Uuid(u) => u.hyphenated().to_string(),
            _ => return None,
        })
    }
}

impl<'de> Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Decimal(d) => visitor.visit_string(crate::canonical_decimal(d)),
            Value::Text(s) => visitor.visit_str(s),
            Value::Bytes(b) => visitor.visit_bytes(b),
            Value::Json(s) => {
                let json: serde_json::Value = serde_json::from_str(s).map_err(|e| DecodeError(e.to_string()))?;
                json.deserialize_any(visitor).map_err(|e| DecodeError(e.to_string()))
            }
            _ => match self.text() {
                Some(text) => visitor.visit_string(text),
                None => visitor.visit_unit(),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// SQLite keeps booleans as integers.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Int(i) => visitor.visit_bool(*i != 0),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Decimal(d) => {
                visitor.visit_f64(d.parse().map_err(|_| DecodeError(format!("`{d}` is not a number")))?)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_f64(visitor)
    }

    /// A JSON column read into a `String` field is its text.
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Json(s) => visitor.visit_str(s),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Bytes(b) => visitor.visit_seq(SeqDeserializer::new(b.iter().copied())),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// Unit variants from their name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Text(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char bytes byte_buf unit
        unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}
