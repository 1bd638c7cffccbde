//! Planner and applier (SPEC §4): Topology + prior state → Plan → actions through providers.
//!
//! The pipeline inside: `instances` expands nodes into instances; `lower` + `desired` build
//! each instance's desired resource (constants evaluated, the rest as `expr::Expr`); `planning`
//! diffs it against state into a `plan::Plan` ordered by `graph`; `apply` walks the plan on
//! tokio through the providers of a `registry`, persisting state through `state::StateWriter`.

pub mod apply;
pub mod desired;
pub mod diff;
pub mod expr;
pub mod graph;
pub mod instances;
pub mod lower;
pub mod plan;
pub mod planning;
pub mod registry;
pub mod render;
pub mod time;

pub use plan::{Action, Plan, PlanMode, ResourceChange};
pub use planning::{plan, PlanError, PlanRequest};
pub use registry::Registry;
pub use apply::{apply, ApplyOptions, ApplyReport, Event, Observer, Phase};
