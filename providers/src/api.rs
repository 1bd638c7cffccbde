//! The provider contract: what the applier asks and what a provider answers. Plain data plus
//! one object-safe trait, so the applier can hold `Arc<dyn Provider>` and tests can swap in a
//! fake that injects failures.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider realizes and how it reacts to changes (SPEC §6).
#[derive(Clone, Debug, Serialize)]
pub struct ProviderSchema {
    pub name: String,
    /// Most specific first: the planner uses the first entry whose `node_type` is in a node's
    /// type chain.
    pub resources: Vec<ResourceSchema>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceSchema {
    /// A node type name; matches every node whose type chain contains it.
    pub node_type: String,
    /// Config paths (`properties.size`, `capabilities.host.num_cpus`) whose change forces a
    /// replacement. A path matches itself and everything under it.
    pub force_replace: Vec<String>,
    /// When true, any change not in `force_replace` is updated in place; when false, only the
    /// paths in `update_in_place` are, and every other change forces replacement.
    pub update_all: bool,
    pub update_in_place: Vec<String>,
    /// Attributes the provider reports after create.
    pub attributes: Vec<String>,
    /// How an in-place change under a path is made (`capabilities.host` → "resize"), shown
    /// with the update in the plan.
    pub update_notes: Vec<(String, String)>,
}

impl ProviderSchema {
    pub fn resource_for(&self, types: &[String]) -> Option<&ResourceSchema> {
        self.resources
            .iter()
            .find(|r| types.contains(&r.node_type))
    }
}

impl ResourceSchema {
    /// The notes of every path in `paths` that has one, joined, in schema order.
    pub fn update_note(&self, paths: &[Vec<String>]) -> Option<String> {
        let dotted: Vec<String> = paths.iter().map(|p| p.join(".")).collect();
        let notes: Vec<&str> = self
            .update_notes
            .iter()
            .filter(|(p, _)| dotted.iter().any(|d| d == p || d.starts_with(&format!("{p}."))))
            .map(|(_, n)| n.as_str())
            .collect();
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// Whether a change at `path` (segments) forces replacement.
    pub fn forces_replacement(&self, path: &[String]) -> bool {
        let dotted = path.join(".");
        let under = |p: &String| dotted == *p || dotted.starts_with(&format!("{p}."));
        if self.force_replace.iter().any(under) {
            return true;
        }
        !self.update_all && !self.update_in_place.iter().any(under)
    }
}

/// One lifecycle operation, ready to run: implementation path resolved, inputs still possibly
/// holding `{"$expr": ...}` calls that depend on attributes produced earlier in the same
/// lifecycle (resolved through [`Resolver`] just before the operation runs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationSpec {
    /// Absolute path of the implementation artifact (a script), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
    /// Seconds; the provider's default applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<PathBuf>,
}

/// `Configure` operations of one relationship whose source is the instance being applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RelationshipSpec {
    pub requirement: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// Address of the target instance.
    pub target: String,
    /// The target's attributes when the operation is prepared.
    #[serde(default)]
    pub target_attributes: Map<String, Value>,
    /// Sandbox (or host address) of the target's host chain root, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_host: Option<HostRef>,
    /// `pre_configure_source`, `post_configure_target`, `add_target`, ... → operation.
    pub operations: BTreeMap<String, OperationSpec>,
}

/// A host in an instance's HostedOn chain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRef {
    pub address: String,
    pub attributes: Map<String, Value>,
}

/// Everything a provider needs to create or update one instance.
#[derive(Clone)]
pub struct ApplyRequest {
    pub address: String,
    pub node: String,
    pub index: Option<u32>,
    /// Type chain, most derived first.
    pub types: Vec<String>,
    /// `{"properties": {...}, "capabilities": {name: {...}}}`, fully resolved.
    pub config: Value,
    /// Standard lifecycle operations present on the node (`create`, `configure`, `start`,
    /// `stop`, `delete`).
    pub operations: BTreeMap<String, OperationSpec>,
    pub relationships: Vec<RelationshipSpec>,
    /// The HostedOn chain, nearest host first (empty for a root node such as a Compute).
    pub hosts: Vec<HostRef>,
    /// Directory under which the provider keeps what it creates locally (`.rosca/` of the
    /// working directory).
    pub workdir: PathBuf,
    /// Default timeout of one operation.
    pub timeout: Duration,
    pub resolver: Arc<dyn Resolver>,
    /// Where a long-running step says what it is waiting for (`job 42 PENDING (Resources)`),
    /// shown beside the applier's "Still creating..." lines.
    pub status: StatusLine,
}

/// The latest word from a step in progress. Cheap to clone; every clone shares one line.
#[derive(Clone, Debug, Default)]
pub struct StatusLine(Arc<Mutex<Option<String>>>);

impl StatusLine {
    pub fn set(&self, text: impl Into<String>) {
        if let Ok(mut line) = self.0.lock() {
            *line = Some(text.into());
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|line| line.clone())
    }
}

/// Evaluates the `{"$expr": ...}` calls left in operation inputs, against the instance's own
/// attributes and operation outputs known so far.
pub trait Resolver: Send + Sync {
    fn resolve(
        &self,
        value: &Value,
        self_attributes: &Map<String, Value>,
        self_outputs: &BTreeMap<String, Map<String, Value>>,
    ) -> Result<Value, String>;
}

/// What a provider reports after create, update or read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Realized {
    pub id: String,
    pub attributes: Map<String, Value>,
    /// Outputs of operations, keyed `Standard.create` → name → value.
    pub outputs: BTreeMap<String, Map<String, Value>>,
    pub private: Value,
    /// Config as found in the backend, for the parts that no longer match what was applied (a
    /// server resized outside Rosca): a partial config (`{"capabilities": {"host": {...}}}`)
    /// that refresh writes over the prior config, so the next plan shows and undoes the drift.
    pub observed: Option<Value>,
    /// Set by `read` when the resource exists but is broken in a way only a replacement fixes
    /// (a batch job left to the scheduler that failed after Rosca stopped waiting): refresh
    /// marks it tainted, with this reason, so the next plan replaces it.
    pub tainted: Option<String>,
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub message: String,
    /// Worth retrying (HTTP 429/5xx, timeouts of idempotent reads).
    pub retryable: bool,
    /// The resource was created but its lifecycle did not finish: state keeps it as tainted.
    pub partial: Option<Box<Realized>>,
}

impl ProviderError {
    pub fn new(message: impl Into<String>) -> ProviderError {
        ProviderError { message: message.into(), retryable: false, partial: None }
    }
}

/// A backend that realizes TOSCA nodes. Object-safe; every call is one resource.
pub trait Provider: Send + Sync {
    fn schema(&self) -> &ProviderSchema;

    /// Checks that the provider can work at all (credentials accepted, endpoints reachable)
    /// before an apply starts, so a wrong password fails before anything is created.
    fn preflight<'a>(&'a self) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn create<'a>(&'a self, req: &'a ApplyRequest) -> BoxFuture<'a, Result<Realized, ProviderError>>;

    /// In-place update; `operations` are the lifecycle operations the plan says to re-run.
    fn update<'a>(
        &'a self,
        prior: &'a ResourceState,
        req: &'a ApplyRequest,
        operations: &'a [String],
    ) -> BoxFuture<'a, Result<Realized, ProviderError>>;

    /// What exists now; `None` when the resource is gone.
    fn read<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<Option<Realized>, ProviderError>>;

    /// Removes the resource (running `stop`/`delete` operations recorded in `prior.private`).
    fn delete<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<(), ProviderError>>;
}
