//! The fast YAML reader (`tosca/src/yaml/fast.rs`) must read every document it accepts exactly
//! as the general parser does: same values, typing, raw text, spans and duplicate-key
//! diagnostics. Checked differentially on every YAML file of the repository (fixtures, the
//! normative types), on mutations of them, and on generated documents. Documents it does not
//! accept go to the general parser, so only acceptance can be wrong.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tosca::yaml::{parse_all_fast_only, parse_all_general_only, Limits, Yaml, YamlValue};
use tosca::{Diagnostics, FileId};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["fixtures", "tosca/types", "fuzz/seeds", "docs"] {
        yaml_files(&repo().join(dir), &mut files);
    }
    assert!(files.len() > 300, "found only {} YAML files", files.len());
    files
}

/// The first difference between two trees, as a path and a description.
fn diff(a: &Yaml, b: &Yaml, path: &str) -> Option<String> {
    if a.span != b.span {
        return Some(format!("{path}: span {:?} vs {:?}", a.span, b.span));
    }
    if a.raw != b.raw {
        return Some(format!("{path}: raw {:?} vs {:?}", a.raw, b.raw));
    }
    match (&a.value, &b.value) {
        (YamlValue::Float(x), YamlValue::Float(y)) if x.to_bits() == y.to_bits() => None,
        (YamlValue::Seq(x), YamlValue::Seq(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} items vs {}", x.len(), y.len()));
            }
            x.iter().zip(y.iter()).enumerate().find_map(|(i, (p, q))| diff(p, q, &format!("{path}[{i}]")))
        }
        (YamlValue::Map(x), YamlValue::Map(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} entries vs {}", x.len(), y.len()));
            }
            x.iter().zip(y.iter()).enumerate().find_map(|(i, ((k1, v1), (k2, v2)))| {
                diff(k1, k2, &format!("{path}.<key {i}>")).or_else(|| diff(v1, v2, &format!("{path}.{}", k1.scalar_text().unwrap_or_default())))
            })
        }
        (x, y) if x == y && !matches!(x, YamlValue::Float(_)) => None,
        (x, y) => Some(format!("{path}: {x:?} vs {y:?}")),
    }
}

type Reported = Vec<(&'static str, tosca::Span, String)>;

fn reported(d: Diagnostics) -> Reported {
    d.into_sorted().into_iter().map(|d| (d.code, d.span, d.message)).collect()
}

/// `Ok(true)` when the fast path accepted `text` and agreed; `Ok(false)` when it handed over.
fn agree(text: &str) -> Result<bool, String> {
    let limits = Limits::default();
    let mut fast_diags = Diagnostics::new();
    let Some(fast) = parse_all_fast_only(FileId(0), text, &limits, &mut fast_diags) else {
        if !fast_diags.is_empty() {
            return Err("the fast path reported something and then handed over".into());
        }
        return Ok(false);
    };
    let mut general_diags = Diagnostics::new();
    let general = parse_all_general_only(FileId(0), text, &limits, &mut general_diags);
    let (fast_diags, general_diags) = (reported(fast_diags), reported(general_diags));
    let Some(general) = general else {
        return Err(format!("the general parser rejects it: {general_diags:?}"));
    };
    if let Some(d) = diff(&fast, &general, "$") {
        return Err(format!("trees differ (fast vs general) at {d}"));
    }
    if fast_diags != general_diags {
        return Err(format!("diagnostics differ: {fast_diags:?} vs {general_diags:?}"));
    }
    Ok(true)
}

#[test]
fn every_yaml_file_of_the_repository_reads_the_same() {
    let mut accepted = 0;
    let files = all_files();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        match agree(&text) {
            Ok(a) => accepted += usize::from(a),
            Err(e) => panic!("{}: {e}", f.display()),
        }
    }
    // Most real templates are in the subset; if this drops, the fast path stopped being useful.
    assert!(accepted * 10 >= files.len() * 8, "the fast path accepted only {accepted} of {} files", files.len());
}

#[test]
fn the_normative_types_and_a_generated_topology_take_the_fast_path() {
    for f in ["tosca/types/non_normative.yaml", "fuzz/seeds/generated_12.yaml"] {
        let path = repo().join(f);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(agree(&text), Ok(true), "{f}");
    }
}

/// A small deterministic generator (xorshift), so mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    " ", "  ", "\n", "\n  ", "\n    ", ":", ": ", "- ", "-", "#", " #", "'", "\"", "''", "[", "]", "{", "}", ",", ", ", "~", "null", "1", "-1", "0x1F",
    "1.5", ".inf", "true", "é", "<<", "? ", "&a ", "*a", "!!str ", "|", ">", "---\n", "\\", "\\n", "\\u00e9", "a: b", "{a: 1}", "[1, 2]",
];

/// Deletes a span, inserts a piece, or duplicates a line.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let edits = 1 + rng.below(3);
    for _ in 0..edits {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 => {
                let len = 1 + rng.below(4);
                let end = (at + len).min(chars.len());
                chars.drain(at..end);
            }
            1 | 2 => {
                let piece = PIECES[rng.below(PIECES.len())];
                chars.splice(at..at, piece.chars());
            }
            _ => {
                let start = chars[..at].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
                let end = chars[at..].iter().position(|&c| c == '\n').map_or(chars.len(), |i| at + i + 1);
                let line: Vec<char> = chars[start..end].to_vec();
                chars.splice(start..start, line);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_files_read_the_same_or_hand_over() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    let mut tried = 0;
    for f in all_files() {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        if text.len() > 40_000 {
            continue;
        }
        for _ in 0..12 {
            let m = mutate(&text, &mut rng);
            tried += 1;
            match agree(&m) {
                Ok(a) => accepted += usize::from(a),
                Err(e) => panic!("{} mutated:\n{m}\n--- {e}", f.display()),
            }
        }
    }
    // Mutants are often still valid: the comparison must have exercised the fast path.
    assert!(accepted * 4 >= tried, "only {accepted} of {tried} mutants took the fast path");
}

// ---------- generated documents ----------

#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

const SCALARS: &[&str] = &[
    "a", "hello world", "tosca.nodes.Compute", "1", "-12", "0o17", "0x1F", "1.5", "1e3", ".inf", "-.Inf", ".nan", "1_000", "9223372036854775808", "true",
    "False", "yes", "~", "null", "NULL", "", "2 GB", "10 s", "http://example.com:8080/a", "a:b", "-x", "a#b", "x y  z", "é ü", "日本", "'quoted'",
    "'it''s'", "\"dq\"", "\"a\\tb\\u00e9\\\\\"", "\"\"", "''", "'  padded  '", "\"#not a comment\"", "1.10", "+1", "-", "0.", ".5",
];

const KEYS: &[&str] = &["a", "b", "type", "properties", "node_templates", "1", "true", "'q'", "\"d k\"", "get_input", "é", "x y", "null", "~", "3.5"];

fn scalar() -> impl Strategy<Value = Node> {
    prop::sample::select(SCALARS).prop_map(|s| Node::Scalar(s.to_string()))
}

fn tree() -> impl Strategy<Value = Node> {
    scalar().prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Node::List),
            prop::collection::vec((prop::sample::select(KEYS).prop_map(str::to_string), inner), 0..5).prop_map(Node::Map),
        ]
    })
}

/// Rendering choices, drawn per document.
#[derive(Debug, Clone)]
struct Style {
    indent: usize,
    /// Sequences under a key at the key's indentation.
    indentless: bool,
    /// Collections at this depth and deeper are written in flow style.
    flow_from: usize,
    comments: bool,
    blank_lines: bool,
    /// Spaces after `:` / `-` and around flow punctuation.
    spaces: usize,
}

fn style() -> impl Strategy<Value = Style> {
    (1..4usize, any::<bool>(), 1..6usize, any::<bool>(), any::<bool>(), 1..3usize)
        .prop_map(|(indent, indentless, flow_from, comments, blank_lines, spaces)| Style { indent, indentless, flow_from, comments, blank_lines, spaces })
}

fn flow(node: &Node, s: &Style, out: &mut String) {
    let sp = " ".repeat(s.spaces - 1);
    match node {
        Node::Scalar(v) => out.push_str(v),
        Node::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&sp);
                flow(item, s, out);
            }
            out.push(']');
        }
        Node::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push(' ');
                out.push_str(k);
                out.push(':');
                out.push_str(&" ".repeat(s.spaces));
                flow(v, s, out);
            }
            out.push_str(" }");
        }
    }
}

fn block_inline(node: &Node, depth: usize, s: &Style) -> bool {
    match node {
        Node::Scalar(_) => true,
        Node::List(x) => x.is_empty() || depth >= s.flow_from,
        Node::Map(x) => x.is_empty() || depth >= s.flow_from,
    }
}

/// Block style: `pad` is the indentation of this collection's entries.
fn block(node: &Node, pad: usize, depth: usize, s: &Style, out: &mut String) {
    let line_end = |out: &mut String, n: usize| {
        if s.comments && n.is_multiple_of(3) {
            out.push_str("  # note");
        }
        out.push('\n');
        if s.blank_lines && n % 4 == 1 {
            out.push_str(if n % 8 == 1 { "\n" } else { "   # between\n" });
        }
    };
    match node {
        Node::List(items) => {
            for (n, item) in items.iter().enumerate() {
                out.push_str(&" ".repeat(pad));
                out.push('-');
                if block_inline(item, depth + 1, s) {
                    out.push_str(&" ".repeat(s.spaces));
                    flow(item, s, out);
                    line_end(out, n);
                } else if matches!(item, Node::Map(_)) && n % 2 == 0 {
                    // Compact: the mapping starts on the dash's line.
                    let inner = pad + 1 + s.spaces;
                    out.push_str(&" ".repeat(s.spaces));
                    let mut text = String::new();
                    block(item, inner, depth + 1, s, &mut text);
                    out.push_str(text.trim_start_matches(' '));
                } else {
                    out.push('\n');
                    block(item, pad + s.indent, depth + 1, s, out);
                }
            }
        }
        Node::Map(entries) => {
            for (n, (k, v)) in entries.iter().enumerate() {
                out.push_str(&" ".repeat(pad));
                out.push_str(k);
                out.push(':');
                if block_inline(v, depth + 1, s) {
                    if !matches!(v, Node::Scalar(x) if x.is_empty()) {
                        out.push_str(&" ".repeat(s.spaces));
                        flow(v, s, out);
                    }
                    line_end(out, n);
                } else {
                    out.push('\n');
                    let inner = if s.indentless && matches!(v, Node::List(_)) { pad } else { pad + s.indent };
                    block(v, inner, depth + 1, s, out);
                }
            }
        }
        Node::Scalar(v) => {
            out.push_str(&" ".repeat(pad));
            out.push_str(v);
            out.push('\n');
        }
    }
}

fn document() -> impl Strategy<Value = String> {
    (prop::collection::vec((prop::sample::select(KEYS).prop_map(str::to_string), tree()), 0..6), style(), any::<bool>()).prop_map(|(entries, s, lead)| {
        let mut out = String::new();
        if lead {
            out.push_str("# header\n\n");
        }
        block(&Node::Map(entries), 0, 0, &s, &mut out);
        out
    })
}

/// YAML punctuation and words glued at random (as in `no_panic.rs`).
fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_string),
        3 => prop::sample::select(SCALARS).prop_map(str::to_string),
        6 => prop::sample::select(PIECES).prop_map(str::to_string),
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_read_the_same(text in document()) {
        if let Err(e) = agree(&text) {
            prop_assert!(false, "{}\n--- {}", text, e);
        }
    }

    #[test]
    fn token_soup_reads_the_same_or_hands_over(text in soup()) {
        if let Err(e) = agree(&text) {
            prop_assert!(false, "{}\n--- {}", text, e);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_fast_path(text in any::<String>()) {
        let _ = agree(&text);
    }
}
