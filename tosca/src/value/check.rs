//! The value checker: reads a [`Yaml`] value against a [`TypeSpec`].

use super::{constraint, scalar, timestamp, version, DataTypeInfo, DataTypes, Primitive, TypeSpec, Value};
use crate::diag::{codes, Diagnostic, Diagnostics};
use crate::function::is_call;
use crate::syntax::{Constraint, Schema};
use crate::yaml::{Yaml, YamlValue};
use indexmap::IndexMap;

/// Deepest nesting of values (collections, data type fields, defaults) checked. YAML itself
/// stops at 64 by default; deeper nesting here means a data type that contains itself.
pub const MAX_DEPTH: usize = 100;
/// Most value nodes checked for one top-level value (defaults of data types that contain
/// themselves twice would otherwise grow exponentially).
pub const MAX_NODES: usize = 200_000;

/// Like [`super::check_value`], with the property (or input, ...) name at the start of
/// messages: `num_cpus: 0 is not greater_or_equal 1`, `ports[1]: expected integer, found a
/// mapping`, `credential.token: ...`. An empty name gives messages without a prefix.
pub fn check_named_value(name: &str, y: &Yaml, spec: &TypeSpec, types: &dyn DataTypes, diags: &mut Diagnostics) -> Value {
    let mut checker = Checker::new(types, true);
    checker.check(y, spec, name, 0, diags)
}

/// The shape a type name resolves to.
pub(crate) enum Kind<'x> {
    Prim(Primitive),
    Complex(DataTypeInfo<'x>),
    Unknown,
}

pub(crate) struct Resolved<'x> {
    pub name: &'x str,
    pub kind: Kind<'x>,
    pub entry: Option<&'x Schema>,
    pub key: Option<&'x Schema>,
    /// Constraints of the data type's chain (not the spec's own).
    pub chain: Vec<&'x Constraint>,
}

impl Resolved<'_> {
    pub fn primitive(&self) -> Option<Primitive> {
        match self.kind {
            Kind::Prim(p) => Some(p),
            _ => None,
        }
    }

    /// `integer`, or `PortDef (integer)` for a data type derived from a primitive.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Prim(p) if Primitive::parse(self.name) == Some(*p) => p.name().to_string(),
            Kind::Prim(p) => format!("{} ({})", self.name, p.name()),
            _ => self.name.to_string(),
        }
    }
}

/// [`Resolved::label`] as `Display`, for messages that may not be written.
struct Label<'r, 'x>(&'r Resolved<'x>);

impl std::fmt::Display for Label<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.label())
    }
}

/// Resolves a spec's type: primitives first, then the registry. A data type derived from a
/// primitive resolves to that primitive, with its chain's constraints and schemas.
pub(crate) fn resolve<'x>(spec: &TypeSpec<'x>, types: &'x dyn DataTypes) -> Resolved<'x> {
    let name = spec.type_name.value.as_str();
    if let Some(p) = Primitive::parse(name) {
        return Resolved { name, kind: Kind::Prim(p), entry: spec.entry_schema, key: spec.key_schema, chain: Vec::new() };
    }
    match types.data_type(name) {
        Some(info) => {
            let entry = spec.entry_schema.or(info.entry_schema);
            let key = spec.key_schema.or(info.key_schema);
            let chain = info.constraints.clone();
            let kind = match info.primitive {
                Some(p) => Kind::Prim(p),
                None => Kind::Complex(info),
            };
            Resolved { name, kind, entry, key, chain }
        }
        None => Resolved { name, kind: Kind::Unknown, entry: spec.entry_schema, key: spec.key_schema, chain: Vec::new() },
    }
}

pub(crate) struct Checker<'t> {
    types: &'t dyn DataTypes,
    /// Apply constraints (false while typing constraint arguments).
    constraints: bool,
    nodes: usize,
    overflow: bool,
}

/// `{token: x}` is a call of the `token` function, unless it is the value of a data type that
/// has a `token` property (tosca.datatypes.Credential): then it is that property.
fn names_a_property(r: &Resolved, y: &Yaml) -> bool {
    let Kind::Complex(info) = &r.kind else { return false };
    let Some([(k, _)]) = y.as_map() else { return false };
    k.as_str().is_some_and(|k| info.properties.iter().any(|(n, _)| *n == k))
}

/// `path: ` for messages; very long paths (deep recursion) keep their end.
fn prefix(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let n = path.chars().count();
    if n > 100 {
        let tail: String = path.chars().skip(n - 80).collect();
        format!("...{tail}: ")
    } else {
        format!("{path}: ")
    }
}

/// A short sample of a scalar for messages: ` "abc"`, ` 42`; nothing for collections.
fn sample(y: &Yaml) -> String {
    match &y.value {
        YamlValue::Str(s) => {
            let cut: String = s.chars().take(40).collect();
            if cut.len() < s.len() {
                format!(" {:?}...", cut)
            } else {
                format!(" {s:?}")
            }
        }
        YamlValue::Seq(_) | YamlValue::Map(_) | YamlValue::Null => String::new(),
        _ => y.scalar_text().map(|t| format!(" {t}")).unwrap_or_default(),
    }
}

fn key_text(k: &Yaml) -> Option<String> {
    k.scalar_text()
}

impl<'t> Checker<'t> {
    pub(crate) fn new(types: &'t dyn DataTypes, constraints: bool) -> Self {
        Checker { types, constraints, nodes: 0, overflow: false }
    }

    /// Counts a node against the budgets; false (after one report) when they are exceeded.
    fn enter(&mut self, y: &Yaml, type_name: &str, path: &str, depth: usize, diags: &mut Diagnostics) -> bool {
        self.nodes += 1;
        if depth <= MAX_DEPTH && self.nodes <= MAX_NODES {
            return true;
        }
        if !self.overflow {
            self.overflow = true;
            diags.report(
                &codes::RECURSIVE_VALUE,
                y.span,
                format!(
                    "{}value of type `{type_name}` nests deeper than {MAX_DEPTH} levels or has more than {MAX_NODES} parts; a data type probably contains itself",
                    prefix(path)
                ),
            );
        }
        false
    }

    pub(crate) fn check(&mut self, y: &Yaml, spec: &TypeSpec, path: &str, depth: usize, diags: &mut Diagnostics) -> Value {
        let r = resolve(spec, self.types);
        if is_call(y) && !names_a_property(&r, y) {
            return Value::Expr(y.clone());
        }
        if !self.enter(y, &spec.type_name.value, path, depth, diags) {
            return Value::Null;
        }
        let (value, typed) = match &r.kind {
            Kind::Unknown => (self.untyped(y, path, depth, diags), false),
            Kind::Prim(p) => self.primitive(y, *p, &r, path, depth, diags),
            Kind::Complex(info) => self.complex(y, info, path, depth, diags),
        };
        if typed && self.constraints {
            for c in r.chain.iter().copied().chain(spec.constraints.iter()) {
                self.apply(c, &value, y, spec, path, diags);
            }
        }
        value
    }

    fn apply(&mut self, c: &Constraint, v: &Value, y: &Yaml, spec: &TypeSpec, path: &str, diags: &mut Diagnostics) {
        // A malformed constraint is reported once, by check_definition; here it is skipped.
        if let Ok(Err(violation)) = constraint::holds(c, v, spec, self.types) {
            diags.push(
                Diagnostic::new(&codes::CONSTRAINT, y.span, format!("{}{}", prefix(path), violation.message))
                    .help(violation.help)
                    .related(c.span, format!("constraint `{}` defined here", c.op.as_str())),
            );
        }
    }

    fn mismatch(&mut self, y: &Yaml, expected: &str, path: &str, depth: usize, diags: &mut Diagnostics) -> (Value, bool) {
        diags.report(
            &codes::TYPE_MISMATCH,
            y.span,
            format!("{}expected {expected}, found {}{}", prefix(path), y.kind_name(), sample(y)),
        );
        (self.untyped(y, path, depth, diags), false)
    }

    fn lenient(&self, y: &Yaml, what: String, path: &str, diags: &mut Diagnostics) {
        diags.report(&codes::LENIENT_VALUE, y.span, format!("{}{what}", prefix(path)));
    }

    /// The value as YAML reads it, with no type: for unknown types and untyped entries.
    pub(crate) fn untyped(&mut self, y: &Yaml, path: &str, depth: usize, diags: &mut Diagnostics) -> Value {
        if is_call(y) {
            return Value::Expr(y.clone());
        }
        if !self.enter(y, "any", path, depth, diags) {
            return Value::Null;
        }
        match &y.value {
            YamlValue::Null => Value::Null,
            YamlValue::Bool(b) => Value::Bool(*b),
            YamlValue::Int(i) => Value::Integer(*i),
            YamlValue::Float(f) => Value::Float(*f),
            YamlValue::Str(s) => Value::String(s.as_str().to_owned()),
            YamlValue::Seq(items) => {
                Value::List(items.iter().enumerate().map(|(i, item)| self.untyped(item, &format!("{path}[{i}]"), depth + 1, diags)).collect())
            }
            YamlValue::Map(entries) => {
                let mut m = IndexMap::new();
                for (k, v) in entries.iter() {
                    let key = key_text(k).unwrap_or_else(|| k.to_json().to_string());
                    let sub = join(path, &key);
                    let v = self.untyped(v, &sub, depth + 1, diags);
                    m.insert(key, v);
                }
                Value::Map(m)
            }
        }
    }

    fn primitive(&mut self, y: &Yaml, p: Primitive, r: &Resolved, path: &str, depth: usize, diags: &mut Diagnostics) -> (Value, bool) {
        use YamlValue as Y;
        // Spelled out only for a message: most values are fine.
        let label = Label(r);
        let ok = |v: Value| (v, true);
        match p {
            Primitive::String => match &y.value {
                Y::Str(s) => ok(Value::String(s.as_str().to_owned())),
                Y::Int(_) | Y::Float(_) | Y::Bool(_) => {
                    let text = y.scalar_text().unwrap_or_default();
                    let what = if matches!(y.value, Y::Bool(_)) { "boolean" } else { "number" };
                    self.lenient(y, format!("the {what} {text} is read as the string {text:?} ({label} expected)"), path, diags);
                    ok(Value::String(text))
                }
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Integer => match &y.value {
                Y::Int(i) => ok(Value::Integer(*i)),
                Y::Str(s) => match parse_decimal_int(s) {
                    Some(i) => {
                        self.lenient(y, format!("the string {s:?} is read as the integer {i}"), path, diags);
                        ok(Value::Integer(i))
                    }
                    None => self.mismatch(y, &label.to_string(), path, depth, diags),
                },
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Float => match &y.value {
                Y::Float(f) => ok(Value::Float(*f)),
                // Exact for every integer a template writes (|i| <= 2^53); larger ones round, as in YAML.
                Y::Int(i) => ok(Value::Float(*i as f64)),
                Y::Str(s) => match parse_decimal_float(s) {
                    Some(f) => {
                        self.lenient(y, format!("the string {s:?} is read as the float {}", super::fmt_float(f)), path, diags);
                        ok(Value::Float(f))
                    }
                    None => self.mismatch(y, &label.to_string(), path, depth, diags),
                },
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Boolean => match &y.value {
                Y::Bool(b) => ok(Value::Bool(*b)),
                Y::Str(s) => match parse_bool_word(s) {
                    Some(b) => {
                        self.lenient(y, format!("the string {s:?} is read as the boolean {b}"), path, diags);
                        ok(Value::Bool(b))
                    }
                    None => self.mismatch(y, &label.to_string(), path, depth, diags),
                },
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Null => match &y.value {
                Y::Null => ok(Value::Null),
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Timestamp => match &y.value {
                Y::Str(s) => match timestamp::parse(s) {
                    Ok(t) => ok(Value::Timestamp(t)),
                    Err(why) => {
                        diags.report(&codes::BAD_TIMESTAMP, y.span, format!("{}{s:?} is not a valid timestamp: {why}", prefix(path)));
                        (Value::String(s.as_str().to_owned()), false)
                    }
                },
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Version => {
                let text = match &y.value {
                    Y::Str(s) => s.as_str().to_owned(),
                    Y::Int(_) | Y::Float(_) => {
                        let text = y.scalar_text().unwrap_or_default();
                        self.lenient(y, format!("the number {text} is read as the version {text:?}"), path, diags);
                        text
                    }
                    _ => return self.mismatch(y, &label.to_string(), path, depth, diags),
                };
                match version::parse(&text) {
                    Ok(parsed) => {
                        if parsed.major_only {
                            self.lenient(y, format!("version {text:?} has no minor part; read as {text}.0"), path, diags);
                        }
                        ok(Value::Version(parsed.version))
                    }
                    Err(why) => {
                        diags.report(&codes::BAD_VERSION, y.span, format!("{}{text:?} is not a valid version: {why}", prefix(path)));
                        (Value::String(text), false)
                    }
                }
            }
            Primitive::Range => match &y.value {
                Y::Seq(items) => match parse_range(items) {
                    Ok((lower, upper)) => ok(Value::Range { lower, upper }),
                    Err((span, why)) => {
                        let span = if span.is_none() { y.span } else { span };
                        diags.report(&codes::BAD_RANGE, span, format!("{}invalid range: {why}", prefix(path)));
                        (self.untyped(y, path, depth, diags), false)
                    }
                },
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::List => match &y.value {
                Y::Seq(items) => {
                    let mut out = Vec::with_capacity(items.len().min(1024));
                    for (i, item) in items.iter().enumerate() {
                        let sub = format!("{path}[{i}]");
                        out.push(match r.entry {
                            Some(es) => self.check(item, &TypeSpec::of_schema(es), &sub, depth + 1, diags),
                            None => self.untyped(item, &sub, depth + 1, diags),
                        });
                    }
                    ok(Value::List(out))
                }
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::Map => match &y.value {
                Y::Map(entries) => {
                    let mut out = IndexMap::new();
                    for (k, v) in entries.iter() {
                        let Some(key) = self.map_key(k, r.key, path, depth, diags) else {
                            continue;
                        };
                        let sub = join(path, &key);
                        let v = match r.entry {
                            Some(es) => self.check(v, &TypeSpec::of_schema(es), &sub, depth + 1, diags),
                            None => self.untyped(v, &sub, depth + 1, diags),
                        };
                        out.insert(key, v);
                    }
                    ok(Value::Map(out))
                }
                _ => self.mismatch(y, &label.to_string(), path, depth, diags),
            },
            Primitive::ScalarSize | Primitive::ScalarTime | Primitive::ScalarFrequency | Primitive::ScalarBitrate => {
                let kind = p.scalar_kind().unwrap_or(scalar::ScalarKind::Size);
                match &y.value {
                    Y::Str(s) => match scalar::parse(s, kind) {
                        Ok(sc) => ok(Value::Scalar { value: sc.value, unit: sc.unit.to_string(), normalized: sc.normalized, kind }),
                        Err(e) => {
                            let why = match e {
                                scalar::ScalarError::NoNumber => "it does not start with a number".to_string(),
                                scalar::ScalarError::NoUnit => "it has no unit".to_string(),
                                scalar::ScalarError::UnknownUnit(u) => format!("`{u}` is not a unit of {}", kind.type_name()),
                                scalar::ScalarError::OutOfRange => "the number is out of range".to_string(),
                            };
                            diags.push(
                                Diagnostic::new(&codes::BAD_SCALAR_UNIT, y.span, format!("{}{s:?} is not a valid {label}: {why}", prefix(path)))
                                    .help(format!("write a number and a unit, e.g. `{}`; units: {}", kind.example(), kind.unit_list())),
                            );
                            (Value::String(s.as_str().to_owned()), false)
                        }
                    },
                    Y::Int(_) | Y::Float(_) => {
                        let text = y.scalar_text().unwrap_or_default();
                        diags.push(
                            Diagnostic::new(&codes::BAD_SCALAR_UNIT, y.span, format!("{}{text} is not a valid {label}: it has no unit", prefix(path)))
                                .help(format!("add a unit, e.g. `{text} {}`; units: {}", kind.base_unit(), kind.unit_list())),
                        );
                        (self.untyped(y, path, depth, diags), false)
                    }
                    _ => self.mismatch(y, &label.to_string(), path, depth, diags),
                }
            }
        }
    }

    /// A map key as text, checked against the key schema (default: string).
    fn map_key(&mut self, k: &Yaml, key_schema: Option<&Schema>, path: &str, depth: usize, diags: &mut Diagnostics) -> Option<String> {
        let Some(text) = key_text(k) else {
            diags.report(&codes::TYPE_MISMATCH, k.span, format!("{}map keys are strings, found {}", prefix(path), k.kind_name()));
            return None;
        };
        let sub = join(path, &text);
        match key_schema {
            Some(ks) => {
                let v = self.check(k, &TypeSpec::of_schema(ks), &sub, depth + 1, diags);
                Some(match v {
                    Value::String(s) => s,
                    _ => text,
                })
            }
            None => {
                if !matches!(k.value, YamlValue::Str(_)) {
                    self.lenient(k, format!("the key {text} is read as the string {text:?}"), &sub, diags);
                }
                Some(text)
            }
        }
    }

    fn complex(&mut self, y: &Yaml, info: &DataTypeInfo, path: &str, depth: usize, diags: &mut Diagnostics) -> (Value, bool) {
        let Some(entries) = y.as_map() else {
            return self.mismatch(y, &format!("a value of data type {} (a mapping)", info.name), path, depth, diags);
        };
        // Field names are borrowed: this runs for every value of a complex type.
        let mut given: Vec<(std::borrow::Cow<'_, str>, &Yaml)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let name = match k.as_str() {
                Some(s) => std::borrow::Cow::Borrowed(s),
                None => std::borrow::Cow::Owned(key_text(k).unwrap_or_else(|| k.to_json().to_string())),
            };
            if info.properties.iter().any(|(n, _)| *n == name) {
                given.push((name, v));
            } else {
                let known: Vec<&str> = info.properties.iter().map(|(n, _)| *n).collect();
                let help = if known.is_empty() {
                    format!("data type {} has no properties", info.name)
                } else {
                    format!("the properties of {} are: {}", info.name, known.join(", "))
                };
                diags.push(
                    Diagnostic::new(&codes::UNKNOWN_PROPERTY, k.span, format!("{}`{name}` is not a property of data type {}", prefix(path), info.name))
                        .help(help),
                );
            }
        }
        let mut fields = IndexMap::new();
        for (name, def) in &info.properties {
            let sub = join(path, name);
            let spec = super::TypeSpec::of_property(def);
            if let Some((_, v)) = given.iter().find(|(n, _)| n == name) {
                let value = match &spec {
                    Some(spec) => self.check(v, spec, &sub, depth + 1, diags),
                    None => self.untyped(v, &sub, depth + 1, diags),
                };
                fields.insert(name.to_string(), value);
            } else if let Some(default) = &def.default {
                // The default's own problems are the type definition's (BAD_DEFAULT, reported
                // where types are checked); only a runaway recursion is reported here.
                let mut scratch = Diagnostics::new();
                let value = match &spec {
                    Some(spec) => self.check(default, spec, &sub, depth + 1, &mut scratch),
                    None => self.untyped(default, &sub, depth + 1, &mut scratch),
                };
                for d in scratch.into_sorted() {
                    if d.code == codes::RECURSIVE_VALUE.id {
                        diags.push(d);
                    }
                }
                fields.insert(name.to_string(), value);
            } else if def.required.as_ref().is_none_or(|r| r.value) {
                diags.push(
                    Diagnostic::new(
                        &codes::MISSING_PROPERTY,
                        y.span,
                        format!("{}required property `{name}` of data type {} has no value", prefix(path), info.name),
                    )
                    .help(format!("add `{name}` to the value, or give it a default in data type {}", info.name))
                    .related(def.span, format!("`{name}` is defined here")),
                );
            }
        }
        (Value::Complex { type_name: info.name.to_string(), fields }, true)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `[lower, upper]`: integers, upper may be `UNBOUNDED`, lower <= upper. The error names the
/// offending element's span (or `Span::NONE` for the whole list).
pub(crate) fn parse_range(items: &[Yaml]) -> Result<(i64, Option<i64>), (crate::source::Span, String)> {
    let [lo, hi] = items else {
        return Err((crate::source::Span::NONE, format!("a range has exactly two elements [lower, upper], found {}", items.len())));
    };
    let lower = lo.as_i64().ok_or_else(|| (lo.span, format!("the lower bound must be an integer, found {}{}", lo.kind_name(), sample(lo))))?;
    let upper = match &hi.value {
        YamlValue::Int(i) => Some(*i),
        YamlValue::Str(s) if s == "UNBOUNDED" => None,
        _ => return Err((hi.span, format!("the upper bound must be an integer or UNBOUNDED, found {}{}", hi.kind_name(), sample(hi)))),
    };
    if let Some(u) = upper {
        if lower > u {
            return Err((crate::source::Span::NONE, format!("the lower bound {lower} is greater than the upper bound {u}")));
        }
    }
    Ok((lower, upper))
}

/// A quoted decimal integer (`"2"`, `"-3"`, `"+4"`).
fn parse_decimal_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A quoted decimal number (`"2"`, `"2.5"`, `"1e3"`); not `inf` or `nan`.
fn parse_decimal_float(s: &str) -> Option<f64> {
    if s.is_empty() || scalar::number_prefix_len(s) != s.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// The words YAML 1.1 (and so PyYAML-based TOSCA tools) read as booleans.
fn parse_bool_word(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
