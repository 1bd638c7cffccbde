//! Flattening: each type's definitions merged with its parents', checking that every override
//! refines (never breaks) the parent's contract.

use super::{Registry, TypeId};
use crate::diag::{codes, Diagnostic, Diagnostics};
use crate::syntax::*;
use crate::value::Primitive;
use indexmap::IndexMap;

/// A type with everything it inherits. Entries keep the span of the definition that won.
#[derive(Clone, Debug, Default)]
pub struct FlatType {
    pub properties: IndexMap<String, PropertyDef>,
    pub attributes: IndexMap<String, PropertyDef>,
    pub capabilities: IndexMap<String, CapabilityDef>,
    pub requirements: Vec<(String, RequirementDef)>,
    pub interfaces: IndexMap<String, InterfaceDef>,
    pub artifacts: IndexMap<String, ArtifactDef>,
    /// Data types: constraints of the whole chain, all of which must hold.
    pub constraints: Vec<Constraint>,
    /// Data types derived from a primitive type.
    pub primitive: Option<Primitive>,
    pub key_schema: Option<Schema>,
    pub entry_schema: Option<Schema>,
    pub valid_target_types: Option<Vec<Sp<String>>>,
    pub valid_source_types: Option<Vec<Sp<String>>>,
    pub members: Option<Vec<Sp<String>>>,
    pub targets: Option<Vec<Sp<String>>>,
    /// Node and group types: for each capability, its full property definitions: the
    /// capability type's, refined by the capability definition (set by [`capability_properties`]).
    pub capability_properties: IndexMap<String, std::rc::Rc<IndexMap<String, PropertyDef>>>,
    /// Interface types: operations and notifications, and shared inputs.
    pub operations: IndexMap<String, OperationDef>,
    pub inputs: IndexMap<String, PropertyDef>,
}

/// How an overriding definition's type relates to the parent's.
#[derive(PartialEq, Eq, Debug)]
enum Compat {
    Refines,
    /// Not a refinement, but related (a widening like integer -> float, a sibling type):
    /// accepted with a warning because real profiles do it.
    Lenient,
    Breaks,
}

pub(super) fn flatten_all(reg: &Registry, diags: &mut Diagnostics) -> Vec<FlatType> {
    let n = reg.entries.len();
    let mut out: Vec<Option<FlatType>> = vec![None; n];
    for id in reg.ids() {
        flatten_one(reg, id, &mut out, diags, 0);
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}

fn flatten_one(reg: &Registry, id: TypeId, out: &mut Vec<Option<FlatType>>, diags: &mut Diagnostics, depth: usize) {
    if out[id.0 as usize].is_some() {
        return;
    }
    let entry = reg.get(id);
    let mut flat = match entry.parent {
        Some(p) if depth < 256 => {
            flatten_one(reg, p, out, diags, depth + 1);
            out[p.0 as usize].clone().unwrap_or_default()
        }
        _ => FlatType::default(),
    };
    let def = &entry.def;
    let kind = entry.kind;
    // Built-in types are the specification's own; its known inconsistencies (the non-normative
    // Docker host capability is a sibling of 1.2+'s Compute) are not the template's to fix.
    let mut builtin_scratch = Diagnostics::new();
    let diags = if entry.normative { &mut builtin_scratch } else { diags };
    if kind == TypeKind::Data {
        if flat.primitive.is_none() {
            flat.primitive = def.derived_from.as_ref().and_then(|d| Primitive::parse(&d.value));
        }
        flat.constraints.extend(def.constraints.iter().cloned());
        if def.key_schema.is_some() {
            flat.key_schema = def.key_schema.as_deref().cloned();
        }
        if def.entry_schema.is_some() {
            flat.entry_schema = def.entry_schema.as_deref().cloned();
        }
    }
    merge_props(reg, &mut flat.properties, &def.properties, "property", false, diags);
    merge_props(reg, &mut flat.attributes, &def.attributes, "attribute", true, diags);
    merge_props(reg, &mut flat.inputs, &def.inputs, "input", false, diags);
    for (name, (_, cap)) in &def.capabilities {
        let mut cap = cap.clone();
        if cap.type_name.value.is_empty() && !flat.capabilities.contains_key(name) {
            diags.push(
                Diagnostic::new(&codes::MISSING_KEY, cap.span, format!("capability definition `{name}` has no `type`, and no parent type defines `{name}` to refine"))
                    .help("add `type:` with a capability type"),
            );
        }
        if let Some(parent) = flat.capabilities.get(name) {
            if cap.type_name.value.is_empty() {
                cap.type_name = parent.type_name.clone();
            } else {
                check_override(reg, TypeKind::Capability, &cap.type_name, &parent.type_name, parent.span, &format!("capability `{name}`"), diags);
            }
            let mut props = unnamed(&parent.properties);
            merge_props(reg, &mut props, &cap.properties, "property", false, diags);
            cap.properties = renamed(props);
            let mut attrs = unnamed(&parent.attributes);
            merge_props(reg, &mut attrs, &cap.attributes, "attribute", true, diags);
            cap.attributes = renamed(attrs);
            if cap.valid_source_types.is_none() {
                cap.valid_source_types = parent.valid_source_types.clone();
            }
            if cap.occurrences.is_none() {
                cap.occurrences = parent.occurrences;
            }
        }
        flat.capabilities.insert(name.clone(), flatten_capability_props(cap));
    }
    for (name, req) in &def.requirements {
        let mut req = req.clone();
        if let Some(pos) = flat.requirements.iter().position(|(n, _)| *n == name.value) {
            let parent = flat.requirements[pos].1.clone();
            match (&req.capability, &parent.capability) {
                (Some(c), Some(pc)) => check_override(reg, TypeKind::Capability, c, pc, parent.span, &format!("requirement `{}`", name.value), diags),
                (None, _) => req.capability = parent.capability.clone(),
                _ => {}
            }
            // The parent's `node` constraint was chosen for the parent's capability: it carries
            // over only when the capability is not refined (the specification's own Docker
            // application refines its host capability, and INDIGO's templates host it on a
            // Docker runtime that is no Container.Runtime).
            let same_capability = req.capability.as_ref().map(|c| &c.value) == parent.capability.as_ref().map(|c| &c.value);
            if req.node.is_none() && same_capability {
                req.node = parent.node.clone();
            }
            if req.relationship.is_none() {
                req.relationship = parent.relationship.clone();
            }
            if req.occurrences.is_none() {
                req.occurrences = parent.occurrences;
            }
            flat.requirements[pos] = (name.value.clone(), req);
        } else {
            if req.capability.is_none() {
                diags.push(
                    Diagnostic::new(&codes::MISSING_KEY, req.span, format!("requirement definition `{}` has no `capability`, and no parent type defines `{}` to refine", name.value, name.value))
                        .help("add `capability:` with a capability type"),
                );
            }
            flat.requirements.push((name.value.clone(), req));
        }
    }
    for (name, (_, iface)) in &def.interfaces {
        let merged = match flat.interfaces.get(name) {
            Some(parent) => merge_interface(reg, parent, iface, name, diags),
            None => iface.clone(),
        };
        flat.interfaces.insert(name.clone(), merged);
    }
    for (name, (_, a)) in &def.artifacts {
        flat.artifacts.insert(name.clone(), a.clone());
    }
    for (name, (_, op)) in def.operations.iter().chain(def.notifications.iter()) {
        flat.operations.insert(name.clone(), op.clone());
    }
    if def.valid_target_types.is_some() {
        flat.valid_target_types = def.valid_target_types.clone();
    }
    if def.valid_source_types.is_some() {
        flat.valid_source_types = def.valid_source_types.clone();
    }
    if def.members.is_some() {
        flat.members = def.members.clone();
    }
    if def.targets.is_some() {
        flat.targets = def.targets.clone();
    }
    out[id.0 as usize] = Some(flat);
}

/// The second flattening pass, once every type is flat: capability definitions refine the
/// properties of their capability type.
pub(super) fn capability_properties(reg: &Registry, id: TypeId, diags: &mut Diagnostics) -> IndexMap<String, std::rc::Rc<IndexMap<String, PropertyDef>>> {
    let mut out = IndexMap::new();
    for (cname, cdef) in &reg.flat(id).capabilities {
        let mut props = reg.lookup(TypeKind::Capability, &cdef.type_name.value).map(|c| reg.flat(c).properties.clone()).unwrap_or_default();
        // Only the type's own definitions report problems; inherited ones were checked on the parent.
        let own = !reg.get(id).normative && reg.get(id).def.capabilities.contains_key(cname);
        let mut scratch = Diagnostics::new();
        merge_props(reg, &mut props, &cdef.properties, "property", false, if own { &mut *diags } else { &mut scratch });
        out.insert(cname.clone(), std::rc::Rc::new(props));
    }
    out
}

fn unnamed(n: &Named<PropertyDef>) -> IndexMap<String, PropertyDef> {
    n.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect()
}

fn renamed(m: IndexMap<String, PropertyDef>) -> Named<PropertyDef> {
    m.into_iter().map(|(k, v)| (k, (v.span, v))).collect()
}

/// Capability definitions keep `Named` maps; the flat view of the capability's own properties
/// must include those inherited from its capability type, which the topology adds later. Here we
/// only normalize the structure.
fn flatten_capability_props(cap: CapabilityDef) -> CapabilityDef {
    cap
}

fn merge_interface(reg: &Registry, parent: &InterfaceDef, child: &InterfaceDef, name: &str, diags: &mut Diagnostics) -> InterfaceDef {
    if let (Some(t), Some(pt)) = (&child.type_name, &parent.type_name) {
        check_override(reg, TypeKind::Interface, t, pt, parent.span, &format!("interface `{name}`"), diags);
    }
    overlay_interface(parent, child)
}

/// `child` over `parent`: the interface a derived type (or a node template's assignment) ends up
/// with. Operations keep the parent's implementation and inputs unless the child gives its own.
pub fn overlay_interface(parent: &InterfaceDef, child: &InterfaceDef) -> InterfaceDef {
    overlay_interface_owned(parent, child.clone())
}

/// [`overlay_interface`] of a `child` that is not needed afterwards: its parts are moved.
pub fn overlay_interface_owned(parent: &InterfaceDef, child: InterfaceDef) -> InterfaceDef {
    let mut merged = parent.clone();
    if let Some(t) = child.type_name {
        merged.type_name = Some(t);
    }
    for (k, v) in child.inputs {
        merged.inputs.insert(k, v);
    }
    for (op, (span, mut def)) in child.operations {
        if let Some((_, pdef)) = merged.operations.get(&op) {
            if def.implementation.is_none() {
                def.implementation = pdef.implementation.clone();
            }
            for (k, v) in &pdef.inputs {
                def.inputs.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        merged.operations.insert(op, (span, def));
    }
    if child.description.is_some() {
        merged.description = child.description;
    }
    merged.span = child.span;
    merged
}

fn merge_props(reg: &Registry, into: &mut IndexMap<String, PropertyDef>, child: &Named<PropertyDef>, noun: &str, lenient: bool, diags: &mut Diagnostics) {
    for (name, (_, def)) in child {
        let mut def = def.clone();
        if let Some(parent) = into.get(name) {
            match (&def.type_name, &parent.type_name) {
                (Some(t), Some(pt)) => {
                    let c = data_compat(reg, &t.value, &pt.value);
                    let what = format!("{noun} `{name}`");
                    report_compat(c, lenient, t, pt, parent.span, &what, diags);
                    if def.entry_schema.is_none() {
                        def.entry_schema = parent.entry_schema.clone();
                    }
                }
                (None, _) => {
                    def.type_name = parent.type_name.clone();
                    if def.entry_schema.is_none() {
                        def.entry_schema = parent.entry_schema.clone();
                    }
                    if def.key_schema.is_none() {
                        def.key_schema = parent.key_schema.clone();
                    }
                }
                _ => {}
            }
            if let (Some(r), Some(pr)) = (&def.required, &parent.required) {
                if pr.value && !r.value {
                    // With a parent default the value is always there: harmless (INDIGO's
                    // Scalable does it); without one, consumers lose a guaranteed value.
                    let code = if parent.default.is_some() { &codes::LENIENT_OVERRIDE } else { &codes::BAD_OVERRIDE };
                    diags.push(
                        Diagnostic::new(code, r.span, format!("{noun} `{name}` is required in the parent type and is made optional"))
                            .help(code.help)
                            .related(pr.span, "required here"),
                    );
                }
            }
            if def.required.is_none() {
                def.required = parent.required;
            }
            if def.description.is_none() {
                def.description = parent.description.clone();
            }
            if def.default.is_none() {
                def.default = parent.default.clone();
            }
            if def.status.is_none() {
                def.status = parent.status;
            }
            // A refinement adds constraints to the parent's; a new type (a lenient override)
            // replaces the definition, and the parent's constraints, typed for the old type, go.
            if def.type_name == parent.type_name || def.type_name.as_ref().map(|t| &t.value) == parent.type_name.as_ref().map(|t| &t.value) {
                let mut constraints = parent.constraints.clone();
                constraints.extend(def.constraints);
                def.constraints = constraints;
            }
        }
        into.insert(name.clone(), def);
    }
}

fn report_compat(c: Compat, lenient: bool, t: &Sp<String>, pt: &Sp<String>, parent_span: crate::Span, what: &str, diags: &mut Diagnostics) {
    match c {
        Compat::Refines => {}
        Compat::Breaks if !lenient => diags.push(
            Diagnostic::new(&codes::BAD_OVERRIDE, t.span, format!("{what} changes its type from `{}` to `{}`, which does not derive from it", pt.value, t.value))
                .help(codes::BAD_OVERRIDE.help)
                .related(parent_span, "parent definition"),
        ),
        _ => diags.push(
            Diagnostic::new(&codes::LENIENT_OVERRIDE, t.span, format!("{what} changes its type from `{}` to `{}`", pt.value, t.value))
                .help(codes::LENIENT_OVERRIDE.help)
                .related(parent_span, "parent definition"),
        ),
    }
}

fn check_override(reg: &Registry, kind: TypeKind, t: &Sp<String>, pt: &Sp<String>, parent_span: crate::Span, what: &str, diags: &mut Diagnostics) {
    let c = match (reg.lookup(kind, &t.value), reg.lookup(kind, &pt.value)) {
        (Some(a), Some(b)) if reg.derives_from(a, b) => Compat::Refines,
        (Some(a), Some(b)) => {
            // Siblings under a common non-root ancestor are related; anything else breaks.
            let ca = reg.chain(a);
            let cb = reg.chain(b);
            let common = ca.iter().find(|x| cb.contains(x));
            match common {
                Some(x) if reg.get(*x).parent.is_some() => Compat::Lenient,
                _ => Compat::Breaks,
            }
        }
        // Unknown names are reported where the type is used.
        _ => Compat::Refines,
    };
    report_compat(c, false, t, pt, parent_span, what, diags);
}

/// Data type compatibility: same type, a derived data type, or a primitive widening.
fn data_compat(reg: &Registry, child: &str, parent: &str) -> Compat {
    if child == parent {
        return Compat::Refines;
    }
    let prim = |n: &str| Primitive::parse(n);
    match (prim(child), prim(parent)) {
        (Some(a), Some(b)) if a == b => Compat::Refines,
        (Some(Primitive::Integer), Some(Primitive::Float)) => Compat::Refines,
        (Some(Primitive::Float), Some(Primitive::Integer)) => Compat::Lenient,
        (Some(_), Some(_)) => Compat::Breaks,
        _ => match (reg.lookup(TypeKind::Data, child), reg.lookup(TypeKind::Data, parent)) {
            (Some(a), Some(b)) if reg.derives_from(a, b) => Compat::Refines,
            (Some(a), None) if prim(parent).is_some() => {
                // A data type derived from the parent's primitive refines it.
                let root = reg.chain(a).last().and_then(|r| reg.get(*r).def.derived_from.as_ref().and_then(|d| prim(&d.value)));
                if root == prim(parent) {
                    Compat::Refines
                } else {
                    Compat::Breaks
                }
            }
            (Some(_), Some(_)) | (None, Some(_)) => Compat::Breaks,
            // An unknown type name is reported where the definition is checked.
            _ => Compat::Refines,
        },
    }
}
