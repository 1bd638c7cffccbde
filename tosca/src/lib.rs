//! The TOSCA front-end of Rosca: reads service templates (YAML files, CSARs, stdin), resolves
//! imports and types, checks everything, and produces a normalized [`Topology`] plus diagnostics.
//!
//! The core (everything but [`loader`]) does no IO and never panics on any input.
//!
//! ```text
//! loader (IO) -> yaml -> syntax (grammar) -> types (registry) -> topology (values, requirements,
//! functions) -> Topology
//! ```

pub mod diag;
pub mod function;
pub mod loader;
pub mod source;
pub mod syntax;
pub mod topology;
pub mod types;
pub mod value;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use source::{FileId, SourceFile, Sources, Span};
pub use topology::{Inputs, Topology};

/// The result of [`compile`]: always a topology (possibly partial) and every diagnostic, sorted.
pub struct Compiled {
    pub sources: Sources,
    pub topology: Topology,
    pub diagnostics: Vec<Diagnostic>,
    /// From [`check`]: the builder's data, dropped with the result (or not at all when the
    /// caller forgets the result before exiting, as `rosca validate` does).
    _retained: Option<topology::Retained>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads `entry` with its imports, then checks it into a [`Topology`]. `inputs` are values given
/// by the user; `sources` may already hold the files they were read from (their spans point
/// there).
pub fn compile(entry: &loader::Entry, options: &loader::LoadOptions, inputs: &Inputs, mut diags: Diagnostics, sources: Sources) -> Compiled {
    let loaded = loader::load_into(entry, options, &mut diags, sources);
    compile_loaded(loaded, inputs, diags)
}

/// [`compile`] for a caller that only reports the diagnostics (`rosca validate`): every check
/// runs and the diagnostics are the same as [`compile`]'s, but the nodes of the output model are
/// not assembled (`topology.nodes` is empty). On a 10k-node template that model is most of the
/// peak memory and a third of the time.
pub fn check(entry: &loader::Entry, options: &loader::LoadOptions, inputs: &Inputs, mut diags: Diagnostics, sources: Sources) -> Compiled {
    let loaded = loader::load_into(entry, options, &mut diags, sources);
    compile_loaded_with(loaded, inputs, diags, false)
}

/// The pure part of [`compile`]: from loaded documents on, no IO.
pub fn compile_loaded(loaded: loader::Loaded, inputs: &Inputs, diags: Diagnostics) -> Compiled {
    compile_loaded_with(loaded, inputs, diags, true)
}

fn compile_loaded_with(loaded: loader::Loaded, inputs: &Inputs, mut diags: Diagnostics, model: bool) -> Compiled {
    let mut sources = loaded.sources;
    let docs: Vec<(FileId, yaml::Yaml)> = loaded.docs.into_iter().map(|d| (d.file, d.doc)).collect();
    let edges: Vec<(FileId, FileId, Option<String>)> = loaded.edges.iter().map(|e| (e.from, e.to, e.namespace_prefix.clone())).collect();
    let root = docs.first().map(|(f, _)| *f);
    let (topology, retained) = if docs.is_empty() { (Topology::default(), None) } else { topology::build_with(&mut sources, docs, &edges, inputs, &mut diags, model) };
    Compiled { sources, topology, diagnostics: collapse_imported_warnings(diags.into_sorted(), root), _retained: retained }
}

/// Warnings inside imported files (type libraries the user may not own) are summarized: the
/// first of each code per file stays, with a count of the others, so a template that imports a
/// lenient library (INDIGO's writes `required: no` 140 times) is not buried in them. Errors and
/// everything in the template itself are kept as they are.
fn collapse_imported_warnings(diags: Vec<Diagnostic>, root: Option<FileId>) -> Vec<Diagnostic> {
    use std::collections::HashMap;
    let mut counts: HashMap<(FileId, &'static str), usize> = HashMap::new();
    for d in diags.iter().filter(|d| !d.is_error() && Some(d.span.file) != root) {
        *counts.entry((d.span.file, d.code)).or_default() += 1;
    }
    let mut seen: HashMap<(FileId, &'static str), ()> = HashMap::new();
    diags
        .into_iter()
        .filter_map(|mut d| {
            if d.is_error() || Some(d.span.file) == root {
                return Some(d);
            }
            let key = (d.span.file, d.code);
            if seen.insert(key, ()).is_some() {
                return None;
            }
            let more = counts.get(&key).copied().unwrap_or(1) - 1;
            if more > 0 {
                d.message = format!("{} (and {more} more {} in this file)", d.message, d.code);
            }
            Some(d)
        })
        .collect()
}

/// Adds the input values of a YAML mapping (an `--inputs` file) to `inputs`.
pub fn inputs_from_yaml(doc: &yaml::Yaml, inputs: &mut Inputs, diags: &mut Diagnostics) {
    match doc.as_map() {
        Some(entries) => {
            for (k, v) in entries {
                match k.scalar_text() {
                    Some(name) => inputs.push(syntax::Sp::new(name, k.span), v.clone()),
                    None => diags.report(&diag::codes::BAD_INPUT_ARG, k.span, "input names are strings"),
                }
            }
        }
        None if doc.is_null() => {}
        None => diags.report(&diag::codes::BAD_INPUT_ARG, doc.span, format!("an inputs file is a mapping of input names to values, found {}", doc.kind_name())),
    }
}
