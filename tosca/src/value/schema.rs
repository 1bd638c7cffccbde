//! The JSON Schema subset behind the TOSCA 1.3 `schema` constraint.
//!
//! Supported keywords: `type` (a name or a list: null, boolean, object, array, number, integer,
//! string), `enum`, `const`, `properties`, `required`, `additionalProperties` (false or a
//! schema), `items` (a schema for every item, or a list for a tuple), `minItems`, `maxItems`,
//! `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers; draft-4 booleans too),
//! `minLength`, `maxLength` (characters), `pattern` (unanchored, as JSON Schema says), `allOf`,
//! `anyOf`, `oneOf`, `not`, and the boolean schemas `true` / `false`. Other keywords (`$ref`,
//! `format`, `patternProperties`, ...) are ignored. Numbers compare by value (`1` equals `1.0`).

use serde_json::{Map, Value as J};

const MAX_DEPTH: usize = 64;

pub enum SchemaError {
    /// A `pattern` that does not compile.
    Pattern(String),
    Invalid(String),
}

const TYPES: &[&str] = &["null", "boolean", "object", "array", "number", "integer", "string"];

/// Checks that a schema is usable: known type names, compilable patterns, keywords of the right
/// JSON kind.
pub fn check_schema(schema: &J) -> Result<(), SchemaError> {
    check_at(schema, "#", 0)
}

fn invalid(path: &str, m: impl std::fmt::Display) -> SchemaError {
    SchemaError::Invalid(format!("at {path}: {m}"))
}

fn check_at(schema: &J, path: &str, depth: usize) -> Result<(), SchemaError> {
    if depth > MAX_DEPTH {
        return Err(invalid(path, "the schema nests too deeply"));
    }
    let obj = match schema {
        J::Bool(_) => return Ok(()),
        J::Object(o) => o,
        _ => return Err(invalid(path, "a schema is an object or a boolean")),
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&J> = match t {
            J::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for n in names {
            match n.as_str() {
                Some(s) if TYPES.contains(&s) => {}
                _ => return Err(invalid(path, format_args!("`type` {n} is not one of {}", TYPES.join(", ")))),
            }
        }
    }
    if let Some(e) = obj.get("enum") {
        if !e.is_array() {
            return Err(invalid(path, "`enum` is a list of values"));
        }
    }
    if let Some(p) = obj.get("properties") {
        let Some(p) = p.as_object() else {
            return Err(invalid(path, "`properties` is an object of schemas"));
        };
        for (k, s) in p {
            check_at(s, &format!("{path}/properties/{k}"), depth + 1)?;
        }
    }
    if let Some(r) = obj.get("required") {
        if !r.as_array().is_some_and(|a| a.iter().all(J::is_string)) {
            return Err(invalid(path, "`required` is a list of property names"));
        }
    }
    if let Some(a) = obj.get("additionalProperties") {
        check_at(a, &format!("{path}/additionalProperties"), depth + 1)?;
    }
    match obj.get("items") {
        Some(J::Array(items)) => {
            for (i, s) in items.iter().enumerate() {
                check_at(s, &format!("{path}/items/{i}"), depth + 1)?;
            }
        }
        Some(s) => check_at(s, &format!("{path}/items"), depth + 1)?,
        None => {}
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get(k) {
            let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
                return Err(invalid(path, format_args!("`{k}` is a non-empty list of schemas")));
            };
            for (i, s) in list.iter().enumerate() {
                check_at(s, &format!("{path}/{k}/{i}"), depth + 1)?;
            }
        }
    }
    if let Some(s) = obj.get("not") {
        check_at(s, &format!("{path}/not"), depth + 1)?;
    }
    for k in ["minimum", "maximum"] {
        if obj.get(k).is_some_and(|v| !v.is_number()) {
            return Err(invalid(path, format_args!("`{k}` is a number")));
        }
    }
    for k in ["exclusiveMinimum", "exclusiveMaximum"] {
        if obj.get(k).is_some_and(|v| !v.is_number() && !v.is_boolean()) {
            return Err(invalid(path, format_args!("`{k}` is a number")));
        }
    }
    for k in ["minLength", "maxLength", "minItems", "maxItems"] {
        if obj.get(k).is_some_and(|v| v.as_u64().is_none()) {
            return Err(invalid(path, format_args!("`{k}` is a non-negative integer")));
        }
    }
    if let Some(p) = obj.get("pattern") {
        let Some(p) = p.as_str() else {
            return Err(invalid(path, "`pattern` is a string"));
        };
        super::constraint::compile_regex(p, false).map_err(|e| SchemaError::Pattern(format!("at {path}/pattern: {e}")))?;
    }
    Ok(())
}

/// Validates an instance; the error says where (a JSON pointer) and what failed.
pub fn validate(schema: &J, instance: &J) -> Result<(), String> {
    validate_at(schema, instance, "", 0)
}

fn type_of(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "boolean",
        J::Object(_) => "object",
        J::Array(_) => "array",
        J::Number(_) => "number",
        J::String(_) => "string",
    }
}

fn is_integer(v: &J) -> bool {
    match v {
        J::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn has_type(v: &J, t: &str) -> bool {
    match t {
        "integer" => is_integer(v),
        other => type_of(v) == other,
    }
}

/// JSON equality with numbers compared by value.
fn json_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (J::Object(x), J::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w))),
        _ => a == b,
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn short(v: &J) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(37).collect::<String>())
    } else {
        s
    }
}

fn validate_at(schema: &J, v: &J, path: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("at {}: the schema or value nests too deeply", at(path)));
    }
    let obj: &Map<String, J> = match schema {
        J::Bool(true) => return Ok(()),
        J::Bool(false) => return Err(format!("at {}: no value is allowed here", at(path))),
        J::Object(o) => o,
        _ => return Ok(()),
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&str> = match t {
            J::Array(a) => a.iter().filter_map(J::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        if !names.is_empty() && !names.iter().any(|n| has_type(v, n)) {
            return Err(format!("at {}: expected {}, found {} {}", at(path), names.join(" or "), type_of(v), short(v)));
        }
    }
    if let Some(J::Array(options)) = obj.get("enum") {
        if !options.iter().any(|o| json_eq(o, v)) {
            return Err(format!("at {}: {} is not one of {}", at(path), short(v), short(&J::Array(options.clone()))));
        }
    }
    if let Some(c) = obj.get("const") {
        if !json_eq(c, v) {
            return Err(format!("at {}: {} is not {}", at(path), short(v), short(c)));
        }
    }
    match v {
        J::Object(o) => {
            if let Some(J::Array(req)) = obj.get("required") {
                for r in req.iter().filter_map(J::as_str) {
                    if !o.contains_key(r) {
                        return Err(format!("at {}: required property `{r}` is missing", at(path)));
                    }
                }
            }
            let props = obj.get("properties").and_then(J::as_object);
            for (k, item) in o {
                let sub = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                match props.and_then(|p| p.get(k)) {
                    Some(s) => validate_at(s, item, &sub, depth + 1)?,
                    None => match obj.get("additionalProperties") {
                        Some(J::Bool(false)) => return Err(format!("at {}: property `{k}` is not allowed", at(path))),
                        Some(s) => validate_at(s, item, &sub, depth + 1)?,
                        None => {}
                    },
                }
            }
        }
        J::Array(items) => {
            match obj.get("items") {
                Some(J::Array(tuple)) => {
                    for (i, (s, item)) in tuple.iter().zip(items).enumerate() {
                        validate_at(s, item, &format!("{path}/{i}"), depth + 1)?;
                    }
                }
                Some(s) => {
                    for (i, item) in items.iter().enumerate() {
                        validate_at(s, item, &format!("{path}/{i}"), depth + 1)?;
                    }
                }
                None => {}
            }
            if let Some(n) = obj.get("minItems").and_then(J::as_u64) {
                if (items.len() as u64) < n {
                    return Err(format!("at {}: {} items, fewer than minItems {n}", at(path), items.len()));
                }
            }
            if let Some(n) = obj.get("maxItems").and_then(J::as_u64) {
                if (items.len() as u64) > n {
                    return Err(format!("at {}: {} items, more than maxItems {n}", at(path), items.len()));
                }
            }
        }
        J::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(n) = obj.get("minLength").and_then(J::as_u64) {
                if len < n {
                    return Err(format!("at {}: {} is shorter than minLength {n}", at(path), short(v)));
                }
            }
            if let Some(n) = obj.get("maxLength").and_then(J::as_u64) {
                if len > n {
                    return Err(format!("at {}: {} is longer than maxLength {n}", at(path), short(v)));
                }
            }
            if let Some(p) = obj.get("pattern").and_then(J::as_str) {
                match super::constraint::compile_regex(p, false) {
                    Ok(re) if re.is_match(s) => {}
                    Ok(_) => return Err(format!("at {}: {} does not match pattern `{p}`", at(path), short(v))),
                    Err(e) => return Err(format!("at {}: invalid pattern `{p}`: {e}", at(path))),
                }
            }
        }
        J::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let num = |k: &str| obj.get(k).and_then(J::as_f64);
            let excl_bool = |k: &str| obj.get(k).and_then(J::as_bool).unwrap_or(false);
            if let Some(m) = num("minimum") {
                if x < m || (excl_bool("exclusiveMinimum") && x <= m) {
                    return Err(format!("at {}: {} is less than the minimum {m}", at(path), short(v)));
                }
            }
            if let Some(m) = num("maximum") {
                if x > m || (excl_bool("exclusiveMaximum") && x >= m) {
                    return Err(format!("at {}: {} is greater than the maximum {m}", at(path), short(v)));
                }
            }
            if let Some(m) = num("exclusiveMinimum") {
                if x <= m {
                    return Err(format!("at {}: {} is not greater than {m}", at(path), short(v)));
                }
            }
            if let Some(m) = num("exclusiveMaximum") {
                if x >= m {
                    return Err(format!("at {}: {} is not less than {m}", at(path), short(v)));
                }
            }
        }
        _ => {}
    }
    if let Some(J::Array(all)) = obj.get("allOf") {
        for s in all {
            validate_at(s, v, path, depth + 1)?;
        }
    }
    if let Some(J::Array(any)) = obj.get("anyOf") {
        if !any.is_empty() && !any.iter().any(|s| validate_at(s, v, path, depth + 1).is_ok()) {
            return Err(format!("at {}: {} matches none of the anyOf schemas", at(path), short(v)));
        }
    }
    if let Some(J::Array(one)) = obj.get("oneOf") {
        let n = one.iter().filter(|s| validate_at(s, v, path, depth + 1).is_ok()).count();
        if !one.is_empty() && n != 1 {
            return Err(format!("at {}: {} matches {n} of the oneOf schemas, not exactly one", at(path), short(v)));
        }
    }
    if let Some(s) = obj.get("not") {
        if validate_at(s, v, path, depth + 1).is_ok() {
            return Err(format!("at {}: {} matches the `not` schema", at(path), short(v)));
        }
    }
    Ok(())
}
