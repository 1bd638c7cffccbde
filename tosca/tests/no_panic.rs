//! The core never panics and always finishes, whatever the input (docs/ARCHITECTURE.md,
//! "Invariants"):
//!
//! * property tests: arbitrary strings, TOSCA-flavoured token soup, and random YAML trees built
//!   from TOSCA keys and functions, compiled offline through `tosca::compile`;
//! * hostile inputs: alias bombs, 10k-deep nesting, a 20 MB file and binary data each end in a
//!   diagnostic with the expected code (E0003 budget, E0004 size, E0005 not text).
//!
//! Every compile runs on its own thread with a deadline, so a hang fails the test instead of
//! stalling the suite.

use proptest::prelude::*;
use std::sync::mpsc;
use std::time::Duration;
use tosca::loader::{Entry, LoadOptions};
use tosca::{Diagnostics, Inputs, Sources, Span};

/// Generous: a debug-build compile of these inputs takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Found {
    code: &'static str,
    span: Span,
    message: String,
}

fn offline() -> LoadOptions {
    LoadOptions { allow_fetch: false, ..LoadOptions::default() }
}

/// Compiles `entry` on a worker thread; fails on a panic or when the deadline passes.
fn compile_entry(entry: Entry) -> Vec<Found> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .stack_size(8 * 1024 * 1024)
        .spawn(move || {
            let compiled = tosca::compile(&entry, &offline(), &Inputs::new(), Diagnostics::new(), Sources::new());
            let found: Vec<Found> =
                compiled.diagnostics.iter().map(|d| Found { code: d.code, span: d.span, message: d.message.clone() }).collect();
            let _ = tx.send(found);
        })
        .expect("spawn worker");
    match rx.recv_timeout(DEADLINE) {
        Ok(found) => {
            worker.join().expect("worker finished");
            found
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("worker ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("compile did not finish within {DEADLINE:?}"),
    }
}

fn compile_text(text: String) -> Vec<Found> {
    compile_entry(Entry::Text { name: "<prop>".into(), text })
}

// ---------- generators ----------

const KEYS: &[&str] = &[
    "tosca_definitions_version",
    "description",
    "metadata",
    "imports",
    "repositories",
    "dsl_definitions",
    "data_types",
    "capability_types",
    "relationship_types",
    "interface_types",
    "artifact_types",
    "node_types",
    "group_types",
    "policy_types",
    "topology_template",
    "inputs",
    "outputs",
    "node_templates",
    "relationship_templates",
    "groups",
    "policies",
    "substitution_mappings",
    "workflows",
    "type",
    "derived_from",
    "version",
    "properties",
    "attributes",
    "capabilities",
    "requirements",
    "interfaces",
    "artifacts",
    "constraints",
    "default",
    "required",
    "entry_schema",
    "key_schema",
    "valid_source_types",
    "occurrences",
    "node",
    "capability",
    "relationship",
    "node_filter",
    "host",
    "dependency",
    "members",
    "targets",
    "value",
    "file",
    "implementation",
    "operations",
    "Standard",
    "create",
    "configure",
    "start",
    "get_input",
    "get_property",
    "get_attribute",
    "get_operation_output",
    "get_nodes_of_type",
    "get_artifact",
    "concat",
    "join",
    "token",
    "equal",
    "greater_than",
    "in_range",
    "valid_values",
    "length",
    "min_length",
    "pattern",
    "schema",
    "num_cpus",
    "mem_size",
    "disk_size",
    "os",
    "distribution",
    "a",
    "b",
    "web",
    "db",
];

const SCALARS: &[&str] = &[
    "tosca_simple_yaml_1_3",
    "tosca_simple_yaml_1_0",
    "tosca_simple_profile_for_nfv_1_0_0",
    "tosca.nodes.Compute",
    "tosca.nodes.SoftwareComponent",
    "tosca.nodes.Root",
    "tosca.datatypes.Root",
    "tosca.capabilities.Container",
    "tosca.relationships.HostedOn",
    "tosca.relationships.DependsOn",
    "tosca.policies.Placement",
    "integer",
    "string",
    "float",
    "boolean",
    "map",
    "list",
    "range",
    "timestamp",
    "version",
    "scalar-unit.size",
    "scalar-unit.time",
    "2 GB",
    "1.5 GHz",
    "10 ms",
    "-3 kB",
    "1.0",
    "1.2.3.alpha-4",
    "2001-12-14t21:59:43.10-05:00",
    "[1, 2]",
    "[1, UNBOUNDED]",
    "[0, -1]",
    "{}",
    "[]",
    "SELF",
    "HOST",
    "SOURCE",
    "TARGET",
    "web",
    "db",
    "a",
    "b",
    "true",
    "false",
    "yes",
    "null",
    "~",
    "0",
    "-1",
    "0x1F",
    "1e400",
    ".nan",
    "9223372036854775808",
    "\"\"",
    "''",
    "&x 1",
    "*x",
    "!!str 5",
    "!!binary aGVsbG8=",
];

/// A random YAML tree. Keys are drawn from TOSCA words; scalars from TOSCA-looking values or
/// arbitrary (quoted) strings and numbers.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn scalar() -> impl Strategy<Value = Node> {
    prop_oneof![
        6 => prop::sample::select(SCALARS).prop_map(|s| Node::Scalar(s.to_string())),
        2 => any::<i64>().prop_map(|i| Node::Scalar(i.to_string())),
        1 => any::<f64>().prop_map(|f| Node::Scalar(format!("{f:?}"))),
        2 => ".{0,12}".prop_map(|s| Node::Scalar(quote(&s))),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![9 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => "[a-z_.]{1,8}"]
}

fn tree() -> impl Strategy<Value = Node> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::List),
            prop::collection::vec((key(), inner), 0..6).prop_map(Node::Map),
        ]
    })
}

/// A whole document: usually a versioned service template whose sections are random trees.
fn document() -> impl Strategy<Value = String> {
    let sections = prop::collection::vec((key(), tree()), 0..6);
    let node_templates = prop::collection::vec(("[a-c]{1,2}", tree()), 0..5);
    (prop::sample::select(&SCALARS[..3]), any::<bool>(), sections, node_templates).prop_map(|(version, versioned, sections, nts)| {
        let mut top = Vec::new();
        if versioned {
            top.push(("tosca_definitions_version".to_string(), Node::Scalar(version.to_string())));
        }
        top.extend(sections);
        top.push(("topology_template".into(), Node::Map(vec![("node_templates".into(), Node::Map(nts))])));
        let mut out = String::new();
        render(&Node::Map(top), 0, &mut out);
        out
    })
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Block-style YAML; empty collections and scalars inline. Duplicate keys are left in on
/// purpose (they are a diagnostic, not a panic).
fn render(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Scalar(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Node::List(items) if items.is_empty() => out.push_str("[]\n"),
        Node::Map(items) if items.is_empty() => out.push_str("{}\n"),
        Node::List(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                render(item, indent + 2, out);
            }
        }
        Node::Map(items) => {
            out.push('\n');
            for (k, v) in items {
                out.push_str(&pad);
                out.push_str(k);
                out.push_str(": ");
                render(v, indent + 2, out);
            }
        }
    }
}

/// Token soup: YAML punctuation, indentation and TOSCA words glued at random.
fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        3 => prop::sample::select(SCALARS).prop_map(str::to_string),
        6 => prop::sample::select(&[": ", ":", "- ", "\n", "\n  ", "\n    ", "{", "}", "[", "]", ", ", "&a ", "*a", "? ", "|", ">", "#", "'", "\"", "%YAML 1.2\n", "---\n", "...\n", "!", "\t", "\r\n", "\u{FEFF}", "é", "\u{0}"][..]).prop_map(str::to_string),
    ];
    prop::collection::vec(token, 0..80).prop_map(|t| t.concat())
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, max_shrink_iters: 256, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        compile_text(text);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        compile_text(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn tosca_token_soup_never_panics(text in soup()) {
        compile_text(text);
    }

    #[test]
    fn random_tosca_shaped_yaml_never_panics(text in document()) {
        compile_text(text);
    }
}

// ---------- hostile inputs ----------

fn codes(found: &[Found]) -> Vec<&'static str> {
    found.iter().map(|f| f.code).collect()
}

/// The one diagnostic with `code`, pointing at a real line of a real file.
fn located(found: &[Found], code: &str) -> Found {
    let hit = found.iter().find(|f| f.code == code).unwrap_or_else(|| panic!("expected {code}, got {:?}", codes(found))).clone();
    assert!(hit.span.line >= 1 && hit.span != Span::NONE, "{code} is not located: {hit:?}");
    hit
}

fn billion_laughs(levels: usize, width: usize) -> String {
    let mut s = String::from("tosca_definitions_version: tosca_simple_yaml_1_3\nmetadata:\n  l0: &l0 \"lol\"\n");
    for i in 1..=levels {
        let refs = vec![format!("*l{}", i - 1); width].join(", ");
        s.push_str(&format!("  l{i}: &l{i} [{refs}]\n"));
    }
    s
}

#[test]
fn alias_bomb_is_a_budget_error() {
    // 10^9 expanded scalars from a ~1 kB file.
    let found = compile_text(billion_laughs(9, 10));
    located(&found, "E0003");
}

#[test]
fn alias_bomb_in_node_template_properties_is_a_budget_error() {
    let mut s = String::from("tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    n:\n      type: tosca.nodes.Root\n      metadata:\n        a: &a [x, x, x, x, x, x, x, x]\n");
    for (prev, cur) in ["a", "b", "c", "d", "e", "f", "g", "h"].windows(2).map(|w| (w[0], w[1])) {
        s.push_str(&format!("        {cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let found = compile_text(s);
    located(&found, "E0003");
}

#[test]
fn deep_flow_nesting_is_a_budget_error() {
    let depth = 10_000;
    let text = format!("tosca_definitions_version: tosca_simple_yaml_1_3\nmetadata: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
    located(&compile_text(text), "E0003");
    let text = format!("a: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth));
    located(&compile_text(text), "E0003");
}

#[test]
fn deep_block_nesting_is_a_budget_error() {
    // Nested block sequences on one line: `- - - ... - x`, 10k levels.
    let text = format!("{}x\n", "- ".repeat(10_000));
    located(&compile_text(text), "E0003");
    // Nested block mappings, one level per line (kept under the size limit: 2k levels).
    let mut text = String::new();
    for i in 0..2_000 {
        text.push_str(&" ".repeat(i));
        text.push_str("k:\n");
    }
    located(&compile_text(text), "E0003");
}

#[test]
fn unclosed_deep_nesting_is_an_error_not_a_panic() {
    let found = compile_text("[".repeat(10_000));
    let c = codes(&found);
    assert!(c.contains(&"E0003") || c.contains(&"E0002"), "got {c:?}");
}

fn twenty_mb() -> String {
    let mut s = String::from("tosca_definitions_version: tosca_simple_yaml_1_3\nmetadata:\n");
    let mut i = 0;
    while s.len() < 20 * 1024 * 1024 {
        s.push_str(&format!("  key_{i}: \"{}\"\n", "x".repeat(100)));
        i += 1;
    }
    s
}

#[test]
fn twenty_mb_text_is_too_large() {
    let found = compile_text(twenty_mb());
    let hit = found.iter().find(|f| f.code == "E0004").unwrap_or_else(|| panic!("expected E0004, got {:?}", codes(&found)));
    assert!(hit.message.contains("<prop>"), "the diagnostic names the entry: {hit:?}");
}

#[test]
fn twenty_mb_file_is_too_large() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, twenty_mb()).expect("write");
    let found = compile_entry(Entry::Path(path));
    let hit = found.iter().find(|f| f.code == "E0004").unwrap_or_else(|| panic!("expected E0004, got {:?}", codes(&found)));
    assert!(hit.message.contains("big.yaml"), "the diagnostic names the file: {hit:?}");
}

#[test]
fn twenty_mb_document_is_too_large_at_the_file_start() {
    let mut sources = Sources::new();
    let text = twenty_mb();
    let file = sources.add("big.yaml", text.clone());
    let d = tosca::yaml::parse(file, &text, &tosca::yaml::Limits::default()).expect_err("too large");
    assert_eq!(d.code, "E0004");
    assert_eq!((d.span.file, d.span.line, d.span.col), (file, 1, 1));
}

/// The entry itself is over the limit, so the loader never reads it; the diagnostic still points
/// at that file (line 1, column 1).
#[test]
fn twenty_mb_entry_diagnostic_is_located() {
    located(&compile_text(twenty_mb()), "E0004");
}

#[test]
fn binary_text_with_nul_bytes_is_not_text() {
    let mut bytes: Vec<u8> = b"tosca_definitions_version: tosca_simple_yaml_1_3\n".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    bytes.extend([0, 0, 0, 0]);
    let hit = located(&compile_text(String::from_utf8_lossy(&bytes).into_owned()), "E0005");
    assert!(hit.span.line >= 2, "points past the first line: {hit:?}");
}

#[test]
fn binary_file_is_not_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Invalid UTF-8 (a PNG header, then noise) on line 3.
    let path = dir.path().join("image.yaml");
    let mut bytes = b"tosca_definitions_version: tosca_simple_yaml_1_3\ndescription: x\n".to_vec();
    bytes.extend([0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe, 0x00, 0x80]);
    std::fs::write(&path, &bytes).expect("write");
    let hit = located(&compile_entry(Entry::Path(path)), "E0005");
    assert_eq!(hit.span.line, 3, "{hit:?}");
    // Pure NUL-laden binary with no UTF-8 problem.
    let path = dir.path().join("zeros.yaml");
    std::fs::write(&path, vec![0u8; 1024]).expect("write");
    located(&compile_entry(Entry::Path(path)), "E0005");
}
