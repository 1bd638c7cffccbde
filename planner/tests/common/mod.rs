//! Shared by the planner's integration tests: compile a template, an in-memory fake provider
//! that records calls and fails on request, and a plan → apply → re-plan cycle.

#![allow(dead_code)]

use planner::plan::{Plan, PlanMode};
use planner::{ApplyOptions, Event, Observer, PlanRequest, Registry};
use providers::{ApplyRequest, BoxFuture, Provider, ProviderError, ProviderSchema, Realized, ResourceSchema};
use serde_json::{json, Map, Value};
use state::{LocalBackend, ResourceState, StateDoc, StateWriter};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn compile(yaml: &str, inputs: &[(&str, &str)]) -> tosca::topology::Topology {
    let mut sources = tosca::Sources::new();
    let mut diags = tosca::Diagnostics::new();
    let mut ins = tosca::Inputs::new();
    for (k, v) in inputs {
        let f = sources.add(format!("<{k}>"), v.to_string());
        let y = tosca::yaml::parse(f, v, &tosca::yaml::Limits::default()).expect("input value parses");
        let span = tosca::Span { file: f, offset: 0, len: 0, line: 1, col: 1 };
        ins.push(tosca::syntax::Sp::new(k.to_string(), span), y);
    }
    let entry = tosca::loader::Entry::Text { name: "t.yaml".into(), text: yaml.into() };
    let c = tosca::compile(&entry, &tosca::loader::LoadOptions::default(), &ins, std::mem::take(&mut diags), sources);
    let errors: Vec<String> = c.diagnostics.iter().filter(|d| d.is_error()).map(|d| format!("{} {}", d.code, d.message)).collect();
    assert!(errors.is_empty(), "template has errors: {errors:#?}");
    c.topology
}

/// Records every call; fails creates/updates of the addresses in `fail`. Properties under
/// `image` force replacement (like a VM image); everything else updates in place.
pub struct Fake {
    pub calls: Mutex<Vec<(String, String)>>,
    pub fail: Mutex<HashSet<String>>,
    schema: ProviderSchema,
}

impl Fake {
    pub fn new() -> Arc<Fake> {
        Arc::new(Fake {
            calls: Mutex::new(Vec::new()),
            fail: Mutex::new(HashSet::new()),
            schema: ProviderSchema {
                name: "fake".into(),
                resources: vec![ResourceSchema {
                    node_type: "tosca.nodes.Root".into(),
                    force_replace: vec!["properties.image".into()],
                    update_all: true,
                    update_in_place: vec![],
                    attributes: vec!["private_address".into()],
                    update_notes: vec![],
                }],
            },
        })
    }

    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, op: &str, address: &str) -> Result<(), ProviderError> {
        self.calls.lock().unwrap().push((op.to_string(), address.to_string()));
        if self.fail.lock().unwrap().contains(address) {
            return Err(ProviderError::new(format!("{address}: injected failure")));
        }
        Ok(())
    }
}

fn realized(req: &ApplyRequest) -> Realized {
    let mut attributes = Map::new();
    attributes.insert("private_address".into(), json!(format!("10.0.0.{}", req.address.len())));
    attributes.insert("seen_config".into(), req.config.clone());
    Realized { id: format!("fake-{}", req.address), attributes, outputs: Default::default(), private: Value::Null, observed: None, tainted: None }
}

impl Provider for Fake {
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn create<'a>(&'a self, req: &'a ApplyRequest) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(async move {
            self.record("create", &req.address)?;
            Ok(realized(req))
        })
    }
    fn update<'a>(&'a self, _prior: &'a ResourceState, req: &'a ApplyRequest, _ops: &'a [String]) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(async move {
            self.record("update", &req.address)?;
            Ok(realized(req))
        })
    }
    fn read<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<Option<Realized>, ProviderError>> {
        Box::pin(async move {
            Ok(Some(Realized { id: prior.id.clone().unwrap_or_default(), attributes: prior.attributes.clone(), outputs: prior.outputs.clone(), private: prior.private.clone(), observed: None, tainted: None }))
        })
    }
    fn delete<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { self.record("delete", &prior.address) })
    }
}

pub fn registry(fake: &Arc<Fake>) -> Registry {
    let mut r = Registry::new("fake");
    r.add("fake", fake.clone() as Arc<dyn Provider>);
    r
}

pub fn make_plan(topo: &tosca::topology::Topology, prior: &StateDoc, reg: &Registry, mode: PlanMode) -> Plan {
    try_plan(topo, prior, reg, mode, &[]).expect("plan")
}

pub fn try_plan(topo: &tosca::topology::Topology, prior: &StateDoc, reg: &Registry, mode: PlanMode, replace: &[&str]) -> Result<Plan, planner::PlanError> {
    planner::plan(&PlanRequest {
        topology: topo,
        prior,
        registry: reg,
        mode,
        replace: replace.iter().map(|s| s.to_string()).collect(),
        targets: vec![],
        base_dir: ".".into(),
        template: "t.yaml".into(),
        digest: "sha256:test".into(),
        refreshed: false,
        drift: vec![],
        created: "2026-11-22T00:00:00Z".into(),
    })
}

struct Quiet;
impl Observer for Quiet {
    fn event(&self, _: Event) {}
}

/// Applies `plan` on a local state file in `dir`; returns the report and the state after.
pub fn apply(plan: &Plan, reg: &Registry, dir: &Path, prior: StateDoc) -> (planner::ApplyReport, StateDoc) {
    let backend = Arc::new(LocalBackend::new(dir.join("state.json")));
    let writer = StateWriter::new(backend.clone(), prior);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let opts = ApplyOptions { parallelism: 4, provider_limits: Default::default(), workdir: dir.join(".rosca"), timeout: Duration::from_secs(30), progress_every: Duration::from_secs(10) };
    let report = rt.block_on(planner::apply(plan, reg, writer.clone(), &opts, Arc::new(Quiet)));
    let doc = writer.finish().expect("state written");
    // What is on disk is what the writer holds.
    let on_disk = state::StateBackend::read(backend.as_ref()).unwrap().unwrap();
    assert_eq!(on_disk, doc);
    (report, doc)
}

/// `address: action [reasons]` per change, for compact assertions.
pub fn actions(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action != planner::Action::NoOp)
        .map(|c| {
            let reasons: Vec<String> = c.reasons.iter().map(|r| serde_json::to_value(r.code).unwrap().as_str().unwrap().to_string()).collect();
            format!("{}: {} [{}]", c.address, c.action.json_actions().join(","), reasons.join(","))
        })
        .collect()
}
