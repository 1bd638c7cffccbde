//! The action graph as DOT or Mermaid: one node per instance with an action (label
//! `symbol address`), an edge from each dependency to its dependent ("dependency first"), in
//! plan order.

use super::json::action_edges;
use super::GraphFormat;
use crate::plan::{Action, Plan};
use std::collections::HashSet;

/// Renders the plan's action graph.
pub fn graph(plan: &Plan, format: GraphFormat) -> String {
    match format {
        GraphFormat::Dot => dot(plan),
        GraphFormat::Mermaid => mermaid(plan),
    }
}

fn color(a: Action) -> &'static str {
    match a {
        Action::Create => "darkgreen",
        Action::Update => "darkgoldenrod",
        Action::DeleteThenCreate | Action::CreateThenDelete => "darkorange",
        Action::Delete => "red3",
        Action::Read => "steelblue",
        Action::NoOp => "gray",
    }
}

fn dot_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn dot(plan: &Plan) -> String {
    let (nodes, edges) = action_edges(plan);
    let mut s = String::from("digraph rosca_plan {\n  rankdir = \"LR\";\n  node [shape = box, fontname = \"monospace\"];\n");
    for c in &nodes {
        let label = format!("{} {}", c.action.symbol(), c.address);
        s.push_str(&format!("  {} [label = {}, color = \"{}\"];\n", dot_str(&c.address), dot_str(&label), color(c.action)));
    }
    for [from, to] in &edges {
        s.push_str(&format!("  {} -> {};\n", dot_str(from), dot_str(to)));
    }
    s.push_str("}\n");
    s
}

/// A Mermaid node id: `n_` + the address with every character outside `[A-Za-z0-9_]` as `_`,
/// suffixed with a number when two addresses collide.
fn mermaid_ids(addresses: &[&str]) -> Vec<String> {
    let mut used = HashSet::new();
    addresses
        .iter()
        .map(|a| {
            let base: String = std::iter::once("n_".to_string())
                .chain(a.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_string() } else { "_".to_string() }))
                .collect();
            let base = base.trim_end_matches('_').to_string();
            let mut id = base.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}_{n}");
                n += 1;
            }
            id
        })
        .collect()
}

/// A quoted Mermaid label: `"` and the characters Mermaid reads as markup become entities.
fn mermaid_label(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("#quot;"),
            '<' => o.push_str("#lt;"),
            '>' => o.push_str("#gt;"),
            '#' => o.push_str("#35;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn class(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::DeleteThenCreate | Action::CreateThenDelete => "replace",
        Action::Delete => "destroy",
        Action::Read => "read",
        Action::NoOp => "noop",
    }
}

fn mermaid(plan: &Plan) -> String {
    let (nodes, edges) = action_edges(plan);
    let addrs: Vec<&str> = nodes.iter().map(|c| c.address.as_str()).collect();
    let ids = mermaid_ids(&addrs);
    let id_of = |a: &str| addrs.iter().position(|x| *x == a).map(|i| ids[i].as_str()).unwrap_or("");
    let mut s = String::from("flowchart LR\n");
    for (c, id) in nodes.iter().zip(&ids) {
        let label = format!("{} {}", c.action.symbol(), c.address);
        s.push_str(&format!("  {id}[{}]\n", mermaid_label(&label)));
    }
    for [from, to] in &edges {
        s.push_str(&format!("  {} --> {}\n", id_of(from), id_of(to)));
    }
    let mut used: Vec<&str> = nodes.iter().map(|c| class(c.action)).collect();
    used.sort_unstable();
    used.dedup();
    for cl in &used {
        let style = match *cl {
            "create" => "fill:#e6ffed,stroke:#2da44e",
            "update" => "fill:#fff8c5,stroke:#bf8700",
            "replace" => "fill:#fff1e5,stroke:#bc4c00",
            "destroy" => "fill:#ffebe9,stroke:#cf222e",
            _ => "fill:#ddf4ff,stroke:#0969da",
        };
        s.push_str(&format!("  classDef {cl} {style}\n"));
        let members: Vec<&str> = nodes.iter().zip(&ids).filter(|(c, _)| class(c.action) == *cl).map(|(_, id)| id.as_str()).collect();
        s.push_str(&format!("  class {} {cl}\n", members.join(",")));
    }
    s
}
