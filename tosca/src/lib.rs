//! The TOSCA front-end of Rosca: reads service templates (YAML files, CSARs, stdin), resolves
//! imports and types, checks everything, and produces a normalized [`Topology`] plus diagnostics.
//!
//! The core (everything but [`loader`]) does no IO and never panics on any input.

pub mod diag;
pub mod source;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use source::{FileId, SourceFile, Sources, Span};
pub mod function;
pub mod syntax;
pub mod value;
