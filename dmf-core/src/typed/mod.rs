//! Typed rows (serde structs) over the dynamic [`Row`]s of the database adapters: the one
//! place where the two meet.
//!
//! [`TypedDatabase`] opens typed sources and targets on any [`Database`](crate::sync::Database)
//! by table name (or, for a source, by query): `db.source::<Legacy>("legacy_customers")`,
//! `db.query_source::<Legacy>("SELECT … JOIN …", &["id"])`, `db.target::<Modern>("customers")`.
//! Underneath, [`TypedExtractor`] reads rows from any row extractor as `T: Deserialize` and
//! [`TypedLoader`] writes `T: Serialize` through any row loader, field by field through serde
//! (no JSON in between). Field names are column names.

mod decode;
mod encode;
mod source;

pub use source::{TypedDatabase, TypedTarget};

use decode::FieldPlan;
use encode::RowEncoder;

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catalog::{Column, DataType};
use crate::checkpoint::{Checkpoint, Position};
use crate::error::{Error, Result, Stage};
use crate::names::{MigrationName, RunId};
use crate::pipeline::{Extractor, LoadBatch, LoadOutcome, LoadReport, Loader, SourceBatch};
use crate::record::Record;
use crate::value::{Row, RowShape, Value};
use crate::{RollbackReport, canonical_decimal};

impl Value {
    /// The value as plain JSON: numbers, strings (decimals, dates and UUIDs in their canonical
    /// text), booleans, null; JSON columns as parsed JSON; bytes as an array of numbers.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Decimal(d) => J::String(canonical_decimal(d)),
            Value::Text(s) => J::String(s.clone()),
            Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.clone())),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            other => J::String(other.canonical()),
        }
    }

    /// Reads plain JSON as a value of `data_type` (the inverse of [`to_json`](Self::to_json)).
    pub fn from_json(json: &serde_json::Value, data_type: &DataType) -> std::result::Result<Value, String> {
        use serde_json::Value as J;
        let text = |j: &J| match j {
            J::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(match (json, data_type) {
            (J::Null, _) => Value::Null,
            (J::Bool(b), DataType::Bool) => Value::Bool(*b),
            (J::Number(n), DataType::Int16 | DataType::Int32 | DataType::Int64) => {
                Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?)
            }
            (J::Number(n), DataType::Float32 | DataType::Float64) => {
                Value::Float(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?)
            }
            (j, DataType::Decimal { .. }) => Value::Decimal(text(j)),
            (j, DataType::Json) => Value::Json(match j {
                J::String(s) => s.clone(),
                other => other.to_string(),
            }),
            (J::Array(items), DataType::Bytes) => Value::Bytes(
                items
                    .iter()
                    .map(|i| i.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<_>>()
                    .ok_or("not bytes")?,
            ),
            (J::String(s), DataType::Date) => {
                Value::Date(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("`{s}`: {e}"))?)
            }
            (J::String(s), DataType::Time) => {
                Value::Time(chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f").map_err(|e| format!("`{s}`: {e}"))?)
            }
            (J::String(s), DataType::Timestamp) => Value::Timestamp(
                chrono::NaiveDateTime::parse_from_str(&s.replace(' ', "T"), "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|e| format!("`{s}`: {e}"))?,
            ),
            (J::String(s), DataType::TimestampTz) => Value::TimestampTz(
                chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("`{s}`: {e}"))?.with_timezone(&chrono::Utc),
            ),
            (J::String(s), DataType::Uuid) => Value::Uuid(uuid::Uuid::parse_str(s).map_err(|e| format!("`{s}`: {e}"))?),
            (J::String(s), DataType::Bool) => Value::Bool(matches!(s.as_str(), "true" | "t" | "1")),
            (J::String(s), _) => Value::Text(s.clone()),
            (J::Bool(b), _) => Value::Bool(*b),
            (J::Number(n), _) => n.as_i64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
            (other, _) => Value::Json(other.to_string()),
        })
    }
}

/// Reads a row as `T`, by column name (a field with no column is missing: `None` for an
/// `Option`, an error otherwise). For many rows of one shape, [`TypedExtractor`] works out
/// which column feeds which field once.
pub fn row_to<T: DeserializeOwned>(row: &Row) -> Result<T> {
    let fields = fields_of::<T>(&row.shape().table)?;
    decode_row(row, &FieldPlan::new(row.shape(), fields))
}

/// `T`'s name without its module path (`LegacyCustomer`), for messages.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let plain = full.split('<').next().unwrap_or(full);
    plain.rsplit("::").next().unwrap_or(plain)
}

/// The fields of `T`, which must be a struct with named fields.
fn fields_of<T: DeserializeOwned>(read: &crate::catalog::TableName) -> Result<&'static [&'static str]> {
    decode::struct_fields::<T>().ok_or_else(|| {
        Error::Config(format!(
            "reading `{read}` as {}: the record type must be a struct with named fields",
            short_type_name::<T>()
        ))
    })
}

fn decode_row<T: DeserializeOwned>(row: &Row, plan: &FieldPlan) -> Result<T> {
    decode::decode(row, plan).map_err(|e| {
        Error::data(
            Stage::Extract,
            format!("table `{}`, row {}: does not fit {}: {e}", row.shape().table, row.key(), short_type_name::<T>()),
        )
    })
}

/// Writes `record` as a row of `columns` (fields by column name; a column with no field is
/// NULL, a field with no column an error).
pub fn row_from<T: Serialize + Record>(record: &T, columns: &[Column], shape: &Arc<RowShape>) -> Result<Row> {
    RowEncoder::new(columns.to_vec(), Arc::clone(shape)).encode(record).map_err(|e| encode_error(record, shape, e))
}

fn encode_error<T: Record>(record: &T, shape: &RowShape, error: encode::EncodeError) -> Error {
    Error::data(Stage::Load, format!("table `{}`, record {}: {error}", shape.table, record.key()))
}

/// An extractor of `T` over an extractor of rows: each row is read into `T` field by field
/// (no JSON in between), the column feeding each field found once per row shape.
pub struct TypedExtractor<E, T> {
    inner: E,
    plan: Option<FieldPlan>,
    _record: PhantomData<fn() -> T>,
}

impl<E, T> TypedExtractor<E, T> {
    /// Reads `inner`'s rows as `T`.
    pub fn new(inner: E) -> Self {
        Self { inner, plan: None, _record: PhantomData }
    }
}

impl<E, T> Extractor for TypedExtractor<E, T>
where
    E: Extractor<Item = Row>,
    T: Record + DeserializeOwned,
{
    type Item = T;

    fn continues_after_completion(&self) -> bool {
        self.inner.continues_after_completion()
    }

    fn scope(&self) -> Option<String> {
        self.inner.scope()
    }

    async fn estimate(&mut self, from: Option<&Position>) -> Result<Option<u64>> {
        self.inner.estimate(from).await
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<T>>> {
        let Self { inner, plan, .. } = self;
        inner
            .extract(from, batch_size)
            .map(move |batch| {
                let batch = batch?;
                let mut records = Vec::with_capacity(batch.records.len());
                for row in &batch.records {
                    let fits = plan.as_ref().is_some_and(|p| p.fits(row.shape()));
                    if !fits {
                        let fields = fields_of::<T>(&row.shape().table)?;
                        *plan = Some(FieldPlan::new(row.shape(), fields));
                    }
                    let Some(plan) = plan.as_ref() else { continue };
                    records.push(decode_row(row, plan)?);
                }
                Ok(SourceBatch { records, position: batch.position })
            })
            .boxed()
    }
}

/// A loader of `T` over a loader of rows with the given columns: each record is written into
/// a row field by field (no JSON in between, except for JSON and bytes columns).
pub struct TypedLoader<L, T> {
    inner: L,
    encoder: RowEncoder,
    _record: PhantomData<fn(T)>,
}

impl<L, T> TypedLoader<L, T> {
    /// Writes `T`s through `inner` as rows of `columns` (the loader's columns, in order), whose
    /// key columns are `key`.
    pub fn new(inner: L, table: crate::catalog::TableName, columns: Vec<Column>, key: &[String]) -> Self {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let key = key.iter().filter_map(|k| names.iter().position(|n| n == k)).collect();
        let shape = Arc::new(RowShape { table, columns: names, key });
        Self { inner, encoder: RowEncoder::new(columns, shape), _record: PhantomData }
    }

    fn rows(&mut self, records: &[T]) -> Result<Vec<Row>>
    where
        T: Record + Serialize,
    {
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let row = self.encoder.encode(record).map_err(|e| encode_error(record, self.encoder.shape(), e))?;
            rows.push(row);
        }
        Ok(rows)
    }

    /// The columns written.
    pub fn columns(&self) -> &[Column] {
        self.encoder.columns()
    }
}

impl<L, T> Loader for TypedLoader<L, T>
where
    L: Loader<Item = Row>,
    T: Record + Serialize,
{
    type Item = T;

    async fn load(&mut self, batch: LoadBatch<'_, T>) -> Result<LoadReport> {
        let rows = self.rows(batch.records)?;
        let LoadBatch { migration, run, checkpoint, .. } = batch;
        self.inner.load(LoadBatch { migration, run, records: &rows, checkpoint }).await
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, T>) -> Result<LoadOutcome> {
        let rows = self.rows(batch.records)?;
        let LoadBatch { migration, run, checkpoint, .. } = batch;
        self.inner.load_isolating(LoadBatch { migration, run, records: &rows, checkpoint }).await
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.inner.checkpoint(migration).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        self.inner.clear_checkpoint(migration).await
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        self.inner.committed(migration, checkpoint, records).await
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> Result<RollbackReport> {
        self.inner.rollback(migration, run).await
    }

    async fn finish(&mut self, migration: &MigrationName) -> Result<()> {
        self.inner.finish(migration).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::catalog::TableName;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Customer {
        id: i64,
        name: String,
        since: chrono::NaiveDate,
        balance: String,
        tags: Option<serde_json::Value>,
    }

    impl Record for Customer {
        fn key(&self) -> String {
            self.id.to_string()
        }
    }

    #[test]
    fn typed_records_round_trip_through_rows() {
        let columns = vec![
            Column::new("id", DataType::Int64, "bigint"),
            Column::new("name", DataType::Text { max_len: None }, "text"),
            Column::new("since", DataType::Date, "date"),
            Column::new("balance", DataType::Decimal { precision: Some(12), scale: Some(2) }, "numeric(12,2)"),
            Column::new("tags", DataType::Json, "jsonb"),
        ];
        let shape = Arc::new(RowShape {
            table: TableName::new(None, "customers"),
            columns: columns.iter().map(|c| c.name.clone()).collect(),
            key: vec![0],
        });
        let customer = Customer {
            id: 7,
            name: "Zoë".into(),
            since: chrono::NaiveDate::from_ymd_opt(2020, 2, 29).unwrap(),
            balance: "10.50".into(),
            tags: Some(serde_json::json!(["a"])),
        };
        let row = row_from(&customer, &columns, &shape).unwrap();
        assert_eq!(row.values()[2], Value::Date(customer.since));
        assert_eq!(row.values()[4], Value::Json(r#"["a"]"#.into()));
        let back: Customer = row_to(&row).unwrap();
        assert_eq!(back, Customer { balance: "10.5".into(), ..customer });
    }

    #[test]
    fn a_field_that_does_not_fit_is_named() {
        let columns = vec![Column::new("id", DataType::Int64, "bigint"), Column::new("since", DataType::Date, "date")];
        let shape = Arc::new(RowShape {
            table: TableName::new(None, "t"),
            columns: vec!["id".into(), "since".into()],
            key: vec![0],
        });
        #[derive(serde::Serialize)]
        struct Bad {
            id: i64,
            since: &'static str,
        }
        impl Record for Bad {
            fn key(&self) -> String {
                self.id.to_string()
            }
        }
        let error = row_from(&Bad { id: 3, since: "yesterday" }, &columns, &shape).unwrap_err();
        assert!(error.to_string().contains("record 3: column `since` (date): `yesterday`"), "{error}");
        assert_eq!(error.kind(), ErrorKind::Data);
    }

    #[test]
    fn a_value_that_does_not_fit_its_field_names_the_column_and_the_value() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Typed {
            id: i64,
            since: chrono::NaiveDate,
            note: Option<String>,
        }
        impl Record for Typed {
            fn key(&self) -> String {
                self.id.to_string()
            }
        }
        let shape = Arc::new(RowShape {
            table: TableName::new(None, "legacy"),
            columns: vec!["id".into(), "since".into()],
            key: vec![0],
        });
        let good = Row::new(Arc::clone(&shape), vec![Value::Int(4), Value::Text("2024-02-29".into())]);
        let typed: Typed = row_to(&good).unwrap();
        assert_eq!((typed.id, typed.note), (4, None), "a missing column is None for an Option field");
        let bad = Row::new(shape, vec![Value::Int(5), Value::Text("yesterday".into())]);
        let error = row_to::<Typed>(&bad).unwrap_err().to_string();
        assert!(error.contains("table `legacy`, row id=5: does not fit Typed"), "{error}");
        assert!(error.contains("column `since` holds `yesterday`"), "{error}");
    }
}
