//! Dependency order over instance addresses: a topological order, or the cycle that prevents
//! one, as a path a user can read (petgraph).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Edges `(a, b)` mean "a depends on b": b comes first.
///
/// Stable: of the nodes whose dependencies are placed, the first in `nodes` comes next, so
/// independent nodes keep their given order (`a[0]`, `a[1]`, ...). The applier records
/// instances in this order, and state keeps resources sorted by address: in-order inserts are
/// appends, where a reversed order (petgraph's `toposort` reverses independent nodes) made
/// every insert shift the whole resource list, quadratic in the number of instances.
pub fn order(nodes: &[String], edges: &[(String, String)]) -> Result<Vec<String>, Vec<String>> {
    let mut g: DiGraph<&str, ()> = DiGraph::with_capacity(nodes.len(), edges.len());
    let mut ix: HashMap<&str, NodeIndex> = HashMap::with_capacity(nodes.len());
    for n in nodes {
        ix.entry(n.as_str()).or_insert_with(|| g.add_node(n.as_str()));
    }
    for (a, b) in edges {
        if let (Some(&ia), Some(&ib)) = (ix.get(a.as_str()), ix.get(b.as_str())) {
            g.add_edge(ib, ia, ());
        }
    }
    // Kahn's algorithm, taking the ready node of smallest index first: O((V + E) log V).
    let mut waiting: Vec<usize> = g.node_indices().map(|i| g.neighbors_directed(i, petgraph::Direction::Incoming).count()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting.iter().enumerate().filter(|(_, w)| **w == 0).map(|(i, _)| Reverse(i)).collect();
    let mut sorted = Vec::with_capacity(g.node_count());
    while let Some(Reverse(i)) = ready.pop() {
        sorted.push(g[NodeIndex::new(i)].to_string());
        for next in g.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing) {
            let w = &mut waiting[next.index()];
            *w -= 1;
            if *w == 0 {
                ready.push(Reverse(next.index()));
            }
        }
    }
    if sorted.len() == g.node_count() {
        return Ok(sorted);
    }
    // A cycle: a node of a strongly connected component with more than one node or a self-loop.
    let start = tarjan_scc(&g)
        .into_iter()
        .find(|c| c.len() > 1 || g.contains_edge(c[0], c[0]))
        .map(|c| c[0])
        .unwrap_or_else(|| NodeIndex::new(waiting.iter().position(|w| *w > 0).unwrap_or(0)));
    Err(cycle_path(&g, start))
}

/// A cycle through `start` as `a -> b -> ... -> a` (in "depends on" direction).
fn cycle_path(g: &DiGraph<&str, ()>, start: NodeIndex) -> Vec<String> {
    let scc = tarjan_scc(g).into_iter().find(|c| c.contains(&start)).unwrap_or_else(|| vec![start]);
    // Walk backwards along edges (b -> a means a depends on b) inside the component.
    let mut path = vec![start];
    let mut cur = start;
    for _ in 0..scc.len() {
        let Some(prev) = g
            .neighbors_directed(cur, petgraph::Direction::Incoming)
            .find(|n| scc.contains(n))
        else {
            break;
        };
        path.push(prev);
        if prev == start {
            break;
        }
        if let Some(pos) = path[..path.len() - 1].iter().position(|p| *p == prev) {
            path.drain(..pos);
            break;
        }
        cur = prev;
    }
    path.into_iter().map(|i| g[i].to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn dependencies_come_first() {
        let o = order(&s(&["app", "db", "vm"]), &[("app".into(), "db".into()), ("db".into(), "vm".into())]).unwrap();
        assert_eq!(o, s(&["vm", "db", "app"]));
    }

    #[test]
    fn independent_nodes_keep_their_order() {
        let nodes: Vec<String> = (0..20).map(|i| format!("a[{i}]")).collect();
        assert_eq!(order(&nodes, &[]).unwrap(), nodes);
        // b[1] waits for a[3]; the rest stay in place.
        let o = order(&s(&["b[0]", "b[1]", "a[3]", "c"]), &[("b[1]".into(), "a[3]".into())]).unwrap();
        assert_eq!(o, s(&["b[0]", "a[3]", "b[1]", "c"]));
    }

    #[test]
    fn a_self_loop_is_a_cycle() {
        let cycle = order(&s(&["a", "b"]), &[("b".into(), "b".into())]).unwrap_err();
        assert_eq!(cycle, s(&["b", "b"]));
    }

    #[test]
    fn a_cycle_is_reported_as_a_path() {
        let e = vec![("a".into(), "b".into()), ("b".into(), "c".into()), ("c".into(), "a".into())];
        let cycle = order(&s(&["a", "b", "c", "d"]), &e).unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4, "{cycle:?}");
    }
}
