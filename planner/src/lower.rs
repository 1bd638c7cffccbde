//! Lowering the Topology's unevaluated calls (`{"$expr": <call as written>}`) for one
//! instance: constants (inputs, properties, artifacts, node lists) are evaluated now, entities
//! are bound to instance addresses, and what depends on attributes becomes an [`Expr`].

use crate::expr::{text, token, Expr, EXPR_KEY};
use crate::instances::Instances;
use serde_json::{Map, Value};
use std::path::Path;
use tosca::topology::{Node, Topology};

/// Deep enough for any real template; bounds recursion through properties that are calls.
const MAX_DEPTH: usize = 32;

/// The instance an expression is lowered for, and its relationship context.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub node: &'a str,
    pub index: Option<u32>,
    pub source: Option<&'a str>,
    pub target: Option<&'a str>,
}

pub struct Lowerer<'a> {
    pub topo: &'a Topology,
    pub instances: &'a Instances,
    pub base_dir: &'a Path,
    /// Set when a lowered value read a sensitive input or property: the caller marks the
    /// value it was lowering as sensitive, so it is masked wherever it is shown.
    pub touched_sensitive: std::cell::Cell<bool>,
}

impl Lowerer<'_> {
    /// `v` with every `{"$expr": call}` lowered; an error names the call that cannot be.
    pub fn lower(&self, v: &Value, site: Site<'_>) -> Result<Value, String> {
        self.lower_value(v, site, 0)
    }

    fn lower_value(&self, v: &Value, site: Site<'_>, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("function calls nest too deeply (through properties that are calls)".into());
        }
        match v {
            Value::Object(m) => {
                if m.len() == 1 {
                    if let Some(call) = m.get(EXPR_KEY) {
                        return self.call(call, site, depth + 1);
                    }
                }
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), self.lower_value(x, site, depth + 1)?)))
                    .collect::<Result<Map<_, _>, String>>()
                    .map(Value::Object)
            }
            Value::Array(a) => a.iter().map(|x| self.lower_value(x, site, depth + 1)).collect::<Result<Vec<_>, _>>().map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    /// An argument inside a call as written: a nested call is a one-key object naming a function.
    fn arg(&self, v: &Value, site: Site<'_>, depth: usize) -> Result<Value, String> {
        if let Value::Object(m) = v {
            if m.len() == 1 && m.keys().all(|k| tosca::function::NAMES.contains(&k.as_str())) {
                return self.call(v, site, depth + 1);
            }
        }
        self.lower_value(v, site, depth + 1)
    }

    fn call(&self, call: &Value, site: Site<'_>, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("function calls nest too deeply".into());
        }
        let Some((name, args)) = call.as_object().and_then(|m| m.iter().next()) else {
            return Err(format!("not a function call: {call}"));
        };
        let list: Vec<Value> = match args {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        match name.as_str() {
            "get_input" => self.get_input(&list, site, depth),
            "get_property" => self.get_property(&list, site, depth),
            "get_attribute" => self.get_attribute(&list, site, depth),
            "get_operation_output" => self.get_operation_output(&list, site),
            "concat" => {
                let parts = list.iter().map(|a| self.arg(a, site, depth)).collect::<Result<Vec<_>, _>>()?;
                if parts.iter().all(is_const) {
                    Ok(Value::String(parts.iter().map(text).collect()))
                } else {
                    Ok(Expr::Concat { parts }.wrap())
                }
            }
            "join" => {
                let items = self.arg(list.first().unwrap_or(&Value::Null), site, depth)?;
                let delimiter = match list.get(1) {
                    Some(d) => text(&self.arg(d, site, depth)?),
                    None => String::new(),
                };
                if is_const(&items) {
                    let parts: Vec<String> = match &items {
                        Value::Array(a) => a.iter().map(text).collect(),
                        other => vec![text(other)],
                    };
                    Ok(Value::String(parts.join(&delimiter)))
                } else {
                    Ok(Expr::Join { items, delimiter }.wrap())
                }
            }
            "token" => {
                let string = self.arg(list.first().unwrap_or(&Value::Null), site, depth)?;
                let separators = list.get(1).map(text).unwrap_or_default();
                let index = list.get(2).and_then(Value::as_i64).unwrap_or(0);
                if is_const(&string) {
                    Ok(token(&text(&string), &separators, index))
                } else {
                    Ok(Expr::Token { string, separators, index }.wrap())
                }
            }
            "get_artifact" => self.get_artifact(&list, site),
            "get_nodes_of_type" => {
                let ty = list.first().map(text).unwrap_or_default();
                let names: Vec<Value> = self
                    .topo
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.types.iter().any(|t| *t == ty || short(t) == ty))
                    .map(|(k, _)| Value::String(k.clone()))
                    .collect();
                Ok(Value::Array(names))
            }
            other => Err(format!("unknown function {other}")),
        }
    }

    fn get_input(&self, args: &[Value], site: Site<'_>, depth: usize) -> Result<Value, String> {
        let name = args.first().map(text).unwrap_or_default();
        let input = self.topo.inputs.get(&name).ok_or_else(|| format!("get_input: no input named {name}"))?;
        if input.sensitive {
            self.touched_sensitive.set(true);
        }
        let v = input.value.clone().unwrap_or(Value::Null);
        let v = self.lower_value(&v, site, depth + 1)?;
        Ok(crate::expr::index_path(&v, &args[1.min(args.len())..]))
    }

    /// The node an entity keyword or name stands for.
    fn entity<'s>(&'s self, entity: &str, site: Site<'s>, want: Option<&str>) -> Result<&'s str, String> {
        let node = match entity {
            "SELF" => site.node,
            "SOURCE" => site.source.ok_or("SOURCE is only meaningful in a relationship")?,
            "TARGET" => site.target.ok_or("TARGET is only meaningful in a relationship")?,
            "HOST" => return self.host_with(site.node, want),
            name => name,
        };
        self.topo.nodes.get_key_value(node).map(|(k, _)| k.as_str()).ok_or_else(|| match entity {
            "SELF" => "SELF is not meaningful here (outputs have no SELF)".to_string(),
            _ => format!("no node template named {node}"),
        })
    }

    /// HOST: the nearest host that has `want` (as a property or declared attribute), else the
    /// root of the host chain (where addresses come from).
    fn host_with<'s>(&'s self, node: &str, want: Option<&str>) -> Result<&'s str, String> {
        let mut cur = self.topo.nodes.get(node).and_then(|n| n.host.as_deref()).ok_or_else(|| format!("HOST: node {node} is not hosted on anything"))?;
        let mut last = cur;
        for _ in 0..MAX_DEPTH {
            let Some((k, n)) = self.topo.nodes.get_key_value(cur) else { break };
            last = k.as_str();
            if want.is_some_and(|w| n.properties.contains_key(w) || n.attributes.contains_key(w)) {
                return Ok(k.as_str());
            }
            match n.host.as_deref() {
                Some(h) => cur = h,
                None => break,
            }
        }
        Ok(last)
    }

    /// Splits `[entity, (cap_or_req)?, name, path...]`.
    fn split<'v>(&self, node: &Node, args: &'v [Value]) -> (Option<&'v str>, String, &'v [Value]) {
        let second = args.get(1).and_then(Value::as_str);
        if let (Some(s), Some(third)) = (second, args.get(2).and_then(Value::as_str)) {
            let is_cap = node.capabilities.contains_key(s);
            let is_req = node.requirements.iter().any(|r| r.name == s);
            let is_own = node.properties.contains_key(s) || node.attributes.contains_key(s);
            if (is_cap || is_req) && !is_own {
                return (Some(s), third.to_string(), &args[3..]);
            }
        }
        (None, second.map(str::to_string).unwrap_or_default(), args.get(2..).unwrap_or(&[]))
    }

    fn get_property(&self, args: &[Value], site: Site<'_>, depth: usize) -> Result<Value, String> {
        let entity = args.first().map(text).unwrap_or_default();
        let want = args.last().and_then(Value::as_str);
        let node_name = self.entity(&entity, site, want)?;
        let node = &self.topo.nodes[node_name];
        let (qualifier, prop, path) = self.split(node, args);
        let (value, owner) = match qualifier {
            Some(q) if node.capabilities.contains_key(q) => (node.capabilities[q].properties.get(&prop).cloned(), node_name),
            Some(q) => {
                let target = node.requirements.iter().find(|r| r.name == q).and_then(|r| r.node.as_deref()).ok_or_else(|| format!("get_property: requirement {q} of {node_name} has no target"))?;
                let (tk, tn) = self.topo.nodes.get_key_value(target).ok_or_else(|| format!("no node template named {target}"))?;
                (tn.properties.get(&prop).cloned(), tk.as_str())
            }
            None => (node.properties.get(&prop).cloned(), node_name),
        };
        if node.sensitive.contains(&prop) {
            self.touched_sensitive.set(true);
        }
        let value = value.unwrap_or(Value::Null);
        let owner_site = Site { node: owner, index: site.index, source: None, target: None };
        let v = self.lower_value(&value, owner_site, depth + 1)?;
        Ok(crate::expr::index_path(&v, path))
    }

    fn get_attribute(&self, args: &[Value], site: Site<'_>, depth: usize) -> Result<Value, String> {
        let entity = args.first().map(text).unwrap_or_default();
        let want = args.get(1).and_then(Value::as_str);
        let mut node_name = self.entity(&entity, site, want)?;
        let node = &self.topo.nodes[node_name];
        let (qualifier, mut name, path) = self.split(node, args);
        let mut fallback = node.attributes.get(&name).or_else(|| node.properties.get(&name)).cloned();
        if let Some(q) = qualifier {
            if let Some(cap) = node.capabilities.get(q) {
                fallback = cap.attributes.get(&name).or_else(|| cap.properties.get(&name)).cloned();
                name = format!("{q}.{name}");
            } else if let Some(t) = node.requirements.iter().find(|r| r.name == q).and_then(|r| r.node.as_deref()) {
                node_name = self.topo.nodes.get_key_value(t).map(|(k, _)| k.as_str()).ok_or_else(|| format!("no node template named {t}"))?;
                let tn = &self.topo.nodes[node_name];
                fallback = tn.attributes.get(&name).or_else(|| tn.properties.get(&name)).cloned();
            }
        }
        let fallback = match fallback {
            Some(f) => {
                let lowered = self.lower_value(&f, Site { node: node_name, index: site.index, source: None, target: None }, depth + 1)?;
                // A fallback that itself depends on attributes is not a constant: leave it out.
                (!crate::expr::has_expr(&lowered)).then_some(lowered)
            }
            None => None,
        };
        let instances = self.instances.related(site.node, site.index, node_name);
        // A scaled node's attribute is a list of its instances' values, unless the reader is
        // the instance of the same index in the same scaling group.
        let scaled = self.instances.of(node_name).is_some_and(|n| n.indices.is_some());
        let list = scaled && !(site.index.is_some() && self.instances.same_group(site.node, node_name));
        Ok(Expr::Attribute { instances, list, name, path: path.to_vec(), fallback }.wrap())
    }

    fn get_operation_output(&self, args: &[Value], site: Site<'_>) -> Result<Value, String> {
        let entity = args.first().map(text).unwrap_or_default();
        let node_name = self.entity(&entity, site, None)?;
        let iface = args.get(1).map(text).unwrap_or_default();
        let op = args.get(2).map(text).unwrap_or_default();
        let output = args.get(3).map(text).unwrap_or_default();
        let instance = self.instances.related(site.node, site.index, node_name).into_iter().next().ok_or_else(|| format!("get_operation_output: {node_name} has no instances"))?;
        Ok(Expr::OperationOutput { instance, operation: format!("{}.{op}", short_interface(&iface)), output }.wrap())
    }

    fn get_artifact(&self, args: &[Value], site: Site<'_>) -> Result<Value, String> {
        let entity = args.first().map(text).unwrap_or_default();
        let node_name = self.entity(&entity, site, None)?;
        let name = args.get(1).map(text).unwrap_or_default();
        let artifact = self.topo.nodes[node_name].artifacts.get(&name).ok_or_else(|| format!("get_artifact: {node_name} has no artifact {name}"))?;
        Ok(Value::String(self.base_dir.join(&artifact.file).display().to_string()))
    }
}

fn is_const(v: &Value) -> bool {
    !crate::expr::has_expr(v)
}

fn short(t: &str) -> &str {
    t.rsplit('.').next().unwrap_or(t)
}

/// `tosca.interfaces.node.lifecycle.Standard` → `Standard`.
pub fn short_interface(name: &str) -> &str {
    short(name)
}
