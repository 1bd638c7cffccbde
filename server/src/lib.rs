//! `rosca serve`: the REST server, wire-compatible with the INDIGO PaaS Orchestrator API
//! (SPEC §8): its store, the durable job workflow that runs the planner and applier, and
//! authentication.

pub mod api;
pub mod auth;
pub mod dbstate;
pub mod deploy;
pub mod engine;
pub mod present;
pub mod store;
pub mod wire;
