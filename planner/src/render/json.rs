//! The machine-readable plan (docs/plan-json.md). Sensitive values never appear: each sensitive
//! leaf is null with its mask kept `true`; sensitive inputs and outputs are null with
//! `"sensitive": true`; `ResourceChange::desired` is not rendered.

use super::text::{drift_mask, redact, union_mask};
use crate::plan::{Action, Plan, PlanMode, ResourceChange, PLAN_FORMAT_VERSION};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};

/// The documented JSON form of a plan.
pub fn json(plan: &Plan) -> Value {
    let variables: Map<String, Value> = plan
        .inputs
        .iter()
        .map(|(name, v)| {
            let entry = if plan.sensitive_inputs.iter().any(|s| s == name) {
                json!({"value": null, "sensitive": true})
            } else {
                json!({"value": v})
            };
            (name.clone(), entry)
        })
        .chain(
            // A sensitive input without a value in the plan is still announced.
            plan.sensitive_inputs
                .iter()
                .filter(|s| !plan.inputs.contains_key(*s))
                .map(|s| (s.clone(), json!({"value": null, "sensitive": true}))),
        )
        .collect();

    let resource_changes: Vec<Value> = plan.changes.iter().map(resource_change).collect();

    let resource_drift: Vec<Value> = plan
        .drift
        .iter()
        .map(|d| {
            let mask = drift_mask(plan, &d.address);
            let mut o = Map::new();
            o.insert("address".into(), json!(d.address));
            if let Some(c) = plan.changes.iter().find(|c| c.address == d.address) {
                o.insert("type".into(), json!(c.type_name));
            }
            o.insert("kind".into(), json!(d.kind));
            o.insert("before".into(), redact(&d.before, &mask));
            o.insert("after".into(), redact(&d.after, &mask));
            o.insert("sensitive".into(), mask);
            Value::Object(o)
        })
        .collect();

    let output_changes: Map<String, Value> = plan
        .outputs
        .iter()
        .map(|o| {
            let hide = |v: &Value| if o.sensitive { Value::Null } else { v.clone() };
            (
                o.name.clone(),
                json!({
                    "actions": o.action.json_actions(),
                    "before": hide(&o.before),
                    "after": hide(&o.after),
                    "after_unknown": o.after_unknown,
                    "sensitive": o.sensitive,
                }),
            )
        })
        .collect();

    let counts = plan.counts();
    let mut by_type: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for c in &plan.changes {
        *by_type.entry(c.type_name.as_str()).or_default().entry(action_name(c.action)).or_default() += 1;
    }
    let no_op = plan.changes.iter().filter(|c| c.action == Action::NoOp).count();
    let applyable = plan.has_changes() || (plan.mode == PlanMode::RefreshOnly && !plan.drift.is_empty());

    json!({
        "format_version": PLAN_FORMAT_VERSION,
        "rosca_version": plan.rosca_version,
        "mode": plan.mode,
        "created": plan.created,
        "refreshed": plan.refreshed,
        "binding": {
            "lineage": plan.binding.lineage,
            "serial": plan.binding.serial,
            "template": plan.binding.template,
            "digest": plan.binding.digest,
        },
        "variables": variables,
        "resource_changes": resource_changes,
        "resource_drift": resource_drift,
        "output_changes": output_changes,
        "action_graph": action_graph(plan),
        "summary": {
            "add": counts.add,
            "change": counts.change,
            "destroy": counts.destroy,
            "no_op": no_op,
            "by_type": by_type,
        },
        "applyable": applyable,
    })
}

/// The serde name of an action (`create`, `delete-then-create`, ...), used as `by_type` keys.
fn action_name(a: Action) -> &'static str {
    match a {
        Action::NoOp => "no-op",
        Action::Create => "create",
        Action::Read => "read",
        Action::Update => "update",
        Action::DeleteThenCreate => "delete-then-create",
        Action::CreateThenDelete => "create-then-delete",
        Action::Delete => "delete",
    }
}

fn resource_change(c: &ResourceChange) -> Value {
    let mut o = Map::new();
    o.insert("address".into(), json!(c.address));
    o.insert("node".into(), json!(c.node));
    if let Some(i) = c.index {
        o.insert("index".into(), json!(i));
    }
    o.insert("type".into(), json!(c.type_name));
    o.insert("provider".into(), json!(c.provider));
    o.insert(
        "change".into(),
        json!({
            "actions": c.action.json_actions(),
            "before": redact(&c.before, &c.before_sensitive),
            "after": redact(&c.after, &c.after_sensitive),
            "after_unknown": c.after_unknown,
            "before_sensitive": c.before_sensitive,
            "after_sensitive": c.after_sensitive,
            "replace_paths": c.replace_paths,
            "sensitive_changed_paths": sensitive_changed_paths(c),
        }),
    );
    if let Some(r) = c.reasons.first() {
        o.insert("action_reason".into(), json!(r.code));
    }
    o.insert("reasons".into(), json!(c.reasons));
    o.insert("operations".into(), json!(c.operations));
    o.insert("depends_on".into(), json!(c.depends_on));
    Value::Object(o)
}

/// Nodes: the instances with an action other than no-op, in apply order. Edges `[from, to]`:
/// `from` must finish before `to` starts.
fn action_graph(plan: &Plan) -> Value {
    let (nodes, edges) = action_edges(plan);
    let nodes: Vec<Value> = nodes.iter().map(|c| json!({"address": c.address, "actions": c.action.json_actions()})).collect();
    json!({"nodes": nodes, "edges": edges})
}

/// The changed instances (plan order) and the ordering edges between them, deduplicated and
/// sorted by the positions of their endpoints.
pub(crate) fn action_edges(plan: &Plan) -> (Vec<&ResourceChange>, Vec<[String; 2]>) {
    let nodes: Vec<&ResourceChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    let pos: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, c)| (c.address.as_str(), i)).collect();
    let mut seen = HashSet::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (to, c) in nodes.iter().enumerate() {
        for d in &c.depends_on {
            if let Some(&from) = pos.get(d.as_str()) {
                if from != to && seen.insert((from, to)) {
                    edges.push((from, to));
                }
            }
        }
    }
    edges.sort_unstable();
    let edges = edges.into_iter().map(|(f, t)| [nodes[f].address.clone(), nodes[t].address.clone()]).collect();
    (nodes, edges)
}

/// Paths of the sensitive leaves whose value changes (the values themselves are redacted, so
/// this is the only way a reader learns that a secret changes).
fn sensitive_changed_paths(c: &ResourceChange) -> Vec<Vec<String>> {
    let mask = union_mask(&c.before_sensitive, &c.after_sensitive);
    let mut out = Vec::new();
    walk_mask(&mask, &mut Vec::new(), &mut |path| {
        let b = at(&c.before, path);
        let a = at(&c.after, path);
        let unknown = at(&c.after_unknown, path).is_some_and(|u| u == &Value::Bool(true));
        if c.action != Action::NoOp && (unknown || b != a) {
            out.push(path.to_vec());
        }
    });
    out
}

fn walk_mask(mask: &Value, path: &mut Vec<String>, f: &mut dyn FnMut(&[String])) {
    match mask {
        Value::Bool(true) => f(path),
        Value::Object(m) => {
            for (k, v) in m {
                path.push(k.clone());
                walk_mask(v, path, f);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                walk_mask(v, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur).filter(|v| !v.is_null())
}
