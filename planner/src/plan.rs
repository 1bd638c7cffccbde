//! The plan as plain data (docs/plan-json.md): what will change, why, and in which order.
//! Built by `planning`, executed by `apply`, rendered by `render`; saved plans are this struct
//! as JSON.

use providers::OperationSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Version of the plan JSON schema. Minor bumps only add fields; readers ignore unknown keys
/// and refuse another major version.
pub const PLAN_FORMAT_VERSION: &str = "1.0";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub rosca_version: String,
    pub mode: PlanMode,
    /// RFC 3339 time the plan was made.
    pub created: String,
    /// What the plan was made against; `apply` refuses it when the state moved on.
    pub binding: Binding,
    /// Input values used (in saved plans only; renderers mask the sensitive ones).
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive_inputs: Vec<String>,
    /// One entry per instance in the template or in state, in apply order.
    pub changes: Vec<ResourceChange>,
    /// Changes made outside Rosca, found by refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    #[serde(default)]
    pub outputs: Vec<OutputChange>,
    /// Whether refresh ran before planning.
    pub refreshed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanMode {
    Normal,
    Destroy,
    RefreshOnly,
}

/// The state and template a plan was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Lineage of the prior state; empty when there was no state.
    pub lineage: String,
    /// Serial of the prior state; 0 when there was no state.
    pub serial: u64,
    /// Template as given on the command line.
    pub template: String,
    /// sha256 over template, imports, artifacts and input values.
    pub digest: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NoOp,
    Create,
    Read,
    Update,
    DeleteThenCreate,
    CreateThenDelete,
    Delete,
}

impl Action {
    /// Terraform's JSON action list: a replace is two actions, so a consumer scanning for
    /// `"delete"` finds every destructive change.
    pub fn json_actions(self) -> &'static [&'static str] {
        match self {
            Action::NoOp => &["no-op"],
            Action::Create => &["create"],
            Action::Read => &["read"],
            Action::Update => &["update"],
            Action::DeleteThenCreate => &["delete", "create"],
            Action::CreateThenDelete => &["create", "delete"],
            Action::Delete => &["delete"],
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Read => "<=",
            Action::Update => "~",
            Action::DeleteThenCreate => "-/+",
            Action::CreateThenDelete => "+/-",
            Action::Delete => "-",
        }
    }

    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteThenCreate | Action::CreateThenDelete)
    }

    pub fn deletes(self) -> bool {
        self.is_replace() || self == Action::Delete
    }

    pub fn creates(self) -> bool {
        self.is_replace() || self == Action::Create
    }
}

/// Why an action was planned (machine-readable; `paths` are dotted config paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// In the template, not in state.
    NotInState,
    /// Config paths changed; the provider updates them in place.
    ConfigChanged,
    /// Operation inputs changed; the named operations re-run.
    OperationInputsChanged,
    /// Config paths changed that the provider cannot update in place.
    ReplaceBecauseCannotUpdate,
    ReplaceBecauseTainted,
    /// A provider call was interrupted (crash); its outcome is unknown.
    ReplaceBecausePending,
    ReplaceByRequest,
    /// The node template is gone from the template.
    DeleteBecauseNoNode,
    /// The node was scaled in.
    DeleteBecauseScaledIn,
    /// Named in the node's `removal_list`.
    DeleteBecauseRemovalList,
    /// Refresh found the resource gone; it is created again.
    CreateBecauseGone,
    /// `destroy` mode.
    DeleteBecauseDestroy,
    /// Values it depends on are known only after apply.
    UpdateBecauseDependencyChanges,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(rename = "type")]
    pub type_name: String,
    pub provider: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Config before (from state); null for create.
    pub before: Value,
    /// Config after with unknown leaves as null; null for delete.
    pub after: Value,
    /// Mirrors `after`, `true` at leaves known only after apply.
    pub after_unknown: Value,
    /// Mirror `before`/`after`, `true` at sensitive leaves.
    pub before_sensitive: Value,
    pub after_sensitive: Value,
    /// Config paths whose change forces the replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_paths: Vec<Vec<String>>,
    /// Lifecycle operations an update re-runs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// Addresses whose actions must finish before this one (deletes: the dependents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What the applier needs to realize the instance (absent for delete and no-op).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Desired>,
}

/// The instance as the template wants it, with values still depending on other instances'
/// attributes kept as lowered expressions (`crate::expr`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub types: Vec<String>,
    /// `{"properties": {...}, "capabilities": {...}, "operations": {op: {input: ...}}}`.
    pub config: Value,
    /// Standard lifecycle operations; inputs may hold expressions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operations: BTreeMap<String, OperationSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<DesiredRelationship>,
    /// HostedOn chain, nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Requirement targets and hosts (instance addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Dotted config paths holding sensitive values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
    /// Create the replacement before deleting the old one.
    #[serde(default)]
    pub create_before_destroy: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesiredRelationship {
    pub requirement: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub target: String,
    pub operations: BTreeMap<String, OperationSpec>,
}

/// An attribute change found by refresh.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub address: String,
    /// `gone` or `changed`.
    pub kind: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputChange {
    pub name: String,
    pub action: Action,
    pub before: Value,
    pub after: Value,
    pub after_unknown: bool,
    pub sensitive: bool,
    /// The value with expressions over instance attributes (`{"$expr": ...}`), evaluated
    /// after apply; null for a deleted output.
    #[serde(default)]
    pub value: Value,
}

/// Counts for summary lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for ch in &self.changes {
            match ch.action {
                Action::Create => c.add += 1,
                Action::Update => c.change += 1,
                Action::Delete => c.destroy += 1,
                a if a.is_replace() => {
                    c.add += 1;
                    c.destroy += 1;
                }
                _ => {}
            }
        }
        c
    }

    /// Whether applying would change anything (resources or outputs).
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
            || self.outputs.iter().any(|o| o.action != Action::NoOp)
    }
}
