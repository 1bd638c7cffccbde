//! The YAML layer: a small tree of located values, read through serde-saphyr under a budget.
//!
//! Everything above this module sees [`Yaml`] nodes, never serde-saphyr types. Plain (unquoted)
//! scalars that YAML types as numbers, booleans or null keep their source text in `raw`, so that
//! TOSCA can read `version: 1.10` as the version "1.10" (with a warning) instead of the float 1.1.

use crate::diag::{codes, Diagnostic};
use crate::source::{FileId, Span};
use std::sync::Arc;

mod fast;

#[derive(Clone, Debug, PartialEq)]
pub struct Yaml {
    pub value: YamlValue,
    pub span: Span,
    /// Source text of a plain scalar that YAML typed as null, bool, int or float.
    pub raw: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum YamlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(YStr),
    /// Collections are shared, not copied, when a value is cloned: the syntax tree, the
    /// registry and the topology builder keep many values of the document they read.
    Seq(Arc<[Yaml]>),
    /// Entries in document order. Duplicate keys are rejected by the parser.
    Map(Arc<[(Yaml, Yaml)]>),
}

/// The text of a string scalar. Most scalars of a template are short (keys, names, values like
/// `https`): those are stored inline instead of in an allocation of their own each.
#[derive(Clone)]
pub struct YStr(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

const INLINE: usize = 22;

impl YStr {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Always whole UTF-8 text (see `From<&str>`), so this never falls back.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }
}

impl YStr {
    /// The text's bytes, without the UTF-8 check `as_str` makes: enough to compare and hash
    /// (duplicate keys are found by comparing every key of a mapping).
    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(s) => s.as_bytes(),
        }
    }
}

impl From<&str> for YStr {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            YStr(Repr::Inline { len: s.len() as u8, bytes })
        } else {
            YStr(Repr::Heap(s.into()))
        }
    }
}

impl From<String> for YStr {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            YStr::from(s.as_str())
        } else {
            YStr(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl std::ops::Deref for YStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for YStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<str> for YStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl std::fmt::Debug for YStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for YStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Yaml {
    pub fn new(value: YamlValue, span: Span) -> Self {
        Yaml { value, span, raw: None }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            YamlValue::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.value {
            YamlValue::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Yaml]> {
        match &self.value {
            YamlValue::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            YamlValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            YamlValue::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, YamlValue::Null)
    }

    /// Value of `key` in a mapping whose keys are strings.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.as_map()?.iter().find(|(k, _)| matches!(&k.value, YamlValue::Str(s) if s.as_bytes() == key.as_bytes())).map(|(_, v)| v)
    }

    /// Human name of the YAML kind, for messages ("a mapping", "a string", ...).
    pub fn kind_name(&self) -> &'static str {
        self.value.kind_name()
    }

    /// The scalar as text: strings as they are, other plain scalars as written in the source.
    pub fn scalar_text(&self) -> Option<String> {
        if let Some(r) = &self.raw {
            return Some(r.to_string());
        }
        Some(match &self.value {
            YamlValue::Str(s) => s.as_str().to_owned(),
            YamlValue::Null => "null".into(),
            YamlValue::Bool(b) => b.to_string(),
            YamlValue::Int(i) => i.to_string(),
            YamlValue::Float(f) => f.to_string(),
            YamlValue::Seq(_) | YamlValue::Map(_) => return None,
        })
    }

    /// Converts to JSON for output; floats that are not finite become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            YamlValue::Null => J::Null,
            YamlValue::Bool(b) => J::Bool(*b),
            YamlValue::Int(i) => J::from(*i),
            YamlValue::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            YamlValue::Str(s) => J::String(s.as_str().to_owned()),
            YamlValue::Seq(items) => J::Array(items.iter().map(Yaml::to_json).collect()),
            YamlValue::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_else(|| k.to_json().to_string()), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl YamlValue {
    pub fn kind_name(&self) -> &'static str {
        match self {
            YamlValue::Null => "null",
            YamlValue::Bool(_) => "a boolean",
            YamlValue::Int(_) => "an integer",
            YamlValue::Float(_) => "a float",
            YamlValue::Str(_) => "a string",
            YamlValue::Seq(_) => "a list",
            YamlValue::Map(_) => "a mapping",
        }
    }
}

/// Limits applied while reading one file. They bound time and memory on hostile input.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Files above this size are rejected before parsing. Default 16 MiB.
    pub max_file_size: usize,
    /// Maximum nesting of collections. Default 64 (real templates stay under 20).
    pub max_depth: usize,
    /// Maximum alias references in one file. Default 10,000.
    pub max_aliases: usize,
    /// Maximum events replayed through aliases (what makes an alias bomb). Default 100,000.
    pub max_alias_replay: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_file_size: 16 * 1024 * 1024, max_depth: 64, max_aliases: 10_000, max_alias_replay: 100_000 }
    }
}

/// Parses one YAML document. The error is a located diagnostic; an empty document is `Null`.
///
/// Templates in the common block-style subset are read by a fast single-pass reader
/// ([`fast`]); anything else (and every error) goes to the general path, which builds the tree
/// from the events of serde-saphyr's YAML 1.2 parser (granit-parser, which serde-saphyr
/// re-exports), not through serde: going through serde's data model with a span on every value
/// made parsing five times slower on large templates. Both give the same tree. Typing follows
/// the YAML 1.2 core schema; limits bound depth, aliases and what aliases expand to.
pub fn parse(file: FileId, text: &str, limits: &Limits) -> Result<Yaml, Diagnostic> {
    let mut diags = crate::Diagnostics::new();
    match parse_all(file, text, limits, &mut diags) {
        Some(y) if !diags.has_errors() => Ok(y),
        _ => Err(diags.into_sorted().into_iter().find(Diagnostic::is_error).unwrap_or_else(|| {
            Diagnostic::new(&codes::YAML_SYNTAX, Span::file_start(file), "the document could not be read")
        })),
    }
}

/// Like [`parse`], but keeps going past problems it can recover from (duplicate keys: the first
/// value is kept), so that one slip does not hide the rest of the file's diagnostics. `None`
/// when the file cannot be read as YAML at all.
pub fn parse_all(file: FileId, text: &str, limits: &Limits, diags: &mut crate::Diagnostics) -> Option<Yaml> {
    match parse_document(file, text, limits, diags) {
        Ok(y) => Some(y),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn parse_document(file: FileId, text: &str, limits: &Limits, diags: &mut crate::Diagnostics) -> Result<Yaml, Diagnostic> {
    if text.len() > limits.max_file_size {
        return Err(Diagnostic::new(
            &codes::FILE_TOO_LARGE,
            Span::file_start(file),
            format!("file is {} bytes, above the limit of {} bytes", text.len(), limits.max_file_size),
        )
        .help(codes::FILE_TOO_LARGE.help));
    }
    if let Some(pos) = text.find('\0') {
        let line = text[..pos].matches('\n').count() as u32 + 1;
        return Err(Diagnostic::new(
            &codes::NOT_TEXT,
            Span { file, offset: pos as u32, len: 1, line, col: 1 },
            "file contains NUL bytes: this is binary data, not YAML text",
        )
        .help(codes::NOT_TEXT.help));
    }
    if let Ok(y) = parse_fast(file, text, limits, diags) {
        return Ok(y);
    }
    parse_general(file, text, limits, diags)
}

/// The fast path ([`fast`]): `Err` when the text is outside its subset (nothing reported then).
fn parse_fast(file: FileId, text: &str, limits: &Limits, diags: &mut crate::Diagnostics) -> Result<Yaml, fast::Bail> {
    let (y, dups) = fast::parse(file, text, limits.max_depth)?;
    for dup in dups {
        diags.push(duplicate_key(&dup));
    }
    Ok(y)
}

/// The general path: serde-saphyr's event parser, for everything.
fn parse_general(file: FileId, text: &str, limits: &Limits, diags: &mut crate::Diagnostics) -> Result<Yaml, Diagnostic> {
    Builder { file, text, limits, anchors: HashMap::new(), aliases: 0, alias_nodes: 0, diags }.document()
}

/// For tests that compare the two paths (`tests/yaml_fast.rs`): the fast path alone (`None`
/// when it hands over to the general one) and the general path alone, each as [`parse_all`].
#[doc(hidden)]
pub fn parse_all_fast_only(file: FileId, text: &str, limits: &Limits, diags: &mut crate::Diagnostics) -> Option<Yaml> {
    if text.len() > limits.max_file_size || text.contains('\0') {
        return None;
    }
    parse_fast(file, text, limits, diags).ok()
}

#[doc(hidden)]
pub fn parse_all_general_only(file: FileId, text: &str, limits: &Limits, diags: &mut crate::Diagnostics) -> Option<Yaml> {
    if text.len() > limits.max_file_size || text.contains('\0') {
        return parse_all(file, text, limits, diags);
    }
    match parse_general(file, text, limits, diags) {
        Ok(y) => Some(y),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn duplicate_key(dup: &Yaml) -> Diagnostic {
    let name = dup.scalar_text().unwrap_or_default();
    Diagnostic::new(&codes::DUPLICATE_KEY, dup.span, format!("duplicate mapping key `{name}`; its first value is used")).help(codes::DUPLICATE_KEY.help)
}

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span as PSpan, Tag};
use std::collections::{HashMap, HashSet};

/// A collection being built: its span, anchor, and what it holds so far.
enum Frame {
    Seq { span: Span, anchor: usize, items: Vec<Yaml> },
    Map { span: Span, anchor: usize, entries: Vec<(Yaml, Yaml)>, key: Option<Yaml>, merges: Vec<Yaml> },
}

struct Builder<'a> {
    file: FileId,
    text: &'a str,
    limits: &'a Limits,
    /// Anchored nodes with their node counts (what an alias to them costs).
    anchors: HashMap<usize, (Yaml, usize)>,
    aliases: usize,
    alias_nodes: usize,
    /// Recoverable problems (duplicate keys).
    diags: &'a mut crate::Diagnostics,
}

fn count_nodes(y: &Yaml) -> usize {
    match &y.value {
        YamlValue::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        YamlValue::Map(entries) => 1 + entries.iter().map(|(k, v)| count_nodes(k) + count_nodes(v)).sum::<usize>(),
        _ => 1,
    }
}

impl Builder<'_> {
    fn span(&self, s: &PSpan) -> Span {
        let start = s.start.byte_offset().unwrap_or(0).min(self.text.len());
        let end = s.end.byte_offset().unwrap_or(start).clamp(start, self.text.len());
        Span {
            file: self.file,
            offset: start as u32,
            len: (end - start) as u32,
            line: s.start.line().min(u32::MAX as usize) as u32,
            col: (s.start.col() + 1).min(u32::MAX as usize) as u32,
        }
    }

    fn error(&self, code: &'static codes::Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, span, message).help(code.help)
    }

    fn document(&mut self) -> Result<Yaml, Diagnostic> {
        // The parser's own nesting limits sit just above ours, so that deep input gets our
        // located budget error rather than a parser error.
        let mut options = serde_saphyr::granit_parser::Options::default();
        options.flow_nesting_limit = options.flow_nesting_limit.max(self.limits.max_depth + 1);
        options.block_nesting_limit = options.block_nesting_limit.max(self.limits.max_depth + 1);
        let mut parser = Parser::new_from_str_with_options(self.text, options);
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Yaml> = None;
        let mut documents = 0;
        while let Some(item) = parser.next_event() {
            let (event, pspan) = match item {
                Ok(e) => e,
                Err(e) => {
                    let m = e.marker();
                    let offset = m.byte_offset().unwrap_or(0).min(self.text.len());
                    let span = Span { file: self.file, offset: offset as u32, len: 0, line: m.line() as u32, col: m.col() as u32 + 1 };
                    let message = e.to_string();
                    let message = message.split(" at byte ").next().unwrap_or(&message).split(" at line ").next().unwrap_or(&message).to_string();
                    let code = if message.contains("limit exceeded") { &codes::YAML_BUDGET } else { &codes::YAML_SYNTAX };
                    return Err(self.error(code, span, message));
                }
            };
            let span = self.span(&pspan);
            let node = match event {
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Anchor(..) => continue,
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.error(&codes::MULTIPLE_DOCUMENTS, span, "a second YAML document starts here"));
                    }
                    continue;
                }
                Event::UnresolvedAlias(name) => {
                    return Err(self.error(&codes::YAML_SYNTAX, span, format!("alias `*{name}` refers to no anchor defined before it")));
                }
                Event::Alias(id) => {
                    self.aliases += 1;
                    if self.aliases > self.limits.max_aliases {
                        return Err(self.error(&codes::YAML_BUDGET, span, format!("more than {} aliases", self.limits.max_aliases)));
                    }
                    let Some((node, size)) = self.anchors.get(&id) else {
                        return Err(self.error(&codes::YAML_SYNTAX, span, "alias refers to an anchor that is not complete here (an alias inside its own anchor)"));
                    };
                    self.alias_nodes += size;
                    if self.alias_nodes > self.limits.max_alias_replay {
                        return Err(self.error(
                            &codes::YAML_BUDGET,
                            span,
                            format!("aliases expand to more than {} nodes (an alias bomb?)", self.limits.max_alias_replay),
                        ));
                    }
                    node.clone()
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let y = self.scalar(value, style, tag.as_deref(), span)?;
                    if anchor != 0 {
                        self.anchors.insert(anchor, (y.clone(), 1));
                    }
                    y
                }
                Event::SequenceStart(_, anchor, _) => {
                    self.push(&mut stack, Frame::Seq { span, anchor, items: Vec::new() })?;
                    continue;
                }
                Event::MappingStart(_, anchor, _) => {
                    self.push(&mut stack, Frame::Map { span, anchor, entries: Vec::new(), key: None, merges: Vec::new() })?;
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = stack.pop() else { continue };
                    let (y, anchor) = match frame {
                        Frame::Seq { span, anchor, items } => (Yaml::new(YamlValue::Seq(items.into()), span), anchor),
                        Frame::Map { span, anchor, mut entries, merges, .. } => {
                            for dup in remove_duplicates(&mut entries) {
                                self.diags.push(duplicate_key(&dup));
                            }
                            self.merge(&mut entries, merges)?;
                            (Yaml::new(YamlValue::Map(entries.into()), span), anchor)
                        }
                    };
                    if anchor != 0 {
                        let size = count_nodes(&y);
                        self.anchors.insert(anchor, (y.clone(), size));
                    }
                    y
                }
                #[allow(unreachable_patterns)]
                _ => continue,
            };
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map { entries, key, merges, .. }) => match key.take() {
                    None => *key = Some(node),
                    Some(k) => {
                        if self.is_plain_merge(&k) {
                            merges.push(node);
                        } else {
                            entries.push((k, node));
                        }
                    }
                },
            }
        }
        Ok(root.unwrap_or_else(|| Yaml::new(YamlValue::Null, Span::file_start(self.file))))
    }

    /// `<<` written plainly in the source (a quoted "<<" is an ordinary key).
    fn is_plain_merge(&self, k: &Yaml) -> bool {
        self.text.get(k.span.offset as usize..(k.span.offset + k.span.len) as usize) == Some("<<")
    }

    fn push(&self, stack: &mut Vec<Frame>, frame: Frame) -> Result<(), Diagnostic> {
        if stack.len() >= self.limits.max_depth {
            let span = match &frame {
                Frame::Seq { span, .. } | Frame::Map { span, .. } => *span,
            };
            return Err(self.error(&codes::YAML_BUDGET, span, format!("nesting deeper than {} levels", self.limits.max_depth)));
        }
        stack.push(frame);
        Ok(())
    }

    /// YAML merge keys: entries of the merged mappings that the mapping does not set itself.
    fn merge(&mut self, entries: &mut Vec<(Yaml, Yaml)>, merges: Vec<Yaml>) -> Result<(), Diagnostic> {
        if merges.is_empty() {
            return Ok(());
        }
        let mut merged: Vec<(Yaml, Yaml)> = Vec::new();
        for m in merges {
            let sources: Vec<Yaml> = match m.value {
                YamlValue::Map(_) => vec![m],
                YamlValue::Seq(items) => items.to_vec(),
                _ => return Err(self.error(&codes::YAML_SYNTAX, m.span, "a merge key `<<` takes a mapping or a list of mappings")),
            };
            for src in sources {
                let YamlValue::Map(src_entries) = src.value else {
                    return Err(self.error(&codes::YAML_SYNTAX, src.span, "a merge key `<<` takes a mapping or a list of mappings"));
                };
                merged.extend(src_entries.iter().cloned());
            }
        }
        let mut seen: HashSet<KeyRef<'_>> = entries.iter().filter_map(|(k, _)| KeyRef::of(k)).collect();
        let mut add = Vec::new();
        for (k, v) in merged {
            let fresh = KeyRef::of(&k).is_none_or(|id| seen.insert(id.to_owned_key()));
            if fresh {
                add.push((k, v));
            }
        }
        drop(seen);
        entries.extend(add);
        Ok(())
    }

    fn scalar(&self, value: std::borrow::Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>, span: Span) -> Result<Yaml, Diagnostic> {
        let core = tag.filter(|t| t.is_yaml_core_schema()).map(|t| t.suffix().to_string());
        let plain = style == ScalarStyle::Plain;
        let typed = match core.as_deref() {
            Some("str") | Some("binary") => None,
            Some(kind @ ("int" | "float" | "bool" | "null")) => match resolve_plain(&value) {
                Some(v) if v.matches_tag(kind) => Some(v),
                Some(YamlValue::Int(i)) if kind == "float" => Some(YamlValue::Float(i as f64)),
                _ => return Err(self.error(&codes::YAML_SYNTAX, span, format!("`{value}` is not a valid !!{kind}"))),
            },
            // Other tags (local `!foo`, collections) do not change how a scalar reads.
            _ if plain => resolve_plain(&value),
            _ => None,
        };
        Ok(match typed {
            Some(v) => Yaml { value: v, span, raw: Some(value.as_ref().into()) },
            // Escaped or folded scalars arrive owned: no second copy.
            None => Yaml::new(YamlValue::Str(value.into_owned().into()), span),
        })
    }
}

impl YamlValue {
    fn matches_tag(&self, kind: &str) -> bool {
        matches!((self, kind), (YamlValue::Int(_), "int") | (YamlValue::Float(_), "float") | (YamlValue::Bool(_), "bool") | (YamlValue::Null, "null"))
    }
}

/// How a key is compared for duplicates: its kind and value (1 and "1" are different keys).
#[derive(PartialEq, Eq, Hash, Clone)]
enum KeyRef<'a> {
    Str(std::borrow::Cow<'a, [u8]>),
    Int(i64),
    Float(u64),
    Bool(bool),
    Null,
}

impl<'a> KeyRef<'a> {
    fn of(k: &'a Yaml) -> Option<KeyRef<'a>> {
        Some(match &k.value {
            YamlValue::Str(s) => KeyRef::Str(std::borrow::Cow::Borrowed(s.as_bytes())),
            YamlValue::Int(i) => KeyRef::Int(*i),
            YamlValue::Float(f) => KeyRef::Float(f.to_bits()),
            YamlValue::Bool(b) => KeyRef::Bool(*b),
            YamlValue::Null => KeyRef::Null,
            _ => return None,
        })
    }

    /// An owned copy, so the key can outlive the entry it was read from.
    fn to_owned_key(&self) -> KeyRef<'static> {
        match self {
            KeyRef::Str(s) => KeyRef::Str(std::borrow::Cow::Owned(s.to_vec())),
            KeyRef::Int(i) => KeyRef::Int(*i),
            KeyRef::Float(f) => KeyRef::Float(*f),
            KeyRef::Bool(b) => KeyRef::Bool(*b),
            KeyRef::Null => KeyRef::Null,
        }
    }
}

/// Removes entries whose key repeats an earlier one and returns those keys. Small mappings
/// compare pairwise (no allocation); large ones (e.g. 100k node templates) use a set.
fn remove_duplicates(entries: &mut Vec<(Yaml, Yaml)>) -> Vec<Yaml> {
    let dup_at = duplicate_indexes(entries);
    // Remove from the back so earlier indexes stay valid, then report in document order.
    let mut removed: Vec<Yaml> = dup_at.into_iter().rev().map(|i| entries.remove(i).0).collect();
    removed.reverse();
    removed
}

/// Indexes of the entries whose key repeats an earlier one (no allocation when there is none).
fn duplicate_indexes(entries: &[(Yaml, Yaml)]) -> Vec<usize> {
    if entries.len() <= 16 {
        (0..entries.len())
            .filter(|&i| KeyRef::of(&entries[i].0).is_some_and(|id| entries[..i].iter().any(|(p, _)| KeyRef::of(p).as_ref() == Some(&id))))
            .collect()
    } else {
        let mut seen = HashSet::with_capacity(entries.len());
        (0..entries.len()).filter(|&i| KeyRef::of(&entries[i].0).is_some_and(|id| !seen.insert(id))).collect()
    }
}

/// The YAML 1.2 core schema for plain scalars: null, booleans, integers (decimal, 0o, 0x) and
/// floats; anything else is a string (`None`).
fn resolve_plain(s: &str) -> Option<YamlValue> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(YamlValue::Null),
        "true" | "True" | "TRUE" => return Some(YamlValue::Bool(true)),
        "false" | "False" | "FALSE" => return Some(YamlValue::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(YamlValue::Float(f64::INFINITY)),
        "-.inf" | "-.Inf" | "-.INF" => return Some(YamlValue::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(YamlValue::Float(f64::NAN)),
        _ => {}
    }
    let b = s.as_bytes();
    let first = *b.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(YamlValue::Int);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(YamlValue::Int);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        return Some(match s.parse::<i64>() {
            Ok(i) => YamlValue::Int(i),
            // Beyond i64: keep it a number (the raw text stays available).
            Err(_) => YamlValue::Float(s.parse::<f64>().ok()?),
        });
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let (int_part, frac) = match mantissa.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int_part) && all_digits(f) && !(int_part.is_empty() && f.is_empty()),
        None => !int_part.is_empty() && all_digits(int_part),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some()) {
        return s.parse::<f64>().ok().map(YamlValue::Float);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Yaml, Diagnostic> {
        parse(FileId(0), s, &Limits::default())
    }

    #[test]
    fn keeps_spans_and_raw_text_of_plain_numbers() {
        let y = p("a: 1.10\nb: '1.10'\nc: [x, 2]\n").unwrap();
        let a = y.get("a").unwrap();
        assert_eq!(a.value, YamlValue::Float(1.1));
        assert_eq!(a.raw.as_deref(), Some("1.10"));
        assert_eq!((a.span.line, a.span.col), (1, 4));
        let b = y.get("b").unwrap();
        assert_eq!(b.as_str(), Some("1.10"));
        assert_eq!(y.get("c").unwrap().as_seq().unwrap()[1].span.col, 8);
    }

    #[test]
    fn yaml_1_1_booleans_are_strings() {
        assert_eq!(p("a: yes").unwrap().get("a").unwrap().as_str(), Some("yes"));
    }

    #[test]
    fn alias_bomb_is_rejected_with_a_budget_error() {
        let mut s = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 0..9 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            s.push_str(&format!("l{i}: &l{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        let e = p(&s).unwrap_err();
        assert_eq!(e.code, "E0003", "{e:?}");
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let s = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = p(&s).unwrap_err();
        assert!(e.code == "E0003" || e.code == "E0002", "{e:?}");
    }

    #[test]
    fn duplicate_keys_are_located() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((e.code, e.span.line), ("E0006", 3));
    }

    #[test]
    fn core_schema_typing_of_plain_scalars() {
        let y = p("a: 0o17\nb: 0x1F\nc: 1e3\nd: .inf\ne: 1_000\nf: -12\ng: ~\nh: 1.\ni: .5\nj: 1.2.3\nk: 9223372036854775808\n").unwrap();
        let v = |k: &str| y.get(k).unwrap().value.clone();
        assert_eq!(v("a"), YamlValue::Int(15));
        assert_eq!(v("b"), YamlValue::Int(31));
        assert_eq!(v("c"), YamlValue::Float(1000.0));
        assert_eq!(v("d"), YamlValue::Float(f64::INFINITY));
        assert_eq!(v("e"), YamlValue::Str("1_000".into()));
        assert_eq!(v("f"), YamlValue::Int(-12));
        assert_eq!(v("g"), YamlValue::Null);
        assert_eq!(v("h"), YamlValue::Float(1.0));
        assert_eq!(v("i"), YamlValue::Float(0.5));
        assert_eq!(v("j"), YamlValue::Str("1.2.3".into()));
        assert_eq!(y.get("k").unwrap().raw.as_deref(), Some("9223372036854775808"));
    }

    #[test]
    fn tags_and_quoting() {
        let y = p("a: !!str 12\nb: '12'\nc: !custom 12\nd: !!float 3\n").unwrap();
        assert_eq!(y.get("a").unwrap().as_str(), Some("12"));
        assert_eq!(y.get("b").unwrap().as_str(), Some("12"));
        assert_eq!(y.get("c").unwrap().as_i64(), Some(12));
        assert_eq!(y.get("d").unwrap().value, YamlValue::Float(3.0));
        let e = p("a: !!int twelve\n").unwrap_err();
        assert_eq!((e.code, e.span.line, e.span.col), ("E0002", 1, 10));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let y = p("base: &b {cpu: 1, mem: 2}\nvm:\n  <<: *b\n  cpu: 4\nlist: [*b, *b]\n").unwrap();
        let vm = y.get("vm").unwrap();
        assert_eq!(vm.get("cpu").unwrap().as_i64(), Some(4));
        assert_eq!(vm.get("mem").unwrap().as_i64(), Some(2));
        assert_eq!(vm.as_map().unwrap().len(), 2);
        assert_eq!(y.get("list").unwrap().as_seq().unwrap()[1].get("mem").unwrap().as_i64(), Some(2));
        // A quoted "<<" is an ordinary key.
        assert!(p("'<<': 1\n").unwrap().get("<<").is_some());
        assert_eq!(p("a: *nope\n").unwrap_err().code, "E0002");
        assert_eq!(p("a: &x [1, *x]\n").unwrap_err().code, "E0002");
        assert_eq!(p("a:\n  <<: 3\n").unwrap_err().code, "E0002");
    }

    #[test]
    fn duplicates_in_large_mappings_and_across_kinds() {
        let mut s: String = (0..100).map(|i| format!("k{i}: {i}\n")).collect();
        s.push_str("k57: again\n");
        let e = p(&s).unwrap_err();
        assert_eq!((e.code, e.span.line), ("E0006", 101));
        // 1 and "1" are different keys.
        assert!(p("1: a\n'1': b\n").is_ok());
    }

    #[test]
    fn duplicate_keys_are_recoverable_and_the_first_value_wins() {
        let mut d = crate::Diagnostics::new();
        let y = parse_all(FileId(0), "a: 1\nb: 2\na: 3\nb: 4\nc: 5\n", &Limits::default(), &mut d).unwrap();
        let lines: Vec<_> = d.iter().map(|x| (x.code, x.span.line)).collect();
        assert_eq!(lines, vec![("E0006", 3), ("E0006", 4)]);
        assert_eq!(y.get("a").unwrap().as_i64(), Some(1));
        assert_eq!(y.get("b").unwrap().as_i64(), Some(2));
        assert_eq!(y.as_map().unwrap().len(), 3);
    }

    #[test]
    fn second_document_is_rejected() {
        let e = p("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!((e.code, e.span.line), ("E0012", 2));
    }

    #[test]
    fn oversized_and_binary_input() {
        let limits = Limits { max_file_size: 10, ..Limits::default() };
        assert_eq!(parse(FileId(0), "a: 123456789012", &limits).unwrap_err().code, "E0004");
        assert_eq!(p("a: \0").unwrap_err().code, "E0005");
    }
}
