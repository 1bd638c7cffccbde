//! The builder: one pass per concern, all writing diagnostics and continuing on errors.

use super::model::*;
use super::values::PV;
use crate::diag::{codes, did_you_mean, Diagnostic, Diagnostics};
use crate::source::{Sources, Span};
use crate::syntax::{self, parse::parse_file, PropertyDef, ServiceTemplate, Sp, ToscaVersion, TypeKind};
use crate::types::{non_normative_source, normative_source, rosca_source, Origin, Registry, TypeId};
use crate::value::{self, DataTypeInfo, DataTypes, TypeSpec};
use crate::yaml::Yaml;
use indexmap::IndexMap;
use std::rc::Rc;

/// Input values given by the user (`--inputs FILE`, `-i k=v`), with where they were given.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// In the order given; a later value for the same name wins.
    pub values: Vec<(Sp<String>, Yaml)>,
    /// Whether a required input without a value is an error (E0501: a deployment needs it) or a
    /// warning (W0504: validating a template before its inputs are known, like `terraform validate`).
    pub required: bool,
}

impl Inputs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, name: Sp<String>, value: Yaml) {
        self.values.push((name, value));
    }
}

impl DataTypes for Registry {
    fn data_type(&self, name: &str) -> Option<DataTypeInfo<'_>> {
        let id = self.lookup(TypeKind::Data, name)?;
        let flat = self.flat(id);
        Some(DataTypeInfo {
            name: &self.get(id).name,
            primitive: flat.primitive,
            properties: flat.properties.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            constraints: flat.constraints.iter().collect(),
            key_schema: flat.key_schema.as_ref(),
            entry_schema: flat.entry_schema.as_ref(),
        })
    }

    fn prepared(&self) -> Option<&crate::value::PreparedConstraints> {
        Some(&self.prepared)
    }
}

/// Per node template, what later passes need beyond the output model.
/// Property values by name (a node shares its whole map, so evaluating a `get_property` does
/// not copy them).
pub(super) type Values = IndexMap<String, PV, rustc_hash::FxBuildHasher>;

pub(super) struct NodeCtx {
    pub name: String,
    pub span: Span,
    pub type_id: Option<TypeId>,
    /// Shared: the output pass renders them while calls read other nodes' values.
    pub properties: Rc<Values>,
    /// Capability name -> its capability type and property values.
    pub capabilities: Rc<IndexMap<String, (Option<TypeId>, Values)>>,
    pub tpl: syntax::NodeTemplate,
}

pub(super) struct Ctx<'a> {
    pub reg: Registry,
    pub diags: &'a mut Diagnostics,
    /// Shared: every `get_input` reads its input's definition and value.
    pub inputs: IndexMap<String, Rc<(syntax::PropertyDef, Option<PV>)>>,
    /// The YAML each input's value came from (given or default), when valid for the input, to
    /// check it again where a `get_input` feeds it to a property with its own type and constraints.
    pub input_yaml: IndexMap<String, Yaml>,
    /// (node template, requirement) pairs that substitution_mappings export: the enclosing
    /// topology fulfils them, so they are not dangling here.
    pub exported_requirements: std::collections::HashSet<(String, String)>,
    pub nodes: Vec<NodeCtx>,
    pub node_index: IndexMap<String, usize, rustc_hash::FxBuildHasher>,
    pub rel_templates: syntax::Named<syntax::RelationshipTemplate>,
    /// False for a diagnostics-only compile ([`crate::check`]): every check still runs, but
    /// the output model of the nodes is not assembled.
    pub model: bool,
    /// Repository names defined by any file of the template.
    pub repositories: std::collections::HashSet<String>,
}

/// Builds the topology of `docs` (root first). Returns `None` only when there is nothing to
/// build from (the root failed to parse).
pub fn build(sources: &mut Sources, docs: Vec<(crate::FileId, Yaml)>, edges: &[(crate::FileId, crate::FileId, Option<String>)], given: &Inputs, diags: &mut Diagnostics) -> Topology {
    build_with(sources, docs, edges, given, diags, true).0
}

/// What [`build_with`] hands back instead of freeing when it builds no model: the builder's
/// node data, so that a caller about to exit (`rosca validate`) can skip freeing it too.
pub type Retained = Box<dyn std::any::Any>;

/// [`build`]; with `model` false, only the diagnostics are wanted: the same checks run, in the
/// same order, but the nodes of the output model (their properties, capabilities,
/// requirements, interfaces, attributes) are not assembled, and the returned topology has none;
/// the builder's node data is returned with it (see [`Retained`]).
pub fn build_with(sources: &mut Sources, docs: Vec<(crate::FileId, Yaml)>, edges: &[(crate::FileId, crate::FileId, Option<String>)], given: &Inputs, diags: &mut Diagnostics, model: bool) -> (Topology, Option<Retained>) {
    // Each YAML document is dropped as soon as its syntax is read: peak memory matters on big templates.
    let mut templates: Vec<ServiceTemplate> = docs
        .into_iter()
        .enumerate()
        .map(|(i, (f, y))| {
            if i == 0 {
                return parse_file(f, &y, diags);
            }
            // An imported type library without tosca_definitions_version is common (and
            // tosca-parser accepts it): the importer's version is assumed, with a warning.
            let mut local = Diagnostics::new();
            let st = parse_file(f, &y, &mut local);
            for mut d in local.into_sorted() {
                if d.code == codes::MISSING_VERSION.id {
                    d = Diagnostic::new(&codes::IMPORT_WITHOUT_VERSION, d.span, "this imported file does not declare tosca_definitions_version; the importing template's is assumed")
                        .help(codes::IMPORT_WITHOUT_VERSION.help);
                }
                diags.push(d);
            }
            st
        })
        .collect();
    let root = templates.first();
    let version = root.and_then(|t| t.version.map(|v| v.value)).unwrap_or(ToscaVersion::V1_3);
    for t in templates.iter().skip(1) {
        if let Some(v) = t.version {
            if v.value != version {
                diags.push(
                    Diagnostic::new(&codes::VERSION_MISMATCH, v.span, format!("this file is {} but the template is {}", v.value.as_str(), version.as_str()))
                        .help(codes::VERSION_MISMATCH.help),
                );
            }
        }
    }

    let mut reg = Registry::new();
    for ((norm_name, norm_text), replaceable) in [(normative_source(version), false), (non_normative_source(), true), (rosca_source(), true)] {
        let norm_file = sources.add(norm_name, norm_text);
        match crate::yaml::parse(norm_file, norm_text, &Default::default()) {
            Ok(y) => {
                let mut ignored = Diagnostics::new();
                let st = parse_file(norm_file, &y, &mut ignored);
                for (kind, name, span, def) in st.types {
                    reg.add(kind, name, def, Origin { file: norm_file, span, normative: true, replaceable }, diags);
                }
            }
            Err(d) => diags.push(d),
        }
    }
    for t in &templates {
        for (kind, name, span, def) in &t.types {
            reg.add(*kind, name.clone(), def.clone(), Origin { file: t.file, span: *span, normative: false, replaceable: false }, diags);
        }
    }
    for (_, to, prefix) in edges {
        let Some(prefix) = prefix else { continue };
        if let Some(t) = templates.iter().find(|t| t.file == *to) {
            for (kind, name, _, _) in &t.types {
                if let Some(id) = reg.lookup(*kind, name) {
                    reg.add_alias(*kind, format!("{prefix}:{name}"), id);
                    reg.add_alias(*kind, format!("{prefix}.{name}"), id);
                }
            }
        }
    }
    reg.resolve(diags);
    let repositories: std::collections::HashSet<String> = templates.iter().flat_map(|t| t.repositories.keys().cloned()).collect();
    check_type_definitions(&reg, &repositories, diags);

    let mut topo = Topology { format_version: "1.0", tosca_definitions_version: Some(version), ..Default::default() };
    for t in templates.iter().skip(1) {
        if let Some(tt) = &t.topology {
            diags.push(
                Diagnostic::new(&codes::IMPORTED_TOPOLOGY, tt.span, "the topology_template of an imported file is ignored: imports bring definitions (types, repositories)")
                    .help(codes::IMPORTED_TOPOLOGY.help),
            );
        }
    }
    let Some(root) = templates.first_mut() else { return (topo, None) };
    topo.description = root.description.take();
    topo.metadata = std::mem::take(&mut root.metadata);
    let Some(mut tt) = root.topology.take() else {
        return (topo, None);
    };
    drop(templates);
    if tt.node_templates.is_empty() {
        diags.report(&codes::EMPTY_TOPOLOGY, tt.span, "topology_template has no node_templates");
    }
    let exported_requirements = tt.substitution_mappings.iter().flat_map(|s| s.requirements.iter()).filter_map(|(_, t)| Some((t.first()?.value.clone(), t.get(1)?.value.clone()))).collect();
    let mut ctx = Ctx { reg, diags, repositories, inputs: IndexMap::new(), input_yaml: IndexMap::new(), exported_requirements, nodes: Vec::new(), node_index: IndexMap::default(), rel_templates: tt.relationship_templates.clone(), model };
    ctx.build_inputs(&tt.inputs, given, &mut topo);
    let node_templates = std::mem::take(&mut tt.node_templates);
    // Sized once: growing these by doubling copied every node several times at 10k nodes.
    ctx.nodes.reserve_exact(node_templates.len());
    ctx.node_index.reserve(node_templates.len());
    topo.nodes.reserve(node_templates.len());
    let copies = ctx.resolve_copies(&node_templates);
    for (name, (span, nt)) in node_templates {
        let nt = copies.get(&name).cloned().unwrap_or(nt);
        ctx.node_index.insert(name.clone(), ctx.nodes.len());
        let node = ctx.build_node(&name, span, nt);
        ctx.nodes.push(node);
    }
    for (name, (span, rt)) in &tt.relationship_templates {
        if let Some(t) = ctx.type_of(TypeKind::Relationship, &rt.type_name) {
            let flat = ctx.reg.flat_rc(t);
            ctx.assign_values(&format_args!("relationship template `{name}`"), *span, &flat.properties, &rt.properties, "property", true);
        }
    }
    let requirements = ctx.resolve_requirements();
    // The properties as written were last read by node_filter matching: their YAML is freed
    // before the output model is built, which lowers the peak on big templates.
    for node in &mut ctx.nodes {
        node.tpl.properties = syntax::Values::new();
    }
    ctx.check_cycles(&requirements);
    super::functions::finish(&mut ctx, &tt, requirements, &mut topo);
    // Freeing the nodes' data is ~5% of a 10k-node check.
    let retained = (!model).then(|| Box::new(std::mem::take(&mut ctx.nodes)) as Retained);
    (topo, retained)
}

impl Ctx<'_> {
    pub fn type_of(&mut self, kind: TypeKind, name: &Sp<String>) -> Option<TypeId> {
        if name.value.is_empty() {
            return None;
        }
        if let Some(id) = self.reg.lookup(kind, &name.value) {
            return Some(id);
        }
        report_unknown_type(&self.reg, kind, name, self.diags);
        None
    }

    pub fn spec_check(&mut self, y: &Yaml, def: &PropertyDef) -> value::Value {
        crate::function::lint(y, self.diags);
        match TypeSpec::of_property(def) {
            Some(spec) => value::check_value(y, &spec, &self.reg, self.diags),
            None => super::values::untyped(y),
        }
    }

    /// Operations an interface definition offers: its own and those of its interface type.
    pub fn type_operations(&self, def: &syntax::InterfaceDef) -> Vec<String> {
        let typed = def.type_name.as_ref().and_then(|t| self.reg.lookup(TypeKind::Interface, &t.value));
        let mut ops: Vec<String> = def.operations.keys().cloned().collect();
        if let Some(t) = typed {
            ops.extend(self.reg.flat(t).operations.keys().filter(|k| !def.operations.contains_key(*k)).cloned());
        }
        ops
    }

    /// Whether `operation` is one of [`Self::type_operations`], without listing them.
    fn offers_operation(&self, def: &syntax::InterfaceDef, operation: &str) -> bool {
        def.operations.contains_key(operation)
            || def.type_name.as_ref().and_then(|t| self.reg.lookup(TypeKind::Interface, &t.value)).is_some_and(|t| self.reg.flat(t).operations.contains_key(operation))
    }

    /// True when node `n` has `operation` in interface `iface` (type or template).
    pub fn has_operation(&self, n: usize, iface: &str, operation: &str) -> bool {
        let in_type = self.nodes[n].type_id.and_then(|t| self.reg.flat(t).interfaces.get(iface));
        in_type.is_some_and(|i| self.offers_operation(i, operation))
            || self.nodes[n].tpl.interfaces.get(iface).is_some_and(|(_, i)| i.operations.contains_key(operation))
    }

    pub fn has_interface(&self, n: usize, iface: &str) -> bool {
        self.nodes[n].type_id.is_some_and(|t| self.reg.flat(t).interfaces.contains_key(iface)) || self.nodes[n].tpl.interfaces.contains_key(iface)
    }

    /// `{get_input: NAME}` as a property value: the input's value must also suit the property
    /// (its type may be looser, or the property may add constraints). Reported at the call.
    fn check_fed_input(&mut self, owner: &dyn std::fmt::Display, prop: &str, y: &Yaml, def: &PropertyDef) {
        let Some([(k, arg)]) = y.as_map() else { return };
        let (Some("get_input"), Some(input)) = (k.as_str(), arg.as_str()) else { return };
        let Some(raw) = self.input_yaml.get(input).cloned() else { return };
        if self.inputs.get(input).is_some_and(|i| is_sensitive(&self.reg, &i.0)) {
            return;
        }
        let Some(spec) = TypeSpec::of_property(def) else { return };
        let mut local = Diagnostics::new();
        value::check_value(&raw, &spec, &self.reg, &mut local);
        for mut d in local.into_sorted().into_iter().filter(Diagnostic::is_error) {
            d.message = format!("{owner}: property `{prop}` gets input `{input}`: {}", d.message);
            d = d.related(raw.span, "the input's value");
            d.span = y.span;
            self.diags.push(d);
        }
    }

    /// Checks a value whose problems were already reported elsewhere.
    pub fn quiet_check(&mut self, y: &Yaml, def: &PropertyDef) -> value::Value {
        self.quiet_check_ok(y, def).0
    }

    /// [`Self::quiet_check`], also telling whether the value is valid for `def`.
    fn quiet_check_ok(&mut self, y: &Yaml, def: &PropertyDef) -> (value::Value, bool) {
        let mut scratch = Diagnostics::new();
        let v = match TypeSpec::of_property(def) {
            Some(spec) => value::check_value(y, &spec, &self.reg, &mut scratch),
            None => super::values::untyped(y),
        };
        (v, !scratch.has_errors())
    }

    pub fn pv_of(&mut self, v: value::Value) -> PV {
        let diags = &mut *self.diags;
        PV::from_value(v, &mut |y| crate::function::parse(y, diags))
    }

    /// Node templates written with `copy: OTHER`, completed from OTHER (only they are cloned).
    fn resolve_copies(&mut self, all: &syntax::Named<syntax::NodeTemplate>) -> IndexMap<String, syntax::NodeTemplate> {
        let mut out = IndexMap::new();
        for (name, (_, nt)) in all {
            let Some(copy) = &nt.copy else { continue };
            match all.get(&copy.value) {
                Some((_, src)) if src.copy.is_none() && copy.value != *name => {
                    let mut merged = src.clone();
                    if !nt.type_name.value.is_empty() {
                        merged.type_name = nt.type_name.clone();
                    }
                    merged.properties.extend(nt.properties.clone());
                    merged.span = nt.span;
                    merged.copy = None;
                    out.insert(name.clone(), merged);
                }
                Some(_) => self.diags.push(
                    Diagnostic::new(&codes::UNKNOWN_NODE_TEMPLATE, copy.span, format!("`copy` of `{}`, which is itself a copy (or this node)", copy.value))
                        .help("copy a node template that is not itself a copy"),
                ),
                None => self.diags.report(&codes::UNKNOWN_NODE_TEMPLATE, copy.span, format!("`copy` names unknown node template `{}`", copy.value)),
            }
        }
        out
    }

    fn build_inputs(&mut self, defs: &syntax::Named<PropertyDef>, given: &Inputs, topo: &mut Topology) {
        for (name, (span, def)) in defs {
            check_definition(&self.reg, def, *span, self.diags);
            let default = def.default.as_ref().map(|d| self.quiet_check_ok(d, def));
            let given_yaml = given.values.iter().rev().find(|(k, _)| k.value == *name).map(|(_, y)| y.clone());
            let errors_before = self.diags.error_count();
            let supplied = given_yaml.as_ref().map(|y| self.spec_check(y, def));
            // Kept for re-checking where a get_input feeds a property, only when valid for the
            // input itself (a value wrong for the input was reported there).
            let source_ok = match (&given_yaml, &default) {
                (Some(_), _) => self.diags.error_count() == errors_before,
                (None, Some((_, ok))) => *ok,
                (None, None) => false,
            };
            if let (Some(y), true) = (given_yaml.clone().or(def.default.clone()), source_ok) {
                self.input_yaml.insert(name.clone(), y);
            }
            let default = default.map(|(v, _)| v);
            let required = def.required.map(|r| r.value).unwrap_or(true);
            let chosen = supplied.or(default.clone());
            if chosen.is_none() && required {
                let code = if given.required { &codes::MISSING_INPUT } else { &codes::INPUT_NOT_GIVEN };
                self.diags.push(
                    Diagnostic::new(code, *span, format!("input `{name}` is required and has no value"))
                        .help(format!("give it with -i {name}=VALUE or --inputs FILE, or add a default")),
                );
            }
            let pv = chosen.map(|v| self.pv_of(v));
            let sensitive = is_sensitive(&self.reg, def);
            topo.inputs.insert(
                name.clone(),
                Input {
                    type_name: def.type_name.as_ref().map(|t| t.value.clone()).unwrap_or_else(|| "string".into()),
                    required,
                    description: def.description.clone(),
                    default: default.as_ref().map(|v| v.to_json()),
                    // A list, map or complex value is a PV::List/Map too: all of it is shown
                    // (a call inside stays as its `{"$expr": ...}` form, as in properties).
                    value: pv.as_ref().map(|p| p.clone().into_json()),
                    sensitive,
                },
            );
            self.inputs.insert(name.clone(), Rc::new((def.clone(), pv)));
        }
        for (k, y) in &given.values {
            if !defs.contains_key(&k.value) {
                let names: Vec<&str> = defs.keys().map(String::as_str).collect();
                let help = did_you_mean(&k.value, names.iter().copied(), || {
                    if names.is_empty() {
                        "the template declares no inputs".to_string()
                    } else {
                        format!("declared inputs: {}", names.join(", "))
                    }
                });
                let _ = y;
                self.diags.push(Diagnostic::new(&codes::UNKNOWN_INPUT, k.span, format!("input `{}` is not declared by the template", k.value)).help(help));
            }
        }
    }

    /// Property values of a template against the flat definitions: defaults applied, required
    /// checked, unknown names reported.
    pub fn assign_values(&mut self, owner: &dyn std::fmt::Display, span: Span, defs: &IndexMap<String, PropertyDef>, given: &syntax::Values, what: &str, required_check: bool) -> Values {
        let mut out = Values::with_capacity_and_hasher(defs.len(), Default::default());
        for (name, def) in defs {
            if let Some((kspan, y)) = given.get(name) {
                if let Some(status) = def.status.filter(|s| matches!(s.value, syntax::Status::Deprecated | syntax::Status::Experimental | syntax::Status::Unsupported)) {
                    let word = match status.value {
                        syntax::Status::Deprecated => "deprecated",
                        syntax::Status::Experimental => "experimental",
                        _ => "unsupported",
                    };
                    self.diags.push(
                        Diagnostic::new(&codes::DEPRECATED, *kspan, format!("{owner}: {what} `{name}` is {word}"))
                            .help(codes::DEPRECATED.help)
                            .related(status.span, "status declared here"),
                    );
                }
                self.check_fed_input(owner, name, y, def);
                let v = self.spec_check(y, def);
                out.insert(name.clone(), self.pv_of(v));
            } else if let Some(d) = &def.default {
                // Defaults were checked (and reported) with their definition.
                let v = self.quiet_check(d, def);
                out.insert(name.clone(), self.pv_of(v));
            } else if required_check && def.required.map(|r| r.value).unwrap_or(true) {
                self.diags.push(
                    Diagnostic::new(&codes::MISSING_PROPERTY, span, format!("{owner}: required {what} `{name}` has no value"))
                        .help(format!("give `{name}` a value under {}, or a default in the type", plural(what)))
                        .related(def.span, "defined here"),
                );
            }
        }
        for (name, (kspan, _)) in given {
            if !defs.contains_key(name) {
                let help = did_you_mean(name, defs.keys().map(String::as_str), || {
                    if defs.is_empty() {
                        format!("the type defines no {}", plural(what))
                    } else {
                        format!("defined {}: {}", plural(what), defs.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                    }
                });
                let code = if what == "attribute" { &codes::UNKNOWN_ATTRIBUTE } else { &codes::UNKNOWN_PROPERTY };
                self.diags.push(Diagnostic::new(code, *kspan, format!("{owner}: unknown {what} `{name}`")).help(help));
            }
        }
        out
    }

    fn build_node(&mut self, name: &str, span: Span, nt: syntax::NodeTemplate) -> NodeCtx {
        let type_id = self.type_of(TypeKind::Node, &nt.type_name);
        let mut node = NodeCtx { name: name.to_string(), span, type_id, properties: Rc::default(), capabilities: Rc::default(), tpl: nt };
        let Some(tid) = type_id else { return node };
        let flat = self.reg.flat_rc(tid);
        // Named in messages only: formatted when one is written.
        let owner = format_args!("node template `{name}`");
        let is_abstract = node.tpl.directives.iter().any(|d| d.value == "select" || d.value == "substitute");
        node.properties = Rc::new(self.assign_values(&owner, span, &flat.properties, &node.tpl.properties, "property", !is_abstract));
        let _ = self.assign_values(&owner, node.tpl.type_name.span, &flat.attributes, &node.tpl.attributes, "attribute", false);
        let mut capabilities = IndexMap::with_capacity(flat.capabilities.len());
        let (no_defs, no_values) = (IndexMap::new(), syntax::Values::new());
        for (cname, cdef) in &flat.capabilities {
            let ctype = self.reg.lookup(TypeKind::Capability, &cdef.type_name.value);
            let defs = flat.capability_properties.get(cname).map(|d| &**d).unwrap_or(&no_defs);
            let given = node.tpl.capabilities.get(cname).map(|(_, a)| &a.properties).unwrap_or(&no_values);
            let props = self.assign_values(&format_args!("{owner}, capability `{cname}`"), node.tpl.type_name.span, defs, given, "property", false);
            capabilities.insert(cname.clone(), (ctype, props));
        }
        node.capabilities = Rc::new(capabilities);
        for (cname, (cspan, _)) in &node.tpl.capabilities {
            if !flat.capabilities.contains_key(cname) {
                let help = did_you_mean(cname, flat.capabilities.keys().map(String::as_str), || format!("capabilities of `{}`: {}", node.tpl.type_name.value, flat.capabilities.keys().map(String::as_str).collect::<Vec<_>>().join(", ")));
                self.diags.push(Diagnostic::new(&codes::UNKNOWN_CAPABILITY, *cspan, format!("{owner}: type `{}` has no capability `{cname}`", node.tpl.type_name.value)).help(help));
            }
        }
        for (iname, (ispan, iface)) in &node.tpl.interfaces {
            match flat.interfaces.get(iname) {
                Some(def) => {
                    for (op, (ospan, _)) in &iface.operations {
                        if !self.offers_operation(def, op) {
                            let known = self.type_operations(def);
                            self.diags.push(
                                Diagnostic::new(&codes::UNKNOWN_INTERFACE_OPERATION, *ospan, format!("{owner}: interface `{iname}` has no operation `{op}`"))
                                    .help(format!("operations of `{iname}`: {}", known.join(", "))),
                            );
                        }
                    }
                }
                None if iface.type_name.is_some() => {
                    if let Some(t) = &iface.type_name {
                        self.type_of(TypeKind::Interface, t);
                    }
                }
                None => self.diags.push(
                    Diagnostic::new(&codes::UNKNOWN_INTERFACE_OPERATION, *ispan, format!("{owner}: type `{}` has no interface `{iname}`", node.tpl.type_name.value))
                        .help("define the interface in the node type, or give its `type` here"),
                ),
            }
        }
        for (_, (_, a)) in &node.tpl.artifacts {
            if let Some(t) = &a.type_name {
                self.type_of(TypeKind::Artifact, t);
            }
            check_repository(&self.repositories, a, self.diags);
        }
        node
    }
}

fn plural(what: &str) -> String {
    match what.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{what}s"),
    }
}

/// An artifact's `repository` must be defined under some file's `repositories`.
fn check_repository(repositories: &std::collections::HashSet<String>, a: &syntax::ArtifactDef, diags: &mut Diagnostics) {
    if let Some(r) = a.repository.as_ref().filter(|r| !repositories.contains(&r.value)) {
        diags.push(
            Diagnostic::new(&codes::UNKNOWN_REPOSITORY, r.span, format!("artifact `{}` names repository `{}`, which is not defined", a.file.value, r.value))
                .help("define it under `repositories:` (name: URL), or drop `repository:`"),
        );
    }
}

pub(super) fn is_sensitive(reg: &Registry, def: &PropertyDef) -> bool {
    if def.metadata.get("sensitive").is_some_and(|v| v == "true") {
        return true;
    }
    def.type_name.as_ref().is_some_and(|t| reg.is_a(TypeKind::Data, &t.value, "tosca.datatypes.Credential"))
}

pub(super) fn report_unknown_type(reg: &Registry, kind: TypeKind, name: &Sp<String>, diags: &mut Diagnostics) {
    let others = reg.kinds_of(&name.value);
    let d = if let Some(other) = others.first() {
        Diagnostic::new(&codes::WRONG_TYPE_KIND, name.span, format!("`{}` is a {}, but a {} is expected here", name.value, other.noun(), kind.noun()))
            .help(format!("use a {}", kind.noun()))
    } else {
        let names: Vec<&str> = reg.entries().filter(|(_, e)| e.kind == kind).map(|(_, e)| e.name.as_str()).collect();
        let help = did_you_mean(&name.value, names.iter().copied(), || codes::UNKNOWN_TYPE.help.to_string());
        Diagnostic::new(&codes::UNKNOWN_TYPE, name.span, format!("unknown {} `{}`", kind.noun(), name.value)).help(help)
    };
    diags.push(d);
}

fn check_definition(reg: &Registry, def: &PropertyDef, span: Span, diags: &mut Diagnostics) {
    match TypeSpec::of_property(def) {
        Some(spec) => {
            value::check_definition(&spec, reg, diags);
            if let Some(d) = &def.default {
                let before = diags.error_count();
                let mut local = Diagnostics::new();
                value::check_value(d, &spec, reg, &mut local);
                for mut x in local.into_sorted() {
                    if x.is_error() && x.code != codes::RECURSIVE_VALUE.id {
                        x.code = codes::BAD_DEFAULT.id;
                        x.message = format!("default: {}", x.message);
                    }
                    diags.push(x);
                }
                let _ = before;
            }
        }
        None => {
            diags.push(Diagnostic::new(&codes::MISSING_KEY, span, "definition has no `type`").help("add `type:` (e.g. string, integer, or a data type name)"));
        }
    }
}

/// Checks the definitions inside non-normative types: referenced types exist and are of the
/// right kind, property definitions are well-typed.
fn check_type_definitions(reg: &Registry, repositories: &std::collections::HashSet<String>, diags: &mut Diagnostics) {
    let check_ref = |kind: TypeKind, n: &Sp<String>, diags: &mut Diagnostics| {
        if reg.lookup(kind, &n.value).is_none() {
            report_unknown_type(reg, kind, n, diags);
        }
    };
    for (_, e) in reg.entries() {
        if e.normative {
            continue;
        }
        let d = &e.def;
        for (_, (span, p)) in d.properties.iter().chain(d.attributes.iter()).chain(d.inputs.iter()) {
            // Types without `type` inherit it from the parent: only top-level ones must say it.
            if p.type_name.is_some() || e.parent.is_none() {
                check_definition(reg, p, *span, diags);
            }
        }
        if e.kind == TypeKind::Data {
            let primitive = reg.lookup(TypeKind::Data, &e.name).and_then(|id| reg.flat(id).primitive);
            if let (Some(p), Some((first, (span, _)))) = (primitive, d.properties.first()) {
                diags.push(
                    Diagnostic::new(&codes::PRIMITIVE_WITH_PROPERTIES, *span, format!("data type `{}` derives from the primitive `{}` and cannot define properties (`{first}`)", e.name, p.name()))
                        .help("derive from tosca.datatypes.Root (or another complex type) for a type with properties, or use constraints to narrow the primitive"),
                );
            }
            if let Some(parent) = &d.derived_from {
                if let Some(p) = crate::value::Primitive::parse(&parent.value) {
                    let spec = TypeSpec { type_name: parent, entry_schema: d.entry_schema.as_deref(), key_schema: d.key_schema.as_deref(), constraints: &d.constraints };
                    let _ = p;
                    value::check_definition(&spec, reg, diags);
                }
            }
        }
        for (_, (_, c)) in &d.capabilities {
            if !c.type_name.value.is_empty() {
                check_ref(TypeKind::Capability, &c.type_name, diags);
            }
            for n in c.valid_source_types.iter().flatten() {
                check_ref(TypeKind::Node, n, diags);
            }
            for (_, (span, p)) in c.properties.iter().chain(c.attributes.iter()) {
                if p.type_name.is_some() {
                    check_definition(reg, p, *span, diags);
                }
            }
        }
        for (rname, r) in &d.requirements {
            if let Some(c) = &r.capability {
                check_ref(TypeKind::Capability, c, diags);
            }
            let rel = r.relationship.as_ref().and_then(|x| reg.lookup(TypeKind::Relationship, &x.value));
            let cap = r.capability.as_ref().and_then(|x| reg.lookup(TypeKind::Capability, &x.value));
            if let (Some(rt), Some(ct)) = (rel, cap) {
                if let Some(valid) = &reg.flat(rt).valid_target_types {
                    let ok = valid.is_empty() || valid.iter().any(|v| reg.lookup(TypeKind::Capability, &v.value).is_some_and(|vt| reg.derives_from(ct, vt) || reg.derives_from(vt, ct)));
                    if !ok {
                        let rel_name = &reg.get(rt).name;
                        diags.push(
                            Diagnostic::new(&codes::RELATIONSHIP_CANNOT_TARGET, rname.span, format!("requirement `{}` of `{}` uses `{rel_name}`, which cannot target `{}`", rname.value, e.name, reg.get(ct).name))
                                .help(format!("{rel_name} targets: {}; pick a relationship type that targets this capability", valid.iter().map(|v| v.value.as_str()).collect::<Vec<_>>().join(", "))),
                        );
                    }
                }
            }
            if let Some(n) = &r.node {
                check_ref(TypeKind::Node, n, diags);
            }
            if let Some(rel) = &r.relationship {
                check_ref(TypeKind::Relationship, rel, diags);
            }
        }
        let own_flat = reg.lookup(e.kind, &e.name).map(|id| reg.flat_rc(id));
        for (iname, (_, i)) in &d.interfaces {
            if let Some(t) = &i.type_name {
                check_ref(TypeKind::Interface, t, diags);
            }
            // An operation that is not the interface type's but one edit away from one of its
            // operations is almost certainly a typo (`creat`); new operations are otherwise allowed.
            let itype = i.type_name.clone().or_else(|| own_flat.as_ref().and_then(|f| f.interfaces.get(iname)).and_then(|x| x.type_name.clone()));
            let Some(it) = itype.and_then(|t| reg.lookup(TypeKind::Interface, &t.value)) else { continue };
            let known = &reg.flat(it).operations;
            for (op, (ospan, _)) in &i.operations {
                if known.contains_key(op) {
                    continue;
                }
                if let Some(s) = crate::diag::suggest(op, known.keys().map(String::as_str)) {
                    diags.push(
                        Diagnostic::new(&codes::LIKELY_MISSPELT_OPERATION, *ospan, format!("operation `{op}` of interface `{iname}` is not one of `{}`'s operations", reg.get(it).name))
                            .help(format!("did you mean `{s}`?")),
                    );
                }
            }
        }
        for (_, (_, a)) in &d.artifacts {
            if let Some(t) = &a.type_name {
                check_ref(TypeKind::Artifact, t, diags);
            }
            check_repository(repositories, a, diags);
        }
        for n in d.valid_target_types.iter().flatten() {
            if reg.lookup(TypeKind::Capability, &n.value).is_none() && reg.lookup(TypeKind::Node, &n.value).is_none() {
                report_unknown_type(reg, TypeKind::Capability, n, diags);
            }
        }
        for n in d.valid_source_types.iter().flatten().chain(d.members.iter().flatten()) {
            check_ref(TypeKind::Node, n, diags);
        }
        for n in d.targets.iter().flatten() {
            if reg.lookup(TypeKind::Node, &n.value).is_none() && reg.lookup(TypeKind::Group, &n.value).is_none() {
                report_unknown_type(reg, TypeKind::Node, n, diags);
            }
        }
    }
}
