//! TOSCA Simple Profile 1.0–1.3 value typing and constraint clauses.
//!
//! [`check_value`] reads a located [`Yaml`] value against what it is declared as (a [`TypeSpec`]:
//! a property, attribute, input or parameter definition, or an `entry_schema` / `key_schema`) and
//! returns a typed [`Value`], reporting every problem into [`Diagnostics`] at the offending node.
//! [`check_definition`] checks the declaration itself (type known, schemas valid, constraint
//! arguments typed and applicable). [`constraint_holds`] and [`compare`] are shared with
//! node_filter matching.
//!
//! The data type registry is not part of this module: it is reached through the [`DataTypes`]
//! trait, which presents a data type with its whole `derived_from` chain already merged
//! ([`DataTypeInfo`]).
//!
//! # Primitive and special types
//!
//! | type | accepted | [`Value`] |
//! | --- | --- | --- |
//! | `string` | any string; a plain number or boolean with a warning (its source text) | `String` |
//! | `integer` | YAML integers (decimal, `0o`/`0x` as YAML reads them); a quoted decimal with a warning | `Integer` |
//! | `float` | YAML floats and integers; a quoted number with a warning | `Float` |
//! | `boolean` | `true` / `false`; the strings `true`, `false`, `yes`, `no`, `on`, `off` (any case) with a warning | `Bool` |
//! | `null` | `null`, `~`, empty | `Null` |
//! | `timestamp` | YAML 1.1 timestamps / ISO 8601 (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`, ...) | `Timestamp` |
//! | `version` | `major.minor[.fix[.qualifier[-build]]]`; a plain number with a warning (source text, so `1.10` stays 1.10) | `Version` |
//! | `range` | `[lower, upper]` of integers, `upper` may be `UNBOUNDED`, `lower <= upper` | `Range` |
//! | `list`, `map` | a sequence / mapping; entries checked against `entry_schema`, map keys against `key_schema` (default `string`) | `List` / `Map` |
//! | `scalar-unit.*` | `<number> <unit>`, whitespace optional; see [`scalar`] for the units | `Scalar` |
//! | complex data types | a mapping of the type's properties | `Complex` |
//!
//! A function call ([`crate::function::is_call`]) anywhere is kept as [`Value::Expr`] unchecked,
//! except a single-key mapping whose key is also a property of the data type expected there:
//! `{token: abc}` for `tosca.datatypes.Credential` is a Credential, not a call of `token`.
//!
//! Leniency, for templates written against PyYAML-based tools: what is accepted with a
//! LENIENT_VALUE warning is listed above; nothing else of the wrong kind is converted (TYPE_MISMATCH
//! names the expected type and what was found). An explicit `null` is a value like any other: it
//! fits only the `null` type.

pub mod check;
pub mod constraint;
pub mod scalar;
pub mod schema;
pub mod timestamp;
pub mod version;

#[cfg(test)]
mod tests;

use crate::diag::{Diagnostic, Diagnostics};
use crate::syntax::{Constraint, PropertyDef, Schema, Sp};
use crate::yaml::Yaml;
use indexmap::IndexMap;
use std::cmp::Ordering;
use std::fmt;

pub use constraint::PreparedConstraints;
pub use scalar::ScalarKind;

/// The primitive and special types of TOSCA (and `list` / `map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Primitive {
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
    Null,
    Version,
    Range,
    List,
    Map,
    ScalarSize,
    ScalarTime,
    ScalarFrequency,
    ScalarBitrate,
}

impl Primitive {
    pub const ALL: [Primitive; 14] = [
        Primitive::String,
        Primitive::Integer,
        Primitive::Float,
        Primitive::Boolean,
        Primitive::Timestamp,
        Primitive::Null,
        Primitive::Version,
        Primitive::Range,
        Primitive::List,
        Primitive::Map,
        Primitive::ScalarSize,
        Primitive::ScalarTime,
        Primitive::ScalarFrequency,
        Primitive::ScalarBitrate,
    ];

    /// The primitive a type name denotes: `string`, `integer`, ..., `scalar-unit.size`, also with
    /// the `tosca:` prefix of TOSCA 1.2+ (`tosca:string`). Names are case-sensitive.
    pub fn parse(name: &str) -> Option<Primitive> {
        let name = name.strip_prefix("tosca:").unwrap_or(name);
        Primitive::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The canonical TOSCA name.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::String => "string",
            Primitive::Integer => "integer",
            Primitive::Float => "float",
            Primitive::Boolean => "boolean",
            Primitive::Timestamp => "timestamp",
            Primitive::Null => "null",
            Primitive::Version => "version",
            Primitive::Range => "range",
            Primitive::List => "list",
            Primitive::Map => "map",
            Primitive::ScalarSize => "scalar-unit.size",
            Primitive::ScalarTime => "scalar-unit.time",
            Primitive::ScalarFrequency => "scalar-unit.frequency",
            Primitive::ScalarBitrate => "scalar-unit.bitrate",
        }
    }

    /// The scalar-unit family, for the four `scalar-unit.*` types.
    pub fn scalar_kind(self) -> Option<ScalarKind> {
        Some(match self {
            Primitive::ScalarSize => ScalarKind::Size,
            Primitive::ScalarTime => ScalarKind::Time,
            Primitive::ScalarFrequency => ScalarKind::Frequency,
            Primitive::ScalarBitrate => ScalarKind::Bitrate,
            _ => return None,
        })
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A resolved data type as the registry presents it (its whole derived_from chain already merged).
#[derive(Clone, Debug)]
pub struct DataTypeInfo<'a> {
    pub name: &'a str,
    /// Set when the type derives (directly or not) from a primitive, e.g. PortDef from integer, json from string.
    pub primitive: Option<Primitive>,
    /// Merged properties along the chain, child overrides parent (for complex types).
    pub properties: Vec<(&'a str, &'a PropertyDef)>,
    /// Constraints of every type on the chain (all must hold).
    pub constraints: Vec<&'a Constraint>,
    pub key_schema: Option<&'a Schema>,
    pub entry_schema: Option<&'a Schema>,
}

/// The data type registry, as this module sees it.
pub trait DataTypes {
    /// The data type of that name (full name, short name or prefixed name: the registry decides),
    /// or `None` when there is none.
    fn data_type(&self, name: &str) -> Option<DataTypeInfo<'_>>;

    /// Where constraint arguments, once read, are kept for the rest of a compile; `None` reads
    /// them at every check.
    fn prepared(&self) -> Option<&PreparedConstraints> {
        None
    }
}

/// A registry that knows no data types: only primitives resolve.
pub struct NoDataTypes;

impl DataTypes for NoDataTypes {
    fn data_type(&self, _name: &str) -> Option<DataTypeInfo<'_>> {
        None
    }
}

/// What a value is checked against: a property/attribute/input definition or a schema.
#[derive(Clone, Copy, Debug)]
pub struct TypeSpec<'a> {
    pub type_name: &'a Sp<String>,
    pub entry_schema: Option<&'a Schema>,
    pub key_schema: Option<&'a Schema>,
    pub constraints: &'a [Constraint],
}

impl<'a> TypeSpec<'a> {
    /// `None` when the definition has no `type` (the syntax layer reports that).
    pub fn of_property(p: &'a PropertyDef) -> Option<Self> {
        Some(TypeSpec {
            type_name: p.type_name.as_ref()?,
            entry_schema: p.entry_schema.as_deref(),
            key_schema: p.key_schema.as_deref(),
            constraints: &p.constraints,
        })
    }

    pub fn of_schema(s: &'a Schema) -> Self {
        TypeSpec {
            type_name: &s.type_name,
            entry_schema: s.entry_schema.as_deref(),
            key_schema: s.key_schema.as_deref(),
            constraints: &s.constraints,
        }
    }
}

/// A TOSCA timestamp: as written, and normalized to UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// The text as written in the template.
    pub original: String,
    /// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (fraction without trailing zeros,
    /// omitted when zero; a date alone is midnight UTC).
    pub utc: String,
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub seconds: i64,
    /// Nanoseconds within the second (fraction digits past the ninth are ignored).
    pub nanos: u32,
}

/// A TOSCA version `major.minor[.fix[.qualifier[-build]]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The text as written (`1.10` stays `1.10`).
    pub original: String,
    pub major: u64,
    pub minor: u64,
    /// 0 when not written: `2.0` equals `2.0.0`.
    pub fix: u64,
    pub qualifier: Option<String>,
    pub build: Option<u64>,
}

/// A typed TOSCA value.
///
/// `PartialEq` is structural (`4 GB` and `4000 MB` differ, `2.0` and `2.0.0` differ as
/// versions); use [`compare`] for TOSCA's semantic equality and ordering.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    Timestamp(Timestamp),
    Version(Version),
    /// `upper: None` is UNBOUNDED.
    Range { lower: i64, upper: Option<i64> },
    /// A scalar-unit value. `unit` is the canonical spelling of the unit (`gb` is read as `GB`);
    /// `normalized` is `value` in the family's base unit: bytes `B`, seconds `s`, hertz `Hz`,
    /// bits per second `bps`.
    Scalar { value: f64, unit: String, normalized: f64, kind: ScalarKind },
    List(Vec<Value>),
    Map(IndexMap<String, Value>),
    /// A complex data type value: the fields given, then the defaults of fields not given, in
    /// the order of the type's property definitions.
    Complex { type_name: String, fields: IndexMap<String, Value> },
    /// A function call left for later (`crate::function::is_call`), as written.
    Expr(Yaml),
}

impl Value {
    /// The stable, normalized JSON form of a value, used in plans and state:
    ///
    /// | value | JSON |
    /// | --- | --- |
    /// | `Null`, `Bool`, `Integer`, `String` | `null`, `true`, `42`, `"text"` |
    /// | `Float` | a number; not-finite floats as the strings `".inf"`, `"-.inf"`, `".nan"` |
    /// | `Timestamp` | `{"timestamp": "2001-12-15T02:59:43.1Z", "original": "2001-12-14t21:59:43.10-05:00"}` |
    /// | `Version` | `{"version": "1.10", "major": 1, "minor": 10, "fix": 0, "qualifier": null, "build": null}` |
    /// | `Range` | `[1, 10]`, `[1, "UNBOUNDED"]` |
    /// | `Scalar` | `{"value": 4, "unit": "GB", "normalized": 4000000000, "base_unit": "B"}` |
    /// | `List`, `Map`, `Complex` | an array, an object, an object of the fields |
    /// | `Expr` | the call as written, e.g. `{"get_input": "size"}` |
    ///
    /// Numbers inside scalars are written as JSON integers when they are whole and within
    /// ±2^53, else as floats.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value as J};
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Integer(i) => J::from(*i),
            Value::Float(f) => float_json(*f),
            Value::String(s) => J::String(s.clone()),
            Value::Timestamp(t) => object([("timestamp", J::String(t.utc.clone())), ("original", J::String(t.original.clone()))]),
            Value::Version(v) => version_json(v.original.clone(), v),
            Value::Range { lower, upper } => json!([lower, upper.map(J::from).unwrap_or_else(|| J::from("UNBOUNDED"))]),
            Value::Scalar { value, unit, normalized, kind } => scalar_json(*value, unit.clone(), *normalized, *kind),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(m) | Value::Complex { fields: m, .. } => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Expr(y) => y.to_json(),
        }
    }

    /// [`Value::to_json`] of a value that is not needed any more: strings and keys are moved,
    /// not copied (the builder converts every property value once).
    pub fn into_json(self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::String(s) => J::String(s),
            Value::Timestamp(t) => object([("timestamp", J::String(t.utc)), ("original", J::String(t.original))]),
            Value::Version(mut v) => version_json(std::mem::take(&mut v.original), &v),
            Value::Scalar { value, unit, normalized, kind } => scalar_json(value, unit, normalized, kind),
            Value::List(items) => J::Array(items.into_iter().map(Value::into_json).collect()),
            Value::Map(m) | Value::Complex { fields: m, .. } => J::Object(m.into_iter().map(|(k, v)| (k, v.into_json())).collect()),
            other => other.to_json(),
        }
    }

    /// The value as plain JSON data, as a JSON Schema sees it: like [`Value::to_json`] but
    /// special types as the text they were written as (`"4 GB"`, `"1.10"`, the timestamp as
    /// written).
    pub fn to_plain_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Timestamp(t) => J::String(t.original.clone()),
            Value::Version(v) => J::String(v.original.clone()),
            Value::Scalar { value, unit, .. } => J::String(format!("{} {unit}", fmt_number(*value))),
            Value::List(items) => J::Array(items.iter().map(Value::to_plain_json).collect()),
            Value::Map(m) | Value::Complex { fields: m, .. } => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_plain_json())).collect()),
            other => other.to_json(),
        }
    }

    /// Human name of the value's kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Timestamp(_) => "a timestamp",
            Value::Version(_) => "a version",
            Value::Range { .. } => "a range",
            Value::Scalar { kind, .. } => kind.noun(),
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Complex { .. } => "a data type value",
            Value::Expr(_) => "a function call",
        }
    }
}

impl serde::Serialize for Value {
    /// Serializes as [`Value::to_json`].
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Short human rendering for messages: strings quoted, special types as written, long values cut.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        render(self, &mut s, 0);
        if s.chars().count() > 80 {
            let cut: String = s.chars().take(77).collect();
            write!(f, "{cut}...")
        } else {
            f.write_str(&s)
        }
    }
}

fn render(v: &Value, out: &mut String, depth: usize) {
    use std::fmt::Write;
    if out.len() > 200 || depth > 8 {
        out.push_str("...");
        return;
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) => out.push_str(&fmt_float(*x)),
        Value::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Timestamp(t) => out.push_str(&t.original),
        Value::Version(v) => out.push_str(&v.original),
        Value::Range { lower, upper } => {
            let _ = match upper {
                Some(u) => write!(out, "[{lower}, {u}]"),
                None => write!(out, "[{lower}, UNBOUNDED]"),
            };
        }
        Value::Scalar { value, unit, .. } => {
            let _ = write!(out, "{} {unit}", fmt_number(*value));
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Map(m) | Value::Complex { fields: m, .. } => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                render(item, out, depth + 1);
            }
            out.push('}');
        }
        Value::Expr(y) => out.push_str(&y.to_json().to_string()),
    }
}

/// A float as YAML would write it.
fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        ".nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { ".inf".into() } else { "-.inf".into() }
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// A number without a useless `.0` (scalar magnitudes: `4 GB`, `2.5 GHz`).
fn fmt_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// A JSON object of these fields in this order, allocated once at its size (every scalar-unit
/// and version value of a template becomes one).
fn object<const N: usize>(fields: [(&str, serde_json::Value); N]) -> serde_json::Value {
    let mut m = serde_json::Map::with_capacity(N);
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    serde_json::Value::Object(m)
}

fn version_json(original: String, v: &Version) -> serde_json::Value {
    use serde_json::Value as J;
    object([
        ("version", J::String(original)),
        ("major", J::from(v.major)),
        ("minor", J::from(v.minor)),
        ("fix", J::from(v.fix)),
        ("qualifier", v.qualifier.clone().map(J::String).unwrap_or(J::Null)),
        ("build", v.build.map(J::from).unwrap_or(J::Null)),
    ])
}

fn scalar_json(value: f64, unit: String, normalized: f64, kind: ScalarKind) -> serde_json::Value {
    use serde_json::Value as J;
    object([("value", number_json(value)), ("unit", J::String(unit)), ("normalized", number_json(normalized)), ("base_unit", J::String(kind.base_unit().to_string()))])
}

fn float_json(f: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => serde_json::Value::Number(n),
        None => serde_json::Value::String(fmt_float(f)),
    }
}

/// Whole numbers within ±2^53 as JSON integers, others as floats.
fn number_json(f: f64) -> serde_json::Value {
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    if f.fract() == 0.0 && f.abs() <= LIMIT {
        // In range and whole: the cast is exact.
        serde_json::Value::from(f as i64)
    } else {
        float_json(f)
    }
}

/// Checks `y` against `spec` and returns the typed value. Every problem is reported into `diags`
/// at the offending node; on an error the returned value is the best reading available (the
/// untyped reading of the YAML where the type did not fit). See [`check::check_named_value`]
/// to have messages name the property (`num_cpus: 0 is not greater_or_equal 1`).
///
/// Not reported here (they belong to [`check_definition`], which the caller runs once per
/// definition): an unknown type (the value is then read untyped), invalid constraint
/// arguments (the constraint is skipped).
pub fn check_value(y: &Yaml, spec: &TypeSpec, types: &dyn DataTypes, diags: &mut Diagnostics) -> Value {
    check::check_named_value("", y, spec, types, diags)
}

/// Checks a definition itself: its type is a primitive or a known data type (E0201), entry and
/// key schemas are valid (list/map only; key_schema string-derived), and every constraint
/// applies to the type and has a valid, typed argument (E0309, E0310 for patterns).
pub fn check_definition(spec: &TypeSpec, types: &dyn DataTypes, diags: &mut Diagnostics) {
    constraint::check_definition(spec, types, diags, 0)
}

/// Whether `v` (a value of the type `spec` declares) satisfies `c`. `Err` when the constraint is
/// malformed or does not apply to the type (a BAD_CONSTRAINT / BAD_PATTERN diagnostic at the
/// constraint). An unevaluated function call ([`Value::Expr`]) satisfies every constraint: it
/// is checked once known.
pub fn constraint_holds(c: &Constraint, v: &Value, spec: &TypeSpec, types: &dyn DataTypes) -> Result<bool, Diagnostic> {
    constraint::holds(c, v, spec, types).map(|r| r.is_ok())
}

/// TOSCA ordering of two values of the same type: numbers (integer and float mixed), strings
/// (by code point), booleans, timestamps (instants), versions (numerically by part; a version
/// with a qualifier is older than the same version without; qualifiers compared as strings,
/// then builds), scalar-units of the same family (by normalized value, equal within a relative
/// 1e-12). Nulls, ranges, lists,
/// maps and data type values are only ever `Equal` (all parts equal) or `None`. `None` also
/// for values of different kinds, NaN, and function calls.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value as V;
    match (a, b) {
        (V::Null, V::Null) => Some(Ordering::Equal),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Integer(x), V::Integer(y)) => Some(x.cmp(y)),
        (V::Integer(x), V::Float(y)) => cmp_int_float(*x, *y),
        (V::Float(x), V::Integer(y)) => cmp_int_float(*y, *x).map(Ordering::reverse),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y),
        (V::String(x), V::String(y)) => Some(x.cmp(y)),
        (V::Timestamp(x), V::Timestamp(y)) => Some((x.seconds, x.nanos).cmp(&(y.seconds, y.nanos))),
        (V::Version(x), V::Version(y)) => Some(version::compare(x, y)),
        (V::Range { lower: l1, upper: u1 }, V::Range { lower: l2, upper: u2 }) => (l1 == l2 && u1 == u2).then_some(Ordering::Equal),
        (V::Scalar { normalized: x, kind: k1, .. }, V::Scalar { normalized: y, kind: k2, .. }) if k1 == k2 => cmp_scalar(*x, *y),
        (V::List(x), V::List(y)) => {
            (x.len() == y.len() && x.iter().zip(y).all(|(a, b)| compare(a, b) == Some(Ordering::Equal))).then_some(Ordering::Equal)
        }
        (V::Map(x) | V::Complex { fields: x, .. }, V::Map(y) | V::Complex { fields: y, .. }) => (x.len() == y.len()
            && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| compare(a, b) == Some(Ordering::Equal))))
        .then_some(Ordering::Equal),
        _ => None,
    }
}

/// Normalized magnitudes within a relative 1e-12 are equal: `0.3 GB` is `300 MB` even where the
/// binary products differ in the last bit.
fn cmp_scalar(x: f64, y: f64) -> Option<Ordering> {
    if (x - y).abs() <= 1e-12 * x.abs().max(y.abs()) {
        return Some(Ordering::Equal);
    }
    x.partial_cmp(&y)
}

fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    // Exact for |i| <= 2^53, which covers every integer a template can sensibly compare to a float.
    (i as f64).partial_cmp(&f)
}
