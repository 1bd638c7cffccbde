//! Source files and locations. Every diagnostic points into a [`SourceFile`] through a [`Span`].

use serde::Serialize;
use std::sync::Arc;

/// Index of a file in [`Sources`]. Embedded normative type files get ids too, so spans into them
/// render like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct FileId(pub u32);

/// A located region of a source file: byte offset and length for snippets, 1-based line and
/// column (in characters) for humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub offset: u32,
    pub len: u32,
    pub line: u32,
    pub col: u32,
}

impl Span {
    /// A span that points nowhere (line 0). Used for values synthesized by Rosca itself.
    pub const NONE: Span = Span { file: FileId(u32::MAX), offset: 0, len: 0, line: 0, col: 0 };

    pub fn is_none(&self) -> bool {
        self.line == 0
    }

    /// The whole first line of a file: where file-level problems are reported.
    pub fn file_start(file: FileId) -> Span {
        Span { file, offset: 0, len: 0, line: 1, col: 1 }
    }
}

/// One loaded file: its display name (a path as given, a URL, `<stdin>`, or `<builtin>/...`)
/// and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
}

/// All files read while loading one template, in load order.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile { name: name.into(), text: text.into() });
        FileId((self.files.len() - 1) as u32)
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn name(&self, id: FileId) -> &str {
        self.get(id).map(|f| f.name.as_str()).unwrap_or("<unknown>")
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }

    /// The source text a span covers, if it is a real span into a known file.
    pub fn slice(&self, span: Span) -> Option<&str> {
        let file = self.get(span.file)?;
        let start = span.offset as usize;
        file.text.get(start..start + span.len as usize)
    }
}
