//! From a request to what the planner needs: the posted template compiled with its parameters
//! (diagnostics as one 400 message, each with line:col), and one resource row per instance.

use crate::store::ResourceRow;
use serde_json::{Map, Value};
use state::StateDoc;
use tosca::loader::{Entry, LoadOptions};
use tosca::topology::Topology;

/// How the server reads templates (from `rosca.toml [tosca]`), local files always refused.
#[derive(Clone, Debug, Default)]
pub struct TemplateSettings {
    pub import_map: Vec<(String, std::path::PathBuf)>,
    pub offline: bool,
    pub cache_dir: Option<std::path::PathBuf>,
}

impl TemplateSettings {
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            import_map: self.import_map.clone(),
            allow_fetch: !self.offline,
            cache_dir: self.cache_dir.clone(),
            allow_local_imports: false,
            ..LoadOptions::default()
        }
    }
}

/// Compiles `template` with `parameters` as inputs (required inputs enforced). `Err` is the
/// 400 message: every error, `template:LINE:COL: CODE message`, one per line.
pub fn compile(template: &str, parameters: &Map<String, Value>, settings: &TemplateSettings) -> Result<Topology, String> {
    let mut sources = tosca::Sources::new();
    let mut diags = tosca::Diagnostics::new();
    let mut inputs = tosca::Inputs { required: true, ..tosca::Inputs::new() };
    let options = settings.load_options();
    for (name, value) in parameters {
        // JSON is YAML: the value keeps its type (numbers, lists, maps).
        let text = value.to_string();
        let file = sources.add(format!("parameters.{name}"), text.clone());
        match tosca::yaml::parse(file, &text, &options.limits) {
            Ok(y) => {
                let span = tosca::Span::file_start(file);
                inputs.push(tosca::syntax::Sp::new(name.clone(), span), y);
            }
            Err(d) => diags.push(d),
        }
    }
    let entry = Entry::Text { name: "template".into(), text: template.to_string() };
    let compiled = tosca::compile(&entry, &options, &inputs, diags, sources);
    let errors: Vec<String> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let file = compiled.sources.name(d.span.file);
            format!("{file}:{}:{}: {} {}", d.span.line, d.span.col, d.code, d.message)
        })
        .collect();
    if errors.is_empty() {
        Ok(compiled.topology)
    } else {
        Err(format!("Failed to parse the TOSCA template ({} error{}):\n{}", errors.len(), if errors.len() == 1 { "" } else { "s" }, errors.join("\n")))
    }
}

/// One row per instance the topology expands to against `prior`, in dependency order, each
/// in state `state` (INITIAL at POST, CREATING for instances a PUT adds).
pub fn instance_rows(topology: &Topology, prior: &StateDoc, deployment: &str, state: &str) -> Vec<ResourceRow> {
    let instances = planner::instances::Instances::expand(topology, prior);
    let now = crate::wire::now_millis();
    let mut rows = Vec::new();
    for (node_name, address, _) in instances.all() {
        let Some(node) = topology.nodes.get(node_name) else { continue };
        rows.push(ResourceRow {
            id: crate::wire::new_uuid(),
            deployment_id: deployment.to_string(),
            created_at: now,
            updated_at: now,
            physical_id: None,
            state: state.to_string(),
            node_type: node.type_name.clone(),
            node_types: node.types.clone(),
            node_name: node_name.to_string(),
            address,
            metadata: Default::default(),
        });
    }
    rows
}
