//! The applier: walks a plan's actions as a DAG on tokio with bounded parallelism (global and
//! per provider), calls providers, and records every step in state write-ahead: `pending`
//! before a provider call, the result after. A failed action skips its dependents;
//! independent branches finish.

use crate::expr::{self, AttrSource, Lookup};
use crate::plan::{Action, Plan, ResourceChange};
use crate::registry::Registry;
use providers::{ApplyRequest, HostRef, Provider, ProviderError, Realized, RelationshipSpec, Resolver, StatusLine};
use serde_json::{Map, Value};
use state::{OutputState, PendingOp, ResourceState, ResourceStatus, StateDoc, StateWriter, TemplateRef};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub struct ApplyOptions {
    pub parallelism: usize,
    /// Optional cap per provider name.
    pub provider_limits: HashMap<String, usize>,
    pub workdir: PathBuf,
    pub timeout: Duration,
    /// How often a running step reports `Still creating...`.
    pub progress_every: Duration,
}

/// What a step does to one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Create,
    Update,
    Delete,
}

impl Phase {
    pub fn verb(self) -> (&'static str, &'static str) {
        match self {
            Phase::Create => ("Creating", "Creation"),
            Phase::Update => ("Modifying", "Modifications"),
            Phase::Delete => ("Destroying", "Destruction"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Event {
    Started { address: String, phase: Phase },
    /// `detail` is what the provider last said it is waiting for (`job 42 RUNNING`).
    Still { address: String, phase: Phase, elapsed: Duration, detail: Option<String> },
    Done { address: String, phase: Phase, elapsed: Duration, id: Option<String> },
    Failed { address: String, phase: Phase, message: String },
    Skipped { address: String, phase: Phase, because: String },
}

/// Receives progress; the CLI prints it, the server logs it.
pub trait Observer: Send + Sync {
    fn event(&self, event: Event);
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub done: Vec<(String, Phase)>,
    pub failed: Vec<(String, Phase, String)>,
    pub skipped: Vec<(String, Phase)>,
    pub added: usize,
    pub changed: usize,
    pub destroyed: usize,
    /// State could not be persisted: the apply stopped.
    pub state_error: Option<String>,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.state_error.is_none()
    }
}

struct Step {
    address: String,
    phase: Phase,
    /// Index into `plan.changes`.
    change: usize,
    /// For the delete half of create-then-delete: the old object, kept under a deposed address.
    deposed: bool,
}

pub async fn apply(plan: &Plan, registry: &Registry, writer: StateWriter, opts: &ApplyOptions, observer: Arc<dyn Observer>) -> ApplyReport {
    let mut report = ApplyReport::default();
    let prior_deps: Vec<(String, Vec<String>)> = writer.with_doc(|d| d.resources.iter().map(|r| (r.address.clone(), r.dependencies.clone())).collect());
    if plan.mode == crate::plan::PlanMode::Normal {
        if let Err(e) = writer.set_template(Some(TemplateRef { path: plan.binding.template.clone(), digest: plan.binding.digest.clone() }), plan.inputs.clone(), plan.sensitive_inputs.clone()) {
            report.state_error = Some(e.to_string());
            return report;
        }
    }
    let (steps, deps) = build_steps(plan, &prior_deps);
    let n = steps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            successors[d].push(i);
        }
    }
    let global = Arc::new(Semaphore::new(opts.parallelism.max(1)));
    let per_provider: HashMap<String, Arc<Semaphore>> = opts.provider_limits.iter().map(|(k, v)| (k.clone(), Arc::new(Semaphore::new((*v).max(1))))).collect();
    let plan = Arc::new(plan.clone());
    let steps = Arc::new(steps);
    let mut set: JoinSet<(usize, Result<(), String>)> = JoinSet::new();
    let mut state_failed = false;
    let mut blocked = vec![false; n];
    let ctx = Arc::new(Ctx { writer: writer.clone(), workdir: opts.workdir.clone(), timeout: opts.timeout, progress_every: opts.progress_every, observer: observer.clone() });

    let spawn = |i: usize, set: &mut JoinSet<(usize, Result<(), String>)>| {
        let plan = plan.clone();
        let steps = steps.clone();
        let ctx = ctx.clone();
        let global = global.clone();
        let step_provider = plan.changes[steps[i].change].provider.clone();
        let limit = per_provider.get(&step_provider).cloned();
        let provider = registry.get(&step_provider).cloned();
        set.spawn(async move {
            let _g = global.acquire_owned().await;
            let _p = match limit {
                Some(s) => Some(s.acquire_owned().await),
                None => None,
            };
            let step = &steps[i];
            let Some(provider) = provider else {
                return (i, Err(format!("no provider named `{step_provider}` is configured")));
            };
            (i, run_step(&ctx, provider.as_ref(), &plan.changes[step.change], step).await)
        });
    };
    for (i, w) in waiting.iter().enumerate() {
        if *w == 0 {
            spawn(i, &mut set);
        }
    }
    while let Some(joined) = set.join_next().await {
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A task panicked or was cancelled; nothing in it can be trusted.
                report.state_error.get_or_insert(format!("an apply task failed: {e}"));
                continue;
            }
        };
        let step = &steps[i];
        match result {
            Ok(()) => {
                report.done.push((step.address.clone(), step.phase));
                let ch = &plan.changes[step.change];
                match (step.phase, ch.action) {
                    (Phase::Create, _) => report.added += 1,
                    (Phase::Update, _) => report.changed += 1,
                    (Phase::Delete, _) => report.destroyed += 1,
                }
                for &s in &successors[i] {
                    waiting[s] -= 1;
                    if waiting[s] == 0 && !blocked[s] && !state_failed {
                        spawn(s, &mut set);
                    }
                }
            }
            Err(message) => {
                if message.starts_with(STATE_ERROR_PREFIX) {
                    state_failed = true;
                    report.state_error.get_or_insert(message.clone());
                }
                observer.event(Event::Failed { address: step.address.clone(), phase: step.phase, message: message.clone() });
                report.failed.push((step.address.clone(), step.phase, message));
                // Everything downstream is skipped.
                let mut stack = successors[i].clone();
                while let Some(s) = stack.pop() {
                    if blocked[s] {
                        continue;
                    }
                    blocked[s] = true;
                    observer.event(Event::Skipped { address: steps[s].address.clone(), phase: steps[s].phase, because: step.address.clone() });
                    report.skipped.push((steps[s].address.clone(), steps[s].phase));
                    stack.extend(successors[s].iter().copied());
                }
            }
        }
    }
    if !state_failed {
        if let Err(e) = write_outputs(&plan, &writer) {
            report.state_error.get_or_insert(e);
        }
    }
    report
}

const STATE_ERROR_PREFIX: &str = "state: ";

/// Steps and, for each, the steps it waits for.
fn build_steps(plan: &Plan, prior: &[(String, Vec<String>)]) -> (Vec<Step>, Vec<Vec<usize>>) {
    let mut steps = Vec::new();
    let mut apply_ix: HashMap<&str, usize> = HashMap::new();
    let mut delete_ix: HashMap<&str, usize> = HashMap::new();
    for (ci, c) in plan.changes.iter().enumerate() {
        let push = |phase: Phase, deposed: bool, steps: &mut Vec<Step>| {
            steps.push(Step { address: c.address.clone(), phase, change: ci, deposed });
            steps.len() - 1
        };
        match c.action {
            Action::NoOp | Action::Read => {}
            Action::Create => {
                apply_ix.insert(&c.address, push(Phase::Create, false, &mut steps));
            }
            Action::Update => {
                apply_ix.insert(&c.address, push(Phase::Update, false, &mut steps));
            }
            Action::Delete => {
                delete_ix.insert(&c.address, push(Phase::Delete, false, &mut steps));
            }
            Action::DeleteThenCreate => {
                delete_ix.insert(&c.address, push(Phase::Delete, false, &mut steps));
                apply_ix.insert(&c.address, push(Phase::Create, false, &mut steps));
            }
            Action::CreateThenDelete => {
                apply_ix.insert(&c.address, push(Phase::Create, false, &mut steps));
                delete_ix.insert(&c.address, push(Phase::Delete, true, &mut steps));
            }
        }
    }
    // Reverse edges from state, built once (a scan per step would be quadratic).
    let mut dependents_of: HashMap<&str, Vec<String>> = HashMap::new();
    for (addr, ds) in prior {
        for d in ds {
            dependents_of.entry(d.as_str()).or_default().push(addr.clone());
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (si, s) in steps.iter().enumerate() {
        let c = &plan.changes[s.change];
        match s.phase {
            Phase::Create | Phase::Update => {
                if let Some(d) = &c.desired {
                    for dep in &d.dependencies {
                        if let Some(&j) = apply_ix.get(dep.as_str()) {
                            deps[si].push(j);
                        }
                    }
                }
                if c.action == Action::DeleteThenCreate {
                    if let Some(&j) = delete_ix.get(c.address.as_str()) {
                        deps[si].push(j);
                    }
                }
            }
            Phase::Delete => {
                // Wait for the deletion of everything that depends on this one.
                for addr in dependents_of.get(c.address.as_str()).into_iter().flatten() {
                    if let Some(&j) = delete_ix.get(addr.as_str()) {
                        if j != si {
                            deps[si].push(j);
                        }
                    }
                }
                if c.action == Action::CreateThenDelete {
                    if let Some(&j) = apply_ix.get(c.address.as_str()) {
                        deps[si].push(j);
                    }
                }
            }
        }
        deps[si].sort_unstable();
        deps[si].dedup();
    }
    (steps, deps)
}

struct Ctx {
    writer: StateWriter,
    workdir: PathBuf,
    timeout: Duration,
    progress_every: Duration,
    observer: Arc<dyn Observer>,
}

/// Apply-time view: every attribute comes from state as it is now (dependencies are done).
struct ApplyView<'a> {
    doc: &'a StateDoc,
    self_address: Option<&'a str>,
    self_attributes: Option<&'a Map<String, Value>>,
    self_outputs: Option<&'a BTreeMap<String, Map<String, Value>>>,
}

impl AttrSource for ApplyView<'_> {
    fn attribute(&self, address: &str, name: &str) -> Lookup {
        if Some(address) == self.self_address {
            if let Some(v) = self.self_attributes.and_then(|a| a.get(name)) {
                return Lookup::Value(v.clone());
            }
        }
        match self.doc.resource(address) {
            Some(r) => match r.attributes.get(name).or_else(|| r.config.get("properties").and_then(|p| p.get(name))) {
                Some(v) => Lookup::Value(v.clone()),
                None => Lookup::Missing,
            },
            None => Lookup::Missing,
        }
    }

    fn output(&self, address: &str, operation: &str, name: &str) -> Lookup {
        if Some(address) == self.self_address {
            if let Some(v) = self.self_outputs.and_then(|o| o.get(operation)).and_then(|o| o.get(name)) {
                return Lookup::Value(v.clone());
            }
        }
        match self.doc.resource(address).and_then(|r| r.outputs.get(operation)).and_then(|o| o.get(name)) {
            Some(v) => Lookup::Value(v.clone()),
            None => Lookup::Missing,
        }
    }
}

/// Evaluates with unknowns as null (at apply time nothing is left to wait for).
fn eval_now(v: &Value, view: &ApplyView<'_>) -> Value {
    expr::eval_partial(v, view).0
}

struct ApplyResolver {
    writer: StateWriter,
    address: String,
}

impl Resolver for ApplyResolver {
    fn resolve(&self, value: &Value, self_attributes: &Map<String, Value>, self_outputs: &BTreeMap<String, Map<String, Value>>) -> Result<Value, String> {
        Ok(self.writer.with_doc(|doc| {
            let view = ApplyView { doc, self_address: Some(&self.address), self_attributes: Some(self_attributes), self_outputs: Some(self_outputs) };
            eval_now(value, &view)
        }))
    }
}

async fn run_step(ctx: &Ctx, provider: &dyn Provider, change: &ResourceChange, step: &Step) -> Result<(), String> {
    ctx.observer.event(Event::Started { address: step.address.clone(), phase: step.phase });
    let started = Instant::now();
    let status = StatusLine::default();
    let work = async {
        match step.phase {
            Phase::Create | Phase::Update => create_or_update(ctx, provider, change, step, &status).await,
            Phase::Delete => delete(ctx, provider, change, step).await,
        }
    };
    tokio::pin!(work);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ctx.progress_every, ctx.progress_every);
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => ctx.observer.event(Event::Still { address: step.address.clone(), phase: step.phase, elapsed: started.elapsed(), detail: status.get() }),
        }
    };
    if let Ok(id) = &result {
        ctx.observer.event(Event::Done { address: step.address.clone(), phase: step.phase, elapsed: started.elapsed(), id: id.clone() });
    }
    result.map(|_| ())
}

fn state_err(e: state::StateError) -> String {
    format!("{STATE_ERROR_PREFIX}{e}")
}

fn now() -> String {
    crate::time::now()
}

async fn create_or_update(ctx: &Ctx, provider: &dyn Provider, change: &ResourceChange, step: &Step, status: &StatusLine) -> Result<Option<String>, String> {
    let Some(desired) = &change.desired else {
        return Err("the plan has no desired configuration for this instance (a corrupt plan file?)".into());
    };
    // Everything read from state is read under one borrow: no copy of the whole document
    // per step (that would make an apply quadratic in the number of resources).
    let (config, hosts, relationships, prior) = ctx.writer.with_doc(|doc| {
        let view = ApplyView { doc, self_address: None, self_attributes: None, self_outputs: None };
        let config = eval_now(&desired.config, &view);
        let host_ref = |addr: &String| HostRef { address: addr.clone(), attributes: doc.resource(addr).map(|r| r.attributes.clone()).unwrap_or_default() };
        let hosts: Vec<HostRef> = desired.hosts.iter().map(host_ref).collect();
        let relationships: Vec<RelationshipSpec> = desired
            .relationships
            .iter()
            .map(|r| {
                let target = doc.resource(&r.target);
                // The target's sandbox: the last host in its chain that has one.
                let target_host = target.and_then(|t| {
                    t.dependencies.iter().rev().filter_map(|d| doc.resource(d)).find(|h| h.attributes.contains_key("sandbox")).map(|h| HostRef { address: h.address.clone(), attributes: h.attributes.clone() })
                });
                RelationshipSpec {
                    requirement: r.requirement.clone(),
                    type_name: r.type_name.clone(),
                    target: r.target.clone(),
                    target_attributes: target.map(|t| t.attributes.clone()).unwrap_or_default(),
                    target_host,
                    operations: r.operations.clone(),
                }
            })
            .collect();
        (config, hosts, relationships, doc.resource(&change.address).cloned())
    });
    let req = ApplyRequest {
        address: change.address.clone(),
        node: change.node.clone(),
        index: change.index,
        types: desired.types.clone(),
        config: config.clone(),
        operations: desired.operations.clone(),
        relationships,
        hosts,
        workdir: ctx.workdir.clone(),
        timeout: ctx.timeout,
        resolver: Arc::new(ApplyResolver { writer: ctx.writer.clone(), address: change.address.clone() }),
        status: status.clone(),
    };
    if change.action == Action::CreateThenDelete {
        if let Some(old) = &prior {
            // The old object stays known to state, under its deposed address, until deleted.
            let mut deposed = old.clone();
            deposed.address = deposed_address(&change.address);
            ctx.writer.put(deposed).map_err(state_err)?;
        }
    }
    let base = ResourceState {
        address: change.address.clone(),
        node: change.node.clone(),
        index: change.index,
        type_name: change.type_name.clone(),
        provider: change.provider.clone(),
        site: None,
        id: None,
        status: ResourceStatus::Pending,
        pending: Some(PendingOp { action: if step.phase == Phase::Update { "update" } else { "create" }.into(), started: now() }),
        config,
        attributes: Map::new(),
        outputs: BTreeMap::new(),
        sensitive: desired.sensitive.clone(),
        dependencies: desired.dependencies.clone(),
        private: Value::Null,
    };
    let mut pending = base.clone();
    if step.phase == Phase::Update {
        if let Some(p) = &prior {
            pending.id = p.id.clone();
            pending.attributes = p.attributes.clone();
            pending.outputs = p.outputs.clone();
            pending.private = p.private.clone();
        }
    }
    ctx.writer.put(pending.clone()).map_err(state_err)?;
    let result = match (step.phase, &prior) {
        (Phase::Update, Some(p)) => provider.update(p, &req, &change.operations).await,
        _ => provider.create(&req).await,
    };
    match result {
        Ok(realized) => {
            let id = realized.id.clone();
            let mut r = realized_state(base, realized, &change.node);
            // Values that read the instance's own attributes (`get_attribute: [SELF, ...]` in
            // operation inputs) are recorded as they are now that those exist, which is what
            // the next plan computes from state: otherwise they would differ forever.
            r.config = ctx.writer.with_doc(|doc| {
                let view = ApplyView { doc, self_address: Some(&change.address), self_attributes: Some(&r.attributes), self_outputs: Some(&r.outputs) };
                eval_now(&desired.config, &view)
            });
            ctx.writer.put(r).map_err(state_err)?;
            Ok(Some(id))
        }
        Err(ProviderError { message, partial, .. }) => {
            match partial {
                Some(p) => {
                    let mut r = realized_state(base, *p, &change.node);
                    r.status = ResourceStatus::Tainted;
                    ctx.writer.put(r).map_err(state_err)?;
                }
                None if step.phase == Phase::Update => {
                    let mut r = pending;
                    r.status = ResourceStatus::Tainted;
                    r.pending = None;
                    ctx.writer.put(r).map_err(state_err)?;
                }
                // The provider created nothing: forget the write-ahead record.
                None => ctx.writer.remove(&change.address).map_err(state_err)?,
            }
            Err(message)
        }
    }
}

fn realized_state(mut base: ResourceState, realized: Realized, node: &str) -> ResourceState {
    base.status = ResourceStatus::Created;
    base.pending = None;
    base.id = Some(realized.id.clone());
    let mut attributes = realized.attributes;
    attributes.entry("tosca_id").or_insert_with(|| Value::String(realized.id.clone()));
    attributes.entry("tosca_name").or_insert_with(|| Value::String(node.to_string()));
    base.attributes = attributes;
    base.outputs = realized.outputs;
    base.private = realized.private;
    base
}

pub fn deposed_address(address: &str) -> String {
    format!("{address}#deposed")
}

async fn delete(ctx: &Ctx, provider: &dyn Provider, change: &ResourceChange, step: &Step) -> Result<Option<String>, String> {
    let address = if step.deposed { deposed_address(&change.address) } else { change.address.clone() };
    let Some(prior) = ctx.writer.resource(&address) else {
        return Ok(None);
    };
    let mut pending = prior.clone();
    pending.status = ResourceStatus::Pending;
    pending.pending = Some(PendingOp { action: "delete".into(), started: now() });
    ctx.writer.put(pending).map_err(state_err)?;
    match provider.delete(&prior).await {
        Ok(()) => {
            ctx.writer.remove(&address).map_err(state_err)?;
            Ok(prior.id.clone())
        }
        Err(e) => {
            // Still there: keep it as it was, so the next plan deletes it again.
            ctx.writer.put(prior).map_err(state_err)?;
            Err(e.message)
        }
    }
}

fn write_outputs(plan: &Plan, writer: &StateWriter) -> Result<(), String> {
    let outputs = writer.with_doc(|doc| {
        let view = ApplyView { doc, self_address: None, self_attributes: None, self_outputs: None };
        let mut outputs = doc.outputs.clone();
        for o in &plan.outputs {
            if o.action == Action::Delete {
                outputs.remove(&o.name);
            } else {
                outputs.insert(o.name.clone(), OutputState { value: eval_now(&o.value, &view), sensitive: o.sensitive });
            }
        }
        if plan.mode == crate::plan::PlanMode::Destroy && doc.resources.is_empty() {
            outputs.clear();
        }
        outputs
    });
    writer.set_outputs(outputs).map_err(state_err)
}
