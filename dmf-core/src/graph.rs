//! Dependency graphs and their order, written once for migrations and (later) foreign keys.

use std::collections::{BTreeMap, BTreeSet};

/// Nodes with "depends on" edges; [`order`](Self::order) puts every node after its
/// dependencies, deterministically (ties broken by node order).
///
/// ```
/// use dmf_core::DependencyGraph;
/// let mut graph = DependencyGraph::new();
/// graph.add_edge("orders", "customers");
/// graph.add_edge("order_lines", "orders");
/// graph.add_node("countries");
/// assert_eq!(graph.order().unwrap(), ["countries", "customers", "orders", "order_lines"]);
///
/// graph.add_edge("customers", "order_lines");
/// assert_eq!(graph.order().unwrap_err(), ["customers", "order_lines", "orders", "customers"]);
/// ```
#[derive(Debug, Clone)]
pub struct DependencyGraph<N> {
    dependencies: BTreeMap<N, BTreeSet<N>>,
}

impl<N: Ord + Clone> Default for DependencyGraph<N> {
    fn default() -> Self {
        Self { dependencies: BTreeMap::new() }
    }
}

impl<N: Ord + Clone> DependencyGraph<N> {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node with no dependencies (no-op when present).
    pub fn add_node(&mut self, node: N) {
        self.dependencies.entry(node).or_default();
    }

    /// Records that `node` depends on `dependency` (both are added as nodes).
    pub fn add_edge(&mut self, node: N, dependency: N) {
        self.add_node(dependency.clone());
        self.dependencies.entry(node).or_default().insert(dependency);
    }

    /// The nodes `node` depends on directly.
    pub fn dependencies_of(&self, node: &N) -> impl Iterator<Item = &N> {
        self.dependencies.get(node).into_iter().flatten()
    }

    /// Every node, dependencies first. On a cycle, returns the nodes of one cycle in order,
    /// the first repeated at the end (`[a, b, a]`).
    pub fn order(&self) -> Result<Vec<N>, Vec<N>> {
        let mut remaining: BTreeMap<&N, usize> = self.dependencies.iter().map(|(n, deps)| (n, deps.len())).collect();
        let mut dependents: BTreeMap<&N, Vec<&N>> = BTreeMap::new();
        for (node, deps) in &self.dependencies {
            for dep in deps {
                dependents.entry(dep).or_default().push(node);
            }
        }
        let mut ready: BTreeSet<&N> = remaining.iter().filter(|(_, d)| **d == 0).map(|(n, _)| *n).collect();
        let mut order = Vec::with_capacity(self.dependencies.len());
        while let Some(node) = ready.pop_first() {
            remaining.remove(node);
            order.push(node.clone());
            for dependent in dependents.get(node).into_iter().flatten() {
                if let Some(count) = remaining.get_mut(dependent) {
                    *count -= 1;
                    if *count == 0 {
                        ready.insert(dependent);
                    }
                }
            }
        }
        if remaining.is_empty() { Ok(order) } else { Err(self.cycle_among(&remaining)) }
    }

    /// Every node left has a dependency that is also left, so walking dependencies from any of
    /// them must come back to a node already seen.
    fn cycle_among(&self, remaining: &BTreeMap<&N, usize>) -> Vec<N> {
        let Some(mut node) = remaining.keys().next().copied() else {
            return Vec::new();
        };
        let mut path: Vec<&N> = Vec::new();
        loop {
            if let Some(at) = path.iter().position(|seen| *seen == node) {
                let mut cycle: Vec<N> = path[at..].iter().map(|n| (*n).clone()).collect();
                cycle.push(node.clone());
                return cycle;
            }
            path.push(node);
            match self.dependencies_of(node).find(|dep| remaining.contains_key(dep)) {
                Some(next) => node = next,
                None => return path.into_iter().cloned().collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_dependency_is_a_cycle_of_one() {
        let mut graph = DependencyGraph::new();
        graph.add_edge("a", "a");
        assert_eq!(graph.order().unwrap_err(), ["a", "a"]);
    }

    #[test]
    fn independent_nodes_come_in_name_order() {
        let mut graph = DependencyGraph::new();
        for n in ["c", "a", "b"] {
            graph.add_node(n);
        }
        assert_eq!(graph.order().unwrap(), ["a", "b", "c"]);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any acyclic graph (edges only from higher to lower numbers) orders every edge right.
        #[test]
        fn order_respects_every_edge(edges in proptest::collection::vec((0u8..30, 0u8..30), 0..80)) {
            let mut graph = DependencyGraph::new();
            let edges: Vec<_> = edges.into_iter().filter(|(a, b)| a > b).collect();
            for (a, b) in &edges {
                graph.add_edge(*a, *b);
            }
            let order = graph.order().unwrap();
            let at = |n: &u8| order.iter().position(|x| x == n).unwrap();
            for (a, b) in &edges {
                prop_assert!(at(b) < at(a));
            }
        }

        /// Adding one back edge to a chain always yields a cycle made of real edges.
        #[test]
        fn cycles_are_made_of_real_edges(len in 2u8..12, from in 0u8..12, to in 0u8..12) {
            let mut graph = DependencyGraph::new();
            for i in 1..len {
                graph.add_edge(i, i - 1);
            }
            let (from, to) = (from % len, to % len);
            prop_assume!(from <= to);
            graph.add_edge(from, to);
            let cycle = graph.order().unwrap_err();
            prop_assert_eq!(cycle.first(), cycle.last());
            for pair in cycle.windows(2) {
                prop_assert!(graph.dependencies_of(&pair[0]).any(|d| *d == pair[1]));
            }
        }
    }
}
