//! Writing a `T: Serialize` as a [`Row`] of a target's columns directly: a serde `Serializer`
//! that puts each field's value at its column, converted to the column's type, with no JSON in
//! between (JSON and bytes columns excepted: their values go through `serde_json`, as before).

use std::fmt;
use std::sync::Arc;

use serde::ser::{self, Impossible, Serialize, SerializeStruct, Serializer};

use crate::catalog::{Column, DataType};
use crate::value::{Row, RowShape, Value};

/// Why a record could not be written as a row (serde's error type for the serializers here).
#[derive(Debug)]
pub(crate) struct EncodeError(pub(crate) String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        EncodeError(message.to_string())
    }
}

/// Writes records of one type as rows of `columns`: which column each field goes to is found
/// on the first record and checked by name (a pointer comparison) on the others.
#[derive(Debug)]
pub(crate) struct RowEncoder {
    columns: Vec<Column>,
    shape: Arc<RowShape>,
    /// For the n-th field serialized: its name and column.
    plan: Vec<(&'static str, Option<usize>)>,
}

impl RowEncoder {
    pub(crate) fn new(columns: Vec<Column>, shape: Arc<RowShape>) -> Self {
        Self { columns, shape, plan: Vec::new() }
    }

    pub(crate) fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub(crate) fn shape(&self) -> &Arc<RowShape> {
        &self.shape
    }

    /// `record` as a row; a column with no field is NULL, a field with no column an error.
    pub(crate) fn encode<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<Row, EncodeError> {
        let mut values = vec![Value::Null; self.columns.len()];
        record.serialize(StructSerializer { encoder: self, values: &mut values, field: 0 })?;
        Ok(Row::new(Arc::clone(&self.shape), values))
    }

    fn column_of(&mut self, field: usize, name: &'static str) -> Option<usize> {
        match self.plan.get(field) {
            Some((known, column)) if std::ptr::eq(*known, name) || *known == name => *column,
            _ => {
                let column = self.columns.iter().position(|c| c.name == name);
                if field < self.plan.len() {
                    self.plan[field] = (name, column);
                } else {
                    self.plan.push((name, column));
                }
                column
            }
        }
    }
}

struct StructSerializer<'e> {
    encoder: &'e mut RowEncoder,
    values: &'e mut Vec<Value>,
    field: usize,
}

fn not_a_struct<T>() -> Result<T, EncodeError> {
    Err(EncodeError("the record is not a struct with named fields".into()))
}

impl<'e> Serializer for StructSerializer<'e> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Impossible<(), EncodeError>;
    type SerializeTuple = Impossible<(), EncodeError>;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Impossible<(), EncodeError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_bool(self, _: bool) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_i8(self, _: i8) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_i16(self, _: i16) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_i32(self, _: i32) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_i64(self, _: i64) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_u8(self, _: u8) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_u16(self, _: u16) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_u32(self, _: u32) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_u64(self, _: u64) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_f32(self, _: f32) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_f64(self, _: f64) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_char(self, _: char) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_str(self, _: &str) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        not_a_struct()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        not_a_struct()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EncodeError> {
        not_a_struct()
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, EncodeError> {
        not_a_struct()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        not_a_struct()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        not_a_struct()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        not_a_struct()
    }
}

impl SerializeStruct for StructSerializer<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), EncodeError> {
        let field = self.field;
        self.field += 1;
        let Some(index) = self.encoder.column_of(field, key) else {
            return Err(EncodeError(format!(
                "field `{key}` has no column of that name in the target (columns: {})",
                self.encoder.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        let column = &self.encoder.columns[index];
        let converted = match column.data_type {
            // Any shape of value may go to these: through serde_json, as the typed layer always did.
            DataType::Json | DataType::Bytes => match serde_json::to_value(value) {
                Ok(json) if json.is_null() => Ok(Value::Null),
                Ok(json) => Value::from_json(&json, &column.data_type),
                Err(e) => Err(e.to_string()),
            },
            _ => value.serialize(ValueSerializer(&column.data_type)).map_err(|e| e.0),
        };
        self.values[index] = converted
            .map_err(|reason| EncodeError(format!("column `{}` ({}): {reason}", column.name, column.native_type)))?;
        Ok(())
    }

    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// One field's value, converted to its column's type.
struct ValueSerializer<'t>(&'t DataType);

impl ValueSerializer<'_> {
    fn int(&self, i: i64) -> Value {
        match self.0 {
            DataType::Decimal { .. } => Value::Decimal(i.to_string()),
            DataType::Float32 | DataType::Float64 => Value::Float(i as f64),
            DataType::Bool => Value::Bool(i != 0),
            _ => Value::Int(i),
        }
    }

    fn text(&self, s: &str) -> Result<Value, EncodeError> {
        let bad = |e: &dyn fmt::Display| EncodeError(format!("`{s}`: {e}"));
        Ok(match self.0 {
            DataType::Date => Value::Date(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| bad(&e))?),
            DataType::Time => Value::Time(chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f").map_err(|e| bad(&e))?),
            DataType::Timestamp => Value::Timestamp(
                chrono::NaiveDateTime::parse_from_str(&s.replacen(' ', "T", 1), "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|e| bad(&e))?,
            ),
            DataType::TimestampTz => Value::TimestampTz(
                chrono::DateTime::parse_from_rfc3339(s).map_err(|e| bad(&e))?.with_timezone(&chrono::Utc),
            ),
            DataType::Uuid => Value::Uuid(uuid::Uuid::parse_str(s).map_err(|e| bad(&e))?),
            DataType::Decimal { .. } => Value::Decimal(s.to_owned()),
            DataType::Bool => Value::Bool(matches!(s, "true" | "t" | "1")),
            _ => Value::Text(s.to_owned()),
        })
    }
}

/// The error of [`ValueSerializer`].
#[derive(Debug)]
struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

impl ser::Error for ValueError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        ValueError(message.to_string())
    }
}

impl From<EncodeError> for ValueError {
    fn from(error: EncodeError) -> Self {
        ValueError(error.0)
    }
}

fn refuse<T>(what: &str) -> Result<T, ValueError> {
    Err(ValueError(format!("a {what} has no column type to go to")))
}

impl<'t> Serializer for ValueSerializer<'t> {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = Impossible<Value, ValueError>;
    type SerializeTuple = Impossible<Value, ValueError>;
    type SerializeTupleStruct = Impossible<Value, ValueError>;
    type SerializeTupleVariant = Impossible<Value, ValueError>;
    type SerializeMap = Impossible<Value, ValueError>;
    type SerializeStruct = Impossible<Value, ValueError>;
    type SerializeStructVariant = Impossible<Value, ValueError>;

    fn serialize_bool(self, b: bool) -> Result<Value, ValueError> {
        Ok(match self.0 {
            DataType::Int16 | DataType::Int32 | DataType::Int64 => Value::Int(i64::from(b)),
            _ => Value::Bool(b),
        })
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(self.int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(self.int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(self.int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(self.int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(self.int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(self.int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(self.int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        match i64::try_from(v) {
            Ok(v) => Ok(self.int(v)),
            Err(_) => Ok(Value::Decimal(v.to_string())),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(match self.0 {
            DataType::Decimal { .. } => Value::Decimal(v.to_string()),
            _ => Value::Float(v),
        })
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(self.text(v.encode_utf8(&mut [0; 4]))?)
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(self.text(v)?)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    /// An enum of unit variants is written as the variant's name.
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<Value, ValueError> {
        Ok(self.text(variant)?)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, ValueError> {
        refuse("enum variant with data")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, ValueError> {
        refuse("sequence")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, ValueError> {
        refuse("tuple")
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, ValueError> {
        refuse("tuple")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        refuse("enum variant with data")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, ValueError> {
        refuse("map")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, ValueError> {
        refuse("struct")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        refuse("enum variant with data")
    }
}
