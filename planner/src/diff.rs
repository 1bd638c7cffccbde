//! Which config paths differ between state and the desired config.

use serde_json::Value;

/// Paths (segments) where `after` differs from `before`, descending into objects; lists and
/// scalars are compared whole. A leaf marked unknown in `mask` counts as changed.
pub fn changed_paths(before: &Value, after: &Value, mask: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    walk(before, after, mask, &mut Vec::new(), &mut out);
    out
}

fn walk(before: &Value, after: &Value, mask: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if mask == &Value::Bool(true) {
        out.push(path.clone());
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, av) in a {
                path.push(k.clone());
                let m = mask.get(k).unwrap_or(&Value::Null);
                match b.get(k) {
                    Some(bv) => walk(bv, av, m, path, out),
                    None if is_empty(av) && m != &Value::Bool(true) => {}
                    None => out.push(path.clone()),
                }
                path.pop();
            }
            for (k, bv) in b {
                if !a.contains_key(k) && !is_empty(bv) {
                    path.push(k.clone());
                    out.push(path.clone());
                    path.pop();
                }
            }
        }
        (b, a) => {
            if b != a || crate::expr::any_unknown(mask) {
                out.push(path.clone());
            }
        }
    }
}

/// Null, `{}` and `[]` all mean "nothing here": adding or dropping one is not a change.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_changes_are_reported_by_path() {
        let b = json!({"properties": {"port": 80, "name": "x"}, "capabilities": {"host": {"num_cpus": 1}}});
        let a = json!({"properties": {"port": 81, "name": "x"}, "capabilities": {"host": {"num_cpus": 2}}});
        let p = changed_paths(&b, &a, &json!({}));
        assert_eq!(p, vec![vec!["properties".to_string(), "port".into()], vec!["capabilities".into(), "host".into(), "num_cpus".into()]]);
    }

    #[test]
    fn unknown_leaves_count_as_changed_and_equal_values_do_not() {
        let b = json!({"properties": {"url": "http://a", "x": [1, 2]}});
        let a = json!({"properties": {"url": null, "x": [1, 2]}});
        let p = changed_paths(&b, &a, &json!({"properties": {"url": true}}));
        assert_eq!(p, vec![vec!["properties".to_string(), "url".into()]]);
        assert!(changed_paths(&b, &b, &json!({})).is_empty());
    }

    #[test]
    fn removed_keys_are_changes() {
        let p = changed_paths(&json!({"a": 1, "b": 2}), &json!({"a": 1}), &json!({}));
        assert_eq!(p, vec![vec!["b".to_string()]]);
    }

    #[test]
    fn an_empty_section_is_the_same_as_none() {
        assert!(changed_paths(&json!({"properties": {}}), &json!({}), &json!({})).is_empty());
        assert!(changed_paths(&json!({}), &json!({"tags": []}), &json!({})).is_empty());
    }
}
