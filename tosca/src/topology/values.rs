//! Property values during building: typed values with calls still in place, evaluated once all
//! nodes are known, then turned into the JSON of the Topology.

use crate::function::Call;
use crate::value::Value;
use indexmap::IndexMap;
use serde_json::Value as J;

/// A value with function calls kept as parsed calls.
#[derive(Clone, Debug)]
pub enum PV {
    Json(J),
    List(Vec<PV>),
    Map(IndexMap<String, PV, rustc_hash::FxBuildHasher>),
    Call(Box<Call>),
}

impl PV {
    /// From a checked value; `parse_call` turns each `Value::Expr` into a call (or `None` when it
    /// is malformed, already reported; it then becomes null).
    pub fn from_value(v: &Value, parse_call: &mut dyn FnMut(&crate::yaml::Yaml) -> Option<Call>) -> PV {
        match v {
            Value::Expr(y) => match parse_call(y) {
                Some(c) => PV::Call(Box::new(c)),
                None => PV::Json(J::Null),
            },
            Value::List(items) => PV::List(items.iter().map(|i| PV::from_value(i, parse_call)).collect()),
            Value::Map(m) => PV::Map(m.iter().map(|(k, i)| (k.clone(), PV::from_value(i, parse_call))).collect()),
            other => {
                if let Some(fields) = complex_fields(other) {
                    return PV::Map(fields.iter().map(|(k, i)| (k.clone(), PV::from_value(i, parse_call))).collect());
                }
                PV::Json(other.to_json())
            }
        }
    }
}

fn complex_fields(v: &Value) -> Option<&IndexMap<String, Value>> {
    match v {
        Value::Complex { fields, .. } => Some(fields),
        _ => None,
    }
}

/// The JSON of a call that cannot be evaluated before apply.
pub fn expr_json(c: &Call) -> J {
    let mut m = serde_json::Map::new();
    m.insert("$expr".into(), c.source.to_json());
    J::Object(m)
}

/// A value without a declared type: calls stay calls, the rest is taken as written.
pub fn untyped(y: &crate::yaml::Yaml) -> crate::value::Value {
    use crate::value::Value;
    use crate::yaml::YamlValue as Y;
    if crate::function::is_call(y) {
        return Value::Expr(y.clone());
    }
    match &y.value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Int(i) => Value::Integer(*i),
        Y::Float(f) => Value::Float(*f),
        Y::Str(s) => Value::String(s.clone()),
        Y::Seq(items) => Value::List(items.iter().map(untyped).collect()),
        Y::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.scalar_text().unwrap_or_default(), untyped(v))).collect()),
    }
}
