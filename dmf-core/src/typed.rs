//! Typed rows (serde structs) over the dynamic [`Row`]s of the database adapters: the one
//! place where the two meet.
//!
//! [`TypedExtractor`] reads rows from any row extractor as `T: Deserialize`; [`TypedLoader`]
//! writes `T: Serialize` through any row loader. Field names are column names.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catalog::{Column, DataType};
use crate::checkpoint::{Checkpoint, Position};
use crate::error::{Error, ErrorKind, Result, Stage};
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

/// Reads a row as `T`, by column name.
pub fn row_to<T: DeserializeOwned>(row: &Row) -> Result<T> {
    let map: serde_json::Map<String, serde_json::Value> =
        row.shape().columns.iter().zip(row.values()).map(|(c, v)| (c.clone(), v.to_json())).collect();
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
        Error::with_source(
            Stage::Extract,
            ErrorKind::Fatal,
            format!("table `{}`, row {}: does not fit the record type", row.shape().table, row.key()),
            e,
        )
    })
}

/// Writes `record` as a row of `columns` (fields by column name; a missing field is NULL).
pub fn row_from<T: Serialize + Record>(record: &T, columns: &[Column], shape: &Arc<RowShape>) -> Result<Row> {
    let json = serde_json::to_value(record).map_err(|e| {
        Error::with_source(Stage::Load, ErrorKind::Data, format!("record {} cannot be serialised", record.key()), e)
    })?;
    let fields = json.as_object().ok_or_else(|| {
        Error::data(Stage::Load, format!("record {} is not a struct with named fields", record.key()))
    })?;
    let values = columns
        .iter()
        .map(|column| {
            let field = fields.get(&column.name).unwrap_or(&serde_json::Value::Null);
            Value::from_json(field, &column.data_type).map_err(|reason| {
                Error::data(
                    Stage::Load,
                    format!("record {}, column `{}` ({}): {reason}", record.key(), column.name, column.native_type),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Row::new(Arc::clone(shape), values))
}

/// An extractor of `T` over an extractor of rows.
pub struct TypedExtractor<E, T> {
    inner: E,
    _record: PhantomData<fn() -> T>,
}

impl<E, T> TypedExtractor<E, T> {
    /// Reads `inner`'s rows as `T`.
    pub fn new(inner: E) -> Self {
        Self { inner, _record: PhantomData }
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
        self.inner
            .extract(from, batch_size)
            .map(|batch| {
                let batch = batch?;
                let records = batch.records.iter().map(row_to).collect::<Result<Vec<T>>>()?;
                Ok(SourceBatch { records, position: batch.position })
            })
            .boxed()
    }
}

/// A loader of `T` over a loader of rows with the given columns.
pub struct TypedLoader<L, T> {
    inner: L,
    columns: Vec<Column>,
    shape: Arc<RowShape>,
    _record: PhantomData<fn(T)>,
}

impl<L, T> TypedLoader<L, T> {
    /// Writes `T`s through `inner` as rows of `columns` (the loader's columns, in order), whose
    /// key columns are `key`.
    pub fn new(inner: L, table: crate::catalog::TableName, columns: Vec<Column>, key: &[String]) -> Self {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let key = key.iter().filter_map(|k| names.iter().position(|n| n == k)).collect();
        let shape = Arc::new(RowShape { table, columns: names, key });
        Self { inner, columns, shape, _record: PhantomData }
    }
}

impl<L, T> Loader for TypedLoader<L, T>
where
    L: Loader<Item = Row>,
    T: Record + Serialize,
{
    type Item = T;

    async fn load(&mut self, batch: LoadBatch<'_, T>) -> Result<LoadReport> {
        let rows = batch.records.iter().map(|r| row_from(r, &self.columns, &self.shape)).collect::<Result<Vec<_>>>()?;
        let LoadBatch { migration, run, checkpoint, .. } = batch;
        self.inner.load(LoadBatch { migration, run, records: &rows, checkpoint }).await
    }

    async fn load_isolating(&mut self, batch: LoadBatch<'_, T>) -> Result<LoadOutcome> {
        let rows = batch.records.iter().map(|r| row_from(r, &self.columns, &self.shape)).collect::<Result<Vec<_>>>()?;
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
        assert!(error.to_string().contains("record 3, column `since` (date): `yesterday`"), "{error}");
        assert_eq!(error.kind(), ErrorKind::Data);
    }
}
