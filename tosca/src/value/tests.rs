//! Data-driven tests of value typing and constraints.
//!
//! Definitions and values are written as YAML: definitions (property definitions and a small
//! data type registry) in file 1, values in file 0, so every diagnostic is asserted as
//! `CODE@line:col` in the value (or `CODE@1/line:col` in the definitions).

use super::*;
use crate::diag::Diagnostics;
use crate::source::{FileId, Span};
use crate::syntax::{Constraint, ConstraintOp, PropertyDef, Schema, Sp};
use crate::yaml::{parse, Limits, Yaml, YamlValue};
use serde_json::json;
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// Building definitions from YAML (the syntax parser is elsewhere; this is just enough of it).

fn yaml(file: u32, text: &str) -> Yaml {
    parse(FileId(file), text, &Limits::default()).unwrap_or_else(|e| panic!("bad test YAML {text:?}: {e:?}"))
}

fn sp(y: &Yaml) -> Sp<String> {
    Sp::new(y.scalar_text().unwrap_or_default(), y.span)
}

fn constraints_from(y: Option<&Yaml>) -> Vec<Constraint> {
    let Some(list) = y.and_then(Yaml::as_seq) else { return Vec::new() };
    list.iter()
        .map(|c| {
            let (k, arg) = &c.as_map().expect("constraint is a map")[0];
            Constraint { op: ConstraintOp::parse(k.as_str().unwrap()).expect("known op"), arg: arg.clone(), span: c.span }
        })
        .collect()
}

fn schema_from(y: &Yaml) -> Schema {
    match y.as_str() {
        Some(_) => Schema { type_name: sp(y), span: y.span, ..Schema::default() },
        None => Schema {
            type_name: sp(y.get("type").expect("schema type")),
            constraints: constraints_from(y.get("constraints")),
            entry_schema: y.get("entry_schema").map(|s| Box::new(schema_from(s))),
            key_schema: y.get("key_schema").map(|s| Box::new(schema_from(s))),
            span: y.span,
            ..Schema::default()
        },
    }
}

fn prop_from(y: &Yaml) -> PropertyDef {
    PropertyDef {
        type_name: y.get("type").map(sp),
        required: y.get("required").map(|r| Sp::new(r.as_bool().unwrap(), r.span)),
        default: y.get("default").cloned(),
        constraints: constraints_from(y.get("constraints")),
        entry_schema: y.get("entry_schema").map(|s| Box::new(schema_from(s))),
        key_schema: y.get("key_schema").map(|s| Box::new(schema_from(s))),
        span: y.span,
        ..PropertyDef::default()
    }
}

struct TestType {
    primitive: Option<Primitive>,
    properties: Vec<(String, PropertyDef)>,
    constraints: Vec<Constraint>,
    entry: Option<Schema>,
    key: Option<Schema>,
}

/// A registry of data types whose `derived_from` is a primitive or nothing.
struct Registry(HashMap<String, TestType>);

impl DataTypes for Registry {
    fn data_type(&self, name: &str) -> Option<DataTypeInfo<'_>> {
        let (name, t) = self.0.get_key_value(name)?;
        Some(DataTypeInfo {
            name,
            primitive: t.primitive,
            properties: t.properties.iter().map(|(n, p)| (n.as_str(), p)).collect(),
            constraints: t.constraints.iter().collect(),
            key_schema: t.key.as_ref(),
            entry_schema: t.entry.as_ref(),
        })
    }
}

const TYPES: &str = r#"
PortDef:
  derived_from: integer
  constraints:
    - in_range: [1, 65535]
tosca.datatypes.json:
  derived_from: string
BigDisk:
  derived_from: scalar-unit.size
  constraints:
    - greater_or_equal: 1 GB
Credential:
  properties:
    protocol: {type: string, required: false}
    token_type: {type: string, default: password}
    token: {type: string}
    user: {type: string, required: false}
    keys: {type: map, required: false, entry_schema: string}
PortSpec:
  properties:
    source: {type: PortDef}
    target: {type: PortDef, required: false}
    protocol: {type: string, default: tcp, constraints: [{valid_values: [tcp, udp]}]}
Chain:
  properties:
    name: {type: string}
    next: {type: Chain, required: false}
Loop:
  properties:
    again: {type: Loop, default: {}}
Loop2:
  properties:
    a: {type: Loop2, default: {}}
    b: {type: Loop2, default: {}}
Tags:
  derived_from: map
  entry_schema: string
"#;

fn registry() -> Registry {
    let y = yaml(1, TYPES);
    let mut map = HashMap::new();
    for (k, def) in y.as_map().unwrap() {
        let props = def
            .get("properties")
            .and_then(Yaml::as_map)
            .map(|m| m.iter().map(|(n, p)| (n.as_str().unwrap().to_string(), prop_from(p))).collect())
            .unwrap_or_default();
        map.insert(
            k.as_str().unwrap().to_string(),
            TestType {
                primitive: def.get("derived_from").and_then(|d| Primitive::parse(d.as_str().unwrap())),
                properties: props,
                constraints: constraints_from(def.get("constraints")),
                entry: def.get("entry_schema").map(schema_from),
                key: def.get("key_schema").map(schema_from),
            },
        );
    }
    Registry(map)
}

/// `CODE@line:col` for diagnostics in the value file, `CODE@1/line:col` in the definitions.
fn fmt_diag(d: &Diagnostic) -> String {
    if d.span.file == FileId(0) {
        format!("{}@{}:{}", d.code, d.span.line, d.span.col)
    } else {
        format!("{}@{}/{}:{}", d.code, d.span.file.0, d.span.line, d.span.col)
    }
}

struct Outcome {
    value: Value,
    diags: Vec<Diagnostic>,
}

impl Outcome {
    fn codes(&self) -> Vec<String> {
        self.diags.iter().map(fmt_diag).collect()
    }
    fn messages(&self) -> String {
        self.diags.iter().map(|d| format!("{}: {} [help: {}]", fmt_diag(d), d.message, d.help.as_deref().unwrap_or(""))).collect::<Vec<_>>().join("\n")
    }
}

/// Checks `value` (file 0) against the property definition `def` (file 1, flow YAML).
fn check(def: &str, value: &str) -> Outcome {
    check_named(def, value, "")
}

fn check_named(def: &str, value: &str, name: &str) -> Outcome {
    let reg = registry();
    let d = prop_from(&yaml(1, def));
    let spec = TypeSpec::of_property(&d).expect("definition has a type");
    let mut diags = Diagnostics::new();
    let v = yaml(0, value);
    let value = check::check_named_value(name, &v, &spec, &reg, &mut diags);
    Outcome { value, diags: diags.into_sorted() }
}

fn definition(def: &str) -> Vec<String> {
    let reg = registry();
    let d = prop_from(&yaml(1, def));
    let spec = TypeSpec::of_property(&d).unwrap();
    let mut diags = Diagnostics::new();
    check_definition(&spec, &reg, &mut diags);
    diags.into_sorted().iter().map(fmt_diag).collect()
}

/// Runs a table of `(definition, value, expected JSON or null for "don't care", expected diags)`.
fn table(cases: &[(&str, &str, serde_json::Value, &[&str])]) {
    for (def, value, want, codes) in cases {
        let out = check(def, value);
        assert_eq!(out.codes(), *codes, "\n{def} <- {value:?}\n{}", out.messages());
        if !want.is_null() {
            assert_eq!(out.value.to_json(), *want, "\n{def} <- {value:?}");
        }
    }
}

fn ty(name: &str) -> String {
    format!("{{type: {name}}}")
}

// ---------------------------------------------------------------------------------------------
// Primitives.

#[test]
fn primitive_names() {
    assert_eq!(Primitive::parse("string"), Some(Primitive::String));
    assert_eq!(Primitive::parse("tosca:integer"), Some(Primitive::Integer));
    assert_eq!(Primitive::parse("scalar-unit.bitrate"), Some(Primitive::ScalarBitrate));
    assert_eq!(Primitive::parse("tosca:scalar-unit.size"), Some(Primitive::ScalarSize));
    assert_eq!(Primitive::parse("String"), None);
    assert_eq!(Primitive::parse("tosca.datatypes.Credential"), None);
    for p in Primitive::ALL {
        assert_eq!(Primitive::parse(p.name()), Some(p));
    }
}

#[test]
fn primitives() {
    table(&[
        // string
        ("{type: string}", "hello", json!("hello"), &[]),
        ("{type: string}", "'1.10'", json!("1.10"), &[]),
        ("{type: string}", "[a]", json!(["a"]), &["E0301@1:1"]),
        ("{type: string}", "{a: 1}", json!(null), &["E0301@1:1"]),
        ("{type: string}", "~", json!(null), &["E0301@1:1"]),
        // integer: decimal, octal, hex as YAML reads them
        ("{type: integer}", "42", json!(42), &[]),
        ("{type: integer}", "-7", json!(-7), &[]),
        ("{type: integer}", "0x1F", json!(31), &[]),
        ("{type: integer}", "0o17", json!(15), &[]),
        ("{type: integer}", "2.5", json!(2.5), &["E0301@1:1"]),
        ("{type: integer}", "abc", json!("abc"), &["E0301@1:1"]),
        ("{type: integer}", "true", json!(null), &["E0301@1:1"]),
        ("{type: integer}", "{a: 1}", json!({"a": 1}), &["E0301@1:1"]),
        // float: integers accepted silently
        ("{type: float}", "2.5", json!(2.5), &[]),
        ("{type: float}", "3", json!(3.0), &[]),
        ("{type: float}", "1e3", json!(1000.0), &[]),
        ("{type: float}", "x", json!(null), &["E0301@1:1"]),
        // boolean
        ("{type: boolean}", "true", json!(true), &[]),
        ("{type: boolean}", "false", json!(false), &[]),
        ("{type: boolean}", "1", json!(null), &["E0301@1:1"]),
        ("{type: boolean}", "maybe", json!(null), &["E0301@1:1"]),
        // null
        ("{type: null}", "~", json!(null), &[]),
        ("{type: null}", "", json!(null), &[]),
        ("{type: null}", "0", json!(null), &["E0301@1:1"]),
        // unknown types: read untyped, no error (check_definition reports them)
        ("{type: Nope}", "{a: [1, x]}", json!({"a": [1, "x"]}), &[]),
    ]);
}

#[test]
fn type_mismatch_messages_name_expected_and_found() {
    let out = check_named("{type: integer}", "{a: 1}", "num_cpus");
    assert_eq!(out.diags[0].message, "num_cpus: expected integer, found a mapping");
    let out = check("{type: PortDef}", "http");
    assert_eq!(out.diags[0].message, "expected PortDef (integer), found a string \"http\"");
    let out = check("{type: Credential}", "[1]");
    assert_eq!(out.codes(), ["E0301@1:1"]);
    assert!(out.diags[0].message.contains("Credential"), "{}", out.messages());
}

#[test]
fn leniency() {
    table(&[
        // a number where a string is expected: the source text, with a warning
        ("{type: string}", "18.04", json!("18.04"), &["W0311@1:1"]),
        ("{type: string}", "1.10", json!("1.10"), &["W0311@1:1"]),
        ("{type: string}", "0x10", json!("0x10"), &["W0311@1:1"]),
        ("{type: string}", "true", json!("true"), &["W0311@1:1"]),
        // a number where a version is expected
        ("{type: version}", "1.10", json!({"version": "1.10", "major": 1, "minor": 10, "fix": 0, "qualifier": null, "build": null}), &["W0311@1:1"]),
        ("{type: version}", "'1.10'", json!({"version": "1.10", "major": 1, "minor": 10, "fix": 0, "qualifier": null, "build": null}), &[]),
        // a quoted number where a number is expected
        ("{type: integer}", "'2'", json!(2), &["W0311@1:1"]),
        ("{type: integer}", "'-2'", json!(-2), &["W0311@1:1"]),
        ("{type: integer}", "'2.0'", json!(null), &["E0301@1:1"]),
        ("{type: integer}", "' 2'", json!(null), &["E0301@1:1"]),
        ("{type: float}", "'2.5'", json!(2.5), &["W0311@1:1"]),
        ("{type: float}", "'2'", json!(2.0), &["W0311@1:1"]),
        ("{type: float}", "'nan'", json!(null), &["E0301@1:1"]),
        // a boolean given as a string
        ("{type: boolean}", "'true'", json!(true), &["W0311@1:1"]),
        ("{type: boolean}", "'False'", json!(false), &["W0311@1:1"]),
        ("{type: boolean}", "yes", json!(true), &["W0311@1:1"]),
        ("{type: boolean}", "off", json!(false), &["W0311@1:1"]),
    ]);
    let out = check_named("{type: string}", "1.10", "image");
    assert_eq!(out.diags[0].message, "image: the number 1.10 is read as the string \"1.10\" (string expected)");
    assert_eq!(out.diags[0].help.as_deref(), Some("quote the value so its meaning is explicit"));
}

// ---------------------------------------------------------------------------------------------
// Scalar-units.

#[test]
fn scalar_units_normalize() {
    let size = |v: &str, unit: &str, n: f64| (ty("scalar-unit.size"), v.to_string(), unit.to_string(), n);
    let time = |v: &str, unit: &str, n: f64| (ty("scalar-unit.time"), v.to_string(), unit.to_string(), n);
    let freq = |v: &str, unit: &str, n: f64| (ty("scalar-unit.frequency"), v.to_string(), unit.to_string(), n);
    let rate = |v: &str, unit: &str, n: f64| (ty("scalar-unit.bitrate"), v.to_string(), unit.to_string(), n);
    let cases = [
        size("4 GB", "GB", 4e9),
        size("4GB", "GB", 4e9),
        size("4  gb", "GB", 4e9),
        size("1 B", "B", 1.0),
        size("2 kB", "kB", 2000.0),
        size("2 KB", "kB", 2000.0),
        size("1 KiB", "KiB", 1024.0),
        size("1.5 MB", "MB", 1.5e6),
        size("1 MiB", "MiB", 1_048_576.0),
        size("1 GiB", "GiB", 1_073_741_824.0),
        size("3 TB", "TB", 3e12),
        size("1 tib", "TiB", 1_099_511_627_776.0),
        size("0.5e1 kB", "kB", 5000.0),
        time("1 d", "d", 86_400.0),
        time("2 h", "h", 7_200.0),
        time("3 m", "m", 180.0),
        time("30 s", "s", 30.0),
        time("30 S", "s", 30.0),
        time("250 ms", "ms", 0.25),
        time("5 us", "us", 5e-6),
        time("7 ns", "ns", 7e-9),
        time("-1 s", "s", -1.0),
        freq("50 Hz", "Hz", 50.0),
        freq("2 kHz", "kHz", 2000.0),
        freq("2.4 GHz", "GHz", 2.4e9),
        freq("100 mhz", "MHz", 1e8),
        rate("100 bps", "bps", 100.0),
        rate("1 Kbps", "Kbps", 1000.0),
        rate("1 kbps", "Kbps", 1000.0),
        rate("1 Kibps", "Kibps", 1024.0),
        rate("1 Mbps", "Mbps", 1e6),
        rate("1 Mibps", "Mibps", 1_048_576.0),
        rate("1 Gbps", "Gbps", 1e9),
        rate("1 Gibps", "Gibps", 1_073_741_824.0),
        rate("1 Tbps", "Tbps", 1e12),
        rate("1 Tibps", "Tibps", 1_099_511_627_776.0),
        rate("1 Bps", "Bps", 8.0),
        rate("1 KBps", "KBps", 8000.0),
        rate("1 kBps", "KBps", 8000.0),
        rate("1 KiBps", "KiBps", 8192.0),
        rate("1 MBps", "MBps", 8e6),
        rate("1 MiBps", "MiBps", 8.0 * 1_048_576.0),
        rate("1 GBps", "GBps", 8e9),
        rate("1 GiBps", "GiBps", 8.0 * 1_073_741_824.0),
        rate("1 TBps", "TBps", 8e12),
        rate("1 TiBps", "TiBps", 8.0 * 1_099_511_627_776.0),
        rate("1 MBPS", "MBps", 8e6),
    ];
    for (def, v, unit, n) in cases {
        let out = check(&def, &v);
        assert_eq!(out.codes(), Vec::<String>::new(), "{v}: {}", out.messages());
        match out.value {
            Value::Scalar { unit: u, normalized, .. } => {
                assert_eq!(u, unit, "{v}");
                assert!((normalized - n).abs() <= n.abs() * 1e-12, "{v}: {normalized} != {n}");
            }
            other => panic!("{v}: {other:?}"),
        }
    }
}

#[test]
fn scalar_unit_errors() {
    table(&[
        ("{type: scalar-unit.size}", "4", json!(4), &["E0303@1:1"]),
        ("{type: scalar-unit.size}", "4 XB", json!("4 XB"), &["E0303@1:1"]),
        ("{type: scalar-unit.size}", "GB", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.size}", "4 GB extra", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.size}", "4 Hz", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.size}", "1e400 B", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.time}", "4 sec", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.frequency}", "4 hz s", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.bitrate}", "4 Kbit", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.bitrate}", "4 K", json!(null), &["E0303@1:1"]),
        ("{type: scalar-unit.size}", "[4, GB]", json!(null), &["E0301@1:1"]),
    ]);
    let out = check_named("{type: scalar-unit.size}", "4096", "mem_size");
    assert_eq!(out.diags[0].message, "mem_size: 4096 is not a valid scalar-unit.size: it has no unit");
    assert!(out.diags[0].help.as_deref().unwrap().contains("`4096 B`"));
    let out = check("{type: scalar-unit.size}", "4 XB");
    assert!(out.diags[0].message.contains("`XB` is not a unit of scalar-unit.size"), "{}", out.messages());
    assert!(out.diags[0].help.as_deref().unwrap().contains("KiB"), "{}", out.messages());
}

fn scalar(kind: &str, v: &str) -> Value {
    let out = check(&ty(kind), v);
    assert!(out.diags.is_empty(), "{}", out.messages());
    out.value
}

#[test]
fn scalar_comparisons_across_units() {
    use std::cmp::Ordering::*;
    let cases = [
        ("scalar-unit.size", "1 GiB", "1 GB", Greater),
        ("scalar-unit.size", "1024 MiB", "1 GiB", Equal),
        ("scalar-unit.size", "1000 kB", "1 MB", Equal),
        ("scalar-unit.size", "500 MB", "0.5 GB", Equal),
        ("scalar-unit.size", "512 MB", "0.5 GB", Greater),
        ("scalar-unit.size", "1 TB", "999 GB", Greater),
        ("scalar-unit.time", "60 s", "1 m", Equal),
        ("scalar-unit.time", "1 d", "23 h", Greater),
        ("scalar-unit.time", "999 ms", "1 s", Less),
        ("scalar-unit.time", "1000 ns", "1 us", Equal),
        ("scalar-unit.time", "0.3 s", "300 ms", Equal),
        ("scalar-unit.size", "0.3 GB", "300 MB", Equal),
        ("scalar-unit.size", "0.1 kB", "100 B", Equal),
        ("scalar-unit.frequency", "1000 MHz", "1 GHz", Equal),
        ("scalar-unit.frequency", "2.4 GHz", "2400000 kHz", Equal),
        ("scalar-unit.bitrate", "1 KiBps", "8 Kibps", Equal),
        ("scalar-unit.bitrate", "1 MBps", "8 Mbps", Equal),
        ("scalar-unit.bitrate", "1 Mbps", "1 MBps", Less),
        ("scalar-unit.bitrate", "1 Gibps", "1 Gbps", Greater),
    ];
    for (kind, a, b, want) in cases {
        assert_eq!(compare(&scalar(kind, a), &scalar(kind, b)), Some(want), "{a} vs {b}");
        assert_eq!(compare(&scalar(kind, b), &scalar(kind, a)), Some(want.reverse()), "{b} vs {a}");
    }
    // Different families never compare.
    assert_eq!(compare(&scalar("scalar-unit.size", "1 B"), &scalar("scalar-unit.time", "1 s")), None);
}

// ---------------------------------------------------------------------------------------------
// Versions, ranges, timestamps.

fn version(v: &str) -> Value {
    let out = check("{type: version}", &format!("'{v}'"));
    assert!(out.diags.is_empty(), "{v}: {}", out.messages());
    out.value
}

#[test]
fn version_parsing() {
    table(&[
        ("{type: version}", "'2.0.1.alpha-10'", json!({"version": "2.0.1.alpha-10", "major": 2, "minor": 0, "fix": 1, "qualifier": "alpha", "build": 10}), &[]),
        ("{type: version}", "'1.0.0.RC1'", json!({"version": "1.0.0.RC1", "major": 1, "minor": 0, "fix": 0, "qualifier": "RC1", "build": null}), &[]),
        ("{type: version}", "3.2.1", json!({"version": "3.2.1", "major": 3, "minor": 2, "fix": 1, "qualifier": null, "build": null}), &[]),
        // a bare major: read as major.0, with a warning (twice lenient: a number, and no minor)
        ("{type: version}", "'2'", json!({"version": "2", "major": 2, "minor": 0, "fix": 0, "qualifier": null, "build": null}), &["W0311@1:1"]),
        ("{type: version}", "latest", json!("latest"), &["E0304@1:1"]),
        ("{type: version}", "v1.0", json!(null), &["E0304@1:1"]),
        ("{type: version}", "'1.'", json!(null), &["E0304@1:1"]),
        ("{type: version}", "'1.x'", json!(null), &["E0304@1:1"]),
        ("{type: version}", "'1.0.0.'", json!(null), &["E0304@1:1"]),
        ("{type: version}", "'1.0.0.beta-x'", json!(null), &["E0304@1:1"]),
        ("{type: version}", "'1.0.0.be.ta'", json!(null), &["E0304@1:1"]),
        ("{type: version}", "'99999999999999999999999.0'", json!(null), &["E0304@1:1"]),
        ("{type: version}", "[1, 0]", json!(null), &["E0301@1:1"]),
    ]);
}

#[test]
fn version_ordering() {
    use std::cmp::Ordering::*;
    let cases = [
        ("1.9", "1.10", Less),
        ("2.0", "2.0.0", Equal),
        ("2.0.1", "2.0", Greater),
        ("10.0", "9.99", Greater),
        ("1.0.0.alpha", "1.0.0", Less),
        ("1.0.0.alpha", "1.0.0.beta", Less),
        ("1.0.0.beta-2", "1.0.0.beta-10", Less),
        ("1.0.0.beta", "1.0.0.beta-0", Equal),
        ("1.0.1.alpha", "1.0.0", Greater),
    ];
    for (a, b, want) in cases {
        assert_eq!(compare(&version(a), &version(b)), Some(want), "{a} vs {b}");
        assert_eq!(compare(&version(b), &version(a)), Some(want.reverse()), "{b} vs {a}");
    }
}

#[test]
fn ranges() {
    table(&[
        ("{type: range}", "[1, 10]", json!([1, 10]), &[]),
        ("{type: range}", "[-5, -5]", json!([-5, -5]), &[]),
        ("{type: range}", "[0, UNBOUNDED]", json!([0, "UNBOUNDED"]), &[]),
        ("{type: range}", "[10, 1]", json!([10, 1]), &["E0305@1:1"]),
        ("{type: range}", "[1]", json!(null), &["E0305@1:1"]),
        ("{type: range}", "[1, 2, 3]", json!(null), &["E0305@1:1"]),
        ("{type: range}", "[1.5, 2]", json!(null), &["E0305@1:2"]),
        ("{type: range}", "[1, unbounded]", json!(null), &["E0305@1:5"]),
        ("{type: range}", "[UNBOUNDED, 1]", json!(null), &["E0305@1:2"]),
        ("{type: range}", "1-10", json!(null), &["E0301@1:1"]),
    ]);
}

#[test]
fn timestamps() {
    let ok = |v: &str, utc: &str| {
        let out = check("{type: timestamp}", v);
        assert!(out.diags.is_empty(), "{v}: {}", out.messages());
        assert_eq!(out.value.to_json(), json!({"timestamp": utc, "original": v}), "{v}");
    };
    ok("2001-12-14", "2001-12-14T00:00:00Z");
    ok("2001-12-14t21:59:43.10-05:00", "2001-12-15T02:59:43.1Z");
    ok("2001-12-14T21:59:43.10-05:00", "2001-12-15T02:59:43.1Z");
    ok("2001-12-14 21:59:43.10 -5", "2001-12-15T02:59:43.1Z");
    ok("2001-12-15T02:59:43.1Z", "2001-12-15T02:59:43.1Z");
    ok("2001-12-15 2:59:43.10", "2001-12-15T02:59:43.1Z");
    ok("2001-12-15T02:59:43Z", "2001-12-15T02:59:43Z");
    ok("2001-12-15T02:59:43.000Z", "2001-12-15T02:59:43Z");
    ok("2001-12-15T02:59:43+01:30", "2001-12-15T01:29:43Z");
    ok("2024-02-29T23:30:00-01:00", "2024-03-01T00:30:00Z");
    ok("2000-01-01T00:00:00+01:00", "1999-12-31T23:00:00Z");
    ok("1969-12-31T23:59:59.123456789123Z", "1969-12-31T23:59:59.123456789123Z");

    table(&[
        ("{type: timestamp}", "2001-13-01", json!("2001-13-01"), &["E0306@1:1"]),
        ("{type: timestamp}", "2001-02-29", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "1900-02-29", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "2001-1-1", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "2001-12-14T25:00:00Z", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "2001-12-14T21:59Z", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "2001-12-14T21:59:43+25:00", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "2001-12-14T21:59:43 CET", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "yesterday", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "'0000-01-01T00:00:00+01:00'", json!(null), &["E0306@1:1"]),
        ("{type: timestamp}", "20011214", json!(null), &["E0301@1:1"]),
    ]);

    let t = |s: &str| {
        let out = check("{type: timestamp}", s);
        assert!(out.diags.is_empty());
        out.value
    };
    use std::cmp::Ordering::*;
    assert_eq!(compare(&t("2001-12-14t21:59:43.10-05:00"), &t("2001-12-15T02:59:43.1Z")), Some(Equal));
    assert_eq!(compare(&t("2001-12-14"), &t("2001-12-14T00:00:00.000000001Z")), Some(Less));
    assert_eq!(compare(&t("2001-12-15T01:00:00+02:00"), &t("2001-12-14T23:30:00Z")), Some(Less));
}

// ---------------------------------------------------------------------------------------------
// Lists and maps.

#[test]
fn lists_and_maps() {
    table(&[
        ("{type: list}", "[1, a, {b: 2}]", json!([1, "a", {"b": 2}]), &[]),
        ("{type: list, entry_schema: integer}", "[1, 2, 3]", json!([1, 2, 3]), &[]),
        ("{type: list, entry_schema: integer}", "[1, x, 3, y]", json!([1, "x", 3, "y"]), &["E0301@1:5", "E0301@1:11"]),
        ("{type: list, entry_schema: integer}", "- 1\n- [2]\n", json!(null), &["E0301@2:3"]),
        ("{type: list, entry_schema: scalar-unit.size}", "[1 GB, 2 MiB]", json!([
            {"value": 1, "unit": "GB", "normalized": 1_000_000_000u64, "base_unit": "B"},
            {"value": 2, "unit": "MiB", "normalized": 2_097_152, "base_unit": "B"},
        ]), &[]),
        ("{type: list, entry_schema: {type: list, entry_schema: integer}}", "[[1], [2, z]]", json!(null), &["E0301@1:11"]),
        ("{type: list, entry_schema: integer}", "{a: 1}", json!(null), &["E0301@1:1"]),
        ("{type: map}", "{a: 1, b: [x]}", json!({"a": 1, "b": ["x"]}), &[]),
        ("{type: map, entry_schema: PortDef}", "{http: 80, https: 443}", json!({"http": 80, "https": 443}), &[]),
        ("{type: map, entry_schema: PortDef}", "http: 80\nbad: 0\n", json!(null), &["E0302@2:6"]),
        ("{type: map, entry_schema: string}", "[a]", json!(null), &["E0301@1:1"]),
        // keys are strings by default: a number key is read leniently
        ("{type: map}", "{1: a}", json!({"1": "a"}), &["W0311@1:2"]),
        ("{type: map}", "{[1]: a}", json!({}), &["E0301@1:2"]),
        ("{type: map, key_schema: {type: string, constraints: [{pattern: '[a-z]+'}]}}", "{ok: 1, NO: 2}", json!({"ok": 1, "NO": 2}), &["E0302@1:9"]),
        ("{type: map, key_schema: string, entry_schema: integer}", "{a: 1}", json!({"a": 1}), &[]),
        // entry_schema from a data type derived from map
        ("{type: Tags}", "{a: x, b: [1]}", json!(null), &["E0301@1:11"]),
        // constraints on the list itself and on its entries
        ("{type: list, entry_schema: {type: integer, constraints: [{greater_than: 0}]}, constraints: [{max_length: 2}]}", "[1, 0, 3]", json!(null), &["E0302@1:1", "E0302@1:5"]),
    ]);
    let out = check_named("{type: list, entry_schema: integer}", "[1, x]", "sizes");
    assert_eq!(out.diags[0].message, "sizes[1]: expected integer, found a string \"x\"");
    let out = check_named("{type: map, entry_schema: PortDef}", "{http: 0}", "ports");
    assert_eq!(out.diags[0].message, "ports.http: 0 is not in_range [1, 65535]");
}

// ---------------------------------------------------------------------------------------------
// Complex data types.

#[test]
fn complex_types() {
    table(&[
        (
            "{type: Credential}",
            "{token: abc, user: me}",
            json!({"token_type": "password", "token": "abc", "user": "me"}),
            &[],
        ),
        ("{type: Credential}", "{user: me}", json!({"token_type": "password", "user": "me"}), &["E0307@1:1"]),
        ("{type: Credential}", "token: abc\ntokn: x\n", json!(null), &["E0308@2:1"]),
        ("{type: Credential}", "token: 3\n", json!({"token_type": "password", "token": "3"}), &["W0311@1:8"]),
        ("{type: Credential}", "{token: a, keys: {k1: v, k2: [x]}}", json!(null), &["E0301@1:30"]),
        ("{type: Credential}", "abc", json!(null), &["E0301@1:1"]),
        (
            "{type: PortSpec}",
            "{source: 80}",
            json!({"source": 80, "protocol": "tcp"}),
            &[],
        ),
        ("{type: PortSpec}", "{source: 0, protocol: sctp}", json!(null), &["E0302@1:10", "E0302@1:23"]),
        // a recursive type with an end
        ("{type: Chain}", "{name: a, next: {name: b, next: {name: c}}}", json!({"name": "a", "next": {"name": "b", "next": {"name": "c"}}}), &[]),
        ("{type: Chain}", "{name: a, next: {next: {name: c}}}", json!(null), &["E0307@1:17"]),
        // a list of complex values
        ("{type: list, entry_schema: PortSpec}", "[{source: 22}, {target: 22}]", json!(null), &["E0307@1:16"]),
    ]);
    let out = check_named("{type: Credential}", "{user: me}", "credential");
    assert_eq!(out.diags[0].message, "credential: required property `token` of data type Credential has no value");
    assert_eq!(out.diags[0].related.len(), 1, "points at the property definition");
    let out = check_named("{type: Credential}", "{token: a, tokn: x}", "credential");
    assert_eq!(out.diags[0].message, "credential: `tokn` is not a property of data type Credential");
    assert!(out.diags[0].help.as_deref().unwrap().contains("token_type"));
    let out = check_named("{type: PortSpec}", "{source: 0}", "port");
    assert_eq!(out.diags[0].message, "port.source: 0 is not in_range [1, 65535]");
    match check("{type: Credential}", "{token: a}").value {
        Value::Complex { type_name, fields } => {
            assert_eq!(type_name, "Credential");
            assert_eq!(fields.keys().collect::<Vec<_>>(), ["token_type", "token"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn recursive_data_types_stop() {
    // Loop's default contains a Loop whose default contains a Loop...: stopped by depth.
    let out = check("{type: Loop}", "{}");
    assert_eq!(out.codes(), ["E0314@1/30:34"], "{}", out.messages());
    // Two recursive defaults would grow exponentially: stopped by the node budget.
    let out = check("{type: Loop2}", "{}");
    assert_eq!(out.codes().len(), 1, "{}", out.messages());
    assert_eq!(out.diags[0].code, "E0314");
}

#[test]
fn derived_from_primitive() {
    table(&[
        ("{type: PortDef}", "8080", json!(8080), &[]),
        ("{type: PortDef}", "0", json!(0), &["E0302@1:1"]),
        ("{type: PortDef}", "70000", json!(70000), &["E0302@1:1"]),
        ("{type: PortDef, constraints: [{less_than: 1024}]}", "8080", json!(8080), &["E0302@1:1"]),
        ("{type: PortDef}", "http", json!(null), &["E0301@1:1"]),
        ("{type: BigDisk}", "2 GB", json!(null), &[]),
        ("{type: BigDisk}", "512 MB", json!(null), &["E0302@1:1"]),
        ("{type: tosca.datatypes.json}", "'{\"a\": 1}'", json!("{\"a\": 1}"), &[]),
    ]);
    let out = check_named("{type: PortDef}", "0", "port");
    assert_eq!(out.diags[0].message, "port: 0 is not in_range [1, 65535]");
    assert_eq!(out.diags[0].help.as_deref(), Some("allowed: values from 1 to 65535, inclusive"));
    assert_eq!(out.diags[0].related[0].span.file, FileId(1), "points at the constraint");
}

#[test]
fn function_calls_are_left_for_later() {
    let out = check("{type: integer, constraints: [{greater_than: 5}]}", "{get_input: n}");
    assert!(out.diags.is_empty());
    assert!(matches!(out.value, Value::Expr(_)));
    assert_eq!(out.value.to_json(), json!({"get_input": "n"}));
    table(&[
        ("{type: list, entry_schema: integer}", "[1, {get_input: n}, x]", json!([1, {"get_input": "n"}, "x"]), &["E0301@1:21"]),
        ("{type: Credential}", "{token: {concat: [a, b]}}", json!({"token_type": "password", "token": {"concat": ["a", "b"]}}), &[]),
        ("{type: map, entry_schema: PortDef}", "{a: {get_property: [SELF, p]}}", json!(null), &[]),
        ("{type: string}", "{get_attribute: [HOST, public_address]}", json!(null), &[]),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Constraints.

/// `(type, constraint, value, holds)`; the value must type without diagnostics.
const CONSTRAINT_CASES: &[(&str, &str, &str, bool)] = &[
    ("integer", "{equal: 3}", "3", true),
    ("integer", "{equal: 3}", "4", false),
    ("string", "{equal: abc}", "abc", true),
    ("string", "{equal: abc}", "abd", false),
    ("boolean", "{equal: true}", "false", false),
    ("scalar-unit.size", "{equal: 1 GiB}", "1024 MiB", true),
    ("version", "{equal: '2.0'}", "'2.0.0'", true),
    ("range", "{equal: [1, UNBOUNDED]}", "[1, UNBOUNDED]", true),
    ("range", "{equal: [1, UNBOUNDED]}", "[1, 2]", false),
    ("list", "{equal: [1, 2]}", "[1, 2]", true),
    ("list", "{equal: [1, 2]}", "[2, 1]", false),
    ("map", "{equal: {a: 1}}", "{a: 1}", true),
    ("null", "{equal: null}", "~", true),
    ("integer", "{greater_than: 1}", "2", true),
    ("integer", "{greater_than: 1}", "1", false),
    ("float", "{greater_than: 1.5}", "2", true),
    ("float", "{greater_than: 1}", "1.0", false),
    ("string", "{greater_than: b}", "c", true),
    ("scalar-unit.size", "{greater_than: 2 GB}", "2 GiB", true),
    ("scalar-unit.size", "{greater_than: 2 GB}", "2000 MB", false),
    ("scalar-unit.time", "{greater_than: 1 m}", "61 s", true),
    ("scalar-unit.frequency", "{greater_than: 1 GHz}", "999 MHz", false),
    ("scalar-unit.bitrate", "{greater_than: 1 Mbps}", "1 MBps", true),
    ("timestamp", "{greater_than: 2020-01-01}", "2020-01-01T00:00:01Z", true),
    ("version", "{greater_than: '1.9'}", "'1.10'", true),
    ("integer", "{greater_or_equal: 1}", "1", true),
    ("integer", "{greater_or_equal: 1}", "0", false),
    ("version", "{greater_or_equal: '2.0'}", "'2.0.0.beta'", false),
    ("integer", "{less_than: 10}", "9", true),
    ("integer", "{less_than: 10}", "10", false),
    ("scalar-unit.time", "{less_than: 1 s}", "999 ms", true),
    ("integer", "{less_or_equal: 10}", "10", true),
    ("integer", "{less_or_equal: 10}", "11", false),
    ("timestamp", "{less_or_equal: '2020-01-01T00:00:00+01:00'}", "2019-12-31T23:00:00Z", true),
    ("integer", "{in_range: [1, 10]}", "1", true),
    ("integer", "{in_range: [1, 10]}", "10", true),
    ("integer", "{in_range: [1, 10]}", "11", false),
    ("integer", "{in_range: [1, UNBOUNDED]}", "1000000", true),
    ("integer", "{in_range: [1, UNBOUNDED]}", "0", false),
    ("float", "{in_range: [0.5, 1.5]}", "1", true),
    ("scalar-unit.size", "{in_range: [1 GB, 4 GB]}", "2 GiB", true),
    ("scalar-unit.size", "{in_range: [1 GB, 4 GB]}", "4 GiB", false),
    ("version", "{in_range: ['1.0', '2.0']}", "'1.5.3'", true),
    ("string", "{in_range: [a, c]}", "b", true),
    ("range", "{in_range: [1, 100]}", "[2, 50]", true),
    ("range", "{in_range: [1, 100]}", "[0, 50]", false),
    ("range", "{in_range: [1, 100]}", "[2, UNBOUNDED]", false),
    ("range", "{in_range: [1, UNBOUNDED]}", "[2, UNBOUNDED]", true),
    ("string", "{valid_values: [a, b]}", "b", true),
    ("string", "{valid_values: [a, b]}", "c", false),
    ("integer", "{valid_values: [1, 2]}", "3", false),
    ("version", "{valid_values: [1.0, 1.1]}", "'1.1'", true),
    ("version", "{valid_values: [1.0, 1.1]}", "'1.10'", false),
    ("scalar-unit.size", "{valid_values: [1 GB, 2 GB]}", "1000 MB", true),
    ("integer", "{valid_values: []}", "1", false),
    ("string", "{length: 3}", "abc", true),
    ("string", "{length: 3}", "abcd", false),
    ("string", "{length: 2}", "é€", true),
    ("list", "{length: 2}", "[1, 2]", true),
    ("map", "{length: 1}", "{a: 1, b: 2}", false),
    ("string", "{min_length: 2}", "ab", true),
    ("string", "{min_length: 2}", "a", false),
    ("list", "{min_length: 1}", "[]", false),
    ("string", "{max_length: 2}", "ab", true),
    ("string", "{max_length: 2}", "abc", false),
    ("map", "{max_length: 1}", "{a: 1}", true),
    ("string", "{pattern: '[a-z]+'}", "abc", true),
    ("string", "{pattern: '[a-z]+'}", "abc1", false),
    ("string", "{pattern: '[a-z]+'}", "1abc", false),
    ("string", "{pattern: 'a|b'}", "ab", false),
    ("string", "{pattern: 'a|b'}", "b", true),
    ("string", "{pattern: '^\\d{3}$'}", "'123'", true),
    ("string", "{schema: {type: object, required: [a]}}", "'{\"a\": 1}'", true),
    ("string", "{schema: {type: object, required: [a]}}", "'{\"b\": 1}'", false),
    ("string", "{schema: {type: object}}", "'not json'", false),
    ("string", "{schema: '{\"type\": \"array\", \"items\": {\"type\": \"integer\"}}'}", "'[1, 2]'", true),
    ("string", "{schema: '{\"type\": \"array\", \"items\": {\"type\": \"integer\"}}'}", "'[1, 2.5]'", false),
    ("map", "{schema: {properties: {a: {type: integer, minimum: 1}}, additionalProperties: false}}", "{a: 1}", true),
    ("map", "{schema: {properties: {a: {type: integer, minimum: 1}}, additionalProperties: false}}", "{a: 0}", false),
    ("map", "{schema: {properties: {a: {type: integer, minimum: 1}}, additionalProperties: false}}", "{a: 1, b: 2}", false),
    ("list", "{schema: {type: array, items: {type: string, minLength: 2, maxLength: 3, pattern: '^x'}}}", "[xy, xyz]", true),
    ("list", "{schema: {type: array, items: {type: string, minLength: 2, maxLength: 3, pattern: '^x'}}}", "[xy, y]", false),
    ("list", "{schema: {type: array, items: {enum: [a, b]}}}", "[a, c]", false),
    ("integer", "{schema: {const: 4}}", "4", true),
    ("integer", "{schema: {maximum: 3}}", "4", false),
    ("float", "{schema: {type: integer}}", "4.0", true),
    ("scalar-unit.size", "{schema: {type: string, pattern: 'GB$'}}", "4 GB", true),
];

#[test]
fn every_constraint_operator() {
    let reg = registry();
    for (type_name, c, value, want) in CONSTRAINT_CASES {
        let def = format!("{{type: {type_name}, constraints: [{c}]}}");
        // The definition is valid.
        assert_eq!(definition(&def), Vec::<String>::new(), "{def}");
        // The value types cleanly and the constraint gives the expected verdict, both through
        // check_value and through constraint_holds.
        let out = check(&def, value);
        let codes = out.codes();
        if *want {
            assert_eq!(codes, Vec::<String>::new(), "{def} <- {value}: {}", out.messages());
        } else {
            assert_eq!(codes, ["E0302@1:1"], "{def} <- {value}: {}", out.messages());
        }
        let d = prop_from(&yaml(1, &def));
        let spec = TypeSpec::of_property(&d).unwrap();
        let bare = check(&ty(type_name), value);
        assert!(bare.diags.is_empty(), "{}", bare.messages());
        assert_eq!(constraint_holds(&d.constraints[0], &bare.value, &spec, &reg).unwrap(), *want, "{def} <- {value}");
    }
}

#[test]
fn constraint_messages() {
    let out = check_named("{type: integer, constraints: [{greater_or_equal: 1}]}", "0", "num_cpus");
    assert_eq!(out.diags[0].message, "num_cpus: 0 is not greater_or_equal 1");
    assert_eq!(out.diags[0].help.as_deref(), Some("allowed: values greater than or equal to 1"));
    assert_eq!((out.diags[0].related[0].span.line, out.diags[0].related[0].span.col), (1, 31));
    let out = check_named("{type: scalar-unit.size, constraints: [{in_range: [1 GB, 4 GB]}]}", "8 GB", "disk");
    assert_eq!(out.diags[0].message, "disk: 8 GB is not in_range [1 GB, 4 GB]");
    let out = check_named("{type: string, constraints: [{valid_values: [small, large]}]}", "medium", "flavor");
    assert_eq!(out.diags[0].message, "flavor: \"medium\" is not in valid_values [\"small\", \"large\"]");
    assert_eq!(out.diags[0].help.as_deref(), Some("allowed values: \"small\", \"large\""));
    let out = check_named("{type: string, constraints: [{min_length: 8}]}", "secret", "password");
    assert_eq!(out.diags[0].message, "password: \"secret\" is not min_length 8 (it has 6 characters)");
    let out = check_named("{type: string, constraints: [{pattern: '[a-z]+'}]}", "ABC", "name");
    assert_eq!(out.diags[0].message, "name: \"ABC\" does not match pattern `[a-z]+`");
    let out = check_named("{type: string, constraints: [{schema: {type: object, required: [a]}}]}", "'{}'", "cfg");
    assert!(out.diags[0].message.contains("required property `a` is missing"), "{}", out.messages());
    // Several violated constraints: each is reported.
    let out = check("{type: string, constraints: [{min_length: 5}, {pattern: '[0-9]+'}]}", "abc");
    assert_eq!(out.codes(), ["E0302@1:1", "E0302@1:1"]);
}

#[test]
fn constraint_holds_errors_on_bad_constraints() {
    let reg = registry();
    let d = prop_from(&yaml(1, "{type: integer, constraints: [{pattern: 'x'}]}"));
    let spec = TypeSpec::of_property(&d).unwrap();
    let err = constraint_holds(&d.constraints[0], &Value::Integer(1), &spec, &reg).unwrap_err();
    assert_eq!(err.code, "E0309");
    // An unevaluated call satisfies every constraint.
    let d = prop_from(&yaml(1, "{type: integer, constraints: [{equal: 1}]}"));
    let spec = TypeSpec::of_property(&d).unwrap();
    let expr = Value::Expr(yaml(0, "{get_input: x}"));
    assert!(constraint_holds(&d.constraints[0], &expr, &spec, &reg).unwrap());
    // A value checked against a broken constraint: the constraint is skipped (check_definition reports it).
    let out = check("{type: integer, constraints: [{greater_than: abc}]}", "5");
    assert!(out.diags.is_empty(), "{}", out.messages());
}

// ---------------------------------------------------------------------------------------------
// Definitions.

#[test]
fn definitions() {
    let cases: &[(&str, &[&str])] = &[
        ("{type: integer}", &[]),
        ("{type: tosca:integer}", &[]),
        ("{type: PortDef}", &[]),
        ("{type: Credential}", &[]),
        ("{type: list}", &[]),
        ("{type: map}", &[]),
        ("{type: Nope}", &["E0201@1/1:8"]),
        ("{type: list, entry_schema: Nope}", &["E0201@1/1:28"]),
        ("{type: list, entry_schema: {type: integer, constraints: [{pattern: x}]}}", &["E0309@1/1:58"]),
        ("{type: map, key_schema: integer}", &["E0206@1/1:25"]),
        ("{type: map, key_schema: tosca.datatypes.json}", &[]),
        ("{type: map, key_schema: Credential}", &["E0206@1/1:25"]),
        ("{type: integer, entry_schema: string}", &["E0206@1/1:31"]),
        ("{type: list, key_schema: string}", &["E0206@1/1:26"]),
        // constraint applicability
        ("{type: integer, constraints: [{pattern: x}]}", &["E0309@1/1:31"]),
        ("{type: float, constraints: [{length: 2}]}", &["E0309@1/1:29"]),
        ("{type: boolean, constraints: [{greater_than: false}]}", &["E0309@1/1:31"]),
        ("{type: Credential, constraints: [{min_length: 1}]}", &["E0309@1/1:34"]),
        ("{type: Credential, constraints: [{equal: {token: x}}]}", &[]),
        // arguments typed like the value
        ("{type: scalar-unit.size, constraints: [{greater_than: 2 GB}]}", &[]),
        ("{type: scalar-unit.size, constraints: [{greater_than: 2}]}", &["E0309@1/1:55"]),
        ("{type: scalar-unit.size, constraints: [{greater_than: 2 s}]}", &["E0309@1/1:55"]),
        ("{type: integer, constraints: [{equal: abc}]}", &["E0309@1/1:39"]),
        ("{type: version, constraints: [{valid_values: [1.0, 1.1, x]}]}", &["E0309@1/1:57"]),
        ("{type: timestamp, constraints: [{greater_than: 2001-02-30}]}", &["E0309@1/1:48"]),
        ("{type: PortDef, constraints: [{equal: 70000}]}", &[]),
        // in_range: two ordered values
        ("{type: integer, constraints: [{in_range: [1, 2, 3]}]}", &["E0309@1/1:42"]),
        ("{type: integer, constraints: [{in_range: 5}]}", &["E0309@1/1:42"]),
        ("{type: integer, constraints: [{in_range: [5, 1]}]}", &["E0309@1/1:42"]),
        ("{type: version, constraints: [{in_range: ['2.0', '1.10']}]}", &["E0309@1/1:42"]),
        // for strings UNBOUNDED is just a string: here it sorts before `a`
        ("{type: string, constraints: [{in_range: [a, UNBOUNDED]}]}", &["E0309@1/1:41"]),
        ("{type: string, constraints: [{in_range: [A, UNBOUNDED]}]}", &[]),
        ("{type: range, constraints: [{in_range: [1, x]}]}", &["E0309@1/1:44"]),
        // valid_values: a list
        ("{type: string, constraints: [{valid_values: a}]}", &["E0309@1/1:45"]),
        // length: a non-negative integer
        ("{type: string, constraints: [{length: -1}]}", &["E0309@1/1:39"]),
        ("{type: string, constraints: [{min_length: '2'}]}", &["E0309@1/1:43"]),
        ("{type: list, constraints: [{max_length: 1.5}]}", &["E0309@1/1:41"]),
        // pattern: a regular expression that compiles
        ("{type: string, constraints: [{pattern: '[a-'}]}", &["E0310@1/1:40"]),
        ("{type: string, constraints: [{pattern: '(?=x)'}]}", &["E0310@1/1:40"]),
        ("{type: string, constraints: [{pattern: '\\w{1000}{1000}'}]}", &["E0310@1/1:40"]),
        ("{type: string, constraints: [{pattern: [a]}]}", &["E0309@1/1:40"]),
        // schema: a usable JSON Schema
        ("{type: string, constraints: [{schema: {type: objekt}}]}", &["E0309@1/1:39"]),
        ("{type: string, constraints: [{schema: '{not json'}]}", &["E0309@1/1:39"]),
        ("{type: string, constraints: [{schema: {properties: {a: {pattern: '('}}}}]}", &["E0310@1/1:39"]),
        ("{type: string, constraints: [{schema: {required: a}}]}", &["E0309@1/1:39"]),
        ("{type: string, constraints: [{schema: 3}]}", &["E0309@1/1:39"]),
    ];
    for (def, want) in cases {
        assert_eq!(definition(def), *want, "{def}");
    }
}

// ---------------------------------------------------------------------------------------------
// JSON form.

#[test]
fn json_form() {
    let v = check("{type: scalar-unit.size}", "4 GB").value;
    assert_eq!(v.to_json(), json!({"value": 4, "unit": "GB", "normalized": 4_000_000_000u64, "base_unit": "B"}));
    let v = check("{type: scalar-unit.time}", "1.5 ms").value;
    assert_eq!(v.to_json(), json!({"value": 1.5, "unit": "ms", "normalized": 0.0015, "base_unit": "s"}));
    let v = check("{type: scalar-unit.bitrate}", "1 KiBps").value;
    assert_eq!(v.to_json(), json!({"value": 1, "unit": "KiBps", "normalized": 8192, "base_unit": "bps"}));
    assert_eq!(serde_json::to_value(&v).unwrap(), v.to_json(), "Serialize is to_json");
    let v = check("{type: range}", "[1, UNBOUNDED]").value;
    assert_eq!(v.to_json(), json!([1, "UNBOUNDED"]));
    assert_eq!(v.to_string(), "[1, UNBOUNDED]");
    assert_eq!(Value::Float(f64::NAN).to_json(), json!(".nan"));
    assert_eq!(Value::Float(f64::NEG_INFINITY).to_json(), json!("-.inf"));
    assert_eq!(Value::Float(2.0).to_string(), "2.0");
    let long = Value::String("x".repeat(200));
    assert!(long.to_string().ends_with("...") && long.to_string().chars().count() == 80);
}

// ---------------------------------------------------------------------------------------------
// Never panics.

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn arb_yaml() -> impl Strategy<Value = Yaml> {
        let span = Span { file: FileId(0), offset: 0, len: 0, line: 1, col: 1 };
        let leaf = prop_oneof![
            Just(YamlValue::Null),
            any::<bool>().prop_map(YamlValue::Bool),
            any::<i64>().prop_map(YamlValue::Int),
            any::<f64>().prop_map(YamlValue::Float),
            ".{0,12}".prop_map(|s: String| YamlValue::Str(s.into())),
            "[0-9 .:TZ+-]{0,30}".prop_map(|s: String| YamlValue::Str(s.into())),
            "-?[0-9]{1,25}(\\.[0-9]{0,5})? ?(B|kB|KiB|GB|gib|s|ms|d|Hz|GHz|bps|KBps|Kibps|XB)?".prop_map(|s: String| YamlValue::Str(s.into())),
            "[0-9]{1,22}(\\.[0-9]{1,22}(\\.[0-9]{1,22}(\\.[a-z0-9_]{0,4}(-[0-9]{0,22})?)?)?)?".prop_map(|s: String| YamlValue::Str(s.into())),
            Just(YamlValue::Str("UNBOUNDED".into())),
        ]
        .prop_map(move |v| Yaml::new(v, span));
        leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(move |v| Yaml::new(YamlValue::Seq(v.into()), span)),
                prop::collection::vec((inner.clone(), inner), 0..4).prop_map(move |v| Yaml::new(YamlValue::Map(v.into()), span)),
            ]
        })
    }

    const SPECS: &[&str] = &[
        "{type: string}",
        "{type: integer}",
        "{type: float}",
        "{type: boolean}",
        "{type: timestamp}",
        "{type: null}",
        "{type: version}",
        "{type: range}",
        "{type: list}",
        "{type: map}",
        "{type: scalar-unit.size}",
        "{type: scalar-unit.time}",
        "{type: scalar-unit.frequency}",
        "{type: scalar-unit.bitrate}",
        "{type: list, entry_schema: {type: map, key_schema: string, entry_schema: version}}",
        "{type: Credential}",
        "{type: PortSpec}",
        "{type: Chain}",
        "{type: Loop}",
        "{type: Tags}",
        "{type: integer, constraints: [{in_range: [1, 10]}, {valid_values: [1, 2]}]}",
        "{type: string, constraints: [{pattern: '[a-z]+'}, {min_length: 1}, {schema: {type: object}}]}",
        "{type: scalar-unit.size, constraints: [{greater_than: 1 GB}, {less_or_equal: 1 TiB}]}",
        "{type: version, constraints: [{greater_or_equal: '1.0'}, {valid_values: ['1.0', '2.0']}]}",
        "{type: range, constraints: [{in_range: [0, UNBOUNDED]}]}",
        "{type: timestamp, constraints: [{less_than: 2030-01-01}]}",
        "{type: map, constraints: [{schema: {additionalProperties: {type: integer}}}]}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn check_value_never_panics_on_trees(y in arb_yaml()) {
            let reg = registry();
            for def in SPECS {
                let d = prop_from(&yaml(1, def));
                let spec = TypeSpec::of_property(&d).unwrap();
                let mut diags = Diagnostics::new();
                let v = check_value(&y, &spec, &reg, &mut diags);
                let _ = v.to_json();
                let _ = v.to_string();
                let _ = compare(&v, &v);
                for c in &d.constraints {
                    let _ = constraint_holds(c, &v, &spec, &reg);
                }
            }
        }

        #[test]
        fn check_value_never_panics_on_text(text in "[ -~\\n]{0,40}") {
            let reg = registry();
            if let Ok(y) = parse(FileId(0), &text, &Limits::default()) {
                for def in SPECS {
                    let d = prop_from(&yaml(1, def));
                    let spec = TypeSpec::of_property(&d).unwrap();
                    let mut diags = Diagnostics::new();
                    let _ = check_value(&y, &spec, &reg, &mut diags);
                }
            }
        }

        #[test]
        fn constraint_definitions_never_panic(arg in arb_yaml(), op in 0usize..12, def in 0usize..14) {
            let reg = registry();
            let ops = ["equal", "greater_than", "greater_or_equal", "less_than", "less_or_equal", "in_range",
                       "valid_values", "length", "min_length", "max_length", "pattern", "schema"];
            let c = Constraint { op: ConstraintOp::parse(ops[op]).unwrap(), arg, span: Span::NONE };
            let d = PropertyDef {
                type_name: Some(Sp::new(Primitive::ALL[def].name().to_string(), Span::NONE)),
                constraints: vec![c],
                ..PropertyDef::default()
            };
            let spec = TypeSpec::of_property(&d).unwrap();
            let mut diags = Diagnostics::new();
            check_definition(&spec, &reg, &mut diags);
            let _ = constraint_holds(&d.constraints[0], &Value::Integer(1), &spec, &reg);
            let _ = constraint_holds(&d.constraints[0], &Value::String("a".into()), &spec, &reg);
        }
    }

    #[test]
    fn scalar_and_timestamp_parsers_on_edge_text() {
        for s in ["", " ", "-", "+", ".", "e", "1e", "1e+", "1.e5 B", ".5 B", "1..2 B", "１ GB", "1 ＧB", "9".repeat(400).as_str()] {
            let _ = scalar::parse(s, ScalarKind::Size);
            let _ = scalar::parse(s, ScalarKind::Bitrate);
            let _ = timestamp::parse(s);
            let _ = version::parse(s);
        }
        for s in ["9999-12-31T23:59:59-23:59", "0000-01-01", "2001-12-14T21:59:43.", "2001-12-14 \t 21:59:43 \t Z", "2001-12-14T"] {
            let _ = timestamp::parse(s);
        }
        assert_eq!(timestamp::parse("9999-12-31T23:59:59-23:59").unwrap_err(), "the instant falls outside the years 0000-9999 in UTC");
        assert_eq!(timestamp::parse("2001-12-14 \t 21:59:43 \t Z").unwrap().utc, "2001-12-14T21:59:43Z");
    }
}
