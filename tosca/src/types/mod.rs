//! The type registry: every type visible to a template (normative, imported, local), their
//! `derived_from` chains, and each type's flattened view (inherited + refined definitions).
//!
//! Built once per template; lookups accept full names (`tosca.nodes.Compute`), normative short
//! names (`Compute`, `tosca:Compute`) and namespace-prefixed names (`prefix:Name`).

mod flatten;
mod normative;

pub use flatten::{overlay_interface, overlay_interface_owned, FlatType};
pub use normative::{non_normative_source, normative_source, rosca_source};

use crate::diag::{codes, did_you_mean, Diagnostic, Diagnostics};
use crate::source::{FileId, Span};
use crate::syntax::{TypeDef, TypeKind};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u32);

#[derive(Clone, Debug)]
pub struct TypeEntry {
    pub kind: TypeKind,
    pub name: String,
    pub def: TypeDef,
    pub file: FileId,
    /// The span of the type's name in its file.
    pub span: Span,
    pub parent: Option<TypeId>,
    pub normative: bool,
}

/// Where a type definition comes from.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub file: FileId,
    /// The span of the type's name.
    pub span: Span,
    /// Built into Rosca (normative, or the specification's non-normative types). Templates may
    /// redefine built-ins; redefining a normative one gets a warning.
    pub normative: bool,
    /// A built-in that templates have long defined themselves (the non-normative Docker types):
    /// redefining it is silent.
    pub replaceable: bool,
}

#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<TypeEntry>,
    /// Name -> the type of that name for each kind (indexed by `TypeKind as usize`): lookups by
    /// `&str` without allocating, on the hot path of every check.
    by_name: HashMap<String, [Option<TypeId>; 8], rustc_hash::FxBuildHasher>,
    /// Short names and prefixed names; a real name always wins over an alias.
    aliases: HashMap<String, [Option<TypeId>; 8], rustc_hash::FxBuildHasher>,
    flat: Vec<std::rc::Rc<FlatType>>,
    replaceable: std::collections::HashSet<TypeId>,
    /// Constraint arguments read while checking values (see `value::DataTypes::prepared`).
    pub(crate) prepared: crate::value::PreparedConstraints,
}

/// The plural segment normative names carry: `tosca.nodes.Compute` -> `nodes`.
fn normative_segment(kind: TypeKind) -> &'static str {
    match kind {
        TypeKind::Artifact => "tosca.artifacts.",
        TypeKind::Data => "tosca.datatypes.",
        TypeKind::Capability => "tosca.capabilities.",
        TypeKind::Interface => "tosca.interfaces.",
        TypeKind::Relationship => "tosca.relationships.",
        TypeKind::Node => "tosca.nodes.",
        TypeKind::Group => "tosca.groups.",
        TypeKind::Policy => "tosca.policies.",
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a type. A second definition of the same name is a DUPLICATE_NAME error, unless both
    /// come from the same place (a file imported twice is loaded once, so that cannot happen).
    pub fn add(&mut self, kind: TypeKind, name: String, def: TypeDef, origin: Origin, diags: &mut Diagnostics) -> Option<TypeId> {
        let Origin { file, span, normative, .. } = origin;
        if let Some(existing) = self.by_name.get(&name).and_then(|k| k[kind as usize]) {
            let prev = &self.entries[existing.0 as usize];
            if prev.normative && !normative && self.replaceable.contains(&existing) {
                // A template's own definition of a replaceable built-in simply wins.
            } else if prev.normative && !normative {
                // Templates may redefine a normative type (INDIGO's files do, e.g. for
                // tosca.nodes.Compute); the local definition wins, with a warning.
                diags.push(Diagnostic::new(&codes::REDEFINED_NORMATIVE, span, format!("{} `{name}` redefines a normative type", kind.noun())).help(codes::REDEFINED_NORMATIVE.help));
            } else if prev.file != file {
                diags.push(
                    Diagnostic::new(&codes::NAMESPACE_CLASH, span, format!("{} `{name}` is already defined in another file", kind.noun()))
                        .help("rename one of them, or import this file with a namespace_prefix")
                        .related(prev.span, "first defined here"),
                );
                return None;
            } else {
                diags.push(
                    Diagnostic::new(&codes::DUPLICATE_NAME, span, format!("{} `{name}` is defined twice", kind.noun()))
                        .help("rename one of the definitions, or import the file that defines it only once")
                        .related(prev.span, "first defined here"),
                );
                return None;
            }
        }
        let id = TypeId(self.entries.len() as u32);
        if normative {
            if let Some(short) = name.strip_prefix(normative_segment(kind)) {
                // `tosca.nodes.Storage.ObjectStorage` is `Storage.ObjectStorage` and, as the
                // specification's shorthand, `ObjectStorage`. The full short name always wins;
                // a shorter suffix only fills a name nobody else has (`Compute` stays
                // tosca.nodes.Compute, not tosca.nodes.Abstract.Compute).
                let k = kind as usize;
                self.aliases.entry(short.to_string()).or_default()[k] = Some(id);
                self.aliases.entry(format!("tosca:{short}")).or_default()[k] = Some(id);
                let mut rest = short;
                while let Some((_, tail)) = rest.split_once('.') {
                    rest = tail;
                    self.aliases.entry(rest.to_string()).or_default()[k].get_or_insert(id);
                    self.aliases.entry(format!("tosca:{rest}")).or_default()[k].get_or_insert(id);
                }
            }
        }
        self.by_name.entry(name.clone()).or_default()[kind as usize] = Some(id);
        if origin.replaceable {
            self.replaceable.insert(id);
        }
        self.entries.push(TypeEntry { kind, name, def, file, span, parent: None, normative });
        Some(id)
    }

    pub fn add_alias(&mut self, kind: TypeKind, alias: String, id: TypeId) {
        self.aliases.entry(alias).or_default()[kind as usize].get_or_insert(id);
    }

    pub fn lookup(&self, kind: TypeKind, name: &str) -> Option<TypeId> {
        let k = kind as usize;
        self.by_name.get(name).and_then(|ids| ids[k]).or_else(|| self.aliases.get(name).and_then(|ids| ids[k]))
    }

    /// Kinds under which `name` exists, for "wrong kind" messages.
    pub fn kinds_of(&self, name: &str) -> Vec<TypeKind> {
        TypeKind::ALL.into_iter().filter(|k| self.lookup(*k, name).is_some()).collect()
    }

    pub fn get(&self, id: TypeId) -> &TypeEntry {
        &self.entries[id.0 as usize]
    }

    /// A shared handle on the flat view, for callers that keep it while mutating other state.
    pub fn flat_rc(&self, id: TypeId) -> std::rc::Rc<FlatType> {
        self.flat[id.0 as usize].clone()
    }

    pub fn flat(&self, id: TypeId) -> &FlatType {
        &self.flat[id.0 as usize]
    }

    pub fn ids(&self) -> impl Iterator<Item = TypeId> + '_ {
        (0..self.entries.len() as u32).map(TypeId)
    }

    pub fn entries(&self) -> impl Iterator<Item = (TypeId, &TypeEntry)> {
        self.entries.iter().enumerate().map(|(i, e)| (TypeId(i as u32), e))
    }

    /// `id` itself, then its parents up to the root. Stops on a cycle (already reported).
    pub fn chain(&self, id: TypeId) -> Vec<TypeId> {
        let mut out = vec![id];
        let mut cur = id;
        while let Some(p) = self.get(cur).parent {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }

    pub fn chain_names(&self, id: TypeId) -> Vec<String> {
        self.chain(id).into_iter().map(|t| self.get(t).name.clone()).collect()
    }

    /// True when `id` is `ancestor` or derives from it.
    pub fn derives_from(&self, id: TypeId, ancestor: TypeId) -> bool {
        // Walked in place (requirement matching asks this for every candidate); a chain is at
        // most all the types, which bounds the walk even through a cycle.
        let mut cur = Some(id);
        for _ in 0..=self.entries.len() {
            match cur {
                Some(t) if t == ancestor => return true,
                Some(t) => cur = self.get(t).parent,
                None => return false,
            }
        }
        false
    }

    /// `derives_from` by names, for the common case of checking against a normative type.
    pub fn is_a(&self, kind: TypeKind, name: &str, ancestor: &str) -> bool {
        match (self.lookup(kind, name), self.lookup(kind, ancestor)) {
            (Some(a), Some(b)) => self.derives_from(a, b),
            _ => false,
        }
    }

    /// Resolves every `derived_from`, reports unknown parents and cycles, then flattens.
    pub fn resolve(&mut self, diags: &mut Diagnostics) {
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            let Some(parent) = &e.def.derived_from else { continue };
            let kind = e.kind;
            match self.lookup(kind, &parent.value) {
                Some(p) if p.0 as usize == i => {
                    diags.push(Diagnostic::new(&codes::DERIVATION_CYCLE, parent.span, format!("{} `{}` derives from itself", kind.noun(), e.name)).help(codes::DERIVATION_CYCLE.help));
                }
                Some(p) => self.entries[i].parent = Some(p),
                None if kind == TypeKind::Data && crate::value::Primitive::parse(&parent.value).is_some() => {}
                None => {
                    let others = self.kinds_of(&parent.value);
                    let d = if let Some(other) = others.first() {
                        Diagnostic::new(
                            &codes::WRONG_TYPE_KIND,
                            parent.span,
                            format!("{} `{}` derives from `{}`, which is a {}", kind.noun(), e.name, parent.value, other.noun()),
                        )
                        .help(format!("a {} can only derive from another {}", kind.noun(), kind.noun()))
                    } else {
                        let names = self.by_name.iter().filter(|(_, ids)| ids[kind as usize].is_some()).map(|(n, _)| n.as_str());
                        let help = did_you_mean(&parent.value, names, || codes::MISSING_PARENT.help.to_string());
                        Diagnostic::new(&codes::MISSING_PARENT, parent.span, format!("{} `{}` derives from unknown type `{}`", kind.noun(), e.name, parent.value)).help(help)
                    };
                    diags.push(d);
                }
            }
        }
        // Cycles longer than one: walk each chain; report once per cycle, at its first member.
        let mut reported = vec![false; self.entries.len()];
        for i in 0..self.entries.len() {
            let mut seen = vec![TypeId(i as u32)];
            let mut cur = TypeId(i as u32);
            while let Some(p) = self.entries[cur.0 as usize].parent {
                if let Some(pos) = seen.iter().position(|s| *s == p) {
                    let cycle = &seen[pos..];
                    if !cycle.iter().any(|c| reported[c.0 as usize]) {
                        let first = cycle.iter().min().copied().unwrap_or(p);
                        let names: Vec<&str> = cycle.iter().chain(std::iter::once(&cycle[0])).map(|c| self.entries[c.0 as usize].name.as_str()).collect();
                        let e = &self.entries[first.0 as usize];
                        let span = e.def.derived_from.as_ref().map(|d| d.span).unwrap_or(e.span);
                        diags.push(Diagnostic::new(&codes::DERIVATION_CYCLE, span, format!("derived_from cycle: {}", names.join(" -> "))).help(codes::DERIVATION_CYCLE.help));
                    }
                    for c in cycle {
                        reported[c.0 as usize] = true;
                    }
                    // Cut the cycle so later walks terminate.
                    let last = *seen.last().unwrap_or(&cur);
                    self.entries[last.0 as usize].parent = None;
                    break;
                }
                seen.push(p);
                cur = p;
            }
        }
        self.flat = flatten::flatten_all(self, diags).into_iter().map(std::rc::Rc::new).collect();
        let caps: Vec<_> = self.ids().map(|id| flatten::capability_properties(self, id, diags)).collect();
        for (flat, caps) in self.flat.iter_mut().zip(caps) {
            if let Some(f) = std::rc::Rc::get_mut(flat) {
                f.capability_properties = caps;
            }
        }
    }
}

