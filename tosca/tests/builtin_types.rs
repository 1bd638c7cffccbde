//! The embedded type files (normative per version, and the non-normative Docker types) are
//! themselves valid TOSCA, and the specification's short names resolve.

use tosca::loader::{Entry, LoadOptions};
use tosca::syntax::{parse::parse_file, ToscaVersion};
use tosca::types::{non_normative_source, normative_source};
use tosca::{Diagnostics, Inputs, Sources};

#[test]
fn embedded_type_files_parse_without_diagnostics() {
    for v in ToscaVersion::ALL {
        for (name, text) in [normative_source(v), non_normative_source()] {
            let mut sources = Sources::new();
            let file = sources.add(name, text);
            let y = tosca::yaml::parse(file, text, &Default::default()).unwrap_or_else(|d| panic!("{name}: {d:?}"));
            let mut diags = Diagnostics::new();
            let st = parse_file(file, &y, &mut diags);
            assert!(diags.is_empty(), "{name}: {:?}", diags.iter().collect::<Vec<_>>());
            assert!(st.types.len() >= 3, "{name} defines types");
        }
    }
}

fn compile(text: &str) -> tosca::Compiled {
    let options = LoadOptions { allow_fetch: false, ..LoadOptions::default() };
    tosca::compile(&Entry::Text { name: "t.yaml".into(), text: text.into() }, &options, &Inputs::new(), Diagnostics::new(), Sources::new())
}

#[test]
fn every_version_compiles_a_minimal_template_cleanly() {
    for v in ToscaVersion::ALL {
        let c = compile(&format!("tosca_definitions_version: {}\ntopology_template:\n  node_templates:\n    vm:\n      type: tosca.nodes.Compute\n", v.as_str()));
        assert!(c.diagnostics.is_empty(), "{}: {:?}", v.as_str(), c.diagnostics);
    }
}

#[test]
fn specification_short_names_resolve() {
    let c = compile(
        "tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  my.Store:
    derived_from: ObjectStorage
data_types:
  my.Port:
    derived_from: PortDef
topology_template:
  node_templates:
    vm: { type: Compute }
    disk: { type: tosca:BlockStorage, properties: { name: data, size: 1 GB } }
    net: { type: network.Network }
    app: { type: Container.Application.Docker, requirements: [ { host: vm } ] }
",
    );
    let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.is_error()).map(|d| (d.code, d.message.clone())).collect();
    // The Docker app cannot be hosted on a plain Compute (no Container.Docker capability).
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "E0405");
    let t = &c.topology;
    assert_eq!(t.nodes["vm"].type_name, "tosca.nodes.Compute");
    assert_eq!(t.nodes["disk"].type_name, "tosca.nodes.Storage.BlockStorage");
    assert_eq!(t.nodes["net"].type_name, "tosca.nodes.network.Network");
}
