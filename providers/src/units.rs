//! Scalar-unit values in node configs, in the forms the planner hands over: `{"normalized": ..}`,
//! a plain number in the base unit, or text such as `2 GB` / `90 m`.

use serde_json::Value;
use tosca::value::ScalarKind;

/// A scalar-unit in its base unit (bytes, seconds, Hz, bps).
pub fn scalar(v: &Value, kind: ScalarKind) -> Option<f64> {
    match v {
        Value::Object(m) => m.get("normalized").and_then(Value::as_f64),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => tosca::value::scalar::parse(s, kind).ok().map(|s| s.normalized),
        _ => None,
    }
}

/// A scalar-unit size in bytes.
pub fn size_bytes(v: &Value) -> Option<f64> {
    scalar(v, ScalarKind::Size)
}

/// A scalar-unit time in seconds.
pub fn seconds(v: &Value) -> Option<f64> {
    scalar(v, ScalarKind::Time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_form_the_planner_hands_over() {
        assert_eq!(size_bytes(&json!("2 GB")), Some(2e9));
        assert_eq!(size_bytes(&json!({"normalized": 1024.0})), Some(1024.0));
        assert_eq!(seconds(&json!("90 m")), Some(5400.0));
        assert_eq!(seconds(&json!(30)), Some(30.0));
        assert_eq!(seconds(&json!("soon")), None);
    }
}
