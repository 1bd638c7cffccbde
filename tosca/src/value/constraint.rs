//! Constraint clauses (TOSCA 1.3 §3.6.3) and the checks of definitions.
//!
//! | operator | applies to | argument |
//! | --- | --- | --- |
//! | `equal`, `valid_values` | every type | a value / a list of values of the type |
//! | `greater_than`, `greater_or_equal`, `less_than`, `less_or_equal` | integer, float, string, timestamp, version, scalar-unit.* | a value of the type |
//! | `in_range` | the same, and range | `[min, max]` of the type, `min <= max`, `max` may be `UNBOUNDED` (not for strings); for a range value the bounds are integers and the range must lie within them |
//! | `length`, `min_length`, `max_length` | string (characters), list and map (entries) | a non-negative integer |
//! | `pattern` | string | a regular expression that must match the whole string |
//! | `schema` | every type | a JSON Schema (a mapping, or a string of JSON); see [`super::schema`] |
//!
//! Arguments are typed like the value: `greater_than: 2 GB` compares sizes, `valid_values:
//! [1.0, 1.1]` on a version lists versions.

use super::check::{resolve, Checker, Kind, Resolved};
use super::{compare, schema, DataTypes, Primitive, TypeSpec, Value};
use crate::diag::{codes, Diagnostic, Diagnostics};
use crate::syntax::{Constraint, ConstraintOp};
use crate::yaml::{Yaml, YamlValue};
use regex::Regex;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

/// A failed constraint: what is wrong (without the property name) and what is allowed.
pub(crate) struct Violation {
    pub message: String,
    pub help: String,
}

/// A constraint argument, read for the constrained type.
#[derive(Debug)]
pub(crate) enum Arg {
    One(Value),
    /// `in_range`: `None` upper is UNBOUNDED.
    Range(Value, Option<Value>),
    Many(Vec<Value>),
    Len(u64),
    Pattern(Regex, String),
    Schema(serde_json::Value),
}

/// Whether `v` satisfies `c`: `Err` when the constraint itself is invalid for the type.
pub(crate) fn holds(c: &Constraint, v: &Value, spec: &TypeSpec, types: &dyn DataTypes) -> Result<Result<(), Violation>, Diagnostic> {
    if matches!(v, Value::Expr(_)) {
        return Ok(Ok(()));
    }
    // The same constraint of a definition is checked against every value given for it (one
    // per node template): its argument is read once per compile.
    let key = cache_key(c, spec);
    if let (Some(cache), Some(key)) = (types.prepared(), &key) {
        if let Some(arg) = cache.get(key, &spec.type_name.value) {
            return Ok(eval(c.op, &arg, v));
        }
    }
    let r = resolve(spec, types);
    let arg = Rc::new(prepare(c, &r, spec, types)?);
    if let (Some(cache), Some(key)) = (types.prepared(), key) {
        cache.put(key, &spec.type_name.value, arg.clone());
    }
    Ok(eval(c.op, &arg, v))
}

/// Where a constraint is written (its clause and argument) and its operator: with the type it is
/// read for, this determines its prepared argument. `None` (not cached) for constraints without
/// a source location and for list and map types, whose schemas would be part of the key.
type CacheKey = (u32, u32, u32, u32, u32, u8);

fn cache_key(c: &Constraint, spec: &TypeSpec) -> Option<CacheKey> {
    if c.span.is_none() || spec.entry_schema.is_some() || spec.key_schema.is_some() {
        return None;
    }
    Some((c.span.file.0, c.span.offset, c.span.len, c.arg.span.file.0, c.arg.span.offset, c.op as u8))
}

/// Each constraint's arguments as read for one type: (type name, argument).
type Prepared = Vec<(String, Rc<Arg>)>;

/// Prepared constraint arguments of one compile (see [`holds`]), held by the type registry.
#[derive(Debug, Default)]
pub struct PreparedConstraints(RefCell<HashMap<CacheKey, Prepared, rustc_hash::FxBuildHasher>>);

impl PreparedConstraints {
    fn get(&self, key: &CacheKey, type_name: &str) -> Option<Rc<Arg>> {
        self.0.borrow().get(key)?.iter().find(|(t, _)| t == type_name).map(|(_, a)| a.clone())
    }

    fn put(&self, key: CacheKey, type_name: &str, arg: Rc<Arg>) {
        self.0.borrow_mut().entry(key).or_default().push((type_name.to_string(), arg));
    }
}

/// Checks a definition (see [`super::check_definition`]).
pub(crate) fn check_definition(spec: &TypeSpec, types: &dyn DataTypes, diags: &mut Diagnostics, depth: usize) {
    if depth > super::check::MAX_DEPTH {
        return;
    }
    let r = resolve(spec, types);
    if matches!(r.kind, Kind::Unknown) {
        diags.report(&codes::UNKNOWN_TYPE, spec.type_name.span, format!("unknown data type `{}`", spec.type_name.value));
        return;
    }
    let prim = r.primitive();
    if let Some(es) = spec.entry_schema {
        let span = if es.span.is_none() { es.type_name.span } else { es.span };
        if matches!(prim, Some(Primitive::List | Primitive::Map)) {
            check_definition(&TypeSpec::of_schema(es), types, diags, depth + 1);
        } else {
            diags.report(&codes::BAD_ENTRY_SCHEMA, span, format!("entry_schema applies only to list and map types, not to {}", r.label()));
        }
    }
    if let Some(ks) = spec.key_schema {
        let span = if ks.span.is_none() { ks.type_name.span } else { ks.span };
        let key_spec = TypeSpec::of_schema(ks);
        if prim != Some(Primitive::Map) {
            diags.report(&codes::BAD_ENTRY_SCHEMA, span, format!("key_schema applies only to map types, not to {}", r.label()));
        } else {
            let kr = resolve(&key_spec, types);
            match kr.kind {
                Kind::Prim(Primitive::String) | Kind::Unknown => {}
                _ => diags.report(
                    &codes::BAD_ENTRY_SCHEMA,
                    span,
                    format!("key_schema must be string or a type derived from string, not {}", kr.label()),
                ),
            }
            check_definition(&key_spec, types, diags, depth + 1);
        }
    }
    for c in spec.constraints {
        if let Err(d) = prepare(c, &r, spec, types) {
            diags.push(d);
        }
    }
}

fn comparable(p: Primitive) -> bool {
    use Primitive as P;
    matches!(
        p,
        P::Integer | P::Float | P::String | P::Timestamp | P::Version | P::ScalarSize | P::ScalarTime | P::ScalarFrequency | P::ScalarBitrate
    )
}

fn applies(op: ConstraintOp, kind: &Kind) -> bool {
    use ConstraintOp as O;
    let p = match kind {
        Kind::Unknown => return true,
        Kind::Complex(_) => return matches!(op, O::Equal | O::ValidValues | O::Schema),
        Kind::Prim(p) => *p,
    };
    match op {
        O::Equal | O::ValidValues | O::Schema => true,
        O::GreaterThan | O::GreaterOrEqual | O::LessThan | O::LessOrEqual => comparable(p),
        O::InRange => comparable(p) || p == Primitive::Range,
        O::Length | O::MinLength | O::MaxLength => matches!(p, Primitive::String | Primitive::List | Primitive::Map),
        O::Pattern => p == Primitive::String,
    }
}

fn applicable_ops(kind: &Kind) -> String {
    use ConstraintOp as O;
    let all = [
        O::Equal,
        O::GreaterThan,
        O::GreaterOrEqual,
        O::LessThan,
        O::LessOrEqual,
        O::InRange,
        O::ValidValues,
        O::Length,
        O::MinLength,
        O::MaxLength,
        O::Pattern,
        O::Schema,
    ];
    all.iter().filter(|o| applies(**o, kind)).map(|o| o.as_str()).collect::<Vec<_>>().join(", ")
}

fn bad(span: crate::source::Span, message: String) -> Diagnostic {
    Diagnostic::new(&codes::BAD_CONSTRAINT, span, message).help(codes::BAD_CONSTRAINT.help)
}

/// Checks that the constraint applies to the type and reads its argument.
fn prepare(c: &Constraint, r: &Resolved, spec: &TypeSpec, types: &dyn DataTypes) -> Result<Arg, Diagnostic> {
    let op = c.op.as_str();
    if !applies(c.op, &r.kind) {
        return Err(Diagnostic::new(&codes::BAD_CONSTRAINT, c.span, format!("constraint `{op}` does not apply to {}", r.label()))
            .help(format!("constraints that apply to {}: {}", r.label(), applicable_ops(&r.kind))));
    }
    let arg_span = if c.arg.span.is_none() { c.span } else { c.arg.span };
    match c.op {
        ConstraintOp::Equal | ConstraintOp::GreaterThan | ConstraintOp::GreaterOrEqual | ConstraintOp::LessThan | ConstraintOp::LessOrEqual => {
            typed(&c.arg, spec, types, op).map(Arg::One)
        }
        ConstraintOp::InRange => {
            let Some([lo, hi]) = c.arg.as_seq() else {
                return Err(bad(arg_span, format!("`in_range` takes a list of two values [min, max], found {}", c.arg.kind_name())));
            };
            if r.primitive() == Some(Primitive::Range) {
                let (lower, upper) = super::check::parse_range(&[lo.clone(), hi.clone()])
                    .map_err(|(span, why)| bad(if span.is_none() { arg_span } else { span }, format!("argument of `in_range`: {why}")))?;
                return Ok(Arg::Range(Value::Integer(lower), upper.map(Value::Integer)));
            }
            let lower = typed(lo, spec, types, op)?;
            let unbounded = hi.as_str() == Some("UNBOUNDED") && r.primitive() != Some(Primitive::String);
            let upper = if unbounded { None } else { Some(typed(hi, spec, types, op)?) };
            if let Some(upper) = &upper {
                if !contains_expr(&lower) && !contains_expr(upper) {
                    match compare(&lower, upper) {
                        Some(Ordering::Less | Ordering::Equal) => {}
                        Some(Ordering::Greater) => {
                            return Err(bad(arg_span, format!("`in_range` bounds are reversed: {lower} is greater than {upper}")));
                        }
                        None => return Err(bad(arg_span, format!("`in_range` bounds {lower} and {upper} cannot be compared"))),
                    }
                }
            }
            Ok(Arg::Range(lower, upper))
        }
        ConstraintOp::ValidValues => {
            let Some(items) = c.arg.as_seq() else {
                return Err(bad(arg_span, format!("`valid_values` takes a list of values, found {}", c.arg.kind_name())));
            };
            items.iter().map(|i| typed(i, spec, types, op)).collect::<Result<Vec<_>, _>>().map(Arg::Many)
        }
        ConstraintOp::Length | ConstraintOp::MinLength | ConstraintOp::MaxLength => match c.arg.value {
            YamlValue::Int(n) if n >= 0 => Ok(Arg::Len(n as u64)),
            _ => Err(bad(arg_span, format!("`{op}` takes a non-negative integer, found {}", describe(&c.arg)))),
        },
        ConstraintOp::Pattern => {
            let Some(p) = c.arg.as_str() else {
                return Err(bad(arg_span, format!("`pattern` takes a regular expression string, found {}", describe(&c.arg))));
            };
            full_match_regex(p).map(|re| Arg::Pattern(re, p.to_string())).map_err(|e| {
                Diagnostic::new(&codes::BAD_PATTERN, arg_span, format!("invalid regular expression in `pattern`: {e}")).help(codes::BAD_PATTERN.help)
            })
        }
        ConstraintOp::Schema => {
            let json = match &c.arg.value {
                YamlValue::Str(s) => serde_json::from_str::<serde_json::Value>(s)
                    .map_err(|e| bad(arg_span, format!("`schema` argument is a string but not JSON: {e}")))?,
                YamlValue::Map(_) | YamlValue::Bool(_) => c.arg.to_json(),
                _ => return Err(bad(arg_span, format!("`schema` takes a JSON Schema (a mapping or a JSON string), found {}", describe(&c.arg)))),
            };
            schema::check_schema(&json).map_err(|e| match e {
                schema::SchemaError::Pattern(m) => Diagnostic::new(&codes::BAD_PATTERN, arg_span, format!("invalid regular expression in `schema`: {m}"))
                    .help(codes::BAD_PATTERN.help),
                schema::SchemaError::Invalid(m) => bad(arg_span, format!("invalid `schema`: {m}")),
            })?;
            Ok(Arg::Schema(json))
        }
    }
}

fn describe(y: &Yaml) -> String {
    match y.scalar_text() {
        Some(t) if !matches!(y.value, YamlValue::Null) => format!("{} ({t})", y.kind_name()),
        _ => y.kind_name().to_string(),
    }
}

/// Reads an argument as a value of the spec's type, without constraints and without leniency
/// warnings; an error in it makes the constraint invalid.
fn typed(arg: &Yaml, spec: &TypeSpec, types: &dyn DataTypes, op: &str) -> Result<Value, Diagnostic> {
    let bare = TypeSpec { constraints: &[], ..*spec };
    let mut scratch = Diagnostics::new();
    let v = Checker::new(types, false).check(arg, &bare, "", 0, &mut scratch);
    let first_error = scratch.iter().find(|d| d.is_error()).map(|e| (e.span, e.message.clone()));
    match first_error {
        Some((span, message)) => Err(bad(if span.is_none() { arg.span } else { span }, format!("argument of `{op}` does not fit the type: {message}"))),
        None => Ok(v),
    }
}

fn contains_expr(v: &Value) -> bool {
    match v {
        Value::Expr(_) => true,
        Value::List(items) => items.iter().any(contains_expr),
        Value::Map(m) | Value::Complex { fields: m, .. } => m.values().any(contains_expr),
        _ => false,
    }
}

fn length(v: &Value) -> Option<(usize, &'static str)> {
    match v {
        Value::String(s) => Some((s.chars().count(), "characters")),
        Value::List(items) => Some((items.len(), "entries")),
        Value::Map(m) | Value::Complex { fields: m, .. } => Some((m.len(), "entries")),
        _ => None,
    }
}

fn eval(op: ConstraintOp, arg: &Arg, v: &Value) -> Result<(), Violation> {
    let name = op.as_str();
    let fail = |message: String, help: String| Err(Violation { message, help });
    match arg {
        Arg::One(a) | Arg::Range(a, _) if contains_expr(a) => Ok(()),
        Arg::Range(_, Some(b)) if contains_expr(b) => Ok(()),
        Arg::One(a) => {
            let ord = compare(v, a);
            // Messages are written only for a value that fails.
            let ok = match op {
                ConstraintOp::Equal => ord == Some(Ordering::Equal),
                ConstraintOp::GreaterThan => ord == Some(Ordering::Greater),
                ConstraintOp::GreaterOrEqual => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                ConstraintOp::LessThan => ord == Some(Ordering::Less),
                _ => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            };
            if ok {
                return Ok(());
            }
            let allowed = match op {
                ConstraintOp::Equal => format!("the only allowed value is {a}"),
                ConstraintOp::GreaterThan => format!("allowed: values greater than {a}"),
                ConstraintOp::GreaterOrEqual => format!("allowed: values greater than or equal to {a}"),
                ConstraintOp::LessThan => format!("allowed: values less than {a}"),
                _ => format!("allowed: values less than or equal to {a}"),
            };
            if ord.is_none() && op != ConstraintOp::Equal {
                fail(format!("{v} is not {name} {a} (the two cannot be compared)"), allowed)
            } else {
                fail(format!("{v} is not {name} {a}"), allowed)
            }
        }
        Arg::Range(lo, hi) => {
            let inside = match v {
                Value::Range { lower, upper } => {
                    let lo_ok = matches!(lo, Value::Integer(l) if lower >= l);
                    let hi_ok = match (hi, upper) {
                        (None, _) => true,
                        (Some(Value::Integer(h)), Some(u)) => u <= h,
                        _ => false,
                    };
                    lo_ok && hi_ok
                }
                _ => {
                    matches!(compare(v, lo), Some(Ordering::Greater | Ordering::Equal))
                        && hi.as_ref().is_none_or(|h| matches!(compare(v, h), Some(Ordering::Less | Ordering::Equal)))
                }
            };
            if inside {
                return Ok(());
            }
            let shown = match hi {
                Some(h) => format!("[{lo}, {h}]"),
                None => format!("[{lo}, UNBOUNDED]"),
            };
            let help = match hi {
                Some(h) => format!("allowed: values from {lo} to {h}, inclusive"),
                None => format!("allowed: values from {lo} up"),
            };
            let help = if matches!(v, Value::Range { .. }) { format!("{help} (the whole range must lie within)") } else { help };
            fail(format!("{v} is not in_range {shown}"), help)
        }
        Arg::Many(options) => {
            if options.iter().any(|o| contains_expr(o) || compare(v, o) == Some(Ordering::Equal)) {
                Ok(())
            } else {
                let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                let help = if list.is_empty() { "no value is allowed: valid_values is empty".to_string() } else { format!("allowed values: {}", list.join(", ")) };
                fail(format!("{v} is not in valid_values [{}]", list.join(", ")), help)
            }
        }
        Arg::Len(n) => {
            let Some((len, unit)) = length(v) else {
                return fail(format!("{v} has no length ({name} {n})"), format!("`{name}` applies to strings, lists and maps"));
            };
            let n = *n;
            let len64 = len as u64;
            let ok = match op {
                ConstraintOp::Length => len64 == n,
                ConstraintOp::MinLength => len64 >= n,
                _ => len64 <= n,
            };
            if ok {
                return Ok(());
            }
            let allowed = match op {
                ConstraintOp::Length => format!("allowed: exactly {n} {unit}"),
                ConstraintOp::MinLength => format!("allowed: at least {n} {unit}"),
                _ => format!("allowed: at most {n} {unit}"),
            };
            fail(format!("{v} is not {name} {n} (it has {len} {unit})"), allowed)
        }
        Arg::Pattern(re, p) => match v {
            Value::String(s) if re.is_match(s) => Ok(()),
            Value::String(_) => fail(format!("{v} does not match pattern `{p}`"), format!("allowed: strings that match `{p}` as a whole")),
            _ => fail(format!("{v} is not a string (pattern `{p}`)"), "`pattern` applies to strings".to_string()),
        },
        Arg::Schema(s) => {
            let instance = match v {
                Value::String(text) => match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(j) => j,
                    Err(e) => return fail(format!("{v} is not valid JSON, as the `schema` constraint requires: {e}"), "give a JSON text".to_string()),
                },
                other => other.to_plain_json(),
            };
            match schema::validate(s, &instance) {
                Ok(()) => Ok(()),
                Err(why) => fail(format!("{v} does not satisfy the `schema` constraint: {why}"), "change the value so it satisfies the JSON Schema".to_string()),
            }
        }
    }
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Compiles a regular expression with size limits (a hostile pattern cannot exhaust memory).
/// `anchored` wraps it to match the whole text.
pub(crate) fn compile_regex(pattern: &str, anchored: bool) -> Result<Regex, String> {
    let source = if anchored { format!("^(?:{pattern})$") } else { pattern.to_string() };
    if let Some(re) = REGEX_CACHE.with(|c| c.borrow().get(&source).cloned()) {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| e.to_string().lines().rfind(|l| !l.trim().is_empty()).unwrap_or("invalid regular expression").trim().to_string())?;
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(source, re.clone());
    });
    Ok(re)
}

fn full_match_regex(pattern: &str) -> Result<Regex, String> {
    compile_regex(pattern, true)
}
