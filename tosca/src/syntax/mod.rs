//! The syntax tree of a TOSCA file: what the file says, located, before any name is resolved.
//!
//! [`parse::parse_file`] turns a [`Yaml`] document into a [`ServiceTemplate`], reporting grammar
//! problems (wrong kinds, unknown keys, missing keys). Values that depend on types (property
//! values, defaults, constraint arguments) stay [`Yaml`]: they are checked later, once types are
//! known. One struct, [`TypeDef`], holds every kind of type definition; [`TypeKind`] says which
//! keys are valid for it.

pub mod parse;

use crate::source::{FileId, Span};
use crate::yaml::Yaml;
use indexmap::IndexMap;

/// A value with the span it came from.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Sp { value, span }
    }
}

impl Sp<String> {
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// Named definitions in document order; the span is that of the name (the mapping key).
pub type Named<T> = IndexMap<String, (Span, T)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ToscaVersion {
    #[serde(rename = "tosca_simple_yaml_1_0")]
    V1_0,
    #[serde(rename = "tosca_simple_yaml_1_1")]
    V1_1,
    #[serde(rename = "tosca_simple_yaml_1_2")]
    V1_2,
    #[serde(rename = "tosca_simple_yaml_1_3")]
    V1_3,
}

impl ToscaVersion {
    pub const ALL: [ToscaVersion; 4] = [ToscaVersion::V1_0, ToscaVersion::V1_1, ToscaVersion::V1_2, ToscaVersion::V1_3];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tosca_simple_yaml_1_0" | "tosca_simple_profile_for_nfv_1_0" | "tosca_simple_profile_for_nfv_1_0_0" => ToscaVersion::V1_0,
            "tosca_simple_yaml_1_1" => ToscaVersion::V1_1,
            "tosca_simple_yaml_1_2" => ToscaVersion::V1_2,
            "tosca_simple_yaml_1_3" => ToscaVersion::V1_3,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ToscaVersion::V1_0 => "tosca_simple_yaml_1_0",
            ToscaVersion::V1_1 => "tosca_simple_yaml_1_1",
            ToscaVersion::V1_2 => "tosca_simple_yaml_1_2",
            ToscaVersion::V1_3 => "tosca_simple_yaml_1_3",
        }
    }
}

/// One TOSCA file.
#[derive(Clone, Debug, Default)]
pub struct ServiceTemplate {
    pub file: FileId,
    pub version: Option<Sp<ToscaVersion>>,
    pub namespace: Option<Sp<String>>,
    pub metadata: IndexMap<String, String>,
    pub description: Option<String>,
    pub repositories: Named<Repository>,
    /// Imports are resolved by the loader; the syntax keeps only their spans for messages.
    pub types: Vec<(TypeKind, String, Span, TypeDef)>,
    pub topology: Option<TopologyTemplate>,
}

#[derive(Clone, Debug, Default)]
pub struct Repository {
    pub url: Option<Sp<String>>,
    pub description: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    Artifact,
    Data,
    Capability,
    Interface,
    Relationship,
    Node,
    Group,
    Policy,
}

impl TypeKind {
    pub const ALL: [TypeKind; 8] = [
        TypeKind::Artifact,
        TypeKind::Data,
        TypeKind::Capability,
        TypeKind::Interface,
        TypeKind::Relationship,
        TypeKind::Node,
        TypeKind::Group,
        TypeKind::Policy,
    ];

    /// The service template key that holds definitions of this kind.
    pub fn section(self) -> &'static str {
        match self {
            TypeKind::Artifact => "artifact_types",
            TypeKind::Data => "data_types",
            TypeKind::Capability => "capability_types",
            TypeKind::Interface => "interface_types",
            TypeKind::Relationship => "relationship_types",
            TypeKind::Node => "node_types",
            TypeKind::Group => "group_types",
            TypeKind::Policy => "policy_types",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            TypeKind::Artifact => "artifact type",
            TypeKind::Data => "data type",
            TypeKind::Capability => "capability type",
            TypeKind::Interface => "interface type",
            TypeKind::Relationship => "relationship type",
            TypeKind::Node => "node type",
            TypeKind::Group => "group type",
            TypeKind::Policy => "policy type",
        }
    }
}

/// `supported`, `deprecated`, `experimental` (TOSCA 1.1+ `status` of property definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Supported,
    Unsupported,
    Experimental,
    Deprecated,
}

/// Every kind of type definition. Keys that do not belong to a kind are reported by the parser
/// and left empty here.
#[derive(Clone, Debug, Default)]
pub struct TypeDef {
    pub derived_from: Option<Sp<String>>,
    pub version: Option<Sp<String>>,
    pub metadata: IndexMap<String, String>,
    pub description: Option<String>,
    pub properties: Named<PropertyDef>,
    pub attributes: Named<PropertyDef>,
    pub requirements: Vec<(Sp<String>, RequirementDef)>,
    pub capabilities: Named<CapabilityDef>,
    pub interfaces: Named<InterfaceDef>,
    pub artifacts: Named<ArtifactDef>,
    /// Relationship types: the capability types they may target.
    pub valid_target_types: Option<Vec<Sp<String>>>,
    /// Capability types: the node types that may require them.
    pub valid_source_types: Option<Vec<Sp<String>>>,
    /// Group types: node types allowed as members.
    pub members: Option<Vec<Sp<String>>>,
    /// Policy types: node and group types allowed as targets.
    pub targets: Option<Vec<Sp<String>>>,
    pub triggers: Option<Yaml>,
    pub mime_type: Option<String>,
    pub file_ext: Option<Vec<String>>,
    /// Data types derived from a primitive: constraints on the value itself.
    pub constraints: Vec<Constraint>,
    pub key_schema: Option<Box<Schema>>,
    pub entry_schema: Option<Box<Schema>>,
    /// Interface types: the operations (1.0 writes them at the top level of the type; 1.3 under
    /// `operations:`); the parser puts both here.
    pub operations: Named<OperationDef>,
    pub notifications: Named<OperationDef>,
    /// Interface types: input definitions shared by all operations.
    pub inputs: Named<PropertyDef>,
}

/// A property, attribute, input, output or parameter definition.
#[derive(Clone, Debug, Default)]
pub struct PropertyDef {
    pub type_name: Option<Sp<String>>,
    pub description: Option<String>,
    /// `None` = not said (TOSCA's default is `true` for properties and inputs).
    pub required: Option<Sp<bool>>,
    pub default: Option<Yaml>,
    /// Parameters (outputs, 1.3 inputs, operation inputs/outputs) may carry a value.
    pub value: Option<Yaml>,
    pub status: Option<Sp<Status>>,
    pub constraints: Vec<Constraint>,
    pub key_schema: Option<Box<Schema>>,
    pub entry_schema: Option<Box<Schema>>,
    pub metadata: IndexMap<String, String>,
    /// Where the definition as a whole is written.
    pub span: Span,
}

/// `entry_schema` / `key_schema`: a type with constraints (short form: just the type name).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub type_name: Sp<String>,
    pub description: Option<String>,
    pub constraints: Vec<Constraint>,
    pub key_schema: Option<Box<Schema>>,
    pub entry_schema: Option<Box<Schema>>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintOp {
    Equal,
    GreaterThan,
    GreaterOrEqual,
    LessThan,
    LessOrEqual,
    InRange,
    ValidValues,
    Length,
    MinLength,
    MaxLength,
    Pattern,
    /// `schema`: a schema definition the value must satisfy (e.g. JSON schema text).
    Schema,
}

impl ConstraintOp {
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "equal" => ConstraintOp::Equal,
            "greater_than" => ConstraintOp::GreaterThan,
            "greater_or_equal" => ConstraintOp::GreaterOrEqual,
            "less_than" => ConstraintOp::LessThan,
            "less_or_equal" => ConstraintOp::LessOrEqual,
            "in_range" => ConstraintOp::InRange,
            "valid_values" => ConstraintOp::ValidValues,
            "length" => ConstraintOp::Length,
            "min_length" => ConstraintOp::MinLength,
            "max_length" => ConstraintOp::MaxLength,
            "pattern" => ConstraintOp::Pattern,
            "schema" => ConstraintOp::Schema,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintOp::Equal => "equal",
            ConstraintOp::GreaterThan => "greater_than",
            ConstraintOp::GreaterOrEqual => "greater_or_equal",
            ConstraintOp::LessThan => "less_than",
            ConstraintOp::LessOrEqual => "less_or_equal",
            ConstraintOp::InRange => "in_range",
            ConstraintOp::ValidValues => "valid_values",
            ConstraintOp::Length => "length",
            ConstraintOp::MinLength => "min_length",
            ConstraintOp::MaxLength => "max_length",
            ConstraintOp::Pattern => "pattern",
            ConstraintOp::Schema => "schema",
        }
    }
}

/// One constraint clause. The argument stays YAML: its meaning depends on the constrained type
/// (`greater_than: 2 GB` compares sizes), so it is read by the value checker.
#[derive(Clone, Debug)]
pub struct Constraint {
    pub op: ConstraintOp,
    pub arg: Yaml,
    pub span: Span,
}

/// `[min, max]`; `max = None` is UNBOUNDED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Occurrences {
    pub min: u64,
    pub max: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct CapabilityDef {
    pub type_name: Sp<String>,
    pub description: Option<String>,
    pub properties: Named<PropertyDef>,
    pub attributes: Named<PropertyDef>,
    pub valid_source_types: Option<Vec<Sp<String>>>,
    pub occurrences: Option<Sp<Occurrences>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct RequirementDef {
    pub capability: Option<Sp<String>>,
    pub node: Option<Sp<String>>,
    pub relationship: Option<Sp<String>>,
    /// Interface refinements written in the extended `relationship: {type, interfaces}` form.
    pub relationship_interfaces: Named<InterfaceDef>,
    pub occurrences: Option<Sp<Occurrences>>,
    pub node_filter: Option<NodeFilter>,
    pub description: Option<String>,
    pub span: Span,
}

/// An interface definition in a type (operations with definitions) or an interface assignment
/// in a template (operations with implementations and input values): the same shape.
#[derive(Clone, Debug, Default)]
pub struct InterfaceDef {
    pub type_name: Option<Sp<String>>,
    pub description: Option<String>,
    /// Input definitions (in types) or values (in templates), kept as YAML: 1.0 mixes both.
    pub inputs: IndexMap<String, (Span, Yaml)>,
    pub operations: Named<OperationDef>,
    pub notifications: Named<OperationDef>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct OperationDef {
    pub description: Option<String>,
    pub implementation: Option<Implementation>,
    pub inputs: IndexMap<String, (Span, Yaml)>,
    pub outputs: IndexMap<String, (Span, Yaml)>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Implementation {
    /// An artifact name (of the node) or a file path, or an inline artifact definition's file.
    pub primary: Option<Sp<String>>,
    pub primary_artifact: Option<Box<ArtifactDef>>,
    pub dependencies: Vec<Sp<String>>,
    pub timeout: Option<Sp<i64>>,
    pub operation_host: Option<Sp<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct ArtifactDef {
    pub type_name: Option<Sp<String>>,
    pub file: Sp<String>,
    pub repository: Option<Sp<String>>,
    pub description: Option<String>,
    pub deploy_path: Option<String>,
    pub version: Option<String>,
    pub checksum: Option<String>,
    pub checksum_algorithm: Option<String>,
    pub properties: IndexMap<String, (Span, Yaml)>,
    pub span: Span,
}

/// A property name and the constraints its value must meet.
pub type PropertyFilter = (Sp<String>, Vec<Constraint>);

#[derive(Clone, Debug, Default)]
pub struct NodeFilter {
    pub properties: Vec<PropertyFilter>,
    /// Capability (name or type) -> property filters on it.
    pub capabilities: Vec<(Sp<String>, Vec<PropertyFilter>)>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct TopologyTemplate {
    pub description: Option<String>,
    pub inputs: Named<PropertyDef>,
    pub node_templates: Named<NodeTemplate>,
    pub relationship_templates: Named<RelationshipTemplate>,
    pub groups: Named<GroupDef>,
    pub policies: Named<PolicyDef>,
    pub outputs: Named<PropertyDef>,
    pub substitution_mappings: Option<SubstitutionMappings>,
    pub workflows: Named<Workflow>,
    pub span: Span,
}

pub type Values = IndexMap<String, (Span, Yaml)>;

#[derive(Clone, Debug, Default)]
pub struct NodeTemplate {
    pub type_name: Sp<String>,
    pub description: Option<String>,
    pub metadata: IndexMap<String, String>,
    pub directives: Vec<Sp<String>>,
    pub properties: Values,
    pub attributes: Values,
    pub requirements: Vec<(Sp<String>, RequirementAssignment)>,
    pub capabilities: Named<CapabilityAssignment>,
    pub interfaces: Named<InterfaceDef>,
    pub artifacts: Named<ArtifactDef>,
    pub node_filter: Option<NodeFilter>,
    pub copy: Option<Sp<String>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct RequirementAssignment {
    /// A node template name or a node type name.
    pub node: Option<Sp<String>>,
    /// A capability name (on the target) or a capability type name.
    pub capability: Option<Sp<String>>,
    /// A relationship template name or a relationship type name.
    pub relationship: Option<Sp<String>>,
    /// Written as `relationship: {type: ...}`: then it can only be a type.
    pub relationship_is_type: bool,
    pub relationship_properties: Values,
    pub relationship_interfaces: Named<InterfaceDef>,
    pub node_filter: Option<NodeFilter>,
    pub occurrences: Option<Sp<Occurrences>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct CapabilityAssignment {
    pub properties: Values,
    pub attributes: Values,
    pub occurrences: Option<Sp<Occurrences>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct RelationshipTemplate {
    pub type_name: Sp<String>,
    pub description: Option<String>,
    pub metadata: IndexMap<String, String>,
    pub properties: Values,
    pub attributes: Values,
    pub interfaces: Named<InterfaceDef>,
    pub copy: Option<Sp<String>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct GroupDef {
    pub type_name: Sp<String>,
    pub description: Option<String>,
    pub metadata: IndexMap<String, String>,
    pub properties: Values,
    pub members: Vec<Sp<String>>,
    pub interfaces: Named<InterfaceDef>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct PolicyDef {
    pub type_name: Sp<String>,
    pub description: Option<String>,
    pub metadata: IndexMap<String, String>,
    pub properties: Values,
    pub targets: Vec<Sp<String>>,
    pub triggers: Option<Yaml>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct SubstitutionMappings {
    pub node_type: Sp<String>,
    pub substitution_filter: Option<NodeFilter>,
    /// Property name -> `[input_name]` (or a value, 1.2+).
    pub properties: Values,
    pub attributes: Values,
    /// Capability name -> `[node_template, capability]`.
    pub capabilities: Vec<(Sp<String>, Vec<Sp<String>>)>,
    /// Requirement name -> `[node_template, requirement]`.
    pub requirements: Vec<(Sp<String>, Vec<Sp<String>>)>,
    pub interfaces: Values,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Workflow {
    pub description: Option<String>,
    pub metadata: IndexMap<String, String>,
    pub inputs: Named<PropertyDef>,
    pub preconditions: Vec<Yaml>,
    pub steps: Named<WorkflowStep>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct WorkflowStep {
    pub target: Sp<String>,
    pub target_relationship: Option<Sp<String>>,
    pub operation_host: Option<Sp<String>>,
    pub filter: Vec<Yaml>,
    pub activities: Vec<Activity>,
    pub on_success: Vec<Sp<String>>,
    pub on_failure: Vec<Sp<String>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Activity {
    Delegate(Sp<String>),
    SetState(Sp<String>),
    CallOperation(Sp<String>),
    Inline(Sp<String>),
    Other(Sp<String>),
}
