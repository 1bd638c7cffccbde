//! TOSCA intrinsic functions: parsed into an expression tree, checked, evaluated where constant.

/// Names of the intrinsic functions. A single-key mapping whose key is one of these is a call,
/// not a map value.
pub const NAMES: &[&str] = &[
    "get_input",
    "get_property",
    "get_attribute",
    "get_operation_output",
    "concat",
    "join",
    "token",
    "get_artifact",
    "get_nodes_of_type",
];

/// True when `y` is written as a function call.
pub fn is_call(y: &crate::yaml::Yaml) -> bool {
    match y.as_map() {
        Some([(k, _)]) => k.as_str().is_some_and(|k| NAMES.contains(&k)),
        _ => false,
    }
}
