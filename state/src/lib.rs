//! Deployment state documents and their backends (SPEC §5).
//!
//! Nothing lives here yet: the state model arrives with the plan/apply issue.
//! The crate exists so that the dependency direction of SPEC §2 is fixed from day one.
