//! The normalized Topology: what Rosca understood of a template. Plain data, serialized for
//! `rosca topology` (schema documented in docs/topology.md) and consumed by the planner.

use crate::syntax::{Occurrences, ToscaVersion};
use indexmap::IndexMap;
use serde::Serialize;

/// A property/attribute/input value: a JSON value, where a function that could not be evaluated
/// (it depends on attributes known only after apply) stays as `{"$expr": <the call as written>}`.
pub type PropValue = serde_json::Value;

#[derive(Clone, Debug, Serialize, Default)]
pub struct Topology {
    /// Version of the schema of this document (docs/topology.md).
    pub format_version: &'static str,
    pub tosca_definitions_version: Option<ToscaVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub metadata: IndexMap<String, String>,
    pub inputs: IndexMap<String, Input>,
    pub nodes: IndexMap<String, Node>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub groups: IndexMap<String, Group>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub policies: IndexMap<String, Policy>,
    pub outputs: IndexMap<String, Output>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substitution: Option<Substitution>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub workflows: IndexMap<String, Workflow>,
}

/// What a redacted topology shows instead of a sensitive value.
pub const SENSITIVE: &str = "(sensitive value)";

impl Topology {
    /// A copy fit to print: sensitive input values and sensitive node properties replaced by
    /// [`SENSITIVE`]. The topology itself keeps the values: the planner needs them.
    pub fn redacted(&self) -> Topology {
        let mut t = self.clone();
        for input in t.inputs.values_mut().filter(|i| i.sensitive) {
            for v in [&mut input.default, &mut input.value].into_iter().flatten() {
                *v = SENSITIVE.into();
            }
        }
        for node in t.nodes.values_mut() {
            for name in &node.sensitive {
                if let Some(v) = node.properties.get_mut(name) {
                    if !v.is_null() {
                        *v = SENSITIVE.into();
                    }
                }
            }
        }
        t
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Input {
    #[serde(rename = "type")]
    pub type_name: String,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<PropValue>,
    /// The value used: the one given, else the default; absent when neither exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<PropValue>,
    pub sensitive: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Node {
    #[serde(rename = "type")]
    pub type_name: String,
    /// The full type chain, most derived first.
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub metadata: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub directives: Vec<String>,
    pub properties: IndexMap<String, PropValue>,
    /// Declared attributes with a default or an assigned value.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: IndexMap<String, PropValue>,
    pub capabilities: IndexMap<String, Capability>,
    pub requirements: Vec<Requirement>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub interfaces: IndexMap<String, Interface>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub artifacts: IndexMap<String, Artifact>,
    /// The node this one is hosted on (HostedOn), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Scaling from the `scalable` capability; absent when the node is not scalable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// Names of the properties whose values are sensitive (never printed by plans).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Capability {
    #[serde(rename = "type")]
    pub type_name: String,
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, PropValue>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: IndexMap<String, PropValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<Occurrences>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    /// Resolved to a node template of this topology.
    Template,
    /// Nothing in the template satisfies it; left to the orchestrator (e.g. a provider-chosen host).
    Orchestrator,
}

#[derive(Clone, Debug, Serialize)]
pub struct Requirement {
    pub name: String,
    pub fulfilment: Fulfilment,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The capability name on the target node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    pub capability_type: String,
    pub relationship: Relationship,
}

#[derive(Clone, Debug, Serialize)]
pub struct Relationship {
    #[serde(rename = "type")]
    pub type_name: String,
    pub types: Vec<String>,
    /// The relationship template used, if the requirement named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, PropValue>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub interfaces: IndexMap<String, Interface>,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct Interface {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    pub operations: IndexMap<String, Operation>,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct Operation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, PropValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_path: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Scaling {
    pub default_instances: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u64>,
    /// Instance names to remove first on scale-in (INDIGO `removal_list`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removal_list: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    #[serde(rename = "type")]
    pub type_name: String,
    pub types: Vec<String>,
    pub members: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, PropValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    #[serde(rename = "type")]
    pub type_name: String,
    pub types: Vec<String>,
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, PropValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub value: PropValue,
}

#[derive(Clone, Debug, Serialize)]
pub struct Substitution {
    pub node_type: String,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub capabilities: IndexMap<String, (String, String)>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub requirements: IndexMap<String, (String, String)>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, PropValue>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Workflow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub steps: IndexMap<String, WorkflowStep>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkflowStep {
    pub target: String,
    pub activities: Vec<IndexMap<String, String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<String>,
}
