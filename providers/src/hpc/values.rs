//! Reading a node's JSON property values, with messages that name the property (`what` is
//! its path as the caller names it: `properties.arguments`, `arguments`).

use serde_json::Value;
use std::collections::BTreeMap;

/// What a value is, for messages: `a map`, `the number 3`.
pub fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

/// Numbers and booleans written unquoted where text is meant are accepted as text.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn string_list(what: &str, v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| scalar_text(x).ok_or_else(|| format!("`{what}[{i}]` must be a string, not {}", kind(x))))
            .collect(),
        Value::String(_) => Err(format!("`{what}` must be a list of strings; write it as [\"...\", \"...\"]")),
        other => Err(format!("`{what}` must be a list of strings, not {}", kind(other))),
    }
}

/// A map of strings; with `lenient`, numbers and booleans are taken as text (INDIGO's
/// `NUM_GPUS: { get_input: num_gpus }` is an integer).
pub fn string_map(what: &str, v: &Value, lenient: bool) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(m) = v else {
        return Err(format!("`{what}` must be a map of strings, not {}", kind(v)));
    };
    let mut out = BTreeMap::new();
    for (k, x) in m {
        let text = match x {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) if lenient => scalar_text(x).unwrap_or_default(),
            other => return Err(format!("`{what}.{k}` must be a string, not {}", kind(other))),
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}
