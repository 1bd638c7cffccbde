//! From parsed files to a [`Topology`]: types registered and resolved, node templates typed,
//! values checked, requirements matched, functions checked and evaluated where constant.

mod build;
mod functions;
mod model;
mod requirements;
mod values;

pub use build::{build, build_with, Inputs, Retained};
pub use model::*;
