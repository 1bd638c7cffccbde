//! Diagnostics: collected, never fail-fast. Each has a stable code from [`codes`], a message that
//! says what is wrong, a help line that says what to do, and a span that says where.

use crate::source::{Sources, Span};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A secondary location that explains a diagnostic (the parent definition an override breaks,
/// the other end of a cycle, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Related {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    pub span: Span,
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn new(code: &'static codes::Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity,
            code: code.id,
            message: message.into(),
            help: None,
            span,
            related: Vec::new(),
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, span: Span, message: impl Into<String>) -> Self {
        if !span.is_none() {
            self.related.push(Related { span, message: message.into() });
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The sink every pass writes into.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Shorthand for the common case: a code, a place and a message, with the code's default help.
    pub fn report(&mut self, code: &'static codes::Code, span: Span, message: impl Into<String>) {
        let mut d = Diagnostic::new(code, span, message);
        if !code.help.is_empty() {
            d.help = Some(code.help.to_string());
        }
        self.items.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorted by file, line, column, then code; exact duplicates removed. Stable output for
    /// snapshots and for humans.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.span.file, a.span.line, a.span.col, a.code, &a.message)
                .cmp(&(b.span.file, b.span.line, b.span.col, b.code, &b.message))
        });
        self.items.dedup();
        self.items
    }
}

/// Edit distance, for "did you mean" suggestions on unknown keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The help line for an unknown name: "did you mean `x`?" when a candidate is close, else
/// `otherwise()` (typically the list of valid names).
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>, otherwise: impl FnOnce() -> String) -> String {
    match suggest(name, candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None => otherwise(),
    }
}

/// The JSON form of a diagnostic, as `rosca validate --format json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct DiagnosticJson {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    pub file: Option<String>,
    pub line: u32,
    pub column: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RelatedJson>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RelatedJson {
    pub message: String,
    pub file: Option<String>,
    pub line: u32,
    pub column: u32,
}

impl Diagnostic {
    pub fn to_json(&self, sources: &Sources) -> DiagnosticJson {
        let file = |s: Span| (!s.is_none()).then(|| sources.name(s.file).to_string());
        DiagnosticJson {
            severity: self.severity,
            code: self.code,
            message: self.message.clone(),
            help: self.help.clone(),
            file: file(self.span),
            line: self.span.line,
            column: self.span.col,
            related: self
                .related
                .iter()
                .map(|r| RelatedJson {
                    message: r.message.clone(),
                    file: file(r.span),
                    line: r.span.line,
                    column: r.span.col,
                })
                .collect(),
        }
    }
}

pub mod codes {
    //! The catalogue of diagnostic codes. Codes are stable: never renumber or reuse one.
    //! `docs/diagnostics.md` is generated from [`ALL`] by `rosca validate --list-codes`.
    use super::Severity;

    #[derive(Debug)]
    pub struct Code {
        pub id: &'static str,
        pub severity: Severity,
        pub title: &'static str,
        /// Default help line; a diagnostic may carry a more specific one.
        pub help: &'static str,
    }

    macro_rules! codes {
        ($($name:ident = $id:literal, $sev:ident, $title:literal, $help:literal;)*) => {
            $(pub static $name: Code = Code { id: $id, severity: Severity::$sev, title: $title, help: $help };)*
            pub static ALL: &[&Code] = &[$(&$name),*];
        };
    }

    codes! {
        // E00xx: reading files and YAML.
        IO = "E0001", Error, "file cannot be read", "check that the path exists and is readable";
        YAML_SYNTAX = "E0002", Error, "malformed YAML", "fix the YAML syntax at this location";
        YAML_BUDGET = "E0003", Error, "YAML exceeds a safety budget", "the document is too deep, has too many nodes or aliases, or an alias bomb; simplify it";
        FILE_TOO_LARGE = "E0004", Error, "file larger than the size limit", "raise --max-file-size (or `[tosca] max_file_size` in rosca.toml) if the file is genuine";
        NOT_TEXT = "E0005", Error, "file is not UTF-8 text", "TOSCA templates are UTF-8 YAML; check that the right file was given";
        DUPLICATE_KEY = "E0006", Error, "duplicate mapping key", "remove or rename one of the keys";
        CSAR = "E0007", Error, "invalid CSAR archive", "a CSAR needs TOSCA-Metadata/TOSCA.meta with Entry-Definitions, or exactly one YAML file at its root";
        IMPORT_NOT_FOUND = "E0008", Error, "import cannot be resolved", "check the import path; relative imports are resolved against the importing file";
        IMPORT_CYCLE = "E0009", Error, "import cycle", "remove one of the imports in the cycle";
        IMPORT_OFFLINE = "E0010", Error, "URL import not available offline", "run once online to fill the cache, or map the URL to a local file with --import-map URL=PATH";
        IMPORT_FETCH = "E0011", Error, "URL import could not be fetched", "check the URL and the network, or map the URL to a local file with --import-map URL=PATH";
        MULTIPLE_DOCUMENTS = "E0012", Error, "more than one YAML document in a file", "a TOSCA file holds one document; split it into files and import them";
        EMPTY_DOCUMENT = "E0013", Error, "empty document", "a service template needs at least tosca_definitions_version";
        BAD_IMPORT = "E0014", Error, "malformed import definition", "write an import as a path string, {file: ..., repository: ..., namespace_prefix: ...} or {name: path}";
        IMPORTED_TOPOLOGY = "W0019", Warning, "topology_template in an imported file is ignored", "move the node templates into the main template, or use substitution mappings to compose topologies";
        IMPORT_WITHOUT_VERSION = "W0018", Warning, "imported file without tosca_definitions_version", "add tosca_definitions_version to the imported file";
        REDEFINED_NORMATIVE = "W0017", Warning, "template redefines a normative type", "the template's definition replaces the normative one; rename it if that is not intended";
        UNKNOWN_REPOSITORY = "E0015", Error, "import names an undefined repository", "define the repository under `repositories:` or drop the `repository:` key";
        NAMESPACE_CLASH = "E0016", Error, "imported definition clashes with an existing one", "rename one of them or import with a namespace_prefix";
        // E01xx: the grammar of service templates.
        WRONG_KIND = "E0101", Error, "value has the wrong YAML kind", "see the TOSCA grammar for the expected form";
        UNKNOWN_KEY = "E0102", Error, "unknown key", "remove the key or check its spelling (the TOSCA grammar is closed; use metadata for your own data)";
        MISSING_KEY = "E0103", Error, "required key missing", "add the key";
        UNSUPPORTED_VERSION = "E0104", Error, "unsupported tosca_definitions_version", "use one of tosca_simple_yaml_1_0, 1_1, 1_2, 1_3";
        MISSING_VERSION = "E0105", Error, "tosca_definitions_version missing", "start the file with `tosca_definitions_version: tosca_simple_yaml_1_3` (or the version it is written for)";
        VERSION_MISMATCH = "W0106", Warning, "imported file uses another TOSCA version", "keep all files of a template on one TOSCA version where you can";
        BAD_NAME = "E0107", Error, "invalid name", "names are non-empty strings";
        DUPLICATE_NAME = "E0108", Error, "duplicate definition", "rename one of the definitions";
        BAD_METADATA = "W0109", Warning, "metadata value is not a string", "metadata values are strings; quote the value";
        KEY_NOT_IN_VERSION = "W0110", Warning, "key not defined in this TOSCA version", "this key belongs to a later TOSCA version; it is accepted but the declared version does not define it";
        // E02xx: types.
        UNKNOWN_TYPE = "E0201", Error, "unknown type", "check the type name, and that the file defining it is imported";
        DERIVATION_CYCLE = "E0202", Error, "derived_from cycle", "break the cycle: a type cannot derive from itself";
        BAD_OVERRIDE = "E0203", Error, "definition breaks its parent's contract", "an override may only refine the parent's definition (a derived type, a narrower constraint)";
        WRONG_TYPE_KIND = "E0204", Error, "type of the wrong kind", "e.g. a node type cannot derive from a capability type; use a type of the right kind";
        MISSING_PARENT = "E0205", Error, "derived_from names an unknown type", "define or import the parent type, or check its name";
        BAD_ENTRY_SCHEMA = "E0206", Error, "entry_schema or key_schema invalid", "list and map properties take entry_schema; key_schema must be string-based";
        BAD_OCCURRENCES = "E0207", Error, "invalid occurrences", "occurrences is [min, max] with 0 <= min <= max, max may be UNBOUNDED";
        UNKNOWN_INTERFACE_OPERATION = "E0208", Error, "operation not defined by the interface type", "check the operation name against the interface type";
        DEPRECATED = "W0209", Warning, "use of a deprecated, experimental or unsupported definition", "avoid definitions whose status is not supported";
        PRIMITIVE_WITH_PROPERTIES = "E0212", Error, "data type derived from a primitive defines properties", "a data type derived from a primitive narrows it with constraints; one with properties derives from tosca.datatypes.Root";
        LIKELY_MISSPELT_OPERATION = "W0213", Warning, "operation name close to one of the interface type's", "check the spelling; a new operation is allowed, a misspelt one is never called";
        LENIENT_OVERRIDE = "W0211", Warning, "override is not a strict refinement (accepted)", "real profiles (e.g. INDIGO) do this; prefer a type derived from the parent's";
        // E03xx: values and constraints.
        TYPE_MISMATCH = "E0301", Error, "value does not match its type", "give a value of the declared type";
        CONSTRAINT = "E0302", Error, "value violates a constraint", "change the value so it satisfies the constraint";
        BAD_SCALAR_UNIT = "E0303", Error, "invalid scalar-unit value", "write a number and a unit, e.g. `4 GB`, `30 s`, `2.4 GHz`, `100 Mbps`";
        BAD_VERSION = "E0304", Error, "invalid version", "versions are major.minor[.fix[.qualifier[-build]]], e.g. 1.0 or 2.3.1";
        BAD_RANGE = "E0305", Error, "invalid range", "a range is [lower, upper] of integers, upper may be UNBOUNDED";
        BAD_TIMESTAMP = "E0306", Error, "invalid timestamp", "timestamps are ISO 8601 / YAML timestamps, e.g. 2001-12-14t21:59:43.10-05:00";
        MISSING_PROPERTY = "E0307", Error, "required property has no value", "give the property a value in the template or a default in its type";
        UNKNOWN_PROPERTY = "E0308", Error, "property not defined by the type", "check the name against the type definition (and its parents)";
        BAD_CONSTRAINT = "E0309", Error, "invalid constraint definition", "see the TOSCA constraint operators: equal, greater_than, ..., pattern, schema";
        BAD_PATTERN = "E0310", Error, "invalid regular expression in pattern", "fix the regular expression";
        LENIENT_VALUE = "W0311", Warning, "value accepted leniently", "quote the value so its meaning is explicit";
        UNKNOWN_ATTRIBUTE = "E0312", Error, "attribute not defined by the type", "check the name against the type definition (and its parents)";
        BAD_DEFAULT = "E0313", Error, "default value invalid for its definition", "fix the default so it matches the declared type and constraints";
        RECURSIVE_VALUE = "E0314", Error, "value nests too deeply", "a data type that contains itself needs an end: make the recursive property optional, without a default";
        // E04xx: the topology.
        UNKNOWN_NODE_TEMPLATE = "E0401", Error, "unknown node template", "check the node template name";
        REQUIREMENT_UNSATISFIABLE = "E0402", Error, "requirement cannot be satisfied", "add a node template that offers the capability, or fix the requirement";
        REQUIREMENT_DANGLING = "W0403", Warning, "requirement left for the orchestrator to fulfil", "nothing in the template satisfies it; a provider may still place it (e.g. a Compute host)";
        OCCURRENCES = "E0404", Error, "occurrences not respected", "add or remove requirement assignments, or adjust occurrences";
        UNKNOWN_CAPABILITY = "E0405", Error, "capability not found", "check the capability name or type on the target node";
        DEPENDENCY_CYCLE = "E0406", Error, "requirement cycle", "break the cycle; a node cannot (indirectly) require or be hosted on itself";
        UNKNOWN_RELATIONSHIP_TEMPLATE = "E0407", Error, "unknown relationship template", "check the relationship template name";
        BAD_GROUP_MEMBER = "E0408", Error, "invalid group member", "members are node templates whose type is allowed by the group type";
        BAD_POLICY_TARGET = "E0409", Error, "invalid policy target", "targets are node templates or groups allowed by the policy type";
        BAD_SUBSTITUTION = "E0410", Error, "invalid substitution mapping", "map to a node template's capability/requirement/property of a matching type";
        BAD_WORKFLOW = "E0411", Error, "invalid workflow", "check steps, targets, activities and on_success/on_failure links";
        UNKNOWN_REQUIREMENT = "E0412", Error, "requirement not defined by the node type", "check the requirement name against the node type (and its parents)";
        BAD_NODE_FILTER = "E0413", Error, "invalid node_filter", "node_filter has properties and capabilities with constraint lists";
        BAD_SCALING = "E0415", Error, "invalid scaling values", "need min_instances <= default_instances (count) <= max_instances";
        UNKNOWN_ARTIFACT = "E0416", Error, "unknown artifact", "check the artifact name on the node template or its type";
        RELATIONSHIP_CANNOT_TARGET = "W0419", Warning, "requirement definition's relationship cannot target its capability", "the type's relationship and capability disagree (valid_target_types); templates using it still resolve";
        EMPTY_TOPOLOGY = "W0418", Warning, "service template has no node templates", "nothing will be deployed";
        // E05xx: inputs.
        MISSING_INPUT = "E0501", Error, "required input not given", "give it with --inputs FILE or -i NAME=VALUE, or add a default";
        UNKNOWN_INPUT = "E0502", Error, "value given for an undeclared input", "check the input name against the template's inputs";
        INPUT_NOT_GIVEN = "W0504", Warning, "required input not given yet", "the template is valid, but deploying it needs a value: give it with --inputs FILE or -i NAME=VALUE (or use --require-inputs to make this an error)";
        BAD_INPUT_ARG = "E0503", Error, "malformed input argument", "write -i NAME=VALUE, with a YAML value";
        // E06xx: functions.
        UNKNOWN_FUNCTION = "W0601", Warning, "unknown function-like key", "a single-key map whose key starts with get_ looks like a function call; check the name";
        FUNCTION_ARITY = "E0602", Error, "wrong number of function arguments", "see the function's signature in the TOSCA specification";
        FUNCTION_INPUT = "E0603", Error, "get_input names an undeclared input", "declare the input under topology_template.inputs";
        FUNCTION_ENTITY = "E0604", Error, "function names an unknown entity", "use SELF, SOURCE, TARGET, HOST or a node/relationship template name";
        FUNCTION_PATH = "E0605", Error, "function path does not exist", "check the property/attribute/capability names along the path";
        FUNCTION_CONTEXT = "E0606", Error, "keyword not valid here", "SOURCE and TARGET are valid only in relationships; HOST needs a HostedOn chain";
        FUNCTION_ARGUMENT = "E0607", Error, "invalid function argument", "check the argument types in the TOSCA specification";
        FUNCTION_INDEX = "E0608", Error, "list index out of range", "check the index against the list value";
    }

    pub fn lookup(id: &str) -> Option<&'static Code> {
        ALL.iter().copied().find(|c| c.id == id)
    }
}

/// An error with its causes, `outer: inner: root`, each said once. HTTP clients' top-level
/// messages ("error sending request") hide the cause (DNS, TLS, connection refused) that users
/// need to act on.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
