//! The order to load tables in so that foreign keys hold, and the columns to defer when
//! foreign keys form cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::{ForeignKey, Table, TableName};
use crate::error::{Error, Result};
use crate::graph::DependencyGraph;

/// One table in load order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableStep {
    /// The table.
    pub table: TableName,
    /// Foreign keys of this table that cannot hold while it loads (a self-reference, or the
    /// edge chosen to break a cycle). Their columns are loaded as NULL first and filled in by
    /// a second pass once every table of the cycle is loaded.
    pub deferred: Vec<ForeignKey>,
    /// Foreign keys of this table in a cycle whose foreign-key columns are all NOT NULL, left
    /// out of the order to break it: no insert order satisfies them row by row, so the table
    /// can only be written by sessions that skip per-row checks (the sync then proves them
    /// with set-based queries). Reading and comparing need no order.
    #[serde(default)]
    pub unordered: Vec<ForeignKey>,
}

impl TableStep {
    /// The columns loaded as NULL in the first pass.
    pub fn deferred_columns(&self) -> BTreeSet<&str> {
        self.deferred.iter().flat_map(|fk| fk.columns.iter().map(String::as_str)).collect()
    }
}

/// Tables in an order where every table comes after the tables it references.
///
/// ```
/// use dmf_core::catalog::{Column, DataType, ForeignKey, LoadOrder, Table, TableName};
/// let id = || Column::new("id", DataType::Int64, "bigint").not_null();
/// let fk = |name: &str, column: &str, to: &str| ForeignKey {
///     name: name.into(), columns: vec![column.into()], referenced_table: TableName::new(None, to),
///     referenced_columns: vec!["id".into()], enforced: true,
/// };
/// let table = |name: &str, fks: Vec<ForeignKey>| Table {
///     name: TableName::new(None, name),
///     columns: vec![id(), Column::new("ref", DataType::Int64, "bigint")],
///     primary_key: vec!["id".into()], unique_keys: vec![], foreign_keys: fks,
/// };
/// let order = LoadOrder::plan(&[
///     table("orders", vec![fk("orders_customer", "ref", "customers")]),
///     table("customers", vec![]),
///     table("employees", vec![fk("employees_manager", "ref", "employees")]),
/// ]).unwrap();
/// let names: Vec<String> = order.steps.iter().map(|s| s.table.to_string()).collect();
/// assert_eq!(names, ["customers", "employees", "orders"]);
/// assert_eq!(order.steps[1].deferred_columns().into_iter().collect::<Vec<_>>(), ["ref"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadOrder {
    /// Tables in load order (deletes run in reverse).
    pub steps: Vec<TableStep>,
}

impl LoadOrder {
    /// Orders `tables` by their enforced foreign keys among themselves (references to tables
    /// outside the set are ignored: those rows must already be in the target). Self-references
    /// and cycles are broken at foreign keys whose columns are all nullable (loaded as NULL,
    /// filled by a second pass); a cycle with no such key at its first foreign key, which is
    /// then [`unordered`](TableStep::unordered).
    pub fn plan(tables: &[Table]) -> Result<Self> {
        let selected: BTreeSet<&TableName> = tables.iter().map(|t| &t.name).collect();
        let mut deferred: BTreeMap<&TableName, Vec<ForeignKey>> = BTreeMap::new();
        let mut unordered: BTreeMap<&TableName, Vec<ForeignKey>> = BTreeMap::new();
        // (table, referenced table) -> the foreign keys making that edge.
        let mut edges: BTreeMap<(&TableName, &TableName), Vec<&ForeignKey>> = BTreeMap::new();
        for table in tables {
            for fk in table.foreign_keys.iter().filter(|fk| fk.enforced) {
                let Some(target) = selected.iter().find(|name| fk.referenced_table.matches(name)) else {
                    continue;
                };
                if *target == &table.name {
                    if nullable(table, fk) {
                        deferred.entry(&table.name).or_default().push(fk.clone());
                    }
                    // A NOT NULL self-reference can only load parents first; keyset order by
                    // the primary key usually is that order, and a violation is a row error.
                    continue;
                }
                edges.entry((&table.name, *target)).or_default().push(fk);
            }
        }
        let by_name: BTreeMap<&TableName, &Table> = tables.iter().map(|t| (&t.name, t)).collect();
        loop {
            let mut graph = DependencyGraph::new();
            for name in &selected {
                graph.add_node((*name).clone());
            }
            for (from, to) in edges.keys() {
                graph.add_edge((*from).clone(), (*to).clone());
            }
            match graph.order() {
                Ok(order) => {
                    let steps = order
                        .into_iter()
                        .map(|name| {
                            let deferred = deferred.get(&name).cloned().unwrap_or_default();
                            let unordered = unordered.get(&name).cloned().unwrap_or_default();
                            TableStep { table: name, deferred, unordered }
                        })
                        .collect();
                    return Ok(Self { steps });
                }
                Err(cycle) => {
                    let edge_of =
                        |pair: &[TableName]| edges.keys().find(|(a, b)| **a == pair[0] && **b == pair[1]).copied();
                    let breakable = cycle.windows(2).find_map(|pair| {
                        let key = edge_of(pair)?;
                        let table = by_name.get(key.0)?;
                        edges[&key].iter().all(|fk| nullable(table, fk)).then_some(key)
                    });
                    if let Some(key) = breakable {
                        if let Some(fks) = edges.remove(&key) {
                            deferred.entry(key.0).or_default().extend(fks.into_iter().cloned());
                        }
                        continue;
                    }
                    // Every foreign key of the cycle is NOT NULL: broken at its first edge,
                    // which then holds only for sessions that skip per-row checks.
                    let Some(key) = cycle.windows(2).find_map(edge_of) else {
                        let names: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                        return Err(Error::Schema(format!(
                            "cannot order the foreign-key cycle {}",
                            names.join(" -> ")
                        )));
                    };
                    if let Some(fks) = edges.remove(&key) {
                        unordered.entry(key.0).or_default().extend(fks.into_iter().cloned());
                    }
                }
            }
        }
    }

    /// Tables in the order to delete their rows (referencing tables first).
    pub fn delete_order(&self) -> impl Iterator<Item = &TableName> {
        self.steps.iter().rev().map(|s| &s.table)
    }

    /// The foreign keys of NOT NULL cycles left out of the order ([`TableStep::unordered`]).
    pub fn unordered(&self) -> impl Iterator<Item = (&TableName, &ForeignKey)> {
        self.steps.iter().flat_map(|s| s.unordered.iter().map(move |fk| (&s.table, fk)))
    }

    /// True when some table has deferred foreign keys (a second pass is needed).
    pub fn has_deferred(&self) -> bool {
        self.steps.iter().any(|s| !s.deferred.is_empty())
    }
}

fn nullable(table: &Table, fk: &ForeignKey) -> bool {
    fk.columns.iter().all(|c| table.column(c).is_some_and(|col| col.nullable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, DataType};

    fn fk(name: &str, column: &str, to: &str) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: vec![column.into()],
            referenced_table: TableName::new(None, to),
            referenced_columns: vec!["id".into()],
            enforced: true,
        }
    }

    fn table(name: &str, ref_nullable: bool, fks: Vec<ForeignKey>) -> Table {
        let mut reference = Column::new("ref", DataType::Int64, "bigint");
        reference.nullable = ref_nullable;
        Table {
            name: TableName::new(None, name),
            columns: vec![Column::new("id", DataType::Int64, "bigint").not_null(), reference],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            foreign_keys: fks,
        }
    }

    #[test]
    fn a_two_table_cycle_is_broken_at_the_nullable_key() {
        let order = LoadOrder::plan(&[
            table("a", false, vec![fk("a_b", "ref", "b")]),
            table("b", true, vec![fk("b_a", "ref", "a")]),
        ])
        .unwrap();
        let names: Vec<_> = order.steps.iter().map(|s| s.table.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(order.steps[0].deferred.len(), 1);
        assert_eq!(order.steps[0].deferred[0].name, "b_a");
        assert!(order.steps[1].deferred.is_empty());
        assert_eq!(order.delete_order().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_not_null_cycle_is_left_unordered_at_one_foreign_key() {
        let order = LoadOrder::plan(&[
            table("a", false, vec![fk("a_b", "ref", "b")]),
            table("b", false, vec![fk("b_a", "ref", "a")]),
            table("c", false, vec![fk("c_a", "ref", "a")]),
        ])
        .unwrap();
        let unordered: Vec<(String, String)> =
            order.unordered().map(|(table, fk)| (table.to_string(), fk.name.clone())).collect();
        assert_eq!(unordered.len(), 1, "{unordered:?}");
        assert!(!order.has_deferred(), "nothing NULL-able to defer");
        // The other edges of the cycle and of the tables around it still order them.
        let position = |name: &str| order.steps.iter().position(|s| s.table.name == name).unwrap();
        assert!(position("a") < position("c"));
        let (table, fk) = &unordered[0];
        let kept = if fk == "a_b" { ("b", "a") } else { ("a", "b") };
        assert_eq!(table, kept.1, "the unordered key belongs to the table that loads first");
        assert!(position(kept.0) > position(kept.1));
    }

    #[test]
    fn references_outside_the_selection_and_unenforced_keys_are_ignored() {
        let mut off = fk("c_a", "ref", "a");
        off.enforced = false;
        let order =
            LoadOrder::plan(&[table("b", true, vec![fk("b_x", "ref", "elsewhere")]), table("c", true, vec![off])])
                .unwrap();
        assert_eq!(order.steps.len(), 2);
        assert!(!order.has_deferred());
    }
}
