//! Providers that realize TOSCA node types on backends (SPEC §6).
//!
//! Nothing lives here yet: the `local` provider arrives with the plan/apply issue.
