//! The dialect-neutral catalog model: tables, columns, keys and foreign keys, read by each
//! adapter from its database. From it, once for every dialect: the FK load order
//! ([`LoadOrder`]) and the schema diff between source and target ([`SchemaDiff`]). Beside the
//! tables, the [`Sequence`]s that fill their keys, read and set by the adapters and paired
//! across databases here ([`pair_sequences`]).

mod diff;
mod order;
mod sequence;
mod trigger;

use std::fmt;

pub use diff::{Compatibility, DiffItem, SchemaDiff};
pub use order::{LoadOrder, TableStep};
pub use sequence::{Sequence, SequenceKind, SequencePair, pair_sequences};
pub use trigger::{Trigger, TriggerEvent};

/// A table's name, with its schema where the database has schemas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TableName {
    /// The schema (`public`, `dbo`), or `None` (SQLite's main database).
    pub schema: Option<String>,
    /// The table's name.
    pub name: String,
}

impl TableName {
    /// A table name.
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        Self { schema: schema.map(str::to_owned), name: name.to_owned() }
    }

    /// Parses `schema.table` or `table` (no quoting: for command-line selections).
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((schema, name)) => Self::new(Some(schema), name),
            None => Self::new(None, text),
        }
    }

    /// True when `other` names this table, ignoring a schema that either side leaves out.
    pub fn matches(&self, other: &TableName) -> bool {
        self.name == other.name && (self.schema.is_none() || other.schema.is_none() || self.schema == other.schema)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A column type in neutral terms; the native name is kept beside it in [`Column`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Boolean.
    Bool,
    /// 16-bit integer.
    Int16,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Exact decimal; `None` when unconstrained.
    Decimal {
        /// Total digits.
        precision: Option<u32>,
        /// Digits after the point.
        scale: Option<u32>,
    },
    /// Text, with a maximum length in characters when limited.
    Text {
        /// The limit.
        max_len: Option<u32>,
    },
    /// Bytes.
    Bytes,
    /// Date.
    Date,
    /// Time of day.
    Time,
    /// Timestamp without time zone.
    Timestamp,
    /// Timestamp with time zone.
    TimestampTz,
    /// UUID.
    Uuid,
    /// JSON (text or binary).
    Json,
    /// Anything else, by native name.
    Other(String),
}

impl DataType {
    /// True when every value of `self` fits in `target` without loss.
    pub fn fits_in(&self, target: &DataType) -> bool {
        use DataType::*;
        let int_rank = |t: &DataType| match t {
            Int16 => Some(1),
            Int32 => Some(2),
            Int64 => Some(3),
            _ => None,
        };
        match (self, target) {
            (a, b) if a == b => true,
            (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => int_rank(a) <= int_rank(b),
            (Int16 | Int32, Float64) | (Float32, Float64) => true,
            (Int16 | Int32 | Int64, Decimal { precision: None, .. }) => true,
            (Decimal { precision: p1, scale: s1 }, Decimal { precision: p2, scale: s2 }) => {
                let (s1, s2) = (s1.unwrap_or(0), s2.unwrap_or(0));
                match (p1, p2) {
                    (_, None) => true,
                    (None, Some(_)) => false,
                    (Some(p1), Some(p2)) => s1 <= s2 && p1 - s1 <= p2 - s2,
                }
            }
            (Text { max_len: a }, Text { max_len: b }) => match (a, b) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a <= b,
            },
            (Uuid | Json, Text { max_len: None }) => true,
            _ => false,
        }
    }
}

/// A column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Its name, exactly as stored (case and quotes included).
    pub name: String,
    /// Neutral type.
    pub data_type: DataType,
    /// Native type name (`numeric(38,10)`, `TEXT`, `nvarchar(max)`).
    pub native_type: String,
    /// Accepts NULL.
    pub nullable: bool,
    /// The default expression, if any.
    pub default: Option<String>,
    /// Filled by the database (identity / autoincrement).
    pub identity: bool,
    /// Computed by the database; never written.
    pub generated: bool,
}

impl Column {
    /// A plain nullable column (for tests and hand-built catalogs).
    pub fn new(name: &str, data_type: DataType, native_type: &str) -> Self {
        Self {
            name: name.to_owned(),
            data_type,
            native_type: native_type.to_owned(),
            nullable: true,
            default: None,
            identity: false,
            generated: false,
        }
    }

    /// Sets NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForeignKey {
    /// The constraint's name (generated by DMF when the database has none).
    pub name: String,
    /// Referencing columns, in order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub referenced_table: TableName,
    /// Referenced columns, in the order matching `columns`.
    pub referenced_columns: Vec<String>,
    /// False when the database does not check it (disabled / NOCHECK).
    pub enforced: bool,
}

/// A table with its columns and keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// Its name.
    pub name: TableName,
    /// Columns, in their order in the table.
    pub columns: Vec<Column>,
    /// Primary-key columns, in key order (empty when the table has none).
    pub primary_key: Vec<String>,
    /// Unique keys other than the primary key.
    pub unique_keys: Vec<Vec<String>>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
}

impl Table {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns a sync writes: all but generated ones.
    pub fn writable_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// The key that identifies rows: the primary key, else the first unique key whose columns
    /// are all NOT NULL.
    pub fn row_key(&self) -> Option<&[String]> {
        if !self.primary_key.is_empty() {
            return Some(&self.primary_key);
        }
        self.unique_keys
            .iter()
            .find(|key| key.iter().all(|c| self.column(c).is_some_and(|col| !col.nullable)))
            .map(Vec::as_slice)
    }
}

/// Every table a catalog reader found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    /// The tables.
    pub tables: Vec<Table>,
}

impl Catalog {
    /// The table named `name` (see [`TableName::matches`]).
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == *name).or_else(|| self.tables.iter().find(|t| name.matches(&t.name)))
    }
}
