//! The desired resource of every instance: config with expressions lowered, lifecycle
//! operations with resolved scripts, relationships, hosts and dependencies.

use crate::expr::value_instances;
use crate::instances::Instances;
use crate::lower::{short_interface, Lowerer, Site};
use crate::plan::{Desired, DesiredRelationship};
use crate::planning::PlanError;
use crate::registry::Registry;
use indexmap::IndexMap;
use providers::OperationSpec;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use tosca::topology::{Interface, Node, Topology};

/// Artifacts whose file content goes into the config (see `build`).
const CONTENT_ARTIFACTS: &[&str] = &["user_data", "job_script"];

pub struct Instance {
    pub node: String,
    pub index: Option<u32>,
    pub provider: String,
    pub desired: Desired,
}

pub struct BuiltOutput {
    /// Lowered: expressions over instance attributes.
    pub value: Value,
    pub sensitive: bool,
}

#[derive(Default)]
pub struct Built {
    pub instances: IndexMap<String, Instance>,
    pub outputs: IndexMap<String, BuiltOutput>,
}

const LIFECYCLE: [&str; 5] = ["create", "configure", "start", "stop", "delete"];
const STANDARD: &str = "tosca.interfaces.node.lifecycle.Standard";
const CONFIGURE: &str = "tosca.interfaces.relationship.Configure";

pub fn build(topo: &Topology, instances: &Instances, registry: &Registry, base_dir: &Path) -> Result<Built, PlanError> {
    let lw = Lowerer { topo, instances, base_dir, touched_sensitive: Default::default() };
    let mut built = Built::default();
    for (node_name, node) in &topo.nodes {
        let provider = registry.provider_name(&node.types).to_string();
        if registry.get(&provider).is_none() {
            return Err(PlanError::Instance { address: node_name.clone(), message: format!("no provider named `{provider}` is configured: add a [sites.{provider}] table with its kind to rosca.toml, or map this node's type to a configured provider in [providers.types]") });
        }
        for (address, index) in instances.addresses(node_name) {
            let site = Site { node: node_name, index, source: None, target: None };
            let err = |message: String| PlanError::Instance { address: address.clone(), message };
            let mut sensitive = Vec::new();
            let lower_tracked = |v: &Value, path: String, site: Site<'_>, sensitive: &mut Vec<String>| -> Result<Value, PlanError> {
                lw.touched_sensitive.set(false);
                let out = lw.lower(v, site).map_err(|m| err(format!("{path}: {m}")))?;
                if lw.touched_sensitive.get() {
                    sensitive.push(path);
                }
                Ok(out)
            };
            let mut props = Map::new();
            for (k, v) in &node.properties {
                let path = format!("properties.{k}");
                if node.sensitive.contains(k) {
                    sensitive.push(path.clone());
                }
                props.insert(k.clone(), lower_tracked(v, path, site, &mut sensitive)?);
            }
            let mut caps = Map::new();
            for (cname, cap) in &node.capabilities {
                if cap.properties.is_empty() || cap.types.iter().any(|t| t.ends_with("Scalable")) || cname == "scalable" {
                    continue;
                }
                let mut cp = Map::new();
                for (k, v) in &cap.properties {
                    cp.insert(k.clone(), lower_tracked(v, format!("capabilities.{cname}.{k}"), site, &mut sensitive)?);
                }
                caps.insert(cname.clone(), Value::Object(cp));
            }
            // Placement policies that target this node (directly or through a group), with the
            // properties providers act on (INDIGO's `tosca.policies.indigo.Placement` has
            // `availability_zone`); a later policy's value wins.
            let mut placement = Map::new();
            for policy in topo.policies.values().filter(|p| p.types.iter().any(|t| t == "tosca.policies.Placement")) {
                let targets_node = policy.targets.iter().any(|t| t == node_name || topo.groups.get(t).is_some_and(|g| g.members.iter().any(|m| m == node_name)));
                if !targets_node {
                    continue;
                }
                for k in ["availability_zone"] {
                    if let Some(v) = policy.properties.get(k) {
                        placement.insert(k.to_string(), lower_tracked(v, format!("placement.{k}"), site, &mut sensitive)?);
                    }
                }
            }
            let mut operations = BTreeMap::new();
            let mut op_inputs = Map::new();
            if let Some(iface) = standard_interface(node) {
                for op in LIFECYCLE {
                    let Some(o) = iface.operations.get(op) else { continue };
                    let mut inputs = Map::new();
                    for (k, v) in &o.inputs {
                        inputs.insert(k.clone(), lower_tracked(v, format!("operations.{op}.{k}"), site, &mut sensitive)?);
                    }
                    let spec = OperationSpec {
                        implementation: match &o.implementation {
                            Some(i) => Some(resolve_script(node, i, base_dir).map_err(|m| err(format!("operation {op}: {m}")))?),
                            None => None,
                        },
                        inputs: inputs.clone(),
                        timeout: o.timeout.and_then(|t| u64::try_from(t).ok()),
                        dependencies: o.dependencies.iter().map(|d| base_dir.join(d)).collect(),
                    };
                    if spec.implementation.is_none() && spec.inputs.is_empty() {
                        continue;
                    }
                    if !inputs.is_empty() {
                        op_inputs.insert(op.to_string(), Value::Object(inputs));
                    }
                    operations.insert(op.to_string(), spec);
                }
            }

            let mut dependencies: Vec<String> = Vec::new();
            let mut relationships = Vec::new();
            for r in &node.requirements {
                let Some(target) = r.node.as_deref() else { continue };
                for t_addr in instances.related(node_name, index, target) {
                    dependencies.push(t_addr.clone());
                    // Every relationship reaches the provider, with or without operations: some
                    // are realized by the provider itself (AttachesTo is a volume attachment).
                    let mut ops = BTreeMap::new();
                    if let Some(iface) = configure_interface(&r.relationship.interfaces) {
                        let rsite = Site { node: node_name, index, source: Some(node_name), target: Some(target) };
                        for (op, o) in &iface.operations {
                            let mut inputs = Map::new();
                            for (k, v) in &o.inputs {
                                inputs.insert(k.clone(), lower_tracked(v, format!("relationships.{}.{op}.{k}", r.name), rsite, &mut sensitive)?);
                            }
                            let implementation = match &o.implementation {
                                Some(i) => Some(resolve_script(node, i, base_dir).map_err(|m| err(format!("relationship {} operation {op}: {m}", r.name)))?),
                                None => None,
                            };
                            ops.insert(op.clone(), OperationSpec { implementation, inputs, timeout: o.timeout.and_then(|t| u64::try_from(t).ok()), dependencies: Vec::new() });
                        }
                    }
                    relationships.push(DesiredRelationship { requirement: r.name.clone(), type_name: r.relationship.type_name.clone(), target: t_addr, operations: ops });
                }
            }
            let hosts = host_chain(topo, instances, node_name, index);
            // Empty sections are left out, so a plan shows nothing rather than `properties = {}`.
            let mut config = Map::new();
            if !props.is_empty() {
                config.insert("properties".into(), Value::Object(props));
            }
            if !caps.is_empty() {
                config.insert("capabilities".into(), Value::Object(caps));
            }
            if !op_inputs.is_empty() {
                config.insert("operations".into(), Value::Object(op_inputs));
            }
            if !placement.is_empty() {
                config.insert("placement".into(), Value::Object(placement));
            }
            // Artifacts whose content is configuration (a machine's cloud-init `user_data`, a batch
            // job's `job_script`): the content is part of the config, so a change to the file is a
            // planned change.
            let mut contents = Map::new();
            for name in CONTENT_ARTIFACTS {
                if node.artifacts.contains_key(*name) {
                    let path = resolve_script(node, name, base_dir).map_err(|m| err(format!("artifact {name}: {m}")))?;
                    let text = std::fs::read_to_string(&path).map_err(|e| err(format!("artifact {name}: cannot read {}: {e}", path.display())))?;
                    contents.insert(name.to_string(), Value::String(text));
                }
            }
            if !contents.is_empty() {
                config.insert("artifacts".into(), Value::Object(contents));
            }
            let config = Value::Object(config);
            // Attributes read by expressions are dependencies too (like Terraform references).
            let mut reads = Vec::new();
            value_instances(&config, &mut reads);
            for spec in operations.values() {
                value_instances(&Value::Object(spec.inputs.clone()), &mut reads);
            }
            dependencies.extend(hosts.iter().cloned());
            dependencies.extend(reads);
            let mut seen = std::collections::HashSet::new();
            dependencies.retain(|d| d != &address && seen.insert(d.clone()));
            sensitive.sort();
            sensitive.dedup();
            let create_before_destroy = node.metadata.get("create_before_destroy").or_else(|| node.metadata.get("rosca.create_before_destroy")).is_some_and(|v| v == "true");
            let desired = Desired { types: node.types.clone(), config, operations, relationships, hosts, dependencies, sensitive, create_before_destroy };
            built.instances.insert(address.clone(), Instance { node: node_name.clone(), index, provider: provider.clone(), desired });
        }
    }
    for (name, out) in &topo.outputs {
        lw.touched_sensitive.set(false);
        let site = Site { node: "", index: None, source: None, target: None };
        let value = lw.lower(&out.value, site).map_err(|m| PlanError::Instance { address: format!("output {name}"), message: m })?;
        built.outputs.insert(name.clone(), BuiltOutput { value, sensitive: lw.touched_sensitive.get() });
    }
    Ok(built)
}

fn standard_interface(node: &Node) -> Option<&Interface> {
    node.interfaces.iter().find(|(k, i)| k.as_str() == "Standard" || k.as_str() == STANDARD || i.type_name.as_deref() == Some(STANDARD)).map(|(_, i)| i)
}

fn configure_interface(ifaces: &IndexMap<String, Interface>) -> Option<&Interface> {
    ifaces
        .iter()
        .find(|(k, i)| short_interface(k) == "Configure" || i.type_name.as_deref() == Some(CONFIGURE))
        .map(|(_, i)| i)
}

/// An implementation names an artifact of the node or a file relative to the template.
fn resolve_script(node: &Node, implementation: &str, base_dir: &Path) -> Result<std::path::PathBuf, String> {
    let file = node.artifacts.get(implementation).map(|a| a.file.as_str()).unwrap_or(implementation);
    let path = base_dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("implementation `{implementation}` not found at {} (paths are relative to the template's directory)", path.display()))
    }
}

/// Host instances, nearest first.
fn host_chain(topo: &Topology, instances: &Instances, node: &str, index: Option<u32>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = node;
    for _ in 0..64 {
        let Some(h) = topo.nodes.get(cur).and_then(|n| n.host.as_deref()) else { break };
        match instances.related(node, index, h).into_iter().next() {
            Some(a) => out.push(a),
            None => break,
        }
        cur = h;
    }
    out
}
