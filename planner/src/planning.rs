//! Topology + prior state → Plan. Pure: no IO (refresh happens before, in `refresh`).

use crate::desired::{self, Built};
use crate::diff::changed_paths;
use crate::expr::{self, AttrSource, Lookup};
use crate::graph;
use crate::instances::Instances;
use crate::plan::*;
use crate::registry::Registry;
use serde_json::{json, Map, Value};
use state::{ResourceState, ResourceStatus, StateDoc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use tosca::topology::Topology;

pub struct PlanRequest<'a> {
    pub topology: &'a Topology,
    pub prior: &'a StateDoc,
    pub registry: &'a Registry,
    pub mode: PlanMode,
    /// Addresses to replace even when unchanged (`--replace`).
    pub replace: Vec<String>,
    /// Limit to these addresses (or node names) and what they depend on (`--target`).
    pub targets: Vec<String>,
    /// Where implementation artifacts resolve.
    pub base_dir: PathBuf,
    pub template: String,
    pub digest: String,
    pub refreshed: bool,
    /// Drift found by refresh (already applied to `prior`).
    pub drift: Vec<Drift>,
    pub created: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("dependency cycle between instances: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("{address}: {message}")]
    Instance { address: String, message: String },
    #[error("--target {0} matches no instance in the template or in state")]
    UnknownTarget(String),
    #[error("--replace {0} matches no instance in state")]
    UnknownReplace(String),
}

/// Plan-time view of attributes: those of instances that stay as they are come from state;
/// those of instances to be created or replaced are unknown.
struct PlanView<'a> {
    prior: &'a StateDoc,
    fresh: &'a HashSet<String>,
}

impl AttrSource for PlanView<'_> {
    fn attribute(&self, address: &str, name: &str) -> Lookup {
        if self.fresh.contains(address) {
            return Lookup::Unknown;
        }
        match self.prior.resource(address) {
            Some(r) => match r.attributes.get(name).or_else(|| r.config.get("properties").and_then(|p| p.get(name))) {
                Some(v) => Lookup::Value(v.clone()),
                None => Lookup::Missing,
            },
            None => Lookup::Unknown,
        }
    }

    fn output(&self, address: &str, operation: &str, name: &str) -> Lookup {
        if self.fresh.contains(address) {
            return Lookup::Unknown;
        }
        match self.prior.resource(address) {
            Some(r) => match r.outputs.get(operation).and_then(|o| o.get(name)) {
                Some(v) => Lookup::Value(v.clone()),
                None => Lookup::Missing,
            },
            None => Lookup::Unknown,
        }
    }
}

pub fn plan(req: &PlanRequest<'_>) -> Result<Plan, PlanError> {
    let prior = req.prior;
    let instances = Instances::expand(req.topology, prior);
    let mut built = if req.mode == PlanMode::Normal {
        desired::build(req.topology, &instances, req.registry, &req.base_dir)?
    } else {
        Built::default()
    };

    for r in &req.replace {
        if prior.resource(r).is_none() {
            return Err(PlanError::UnknownReplace(r.clone()));
        }
    }

    // Apply order of the desired instances.
    let addrs: Vec<String> = built.instances.keys().cloned().collect();
    let edges: Vec<(String, String)> = built
        .instances
        .iter()
        .flat_map(|(a, d)| d.desired.dependencies.iter().map(move |b| (a.clone(), b.clone())))
        .collect();
    let order = graph::order(&addrs, &edges).map_err(PlanError::Cycle)?;

    let mut fresh: HashSet<String> = HashSet::new();
    let mut changes: Vec<ResourceChange> = Vec::with_capacity(order.len() + prior.resources.len());
    for addr in &order {
        let inst = &built.instances[addr];
        let view = PlanView { prior, fresh: &fresh };
        let (after, after_unknown) = expr::eval_partial(&inst.desired.config, &view);
        let prior_r = prior.resource(addr);
        let mut change = decide(req, addr, inst, prior_r, after, after_unknown);
        if change.action.creates() {
            fresh.insert(addr.clone());
        }
        // Moved, not copied: `built` needs only its addresses from here on.
        change.desired = built.instances.get_mut(addr.as_str()).map(|i| std::mem::take(&mut i.desired));
        changes.push(change);
    }

    // Instances in state that the template no longer has (or everything, when destroying).
    let mut deletes = Vec::new();
    for r in &prior.resources {
        if built.instances.contains_key(&r.address) {
            continue;
        }
        let code = if req.mode != PlanMode::Normal {
            ReasonCode::DeleteBecauseDestroy
        } else {
            instances.removed.get(&r.address).copied().unwrap_or(ReasonCode::DeleteBecauseNoNode)
        };
        deletes.push(delete_change(r, code));
    }
    // Deletes wait for the deletion of what depends on them: reverse dependency order. Given
    // last address first, independent deletes run from the end of the state's sorted resource
    // list, so each removal from it is cheap (from the front, each would shift all the rest).
    let del_addrs: Vec<String> = deletes.iter().rev().map(|c| c.address.clone()).collect();
    let del_edges: Vec<(String, String)> = prior
        .resources
        .iter()
        .flat_map(|r| r.dependencies.iter().map(move |d| (d.clone(), r.address.clone())))
        .collect();
    let del_order = graph::order(&del_addrs, &del_edges).unwrap_or(del_addrs);
    let mut by_addr: HashMap<String, ResourceChange> = deletes.into_iter().map(|c| (c.address.clone(), c)).collect();
    for a in del_order {
        if let Some(c) = by_addr.remove(&a) {
            changes.push(c);
        }
    }

    // A delete waits for the deletes of its dependents (from state).
    let deleting: HashSet<String> = changes.iter().filter(|c| c.action.deletes()).map(|c| c.address.clone()).collect();
    let mut dependents: HashMap<&str, Vec<String>> = HashMap::new();
    for r in &prior.resources {
        for d in &r.dependencies {
            if deleting.contains(&r.address) {
                dependents.entry(d.as_str()).or_default().push(r.address.clone());
            }
        }
    }
    for c in changes.iter_mut().filter(|c| c.action == Action::Delete) {
        c.depends_on = dependents.get(c.address.as_str()).cloned().unwrap_or_default();
    }

    if req.mode == PlanMode::RefreshOnly {
        for c in changes.iter_mut() {
            c.action = Action::NoOp;
            c.reasons.clear();
        }
        changes.retain(|c| prior.resource(&c.address).is_some());
    }

    if !req.targets.is_empty() {
        changes = restrict(changes, &req.targets)?;
    }

    let outputs = if req.mode == PlanMode::RefreshOnly {
        Vec::new()
    } else {
        plan_outputs(req, &built, &fresh)
    };

    let (inputs, sensitive_inputs) = inputs_of(req.topology);
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION.to_string(),
        rosca_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: req.mode,
        created: req.created.clone(),
        binding: Binding { lineage: prior.lineage.clone(), serial: prior.serial, template: req.template.clone(), digest: req.digest.clone() },
        inputs,
        sensitive_inputs,
        changes,
        drift: req.drift.clone(),
        outputs,
        refreshed: req.refreshed,
    })
}

/// Input values used, and the names of the sensitive ones.
pub fn inputs_of(topo: &Topology) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut sensitive = Vec::new();
    for (name, input) in &topo.inputs {
        if let Some(v) = &input.value {
            values.insert(name.clone(), v.clone());
        }
        if input.sensitive {
            sensitive.push(name.clone());
        }
    }
    (values, sensitive)
}

fn decide(
    req: &PlanRequest<'_>,
    addr: &str,
    inst: &desired::Instance,
    prior_r: Option<&ResourceState>,
    after: Value,
    after_unknown: Value,
) -> ResourceChange {
    let d = &inst.desired;
    let after_sensitive = sensitive_mask(&after, &d.sensitive);
    let mut change = ResourceChange {
        address: addr.to_string(),
        node: inst.node.clone(),
        index: inst.index,
        type_name: d.types.first().cloned().unwrap_or_default(),
        provider: inst.provider.clone(),
        action: Action::NoOp,
        reasons: Vec::new(),
        before: Value::Null,
        after,
        after_unknown,
        before_sensitive: Value::Null,
        after_sensitive,
        replace_paths: Vec::new(),
        operations: Vec::new(),
        depends_on: d.dependencies.clone(),
        // Set by the caller (moved out of `Built`).
        desired: None,
    };
    let replace_action = if d.create_before_destroy { Action::CreateThenDelete } else { Action::DeleteThenCreate };
    let Some(p) = prior_r else {
        change.action = Action::Create;
        let gone = req.drift.iter().any(|x| x.address == addr && x.kind == "gone");
        change.reasons.push(reason(if gone { ReasonCode::CreateBecauseGone } else { ReasonCode::NotInState }));
        return change;
    };
    change.before = p.config.clone();
    change.before_sensitive = sensitive_mask(&p.config, &p.sensitive);
    if p.provider != inst.provider {
        change.action = replace_action;
        change.reasons.push(Reason { code: ReasonCode::ReplaceBecauseCannotUpdate, paths: vec![], detail: Some(format!("provider changes from {} to {}", p.provider, inst.provider)) });
        return change;
    }
    match p.status {
        ResourceStatus::Tainted => {
            change.action = replace_action;
            change.reasons.push(reason(ReasonCode::ReplaceBecauseTainted));
            return change;
        }
        ResourceStatus::Pending => {
            change.action = replace_action;
            let what = p.pending.as_ref().map(|o| o.action.clone()).unwrap_or_default();
            change.reasons.push(Reason { code: ReasonCode::ReplaceBecausePending, paths: vec![], detail: Some(format!("an interrupted {what} left its outcome unknown")) });
            return change;
        }
        ResourceStatus::Created => {}
    }
    let requested = req.replace.iter().any(|r| r == addr);
    let paths = changed_paths(&p.config, &change.after, &change.after_unknown);
    let schema = req.registry.schema(&inst.provider, &d.types);
    let mut replace_paths = Vec::new();
    let mut update_paths = Vec::new();
    let mut op_paths: BTreeSet<String> = BTreeSet::new();
    for path in &paths {
        match path.first().map(String::as_str) {
            Some("operations") => {
                let op = path.get(1).cloned().unwrap_or_default();
                if op == "create" {
                    replace_paths.push(path.clone());
                } else {
                    op_paths.insert(op);
                    update_paths.push(path.clone());
                }
            }
            _ => {
                let forces = schema.as_ref().is_none_or(|s| s.forces_replacement(path));
                if forces {
                    replace_paths.push(path.clone());
                } else {
                    update_paths.push(path.clone());
                }
            }
        }
    }
    let dotted = |ps: &[Vec<String>]| ps.iter().map(|p| p.join(".")).collect::<Vec<_>>();
    if requested || !replace_paths.is_empty() {
        change.action = replace_action;
        if requested {
            change.reasons.push(reason(ReasonCode::ReplaceByRequest));
        }
        if !replace_paths.is_empty() {
            change.reasons.push(Reason { code: ReasonCode::ReplaceBecauseCannotUpdate, paths: dotted(&replace_paths), detail: None });
        }
        change.replace_paths = replace_paths;
        return change;
    }
    if update_paths.is_empty() {
        return change;
    }
    change.action = Action::Update;
    let unknown_only = update_paths.iter().all(|p| is_unknown_at(&change.after_unknown, p));
    let code = if unknown_only {
        ReasonCode::UpdateBecauseDependencyChanges
    } else if update_paths.iter().all(|p| p.first().map(String::as_str) == Some("operations")) {
        ReasonCode::OperationInputsChanged
    } else {
        ReasonCode::ConfigChanged
    };
    // How the provider makes the change (a resize, a rebuild), when it says.
    let detail = if code == ReasonCode::ConfigChanged { schema.as_ref().and_then(|s| s.update_note(&update_paths)) } else { None };
    change.reasons.push(Reason { code, paths: dotted(&update_paths), detail });
    change.operations = rerun_operations(d, &update_paths, &op_paths);
    change
}

/// Lifecycle operations an in-place update re-runs: `configure` for a property change (with
/// `stop`/`start` around it when the node has a `start`, so a running service picks the change
/// up); only the operations whose inputs changed otherwise.
fn rerun_operations(d: &Desired, paths: &[Vec<String>], ops_changed: &BTreeSet<String>) -> Vec<String> {
    let has = |op: &str| d.operations.contains_key(op);
    let props_changed = paths.iter().any(|p| p.first().map(String::as_str) != Some("operations"));
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    if props_changed || ops_changed.contains("configure") {
        wanted.insert("configure");
    }
    if ops_changed.contains("start") {
        wanted.insert("start");
    }
    if (wanted.contains("configure") || wanted.contains("start")) && has("start") {
        wanted.insert("start");
        wanted.insert("stop");
    }
    ["stop", "configure", "start"].into_iter().filter(|op| wanted.contains(op) && has(op)).map(str::to_string).collect()
}

fn is_unknown_at(mask: &Value, path: &[String]) -> bool {
    let mut cur = mask;
    for seg in path {
        match cur {
            Value::Bool(b) => return *b,
            Value::Object(m) => match m.get(seg) {
                Some(v) => cur = v,
                None => return false,
            },
            _ => return false,
        }
    }
    expr::any_unknown(cur)
}

fn reason(code: ReasonCode) -> Reason {
    Reason { code, paths: Vec::new(), detail: None }
}

fn delete_change(r: &ResourceState, code: ReasonCode) -> ResourceChange {
    ResourceChange {
        address: r.address.clone(),
        node: r.node.clone(),
        index: r.index,
        type_name: r.type_name.clone(),
        provider: r.provider.clone(),
        action: Action::Delete,
        reasons: vec![reason(code)],
        before: r.config.clone(),
        after: Value::Null,
        after_unknown: json!({}),
        before_sensitive: sensitive_mask(&r.config, &r.sensitive),
        after_sensitive: Value::Null,
        replace_paths: Vec::new(),
        operations: Vec::new(),
        depends_on: Vec::new(),
        desired: None,
    }
}

/// Mirror of `value` with `true` at the sensitive paths (dotted, into the config).
pub fn sensitive_mask(value: &Value, paths: &[String]) -> Value {
    let mut mask = Map::new();
    for p in paths {
        let segs: Vec<&str> = p.split('.').collect();
        if !path_exists(value, &segs) {
            continue;
        }
        insert_true(&mut mask, &segs);
    }
    Value::Object(mask)
}

fn path_exists(v: &Value, segs: &[&str]) -> bool {
    let mut cur = v;
    for s in segs {
        match cur.get(s) {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

fn insert_true(mask: &mut Map<String, Value>, segs: &[&str]) {
    let Some((first, rest)) = segs.split_first() else { return };
    if rest.is_empty() {
        mask.insert(first.to_string(), Value::Bool(true));
        return;
    }
    let entry = mask.entry(first.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entry {
        insert_true(m, rest);
    }
}

/// Keeps the changes of the targeted instances and of everything they depend on (creates and
/// updates) or that depends on them (deletes).
fn restrict(changes: Vec<ResourceChange>, targets: &[String]) -> Result<Vec<ResourceChange>, PlanError> {
    let matches = |t: &str, c: &ResourceChange| c.address == t || c.node == t;
    for t in targets {
        if !changes.iter().any(|c| matches(t, c)) {
            return Err(PlanError::UnknownTarget(t.clone()));
        }
    }
    let by_addr: HashMap<&str, &ResourceChange> = changes.iter().map(|c| (c.address.as_str(), c)).collect();
    let mut keep: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> = changes.iter().filter(|c| targets.iter().any(|t| matches(t, c))).map(|c| c.address.clone()).collect();
    while let Some(a) = stack.pop() {
        if !keep.insert(a.clone()) {
            continue;
        }
        if let Some(c) = by_addr.get(a.as_str()) {
            stack.extend(c.depends_on.iter().cloned());
        }
    }
    Ok(changes.into_iter().filter(|c| keep.contains(&c.address)).collect())
}

fn plan_outputs(req: &PlanRequest<'_>, built: &Built, fresh: &HashSet<String>) -> Vec<OutputChange> {
    let view = PlanView { prior: req.prior, fresh };
    let mut out = Vec::new();
    for (name, o) in &built.outputs {
        let (after, mask) = expr::eval_partial(&o.value, &view);
        let unknown = expr::any_unknown(&mask);
        let before = req.prior.outputs.get(name).map(|s| s.value.clone());
        let action = match &before {
            None => Action::Create,
            Some(b) if unknown || *b != after => Action::Update,
            Some(_) => Action::NoOp,
        };
        out.push(OutputChange {
            name: name.clone(),
            action,
            before: before.unwrap_or(Value::Null),
            after: if unknown { Value::Null } else { after },
            after_unknown: unknown,
            sensitive: o.sensitive,
            value: o.value.clone(),
        });
    }
    if req.mode == PlanMode::Normal {
        for (name, s) in &req.prior.outputs {
            if !built.outputs.contains_key(name) {
                out.push(OutputChange { name: name.clone(), action: Action::Delete, before: s.value.clone(), after: Value::Null, after_unknown: false, sensitive: s.sensitive, value: Value::Null });
            }
        }
    } else if req.mode == PlanMode::Destroy {
        out.clear();
        for (name, s) in &req.prior.outputs {
            out.push(OutputChange { name: name.clone(), action: Action::Delete, before: s.value.clone(), after: Value::Null, after_unknown: false, sensitive: s.sensitive, value: Value::Null });
        }
    }
    out
}
