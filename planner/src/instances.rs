//! Expansion of node templates into instances (`scalable`: `default_instances` / INDIGO
//! `count`, `removal_list`). A node hosted on a scaled node follows its host: one instance per
//! host instance, with the same index.

use crate::plan::ReasonCode;
use indexmap::IndexMap;
use state::StateDoc;
use std::collections::{BTreeMap, BTreeSet};
use tosca::topology::Topology;

/// The instances of every node template.
#[derive(Debug, Default)]
pub struct Instances {
    nodes: IndexMap<String, NodeInstances>,
    /// Instances in state that scale-in removes, with the reason.
    pub removed: BTreeMap<String, ReasonCode>,
}

#[derive(Debug, Clone)]
pub struct NodeInstances {
    /// The node whose scaling decides the count (itself, or the scaled root of its host chain).
    pub group: Option<String>,
    /// `None`: one instance, addressed by the node name alone.
    pub indices: Option<Vec<u32>>,
}

/// Instance address: `node[i]`, or `node` when not scaled.
pub fn address(node: &str, index: Option<u32>) -> String {
    match index {
        Some(i) => format!("{node}[{i}]"),
        None => node.to_string(),
    }
}

fn is_scaled(topo: &Topology, node: &str) -> bool {
    topo.nodes
        .get(node)
        .and_then(|n| n.scaling.as_ref())
        .is_some_and(|s| s.default_instances != 1 || s.max_instances.is_some_and(|m| m > 1))
}

impl Instances {
    pub fn expand(topo: &Topology, prior: &StateDoc) -> Instances {
        let mut out = Instances::default();
        for name in topo.nodes.keys() {
            let group = scaling_root(topo, name);
            out.nodes.insert(name.clone(), NodeInstances { group, indices: None });
        }
        let mut group_indices: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (name, ni) in &out.nodes {
            if let Some(g) = &ni.group {
                if !group_indices.contains_key(g) {
                    let (keep, removed) = scale(topo, g, prior);
                    // Everything of the group on a removed index goes too, with the same reason.
                    for (idx, why) in removed {
                        for (n2, other) in &out.nodes {
                            if other.group.as_deref() == Some(g.as_str()) {
                                out.removed.insert(address(n2, Some(idx)), why);
                            }
                        }
                    }
                    group_indices.insert(g.clone(), keep);
                }
                let _ = name;
            }
        }
        for ni in out.nodes.values_mut() {
            if let Some(g) = &ni.group {
                ni.indices = group_indices.get(g).cloned();
            }
        }
        out
    }

    pub fn of(&self, node: &str) -> Option<&NodeInstances> {
        self.nodes.get(node)
    }

    /// Addresses of one node's instances.
    pub fn addresses(&self, node: &str) -> Vec<(String, Option<u32>)> {
        match self.nodes.get(node).map(|n| &n.indices) {
            Some(Some(ix)) => ix.iter().map(|i| (address(node, Some(*i)), Some(*i))).collect(),
            Some(None) => vec![(node.to_string(), None)],
            None => Vec::new(),
        }
    }

    /// The instances of `target` that instance `index` of `from` relates to: the one with the
    /// same index when both scale together, else all of them.
    pub fn related(&self, from: &str, index: Option<u32>, target: &str) -> Vec<String> {
        let same_group = match (self.nodes.get(from), self.nodes.get(target)) {
            (Some(a), Some(b)) => a.group.is_some() && a.group == b.group,
            _ => false,
        };
        if same_group {
            if let Some(i) = index {
                return vec![address(target, Some(i))];
            }
        }
        self.addresses(target).into_iter().map(|(a, _)| a).collect()
    }

    /// Whether both nodes scale together (same scaling root).
    pub fn same_group(&self, a: &str, b: &str) -> bool {
        match (self.nodes.get(a), self.nodes.get(b)) {
            (Some(x), Some(y)) => x.group.is_some() && x.group == y.group,
            _ => false,
        }
    }

    /// Every instance address, in template order.
    pub fn all(&self) -> impl Iterator<Item = (&str, String, Option<u32>)> + '_ {
        self.nodes.keys().flat_map(move |n| {
            self.addresses(n).into_iter().map(move |(a, i)| (n.as_str(), a, i))
        })
    }
}

/// The scaled node that decides `node`'s count: itself, else the nearest scaled host.
fn scaling_root(topo: &Topology, node: &str) -> Option<String> {
    let mut cur = node;
    let mut seen = BTreeSet::new();
    loop {
        if is_scaled(topo, cur) {
            return Some(cur.to_string());
        }
        if !seen.insert(cur) {
            return None;
        }
        cur = topo.nodes.get(cur)?.host.as_deref()?;
    }
}

/// Indices to keep for a scaled node, and those to remove with the reason: existing ones stay
/// unless scale-in removes them (those in `removal_list` first, then the highest); new ones
/// take the lowest free indices.
fn scale(topo: &Topology, node: &str, prior: &StateDoc) -> (Vec<u32>, Vec<(u32, ReasonCode)>) {
    let Some(scaling) = topo.nodes.get(node).and_then(|n| n.scaling.as_ref()) else {
        return (vec![0], Vec::new());
    };
    let want = usize::try_from(scaling.default_instances).unwrap_or(usize::MAX).min(1_000_000);
    let mut existing: BTreeSet<u32> = BTreeSet::new();
    for r in prior.resources.iter().filter(|r| r.node == node) {
        existing.insert(r.index.unwrap_or(0));
    }
    let mut removed = Vec::new();
    if existing.len() > want {
        let mut excess = existing.len() - want;
        for entry in &scaling.removal_list {
            if excess == 0 {
                break;
            }
            let hit = existing.iter().copied().find(|i| {
                let r = prior.resource(&address(node, Some(*i))).or_else(|| if *i == 0 { prior.resource(node) } else { None });
                entry == &address(node, Some(*i))
                    || entry == &i.to_string()
                    || r.is_some_and(|r| {
                        r.id.as_deref() == Some(entry.as_str())
                            || r.attributes.get("tosca_id").and_then(|v| v.as_str()) == Some(entry.as_str())
                    })
            });
            if let Some(i) = hit {
                existing.remove(&i);
                removed.push((i, ReasonCode::DeleteBecauseRemovalList));
                excess -= 1;
            }
        }
        while excess > 0 {
            let Some(i) = existing.pop_last() else { break };
            removed.push((i, ReasonCode::DeleteBecauseScaledIn));
            excess -= 1;
        }
    }
    let mut next = 0u32;
    while existing.len() < want {
        while existing.contains(&next) {
            next += 1;
        }
        existing.insert(next);
    }
    (existing.into_iter().collect(), removed)
}
