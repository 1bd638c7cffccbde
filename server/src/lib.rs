//! The REST server, wire-compatible with the INDIGO PaaS Orchestrator API (SPEC §8).
//!
//! Nothing lives here yet: it arrives with the REST server issue.
