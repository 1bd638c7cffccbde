//! Lowered expressions: what is left of a TOSCA function call once everything constant
//! (inputs, properties, artifacts, node lists) is evaluated at plan time and every entity
//! (`SELF`, `HOST`, `SOURCE`, `TARGET`, node names) is bound to instance addresses. They sit in
//! config values as `{"$expr": <Expr>}` and are evaluated against instance attributes: at plan
//! time where those are known, at apply time otherwise.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const EXPR_KEY: &str = "$expr";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// An attribute of one instance, or of several (`list`: a list of their values).
    Attribute {
        instances: Vec<String>,
        #[serde(default)]
        list: bool,
        name: String,
        /// Keys and indexes into the attribute's value.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        path: Vec<Value>,
        /// Used when the instance reports no such attribute (a property or declared default of
        /// the same name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback: Option<Value>,
    },
    OperationOutput { instance: String, operation: String, output: String },
    Concat { parts: Vec<Value> },
    Join { items: Value, delimiter: String },
    Token { string: Value, separators: String, index: i64 },
}

impl Expr {
    pub fn wrap(self) -> Value {
        let mut m = Map::new();
        m.insert(EXPR_KEY.into(), serde_json::to_value(self).unwrap_or(Value::Null));
        Value::Object(m)
    }

    /// The expression in `v`, when `v` is one.
    pub fn unwrap(v: &Value) -> Option<Expr> {
        let m = v.as_object()?;
        if m.len() != 1 {
            return None;
        }
        serde_json::from_value(m.get(EXPR_KEY)?.clone()).ok()
    }

    /// Instance addresses the expression reads.
    pub fn instances(&self, out: &mut Vec<String>) {
        match self {
            Expr::Attribute { instances, .. } => out.extend(instances.iter().cloned()),
            Expr::OperationOutput { instance, .. } => out.push(instance.clone()),
            Expr::Concat { parts } => parts.iter().for_each(|p| value_instances(p, out)),
            Expr::Join { items, .. } => value_instances(items, out),
            Expr::Token { string, .. } => value_instances(string, out),
        }
    }
}

/// Instance addresses read by every expression inside `v`.
pub fn value_instances(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => match Expr::unwrap(v) {
            Some(e) => e.instances(out),
            None => m.values().for_each(|x| value_instances(x, out)),
        },
        Value::Array(a) => a.iter().for_each(|x| value_instances(x, out)),
        _ => {}
    }
}

/// Whether `v` holds an expression anywhere.
pub fn has_expr(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key(EXPR_KEY) || m.values().any(has_expr),
        Value::Array(a) => a.iter().any(has_expr),
        _ => false,
    }
}

/// What an attribute lookup found.
pub enum Lookup {
    Value(Value),
    /// The instance exists (or will) but does not report this attribute.
    Missing,
    /// Known only after apply.
    Unknown,
}

/// Where expressions read attributes and operation outputs.
pub trait AttrSource {
    fn attribute(&self, address: &str, name: &str) -> Lookup;
    fn output(&self, address: &str, operation: &str, name: &str) -> Lookup;
}

/// Evaluates every expression in `v`. `None` when something is known only after apply.
pub fn eval(v: &Value, src: &dyn AttrSource) -> Option<Value> {
    match v {
        Value::Object(m) => match Expr::unwrap(v) {
            Some(e) => eval_expr(&e, src),
            None => m
                .iter()
                .map(|(k, x)| eval(x, src).map(|x| (k.clone(), x)))
                .collect::<Option<Map<_, _>>>()
                .map(Value::Object),
        },
        Value::Array(a) => a.iter().map(|x| eval(x, src)).collect::<Option<Vec<_>>>().map(Value::Array),
        other => Some(other.clone()),
    }
}

/// Evaluates what can be: returns the value with unknown leaves as null, and the mask of
/// unknown leaves (`true` where unknown; the mask mirrors the value's shape, Terraform's
/// `after_unknown`).
pub fn eval_partial(v: &Value, src: &dyn AttrSource) -> (Value, Value) {
    match v {
        Value::Object(m) => {
            if let Some(e) = Expr::unwrap(v) {
                return match eval_expr(&e, src) {
                    Some(x) => (x, Value::Bool(false)),
                    None => (Value::Null, Value::Bool(true)),
                };
            }
            let mut val = Map::new();
            let mut mask = Map::new();
            for (k, x) in m {
                let (a, u) = eval_partial(x, src);
                val.insert(k.clone(), a);
                if u != Value::Bool(false) && !is_empty_mask(&u) {
                    mask.insert(k.clone(), u);
                }
            }
            (Value::Object(val), Value::Object(mask))
        }
        Value::Array(a) => {
            let (vals, masks): (Vec<_>, Vec<_>) = a.iter().map(|x| eval_partial(x, src)).unzip();
            let mask = if masks.iter().all(|m| *m == Value::Bool(false) || is_empty_mask(m)) {
                Value::Array(Vec::new())
            } else {
                Value::Array(masks)
            };
            (Value::Array(vals), mask)
        }
        other => (other.clone(), Value::Bool(false)),
    }
}

fn is_empty_mask(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        _ => false,
    }
}

/// Whether an `after_unknown` mask marks anything unknown.
pub fn any_unknown(mask: &Value) -> bool {
    match mask {
        Value::Bool(b) => *b,
        Value::Object(m) => m.values().any(any_unknown),
        Value::Array(a) => a.iter().any(any_unknown),
        _ => false,
    }
}

fn eval_expr(e: &Expr, src: &dyn AttrSource) -> Option<Value> {
    match e {
        Expr::Attribute { instances, list, name, path, fallback } => {
            let mut vals = Vec::with_capacity(instances.len());
            for a in instances {
                let v = match src.attribute(a, name) {
                    Lookup::Value(v) => v,
                    Lookup::Missing => fallback.clone().unwrap_or(Value::Null),
                    Lookup::Unknown => return None,
                };
                vals.push(index_path(&v, path));
            }
            if *list {
                Some(Value::Array(vals))
            } else {
                Some(vals.into_iter().next().unwrap_or(Value::Null))
            }
        }
        Expr::OperationOutput { instance, operation, output } => match src.output(instance, operation, output) {
            Lookup::Value(v) => Some(v),
            Lookup::Missing => Some(Value::Null),
            Lookup::Unknown => None,
        },
        Expr::Concat { parts } => {
            let mut s = String::new();
            for p in parts {
                s.push_str(&text(&eval(p, src)?));
            }
            Some(Value::String(s))
        }
        Expr::Join { items, delimiter } => {
            let items = eval(items, src)?;
            let parts: Vec<String> = match items {
                Value::Array(a) => a.iter().map(text).collect(),
                other => vec![text(&other)],
            };
            Some(Value::String(parts.join(delimiter)))
        }
        Expr::Token { string, separators, index } => {
            let s = text(&eval(string, src)?);
            Some(token(&s, separators, *index))
        }
    }
}

/// `token`: the `index`-th piece of `s` split at any of `separators` (null when out of range).
pub fn token(s: &str, separators: &str, index: i64) -> Value {
    let pieces: Vec<&str> = s.split(|c| separators.contains(c)).collect();
    usize::try_from(index)
        .ok()
        .and_then(|i| pieces.get(i))
        .map(|p| Value::String(p.to_string()))
        .unwrap_or(Value::Null)
}

/// Follows keys and indexes into a value; null when the path does not exist.
pub fn index_path(v: &Value, path: &[Value]) -> Value {
    let mut cur = v;
    for seg in path {
        let next = match (seg, cur) {
            (Value::String(k), Value::Object(m)) => m.get(k),
            (Value::Number(n), Value::Array(a)) => n.as_u64().and_then(|i| a.get(usize::try_from(i).ok()?)),
            (Value::String(k), Value::Array(a)) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return Value::Null,
        }
    }
    cur.clone()
}

/// String form of a value inside `concat`/`join`/`token` (TOSCA: scalars as text).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
