//! Yaml -> [`ServiceTemplate`]: the grammar of TOSCA files, with located diagnostics.
//!
//! Each `read_*` function takes a YAML node and returns the syntax for it, reporting what is
//! malformed and keeping whatever is usable, so that one mistake does not hide the others.

use super::*;
use crate::diag::{codes, did_you_mean, Diagnostic, Diagnostics};
use crate::yaml::{Yaml, YamlValue};

/// Parses one TOSCA file. `expected_version` is the root file's version, used when an imported
/// file does not say its own.
pub fn parse_file(file: FileId, doc: &Yaml, diags: &mut Diagnostics) -> ServiceTemplate {
    let mut p = Parser { diags, version: ToscaVersion::V1_3 };
    p.service_template(file, doc)
}

struct Parser<'d> {
    diags: &'d mut Diagnostics,
    version: ToscaVersion,
}

const TEMPLATE_KEYS: &[&str] = &[
    "tosca_definitions_version",
    "namespace",
    "metadata",
    "template_name",
    "template_author",
    "template_version",
    "description",
    "dsl_definitions",
    "repositories",
    "imports",
    "artifact_types",
    "data_types",
    "capability_types",
    "interface_types",
    "relationship_types",
    "node_types",
    "group_types",
    "policy_types",
    "topology_template",
];

impl Parser<'_> {
    /// Keys a later TOSCA version introduced: accepted, with a warning naming the version.
    fn since(&mut self, version: ToscaVersion, key: &str, span: Span) {
        if self.version < version {
            self.diags.push(
                Diagnostic::new(&codes::KEY_NOT_IN_VERSION, span, format!("`{key}` is defined from {} on; this file declares {}", version.as_str(), self.version.as_str()))
                    .help(format!("declare tosca_definitions_version: {} or later, or drop `{key}`", version.as_str())),
            );
        }
    }

    fn wrong_kind(&mut self, y: &Yaml, what: &str, expected: &str) {
        self.diags.push(
            Diagnostic::new(&codes::WRONG_KIND, y.span, format!("{what} must be {expected}, found {}", y.kind_name()))
                .help(format!("write {what} as {expected}")),
        );
    }

    /// The entries of a mapping with string keys, checked against `known`. `null` is an empty map.
    fn fields<'y>(&mut self, y: &'y Yaml, what: &str, known: &[&str]) -> Vec<(&'y str, Span, &'y Yaml)> {
        let Some(entries) = self.map(y, what) else { return Vec::new() };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            // The usual case, a known string key, is decided without copying the key.
            if let Some(name) = k.as_str().filter(|n| known.contains(n)) {
                out.push((name, k.span, v));
                continue;
            }
            let Some(key) = self.key(k, what) else { continue };
            if known.contains(&key.value.as_str()) {
                out.push((k.as_str().unwrap_or(""), k.span, v));
            } else {
                let mut d = Diagnostic::new(&codes::UNKNOWN_KEY, k.span, format!("unknown key `{}` in {what}", key.value));
                d.help = Some(did_you_mean(&key.value, known.iter().copied(), || format!("{what} accepts: {}", known.join(", "))));
                self.diags.push(d);
            }
        }
        out
    }

    fn map<'y>(&mut self, y: &'y Yaml, what: &str) -> Option<&'y [(Yaml, Yaml)]> {
        match &y.value {
            YamlValue::Map(m) => Some(m),
            YamlValue::Null => Some(&[]),
            _ => {
                self.wrong_kind(y, what, "a mapping");
                None
            }
        }
    }

    fn key(&mut self, k: &Yaml, what: &str) -> Option<Sp<String>> {
        match k.scalar_text() {
            Some(s) if !s.is_empty() && !matches!(k.value, YamlValue::Null) => Some(Sp::new(s, k.span)),
            _ => {
                self.diags.push(
                    Diagnostic::new(&codes::BAD_NAME, k.span, format!("a key in {what} must be a non-empty name, found {}", k.kind_name()))
                        .help(codes::BAD_NAME.help),
                );
                None
            }
        }
    }

    /// A string; numbers and booleans are accepted as their source text (descriptions, names).
    fn string(&mut self, y: &Yaml, what: &str) -> Option<Sp<String>> {
        match &y.value {
            YamlValue::Str(s) => Some(Sp::new(s.as_str().to_owned(), y.span)),
            YamlValue::Int(_) | YamlValue::Float(_) | YamlValue::Bool(_) => {
                Some(Sp::new(y.scalar_text().unwrap_or_default(), y.span))
            }
            _ => {
                self.wrong_kind(y, what, "a string");
                None
            }
        }
    }

    fn text(&mut self, y: &Yaml, what: &str) -> Option<String> {
        self.string(y, what).map(|s| s.value)
    }

    fn name(&mut self, y: &Yaml, what: &str) -> Option<Sp<String>> {
        let s = self.string(y, what)?;
        if s.value.trim().is_empty() {
            self.diags.report(&codes::BAD_NAME, y.span, format!("{what} must not be empty"));
            return None;
        }
        Some(s)
    }

    fn bool(&mut self, y: &Yaml, what: &str) -> Option<Sp<bool>> {
        match &y.value {
            YamlValue::Bool(b) => Some(Sp::new(*b, y.span)),
            YamlValue::Str(s) if matches!(s.as_str(), "true" | "false" | "yes" | "no" | "True" | "False") => {
                self.diags.push(
                    Diagnostic::new(&codes::LENIENT_VALUE, y.span, format!("{what} is the string \"{s}\", read as a boolean"))
                        .help("write true or false without quotes"),
                );
                Some(Sp::new(matches!(s.as_str(), "true" | "yes" | "True"), y.span))
            }
            _ => {
                self.wrong_kind(y, what, "a boolean (true or false)");
                None
            }
        }
    }

    /// A list of names; a single string is accepted as a list of one.
    fn names(&mut self, y: &Yaml, what: &str) -> Vec<Sp<String>> {
        match &y.value {
            YamlValue::Seq(items) => items.iter().filter_map(|i| self.name(i, what)).collect(),
            YamlValue::Str(_) => self.name(y, what).into_iter().collect(),
            YamlValue::Null => Vec::new(),
            _ => {
                self.wrong_kind(y, what, "a list of names");
                Vec::new()
            }
        }
    }

    fn metadata(&mut self, y: &Yaml) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        for (k, v) in self.map(y, "metadata").unwrap_or(&[]) {
            let Some(key) = self.key(k, "metadata") else { continue };
            let value = match &v.value {
                YamlValue::Str(s) => s.as_str().to_owned(),
                YamlValue::Seq(_) | YamlValue::Map(_) => {
                    self.diags.report(&codes::BAD_METADATA, v.span, format!("metadata `{}` is {}, not a string", key.value, v.kind_name()));
                    continue;
                }
                _ => v.scalar_text().unwrap_or_default(),
            };
            out.insert(key.value, value);
        }
        out
    }

    /// A mapping of named things, each read by `read`. Duplicates cannot occur: YAML rejects them.
    fn named<T>(&mut self, y: &Yaml, what: &str, mut read: impl FnMut(&mut Self, &str, Span, &Yaml) -> Option<T>) -> Named<T> {
        let mut out = Named::new();
        for (k, v) in self.map(y, what).unwrap_or(&[]) {
            let Some(name) = self.key(k, what) else { continue };
            if let Some(t) = read(self, &name.value, k.span, v) {
                out.insert(name.value, (k.span, t));
            }
        }
        out
    }

    /// TOSCA 1.0 writes some named collections as lists of single-key maps (policies, and
    /// requirements everywhere); later versions also accept a map for policies.
    fn named_list<T>(&mut self, y: &Yaml, what: &str, mut read: impl FnMut(&mut Self, &str, Span, &Yaml) -> Option<T>) -> Vec<(Sp<String>, T)> {
        let mut out = Vec::new();
        match &y.value {
            YamlValue::Seq(items) => {
                for item in items.iter() {
                    match item.as_map() {
                        Some([(k, v)]) => {
                            let Some(name) = self.key(k, what) else { continue };
                            if let Some(t) = read(self, &name.value, k.span, v) {
                                out.push((name, t));
                            }
                        }
                        _ => self.wrong_kind(item, &format!("each entry of {what}"), "a mapping with exactly one key (the name)"),
                    }
                }
            }
            YamlValue::Map(entries) => {
                for (k, v) in entries.iter() {
                    let Some(name) = self.key(k, what) else { continue };
                    if let Some(t) = read(self, &name.value, k.span, v) {
                        out.push((name, t));
                    }
                }
            }
            YamlValue::Null => {}
            _ => self.wrong_kind(y, what, "a list of single-key mappings"),
        }
        out
    }

    fn service_template(&mut self, file: FileId, doc: &Yaml) -> ServiceTemplate {
        let mut st = ServiceTemplate { file, ..Default::default() };
        if doc.is_null() {
            self.diags.report(&codes::EMPTY_DOCUMENT, doc.span, "the file is empty");
            return st;
        }
        if let Some(v) = doc.get("tosca_definitions_version") {
            match v.as_str().and_then(ToscaVersion::parse) {
                Some(ver) => {
                    self.version = ver;
                    st.version = Some(Sp::new(ver, v.span));
                }
                None => self.diags.push(
                    Diagnostic::new(
                        &codes::UNSUPPORTED_VERSION,
                        v.span,
                        format!("tosca_definitions_version `{}` is not supported", v.scalar_text().unwrap_or_else(|| v.kind_name().into())),
                    )
                    .help(codes::UNSUPPORTED_VERSION.help),
                ),
            }
        } else if doc.as_map().is_some() {
            self.diags.report(&codes::MISSING_VERSION, doc.span, "the file does not declare tosca_definitions_version");
        }
        for (key, span, v) in self.fields(doc, "a service template", TEMPLATE_KEYS) {
            match key {
                "tosca_definitions_version" | "imports" | "dsl_definitions" => {}
                "namespace" => st.namespace = self.string(v, "namespace"),
                "metadata" => st.metadata = self.metadata(v),
                "template_name" | "template_author" | "template_version" => {
                    if let Some(t) = self.text(v, key) {
                        st.metadata.insert(key.to_string(), t);
                    }
                }
                "description" => st.description = self.text(v, "description"),
                "repositories" => st.repositories = self.named(v, "repositories", |p, _, _, y| Some(p.repository(y))),
                "topology_template" => st.topology = Some(self.topology(v, span)),
                section => {
                    if let Some(kind) = TypeKind::ALL.into_iter().find(|k| k.section() == section) {
                        for (name, (nspan, def)) in self.named(v, section, |p, name, _, y| Some(p.type_def(kind, name, y))) {
                            st.types.push((kind, name, nspan, def));
                        }
                    }
                }
            }
        }
        st
    }

    fn repository(&mut self, y: &Yaml) -> Repository {
        if y.as_str().is_some() {
            return Repository { url: self.string(y, "a repository URL"), description: None };
        }
        let mut r = Repository::default();
        for (key, _, v) in self.fields(y, "a repository definition", &["url", "description", "credential", "metadata"]) {
            match key {
                "url" => r.url = self.string(v, "url"),
                "description" => r.description = self.text(v, "description"),
                _ => {}
            }
        }
        if r.url.is_none() {
            self.diags.report(&codes::MISSING_KEY, y.span, "repository definition has no `url`");
        }
        r
    }

    fn type_def(&mut self, kind: TypeKind, name: &str, y: &Yaml) -> TypeDef {
        let mut known: Vec<&str> = vec!["derived_from", "version", "metadata", "description"];
        known.extend_from_slice(match kind {
            TypeKind::Artifact => &["mime_type", "file_ext", "properties"],
            TypeKind::Data => &["properties", "constraints", "key_schema", "entry_schema"],
            TypeKind::Capability => &["properties", "attributes", "valid_source_types"],
            TypeKind::Interface => &["inputs", "operations", "notifications"],
            TypeKind::Relationship => &["properties", "attributes", "interfaces", "valid_target_types"],
            TypeKind::Node => &["properties", "attributes", "requirements", "capabilities", "interfaces", "artifacts"],
            TypeKind::Group => &["properties", "attributes", "members", "requirements", "capabilities", "interfaces"],
            TypeKind::Policy => &["properties", "targets", "triggers"],
        });
        let mut t = TypeDef::default();
        let what = format!("{} `{name}`", kind.noun());
        let Some(entries) = self.map(y, &what) else { return t };
        for (k, v) in entries {
            let Some(key) = self.key(k, &what) else { continue };
            let key = key.value.as_str();
            if !known.contains(&key) {
                if kind == TypeKind::Interface && !key.is_empty() {
                    // TOSCA 1.0-1.2 interface types list operations at the top level.
                    if let Some(op) = self.operation_def(key, v) {
                        t.operations.insert(key.to_string(), (k.span, op));
                    }
                    continue;
                }
                let mut d = Diagnostic::new(&codes::UNKNOWN_KEY, k.span, format!("unknown key `{key}` in {what}"));
                d.help = Some(did_you_mean(key, known.iter().copied(), || format!("a {} accepts: {}", kind.noun(), known.join(", "))));
                self.diags.push(d);
                continue;
            }
            match key {
                "derived_from" => t.derived_from = self.name(v, "derived_from"),
                "version" => t.version = self.string(v, "version"),
                "metadata" => t.metadata = self.metadata(v),
                "description" => t.description = self.text(v, "description"),
                "properties" => t.properties = self.property_defs(v, "properties"),
                "attributes" => t.attributes = self.property_defs(v, "attributes"),
                "requirements" => t.requirements = self.named_list(v, "requirements", |p, _, _, y| Some(p.requirement_def(y))),
                "capabilities" => t.capabilities = self.named(v, "capabilities", |p, _, s, y| Some(p.capability_def(s, y))),
                "interfaces" => t.interfaces = self.named(v, "interfaces", |p, _, s, y| Some(p.interface(s, y))),
                "artifacts" => t.artifacts = self.named(v, "artifacts", |p, _, s, y| p.artifact(s, y)),
                "valid_target_types" => t.valid_target_types = Some(self.names(v, "valid_target_types")),
                "valid_source_types" => t.valid_source_types = Some(self.names(v, "valid_source_types")),
                "members" => t.members = Some(self.names(v, "members")),
                "targets" => t.targets = Some(self.names(v, "targets")),
                "triggers" => {
                    self.check_triggers(v);
                    t.triggers = Some(v.clone())
                }
                "mime_type" => t.mime_type = self.text(v, "mime_type"),
                "file_ext" => t.file_ext = Some(self.names(v, "file_ext").into_iter().map(|s| s.value).collect()),
                "constraints" => t.constraints = self.constraints(v),
                "key_schema" => t.key_schema = self.schema(v).map(Box::new),
                "entry_schema" => t.entry_schema = self.schema(v).map(Box::new),
                "inputs" => t.inputs = self.property_defs(v, "inputs"),
                "operations" => t.operations = self.named(v, "operations", |p, name, _, y| p.operation_def(name, y)),
                "notifications" => t.notifications = self.named(v, "notifications", |p, name, _, y| p.operation_def(name, y)),
                _ => {}
            }
        }
        t
    }

    fn property_defs(&mut self, y: &Yaml, what: &str) -> Named<PropertyDef> {
        self.named(y, what, |p, _, s, y| Some(p.property_def(s, y)))
    }

    /// A property, attribute or parameter definition. Parameters (outputs, 1.3 inputs) may give
    /// only `value`; 1.0 outputs often do.
    fn property_def(&mut self, name_span: Span, y: &Yaml) -> PropertyDef {
        let mut d = PropertyDef { span: name_span, ..Default::default() };
        const KEYS: &[&str] = &[
            "type", "description", "required", "default", "value", "status", "constraints", "key_schema", "entry_schema", "metadata",
            "external-schema", "external_schema", "mapping",
        ];
        if y.as_map().is_none() && !y.is_null() {
            // A bare value where a definition is expected: common in 1.0 outputs/inputs shorthand.
            self.wrong_kind(y, "a property definition", "a mapping with at least `type`");
            return d;
        }
        for (key, _, v) in self.fields(y, "a property definition", KEYS) {
            match key {
                "type" => d.type_name = self.name(v, "type"),
                "description" => d.description = self.text(v, "description"),
                "required" => d.required = self.bool(v, "required"),
                "default" => d.default = Some(v.clone()),
                "value" => d.value = Some(v.clone()),
                "status" => d.status = self.status(v),
                "constraints" => d.constraints = self.constraints(v),
                "key_schema" => d.key_schema = self.schema(v).map(Box::new),
                "entry_schema" => d.entry_schema = self.schema(v).map(Box::new),
                "metadata" => d.metadata = self.metadata(v),
                _ => {}
            }
        }
        // `default:` with nothing (or null) after it, as real type files write, means no default, unless
        // the type really is `null`.
        if let Some(def) = d.default.as_ref().filter(|y| y.is_null()) {
            if d.type_name.as_ref().is_none_or(|t| t.value != "null") {
                let span = def.span;
                d.default = None;
                self.diags.push(
                    Diagnostic::new(&codes::LENIENT_VALUE, span, "empty `default:` is read as no default")
                        .help("remove the `default:` key, or give it a value"),
                );
            }
        }
        d
    }

    fn status(&mut self, y: &Yaml) -> Option<Sp<Status>> {
        let s = self.string(y, "status")?;
        let status = match s.value.as_str() {
            "supported" => Status::Supported,
            "unsupported" => Status::Unsupported,
            "experimental" => Status::Experimental,
            "deprecated" => Status::Deprecated,
            other => {
                self.diags.push(
                    Diagnostic::new(&codes::TYPE_MISMATCH, y.span, format!("status `{other}` is not one of supported, unsupported, experimental, deprecated"))
                        .help("use one of supported, unsupported, experimental, deprecated"),
                );
                return None;
            }
        };
        Some(Sp::new(status, s.span))
    }

    fn schema(&mut self, y: &Yaml) -> Option<Schema> {
        if let YamlValue::Str(_) = y.value {
            return Some(Schema { type_name: self.name(y, "entry_schema")?, span: y.span, ..Default::default() });
        }
        let mut s = Schema { span: y.span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a schema definition", &["type", "description", "constraints", "key_schema", "entry_schema"]) {
            match key {
                "type" => s.type_name = self.name(v, "type").unwrap_or_default(),
                "description" => s.description = self.text(v, "description"),
                "constraints" => s.constraints = self.constraints(v),
                "key_schema" => s.key_schema = self.schema(v).map(Box::new),
                "entry_schema" => s.entry_schema = self.schema(v).map(Box::new),
                _ => {}
            }
        }
        if s.type_name.value.is_empty() {
            if y.as_map().is_some() {
                self.diags.report(&codes::MISSING_KEY, y.span, "schema definition has no `type`");
            }
            return None;
        }
        Some(s)
    }

    pub(crate) fn constraints(&mut self, y: &Yaml) -> Vec<Constraint> {
        let items: Vec<&Yaml> = match &y.value {
            YamlValue::Seq(items) => items.iter().collect(),
            YamlValue::Map(_) => vec![y],
            YamlValue::Null => Vec::new(),
            _ => {
                self.wrong_kind(y, "constraints", "a list of constraint clauses");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_map() {
                Some([(k, v)]) => match k.as_str().and_then(ConstraintOp::parse) {
                    Some(op) => out.push(Constraint { op, arg: v.clone(), span: item.span }),
                    None => {
                        let name = k.scalar_text().unwrap_or_default();
                        let mut d = Diagnostic::new(&codes::BAD_CONSTRAINT, k.span, format!("unknown constraint operator `{name}`"));
                        let ops = ["equal", "greater_than", "greater_or_equal", "less_than", "less_or_equal", "in_range", "valid_values", "length", "min_length", "max_length", "pattern", "schema"];
                        d.help = Some(did_you_mean(&name, ops, || format!("operators are: {}", ops.join(", "))));
                        self.diags.push(d);
                    }
                },
                _ => self.diags.report(
                    &codes::BAD_CONSTRAINT,
                    item.span,
                    format!("a constraint clause is a mapping with one operator, found {}", item.kind_name()),
                ),
            }
        }
        out
    }

    fn occurrences(&mut self, y: &Yaml) -> Option<Sp<Occurrences>> {
        let bad = |p: &mut Self| {
            p.diags.report(&codes::BAD_OCCURRENCES, y.span, "occurrences must be [min, max] with 0 <= min <= max (max may be UNBOUNDED)");
            None
        };
        let Some([lo, hi]) = y.as_seq() else { return bad(self) };
        let Some(min) = lo.as_i64().and_then(|v| u64::try_from(v).ok()) else { return bad(self) };
        let max = match (&hi.value, hi.as_str()) {
            (_, Some("UNBOUNDED")) => None,
            (YamlValue::Int(v), _) if *v >= 0 && (*v as u64) >= min => Some(*v as u64),
            _ => return bad(self),
        };
        Some(Sp::new(Occurrences { min, max }, y.span))
    }

    fn capability_def(&mut self, name_span: Span, y: &Yaml) -> CapabilityDef {
        let mut c = CapabilityDef { span: name_span, ..Default::default() };
        if y.as_str().is_some() {
            c.type_name = self.name(y, "capability type").unwrap_or_default();
            return c;
        }
        let keys = &["type", "description", "properties", "attributes", "valid_source_types", "occurrences"];
        for (key, _, v) in self.fields(y, "a capability definition", keys) {
            match key {
                "type" => c.type_name = self.name(v, "type").unwrap_or_default(),
                "description" => c.description = self.text(v, "description"),
                "properties" => c.properties = self.property_defs(v, "properties"),
                "attributes" => c.attributes = self.property_defs(v, "attributes"),
                "valid_source_types" => c.valid_source_types = Some(self.names(v, "valid_source_types")),
                "occurrences" => c.occurrences = self.occurrences(v),
                _ => {}
            }
        }
        // Without `type`, a capability definition refines the parent type's capability of the
        // same name (TOSCA 1.3 refinement); whether there is one is checked when flattening.
        c
    }

    fn requirement_def(&mut self, y: &Yaml) -> RequirementDef {
        let mut r = RequirementDef { span: y.span, ..Default::default() };
        if y.as_str().is_some() {
            r.capability = self.name(y, "capability");
            return r;
        }
        let keys = &["capability", "node", "relationship", "occurrences", "node_filter", "description"];
        for (key, _, v) in self.fields(y, "a requirement definition", keys) {
            match key {
                "capability" => r.capability = self.name(v, "capability"),
                "node" => r.node = self.name(v, "node"),
                "relationship" => {
                    if v.as_map().is_some() {
                        for (k2, _, v2) in self.fields(v, "a relationship definition", &["type", "interfaces", "description"]) {
                            match k2 {
                                "type" => r.relationship = self.name(v2, "type"),
                                "interfaces" => r.relationship_interfaces = self.named(v2, "interfaces", |p, _, s, y| Some(p.interface(s, y))),
                                _ => {}
                            }
                        }
                    } else {
                        r.relationship = self.name(v, "relationship");
                    }
                }
                "occurrences" => r.occurrences = self.occurrences(v),
                "node_filter" => r.node_filter = Some(self.node_filter(v)),
                "description" => r.description = self.text(v, "description"),
                _ => {}
            }
        }
        // Without `capability`, a requirement definition refines the parent's requirement of the
        // same name; whether there is one is checked when flattening.
        r
    }

    /// Interface definitions in types and interface assignments in templates share a shape:
    /// `type`, `inputs`, then operations either under `operations:` (1.3) or at the top level.
    fn interface(&mut self, name_span: Span, y: &Yaml) -> InterfaceDef {
        let mut i = InterfaceDef { span: name_span, ..Default::default() };
        for (k, v) in self.map(y, "an interface").unwrap_or(&[]) {
            let Some(key) = self.key(k, "an interface") else { continue };
            match key.value.as_str() {
                "type" => i.type_name = self.name(v, "type"),
                "description" => i.description = self.text(v, "description"),
                "inputs" => i.inputs = self.values(v, "inputs"),
                "operations" => {
                    let ops = self.named(v, "operations", |p, name, _, y| p.operation_def(name, y));
                    i.operations.extend(ops);
                }
                "notifications" => i.notifications = self.named(v, "notifications", |p, name, _, y| p.operation_def(name, y)),
                op => {
                    if let Some(o) = self.operation_def(op, v) {
                        i.operations.insert(op.to_string(), (k.span, o));
                    }
                }
            }
        }
        i
    }

    fn values(&mut self, y: &Yaml, what: &str) -> Values {
        // `named` without its (span, value) pairs around the (span, value) pairs: one map.
        let entries = self.map(y, what).unwrap_or(&[]);
        let mut out = Values::with_capacity_and_hasher(entries.len(), Default::default());
        for (k, v) in entries {
            let Some(name) = self.key(k, what) else { continue };
            out.insert(name.value, (k.span, v.clone()));
        }
        out
    }

    /// Trigger definitions (policy types and policies): named mappings with the keys of the
    /// 1.0-1.3 grammars; `event` and `action` are required. Kept as written for the planner.
    fn check_triggers(&mut self, y: &Yaml) {
        const KEYS: &[&str] = &[
            "description", "event", "event_type", "schedule", "target_filter", "condition", "constraint", "period", "evaluations", "method", "action",
        ];
        for (name, (span, t)) in self.named(y, "triggers", |_, _, _, v| Some(v.clone())) {
            let fields = self.fields(&t, "a trigger definition", KEYS);
            let has = |k: &str| fields.iter().any(|(f, _, _)| *f == k);
            let missing: Vec<&str> = [("event", has("event") || has("event_type")), ("action", has("action"))].iter().filter(|(_, ok)| !ok).map(|(k, _)| *k).collect();
            if t.as_map().is_some() && !missing.is_empty() {
                self.diags.push(
                    Diagnostic::new(&codes::MISSING_KEY, span, format!("trigger `{name}` has no `{}`", missing.join("` or `")))
                        .help("a trigger needs the event that fires it and the action it runs"),
                );
            }
        }
    }

    /// Attribute assignments: a value, or (1.1+) the extended form `{description, value}`.
    fn attribute_values(&mut self, y: &Yaml) -> Values {
        let mut out = self.values(y, "attributes");
        for (_, (_, v)) in out.iter_mut() {
            let extended = v.as_map().is_some_and(|m| {
                m.iter().all(|(k, _)| matches!(k.as_str(), Some("description" | "value"))) && m.iter().any(|(k, _)| k.as_str() == Some("value"))
            });
            if extended {
                if let Some(value) = v.get("value").cloned() {
                    *v = value;
                }
            }
        }
        out
    }

    fn operation_def(&mut self, _name: &str, y: &Yaml) -> Option<OperationDef> {
        let mut o = OperationDef { span: y.span, ..Default::default() };
        match &y.value {
            YamlValue::Null => return Some(o),
            YamlValue::Str(_) => {
                o.implementation = Some(Implementation { primary: self.string(y, "implementation"), ..Default::default() });
                return Some(o);
            }
            YamlValue::Map(_) => {}
            _ => {
                self.wrong_kind(y, "an operation", "an implementation string or a mapping");
                return None;
            }
        }
        for (key, _, v) in self.fields(y, "an operation definition", &["description", "implementation", "inputs", "outputs"]) {
            match key {
                "description" => o.description = self.text(v, "description"),
                "implementation" => o.implementation = Some(self.implementation(v)),
                "inputs" => o.inputs = self.values(v, "inputs"),
                "outputs" => o.outputs = self.values(v, "outputs"),
                _ => {}
            }
        }
        Some(o)
    }

    fn implementation(&mut self, y: &Yaml) -> Implementation {
        let mut i = Implementation::default();
        if y.as_str().is_some() {
            i.primary = self.string(y, "implementation");
            return i;
        }
        for (key, span, v) in self.fields(y, "an implementation", &["primary", "dependencies", "timeout", "operation_host"]) {
            match key {
                "primary" => {
                    if v.as_map().is_some() {
                        if let Some(a) = self.artifact(span, v) {
                            i.primary = Some(a.file.clone());
                            i.primary_artifact = Some(Box::new(a));
                        }
                    } else {
                        i.primary = self.string(v, "primary");
                    }
                }
                "dependencies" => i.dependencies = self.names(v, "dependencies"),
                "timeout" => match v.as_i64() {
                    Some(t) => i.timeout = Some(Sp::new(t, v.span)),
                    None => self.wrong_kind(v, "timeout", "an integer (seconds)"),
                },
                "operation_host" => i.operation_host = self.name(v, "operation_host"),
                _ => {}
            }
        }
        i
    }

    fn artifact(&mut self, name_span: Span, y: &Yaml) -> Option<ArtifactDef> {
        let mut a = ArtifactDef { span: name_span, ..Default::default() };
        if y.as_str().is_some() {
            a.file = self.string(y, "artifact file")?;
            return Some(a);
        }
        let keys = &["type", "file", "repository", "description", "deploy_path", "version", "checksum", "checksum_algorithm", "properties", "metadata"];
        let mut has_file = false;
        for (key, _, v) in self.fields(y, "an artifact definition", keys) {
            match key {
                "type" => a.type_name = self.name(v, "type"),
                "file" => {
                    if let Some(f) = self.string(v, "file") {
                        a.file = f;
                        has_file = true;
                    }
                }
                "repository" => a.repository = self.name(v, "repository"),
                "description" => a.description = self.text(v, "description"),
                "deploy_path" => a.deploy_path = self.text(v, "deploy_path"),
                "version" => a.version = self.text(v, "version"),
                "checksum" => a.checksum = self.text(v, "checksum"),
                "checksum_algorithm" => a.checksum_algorithm = self.text(v, "checksum_algorithm"),
                "properties" => a.properties = self.values(v, "properties"),
                _ => {}
            }
        }
        if !has_file {
            self.diags.report(&codes::MISSING_KEY, y.span, "artifact definition has no `file`");
        }
        // The extended notation requires `type` from 1.2 on (1.0/1.1 let it be inferred from the
        // file extension).
        if a.type_name.is_none() && self.version >= ToscaVersion::V1_2 {
            self.diags.push(
                Diagnostic::new(&codes::MISSING_KEY, y.span, "artifact definition has no `type`")
                    .help("add `type:` (e.g. tosca.artifacts.Implementation.Bash), or use the short notation `name: path`"),
            );
        }
        Some(a)
    }

    fn node_filter(&mut self, y: &Yaml) -> NodeFilter {
        let mut f = NodeFilter { span: y.span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a node_filter", &["properties", "capabilities"]) {
            match key {
                "properties" => f.properties = self.property_filters(v),
                "capabilities" => {
                    f.capabilities = self.named_list(v, "capabilities", |p, _, _, y| {
                        let mut props = Vec::new();
                        for (k, _, v) in p.fields(y, "a capability filter", &["properties"]) {
                            if k == "properties" {
                                props = p.property_filters(v);
                            }
                        }
                        Some(props)
                    })
                }
                _ => {}
            }
        }
        f
    }

    /// `- name: [constraints]` or `- name: {constraint}` or 1.3 `name: value` (equality).
    fn property_filters(&mut self, y: &Yaml) -> Vec<(Sp<String>, Vec<Constraint>)> {
        self.named_list(y, "property filters", |p, _, _, v| {
            Some(match &v.value {
                YamlValue::Seq(_) => p.constraints(v),
                YamlValue::Map(m) if m.len() == 1 && m[0].0.as_str().and_then(ConstraintOp::parse).is_some() => p.constraints(v),
                _ => vec![Constraint { op: ConstraintOp::Equal, arg: v.clone(), span: v.span }],
            })
        })
    }

    fn topology(&mut self, y: &Yaml, span: Span) -> TopologyTemplate {
        let mut t = TopologyTemplate { span, ..Default::default() };
        let keys = &[
            "description", "inputs", "node_templates", "relationship_templates", "groups", "policies", "outputs", "substitution_mappings",
            "workflows",
        ];
        for (key, span, v) in self.fields(y, "topology_template", keys) {
            match key {
                "description" => t.description = self.text(v, "description"),
                "inputs" => t.inputs = self.property_defs(v, "inputs"),
                "outputs" => t.outputs = self.property_defs(v, "outputs"),
                "node_templates" => t.node_templates = self.named(v, "node_templates", |p, _, s, y| Some(p.node_template(s, y))),
                "relationship_templates" => {
                    t.relationship_templates = self.named(v, "relationship_templates", |p, _, s, y| Some(p.relationship_template(s, y)))
                }
                "groups" => t.groups = self.named(v, "groups", |p, _, s, y| Some(p.group(s, y))),
                "policies" => {
                    for (name, def) in self.named_list(v, "policies", |p, _, s, y| Some(p.policy(s, y))) {
                        if let Some((first, _)) = t.policies.get(&name.value) {
                            self.diags.push(
                                Diagnostic::new(&codes::DUPLICATE_NAME, name.span, format!("policy `{}` is defined twice", name.value))
                                    .help(codes::DUPLICATE_NAME.help)
                                    .related(*first, "first defined here"),
                            );
                            continue;
                        }
                        t.policies.insert(name.value, (name.span, def));
                    }
                }
                "substitution_mappings" => t.substitution_mappings = Some(self.substitution(v)),
                "workflows" => {
                    self.since(ToscaVersion::V1_1, "workflows", span);
                    t.workflows = self.named(v, "workflows", |p, _, s, y| Some(p.workflow(s, y)))
                }
                _ => {}
            }
        }
        t
    }

    fn node_template(&mut self, span: Span, y: &Yaml) -> NodeTemplate {
        let mut n = NodeTemplate { span, ..Default::default() };
        let keys = &[
            "type", "description", "metadata", "directives", "properties", "attributes", "requirements", "capabilities", "interfaces",
            "artifacts", "node_filter", "copy",
        ];
        for (key, _, v) in self.fields(y, "a node template", keys) {
            match key {
                "type" => n.type_name = self.name(v, "type").unwrap_or_default(),
                "description" => n.description = self.text(v, "description"),
                "metadata" => n.metadata = self.metadata(v),
                "directives" => n.directives = self.names(v, "directives"),
                "properties" => n.properties = self.values(v, "properties"),
                "attributes" => n.attributes = self.attribute_values(v),
                "requirements" => n.requirements = self.named_list(v, "requirements", |p, _, s, y| Some(p.requirement_assignment(s, y))),
                "capabilities" => n.capabilities = self.named(v, "capabilities", |p, _, s, y| Some(p.capability_assignment(s, y))),
                "interfaces" => n.interfaces = self.named(v, "interfaces", |p, _, s, y| Some(p.interface(s, y))),
                "artifacts" => n.artifacts = self.named(v, "artifacts", |p, _, s, y| p.artifact(s, y)),
                "node_filter" => n.node_filter = Some(self.node_filter(v)),
                "copy" => n.copy = self.name(v, "copy"),
                _ => {}
            }
        }
        if n.type_name.value.is_empty() && n.copy.is_none() {
            self.diags.report(&codes::MISSING_KEY, span, "node template has no `type`");
        }
        n
    }

    fn requirement_assignment(&mut self, span: Span, y: &Yaml) -> RequirementAssignment {
        let mut r = RequirementAssignment { span, ..Default::default() };
        if y.as_str().is_some() {
            r.node = self.name(y, "requirement target");
            return r;
        }
        for (key, _, v) in self.fields(y, "a requirement assignment", &["node", "capability", "relationship", "node_filter", "occurrences"]) {
            match key {
                "node" => r.node = self.name(v, "node"),
                "capability" => r.capability = self.name(v, "capability"),
                "relationship" => {
                    if v.as_map().is_some() {
                        for (k2, _, v2) in self.fields(v, "a relationship assignment", &["type", "properties", "interfaces"]) {
                            match k2 {
                                "type" => {
                                    r.relationship = self.name(v2, "type");
                                    r.relationship_is_type = true;
                                }
                                "properties" => r.relationship_properties = self.values(v2, "properties"),
                                "interfaces" => r.relationship_interfaces = self.named(v2, "interfaces", |p, _, s, y| Some(p.interface(s, y))),
                                _ => {}
                            }
                        }
                    } else {
                        r.relationship = self.name(v, "relationship");
                    }
                }
                "node_filter" => r.node_filter = Some(self.node_filter(v)),
                "occurrences" => r.occurrences = self.occurrences(v),
                _ => {}
            }
        }
        r
    }

    fn capability_assignment(&mut self, span: Span, y: &Yaml) -> CapabilityAssignment {
        let mut c = CapabilityAssignment { span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a capability assignment", &["properties", "attributes", "occurrences"]) {
            match key {
                "properties" => c.properties = self.values(v, "properties"),
                "attributes" => c.attributes = self.attribute_values(v),
                "occurrences" => c.occurrences = self.occurrences(v),
                _ => {}
            }
        }
        c
    }

    fn relationship_template(&mut self, span: Span, y: &Yaml) -> RelationshipTemplate {
        let mut r = RelationshipTemplate { span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a relationship template", &["type", "description", "metadata", "properties", "attributes", "interfaces", "copy"]) {
            match key {
                "type" => r.type_name = self.name(v, "type").unwrap_or_default(),
                "description" => r.description = self.text(v, "description"),
                "metadata" => r.metadata = self.metadata(v),
                "properties" => r.properties = self.values(v, "properties"),
                "attributes" => r.attributes = self.attribute_values(v),
                "interfaces" => r.interfaces = self.named(v, "interfaces", |p, _, s, y| Some(p.interface(s, y))),
                "copy" => r.copy = self.name(v, "copy"),
                _ => {}
            }
        }
        if r.type_name.value.is_empty() && r.copy.is_none() {
            self.diags.report(&codes::MISSING_KEY, span, "relationship template has no `type`");
        }
        r
    }

    fn group(&mut self, span: Span, y: &Yaml) -> GroupDef {
        let mut g = GroupDef { span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a group", &["type", "description", "metadata", "properties", "members", "interfaces"]) {
            match key {
                "type" => g.type_name = self.name(v, "type").unwrap_or_default(),
                "description" => g.description = self.text(v, "description"),
                "metadata" => g.metadata = self.metadata(v),
                "properties" => g.properties = self.values(v, "properties"),
                "members" => g.members = self.names(v, "members"),
                "interfaces" => g.interfaces = self.named(v, "interfaces", |p, _, s, y| Some(p.interface(s, y))),
                _ => {}
            }
        }
        if g.type_name.value.is_empty() {
            self.diags.report(&codes::MISSING_KEY, span, "group has no `type`");
        }
        g
    }

    fn policy(&mut self, span: Span, y: &Yaml) -> PolicyDef {
        let mut p = PolicyDef { span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a policy", &["type", "description", "metadata", "properties", "targets", "triggers"]) {
            match key {
                "type" => p.type_name = self.name(v, "type").unwrap_or_default(),
                "description" => p.description = self.text(v, "description"),
                "metadata" => p.metadata = self.metadata(v),
                "properties" => p.properties = self.values(v, "properties"),
                "targets" => p.targets = self.names(v, "targets"),
                "triggers" => {
                    self.check_triggers(v);
                    p.triggers = Some(v.clone())
                }
                _ => {}
            }
        }
        if p.type_name.value.is_empty() {
            self.diags.report(&codes::MISSING_KEY, span, "policy has no `type`");
        }
        p
    }

    fn substitution(&mut self, y: &Yaml) -> SubstitutionMappings {
        let mut s = SubstitutionMappings { span: y.span, ..Default::default() };
        let keys = &["node_type", "substitution_filter", "properties", "attributes", "capabilities", "requirements", "interfaces"];
        for (key, _, v) in self.fields(y, "substitution_mappings", keys) {
            match key {
                "node_type" => s.node_type = self.name(v, "node_type").unwrap_or_default(),
                "substitution_filter" => {
                    self.since(ToscaVersion::V1_3, "substitution_filter", v.span);
                    s.substitution_filter = Some(self.node_filter(v))
                }
                "properties" => s.properties = self.values(v, "properties"),
                "attributes" => s.attributes = self.values(v, "attributes"),
                "interfaces" => s.interfaces = self.values(v, "interfaces"),
                "capabilities" | "requirements" => {
                    let mut out = Vec::new();
                    for (k, val) in self.map(v, key).unwrap_or(&[]) {
                        let Some(name) = self.key(k, key) else { continue };
                        // `[node, name]` or 1.3 `{mapping: [node, name]}`
                        let target = val.get("mapping").unwrap_or(val);
                        let names = match target.as_seq() {
                            Some(items) if items.len() == 2 => self.names(target, key),
                            _ => {
                                self.diags.report(&codes::BAD_SUBSTITUTION, val.span, format!("`{}` must map to [node_template, {}]", name.value, key.trim_end_matches('s')));
                                continue;
                            }
                        };
                        out.push((name, names));
                    }
                    if key == "capabilities" {
                        s.capabilities = out;
                    } else {
                        s.requirements = out;
                    }
                }
                _ => {}
            }
        }
        if s.node_type.value.is_empty() {
            self.diags.report(&codes::MISSING_KEY, y.span, "substitution_mappings has no `node_type`");
        }
        s
    }

    fn workflow(&mut self, span: Span, y: &Yaml) -> Workflow {
        let mut w = Workflow { span, ..Default::default() };
        for (key, _, v) in self.fields(y, "a workflow", &["description", "metadata", "inputs", "preconditions", "steps", "implementation", "outputs"]) {
            match key {
                "description" => w.description = self.text(v, "description"),
                "metadata" => w.metadata = self.metadata(v),
                "inputs" => w.inputs = self.property_defs(v, "inputs"),
                "preconditions" => w.preconditions = v.as_seq().map(|s| s.to_vec()).unwrap_or_default(),
                "steps" => w.steps = self.named(v, "steps", |p, _, s, y| Some(p.workflow_step(s, y))),
                _ => {}
            }
        }
        w
    }

    fn workflow_step(&mut self, span: Span, y: &Yaml) -> WorkflowStep {
        let mut s = WorkflowStep { span, ..Default::default() };
        let keys = &["target", "target_relationship", "operation_host", "filter", "activities", "on_success", "on_failure"];
        for (key, _, v) in self.fields(y, "a workflow step", keys) {
            match key {
                "target" => s.target = self.name(v, "target").unwrap_or_default(),
                "target_relationship" => s.target_relationship = self.name(v, "target_relationship"),
                "operation_host" => s.operation_host = self.name(v, "operation_host"),
                "filter" => s.filter = v.as_seq().map(|s| s.to_vec()).unwrap_or_default(),
                "activities" => {
                    for a in v.as_seq().unwrap_or(&[]) {
                        match a.as_map() {
                            Some([(k, val)]) => {
                                let Some(arg) = self.string(val, "activity argument").or_else(|| {
                                    val.get("operation").and_then(|o| o.as_str()).map(|o| Sp::new(o.to_string(), val.span))
                                }) else {
                                    continue;
                                };
                                s.activities.push(match k.as_str().unwrap_or("") {
                                    "delegate" => Activity::Delegate(arg),
                                    "set_state" => Activity::SetState(arg),
                                    "call_operation" => Activity::CallOperation(arg),
                                    "inline" => Activity::Inline(arg),
                                    other => {
                                        self.diags.report(&codes::BAD_WORKFLOW, k.span, format!("unknown activity `{other}`; activities are delegate, set_state, call_operation, inline"));
                                        Activity::Other(arg)
                                    }
                                });
                            }
                            _ => self.wrong_kind(a, "an activity", "a mapping with one key (delegate, set_state, call_operation, inline)"),
                        }
                    }
                    if v.as_seq().is_none() {
                        self.wrong_kind(v, "activities", "a list");
                    }
                }
                "on_success" => s.on_success = self.names(v, "on_success"),
                "on_failure" => s.on_failure = self.names(v, "on_failure"),
                _ => {}
            }
        }
        if s.target.value.is_empty() {
            self.diags.report(&codes::MISSING_KEY, span, "workflow step has no `target`");
        }
        s
    }
}
