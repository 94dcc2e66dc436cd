//! How a statement names a table so that it touches that table's own rows and no other's: an
//! inheritance parent's children are tables of their own (read, written and counted as such), a
//! partitioned table's partitions are its storage.

use dmf_core::catalog::TableName;

use super::qualified;

/// What the catalog says of a table, for the statements that read and write it. Parameter:
/// the quoted qualified name.
///
/// Columns: partitioned (`relkind = 'p'`), has an `INSERT` or `UPDATE` rule (which
/// `INSERT … ON CONFLICT` and `INSERT … RETURNING` refuse).
pub(crate) const RELATION_KIND: &str = "SELECT c.relkind = 'p', EXISTS (SELECT 1 FROM pg_rewrite r \
     WHERE r.ev_class = c.oid AND r.ev_type IN ('2', '3')) FROM pg_class c WHERE c.oid = $1::text::regclass";

/// Whether the table named by `$1` (quoted, qualified) is partitioned: false for one the
/// catalog lacks.
pub(crate) const PARTITIONED: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind = 'p')";

/// A table as its statements must name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelationKind {
    /// An ordinary table: named `ONLY t`, so that an inheritance parent's statements never see
    /// its children's rows (`ONLY` changes nothing for a table without children).
    Ordinary {
        /// It has `INSERT` or `UPDATE` rules: upserts go without `ON CONFLICT` and `RETURNING`.
        rules: bool,
    },
    /// A partitioned table: named as it is, its rows are its partitions' (`ONLY` would find
    /// none); rows are written through it and PostgreSQL routes each to its partition.
    Partitioned,
}

impl RelationKind {
    /// From the two columns of [`RELATION_KIND`].
    pub(crate) fn from_catalog(partitioned: bool, rules: bool) -> Self {
        if partitioned { RelationKind::Partitioned } else { RelationKind::Ordinary { rules } }
    }
}

/// `table` in a `FROM`, `UPDATE`, `DELETE FROM` or `TRUNCATE`: `ONLY "s"."t"` for an ordinary
/// table, `"s"."t"` for a partitioned one.
pub(crate) fn relation(table: &TableName, kind: RelationKind) -> String {
    match kind {
        RelationKind::Ordinary { .. } => format!("ONLY {}", qualified(table)),
        RelationKind::Partitioned => qualified(table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_tables_are_named_only_and_partitioned_ones_as_they_are() {
        let table = TableName::new(Some("public"), "Order");
        assert_eq!(relation(&table, RelationKind::Ordinary { rules: false }), r#"ONLY "public"."Order""#);
        assert_eq!(relation(&table, RelationKind::Partitioned), r#""public"."Order""#);
        assert_eq!(RelationKind::from_catalog(true, true), RelationKind::Partitioned);
        assert_eq!(RelationKind::from_catalog(false, true), RelationKind::Ordinary { rules: true });
    }
}
