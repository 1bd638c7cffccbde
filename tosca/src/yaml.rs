//! The YAML layer: a small tree of located values, read through serde-saphyr under a budget.
//!
//! Everything above this module sees [`Yaml`] nodes, never serde-saphyr types. Plain (unquoted)
//! scalars that YAML types as numbers, booleans or null keep their source text in `raw`, so that
//! TOSCA can read `version: 1.10` as the version "1.10" (with a warning) instead of the float 1.1.

use crate::diag::{codes, Diagnostic};
use crate::source::{FileId, Span};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

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
    Str(String),
    Seq(Vec<Yaml>),
    /// Entries in document order. Duplicate keys are rejected by the parser.
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    pub fn new(value: YamlValue, span: Span) -> Self {
        Yaml { value, span, raw: None }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            YamlValue::Str(s) => Some(s),
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
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// Human name of the YAML kind, for messages ("a mapping", "a string", ...).
    pub fn kind_name(&self) -> &'static str {
        self.value.kind_name()
    }

    /// The scalar as text: strings as they are, other plain scalars as written in the source.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            YamlValue::Str(s) => Some(s.clone()),
            YamlValue::Seq(_) | YamlValue::Map(_) => None,
            other => Some(match &self.raw {
                Some(r) => r.to_string(),
                None => match other {
                    YamlValue::Null => "null".into(),
                    YamlValue::Bool(b) => b.to_string(),
                    YamlValue::Int(i) => i.to_string(),
                    YamlValue::Float(f) => f.to_string(),
                    _ => unreachable_text(),
                },
            }),
        }
    }

    /// Converts to JSON for output; floats that are not finite become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            YamlValue::Null => J::Null,
            YamlValue::Bool(b) => J::Bool(*b),
            YamlValue::Int(i) => J::from(*i),
            YamlValue::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            YamlValue::Str(s) => J::String(s.clone()),
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

fn unreachable_text() -> String {
    String::new()
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

thread_local! {
    static CURRENT_FILE: Cell<FileId> = const { Cell::new(FileId(0)) };
    static CURRENT_SOURCE: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// Parses one YAML document. The error is a located diagnostic; an empty document is `Null`.
pub fn parse(file: FileId, text: &str, limits: &Limits) -> Result<Yaml, Diagnostic> {
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
    // Budgets scale with the size limit: a genuine 100k-node template is ~50 MB of events,
    // while an alias bomb stays small on disk and is stopped by the alias limits.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(limits.max_file_size);
    budget.max_depth = limits.max_depth;
    budget.max_events = limits.max_file_size.max(1_000_000);
    budget.max_nodes = limits.max_file_size.max(250_000);
    budget.max_total_scalar_bytes = limits.max_file_size;
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_aliases;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.strict_booleans = true;
    options.alias_limits.max_total_replayed_events = limits.max_alias_replay;
    options.alias_limits.max_replay_stack_depth = limits.max_depth;
    options.with_snippet = false;

    CURRENT_FILE.with(|c| c.set(file));
    CURRENT_SOURCE.with(|c| c.set((text.as_ptr(), text.len())));
    let result = serde_saphyr::from_str_with_options::<Option<Yaml>>(text, options);
    CURRENT_SOURCE.with(|c| c.set((std::ptr::null(), 0)));
    match result {
        Ok(Some(y)) => Ok(y),
        Ok(None) => Ok(Yaml::new(YamlValue::Null, Span::file_start(file))),
        Err(e) => Err(convert_error(file, text, &e)),
    }
}

fn convert_error(file: FileId, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let span = e.location().map(|l| location_span(file, text, &l)).unwrap_or(Span::file_start(file));
    let message = e.without_snippet().to_string();
    let message = message.lines().next().unwrap_or("").to_string();
    // Strip serde-saphyr's own "line N column M:" prefix: we print the location ourselves.
    let message = match message.find(": ") {
        Some(i) if message.starts_with("line ") => message[i + 2..].to_string(),
        _ => message,
    };
    let (code, help) = match e {
        _ if message.contains("Documents {") => (&codes::MULTIPLE_DOCUMENTS, codes::MULTIPLE_DOCUMENTS.help),
        serde_saphyr::Error::Budget { .. }
        | serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
        | serde_saphyr::Error::AliasReplayCounterOverflow { .. } => (&codes::YAML_BUDGET, codes::YAML_BUDGET.help),
        serde_saphyr::Error::DuplicateMappingKey { .. } => (&codes::DUPLICATE_KEY, codes::DUPLICATE_KEY.help),
        serde_saphyr::Error::MultipleDocuments { .. } => (&codes::MULTIPLE_DOCUMENTS, codes::MULTIPLE_DOCUMENTS.help),
        serde_saphyr::Error::InvalidUtf8Input => (&codes::NOT_TEXT, codes::NOT_TEXT.help),
        _ if message.contains("budget") || message.contains("limit exceeded") || message.contains("depth") => (&codes::YAML_BUDGET, codes::YAML_BUDGET.help),
        _ => (&codes::YAML_SYNTAX, codes::YAML_SYNTAX.help),
    };
    Diagnostic::new(code, span, message).help(help)
}

fn location_span(file: FileId, text: &str, l: &serde_saphyr::Location) -> Span {
    let s = l.span();
    let offset = s.byte_offset().unwrap_or(0).min(text.len() as u64) as u32;
    let len = s.byte_len().unwrap_or(0).min((text.len() as u64).saturating_sub(offset as u64)) as u32;
    Span { file, offset, len, line: l.line().min(u32::MAX as u64) as u32, col: l.column().min(u32::MAX as u64) as u32 }
}

/// The untyped value a serde-saphyr node turns into, before it is given its span.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Raw, E> {
        Ok(i64::try_from(u).map(Raw::Int).unwrap_or(Raw::Float(u as f64)))
    }
    fn visit_i128<E>(self, i: i128) -> Result<Raw, E> {
        Ok(i64::try_from(i).map(Raw::Int).unwrap_or(Raw::Float(i as f64)))
    }
    fn visit_u128<E>(self, u: u128) -> Result<Raw, E> {
        Ok(i64::try_from(u).map(Raw::Int).unwrap_or(Raw::Float(u as f64)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Raw, E> {
        Ok(Raw::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Str(s))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Raw, E> {
        String::from_utf8(b.to_vec()).map(Raw::Str).map_err(|_| E::custom("binary value is not UTF-8 text"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Yaml>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(entry) = map.next_entry::<Yaml, Yaml>()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Yaml, D::Error> {
        let spanned = serde_saphyr::Spanned::<Raw>::deserialize(d)?;
        let file = CURRENT_FILE.with(|c| c.get());
        let (ptr, len) = CURRENT_SOURCE.with(|c| c.get());
        // SAFETY: CURRENT_SOURCE is set by `parse` to the text being parsed for exactly the
        // duration of the parse call on this thread, and cleared afterwards.
        let text: &str = if ptr.is_null() { "" } else { unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) } };
        let span = location_span(file, text, &spanned.referenced);
        let source = text.get(span.offset as usize..(span.offset + span.len) as usize).unwrap_or("");
        let keep_raw = !source.is_empty() && !source.starts_with(['"', '\'', '*', '!', '|', '>']);
        let (value, raw) = match spanned.value {
            Raw::Null => (YamlValue::Null, keep_raw.then(|| source.into())),
            Raw::Bool(b) => (YamlValue::Bool(b), keep_raw.then(|| source.into())),
            Raw::Int(i) => (YamlValue::Int(i), keep_raw.then(|| source.into())),
            Raw::Float(f) => (YamlValue::Float(f), keep_raw.then(|| source.into())),
            Raw::Str(s) => (YamlValue::Str(s), None),
            Raw::Seq(s) => (YamlValue::Seq(s), None),
            Raw::Map(m) => (YamlValue::Map(m), None),
        };
        Ok(Yaml { value, span, raw })
    }
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
    fn oversized_and_binary_input() {
        let limits = Limits { max_file_size: 10, ..Limits::default() };
        assert_eq!(parse(FileId(0), "a: 123456789012", &limits).unwrap_err().code, "E0004");
        assert_eq!(p("a: \0").unwrap_err().code, "E0005");
    }
}
