//! Differences between a source table and the target's table of the same name, classified by
//! whether a sync can still move every row without altering the target.

use std::fmt;

use super::{DataType, Table, TableName};

/// Whether a difference stops a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// Rows still move; the detail says what to expect (a widened type, a default filled in, a
    /// value that may be rejected).
    Compatible,
    /// Rows cannot move as the target is: the sync refuses before writing.
    Incompatible,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiffItem {
    /// The table.
    pub table: TableName,
    /// The column, when the difference is about one.
    pub column: Option<String>,
    /// What differs, in a sentence.
    pub detail: String,
    /// Whether it stops the sync.
    pub compatibility: Compatibility,
}

/// Every difference found between source and target tables.
///
/// ```
/// use dmf_core::catalog::{Column, DataType, SchemaDiff, Table, TableName};
/// let table = |columns| Table {
///     name: TableName::new(Some("public"), "customers"), columns,
///     primary_key: vec!["id".into()], unique_keys: vec![], foreign_keys: vec![],
/// };
/// let source = table(vec![
///     Column::new("id", DataType::Int32, "integer").not_null(),
///     Column::new("email", DataType::Text { max_len: Some(100) }, "varchar(100)"),
/// ]);
/// let target = table(vec![
///     Column::new("id", DataType::Int64, "bigint").not_null(),
///     Column::new("phone", DataType::Text { max_len: None }, "text"),
/// ]);
/// let diff = SchemaDiff::compare(&source, Some(&target));
/// assert!(!diff.is_compatible());
/// assert_eq!(diff.to_string(), "\
/// compatible    public.customers.id: integer in the source, bigint in the target (widened)
/// incompatible  public.customers.email: missing in the target; its values would be lost
/// compatible    public.customers.phone: only in the target; filled with its default or NULL
/// ");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaDiff {
    /// The differences, table by table.
    pub items: Vec<DiffItem>,
}

impl SchemaDiff {
    /// Compares one source table with the target's (`None`: missing in the target).
    pub fn compare(source: &Table, target: Option<&Table>) -> Self {
        let mut diff = Self::default();
        diff.add_table(source, target);
        diff
    }

    /// Adds the differences of one more table.
    pub fn add_table(&mut self, source: &Table, target: Option<&Table>) {
        let name = &source.name;
        let Some(target) = target else {
            self.push(
                name,
                None,
                "missing in the target (a sync never creates tables)".into(),
                Compatibility::Incompatible,
            );
            return;
        };
        for column in source.writable_columns() {
            let Some(theirs) = target.column(&column.name) else {
                self.push(
                    name,
                    Some(&column.name),
                    "missing in the target; its values would be lost".into(),
                    Compatibility::Incompatible,
                );
                continue;
            };
            if theirs.generated {
                self.push(
                    name,
                    Some(&column.name),
                    "computed in the target, so it cannot be written".into(),
                    Compatibility::Incompatible,
                );
                continue;
            }
            if let Some((detail, compatibility)) = type_difference(&column.data_type, &theirs.data_type) {
                let detail =
                    format!("{} in the source, {} in the target ({detail})", column.native_type, theirs.native_type);
                self.push(name, Some(&column.name), detail, compatibility);
            }
            if column.nullable && !theirs.nullable {
                self.push(
                    name,
                    Some(&column.name),
                    "nullable in the source, NOT NULL in the target: rows with NULL here will be rejected".into(),
                    Compatibility::Compatible,
                );
            }
        }
        for theirs in target.columns.iter().filter(|c| source.column(&c.name).is_none()) {
            let fillable = theirs.nullable || theirs.default.is_some() || theirs.identity || theirs.generated;
            let (detail, compatibility) = if fillable {
                ("only in the target; filled with its default or NULL", Compatibility::Compatible)
            } else {
                (
                    "only in the target, NOT NULL without a default: no row could be inserted",
                    Compatibility::Incompatible,
                )
            };
            self.push(name, Some(&theirs.name), detail.into(), compatibility);
        }
        if source.row_key() != target.row_key() {
            let show =
                |key: Option<&[String]>| key.map_or_else(|| "none".to_owned(), |k| format!("({})", k.join(", ")));
            self.push(
                name,
                None,
                format!(
                    "row key differs: {} in the source, {} in the target",
                    show(source.row_key()),
                    show(target.row_key())
                ),
                Compatibility::Incompatible,
            );
        }
    }

    fn push(&mut self, table: &TableName, column: Option<&str>, detail: String, compatibility: Compatibility) {
        self.items.push(DiffItem { table: table.clone(), column: column.map(str::to_owned), detail, compatibility });
    }

    /// True when nothing stops the sync.
    pub fn is_compatible(&self) -> bool {
        self.items.iter().all(|i| i.compatibility == Compatibility::Compatible)
    }

    /// The differences that stop the sync.
    pub fn incompatibilities(&self) -> impl Iterator<Item = &DiffItem> {
        self.items.iter().filter(|i| i.compatibility == Compatibility::Incompatible)
    }
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            let class = match item.compatibility {
                Compatibility::Compatible => "compatible  ",
                Compatibility::Incompatible => "incompatible",
            };
            match &item.column {
                Some(column) => writeln!(f, "{class}  {}.{column}: {}", item.table, item.detail)?,
                None => writeln!(f, "{class}  {}: {}", item.table, item.detail)?,
            }
        }
        Ok(())
    }
}

/// `None` when the types are the same; otherwise what differs and whether rows still move.
fn type_difference(source: &DataType, target: &DataType) -> Option<(String, Compatibility)> {
    use DataType::*;
    if source == target {
        return None;
    }
    if source.fits_in(target) {
        return Some(("widened".into(), Compatibility::Compatible));
    }
    if let (Other(a), Other(b)) = (source, target) {
        return (!a.eq_ignore_ascii_case(b)).then(|| ("different types".into(), Compatibility::Incompatible));
    }
    let family = |t: &DataType| match t {
        Int16 | Int32 | Int64 => 1,
        Float32 | Float64 => 2,
        Decimal { .. } => 3,
        Text { .. } => 4,
        Bool => 5,
        Bytes => 6,
        Date => 7,
        Time => 8,
        Timestamp => 9,
        TimestampTz => 10,
        Uuid => 11,
        Json => 12,
        Other(_) => 13,
    };
    if family(source) == family(target) {
        return Some((narrower(target), Compatibility::Compatible));
    }
    let detail = match (source, target) {
        (Int16 | Int32 | Int64, Decimal { .. } | Float64) | (Decimal { .. }, Float64) => {
            ("converted; large values may lose precision", Compatibility::Compatible)
        }
        (_, Text { max_len: None }) | (Text { .. }, Json | Uuid) => {
            ("converted through text; values that do not parse will be rejected", Compatibility::Compatible)
        }
        _ => ("types are not convertible", Compatibility::Incompatible),
    };
    Some((detail.0.into(), detail.1))
}

/// What a narrower target type holds, and what happens to a value it cannot. A narrower type
/// is no reason to refuse the sync: the source's values usually fit (SQLite's `INTEGER` is
/// 64-bit whatever the numbers in it; a `varchar(200)` may hold only short names), and the load
/// rejects each one that does not, into the quarantine with the target's reason, while every
/// other row loads.
fn narrower(target: &DataType) -> String {
    use DataType::*;
    let holds = match target {
        Int16 => format!("holds {} to {}", i16::MIN, i16::MAX),
        Int32 => format!("holds {} to {}", i32::MIN, i32::MAX),
        Text { max_len: Some(n) } => format!("holds at most {n} characters"),
        Decimal { precision: Some(p), scale } => {
            let s = scale.unwrap_or(0);
            format!("holds {} digits before the point and {s} after it", p.saturating_sub(s))
        }
        Float32 => "holds single-precision floats (values are rounded to them)".to_owned(),
        _ => "is narrower".to_owned(),
    };
    format!(
        "the target {holds}: a value it refuses as too large is rejected into the quarantine with its reason, the \
         other rows load; the sync is not refused for it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn table(id: Column) -> Table {
        Table {
            name: TableName::new(None, "items"),
            columns: vec![id],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn sqlite_integer_into_postgres_integer_names_the_range_and_does_not_refuse() {
        let source = table(Column::new("id", DataType::Int64, "INTEGER").not_null());
        let target = table(Column::new("id", DataType::Int32, "integer").not_null());
        let diff = SchemaDiff::compare(&source, Some(&target));
        assert!(diff.is_compatible(), "{diff}");
        assert_eq!(
            diff.to_string(),
            "compatible    items.id: INTEGER in the source, integer in the target (the target holds -2147483648 to \
             2147483647: a value it refuses as too large is rejected into the quarantine with its reason, the other rows \
             load; the sync is not refused for it)\n"
        );
        assert!(!diff.to_string().contains("narrower"), "{diff}");
    }

    #[test]
    fn every_narrowing_names_what_the_target_holds() {
        let cases = [
            (DataType::Int32, DataType::Int16, "holds -32768 to 32767"),
            (DataType::Text { max_len: None }, DataType::Text { max_len: Some(40) }, "holds at most 40 characters"),
            (
                DataType::Decimal { precision: Some(38), scale: Some(10) },
                DataType::Decimal { precision: Some(12), scale: Some(2) },
                "holds 10 digits before the point and 2 after it",
            ),
        ];
        for (source, target, holds) in cases {
            let (detail, compatibility) = type_difference(&source, &target).unwrap();
            assert_eq!(compatibility, Compatibility::Compatible);
            assert!(detail.starts_with(&format!("the target {holds}:")), "{detail}");
        }
        assert_eq!(type_difference(&DataType::Int16, &DataType::Int64).unwrap().0, "widened");
    }
}
