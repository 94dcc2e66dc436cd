//! The counters that fill key columns — sequences (serial, identity, sequences named in a
//! default), SQL Server identities, SQLite's `AUTOINCREMENT` — and how a source's are matched
//! to a target's.

use super::TableName;

/// What kind of counter a [`Sequence`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceKind {
    /// A sequence object of its own (PostgreSQL sequences behind serial and identity columns
    /// or named in a default; SQL Server `CREATE SEQUENCE`).
    Sequence,
    /// The table's own counter (SQL Server `IDENTITY`, SQLite `AUTOINCREMENT` in
    /// `sqlite_sequence`): its [`name`](Sequence::name) is the table's.
    TableCounter,
}

/// A counter that fills a column of a synced table, with the last value it handed out.
///
/// A sync leaves every target sequence owned or used by a synced table at its source's value
/// once the rows are loaded (as pgcopydb does), so the target's next insert does not collide
/// with a copied key.
///
/// ```
/// use dmf_core::catalog::{Sequence, SequenceKind, TableName};
/// let customers = TableName::new(Some("public"), "customers");
/// let sequence = Sequence {
///     name: TableName::new(Some("public"), "customers_id_seq"),
///     kind: SequenceKind::Sequence,
///     table: customers.clone(),
///     column: Some("id".into()),
///     last_value: Some(3000),
/// };
/// assert_eq!(sequence.to_string(), "public.customers_id_seq (public.customers.id) at 3000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Sequence {
    /// The sequence (for a [`TableCounter`](SequenceKind::TableCounter), the table).
    pub name: TableName,
    /// A sequence object, or the table's own counter.
    pub kind: SequenceKind,
    /// The synced table whose column it fills (the column's owner, or a table whose default
    /// names it: a sequence shared by several tables is listed once per table).
    pub table: TableName,
    /// That column, when the database says which.
    pub column: Option<String>,
    /// The last value handed out (the next is this plus the increment); `None` when none has
    /// been (the next is the start value).
    pub last_value: Option<i64>,
}

impl Sequence {
    /// The sequence and what it fills, without its value (`public.t_id_seq (public.t.id)`,
    /// `dbo.t.id (identity)`).
    pub fn label(&self) -> String {
        match (&self.kind, &self.column) {
            (SequenceKind::TableCounter, Some(column)) => format!("{}.{column} (identity)", self.table),
            (SequenceKind::TableCounter, None) => format!("{} (counter)", self.table),
            (SequenceKind::Sequence, Some(column)) => format!("{} ({}.{column})", self.name, self.table),
            (SequenceKind::Sequence, None) => format!("{} ({})", self.name, self.table),
        }
    }
}

impl std::fmt::Display for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())?;
        match self.last_value {
            Some(value) => write!(f, " at {value}"),
            None => f.write_str(" unused"),
        }
    }
}

/// A target sequence and the source sequence whose value it takes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequencePair {
    /// In the source (its value as read when planned).
    pub source: Sequence,
    /// In the target (its value as read when planned).
    pub target: Sequence,
}

/// Pairs each target sequence of a synced table with the source's: the one that fills the same
/// column of the same table (source table `tables[i].0`, target table `tables[i].1`), else the
/// one of the same name. Each target sequence appears once (a sequence shared by two tables is
/// paired by the first). Target sequences with no counterpart are left out.
pub fn pair_sequences(
    tables: &[(TableName, TableName)],
    source: &[Sequence],
    target: &[Sequence],
) -> Vec<SequencePair> {
    let mut pairs: Vec<SequencePair> = Vec::new();
    for theirs in target {
        if pairs.iter().any(|p| p.target.name == theirs.name) {
            continue;
        }
        let Some((source_table, _)) = tables.iter().find(|(_, t)| t.matches(&theirs.table)) else { continue };
        let by_column = theirs.column.as_ref().and_then(|column| {
            source.iter().find(|ours| ours.table.matches(source_table) && ours.column.as_ref() == Some(column))
        });
        let by_name = || {
            source.iter().find(|ours| {
                ours.kind == SequenceKind::Sequence
                    && theirs.kind == SequenceKind::Sequence
                    && ours.name.matches(&theirs.name)
            })
        };
        if let Some(ours) = by_column.or_else(by_name) {
            pairs.push(SequencePair { source: ours.clone(), target: theirs.clone() });
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(name: &str, table: &str, column: Option<&str>, value: Option<i64>) -> Sequence {
        Sequence {
            name: TableName::parse(name),
            kind: if name == table { SequenceKind::TableCounter } else { SequenceKind::Sequence },
            table: TableName::parse(table),
            column: column.map(str::to_owned),
            last_value: value,
        }
    }

    #[test]
    fn sequences_pair_by_table_and_column_then_by_name() {
        let tables = [
            (TableName::parse("public.a"), TableName::parse("public.a")),
            (TableName::parse("public.b"), TableName::parse("public.b")),
        ];
        let source = [
            sequence("public.a_id_seq", "public.a", Some("id"), Some(10)),
            sequence("public.shared", "public.b", None, Some(7)),
            sequence("public.c_id_seq", "public.c", Some("id"), Some(3)),
        ];
        let target = [
            // Renamed in the target: found by its column.
            sequence("public.a_id_seq1", "public.a", Some("id"), None),
            // Named in b's default: found by its name.
            sequence("public.shared", "public.b", Some("n"), Some(1)),
            sequence("public.shared", "public.a", Some("n"), Some(1)),
            // Of a table the sync leaves out.
            sequence("public.c_id_seq", "public.c", Some("id"), None),
        ];
        let pairs = pair_sequences(&tables, &source, &target);
        let names: Vec<(String, String)> =
            pairs.iter().map(|p| (p.source.name.to_string(), p.target.name.to_string())).collect();
        assert_eq!(
            names,
            [
                ("public.a_id_seq".to_owned(), "public.a_id_seq1".to_owned()),
                ("public.shared".to_owned(), "public.shared".to_owned())
            ]
        );
    }

    #[test]
    fn a_table_counter_pairs_by_its_table_only() {
        let tables = [(TableName::parse("main.t"), TableName::parse("dbo.t"))];
        let source = [sequence("main.t", "main.t", None, Some(5))];
        let target = [sequence("dbo.t", "dbo.t", None, None)];
        assert!(pair_sequences(&tables, &source, &target).is_empty(), "no column, different names");
        let source = [sequence("main.t", "main.t", Some("id"), Some(5))];
        let target = [sequence("dbo.t", "dbo.t", Some("id"), None)];
        assert_eq!(pair_sequences(&tables, &source, &target).len(), 1);
        assert_eq!(target[0].to_string(), "dbo.t.id (identity) unused");
    }
}
