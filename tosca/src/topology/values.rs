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
    /// From a checked value, consumed (its strings and keys move into the result);
    /// `parse_call` turns each `Value::Expr` into a call (or `None` when it is malformed,
    /// already reported; it then becomes null).
    pub fn from_value(v: Value, parse_call: &mut dyn FnMut(&crate::yaml::Yaml) -> Option<Call>) -> PV {
        match v {
            Value::Expr(y) => match parse_call(&y) {
                Some(c) => PV::Call(Box::new(c)),
                None => PV::Json(J::Null),
            },
            Value::List(items) => PV::List(items.into_iter().map(|i| PV::from_value(i, parse_call)).collect()),
            Value::Map(m) | Value::Complex { fields: m, .. } => PV::Map(m.into_iter().map(|(k, i)| (k, PV::from_value(i, parse_call))).collect()),
            other => PV::Json(other.into_json()),
        }
    }

    /// The JSON of a value without calls, consumed (what rendering gives for it, without a copy).
    /// A call, which callers rule out, would stay as its `{"$expr": ...}` form.
    pub fn into_json(self) -> J {
        match self {
            PV::Json(j) => j,
            PV::List(items) => J::Array(items.into_iter().map(PV::into_json).collect()),
            PV::Map(m) => J::Object(m.into_iter().map(|(k, v)| (k, v.into_json())).collect()),
            PV::Call(c) => expr_json(&c),
        }
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
        Y::Str(s) => Value::String(s.as_str().to_owned()),
        Y::Seq(items) => Value::List(items.iter().map(untyped).collect()),
        Y::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.scalar_text().unwrap_or_default(), untyped(v))).collect()),
    }
}
