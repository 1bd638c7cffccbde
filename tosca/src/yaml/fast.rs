//! A fast reader for the YAML subset that TOSCA templates are written in, tried before the
//! general parser.
//!
//! Why: on an 8 MB template the general event parser (granit, under serde-saphyr) took ~300 ms
//! of a ~1.2 s `rosca validate` (docs/benchmarks.md); this reader is a single pass over the
//! bytes that builds the same [`Yaml`] tree directly. It covers block mappings and sequences
//! (including sequences at the indentation of their key), single-line plain and quoted scalars,
//! flow sequences and mappings (possibly over several lines), and comments. It produces exactly
//! what the general path produces: same values, core-schema typing, spans (offset, length,
//! line, column in characters) and duplicate-key diagnostics.
//!
//! Anything else (anchors, aliases, tags, block scalars `|` `>`, multi-line plain or quoted
//! scalars, `?` keys, directives, document markers, tabs, CR, BOM, non-printable characters,
//! deep nesting, and every syntax error) makes it give up with [`Bail`]: the caller then parses
//! the whole document with the general parser, which also owns every error message. So this
//! module only has to be right on the inputs it accepts; `tests/yaml_fast.rs` checks that it
//! agrees with the general parser on every fixture and on generated documents.

use super::{duplicate_indexes, remove_duplicates, resolve_plain, Yaml, YamlValue};
use crate::source::{FileId, Span};
use std::sync::Arc;

/// "Not in the subset": parse with the general parser instead.
#[derive(Debug)]
pub(super) struct Bail;

type R<T> = Result<T, Bail>;

/// Implicit keys longer than this are left to the general parser (YAML limits them to 1024).
const MAX_KEY_LEN: usize = 1000;

/// Reads `text` if it is in the subset. On success, returns the tree and the keys that repeat
/// an earlier key of their mapping (already removed from the tree), in the order the general
/// parser reports them.
pub(super) fn parse(file: FileId, text: &str, max_depth: usize) -> R<(Yaml, Vec<Yaml>)> {
    if !plain_text(text.as_bytes()) {
        return Err(Bail);
    }
    let mut r = Reader {
        file,
        text,
        b: text.as_bytes(),
        ascii: text.is_ascii(),
        pos: 0,
        line: 1,
        line_start: 0,
        depth: 0,
        max_depth,
        items: Vec::new(),
        entries: Vec::new(),
        dups: Vec::new(),
    };
    let Some(indent) = r.next_content() else { return Err(Bail) };
    let root = r.block_node(indent, -1)?;
    if r.next_content().is_some() {
        return Err(Bail);
    }
    Ok((root, r.dups))
}

/// True when every character is one the reader handles: printable, no tab, CR, BOM, or the
/// Unicode line breaks the general parser may treat specially.
fn plain_text(b: &[u8]) -> bool {
    let ascii_ok = |c: u8| c == b'\n' || (0x20..0x7f).contains(&c);
    if b.iter().all(|&c| ascii_ok(c)) {
        return true;
    }
    let Ok(s) = std::str::from_utf8(b) else { return false };
    s.chars().all(|c| {
        let u = c as u32;
        if u < 0x80 {
            return ascii_ok(u as u8);
        }
        !((0x80..=0xa0).contains(&u) || matches!(u, 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff))
    })
}

struct Reader<'a> {
    file: FileId,
    text: &'a str,
    b: &'a [u8],
    /// Columns are byte offsets when the whole text is ASCII.
    ascii: bool,
    pos: usize,
    /// 1-based line of `pos`, and where that line starts.
    line: u32,
    line_start: usize,
    /// Collections open around `pos`.
    depth: usize,
    max_depth: usize,
    /// Items and entries of the collections being read, innermost last: each collection is
    /// allocated once, at its end, at its final size.
    items: Vec<Yaml>,
    entries: Vec<(Yaml, Yaml)>,
    dups: Vec<Yaml>,
}

fn is_flow_indicator(c: u8) -> bool {
    matches!(c, b',' | b'[' | b']' | b'{' | b'}')
}

impl Reader<'_> {
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn peek(&self) -> u8 {
        self.at(self.pos)
    }

    /// True when the byte at `i` ends a token: space, newline or end of input.
    fn blank_at(&self, i: usize) -> bool {
        matches!(self.at(i), b' ' | b'\n' | 0)
    }

    /// A span from `start` to `end` on the current line. Columns count characters.
    fn span(&self, start: usize, end: usize) -> Span {
        let col = if self.ascii {
            start - self.line_start + 1
        } else {
            let before = self.b.get(self.line_start..start).unwrap_or(&[]);
            before.iter().filter(|&&c| c & 0xc0 != 0x80).count() + 1
        };
        Span { file: self.file, offset: start as u32, len: (end - start) as u32, line: self.line, col: col as u32 }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.pos += 1;
        }
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
        self.line_start = self.pos;
    }

    /// From anywhere on a line: skips to the first character of the next line with content
    /// (not blank, not only a comment) and returns its indentation; `None` at the end.
    /// Document markers and directives at the start of a line are left to the general parser.
    fn next_content(&mut self) -> Option<usize> {
        loop {
            self.skip_spaces();
            match self.peek() {
                b'\n' => self.newline(),
                b'#' if self.pos == self.line_start || self.at(self.pos - 1) == b' ' => {
                    while !matches!(self.peek(), b'\n' | 0) {
                        self.pos += 1;
                    }
                }
                0 if self.pos >= self.b.len() => return None,
                _ => return Some(self.pos - self.line_start),
            }
        }
    }

    /// After a value: only spaces and a comment may follow on its line.
    fn end_of_line(&mut self) -> R<()> {
        let before = self.pos;
        self.skip_spaces();
        match self.peek() {
            b'\n' | 0 if self.pos >= self.b.len() || self.peek() == b'\n' => Ok(()),
            b'#' if self.pos > before => {
                while !matches!(self.peek(), b'\n' | 0) {
                    self.pos += 1;
                }
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    fn enter(&mut self) -> R<()> {
        if self.depth >= self.max_depth {
            return Err(Bail);
        }
        self.depth += 1;
        Ok(())
    }

    /// A line starting at column 0 with `---` or `...` is a document marker.
    fn at_document_marker(&self) -> bool {
        self.pos == self.line_start
            && (self.b[self.pos..].starts_with(b"---") || self.b[self.pos..].starts_with(b"..."))
            && self.blank_at(self.pos + 3)
    }

    /// The node that starts at the current content position, indented `indent`; `parent` is
    /// the indentation of the enclosing block collection (-1 at the root).
    fn block_node(&mut self, indent: usize, parent: isize) -> R<Yaml> {
        if self.at_document_marker() {
            return Err(Bail);
        }
        if self.peek() == b'-' && self.blank_at(self.pos + 1) {
            return self.block_seq(indent, false);
        }
        let start = self.pos;
        if let Some(key) = self.implicit_key()? {
            return self.block_map(indent, key, start);
        }
        // A scalar or flow collection on its own line (e.g. a mapping value on the next line).
        let y = self.inline_value(parent)?;
        self.end_of_line()?;
        Ok(y)
    }

    /// A block sequence whose dashes are at `indent`; the current position is the first dash.
    ///
    /// `indentless`: the sequence is a mapping value at its key's indentation. The general
    /// parser then locates the sequence after the first dash (and its spaces), not at it.
    fn block_seq(&mut self, indent: usize, indentless: bool) -> R<Yaml> {
        self.enter()?;
        let mut span = self.span(self.pos, self.pos);
        let first = self.items.len();
        loop {
            self.pos += 1; // the dash
            self.skip_spaces();
            if self.peek() == b'#' {
                // After a dash there is always a blank before `#`: a comment.
                while !matches!(self.peek(), b'\n' | 0) {
                    self.pos += 1;
                }
            }
            // The general parser locates an empty entry (and an indentless sequence) where its
            // scanner stops: at the first content, or at the end of the line after any comment.
            if indentless && self.items.len() == first {
                span = self.span(self.pos, self.pos);
            }
            let item = match self.peek() {
                b'\n' | 0 => {
                    let empty = Yaml { value: YamlValue::Null, span: self.span(self.pos, self.pos), raw: Some("~".into()) };
                    match self.next_content() {
                        Some(m) if m > indent => self.block_node(m, indent as isize)?,
                        _ => empty,
                    }
                }
                b'-' if self.blank_at(self.pos + 1) => return Err(Bail),
                _ => {
                    let start = self.pos;
                    let key_indent = start - self.line_start;
                    match self.implicit_key()? {
                        Some(key) => self.block_map(key_indent, key, start)?,
                        None => {
                            let y = self.inline_value(indent as isize)?;
                            self.end_of_line()?;
                            y
                        }
                    }
                }
            };
            self.items.push(item);
            match self.next_content() {
                Some(m) if m == indent && !self.at_document_marker() && self.peek() == b'-' && self.blank_at(self.pos + 1) => continue,
                Some(m) if m > indent => return Err(Bail),
                _ => break,
            }
        }
        self.depth -= 1;
        Ok(Yaml::new(YamlValue::Seq(self.items.drain(first..).collect()), span))
    }

    /// A block mapping at `indent` whose first key (starting at `start`) was just read, with
    /// the position after its `:`.
    fn block_map(&mut self, indent: usize, first_key: Yaml, start: usize) -> R<Yaml> {
        self.enter()?;
        let span = self.span(start, start);
        let first = self.entries.len();
        let mut key = first_key;
        loop {
            // `self.pos` is just after the key's `:`.
            let colon = self.pos - 1;
            let empty = Yaml { value: YamlValue::Null, span: self.span(colon, colon), raw: Some("~".into()) };
            self.skip_spaces();
            let value = match self.peek() {
                b'\n' | b'#' | 0 => {
                    if self.peek() == b'#' && self.at(self.pos - 1) != b' ' {
                        return Err(Bail);
                    }
                    match self.next_content() {
                        Some(m) if m > indent => self.block_node(m, indent as isize)?,
                        Some(m) if m == indent && !self.at_document_marker() && self.peek() == b'-' && self.blank_at(self.pos + 1) => self.block_seq(indent, true)?,
                        _ => empty,
                    }
                }
                _ => {
                    let y = self.inline_value(indent as isize)?;
                    self.end_of_line()?;
                    y
                }
            };
            self.entries.push((key, value));
            self.next_content();
            // Positioned on the next content line (or at the end).
            if self.pos >= self.b.len() {
                break;
            }
            let m = self.pos - self.line_start;
            if m < indent {
                break;
            }
            if m > indent || self.at_document_marker() {
                return Err(Bail);
            }
            key = self.implicit_key()?.ok_or(Bail)?;
        }
        self.depth -= 1;
        Ok(Yaml::new(YamlValue::Map(self.finish_map(first)), span))
    }

    /// The entries of the mapping that starts at `first` in the scratch stack, without the
    /// keys that repeat an earlier one (recorded for diagnostics, as the general parser does).
    fn finish_map(&mut self, first: usize) -> Arc<[(Yaml, Yaml)]> {
        if duplicate_indexes(&self.entries[first..]).is_empty() {
            return self.entries.drain(first..).collect();
        }
        let mut entries: Vec<(Yaml, Yaml)> = self.entries.drain(first..).collect();
        let dups = remove_duplicates(&mut entries);
        self.dups.extend(dups);
        entries.into()
    }

    /// If the current line holds `KEY:` (KEY a single-line plain or quoted scalar, the colon
    /// followed by a blank), reads the key and moves past the colon. `None` (position
    /// unchanged) when the line is not a mapping entry.
    fn implicit_key(&mut self) -> R<Option<Yaml>> {
        let start = self.pos;
        let key = match self.peek() {
            b'\'' | b'"' => {
                let k = self.quoted()?;
                self.skip_spaces();
                k
            }
            c if plain_start(c, self.at(self.pos + 1), false) => {
                // Find the first `: ` on the line; a comment or the end of line first means no key.
                let mut i = self.pos;
                loop {
                    match self.at(i) {
                        b':' if self.blank_at(i + 1) => break,
                        b'#' if self.at(i - 1) == b' ' => return Ok(None),
                        b'\n' | 0 if i >= self.b.len() || self.at(i) == b'\n' => return Ok(None),
                        _ => i += 1,
                    }
                }
                let end = trim_end(self.b, start, i);
                let k = self.plain_scalar(start, end);
                self.pos = i;
                if &self.b[start..end] == b"<<" {
                    // A merge key: the general parser applies merges.
                    return Err(Bail);
                }
                k
            }
            _ => return Ok(None),
        };
        if self.peek() != b':' || !self.blank_at(self.pos + 1) {
            self.pos = start;
            return Ok(None);
        }
        if self.pos - start > MAX_KEY_LEN {
            return Err(Bail);
        }
        self.pos += 1;
        Ok(Some(key))
    }

    /// A value that starts on the current line: a flow collection, a quoted or a plain scalar.
    /// `parent` is the indentation continuation lines of a flow collection must exceed.
    fn inline_value(&mut self, parent: isize) -> R<Yaml> {
        match self.peek() {
            b'[' | b'{' => self.flow(parent),
            b'\'' | b'"' => self.quoted(),
            c if plain_start(c, self.at(self.pos + 1), false) => {
                let start = self.pos;
                let mut i = start;
                loop {
                    match self.at(i) {
                        // `a: b: c` is an error; let the general parser say so.
                        b':' if self.blank_at(i + 1) => return Err(Bail),
                        b'#' if self.at(i - 1) == b' ' => break,
                        b'\n' | 0 if i >= self.b.len() || self.at(i) == b'\n' => break,
                        _ => i += 1,
                    }
                }
                let end = trim_end(self.b, start, i);
                self.pos = end;
                Ok(self.plain_scalar(start, end))
            }
            _ => Err(Bail),
        }
    }

    /// The plain scalar `start..end`, typed by the core schema.
    fn plain_scalar(&self, start: usize, end: usize) -> Yaml {
        let s = &self.text[start..end];
        let span = self.span(start, end);
        match resolve_plain(s) {
            Some(v) => Yaml { value: v, span, raw: Some(s.into()) },
            None => Yaml::new(YamlValue::Str(s.into()), span),
        }
    }

    /// A single- or double-quoted scalar that closes on its line.
    fn quoted(&mut self) -> R<Yaml> {
        let start = self.pos;
        let q = self.peek();
        let mut i = start + 1;
        let mut out = String::new();
        let mut copied = i;
        loop {
            match self.at(i) {
                b'\n' | 0 => return Err(Bail),
                b'\'' if q == b'\'' => {
                    if self.at(i + 1) == b'\'' {
                        out.push_str(&self.text[copied..=i]);
                        i += 2;
                        copied = i;
                        continue;
                    }
                    break;
                }
                b'"' if q == b'"' => break,
                b'\\' if q == b'"' => {
                    out.push_str(&self.text[copied..i]);
                    let (c, len) = self.escape(i + 1).ok_or(Bail)?;
                    out.push(c);
                    i += 1 + len;
                    copied = i;
                }
                _ => i += 1,
            }
        }
        out.push_str(&self.text[copied..i]);
        self.pos = i + 1;
        Ok(Yaml::new(YamlValue::Str(out.into()), self.span(start, self.pos)))
    }

    /// The escape after a backslash at `i`: the character and how many bytes it took.
    fn escape(&self, i: usize) -> Option<(char, usize)> {
        let c = match self.at(i) {
            b'0' => '\0',
            b'a' => '\x07',
            b'b' => '\x08',
            b't' => '\t',
            b'n' => '\n',
            b'v' => '\x0b',
            b'f' => '\x0c',
            b'r' => '\r',
            b'e' => '\x1b',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            b'x' | b'u' | b'U' => {
                let n = match self.at(i) {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = self.text.get(i + 1..i + 1 + n)?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                return Some((char::from_u32(u32::from_str_radix(hex, 16).ok()?)?, 1 + n));
            }
            _ => return None,
        };
        Some((c, 1))
    }

    /// Skips spaces, line breaks and comments inside a flow collection. Lines inside it must be
    /// indented deeper than the block collection around it.
    fn flow_space(&mut self, parent: isize) -> R<()> {
        loop {
            self.skip_spaces();
            match self.peek() {
                b'\n' => {
                    self.newline();
                    self.skip_spaces();
                    if !matches!(self.peek(), b'\n' | b'#' | 0) && (self.pos - self.line_start) as isize <= parent {
                        return Err(Bail);
                    }
                    if self.at_document_marker_after_indent() {
                        return Err(Bail);
                    }
                }
                b'#' if self.pos == self.line_start || self.at(self.pos - 1) == b' ' => {
                    while !matches!(self.peek(), b'\n' | 0) {
                        self.pos += 1;
                    }
                }
                0 if self.pos >= self.b.len() => return Err(Bail),
                _ => return Ok(()),
            }
        }
    }

    fn at_document_marker_after_indent(&self) -> bool {
        let p = self.line_start;
        (self.b[p..].starts_with(b"---") || self.b[p..].starts_with(b"...")) && self.blank_at(p + 3)
    }

    /// A flow sequence or mapping; the current position is its opening bracket.
    fn flow(&mut self, parent: isize) -> R<Yaml> {
        self.enter()?;
        let open = self.peek();
        let span = self.span(self.pos, self.pos + 1);
        self.pos += 1;
        let y = if open == b'[' {
            let first = self.items.len();
            loop {
                self.flow_space(parent)?;
                if self.peek() == b']' {
                    break;
                }
                let item = self.flow_node(parent)?;
                self.items.push(item);
                self.flow_space(parent)?;
                match self.peek() {
                    b',' => self.pos += 1,
                    b']' => break,
                    // `[k: v]` (a single-pair mapping) and anything else.
                    _ => return Err(Bail),
                }
            }
            self.pos += 1;
            Yaml::new(YamlValue::Seq(self.items.drain(first..).collect()), span)
        } else {
            let first = self.entries.len();
            loop {
                self.flow_space(parent)?;
                if self.peek() == b'}' {
                    break;
                }
                if matches!(self.peek(), b'[' | b'{') {
                    return Err(Bail);
                }
                let key = self.flow_node(parent)?;
                if key.raw.is_some() && self.text.get(key.span.offset as usize..(key.span.offset + key.span.len) as usize) == Some("<<") {
                    return Err(Bail);
                }
                let key_line = self.line;
                self.skip_spaces();
                let value = match self.peek() {
                    b':' if self.blank_at(self.pos + 1) => {
                        let colon = self.pos;
                        let empty = Yaml { value: YamlValue::Null, span: self.span(colon, colon), raw: Some("~".into()) };
                        self.pos += 1;
                        self.flow_space(parent)?;
                        match self.peek() {
                            b',' | b'}' => empty,
                            _ => self.flow_node(parent)?,
                        }
                    }
                    // A key without a value: null, located at the next token.
                    b',' | b'}' => {
                        if self.line != key_line {
                            return Err(Bail);
                        }
                        let at = self.pos;
                        Yaml { value: YamlValue::Null, span: self.span(at, at), raw: Some("~".into()) }
                    }
                    _ => return Err(Bail),
                };
                self.entries.push((key, value));
                self.flow_space(parent)?;
                match self.peek() {
                    b',' => self.pos += 1,
                    b'}' => break,
                    _ => return Err(Bail),
                }
            }
            self.pos += 1;
            Yaml::new(YamlValue::Map(self.finish_map(first)), span)
        };
        self.depth -= 1;
        Ok(y)
    }

    /// A node inside a flow collection: a nested collection, a quoted or a plain scalar.
    fn flow_node(&mut self, parent: isize) -> R<Yaml> {
        match self.peek() {
            b'[' | b'{' => self.flow(parent),
            b'\'' | b'"' => self.quoted(),
            c if plain_start(c, self.at(self.pos + 1), true) => {
                let start = self.pos;
                let mut i = start;
                loop {
                    match self.at(i) {
                        b':' if self.blank_at(i + 1) => break,
                        // `a:,` and the like: the general parser decides.
                        b':' if is_flow_indicator(self.at(i + 1)) => return Err(Bail),
                        b'#' if self.at(i - 1) == b' ' => break,
                        c if is_flow_indicator(c) => break,
                        b'\n' | 0 if i >= self.b.len() || self.at(i) == b'\n' => break,
                        _ => i += 1,
                    }
                }
                let end = trim_end(self.b, start, i);
                self.pos = end;
                let y = self.plain_scalar(start, end);
                // A plain scalar continued on the next line is folded: not handled here.
                let save = (self.pos, self.line, self.line_start);
                self.flow_space(parent)?;
                let next = self.peek();
                let continued = self.line != save.1 && !matches!(next, b',' | b']' | b'}');
                (self.pos, self.line, self.line_start) = save;
                if continued {
                    return Err(Bail);
                }
                Ok(y)
            }
            _ => Err(Bail),
        }
    }
}

/// Whether a plain scalar may start with `c` (followed by `next`). Indicators are left to the
/// general parser, except `-` before a non-blank (`-12`, `-x`).
fn plain_start(c: u8, next: u8, flow: bool) -> bool {
    match c {
        b'-' => !(matches!(next, b' ' | b'\n' | 0) || (flow && is_flow_indicator(next))),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' => false,
        b' ' | b'\n' | 0 => false,
        _ => true,
    }
}

/// `end` moved back over trailing spaces, not before `start`.
fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    end
}
