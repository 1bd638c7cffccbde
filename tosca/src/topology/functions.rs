//! The last pass: function calls checked against the topology and evaluated where constant;
//! then the output model is assembled (nodes, groups, policies, outputs, substitution, workflows).

use super::build::{is_sensitive, report_unknown_type, Ctx};
use super::model::*;
use super::requirements::Resolved;
use super::values::{expr_json, untyped, PV};
use crate::diag::{codes, did_you_mean, Diagnostic};
use crate::function::{Arg, Call, Expr, PathSeg};
use crate::syntax::{self, Sp, TypeKind};
use indexmap::IndexMap;
use serde_json::Value as J;
use std::rc::Rc;

/// Where a call is evaluated: SELF, and SOURCE/TARGET inside a relationship.
#[derive(Clone, Copy, Debug)]
struct Site {
    node: Option<usize>,
    source: Option<usize>,
    target: Option<usize>,
}

const MAX_DEPTH: usize = 32;

struct Eval<'c, 'd> {
    ctx: &'c mut Ctx<'d>,
    reqs: &'c [Vec<Resolved>],
    hosts: Vec<Option<usize>>,
    /// Nodes whose host requirement is left to the orchestrator: HOST is unknown, not wrong.
    host_dangling: Vec<bool>,
}

impl Eval<'_, '_> {
    fn entity(&mut self, e: &Sp<String>, site: Site) -> Option<usize> {
        match e.value.as_str() {
            "SELF" => match site.node.or(site.source) {
                Some(n) => Some(n),
                None => {
                    self.ctx.diags.report(&codes::FUNCTION_CONTEXT, e.span, "SELF is not valid here: there is no node template in scope");
                    None
                }
            },
            "SOURCE" | "TARGET" => {
                let r = if e.value == "SOURCE" { site.source } else { site.target };
                if r.is_none() {
                    self.ctx.diags.push(
                        Diagnostic::new(&codes::FUNCTION_CONTEXT, e.span, format!("{} is valid only in a relationship (requirement, relationship template or its interfaces)", e.value))
                            .help(codes::FUNCTION_CONTEXT.help),
                    );
                }
                r
            }
            "HOST" => {
                let Some(me) = site.node.or(site.source) else {
                    self.ctx.diags.push(
                        Diagnostic::new(&codes::FUNCTION_CONTEXT, e.span, "HOST is not valid here: there is no node template in scope (e.g. in outputs)")
                            .help("name the node template instead of HOST"),
                    );
                    return None;
                };
                let h = self.hosts[me];
                if h.is_none() && !self.host_dangling[me] {
                    self.ctx.diags.push(
                        Diagnostic::new(&codes::FUNCTION_CONTEXT, e.span, format!("HOST: node `{}` is not hosted on anything", self.ctx.nodes[me].name))
                            .help("add a host requirement (HostedOn) to the node"),
                    );
                }
                h
            }
            name => match self.ctx.node_index.get(name) {
                Some(&i) => Some(i),
                None if self.ctx.rel_templates.contains_key(name) => None,
                None => {
                    let names: Vec<&str> = self.ctx.node_index.keys().map(String::as_str).collect();
                    let help = did_you_mean(name, names.iter().copied(), || codes::FUNCTION_ENTITY.help.to_string());
                    self.ctx.diags.push(Diagnostic::new(&codes::FUNCTION_ENTITY, e.span, format!("unknown node template `{name}`")).help(help));
                    None
                }
            },
        }
    }

    /// Checks that `path` names a property (or, for attributes, an attribute or property) of node
    /// `n`, possibly through a capability or requirement; returns the value when known.
    fn lookup(&mut self, n: usize, path: &[PathSeg], attribute: bool, depth: usize, report: bool) -> Result<Option<J>, ()> {
        let Some(tid) = self.ctx.nodes[n].type_id else { return Ok(None) };
        let Some(PathSeg::Name(first)) = path.first() else { return Err(()) };
        // Shared, so that definitions are borrowed while `self` is used mutably.
        let flat = self.ctx.reg.flat_rc(tid);
        let in_props = flat.properties.contains_key(&first.value);
        let in_attrs = attribute && flat.attributes.contains_key(&first.value);
        if in_props && !in_attrs {
            if let Some(def) = flat.properties.get(&first.value) {
                self.check_nested_path(def, &path[1..], report)?;
            }
            // The node's map is shared (not the value copied) while `self` is used mutably.
            let values = self.ctx.nodes[n].properties.clone();
            let pv = values.get(&first.value);
            let site = Site { node: Some(n), source: None, target: None };
            // Fast path: a value without calls cannot fail to evaluate, so the field is read
            // in place when the path leads to one (otherwise, as before: the whole value, then
            // the path with its diagnostics).
            if let Some(pv) = pv.filter(|pv| !attribute && !has_call(pv)) {
                if let Some(j) = pv_index(pv, &path[1..]) {
                    return Ok(Some(j));
                }
            }
            let v = match pv {
                Some(pv) => self.eval_pv(pv, site, depth + 1),
                None => Some(J::Null),
            };
            return match v {
                Some(v) if !attribute => self.index_reporting(&v, &path[1..], report).map(Some),
                _ => Ok(None),
            };
        }
        if in_attrs {
            if let Some(def) = flat.attributes.get(&first.value) {
                self.check_nested_path(def, &path[1..], report)?;
            }
            return Ok(None);
        }
        if let Some(cap) = flat.capabilities.get(&first.value) {
            let ct = self.ctx.reg.lookup(TypeKind::Capability, &cap.type_name.value);
            let Some(PathSeg::Name(second)) = path.get(1) else {
                if report {
                    self.ctx.diags.report(&codes::FUNCTION_PATH, first.span, format!("`{}` is a capability: name one of its properties after it", first.value));
                }
                return Err(());
            };
            let cflat = ct.map(|c| self.ctx.reg.flat(c));
            let has_prop = flat.capability_properties.get(&first.value).is_some_and(|p| p.contains_key(&second.value));
            let has_attr = attribute && (cap.attributes.contains_key(&second.value) || cflat.is_some_and(|f| f.attributes.contains_key(&second.value)));
            if !has_prop && !has_attr {
                if report {
                    self.ctx.diags.push(
                        Diagnostic::new(&codes::FUNCTION_PATH, second.span, format!("capability `{}` of `{}` has no {} `{}`", first.value, self.ctx.nodes[n].name, if attribute { "attribute" } else { "property" }, second.value))
                            .help(codes::FUNCTION_PATH.help),
                    );
                }
                return Err(());
            }
            if attribute || !has_prop {
                return Ok(None);
            }
            let capabilities = self.ctx.nodes[n].capabilities.clone();
            let pv = capabilities.get(&first.value).and_then(|(_, p)| p.get(&second.value));
            let site = Site { node: Some(n), source: None, target: None };
            return Ok(match pv {
                Some(pv) => self.eval_at(pv, &path[2..], site, depth + 1),
                None => Some(J::Null),
            });
        }
        // A requirement name: the property is looked up on the requirement's target.
        // A requirement name: the specification leaves open whose property that is. Tried in
        // turn: the capability that satisfied it, the target node, the relationship (whose
        // values are known only once the relationship exists).
        if let Some(r) = self.reqs[n].iter().find(|r| r.name == first.value) {
            let (target, cap, rel) = (r.target, r.capability.clone(), r.relationship_type);
            let Some(t) = target.filter(|_| depth < MAX_DEPTH) else { return Ok(None) };
            if let Some(cap) = cap {
                let mut via_cap = vec![PathSeg::Name(Sp::new(cap, first.span))];
                via_cap.extend_from_slice(&path[1..]);
                if let Ok(v) = self.lookup(t, &via_cap, attribute, depth + 1, false) {
                    return Ok(v);
                }
            }
            let on_relationship = match (rel, path.get(1)) {
                (Some(rt), Some(PathSeg::Name(p))) => {
                    let f = self.ctx.reg.flat(rt);
                    f.properties.contains_key(&p.value) || (attribute && f.attributes.contains_key(&p.value))
                }
                _ => false,
            };
            if on_relationship {
                return Ok(None);
            }
            return self.lookup(t, &path[1..], attribute, depth + 1, report);
        }
        if report {
            let mut names: Vec<&str> = flat.properties.keys().map(String::as_str).collect();
            if attribute {
                names.extend(flat.attributes.keys().map(String::as_str));
            }
            let help = did_you_mean(&first.value, names.iter().copied(), || codes::FUNCTION_PATH.help.to_string());
            self.ctx.diags.push(
                Diagnostic::new(&codes::FUNCTION_PATH, first.span, format!("node `{}` ({}) has no {} or capability `{}`", self.ctx.nodes[n].name, self.ctx.reg.get(tid).name, if attribute { "attribute, property" } else { "property" }, first.value))
                    .help(help),
            );
        }
        Err(())
    }

    /// A nested path (after the property name) must follow the property's type: field names of
    /// complex data types, indexes into lists, keys into maps.
    fn check_nested_path(&mut self, def: &syntax::PropertyDef, path: &[PathSeg], report: bool) -> Result<(), ()> {
        // Type names are borrowed from the definitions (this runs for every call with a path).
        let (reg, diags) = (&self.ctx.reg, &mut *self.ctx.diags);
        let mut type_name = def.type_name.as_ref().map(|t| t.value.as_str());
        let mut entry = def.entry_schema.as_ref().map(|e| e.type_name.value.as_str());
        for seg in path {
            let Some(t) = type_name else { return Ok(()) };
            let prim = crate::value::Primitive::parse(t);
            match (seg, prim) {
                (PathSeg::Index(_), Some(crate::value::Primitive::List)) | (PathSeg::Name(_), Some(crate::value::Primitive::Map)) => {
                    type_name = entry.take();
                }
                (PathSeg::Name(n), None) => {
                    let Some(dt) = reg.lookup(TypeKind::Data, t) else { return Ok(()) };
                    let flat = reg.flat(dt);
                    if flat.primitive.is_some() {
                        return Ok(());
                    }
                    match flat.properties.get(&n.value) {
                        Some(field) => {
                            type_name = field.type_name.as_ref().map(|t| t.value.as_str());
                            entry = field.entry_schema.as_ref().map(|e| e.type_name.value.as_str());
                        }
                        None => {
                            if report {
                                let names: Vec<&str> = flat.properties.keys().map(String::as_str).collect();
                                diags.push(
                                    Diagnostic::new(&codes::FUNCTION_PATH, n.span, format!("data type `{t}` has no field `{}`", n.value))
                                        .help(format!("fields of `{t}`: {}", names.join(", "))),
                                );
                            }
                            return Err(());
                        }
                    }
                }
                (seg, _) => {
                    if report {
                        let (span, what) = match seg {
                            PathSeg::Name(n) => (n.span, format!("field `{}`", n.value)),
                            PathSeg::Index(i) => (i.span, format!("index {}", i.value)),
                        };
                        diags.report(&codes::FUNCTION_PATH, span, format!("a value of type `{t}` has no {what}"));
                    }
                    return Err(());
                }
            }
        }
        Ok(())
    }

    /// Indexes a known value; an index past the end of a known list is reported.
    fn index_reporting(&mut self, v: &J, path: &[PathSeg], report: bool) -> Result<J, ()> {
        let mut cur = v;
        for seg in path {
            cur = match (seg, cur) {
                (PathSeg::Name(n), J::Object(m)) => match m.get(&n.value) {
                    Some(x) => x,
                    None => return Ok(J::Null),
                },
                (PathSeg::Index(i), J::Array(a)) => match usize::try_from(i.value).ok().and_then(|x| a.get(x)) {
                    Some(x) => x,
                    None => {
                        if report {
                            self.ctx.diags.push(
                                Diagnostic::new(&codes::FUNCTION_INDEX, i.span, format!("index {} is out of range: the list has {} element{}", i.value, a.len(), if a.len() == 1 { "" } else { "s" }))
                                    .help(codes::FUNCTION_INDEX.help),
                            );
                        }
                        return Err(());
                    }
                },
                _ => return Ok(J::Null),
            };
        }
        Ok(cur.clone())
    }

    /// Evaluates a call; `None` means "known only after apply" (or already reported as wrong).
    fn eval(&mut self, c: &Expr, site: Site, depth: usize, report: bool) -> Option<J> {
        if depth > MAX_DEPTH {
            return None;
        }
        match c {
            Expr::GetInput { name, path } => match self.ctx.inputs.get(&name.value).cloned().as_deref() {
                Some((def, _)) if !path.is_empty() && self.check_nested_path(def, path, report).is_err() => None,
                // Secrets are not copied into the topology: the call stays, resolved at apply.
                Some((def, Some(_))) if is_sensitive(&self.ctx.reg, def) => None,
                Some((_, Some(pv))) => self.eval_at(pv, path, site, depth + 1),
                Some((_, None)) => None,
                None => {
                    if report {
                        let names: Vec<&str> = self.ctx.inputs.keys().map(String::as_str).collect();
                        let help = did_you_mean(&name.value, names.iter().copied(), || codes::FUNCTION_INPUT.help.to_string());
                        self.ctx.diags.push(Diagnostic::new(&codes::FUNCTION_INPUT, name.span, format!("get_input: no input named `{}`", name.value)).help(help));
                    }
                    None
                }
            },
            Expr::GetProperty { entity, path } => {
                let n = self.entity(entity, site)?;
                self.lookup(n, path, false, depth, report).ok().flatten()
            }
            Expr::GetAttribute { entity, path } => {
                let mut n = self.entity(entity, site);
                if entity.value == "HOST" {
                    // HOST: the first node up the HostedOn chain that has the attribute.
                    let mut cur = n;
                    while let Some(h) = cur {
                        if self.lookup(h, path, true, depth, false).is_ok() {
                            break;
                        }
                        cur = self.hosts[h];
                    }
                    n = cur.or(n);
                }
                if let Some(n) = n {
                    let _ = self.lookup(n, path, true, depth, report);
                }
                None
            }
            Expr::GetOperationOutput { entity, interface, operation, .. } => {
                let n = self.entity(entity, site)?;
                if report {
                    if !self.ctx.has_interface(n, &interface.value) {
                        self.ctx.diags.report(&codes::FUNCTION_PATH, interface.span, format!("node `{}` has no interface `{}`", self.ctx.nodes[n].name, interface.value));
                    } else if !self.ctx.has_operation(n, &interface.value, &operation.value) {
                        self.ctx.diags.report(&codes::FUNCTION_PATH, operation.span, format!("interface `{}` of node `{}` has no operation `{}`", interface.value, self.ctx.nodes[n].name, operation.value));
                    }
                }
                None
            }
            Expr::Concat(args) => {
                let mut s = String::new();
                let mut known = true;
                for a in args {
                    // A string literal is its own text: no JSON of it to build first.
                    if let Arg::Lit(y) = a {
                        if let Some(lit) = y.as_str() {
                            s.push_str(lit);
                            continue;
                        }
                    }
                    match self.arg(a, site, depth, report) {
                        Some(v) => s.push_str(&text(&v)),
                        None => known = false,
                    }
                }
                known.then_some(J::String(s))
            }
            Expr::Join { list, delimiter } => {
                let mut parts = Vec::new();
                let mut known = true;
                for a in list {
                    match self.arg(a, site, depth, report) {
                        Some(v) => parts.push(text(&v)),
                        None => known = false,
                    }
                }
                let d = match delimiter {
                    Some(d) => self.arg(d, site, depth, report).map(|v| text(&v)),
                    None => Some(String::new()),
                };
                if known {
                    d.map(|d| J::String(parts.join(&d)))
                } else {
                    None
                }
            }
            Expr::Token { string, chars, index: i } => {
                let s = text(&self.arg(string, site, depth, report)?);
                let parts: Vec<&str> = s.split(|c| chars.value.contains(c)).collect();
                match parts.get(i.value as usize) {
                    Some(p) => Some(J::String((*p).to_string())),
                    None => {
                        if report {
                            self.ctx.diags.report(&codes::FUNCTION_INDEX, i.span, format!("token: index {} but `{s}` has {} tokens", i.value, parts.len()));
                        }
                        None
                    }
                }
            }
            Expr::GetArtifact { entity, artifact, .. } => {
                let n = self.entity(entity, site)?;
                let has = self.ctx.nodes[n].tpl.artifacts.contains_key(&artifact.value) || self.ctx.nodes[n].type_id.is_some_and(|t| self.ctx.reg.flat(t).artifacts.contains_key(&artifact.value));
                if !has && report {
                    self.ctx.diags.report(&codes::UNKNOWN_ARTIFACT, artifact.span, format!("node `{}` has no artifact `{}`", self.ctx.nodes[n].name, artifact.value));
                }
                None
            }
            Expr::GetNodesOfType(t) => match self.ctx.reg.lookup(TypeKind::Node, &t.value) {
                Some(tid) => Some(J::Array(self.ctx.nodes_of_type(tid).into_iter().map(|i| J::String(self.ctx.nodes[i].name.clone())).collect())),
                None => {
                    if report {
                        report_unknown_type(&self.ctx.reg, TypeKind::Node, t, self.ctx.diags);
                    }
                    None
                }
            },
        }
    }

    fn arg(&mut self, a: &Arg, site: Site, depth: usize, report: bool) -> Option<J> {
        match a {
            Arg::Lit(y) => Some(y.to_json()),
            Arg::Call(e) => self.eval(e, site, depth + 1, report),
        }
    }

    /// `eval_pv` then `index`, without building the JSON of the whole value when it holds no
    /// call (nothing in it can fail to evaluate then, so the result is the same).
    fn eval_at(&mut self, pv: &PV, path: &[PathSeg], site: Site, depth: usize) -> Option<J> {
        if !has_call(pv) {
            return pv_index(pv, path);
        }
        self.eval_pv(pv, site, depth).and_then(|v| index(&v, path))
    }

    /// Evaluates nested calls inside a value (no reporting: each call is checked at its own site).
    fn eval_pv(&mut self, pv: &PV, site: Site, depth: usize) -> Option<J> {
        match pv {
            PV::Json(j) => Some(j.clone()),
            PV::List(items) => items.iter().map(|i| self.eval_pv(i, site, depth)).collect::<Option<Vec<_>>>().map(J::Array),
            PV::Map(m) => m.iter().map(|(k, v)| self.eval_pv(v, site, depth).map(|v| (k.clone(), v))).collect::<Option<serde_json::Map<_, _>>>().map(J::Object),
            PV::Call(c) => self.eval(&c.expr, site, depth + 1, false),
        }
    }

    /// The output form: calls evaluated where constant, kept as `{"$expr": ...}` otherwise.
    /// Each call is checked (and reported) here, once.
    fn render(&mut self, pv: &PV, site: Site) -> J {
        match pv {
            PV::Json(j) => j.clone(),
            PV::List(items) => J::Array(items.iter().map(|i| self.render(i, site)).collect()),
            PV::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), self.render(v, site))).collect()),
            PV::Call(c) => self.render_call(c, site),
        }
    }

    /// [`Self::render`] of a value not needed afterwards: without calls, it is moved into the
    /// output instead of copied.
    fn render_owned(&mut self, pv: PV, site: Site) -> J {
        if has_call(&pv) {
            self.render(&pv, site)
        } else {
            pv.into_json()
        }
    }

    /// [`Self::render_owned`] of values built for one use (relationship, group, policy properties).
    fn render_values(&mut self, values: super::build::Values, site: Site) -> IndexMap<String, J> {
        values.into_iter().map(|(k, v)| (k, self.render_owned(v, site))).collect()
    }

    /// What [`Self::render`] reports, without building the value: each call is checked.
    fn check_calls(&mut self, pv: &PV, site: Site) {
        match pv {
            PV::Json(_) => {}
            PV::List(items) => items.iter().for_each(|i| self.check_calls(i, site)),
            PV::Map(m) => m.values().for_each(|v| self.check_calls(v, site)),
            PV::Call(c) => {
                self.eval(&c.expr, site, 0, true);
            }
        }
    }

    fn render_call(&mut self, c: &Call, site: Site) -> J {
        match self.eval(&c.expr, site, 0, true) {
            Some(v) => v,
            None => expr_json(c),
        }
    }
}

fn has_call(pv: &PV) -> bool {
    match pv {
        PV::Json(_) => false,
        PV::List(items) => items.iter().any(has_call),
        PV::Map(m) => m.values().any(has_call),
        PV::Call(_) => true,
    }
}

/// The JSON of a value without calls (what `eval_pv` and `render` give for it).
fn plain_json(pv: &PV) -> J {
    match pv {
        PV::Json(j) => j.clone(),
        PV::List(items) => J::Array(items.iter().map(plain_json).collect()),
        PV::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect()),
        PV::Call(_) => unreachable!("plain_json of a value with calls"),
    }
}

/// `index` on the JSON of a value without calls, reading the field in place.
fn pv_index(pv: &PV, path: &[PathSeg]) -> Option<J> {
    let mut cur = pv;
    for (k, seg) in path.iter().enumerate() {
        cur = match (seg, cur) {
            (_, PV::Json(j)) => return index(j, &path[k..]),
            (PathSeg::Name(n), PV::Map(m)) => m.get(&n.value)?,
            (PathSeg::Index(i), PV::List(a)) => a.get(usize::try_from(i.value).ok()?)?,
            _ => return None,
        };
    }
    Some(plain_json(cur))
}

fn index(v: &J, path: &[PathSeg]) -> Option<J> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (PathSeg::Name(n), J::Object(m)) => m.get(&n.value)?,
            (PathSeg::Index(i), J::Array(a)) => a.get(usize::try_from(i.value).ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}

fn text(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        J::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn finish(ctx: &mut Ctx<'_>, tt: &syntax::TopologyTemplate, reqs: Vec<Vec<Resolved>>, topo: &mut Topology) {
    let n = ctx.nodes.len();
    let mut hosts = vec![None; n];
    let mut host_dangling = vec![false; n];
    let hosted_on = ctx.reg.lookup(TypeKind::Relationship, "tosca.relationships.HostedOn");
    for (i, rs) in reqs.iter().enumerate() {
        for r in rs {
            let Some(rt) = r.relationship_type else { continue };
            if hosted_on.is_some_and(|h| ctx.reg.derives_from(rt, h)) {
                match r.target {
                    Some(t) => hosts[i] = Some(t),
                    None => host_dangling[i] = true,
                }
            }
        }
    }
    let mut ev = Eval { ctx, reqs: &reqs, hosts, host_dangling };
    // The rendered value of each node property that calls a function, in node then property order.
    let mut rendered_calls: Vec<J> = Vec::new();
    let mut iface_cache: std::collections::HashMap<crate::types::TypeId, IndexMap<String, Interface>> = Default::default();
    // `i` indexes nodes, requirements and hosts alike.
    #[allow(clippy::needless_range_loop)]
    for i in 0..n {
        let site = Site { node: Some(i), source: None, target: None };
        let Some(tid) = ev.ctx.nodes[i].type_id else { continue };
        // Only calls are rendered here: the node's property map is assembled by
        // `move_properties` once no call can read the values any more, moving them (and their
        // names) instead of copying.
        // A property that is one call with a constant result keeps that result instead of the
        // call: later lookups read it as they read any value, and the call's tree is freed now.
        let props = ev.ctx.nodes[i].properties.clone();
        let mut constants = Vec::new();
        for (at, v) in props.values().enumerate().filter(|(_, v)| has_call(v)) {
            match v {
                PV::Call(c) => match ev.eval(&c.expr, site, 0, true) {
                    Some(j) => constants.push((at, j)),
                    None if ev.ctx.model => rendered_calls.push(expr_json(c)),
                    None => {}
                },
                _ => {
                    let j = ev.render(v, site);
                    if ev.ctx.model {
                        rendered_calls.push(j);
                    }
                }
            }
        }
        drop(props);
        if !constants.is_empty() {
            let values = Rc::make_mut(&mut ev.ctx.nodes[i].properties);
            for (at, j) in constants {
                if let Some((_, slot)) = values.get_index_mut(at) {
                    *slot = PV::Json(j);
                }
            }
        }
        let properties = IndexMap::new();
        let flat = ev.ctx.reg.flat_rc(tid);
        let mut capabilities = IndexMap::with_capacity(ev.ctx.nodes[i].capabilities.len());
        for (cname, (ctype, cprops)) in ev.ctx.nodes[i].capabilities.clone().iter() {
            let (cname, ctype) = (cname.clone(), *ctype);
            let cdef = &flat.capabilities[&cname];
            let type_name = ctype.map(|t| ev.ctx.reg.get(t).name.clone()).unwrap_or_else(|| cdef.type_name.value.clone());
            // Without a model only `scaling_of` reads rendered properties, of a scalable capability.
            let rendered: IndexMap<String, J> = if ev.ctx.model || is_scalable(&ev.ctx.reg, &cname, &type_name) {
                cprops.iter().map(|(k, v)| (k.clone(), ev.render(v, site))).collect()
            } else {
                cprops.values().for_each(|v| ev.check_calls(v, site));
                IndexMap::new()
            };
            capabilities.insert(
                cname.clone(),
                Capability {
                    type_name,
                    // Only the model reads the chain; `scaling_of` reads the name and properties.
                    types: ctype.filter(|_| ev.ctx.model).map(|t| ev.ctx.reg.chain_names(t)).unwrap_or_default(),
                    properties: rendered,
                    attributes: IndexMap::new(),
                    occurrences: ev.ctx.nodes[i].tpl.capabilities.get(&cname).and_then(|(_, a)| a.occurrences).or(cdef.occurrences).map(|o| o.value),
                },
            );
        }
        let scaling = scaling_of(&mut ev, i, &capabilities);
        let mut requirements = Vec::with_capacity(reqs[i].len());
        for r in &reqs[i] {
            let rel_site = Site { node: None, source: Some(i), target: r.target };
            let mut props = IndexMap::new();
            if let Some(rt) = r.relationship_type {
                let flat = ev.ctx.reg.flat_rc(rt);
                let node_name = ev.ctx.nodes[i].name.clone();
                let owner = format_args!("relationship of requirement `{}` of `{node_name}`", r.name);
                let pv = ev.ctx.assign_values(&owner, r.span, &flat.properties, &r.relationship_properties, "property", false);
                if ev.ctx.model {
                    props = ev.render_values(pv, rel_site);
                } else {
                    pv.values().for_each(|v| ev.check_calls(v, rel_site));
                }
            }
            let mut interfaces = IndexMap::new();
            if let Some(rt) = &r.relationship_template {
                if let Some((_, tpl)) = ev.ctx.rel_templates.get(rt).cloned() {
                    interfaces = render_interfaces(&mut ev, tpl.interfaces.iter().map(|(k, (_, i))| (k, i)), rel_site);
                }
            }
            if !ev.ctx.model {
                continue;
            }
            requirements.push(Requirement {
                name: r.name.clone(),
                fulfilment: if r.target.is_some() { Fulfilment::Template } else { Fulfilment::Orchestrator },
                node: r.target.map(|t| ev.ctx.nodes[t].name.clone()),
                capability: r.capability.clone(),
                capability_type: r.capability_type.clone(),
                relationship: Relationship {
                    type_name: r.relationship_type.map(|t| ev.ctx.reg.get(t).name.clone()).unwrap_or_else(|| "tosca.relationships.DependsOn".into()),
                    types: r.relationship_type.map(|t| ev.ctx.reg.chain_names(t)).unwrap_or_default(),
                    template: r.relationship_template.clone(),
                    properties: props,
                    interfaces,
                },
            });
        }
        // Type-level interfaces, with the template's assignments merged over them. Nodes that
        // assign nothing share their type's rendering, unless its inputs call functions (whose
        // values depend on the node).
        let shared = ev.ctx.nodes[i].tpl.interfaces.is_empty();
        if shared {
            if let Some(cached) = iface_cache.get(&tid) {
                let interfaces = if ev.ctx.model { cached.clone() } else { IndexMap::new() };
                build_node_model(&mut ev, i, tid, &flat, NodeParts { properties, capabilities, requirements, scaling }, interfaces, topo);
                continue;
            }
        }
        // The type's interfaces in their order, each with the template's assignments over it,
        // then the template's own; only what the template changes is copied.
        // Later calls of other nodes only ask which interfaces and operations this node has:
        // the assignments (inputs, implementations) are moved out, the names stay.
        let tpl_ifaces = &mut ev.ctx.nodes[i].tpl.interfaces;
        let mut own: Vec<(String, syntax::InterfaceDef)> = Vec::with_capacity(tpl_ifaces.len());
        for (k, (_, v)) in tpl_ifaces.iter_mut() {
            let assigned = syntax::InterfaceDef {
                type_name: v.type_name.clone(),
                description: v.description.take(),
                inputs: std::mem::take(&mut v.inputs),
                operations: v.operations.iter_mut().map(|(op, (span, def))| (op.clone(), (*span, std::mem::take(def)))).collect(),
                notifications: std::mem::take(&mut v.notifications),
                span: v.span,
            };
            let merged = match flat.interfaces.get(k) {
                Some(base) => crate::types::overlay_interface_owned(base, assigned),
                None => assigned,
            };
            own.push((k.clone(), merged));
        }
        let mut ifaces: Vec<(&String, &syntax::InterfaceDef)> = Vec::with_capacity(flat.interfaces.len() + own.len());
        for (k, base) in &flat.interfaces {
            ifaces.push(match own.iter().find(|(o, _)| o == k) {
                Some((o, merged)) => (o, merged),
                None => (k, base),
            });
        }
        ifaces.extend(own.iter().filter(|(o, _)| !flat.interfaces.contains_key(o)).map(|(o, m)| (o, m)));
        let interfaces = render_interfaces(&mut ev, ifaces, site);
        if shared && !interfaces_call_functions(&flat.interfaces) {
            // Without a model the entry only marks the type as rendered (and checked) once.
            iface_cache.insert(tid, if ev.ctx.model { interfaces.clone() } else { IndexMap::new() });
        }
        build_node_model(&mut ev, i, tid, &flat, NodeParts { properties, capabilities, requirements, scaling }, interfaces, topo);
    }
    for (name, (span, g)) in &tt.groups {
        let gt = ev.ctx.type_of(TypeKind::Group, &g.type_name);
        let allowed = gt.and_then(|t| ev.ctx.reg.flat(t).members.clone());
        for m in &g.members {
            match ev.ctx.node_index.get(&m.value) {
                None if !tt.groups.contains_key(&m.value) => ev.ctx.diags.report(&codes::BAD_GROUP_MEMBER, m.span, format!("group `{name}`: member `{}` is not a node template", m.value)),
                Some(&ni) => {
                    if let (Some(allowed), Some(nt)) = (&allowed, ev.ctx.nodes[ni].type_id) {
                        if !allowed.is_empty() && !allowed.iter().any(|a| ev.ctx.reg.lookup(TypeKind::Node, &a.value).is_some_and(|at| ev.ctx.reg.derives_from(nt, at))) {
                            ev.ctx.diags.report(&codes::BAD_GROUP_MEMBER, m.span, format!("group `{name}`: member `{}` is not of an allowed type ({})", m.value, allowed.iter().map(|a| a.value.as_str()).collect::<Vec<_>>().join(", ")));
                        }
                    }
                }
                None => {}
            }
        }
        let defs = gt.map(|t| ev.ctx.reg.flat(t).properties.clone()).unwrap_or_default();
        let pv = ev.ctx.assign_values(&format_args!("group `{name}`"), *span, &defs, &g.properties, "property", true);
        let site = Site { node: None, source: None, target: None };
        let properties = ev.render_values(pv, site);
        topo.groups.insert(name.clone(), Group { type_name: gt.map(|t| ev.ctx.reg.get(t).name.clone()).unwrap_or_else(|| g.type_name.value.clone()), types: gt.map(|t| ev.ctx.reg.chain_names(t)).unwrap_or_default(), members: g.members.iter().map(|m| m.value.clone()).collect(), properties });
    }
    for (name, (span, p)) in &tt.policies {
        let pt = ev.ctx.type_of(TypeKind::Policy, &p.type_name);
        let allowed = pt.and_then(|t| ev.ctx.reg.flat(t).targets.clone()).unwrap_or_default();
        for t in &p.targets {
            let node_type = ev.ctx.node_index.get(&t.value).and_then(|&i| ev.ctx.nodes[i].type_id);
            let is_group = tt.groups.get(&t.value);
            if node_type.is_none() && is_group.is_none() && !ev.ctx.node_index.contains_key(&t.value) {
                ev.ctx.diags.report(&codes::BAD_POLICY_TARGET, t.span, format!("policy `{name}`: target `{}` is neither a node template nor a group", t.value));
                continue;
            }
            if allowed.is_empty() {
                continue;
            }
            let ok = allowed.iter().any(|a| match (node_type, is_group) {
                (Some(nt), _) => ev.ctx.reg.lookup(TypeKind::Node, &a.value).is_some_and(|at| ev.ctx.reg.derives_from(nt, at)),
                (None, Some((_, g))) => match (ev.ctx.reg.lookup(TypeKind::Group, &a.value), ev.ctx.reg.lookup(TypeKind::Group, &g.type_name.value)) {
                    (Some(at), Some(gt)) => ev.ctx.reg.derives_from(gt, at),
                    _ => false,
                },
                _ => true,
            });
            if !ok {
                ev.ctx.diags.report(&codes::BAD_POLICY_TARGET, t.span, format!("policy `{name}`: target `{}` is not of a type the policy allows ({})", t.value, allowed.iter().map(|a| a.value.as_str()).collect::<Vec<_>>().join(", ")));
            }
        }
        let defs = pt.map(|t| ev.ctx.reg.flat(t).properties.clone()).unwrap_or_default();
        let pv = ev.ctx.assign_values(&format_args!("policy `{name}`"), *span, &defs, &p.properties, "property", true);
        let site = Site { node: None, source: None, target: None };
        let properties = ev.render_values(pv, site);
        topo.policies.insert(name.clone(), Policy { type_name: pt.map(|t| ev.ctx.reg.get(t).name.clone()).unwrap_or_else(|| p.type_name.value.clone()), types: pt.map(|t| ev.ctx.reg.chain_names(t)).unwrap_or_default(), targets: p.targets.iter().map(|t| t.value.clone()).collect(), properties });
    }
    for (name, (span, o)) in &tt.outputs {
        let site = Site { node: None, source: None, target: None };
        let Some(y) = o.value.as_ref() else {
            ev.ctx.diags.report(&codes::MISSING_KEY, *span, format!("output `{name}` has no `value`"));
            continue;
        };
        let v = match &o.type_name {
            Some(_) => ev.ctx.spec_check(y, o),
            None => untyped(y),
        };
        let pv = ev.ctx.pv_of(v);
        let value = ev.render_owned(pv, site);
        topo.outputs.insert(name.clone(), Output { description: o.description.clone(), value });
    }
    if let Some(s) = &tt.substitution_mappings {
        topo.substitution = Some(substitution(&mut ev, s, tt));
    }
    for (name, (_, w)) in &tt.workflows {
        topo.workflows.insert(name.clone(), workflow(&mut ev, name, w, tt));
    }
    if ev.ctx.model {
        move_properties(ev.ctx, rendered_calls, topo);
    }
}

/// The last step of [`finish`]: each node's property map, from the builder's values (moved, now
/// that no call reads them) and the rendered calls (`rendered`, in the order [`finish`] made them).
fn move_properties(ctx: &mut Ctx<'_>, rendered: Vec<J>, topo: &mut Topology) {
    let mut rendered = rendered.into_iter();
    for node in &mut ctx.nodes {
        if node.type_id.is_none() {
            continue;
        }
        let values = Rc::try_unwrap(std::mem::take(&mut node.properties)).unwrap_or_else(|shared| (*shared).clone());
        let mut properties = IndexMap::with_capacity(values.len());
        for (k, v) in values {
            let j = if has_call(&v) { rendered.next().unwrap_or(J::Null) } else { v.into_json() };
            properties.insert(k, j);
        }
        if let Some(out) = topo.nodes.get_mut(&node.name) {
            out.properties = properties;
        }
    }
}

/// True when any input of these interfaces (interface-level or operation-level) calls a function.
fn interfaces_call_functions(ifaces: &IndexMap<String, syntax::InterfaceDef>) -> bool {
    fn has_call(y: &crate::yaml::Yaml) -> bool {
        crate::function::is_call(y)
            || y.as_seq().is_some_and(|items| items.iter().any(has_call))
            || y.as_map().is_some_and(|entries| entries.iter().any(|(_, v)| has_call(v)))
    }
    ifaces.values().any(|i| i.inputs.values().any(|(_, y)| has_call(y)) || i.operations.values().any(|(_, o)| o.inputs.values().any(|(_, y)| has_call(y))))
}

/// The parts of a node's model rendered before its interfaces.
struct NodeParts {
    properties: IndexMap<String, J>,
    capabilities: IndexMap<String, Capability>,
    requirements: Vec<Requirement>,
    scaling: Option<Scaling>,
}

/// The rest of a node's model: artifacts, attributes, and the node itself.
fn build_node_model(ev: &mut Eval<'_, '_>, i: usize, tid: crate::types::TypeId, flat: &crate::types::FlatType, parts: NodeParts, interfaces: IndexMap<String, Interface>, topo: &mut Topology) {
    let NodeParts { properties, capabilities, requirements, scaling } = parts;
    let site = Site { node: Some(i), source: None, target: None };
    let attrs_given = std::mem::take(&mut ev.ctx.nodes[i].tpl.attributes);
    let mut attributes = IndexMap::new();
    for (k, def) in &flat.attributes {
        let y = attrs_given.get(k).map(|(_, y)| y.clone()).or(def.default.clone());
        if let Some(y) = y {
            let v = ev.ctx.spec_check(&y, def);
            let pv = ev.ctx.pv_of(v);
            if ev.ctx.model {
                attributes.insert(k.clone(), ev.render_owned(pv, site));
            } else {
                ev.check_calls(&pv, site);
            }
        }
    }
    // The attributes were the last part with checks: the rest is only the model.
    if !ev.ctx.model {
        return;
    }
    let mut artifacts: IndexMap<String, Artifact> = IndexMap::new();
    for (k, a) in flat.artifacts.iter().chain(ev.ctx.nodes[i].tpl.artifacts.iter().map(|(k, (_, a))| (k, a))) {
        artifacts.insert(k.clone(), Artifact { type_name: a.type_name.as_ref().map(|t| t.value.clone()), file: a.file.value.clone(), repository: a.repository.as_ref().map(|r| r.value.clone()), deploy_path: a.deploy_path.clone() });
    }
    let sensitive = flat.properties.iter().filter(|(_, d)| is_sensitive(&ev.ctx.reg, d)).map(|(k, _)| k.clone()).collect();
    // Nothing reads these parts of the template after this: moved, not copied.
    let tpl = &mut ev.ctx.nodes[i].tpl;
    let (description, metadata) = (tpl.description.take(), std::mem::take(&mut tpl.metadata));
    let tpl = &ev.ctx.nodes[i].tpl;
    let node = Node {
        type_name: ev.ctx.reg.get(tid).name.clone(),
        types: ev.ctx.reg.chain_names(tid),
        description,
        metadata,
        directives: tpl.directives.iter().map(|d| d.value.clone()).collect(),
        properties,
        attributes,
        capabilities,
        requirements,
        interfaces,
        artifacts,
        host: ev.hosts[i].map(|h| ev.ctx.nodes[h].name.clone()),
        scaling,
        sensitive,
    };
    topo.nodes.insert(ev.ctx.nodes[i].name.clone(), node);
}

fn render_interfaces<'i>(ev: &mut Eval<'_, '_>, ifaces: impl IntoIterator<Item = (&'i String, &'i syntax::InterfaceDef)>, site: Site) -> IndexMap<String, Interface> {
    let mut out = IndexMap::new();
    for (name, i) in ifaces {
        let mut ops = IndexMap::with_capacity(i.operations.len());
        for (op, (_, o)) in &i.operations {
            let mut inputs = IndexMap::with_capacity(i.inputs.len() + o.inputs.len());
            for (k, (_, y)) in i.inputs.iter().chain(o.inputs.iter()) {
                // Type-level inputs are definitions ({type: ..., default: ...}); template-level are values.
                let y = match y.get("type").and(y.get("default").or(y.get("value"))) {
                    Some(d) => d.clone(),
                    None if y.get("type").is_some() => continue,
                    None => y.clone(),
                };
                crate::function::lint(&y, ev.ctx.diags);
                let v = untyped(&y);
                let pv = ev.ctx.pv_of(v);
                if ev.ctx.model {
                    inputs.insert(k.clone(), ev.render_owned(pv, site));
                } else {
                    ev.check_calls(&pv, site);
                }
            }
            let imp = o.implementation.as_ref();
            ops.insert(
                op.clone(),
                Operation {
                    implementation: imp.and_then(|i| i.primary.as_ref()).map(|p| p.value.clone()),
                    dependencies: imp.map(|i| i.dependencies.iter().map(|d| d.value.clone()).collect()).unwrap_or_default(),
                    timeout: imp.and_then(|i| i.timeout).map(|t| t.value),
                    inputs,
                },
            );
        }
        if !ops.is_empty() {
            out.insert(name.clone(), Interface { type_name: i.type_name.as_ref().map(|t| t.value.clone()), operations: ops });
        }
    }
    out
}

/// The capability [`scaling_of`] reads: named `scalable`, or of a type derived from Scalable.
fn is_scalable(reg: &crate::types::Registry, name: &str, type_name: &str) -> bool {
    name == "scalable" || reg.lookup(TypeKind::Capability, "tosca.capabilities.Scalable").is_some_and(|s| reg.lookup(TypeKind::Capability, type_name).is_some_and(|t| reg.derives_from(t, s)))
}

fn scaling_of(ev: &mut Eval<'_, '_>, i: usize, caps: &IndexMap<String, Capability>) -> Option<Scaling> {
    let (name, cap) = caps.iter().find(|(n, c)| is_scalable(&ev.ctx.reg, n, &c.type_name))?;
    let get = |k: &str| cap.properties.get(k).and_then(J::as_u64);
    let given = |k: &str| ev.ctx.nodes[i].tpl.capabilities.get(name).is_some_and(|(_, a)| a.properties.contains_key(k));
    // INDIGO writes `count`; TOSCA `default_instances`. An explicit value wins over a default.
    let default = if given("count") { get("count") } else if given("default_instances") { get("default_instances") } else { get("default_instances").or(get("count")) };
    let min = get("min_instances");
    let max = get("max_instances");
    let default = default.or(min).unwrap_or(1);
    // Bounds are checked as the template states them: type defaults (min = max = 1 in the
    // normative and INDIGO Scalable) would reject every `count: 3` or elastic `count: 0`.
    let stated = |k: &str| if given(k) { get(k) } else { None };
    let (smin, smax) = (stated("min_instances"), stated("max_instances"));
    let bad = smin.is_some_and(|m| m > default) || smax.is_some_and(|m| m < default) || matches!((smin, smax), (Some(a), Some(b)) if a > b);
    if bad {
        let span = ev.ctx.nodes[i].tpl.capabilities.get(name).map(|(s, _)| *s).unwrap_or(ev.ctx.nodes[i].span);
        ev.ctx.diags.push(
            Diagnostic::new(&codes::BAD_SCALING, span, format!("node `{}`: scaling needs min_instances <= default <= max_instances, found min={} default={} max={}", ev.ctx.nodes[i].name, min.map(|m| m.to_string()).unwrap_or("-".into()), default, max.map(|m| m.to_string()).unwrap_or("-".into())))
                .help(codes::BAD_SCALING.help),
        );
    }
    let removal_list = cap.properties.get("removal_list").and_then(J::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
    Some(Scaling { default_instances: default, min_instances: min, max_instances: max, removal_list })
}

fn substitution(ev: &mut Eval<'_, '_>, s: &syntax::SubstitutionMappings, tt: &syntax::TopologyTemplate) -> Substitution {
    let nt = ev.ctx.type_of(TypeKind::Node, &s.node_type);
    let mut out = Substitution { node_type: s.node_type.value.clone(), capabilities: IndexMap::new(), requirements: IndexMap::new(), properties: IndexMap::new() };
    let flat = nt.map(|t| ev.ctx.reg.flat_rc(t));
    for (is_cap, list) in [(true, &s.capabilities), (false, &s.requirements)] {
        for (name, target) in list {
            let (Some(node), Some(item)) = (target.first(), target.get(1)) else { continue };
            let what = if is_cap { "capability" } else { "requirement" };
            if let Some(f) = &flat {
                let exists = if is_cap { f.capabilities.contains_key(&name.value) } else { f.requirements.iter().any(|(n, _)| *n == name.value) };
                if !exists {
                    ev.ctx.diags.report(&codes::BAD_SUBSTITUTION, name.span, format!("substitution: node type `{}` has no {what} `{}`", s.node_type.value, name.value));
                }
            }
            match ev.ctx.node_index.get(&node.value).copied() {
                None => ev.ctx.diags.report(&codes::BAD_SUBSTITUTION, node.span, format!("substitution: `{}` is not a node template", node.value)),
                Some(ni) => {
                    let ok = ev.ctx.nodes[ni].type_id.is_some_and(|t| {
                        let f = ev.ctx.reg.flat(t);
                        if is_cap { f.capabilities.contains_key(&item.value) } else { f.requirements.iter().any(|(n, _)| *n == item.value) }
                    });
                    if !ok {
                        ev.ctx.diags.report(&codes::BAD_SUBSTITUTION, item.span, format!("substitution: node `{}` has no {what} `{}`", node.value, item.value));
                    }
                }
            }
            let entry = (node.value.clone(), item.value.clone());
            if is_cap {
                out.capabilities.insert(name.value.clone(), entry);
            } else {
                out.requirements.insert(name.value.clone(), entry);
            }
        }
    }
    for (name, (span, y)) in &s.properties {
        if let Some(f) = &flat {
            if !f.properties.contains_key(name) {
                ev.ctx.diags.report(&codes::BAD_SUBSTITUTION, *span, format!("substitution: node type `{}` has no property `{name}`", s.node_type.value));
            }
        }
        // `[input_name]` maps a property to an input.
        if let Some([input]) = y.as_seq() {
            if let Some(i) = input.as_str() {
                if !tt.inputs.contains_key(i) {
                    ev.ctx.diags.report(&codes::BAD_SUBSTITUTION, input.span, format!("substitution: property `{name}` maps to unknown input `{i}`"));
                }
            }
        }
        out.properties.insert(name.clone(), y.to_json());
    }
    out
}

fn workflow(ev: &mut Eval<'_, '_>, name: &str, w: &syntax::Workflow, tt: &syntax::TopologyTemplate) -> Workflow {
    const STATES: &[&str] = &["initial", "creating", "created", "configuring", "configured", "starting", "started", "stopping", "stopped", "deleting", "deleted", "error", "available"];
    let mut steps = IndexMap::new();
    for (sname, (_, s)) in &w.steps {
        let target = ev.ctx.node_index.get(&s.target.value).copied();
        if target.is_none() && !tt.groups.contains_key(&s.target.value) {
            ev.ctx.diags.report(&codes::BAD_WORKFLOW, s.target.span, format!("workflow `{name}`, step `{sname}`: target `{}` is not a node template or group", s.target.value));
        }
        for next in s.on_success.iter().chain(s.on_failure.iter()) {
            if !w.steps.contains_key(&next.value) {
                ev.ctx.diags.report(&codes::BAD_WORKFLOW, next.span, format!("workflow `{name}`, step `{sname}`: no step named `{}`", next.value));
            }
        }
        let mut activities = Vec::new();
        for a in &s.activities {
            let (kind, arg) = match a {
                syntax::Activity::Delegate(x) => ("delegate", x),
                syntax::Activity::SetState(x) => {
                    if !STATES.contains(&x.value.as_str()) {
                        ev.ctx.diags.report(&codes::BAD_WORKFLOW, x.span, format!("set_state: `{}` is not a node state ({})", x.value, STATES.join(", ")));
                    }
                    ("set_state", x)
                }
                syntax::Activity::CallOperation(x) => {
                    if let Some(t) = target {
                        let ok = x.value.rsplit_once('.').is_some_and(|(iface, op)| ev.ctx.has_operation(t, iface, op));
                        if !ok {
                            ev.ctx.diags.report(&codes::BAD_WORKFLOW, x.span, format!("call_operation: node `{}` has no operation `{}` (write INTERFACE.OPERATION)", s.target.value, x.value));
                        }
                    }
                    ("call_operation", x)
                }
                syntax::Activity::Inline(x) => ("inline", x),
                syntax::Activity::Other(x) => ("other", x),
            };
            let mut m = IndexMap::new();
            m.insert(kind.to_string(), arg.value.clone());
            activities.push(m);
        }
        steps.insert(sname.clone(), WorkflowStep { target: s.target.value.clone(), activities, on_success: s.on_success.iter().map(|x| x.value.clone()).collect(), on_failure: s.on_failure.iter().map(|x| x.value.clone()).collect() });
    }
    Workflow { description: w.description.clone(), steps }
}
