//! Shared pieces of the renderers: mask navigation, masked value formatting, plain-words
//! reasons, action names and the per-type summary.

use crate::plan::{Action, Plan, Reason, ReasonCode, ResourceChange};
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) static TRUE: Value = Value::Bool(true);
pub(crate) static NULL: Value = Value::Null;

/// The mask of `key` inside `mask` (`true` covers the whole subtree).
pub(crate) fn sub<'a>(mask: &'a Value, key: &str) -> &'a Value {
    match mask {
        Value::Bool(true) => &TRUE,
        Value::Object(m) => m.get(key).unwrap_or(&NULL),
        _ => &NULL,
    }
}

/// The mask of element `i` inside `mask`.
pub(crate) fn sub_idx(mask: &Value, i: usize) -> &Value {
    match mask {
        Value::Bool(true) => &TRUE,
        Value::Array(a) => a.get(i).unwrap_or(&NULL),
        _ => &NULL,
    }
}

pub(crate) fn is_true(mask: &Value) -> bool {
    mask == &TRUE
}

/// Whether any leaf of the mask is `true`.
pub(crate) fn any_true(mask: &Value) -> bool {
    match mask {
        Value::Bool(b) => *b,
        Value::Object(m) => m.values().any(any_true),
        Value::Array(a) => a.iter().any(any_true),
        _ => false,
    }
}

/// `value` with every leaf marked in `mask` replaced by null.
pub(crate) fn redact(value: &Value, mask: &Value) -> Value {
    if is_true(mask) {
        return Value::Null;
    }
    match (value, mask) {
        (Value::Object(m), Value::Object(_)) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), redact(v, sub(mask, k)))).collect())
        }
        (Value::Array(a), Value::Array(_)) => {
            Value::Array(a.iter().enumerate().map(|(i, v)| redact(v, sub_idx(mask, i))).collect())
        }
        _ => value.clone(),
    }
}

/// Both masks merged (`true` wherever either is).
pub(crate) fn union_mask(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Bool(true), _) | (_, Value::Bool(true)) => TRUE.clone(),
        (Value::Object(x), Value::Object(y)) => {
            let mut m = x.clone();
            for (k, v) in y {
                let merged = union_mask(x.get(k).unwrap_or(&NULL), v);
                m.insert(k.clone(), merged);
            }
            Value::Object(m)
        }
        (Value::Array(x), Value::Array(y)) => {
            let n = x.len().max(y.len());
            Value::Array((0..n).map(|i| union_mask(x.get(i).unwrap_or(&NULL), y.get(i).unwrap_or(&NULL))).collect())
        }
        (Value::Object(_) | Value::Array(_), _) => a.clone(),
        _ => b.clone(),
    }
}

pub(crate) const KNOWN_AFTER_APPLY: &str = "(known after apply)";
pub(crate) const SENSITIVE: &str = "(sensitive value)";
pub(crate) const SENSITIVE_CHANGED: &str = "(sensitive value changed)";

/// A value on one line: strings JSON-quoted, maps as `{ k = v }`, unknown and sensitive leaves
/// as `(known after apply)` / `(sensitive value)`.
pub(crate) fn fmt_value(v: &Value, unknown: &Value, sensitive: &Value) -> String {
    let mut s = String::new();
    write_value(&mut s, v, unknown, sensitive);
    s
}

fn write_value(out: &mut String, v: &Value, unknown: &Value, sensitive: &Value) {
    if is_true(unknown) {
        out.push_str(KNOWN_AFTER_APPLY);
        return;
    }
    if is_true(sensitive) {
        out.push_str(SENSITIVE);
        return;
    }
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, x, sub_idx(unknown, i), sub_idx(sensitive, i));
            }
            out.push(']');
        }
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Object(_) if literal(v).is_some() => out.push_str(&literal(v).unwrap_or_default()),
        Value::Object(m) => {
            out.push_str("{ ");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&fmt_key(k));
                out.push_str(" = ");
                write_value(out, x, sub(unknown, k), sub(sensitive, k));
            }
            out.push_str(" }");
        }
        other => out.push_str(&other.to_string()),
    }
}

/// TOSCA values the front-end stores as objects but users write as one token: a scalar-unit
/// (`{value, unit, normalized, base_unit}`, shown `1.5 GB`) and a version (`{version, major,
/// ...}`, shown `22.04`).
pub(crate) fn literal(v: &Value) -> Option<String> {
    let m = v.as_object()?;
    let has = |keys: &[&str]| m.len() == keys.len() && keys.iter().all(|k| m.contains_key(*k));
    if has(&["value", "unit", "normalized", "base_unit"]) {
        let value = m.get("value")?;
        let unit = m.get("unit")?.as_str()?;
        return Some(format!("{value} {unit}"));
    }
    if has(&["version", "major", "minor", "fix", "qualifier", "build"]) {
        return m.get("version")?.as_str().map(str::to_string);
    }
    None
}

/// A map key: bare when it is a plain identifier, JSON-quoted otherwise (so it never holds a
/// newline or other control character).
pub(crate) fn fmt_key(k: &str) -> String {
    let mut chars = k.chars();
    let plain = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// A name (address, type, provider) for display on one line: control characters escaped.
pub(crate) fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// "will be created", "must be replaced", ...
pub(crate) fn action_verb(action: Action) -> &'static str {
    match action {
        Action::NoOp => "is unchanged",
        Action::Create => "will be created",
        Action::Read => "will be read during apply",
        Action::Update => "will be updated in place",
        Action::DeleteThenCreate | Action::CreateThenDelete => "must be replaced",
        Action::Delete => "will be destroyed",
    }
}

/// The word used in summary tables.
pub(crate) fn action_word(action: Action) -> &'static str {
    match action {
        Action::NoOp => "no-op",
        Action::Create => "create",
        Action::Read => "read",
        Action::Update => "update",
        Action::DeleteThenCreate | Action::CreateThenDelete => "replace",
        Action::Delete => "destroy",
    }
}

/// The legend line of an action (after its symbol).
pub(crate) fn legend_text(action: Action) -> &'static str {
    match action {
        Action::NoOp => "no change",
        Action::Create => "create",
        Action::Read => "read during apply",
        Action::Update => "update in place",
        Action::DeleteThenCreate => "destroy and then create replacement",
        Action::CreateThenDelete => "create replacement and then destroy",
        Action::Delete => "destroy",
    }
}

/// Display order of actions in legends and tables.
pub(crate) const ACTION_ORDER: [Action; 6] = [
    Action::Create,
    Action::Update,
    Action::DeleteThenCreate,
    Action::CreateThenDelete,
    Action::Delete,
    Action::Read,
];

fn rank(a: Action) -> usize {
    ACTION_ORDER.iter().position(|x| *x == a).unwrap_or(ACTION_ORDER.len())
}

/// Actions used by the plan's resource changes, in display order.
pub(crate) fn used_actions(plan: &Plan) -> Vec<Action> {
    ACTION_ORDER.iter().copied().filter(|a| plan.changes.iter().any(|c| c.action == *a)).collect()
}

/// Changed instances (not no-op), sorted by node name then index (so `web[2]` < `web[10]`).
pub(crate) fn changed_sorted(plan: &Plan) -> Vec<&ResourceChange> {
    let mut v: Vec<&ResourceChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    v.sort_by(|a, b| (&a.node, a.index, &a.address).cmp(&(&b.node, b.index, &b.address)));
    v
}

/// Rows `(action, type, count)` of the per-type summary, in display order.
pub(crate) fn by_type_rows(plan: &Plan) -> Vec<(Action, String, usize)> {
    let mut m: BTreeMap<(usize, Action, String), usize> = BTreeMap::new();
    for c in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        *m.entry((rank(c.action), c.action, c.type_name.clone())).or_default() += 1;
    }
    m.into_iter().map(|((_, a, t), n)| (a, t, n)).collect()
}

pub(crate) fn unchanged_count(plan: &Plan) -> usize {
    plan.changes.iter().filter(|c| c.action == Action::NoOp).count()
}

/// `Plan: A to add, C to change, D to destroy.`
pub(crate) fn plan_line(plan: &Plan) -> String {
    let c = plan.counts();
    format!("Plan: {} to add, {} to change, {} to destroy.", c.add, c.change, c.destroy)
}

const MAX_PATHS: usize = 4;

fn list_paths(paths: &[String]) -> String {
    let shown: Vec<&str> = paths.iter().take(MAX_PATHS).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if paths.len() > MAX_PATHS {
        s.push_str(&format!(" and {} more", paths.len() - MAX_PATHS));
    }
    clean(&s)
}

/// A reason in plain words, or None when the header already says it all.
pub(crate) fn reason_text(c: &ResourceChange, r: &Reason) -> Option<String> {
    let detail = r.detail.as_deref().map(clean);
    let paths = (!r.paths.is_empty()).then(|| list_paths(&r.paths));
    Some(match r.code {
        ReasonCode::NotInState | ReasonCode::DeleteBecauseDestroy => return None,
        ReasonCode::CreateBecauseGone => "it was deleted outside of Rosca".to_string(),
        ReasonCode::ConfigChanged => match (paths, detail) {
            (Some(p), Some(d)) => format!("{p} changed: {d}"),
            (Some(p), None) => format!("{p} changed"),
            (None, _) => "its configuration changed".to_string(),
        },
        ReasonCode::OperationInputsChanged => match paths {
            Some(p) => format!("operation inputs changed: {p}"),
            None => "operation inputs changed".to_string(),
        },
        ReasonCode::ReplaceBecauseCannotUpdate => match (paths, detail) {
            (Some(p), _) => format!("{p} cannot be updated in place"),
            (None, Some(d)) => d,
            (None, None) => "a change cannot be made in place".to_string(),
        },
        ReasonCode::ReplaceBecauseTainted => format!("because {} is tainted", clean(&c.address)),
        ReasonCode::ReplaceBecausePending => {
            detail.unwrap_or_else(|| "an interrupted operation left its outcome unknown".to_string())
        }
        ReasonCode::ReplaceByRequest => "requested with --replace".to_string(),
        ReasonCode::DeleteBecauseNoNode => "removed from the template".to_string(),
        ReasonCode::DeleteBecauseScaledIn => "scaled in".to_string(),
        ReasonCode::DeleteBecauseRemovalList => "in removal_list".to_string(),
        ReasonCode::UpdateBecauseDependencyChanges => match paths {
            Some(p) => format!("{p} depend on values known only after apply"),
            None => "it depends on values known only after apply".to_string(),
        },
    })
}

/// The reasons of a change in plain words.
pub(crate) fn reasons(c: &ResourceChange) -> Vec<String> {
    c.reasons.iter().filter_map(|r| reason_text(c, r)).collect()
}

/// A short reason for lists ("tainted", "removed from the template").
pub(crate) fn short_reason(c: &ResourceChange) -> Option<String> {
    let r = c.reasons.first()?;
    Some(match r.code {
        ReasonCode::ReplaceBecauseTainted => "tainted".to_string(),
        ReasonCode::ReplaceBecauseCannotUpdate if !r.paths.is_empty() => format!("{} changed", list_paths(&r.paths)),
        _ => reason_text(c, r)?,
    })
}

/// `node "web[0]" (tosca.nodes.WebServer, provider local)`.
pub(crate) fn node_title(c: &ResourceChange) -> String {
    let mut s = format!("node {}", Value::String(c.address.clone()));
    let mut meta = Vec::new();
    if !c.type_name.is_empty() {
        meta.push(clean(&c.type_name));
    }
    if !c.provider.is_empty() {
        meta.push(format!("provider {}", clean(&c.provider)));
    }
    if !meta.is_empty() {
        s.push_str(&format!(" ({})", meta.join(", ")));
    }
    s
}

/// Sensitivity mask for drift values: the instance's masks when the plan has the instance;
/// everything masked otherwise (e.g. a `--target` plan), since drift carries no mask of its own.
pub(crate) fn drift_mask(plan: &Plan, address: &str) -> Value {
    match plan.changes.iter().find(|c| c.address == address) {
        Some(c) => union_mask(&c.before_sensitive, &c.after_sensitive),
        None => TRUE.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalar_units_and_versions_read_as_written() {
        let host = json!({"mem_size": {"value": 1.5, "unit": "GB", "normalized": 1500000000, "base_unit": "B"}, "v": {"version": "22.04", "major": 22, "minor": 4, "fix": 0, "qualifier": null, "build": null}});
        assert_eq!(fmt_value(&host, &NULL, &NULL), "{ mem_size = 1.5 GB, v = 22.04 }");
        // An object that merely has a `value` key stays an object.
        assert_eq!(fmt_value(&json!({"value": 1, "unit": "x"}), &NULL, &NULL), "{ value = 1, unit = \"x\" }");
    }
}
