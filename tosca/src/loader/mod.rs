//! The IO edge of the crate: reads a service template and everything it imports into memory.
//!
//! Everything after this module works on in-memory [`LoadedDoc`]s and never touches the file
//! system or the network, which is what keeps the rest of the crate deterministic and testable.
//! The loader interprets only what it must to find files (`imports`, `repositories`); all other
//! TOSCA is left to later passes. Errors are collected as diagnostics located at the import that
//! caused them, and loading goes on with the other imports, so one run reports every broken
//! import at once.
//!
//! Call [`load`] from a thread that may block (in async code: `spawn_blocking`); it reads files
//! and may fetch URLs.

mod cache;
mod csar;
mod fetch;
mod imports;
mod location;

pub use cache::entry_dir as cache_entry_dir;
pub use csar::MetaEntry;
pub use fetch::Fetcher;
#[cfg(feature = "fetch")]
pub use fetch::HttpFetcher;

use crate::diag::{codes, Diagnostic, Diagnostics, Severity};
use crate::source::{FileId, Sources, Span};
use crate::yaml::{self, Limits, Yaml};
use imports::ImportDecl;
use location::{Location, Target};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use url::Url;

/// What to load.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A YAML file, a CSAR archive (`.zip`, `.csar`, or anything starting with the zip magic),
    /// or a directory laid out as a CSAR.
    Path(PathBuf),
    /// Text that has no file of its own (stdin, an editor buffer). Relative imports resolve
    /// against the current directory, as a shell user expects from `rosca validate - < x.yaml`.
    Text { name: String, text: String },
}

impl Entry {
    /// Reads stdin-like input with the size limit applied while reading, so `cat huge | rosca`
    /// fails fast instead of buffering everything first.
    pub fn from_reader(name: impl Into<String>, reader: impl Read, limits: &Limits) -> Result<Entry, Diagnostic> {
        let name = name.into();
        let max = limits.max_file_size;
        match cache::read_to_cap(reader, max) {
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Ok(Entry::Text { name, text }),
                Err(e) => Err(Diagnostic::new(
                    &codes::NOT_TEXT,
                    Span::NONE,
                    format!("{name} is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
                )
                .help(codes::NOT_TEXT.help)),
            },
            Ok(None) => Err(Diagnostic::new(
                &codes::FILE_TOO_LARGE,
                Span::NONE,
                format!("{name} is larger than the limit of {max} bytes"),
            )
            .help(codes::FILE_TOO_LARGE.help)),
            Err(e) => {
                Err(Diagnostic::new(&codes::IO, Span::NONE, format!("cannot read {name}: {e}")).help(codes::IO.help))
            }
        }
    }
}

/// How to load. `Default` is online with the default cache and fetcher.
pub struct LoadOptions {
    /// Per-file limits; `max_file_size` also caps zip entries and fetched responses.
    pub limits: Limits,
    /// URL (exact, or a prefix ending in '/') -> local file (or directory, for a prefix). Lets
    /// offline and air-gapped users keep a template's URL imports unchanged.
    pub import_map: Vec<(String, PathBuf)>,
    /// Where fetched imports are cached. `None`: [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// `false` = offline: URL imports resolve only from the import map or the cache.
    pub allow_fetch: bool,
    /// `None`: the HTTPS fetcher ([`HttpFetcher`], cargo feature `fetch`).
    pub fetcher: Option<Box<dyn Fetcher>>,
    /// A CSAR with more entries is rejected before anything is read from it.
    pub max_archive_entries: usize,
    /// A zip CSAR larger than this is rejected (artifacts make CSARs larger than templates).
    pub max_archive_size: u64,
    /// At most this many files are loaded: a hostile server could otherwise generate an
    /// endless chain of distinct URL imports.
    pub max_files: usize,
    /// `false`: imports may not read the local file system (only URLs, through the import
    /// map, the cache or the network). A server set this for templates it receives, which
    /// must not read the server's files.
    pub allow_local_imports: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            limits: Limits::default(),
            import_map: Vec::new(),
            cache_dir: None,
            allow_fetch: true,
            fetcher: None,
            max_archive_entries: 10_000,
            max_archive_size: 1 << 30,
            allow_local_imports: true,
            max_files: 10_000,
        }
    }
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadOptions")
            .field("limits", &self.limits)
            .field("import_map", &self.import_map)
            .field("cache_dir", &self.cache_dir)
            .field("allow_fetch", &self.allow_fetch)
            .field("fetcher", &self.fetcher.as_ref().map(|_| "custom"))
            .field("max_archive_entries", &self.max_archive_entries)
            .field("max_archive_size", &self.max_archive_size)
            .field("max_files", &self.max_files)
            .finish()
    }
}

/// `$ROSCA_CACHE_DIR`, else `$XDG_CACHE_HOME/rosca/imports`, else `~/.cache/rosca/imports`.
/// `None` when none of these is set: then nothing is cached.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("ROSCA_CACHE_DIR") {
        return Some(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("rosca").join("imports"));
    }
    var("HOME").map(|h| h.join(".cache").join("rosca").join("imports"))
}

/// Parses a `--import-map URL=PATH` argument.
pub fn parse_import_map_entry(arg: &str) -> Result<(String, PathBuf), String> {
    // Split at the first '=' after the scheme: URLs may contain '=' in their query, paths rarely.
    let Some((url, path)) = arg.split_once('=') else {
        return Err(format!("`{arg}` is not URL=PATH"));
    };
    if !location::looks_like_url(url) {
        return Err(format!("`{url}` is not a URL (expected e.g. https://host/types.yaml=./types.yaml)"));
    }
    if path.is_empty() {
        return Err(format!("`{arg}` maps the URL to an empty path"));
    }
    Ok((url.to_string(), PathBuf::from(path)))
}

/// Everything read for one template.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every file read, including TOSCA.meta and files that failed to parse, so that every
    /// diagnostic can show its snippet.
    pub sources: Sources,
    /// The root first, then imports depth-first in the order written, each file once.
    pub docs: Vec<LoadedDoc>,
    /// One per import that resolved to a loaded document (also when that document was already
    /// loaded through another import).
    pub edges: Vec<ImportEdge>,
    /// Set when the entry was a CSAR (zip or directory).
    pub csar: Option<CsarInfo>,
}

impl Loaded {
    pub fn doc(&self, file: FileId) -> Option<&LoadedDoc> {
        self.docs.iter().find(|d| d.file == file)
    }
}

#[derive(Clone, Debug)]
pub struct LoadedDoc {
    pub file: FileId,
    pub doc: Yaml,
    /// Canonical path, `canonical-archive!/path/in/zip`, URL, or the name of an [`Entry::Text`].
    /// Stable identity of the file, unlike the display name in `sources`.
    pub location: String,
    /// `tosca_definitions_version` as written, if it is a scalar; checking it is left to later
    /// passes.
    pub version: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImportEdge {
    pub from: FileId,
    pub to: FileId,
    pub namespace_prefix: Option<String>,
    /// The name of a TOSCA 1.0 named import (`- name: path`).
    pub import_name: Option<String>,
    pub namespace_uri: Option<String>,
    pub repository: Option<String>,
    /// The import's `file` value in the importing document.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct CsarInfo {
    pub path: PathBuf,
    /// The root template, relative to the archive root.
    pub entry_definitions: String,
    /// TOSCA.meta entries, empty for a CSAR without one.
    pub meta: Vec<MetaEntry>,
}

/// Loads the entry and its imports. Never fails as a whole: what could be read is returned,
/// and every problem is in `diags`.
pub fn load(entry: &Entry, options: &LoadOptions, diags: &mut Diagnostics) -> Loaded {
    load_into(entry, options, diags, crate::Sources::new())
}

/// Like [`load`], adding files to `sources` that already hold others (e.g. an inputs file).
pub fn load_into(entry: &Entry, options: &LoadOptions, diags: &mut Diagnostics, sources: crate::Sources) -> Loaded {
    let mut loader = Loader {
        opts: options,
        diags,
        out: Loaded { sources, ..Loaded::default() },
        archives: Vec::new(),
        visited: HashMap::new(),
        fetch_failures: HashMap::new(),
        default_fetcher: None,
        cache_dir: options.cache_dir.clone().or_else(default_cache_dir),
    };
    loader.run(entry);
    loader.out
}

/// A resolved file before it is read: enough to detect cycles and repeats.
struct Ident {
    key: String,
    name: String,
    location: Location,
    location_text: String,
}

struct Frame {
    key: String,
    name: String,
    file: FileId,
    location: Location,
    imports: std::vec::IntoIter<ImportDecl>,
    /// The import that led here; the root has none.
    via: Span,
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    diags: &'a mut Diagnostics,
    out: Loaded,
    archives: Vec<csar::Archive>,
    /// Identity key -> the document loaded for it (`None`: read but failed to parse).
    visited: HashMap<String, Option<FileId>>,
    /// A URL that failed once is not fetched again in the same load.
    fetch_failures: HashMap<String, String>,
    default_fetcher: Option<Box<dyn Fetcher>>,
    cache_dir: Option<PathBuf>,
}

impl Loader<'_> {
    fn run(&mut self, entry: &Entry) {
        let Some((ident, bytes)) = self.open_entry(entry) else { return };
        self.visited.insert(ident.key.clone(), None);
        let Some((file, doc)) = self.parse_file(&ident.name, bytes) else { return };
        self.visited.insert(ident.key.clone(), Some(file));
        let mut stack = vec![self.push_doc(ident, file, doc, Span::NONE)];
        // Iterative depth-first walk: a generated chain of thousands of imports must not
        // overflow the call stack.
        while let Some(frame) = stack.last_mut() {
            let Some(decl) = frame.imports.next() else {
                stack.pop();
                continue;
            };
            let from = frame.file;
            let base = frame.location.clone();
            let target = match location::resolve(&base, &decl.reference) {
                Ok(t) => t,
                Err((code, message)) => {
                    self.diags.report(code, decl.span, message);
                    continue;
                }
            };
            let Some(ident) = self.identify(target, decl.span) else { continue };
            if let Some(&state) = self.visited.get(&ident.key) {
                // Only files already seen can close a cycle, so the stack is searched only then.
                if let Some(pos) = stack.iter().position(|f| f.key == ident.key) {
                    self.report_cycle(&stack[pos..], &ident, decl.span);
                } else if let Some(to) = state {
                    self.out.edges.push(edge(from, to, decl));
                }
                continue;
            }
            if self.visited.len() >= self.opts.max_files {
                self.diags.push(
                    Diagnostic::new(
                        &codes::YAML_BUDGET,
                        decl.span,
                        format!("{} not loaded: the template already imports {} files", ident.name, self.opts.max_files),
                    )
                    .help("a template this large is almost certainly an import loop through generated URLs; check the imports"),
                );
                continue;
            }
            let Some(bytes) = self.read(&ident, decl.span) else { continue };
            self.visited.insert(ident.key.clone(), None);
            let Some((to, doc)) = self.parse_file(&ident.name, bytes) else { continue };
            self.visited.insert(ident.key.clone(), Some(to));
            let span = decl.span;
            self.out.edges.push(edge(from, to, decl));
            let frame = self.push_doc(ident, to, doc, span);
            stack.push(frame);
        }
    }

    /// Records a parsed document and prepares the walk over its imports.
    fn push_doc(&mut self, ident: Ident, file: FileId, doc: Yaml, via: Span) -> Frame {
        let imports = imports::import_decls(&doc, self.diags);
        let version = doc
            .get("tosca_definitions_version")
            .filter(|v| v.as_map().is_none() && v.as_seq().is_none())
            .and_then(Yaml::scalar_text);
        self.out.docs.push(LoadedDoc { file, doc, location: ident.location_text, version });
        Frame { key: ident.key, name: ident.name, file, location: ident.location, imports: imports.into_iter(), via }
    }

    fn report_cycle(&mut self, cycle: &[Frame], target: &Ident, at: Span) {
        let mut names: Vec<String> = cycle.iter().map(|f| f.name.clone()).collect();
        names.push(target.name.clone());
        // A cycle through thousands of files would bury the message; its ends say enough.
        if names.len() > 12 {
            let hidden = names.len() - 10;
            names.splice(5..names.len() - 5, [format!("... ({hidden} more) ...")]);
        }
        let mut d = Diagnostic::new(&codes::IMPORT_CYCLE, at, format!("import cycle: {}", names.join(" -> ")))
            .help(codes::IMPORT_CYCLE.help);
        if let Some(next) = cycle.get(1) {
            d = d.related(next.via, format!("{} imports {} here", cycle[0].name, next.name));
        }
        self.diags.push(d);
    }

    /// Adds a file to the sources and parses it. Invalid UTF-8 is still added (lossily) so the
    /// error can point at the line with the bad byte.
    fn parse_file(&mut self, name: &str, bytes: Vec<u8>) -> Option<(FileId, Yaml)> {
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                let line = prefix.matches('\n').count() as u32 + 1;
                let col = prefix.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) as u32 + 1;
                let id = self.out.sources.add(name, String::from_utf8_lossy(&bytes).into_owned());
                let span = Span { file: id, offset: valid as u32, len: 1, line, col };
                self.diags.report(
                    &codes::NOT_TEXT,
                    span,
                    format!("{name} is not UTF-8 text: invalid byte at line {line}, column {col}"),
                );
                return None;
            }
        };
        let id = self.out.sources.add(name, text);
        let text = self.out.sources.get(id)?.text.clone();
        yaml::parse_all(id, &text, &self.opts.limits, self.diags).map(|doc| (id, doc))
    }

    // ---- entry points ----

    fn open_entry(&mut self, entry: &Entry) -> Option<(Ident, Vec<u8>)> {
        match entry {
            Entry::Text { name, text } => {
                let max = self.opts.limits.max_file_size;
                if text.len() > max {
                    self.too_large(Span::NONE, &name.clone(), text.len() as u64);
                    return None;
                }
                let ident = Ident {
                    key: format!("<text>{name}"),
                    name: name.clone(),
                    location: Location::Text,
                    location_text: name.clone(),
                };
                Some((ident, text.clone().into_bytes()))
            }
            Entry::Path(path) => {
                let meta = match std::fs::metadata(path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.diags.report(&codes::IO, Span::NONE, format!("cannot read {}: {e}", path.display()));
                        return None;
                    }
                };
                let ident = if meta.is_dir() {
                    self.open_dir_csar(path)?
                } else if csar::is_archive_name(path) || csar::has_zip_magic(path) {
                    self.open_zip_csar(path)?
                } else {
                    self.identify(Target::Local(path.clone()), Span::NONE)?
                };
                let bytes = self.read(&ident, Span::NONE)?;
                Some((ident, bytes))
            }
        }
    }

    fn csar_error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.report(&codes::CSAR, span, message);
    }

    fn open_zip_csar(&mut self, path: &Path) -> Option<Ident> {
        let archive = match csar::Archive::open(path, self.opts.max_archive_entries, self.opts.max_archive_size) {
            Ok(a) => a,
            Err(message) => {
                self.csar_error(Span::NONE, message);
                return None;
            }
        };
        self.archives.push(archive);
        let index = self.archives.len() - 1;
        let root = if self.archives[index].contains(csar::META_PATH) {
            let name = self.archives[index].name_of(csar::META_PATH);
            let max = self.opts.limits.max_file_size;
            let bytes = match self.archives[index].read(csar::META_PATH, max) {
                Ok(b) => b,
                Err(e) => {
                    self.csar_error(Span::NONE, format!("cannot read {name}: {}", entry_error_text(&e, max)));
                    return None;
                }
            };
            let (entry_definitions, meta, meta_file) = self.read_meta(&name, bytes)?;
            let Some(root) = location::normalize_archive_path(&entry_definitions.value).filter(|p| !p.is_empty())
            else {
                let span = self.meta_line_span(meta_file, entry_definitions.line);
                self.csar_error(
                    span,
                    format!("Entry-Definitions `{}` points outside the archive", entry_definitions.value),
                );
                return None;
            };
            if !self.archives[index].contains(&root) {
                let span = self.meta_line_span(meta_file, entry_definitions.line);
                let archive = self.archives[index].display.clone();
                self.csar_error(span, format!("Entry-Definitions names `{root}`, which is not in {archive}"));
                return None;
            }
            self.out.csar = Some(CsarInfo { path: path.to_path_buf(), entry_definitions: root.clone(), meta });
            root
        } else {
            let candidates = self.archives[index].root_yaml_files();
            let archive = self.archives[index].display.clone();
            let root = self.single_root(&archive, candidates)?;
            self.out.csar =
                Some(CsarInfo { path: path.to_path_buf(), entry_definitions: root.clone(), meta: Vec::new() });
            root
        };
        let archive = &self.archives[index];
        Some(Ident {
            key: archive.location_of(&root),
            name: archive.name_of(&root),
            location_text: archive.location_of(&root),
            location: Location::Archive { archive: index, path: root },
        })
    }

    fn open_dir_csar(&mut self, dir: &Path) -> Option<Ident> {
        let meta_path = dir.join(csar::META_PATH);
        let root = if meta_path.is_file() {
            let name = meta_path.display().to_string();
            let bytes = match cache::read_capped(&meta_path, self.opts.limits.max_file_size) {
                Ok(Ok(b)) => b,
                Ok(Err(size)) => {
                    self.too_large(Span::NONE, &name.clone(), size);
                    return None;
                }
                Err(e) => {
                    self.diags.report(&codes::IO, Span::NONE, format!("cannot read {name}: {e}"));
                    return None;
                }
            };
            let (entry_definitions, meta, meta_file) = self.read_meta(&name, bytes)?;
            let value = &entry_definitions.value;
            let normalized = location::normalize_archive_path(value)
                .filter(|p| !p.is_empty() && !location::is_unsafe_entry_name(value));
            let Some(rel) = normalized else {
                let span = self.meta_line_span(meta_file, entry_definitions.line);
                self.csar_error(span, format!("Entry-Definitions `{value}` points outside the CSAR directory"));
                return None;
            };
            if !dir.join(&rel).is_file() {
                let span = self.meta_line_span(meta_file, entry_definitions.line);
                self.csar_error(
                    span,
                    format!("Entry-Definitions names `{rel}`, which is not a file in {}", dir.display()),
                );
                return None;
            }
            self.out.csar = Some(CsarInfo { path: dir.to_path_buf(), entry_definitions: rel.clone(), meta });
            rel
        } else {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    self.diags.report(&codes::IO, Span::NONE, format!("cannot list {}: {e}", dir.display()));
                    return None;
                }
            };
            let mut candidates: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| csar::is_yaml_name(n))
                .collect();
            candidates.sort();
            let root = self.single_root(&dir.display().to_string(), candidates)?;
            self.out.csar =
                Some(CsarInfo { path: dir.to_path_buf(), entry_definitions: root.clone(), meta: Vec::new() });
            root
        };
        self.identify(Target::Local(dir.join(root)), Span::NONE)
    }

    /// A CSAR without TOSCA.meta must have exactly one YAML file at its root; guessing among
    /// several would silently deploy the wrong template.
    fn single_root(&mut self, archive: &str, mut candidates: Vec<String>) -> Option<String> {
        match candidates.len() {
            1 => candidates.pop(),
            0 => {
                self.csar_error(
                    Span::NONE,
                    format!("{archive} has no {} and no YAML file at its root", csar::META_PATH),
                );
                None
            }
            n => {
                self.csar_error(
                    Span::NONE,
                    format!(
                        "{archive} has no {} and {n} YAML files at its root ({}); add TOSCA.meta with Entry-Definitions naming the root template",
                        csar::META_PATH,
                        candidates.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// Adds TOSCA.meta to the sources (so errors show the line) and returns its
    /// Entry-Definitions line, all entries, and its file id.
    fn read_meta(&mut self, name: &str, bytes: Vec<u8>) -> Option<(MetaEntry, Vec<MetaEntry>, FileId)> {
        let Ok(text) = String::from_utf8(bytes) else {
            self.csar_error(Span::NONE, format!("{name} is not UTF-8 text"));
            return None;
        };
        let file = self.out.sources.add(name, text);
        let text = self.out.sources.get(file)?.text.clone();
        let entries = match csar::parse_meta(&text) {
            Ok(e) => e,
            Err((line, message)) => {
                let span = line_span(file, &text, line);
                self.csar_error(span, format!("{name}: {message}"));
                return None;
            }
        };
        // Keys are matched case-insensitively: hand-written TOSCA.meta files vary in case, and
        // there is no other key they could be confused with.
        let Some(entry) = entries.iter().find(|e| e.key.eq_ignore_ascii_case("Entry-Definitions")).cloned() else {
            let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
            let found = if keys.is_empty() { "it is empty".to_string() } else { format!("found: {}", keys.join(", ")) };
            self.csar_error(Span::file_start(file), format!("{name} has no Entry-Definitions ({found})"));
            return None;
        };
        if entry.value.is_empty() {
            let span = line_span(file, &text, entry.line);
            self.csar_error(span, format!("{name}: Entry-Definitions is empty"));
            return None;
        }
        Some((entry, entries, file))
    }

    fn meta_line_span(&self, file: FileId, line: u32) -> Span {
        match self.out.sources.get(file) {
            Some(f) => line_span(file, &f.text, line),
            None => Span::NONE,
        }
    }

    // ---- resolving and reading ----

    /// Turns a target into an identity, checking existence where that is cheap (local files,
    /// archive entries). URL targets are checked when read.
    fn identify(&mut self, target: Target, at: Span) -> Option<Ident> {
        match target {
            Target::Local(path) => {
                let name = location::normalize_path(&path).display().to_string();
                match path.canonicalize() {
                    Ok(canonical) => {
                        let key = canonical.display().to_string();
                        Some(Ident { key: key.clone(), name, location: Location::Local { path }, location_text: key })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !at.is_none() => {
                        self.diags.report(&codes::IMPORT_NOT_FOUND, at, format!("imported file {name} does not exist"));
                        None
                    }
                    Err(e) => {
                        self.diags.report(&codes::IO, at, format!("cannot read {name}: {e}"));
                        None
                    }
                }
            }
            Target::Archive { archive, path } => {
                let a = self.archives.get(archive)?;
                if !a.contains(&path) {
                    let message = format!("{path} is not in the archive {}", a.display);
                    self.diags.report(&codes::IMPORT_NOT_FOUND, at, message);
                    return None;
                }
                Some(Ident {
                    key: a.location_of(&path),
                    name: a.name_of(&path),
                    location_text: a.location_of(&path),
                    location: Location::Archive { archive, path },
                })
            }
            Target::Url(url) => {
                let s = url.to_string();
                Some(Ident { key: s.clone(), name: s.clone(), location_text: s, location: Location::Url(url) })
            }
        }
    }

    fn read(&mut self, ident: &Ident, at: Span) -> Option<Vec<u8>> {
        let max = self.opts.limits.max_file_size;
        match &ident.location {
            Location::Local { path } => self.read_local(path, &ident.name, at),
            Location::Archive { archive, path } => {
                let result = self.archives.get_mut(*archive)?.read(path, max);
                match result {
                    Ok(b) => Some(b),
                    Err(csar::EntryError::TooLarge(size)) => {
                        self.too_large(at, &ident.name, size);
                        None
                    }
                    Err(e) => {
                        let code = if matches!(e, csar::EntryError::NotFound) {
                            &codes::IMPORT_NOT_FOUND
                        } else {
                            &codes::CSAR
                        };
                        self.diags.report(
                            code,
                            at,
                            format!("cannot read {}: {}", ident.name, entry_error_text(&e, max)),
                        );
                        None
                    }
                }
            }
            Location::Url(url) => self.read_url(url, at),
            Location::Text => None,
        }
    }

    fn read_local(&mut self, path: &Path, name: &str, at: Span) -> Option<Vec<u8>> {
        if !self.opts.allow_local_imports && !at.is_none() {
            self.diags.report(&codes::IMPORT_NOT_FOUND, at, format!("cannot import {name}: local files cannot be imported here; import a URL instead"));
            return None;
        }
        match cache::read_capped(path, self.opts.limits.max_file_size) {
            Ok(Ok(b)) => Some(b),
            Ok(Err(size)) => {
                self.too_large(at, name, size);
                None
            }
            Err(e) => {
                self.diags.report(&codes::IO, at, format!("cannot read {name}: {e}"));
                None
            }
        }
    }

    /// Problems with the root file itself have no import to point at: they point at the file
    /// (registered without its text, which was not read), so every diagnostic names a file.
    fn located(&mut self, at: Span, name: &str) -> Span {
        if at.is_none() {
            Span::file_start(self.out.sources.add(name, ""))
        } else {
            at
        }
    }

    /// `size` is exact when known from metadata, or `max + 1` when only a capped read found out.
    fn too_large(&mut self, at: Span, name: &str, size: u64) {
        let at = self.located(at, name);
        let max = self.opts.limits.max_file_size;
        let message = if size > max as u64 + 1 {
            format!("{name} is {size} bytes, above the limit of {max} bytes")
        } else {
            format!("{name} is larger than the limit of {max} bytes")
        };
        self.diags.report(&codes::FILE_TOO_LARGE, at, message);
    }

    /// Import map, then cache, then network: a mapping is the user's explicit choice, the cache
    /// avoids the network, and fetching is the last resort.
    fn read_url(&mut self, url: &Url, at: Span) -> Option<Vec<u8>> {
        let s = url.as_str();
        if let Some(path) = self.map_lookup(url) {
            let name = format!("{s} (mapped to {})", path.display());
            return match cache::read_capped(&path, self.opts.limits.max_file_size) {
                Ok(Ok(b)) => Some(b),
                Ok(Err(size)) => {
                    self.too_large(at, &name, size);
                    None
                }
                Err(e) => {
                    self.diags.report(
                        &codes::IMPORT_NOT_FOUND,
                        at,
                        format!("{s} is mapped to {}, which cannot be read: {e}", path.display()),
                    );
                    None
                }
            };
        }
        if location::is_insecure_remote(url) {
            self.diags.push(
                Diagnostic::new(
                    &codes::IMPORT_FETCH,
                    at,
                    format!("{s} uses plain http://; URL imports are fetched only over https://"),
                )
                .help("change the import to https://, or map the URL to a local file with --import-map URL=PATH"),
            );
            return None;
        }
        let max = self.opts.limits.max_file_size;
        let mut ignored = None;
        if let Some(dir) = &self.cache_dir {
            match cache::lookup(dir, s, max) {
                cache::Lookup::Hit(b) => return Some(b),
                cache::Lookup::Miss => {}
                cache::Lookup::Invalid(why) => ignored = Some(why),
            }
        }
        if !self.opts.allow_fetch {
            let note = match ignored {
                Some(why) => format!(" (its cache entry was ignored: {why})"),
                None => String::new(),
            };
            self.diags.push(
                Diagnostic::new(
                    &codes::IMPORT_OFFLINE,
                    at,
                    format!("{s} is not available offline: it is neither in the import map nor in the cache{note}"),
                )
                .help(format!(
                    "map it to a local copy with --import-map {s}=PATH (or map a prefix ending in '/' to a directory), or run once online to fill the cache"
                )),
            );
            return None;
        }
        if let Some(reason) = self.fetch_failures.get(s) {
            let message = format!("cannot fetch {s}: {reason}");
            self.diags.report(&codes::IMPORT_FETCH, at, message);
            return None;
        }
        let result = match self.fetcher() {
            Some(f) => f.fetch(s),
            None => Err("this build of rosca cannot fetch URLs (built without the `fetch` feature)".to_string()),
        };
        let bytes = match result {
            Ok(b) if b.len() > max => Err(format!("the response is {} bytes, above the limit of {max} bytes", b.len())),
            other => other,
        };
        match bytes {
            Ok(b) => {
                if let Some(dir) = &self.cache_dir {
                    if let Err(e) = cache::store(dir, s, &b) {
                        // The import itself worked; only later offline runs are affected.
                        let mut d = Diagnostic::new(
                            &codes::IO,
                            at,
                            format!("{s} was fetched but could not be cached in {}: {e}", dir.display()),
                        )
                        .help("check that the cache directory is writable, or set ROSCA_CACHE_DIR");
                        d.severity = Severity::Warning;
                        self.diags.push(d);
                    }
                }
                Some(b)
            }
            Err(reason) => {
                self.diags.report(&codes::IMPORT_FETCH, at, format!("cannot fetch {s}: {reason}"));
                self.fetch_failures.insert(s.to_string(), reason);
                None
            }
        }
    }

    fn fetcher(&mut self) -> Option<&dyn Fetcher> {
        if let Some(f) = &self.opts.fetcher {
            return Some(f.as_ref());
        }
        #[cfg(feature = "fetch")]
        if self.default_fetcher.is_none() {
            self.default_fetcher = Some(Box::new(HttpFetcher::new(self.opts.limits.max_file_size)));
        }
        self.default_fetcher.as_deref()
    }

    /// Exact entries win over prefixes; among prefixes the longest wins, so a specific mapping
    /// can override a general one.
    fn map_lookup(&self, url: &Url) -> Option<PathBuf> {
        let s = url.as_str();
        let keys: Vec<(String, &PathBuf)> =
            self.opts.import_map.iter().map(|(k, p)| (normalize_map_key(k), p)).collect();
        if let Some((_, p)) = keys.iter().find(|(k, _)| k == s) {
            return Some((*p).clone());
        }
        let (key, dir) =
            keys.iter().filter(|(k, _)| k.ends_with('/') && s.starts_with(k.as_str())).max_by_key(|(k, _)| k.len())?;
        let rest = &s[key.len()..];
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let mut path = (*dir).clone();
        for seg in rest.split('/') {
            let seg = percent_decode(seg)?;
            match seg.as_str() {
                "" | "." => {}
                ".." => return None,
                s if s.contains(['/', '\\', '\0']) => return None,
                s => path.push(s),
            }
        }
        Some(path)
    }
}

fn edge(from: FileId, to: FileId, decl: ImportDecl) -> ImportEdge {
    ImportEdge {
        from,
        to,
        namespace_prefix: decl.namespace_prefix,
        import_name: decl.name,
        namespace_uri: decl.namespace_uri,
        repository: decl.repository,
        span: decl.span,
    }
}

fn entry_error_text(e: &csar::EntryError, max: usize) -> String {
    match e {
        csar::EntryError::NotFound => "no such entry in the archive".into(),
        csar::EntryError::TooLarge(size) => format!("the entry is {size} bytes, above the limit of {max} bytes"),
        csar::EntryError::Other(m) => m.clone(),
    }
}

/// Map keys are compared in the URL's normalized form, so `https://Host/x` matches
/// `https://host/x` as the import would be written after URL parsing.
fn normalize_map_key(key: &str) -> String {
    match Url::parse(key) {
        Ok(mut u) => {
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => key.to_string(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The span of a whole 1-based line, for files (TOSCA.meta) that are not parsed as YAML.
fn line_span(file: FileId, text: &str, line: u32) -> Span {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u32 + 1 == line {
            let len = l.trim_end_matches(['\n', '\r']).len();
            return Span { file, offset: offset as u32, len: len as u32, line, col: 1 };
        }
        offset += l.len();
    }
    Span::file_start(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_map_argument() {
        assert_eq!(
            parse_import_map_entry("https://h/x.yaml=./x.yaml").unwrap(),
            ("https://h/x.yaml".to_string(), PathBuf::from("./x.yaml"))
        );
        assert!(parse_import_map_entry("x.yaml").is_err());
        assert!(parse_import_map_entry("h/x=y").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("my%20types.yaml").as_deref(), Some("my types.yaml"));
        assert_eq!(percent_decode("%2e%2e").as_deref(), Some(".."));
        assert_eq!(percent_decode("%").as_deref(), Some("%"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn line_spans() {
        let s = line_span(FileId(3), "a: 1\r\nb: 2\n", 2);
        assert_eq!((s.offset, s.len, s.line), (6, 4, 2));
    }
}
