//! Planner and applier (SPEC §4): Topology + prior state -> Plan -> actions through providers.
//!
//! Nothing lives here yet: it arrives with the plan/apply issue.
