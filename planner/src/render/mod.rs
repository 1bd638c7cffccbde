//! Renderers of a [`Plan`] (SPEC §4): the human diff, the documented JSON (docs/plan-json.md),
//! pull-request Markdown split under a size limit, and the action graph as DOT / Mermaid.
//!
//! All are pure functions returning strings or values. Sensitive leaves (`before_sensitive` /
//! `after_sensitive` masks, sensitive outputs and inputs) never reach any output: the human and
//! Markdown diffs print `(sensitive value)` per leaf, and the JSON puts `null` in their place.
//! `ResourceChange::desired` (the applier's input, which may hold secrets) is never rendered.

mod attrs;
mod graph;
mod human;
mod json;
mod markdown;
mod text;

pub use graph::graph;
pub use human::human;
pub use json::json;
pub use markdown::markdown;

/// Options of [`human`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HumanOptions {
    /// Style with ANSI escapes (through `console`); never emitted when false.
    pub color: bool,
    /// The concise `--summary` mode: legend, per-type table, one line per changed instance and
    /// the `Plan:` line.
    pub summary_only: bool,
    /// Show unchanged attributes instead of folding them into `# (N unchanged ... hidden)`.
    pub show_unchanged: bool,
}

/// Options of [`markdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// Largest part, in characters (Unicode scalar values). GitHub allows 65,536 per comment,
    /// Bitbucket Server 32,768. Values below [`MarkdownOptions::MIN_CHARS`] are raised to it.
    pub max_chars: usize,
    /// Show unchanged attributes in the diffs instead of folding them.
    pub show_unchanged: bool,
}

impl MarkdownOptions {
    pub const DEFAULT_MAX_CHARS: usize = 65_000;
    pub const MIN_CHARS: usize = 1_000;
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        MarkdownOptions { max_chars: Self::DEFAULT_MAX_CHARS, show_unchanged: false }
    }
}

/// Output formats of [`graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid `flowchart` (renders in GitHub Markdown inside a ```mermaid fence).
    Mermaid,
}
