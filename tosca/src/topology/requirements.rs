//! Requirement matching: each requirement of each node template resolved to a target node and
//! capability through its relationship type, like an orchestrator would, or reported.

use super::build::Ctx;
use crate::diag::{codes, did_you_mean, Diagnostic};
use crate::syntax::{self, NodeFilter, Sp, TypeKind};
use crate::types::TypeId;
use crate::value::{self, TypeSpec};

/// One resolved (or dangling) requirement of a node.
#[derive(Clone, Debug)]
pub(super) struct Resolved {
    pub name: String,
    pub target: Option<usize>,
    pub capability: Option<String>,
    pub capability_type: String,
    pub relationship_type: Option<TypeId>,
    pub relationship_template: Option<String>,
    pub relationship_properties: syntax::Values,
    pub span: crate::Span,
}

impl Ctx<'_> {
    pub(super) fn resolve_requirements(&mut self) -> Vec<Vec<Resolved>> {
        // Incoming counts per (node, capability) for occurrences-aware matching.
        let mut used: std::collections::HashMap<(usize, String), u64> = Default::default();
        let mut all = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let mut out = Vec::with_capacity(self.nodes[i].tpl.requirements.len());
            let Some(tid) = self.nodes[i].type_id else {
                all.push(out);
                continue;
            };
            let flat = self.reg.flat_rc(tid);
            let defs = &flat.requirements;
            // Requirement assignments are consumed here; later passes use the resolved ones.
            let assignments = std::mem::take(&mut self.nodes[i].tpl.requirements);
            let owner = format!("node template `{}`", self.nodes[i].name);
            for (aname, a) in &assignments {
                let Some((_, def)) = defs.iter().find(|(n, _)| *n == aname.value) else {
                    let help = did_you_mean(&aname.value, defs.iter().map(|(n, _)| n.as_str()), || format!("requirements of `{}`: {}", self.nodes[i].tpl.type_name.value, defs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")));
                    self.diags.push(Diagnostic::new(&codes::UNKNOWN_REQUIREMENT, aname.span, format!("{owner}: type has no requirement `{}`", aname.value)).help(help));
                    continue;
                };
                if let Some(r) = self.resolve_one(i, aname, Some(a), def, &mut used, &owner) {
                    out.push(r);
                }
            }
            for (dname, def) in defs {
                let count = assignments.iter().filter(|(n, _)| n.value == *dname).count() as u64;
                let occ = def.occurrences.map(|o| o.value).unwrap_or(syntax::Occurrences { min: 1, max: Some(1) });
                if let Some(max) = occ.max {
                    if count > max {
                        let span = assignments.iter().filter(|(n, _)| n.value == *dname).nth(max as usize).map(|(n, _)| n.span).unwrap_or(self.nodes[i].span);
                        self.diags.push(
                            Diagnostic::new(&codes::OCCURRENCES, span, format!("{owner}: requirement `{dname}` is assigned {count} times, at most {max} allowed"))
                                .help("remove the extra assignments, or raise the requirement's occurrences in the type"),
                        );
                    }
                }
                if count < occ.min {
                    // Not assigned: the orchestrator (here: Rosca) looks for a match in the template.
                    let name = Sp::new(dname.clone(), self.nodes[i].span);
                    for _ in count..occ.min.min(count + 16) {
                        if let Some(r) = self.resolve_one(i, &name, None, def, &mut used, &owner) {
                            out.push(r);
                        }
                    }
                }
            }
            all.push(out);
        }
        all
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_one(
        &mut self,
        src: usize,
        name: &Sp<String>,
        a: Option<&syntax::RequirementAssignment>,
        def: &syntax::RequirementDef,
        used: &mut std::collections::HashMap<(usize, String), u64>,
        owner: &str,
    ) -> Option<Resolved> {
        let span = a.map(|a| a.span).unwrap_or(name.span);
        // Capability: the assignment may name a capability type or a capability on the target.
        let mut cap_type_name = def.capability.as_ref().map(|c| c.value.clone()).unwrap_or_else(|| "tosca.capabilities.Root".into());
        let mut cap_name: Option<Sp<String>> = None;
        if let Some(c) = a.and_then(|a| a.capability.as_ref()) {
            if self.reg.lookup(TypeKind::Capability, &c.value).is_some() {
                cap_type_name = c.value.clone();
            } else {
                cap_name = Some(c.clone());
            }
        }
        let cap_type = self.reg.lookup(TypeKind::Capability, &cap_type_name);

        // Relationship: a template name, a type name, or the definition's.
        let mut rel_template = None;
        let mut rel_props = syntax::Values::new();
        let rel_type = match a.and_then(|a| a.relationship.as_ref()) {
            Some(r) if a.is_some_and(|a| a.relationship_is_type) => {
                self.type_of(TypeKind::Relationship, r)
            }
            Some(r) if self.rel_templates.contains_key(&r.value) => {
                rel_template = Some(r.value.clone());
                let rt = self.rel_templates[&r.value].1.clone();
                rel_props = rt.properties.clone();
                self.type_of(TypeKind::Relationship, &rt.type_name)
            }
            Some(r) => {
                if self.reg.lookup(TypeKind::Relationship, &r.value).is_none() {
                    self.diags.push(
                        Diagnostic::new(&codes::UNKNOWN_RELATIONSHIP_TEMPLATE, r.span, format!("{owner}: `{}` is neither a relationship template nor a relationship type", r.value))
                            .help(codes::UNKNOWN_RELATIONSHIP_TEMPLATE.help),
                    );
                    None
                } else {
                    self.reg.lookup(TypeKind::Relationship, &r.value)
                }
            }
            None => def.relationship.as_ref().and_then(|r| self.reg.lookup(TypeKind::Relationship, &r.value)),
        };
        if let Some(a) = a {
            rel_props.extend(a.relationship_properties.clone());
        }

        let filter = a.and_then(|a| a.node_filter.as_ref()).or(def.node_filter.as_ref()).cloned();
        let explicit_node = a.and_then(|a| a.node.as_ref());
        let (candidates, by_name): (Vec<usize>, bool) = match explicit_node {
            Some(n) if self.node_index.contains_key(&n.value) => (vec![self.node_index[&n.value]], true),
            Some(n) => match self.reg.lookup(TypeKind::Node, &n.value) {
                Some(nt) => (self.nodes_of_type(nt), false),
                None => {
                    let names: Vec<&str> = self.node_index.keys().map(String::as_str).collect();
                    let help = did_you_mean(&n.value, names.iter().copied(), || "name a node template of this topology or a node type".to_string());
                    self.diags.push(Diagnostic::new(&codes::UNKNOWN_NODE_TEMPLATE, n.span, format!("{owner}: requirement `{}` targets unknown node template `{}`", name.value, n.value)).help(help));
                    return None;
                }
            },
            None => {
                let all = match def.node.as_ref().and_then(|n| self.reg.lookup(TypeKind::Node, &n.value)) {
                    Some(nt) => self.nodes_of_type(nt),
                    None => (0..self.nodes.len()).collect(),
                };
                (all, false)
            }
        };
        // A node_filter must name properties and capabilities the filtered type has; a typo
        // would otherwise just make every candidate fail to match.
        let mut filter = filter;
        if let Some(f) = &filter {
            let filtered_type = if by_name {
                self.nodes[candidates[0]].type_id
            } else {
                explicit_node.or(def.node.as_ref()).and_then(|n| self.reg.lookup(TypeKind::Node, &n.value))
            };
            // A filter with a wrong name is reported once; matching then ignores it, rather
            // than reporting every candidate as not matching.
            if filtered_type.is_some_and(|t| !self.check_filter_names(f, t, owner)) {
                filter = None;
            }
        }
        let mut best = None;
        let mut saw_node_without_cap = None;
        for &c in &candidates {
            if c == src && !by_name {
                continue;
            }
            let Some(found) = self.find_capability(c, cap_type, cap_name.as_ref()) else {
                saw_node_without_cap.get_or_insert(c);
                continue;
            };
            // The capability fits; a named target must also be of the node type the requirement asks for.
            if by_name {
            if let Some(want) = def.node.as_ref() {
                let t = candidates[0];
                let ok = match (self.nodes[t].type_id, self.reg.lookup(TypeKind::Node, &want.value)) {
                    (Some(have), Some(want_id)) => self.reg.derives_from(have, want_id),
                    _ => true,
                };
                if !ok {
                    let at = explicit_node.map(|n| n.span).unwrap_or(span);
                    let tname = self.nodes[t].name.clone();
                    let ttype = self.nodes[t].tpl.type_name.value.clone();
                    self.diags.push(
                        Diagnostic::new(&codes::REQUIREMENT_UNSATISFIABLE, at, format!("{owner}: requirement `{}` needs a node of type `{}`, but `{tname}` is a `{ttype}`", name.value, want.value))
                            .help(format!("target a node template of type {} (or derived from it)", want.value)),
                    );
                    return None;
                }
            }
        }

            if let Some(f) = &filter {
                if !self.filter_matches(c, f) {
                    continue;
                }
            }
            if let Err(allowed) = self.source_allowed(src, c, &found) {
                if by_name {
                    let at = explicit_node.map(|n| n.span).unwrap_or(span);
                    let (sname, stype) = (self.nodes[src].name.clone(), self.nodes[src].tpl.type_name.value.clone());
                    self.diags.push(
                        Diagnostic::new(&codes::REQUIREMENT_UNSATISFIABLE, at, format!("{owner}: capability `{found}` of `{}` accepts relationships only from {}; `{sname}` is a `{stype}`", self.nodes[c].name, allowed.join(", ")))
                            .help("target a node whose capability accepts this node type (valid_source_types)"),
                    );
                    return None;
                }
                continue;
            }
            let occ_max = self.nodes[c].type_id.and_then(|t| self.reg.flat(t).capabilities.get(&found).and_then(|d| d.occurrences)).and_then(|o| o.value.max);
            let n_used = used.get(&(c, found.clone())).copied().unwrap_or(0);
            if occ_max.is_some_and(|m| n_used >= m) {
                if by_name {
                    self.diags.push(
                        Diagnostic::new(&codes::OCCURRENCES, span, format!("{owner}: capability `{found}` of `{}` already has its maximum of {} relationships", self.nodes[c].name, occ_max.unwrap_or(0)))
                            .help("target another node, or raise the capability's occurrences"),
                    );
                    return None;
                }
                continue;
            }
            best = Some((c, found));
            break;
        }
        let rel_type_checked = rel_type;
        match best {
            Some((target, cap)) => {
                *used.entry((target, cap.clone())).or_insert(0) += 1;
                // Only a relationship the template chose is checked here; one that comes from
                // the requirement definition is the type's, checked once with the type.
                if let (Some(rt), true) = (rel_type_checked, a.is_some_and(|a| a.relationship.is_some())) {
                    self.check_valid_target(rt, target, &cap, span, owner);
                }
                Some(Resolved {
                    name: name.value.clone(),
                    target: Some(target),
                    capability: Some(cap),
                    capability_type: cap_type_name,
                    relationship_type: rel_type_checked,
                    relationship_template: rel_template,
                    relationship_properties: rel_props,
                    span,
                })
            }
            None if by_name => {
                let tname = &self.nodes[candidates[0]].name;
                let (code, msg) = match (&cap_name, filter.is_some() && saw_node_without_cap.is_none()) {
                    (_, true) => (&codes::REQUIREMENT_UNSATISFIABLE, format!("{owner}: requirement `{}`: node `{tname}` does not match the node_filter", name.value)),
                    (Some(c), _) => {
                        let msg = format!("{owner}: requirement `{}`: node `{tname}` has no capability `{}` of type `{cap_type_name}`", name.value, c.value);
                        self.diags.push(Diagnostic::new(&codes::UNKNOWN_CAPABILITY, c.span, msg).help("name a capability the target node has, or a capability type"));
                        return None;
                    }
                    (None, _) => (&codes::UNKNOWN_CAPABILITY, format!("{owner}: requirement `{}`: node `{tname}` has no capability of type `{cap_type_name}`", name.value)),
                };
                let at = a.and_then(|a| a.node.as_ref()).map(|n| n.span).unwrap_or(span);
                self.diags.push(Diagnostic::new(code, at, msg).help("target a node that offers the capability, or fix the requirement's capability"));
                None
            }
            None => {
                // Nothing in the template fulfils it. Abstract requirements like a Compute host
                // can be fulfilled by the orchestrator; a requirement that names an explicit node
                // type with a filter but finds nothing is still left to it (select directive).
                cap_type?;
                if !self.exported_requirements.contains(&(self.nodes[src].name.clone(), name.value.clone())) {
                    self.diags.push(
                        Diagnostic::new(&codes::REQUIREMENT_DANGLING, span, format!("{owner}: requirement `{}` ({cap_type_name}) is not satisfied by any node template", name.value))
                            .help(codes::REQUIREMENT_DANGLING.help),
                    );
                }
                Some(Resolved {
                    name: name.value.clone(),
                    target: None,
                    capability: None,
                    capability_type: cap_type_name,
                    relationship_type: rel_type_checked,
                    relationship_template: rel_template,
                    relationship_properties: rel_props,
                    span,
                })
            }
        }
    }

    fn check_valid_target(&mut self, rt: TypeId, target: usize, cap: &str, span: crate::Span, owner: &str) {
        let Some(valid) = self.reg.flat(rt).valid_target_types.clone() else { return };
        let Some(nt) = self.nodes[target].type_id else { return };
        let Some(ct) = self.reg.flat(nt).capabilities.get(cap).and_then(|c| self.reg.lookup(TypeKind::Capability, &c.type_name.value)) else { return };
        let ok = valid.iter().any(|v| {
            self.reg.lookup(TypeKind::Capability, &v.value).is_some_and(|vt| self.reg.derives_from(ct, vt))
                || self.reg.lookup(TypeKind::Node, &v.value).is_some_and(|vt| self.reg.derives_from(nt, vt))
        });
        if !ok {
            let rname = self.reg.get(rt).name.clone();
            self.diags.push(
                Diagnostic::new(&codes::REQUIREMENT_UNSATISFIABLE, span, format!("{owner}: relationship `{rname}` cannot target capability `{cap}` of `{}`", self.nodes[target].name))
                    .help(format!("{rname} targets: {}", valid.iter().map(|v| v.value.as_str()).collect::<Vec<_>>().join(", "))),
            );
        }
    }

    /// `valid_source_types` of capability `cap` on node `target` (the capability definition's,
    /// else its capability type's): the source node's type must derive from one of them.
    fn source_allowed(&self, src: usize, target: usize, cap: &str) -> Result<(), Vec<String>> {
        let (Some(st), Some(tt)) = (self.nodes[src].type_id, self.nodes[target].type_id) else { return Ok(()) };
        let Some(cdef) = self.reg.flat(tt).capabilities.get(cap) else { return Ok(()) };
        let valid = cdef.valid_source_types.clone().or_else(|| {
            let ct = self.reg.lookup(TypeKind::Capability, &cdef.type_name.value)?;
            self.reg.flat(ct).valid_source_types.clone()
        });
        let Some(valid) = valid.filter(|v| !v.is_empty()) else { return Ok(()) };
        let ok = valid.iter().any(|v| self.reg.lookup(TypeKind::Node, &v.value).is_some_and(|vt| self.reg.derives_from(st, vt)));
        if ok {
            Ok(())
        } else {
            Err(valid.iter().map(|v| v.value.clone()).collect())
        }
    }

    pub(super) fn nodes_of_type(&self, t: TypeId) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].type_id.is_some_and(|nt| self.reg.derives_from(nt, t))).collect()
    }

    /// The name of the capability on node `n` that matches by name and/or type.
    fn find_capability(&self, n: usize, cap_type: Option<TypeId>, cap_name: Option<&Sp<String>>) -> Option<String> {
        let tid = self.nodes[n].type_id?;
        let flat = self.reg.flat(tid);
        let type_ok = |c: &syntax::CapabilityDef| match (cap_type, self.reg.lookup(TypeKind::Capability, &c.type_name.value)) {
            (Some(want), Some(have)) => self.reg.derives_from(have, want),
            (None, _) => true,
            _ => false,
        };
        match cap_name {
            Some(n) => flat.capabilities.get(&n.value).filter(|c| type_ok(c)).map(|_| n.value.clone()),
            None => flat.capabilities.iter().find(|(_, c)| type_ok(c)).map(|(k, _)| k.clone()),
        }
    }

    /// Reports names in `f` that type `t` does not have; true when all exist.
    fn check_filter_names(&mut self, f: &NodeFilter, t: TypeId, owner: &str) -> bool {
        let before = self.diags.error_count();
        let flat = self.reg.flat_rc(t);
        let tname = self.reg.get(t).name.clone();
        for (p, _) in &f.properties {
            if !flat.properties.contains_key(&p.value) {
                let help = did_you_mean(&p.value, flat.properties.keys().map(String::as_str), || format!("properties of `{tname}`: {}", flat.properties.keys().map(String::as_str).collect::<Vec<_>>().join(", ")));
                self.diags.push(Diagnostic::new(&codes::BAD_NODE_FILTER, p.span, format!("{owner}: node_filter names property `{}`, which `{tname}` does not have", p.value)).help(help));
            }
        }
        for (c, props) in &f.capabilities {
            let by_type = self.reg.lookup(TypeKind::Capability, &c.value);
            let cap = flat.capabilities.get_key_value(&c.value).map(|(k, _)| k.clone()).or_else(|| {
                let ct = by_type?;
                flat.capabilities.iter().find(|(_, d)| self.reg.lookup(TypeKind::Capability, &d.type_name.value).is_some_and(|x| self.reg.derives_from(x, ct))).map(|(k, _)| k.clone())
            });
            let Some(cap) = cap else {
                self.diags.push(
                    Diagnostic::new(&codes::BAD_NODE_FILTER, c.span, format!("{owner}: node_filter names capability `{}`, which `{tname}` does not have", c.value))
                        .help(format!("capabilities of `{tname}`: {}", flat.capabilities.keys().map(String::as_str).collect::<Vec<_>>().join(", "))),
                );
                continue;
            };
            let defs = flat.capability_properties.get(&cap).cloned().unwrap_or_default();
            for (p, _) in props {
                if !defs.contains_key(&p.value) {
                    self.diags.push(
                        Diagnostic::new(&codes::BAD_NODE_FILTER, p.span, format!("{owner}: node_filter names property `{}`, which capability `{cap}` of `{tname}` does not have", p.value))
                            .help(format!("properties of `{cap}`: {}", defs.keys().map(String::as_str).collect::<Vec<_>>().join(", "))),
                    );
                }
            }
        }
        self.diags.error_count() == before
    }

    fn filter_matches(&mut self, n: usize, f: &NodeFilter) -> bool {
        let Some(tid) = self.nodes[n].type_id else { return false };
        let flat = self.reg.flat_rc(tid);
        for (pname, constraints) in &f.properties {
            let Some(def) = flat.properties.get(&pname.value) else { return false };
            let Some(v) = self.nodes[n].tpl.properties.get(&pname.value).map(|(_, y)| y.clone()).or(def.default.clone()) else { return false };
            if !self.constraints_hold(&v, def, constraints) {
                return false;
            }
        }
        for (cname, props) in &f.capabilities {
            // By capability name, or by capability type.
            let cap = flat.capabilities.get(&cname.value).map(|_| cname.value.clone()).or_else(|| {
                let ct = self.reg.lookup(TypeKind::Capability, &cname.value)?;
                flat.capabilities.iter().find(|(_, c)| self.reg.lookup(TypeKind::Capability, &c.type_name.value).is_some_and(|t| self.reg.derives_from(t, ct))).map(|(k, _)| k.clone())
            });
            let Some(cap) = cap else { return false };
            let defs = flat.capability_properties.get(&cap).cloned().unwrap_or_default();
            for (pname, constraints) in props {
                let Some(def) = defs.get(&pname.value) else { return false };
                let given = self.nodes[n].tpl.capabilities.get(&cap).and_then(|(_, a)| a.properties.get(&pname.value)).map(|(_, y)| y.clone());
                let Some(v) = given.or(def.default.clone()) else { return false };
                if !self.constraints_hold(&v, def, constraints) {
                    return false;
                }
            }
        }
        true
    }

    fn constraints_hold(&mut self, y: &crate::yaml::Yaml, def: &syntax::PropertyDef, constraints: &[syntax::Constraint]) -> bool {
        let Some(spec) = TypeSpec::of_property(def) else { return false };
        let mut scratch = crate::Diagnostics::new();
        let v = value::check_value(y, &spec, &self.reg, &mut scratch);
        if matches!(v, value::Value::Expr(_)) {
            // A value known only after apply may match; the orchestrator decides.
            return true;
        }
        constraints.iter().all(|c| match value::constraint_holds(c, &v, &spec, &self.reg) {
            Ok(b) => b,
            Err(d) => {
                self.diags.push(d);
                false
            }
        })
    }

    /// Cycles along ordering relationships (see [`Self::orders`]).
    /// Relationships that order deployment: DependsOn (and ConnectsTo), HostedOn, AttachesTo.
    /// Others (a custom peer relationship derived from Root) connect nodes without ordering
    /// them, so a cycle through them is legal TOSCA.
    fn orders(&self, rt: Option<TypeId>) -> bool {
        let Some(rt) = rt else { return true };
        ["tosca.relationships.DependsOn", "tosca.relationships.HostedOn", "tosca.relationships.AttachesTo"]
            .iter()
            .any(|o| self.reg.lookup(TypeKind::Relationship, o).is_some_and(|o| self.reg.derives_from(rt, o)))
    }

    pub(super) fn check_cycles(&mut self, reqs: &[Vec<Resolved>]) {
        let n = self.nodes.len();
        let ordering: Vec<Vec<bool>> = reqs.iter().map(|rs| rs.iter().map(|r| self.orders(r.relationship_type)).collect()).collect();
        // 0 = unvisited, 1 = on stack, 2 = done. Iterative DFS: deep chains must not overflow.
        let mut state = vec![0u8; n];
        let mut reported = false;
        for start in 0..n {
            if state[start] != 0 || reported {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut path: Vec<usize> = vec![start];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let edges = &reqs[node];
                if *next < edges.len() {
                    let r = &edges[*next];
                    let orders = ordering[node][*next];
                    *next += 1;
                    let Some(t) = r.target.filter(|_| orders) else { continue };
                    match state[t] {
                        0 => {
                            state[t] = 1;
                            stack.push((t, 0));
                            path.push(t);
                        }
                        1 => {
                            let pos = path.iter().position(|p| *p == t).unwrap_or(0);
                            let names: Vec<&str> = path[pos..].iter().chain(std::iter::once(&t)).map(|i| self.nodes[*i].name.as_str()).collect();
                            self.diags.push(
                                Diagnostic::new(&codes::DEPENDENCY_CYCLE, r.span, format!("requirement cycle: {}", names.join(" -> ")))
                                    .help(codes::DEPENDENCY_CYCLE.help),
                            );
                            reported = true;
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                    path.pop();
                }
            }
        }
    }
}
