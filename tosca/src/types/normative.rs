//! The normative types of each TOSCA version, written by the project as TOSCA YAML from the
//! specification and embedded in the binary.

use crate::syntax::ToscaVersion;

/// (display name, text) of the normative type file for `version`.
pub fn normative_source(version: ToscaVersion) -> (&'static str, &'static str) {
    match version {
        ToscaVersion::V1_0 => ("<builtin>/tosca_simple_yaml_1_0.yaml", include_str!("../../types/tosca_simple_yaml_1_0.yaml")),
        ToscaVersion::V1_1 => ("<builtin>/tosca_simple_yaml_1_1.yaml", include_str!("../../types/tosca_simple_yaml_1_1.yaml")),
        ToscaVersion::V1_2 => ("<builtin>/tosca_simple_yaml_1_2.yaml", include_str!("../../types/tosca_simple_yaml_1_2.yaml")),
        ToscaVersion::V1_3 => ("<builtin>/tosca_simple_yaml_1_3.yaml", include_str!("../../types/tosca_simple_yaml_1_3.yaml")),
    }
}

/// Non-normative types of the specification that real templates use (Docker container types),
/// loaded after the normative ones for every version.
pub fn non_normative_source() -> (&'static str, &'static str) {
    ("<builtin>/non_normative.yaml", include_str!("../../types/non_normative.yaml"))
}

/// Rosca's own types (`rosca.nodes.hpc.BatchJob`, ...), loaded after the non-normative ones for
/// every version.
pub fn rosca_source() -> (&'static str, &'static str) {
    ("<builtin>/rosca.yaml", include_str!("../../types/rosca.yaml"))
}
