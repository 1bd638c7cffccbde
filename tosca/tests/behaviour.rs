//! Behaviours that the fixture format cannot state (the absence of a warning, values in the
//! topology), checked through the library API.

use tosca::loader::{Entry, LoadOptions};
use tosca::{Diagnostics, Inputs, Sources};

fn compile(text: &str) -> tosca::Compiled {
    let options = LoadOptions { allow_fetch: false, ..LoadOptions::default() };
    tosca::compile(&Entry::Text { name: "t.yaml".into(), text: text.into() }, &options, &Inputs::new(), Diagnostics::new(), Sources::new())
}

fn codes(c: &tosca::Compiled) -> Vec<&'static str> {
    c.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn requirements_exported_by_substitution_are_not_dangling() {
    let text = "tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  example.nodes.Service:
    derived_from: tosca.nodes.Root
    requirements:
      - database:
          capability: tosca.capabilities.Endpoint.Database
          relationship: tosca.relationships.ConnectsTo
topology_template:
  substitution_mappings:
    node_type: example.nodes.Service
    requirements:
      database: [ app, database ]
  node_templates:
    app:
      type: example.nodes.Service
";
    assert!(compile(text).diagnostics.is_empty(), "{:?}", codes(&compile(text)));
    // Without the export, the same requirement is left to the orchestrator, with a warning.
    let unexported = text.replace("  substitution_mappings:\n    node_type: example.nodes.Service\n    requirements:\n      database: [ app, database ]\n", "");
    assert_eq!(codes(&compile(&unexported)), vec!["W0403"]);
}

#[test]
fn constant_functions_are_evaluated_and_attributes_stay_expressions() {
    let c = compile(
        "tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    port: { type: integer, default: 8080 }
  node_templates:
    server:
      type: tosca.nodes.Compute
    web:
      type: tosca.nodes.WebServer
      requirements: [ { host: server } ]
  outputs:
    port_text: { value: { concat: [ 'port ', { get_input: port } ] } }
    joined: { value: { join: [ [ a, b, c ], '-' ] } }
    second: { value: { token: [ 'x:y:z', ':', 1 ] } }
    computes: { value: { get_nodes_of_type: tosca.nodes.Compute } }
    ip: { value: { get_attribute: [ server, private_address ] } }
",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let o = &c.topology.outputs;
    assert_eq!(o["port_text"].value, "port 8080");
    assert_eq!(o["joined"].value, "a-b-c");
    assert_eq!(o["second"].value, "y");
    assert_eq!(o["computes"].value, serde_json::json!(["server"]));
    assert_eq!(o["ip"].value, serde_json::json!({"$expr": {"get_attribute": ["server", "private_address"]}}));
    assert_eq!(c.topology.nodes["web"].host.as_deref(), Some("server"));
}

#[test]
fn requirement_matching_picks_a_capability_with_room() {
    // The first database accepts one connection; the second requirement goes to the other one.
    let c = compile(
        "tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  example.nodes.DB:
    derived_from: tosca.nodes.Root
    capabilities:
      conn:
        type: tosca.capabilities.Endpoint.Database
        occurrences: [ 0, 1 ]
  example.nodes.App:
    derived_from: tosca.nodes.Root
    requirements:
      - db:
          capability: tosca.capabilities.Endpoint.Database
          relationship: tosca.relationships.ConnectsTo
topology_template:
  node_templates:
    db1: { type: example.nodes.DB }
    db2: { type: example.nodes.DB }
    app1: { type: example.nodes.App }
    app2: { type: example.nodes.App }
",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let target = |n: &str| c.topology.nodes[n].requirements[0].node.clone();
    assert_eq!(target("app1").as_deref(), Some("db1"));
    assert_eq!(target("app2").as_deref(), Some("db2"));
}

#[test]
fn warnings_in_imported_files_are_summarized_per_file_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut lib = String::from("tosca_definitions_version: tosca_simple_yaml_1_0\nnode_types:\n");
    for i in 0..20 {
        lib.push_str(&format!("  example.nodes.N{i}:\n    derived_from: tosca.nodes.Root\n    properties:\n      p: {{ type: string, required: 'no' }}\n"));
    }
    std::fs::write(dir.path().join("lib.yaml"), lib).unwrap();
    let main = "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - lib.yaml\ntopology_template:\n  node_templates:\n    n:\n      type: example.nodes.N0\n      properties: { p: x, q: 'y' }\n";
    std::fs::write(dir.path().join("main.yaml"), main).unwrap();
    let options = LoadOptions { allow_fetch: false, ..LoadOptions::default() };
    let c = tosca::compile(&Entry::Path(dir.path().join("main.yaml")), &options, &Inputs::new(), Diagnostics::new(), Sources::new());
    let lenient: Vec<_> = c.diagnostics.iter().filter(|d| d.code == "W0311").collect();
    assert_eq!(lenient.len(), 1, "{:?}", c.diagnostics);
    assert!(lenient[0].message.contains("and 19 more W0311"), "{}", lenient[0].message);
    // Problems in the template itself are all kept.
    assert_eq!(codes(&c).iter().filter(|c| **c == "E0308").count(), 1);
}

#[test]
fn get_property_through_a_requirement_reaches_capability_node_or_relationship() {
    let c = compile(
        "tosca_definitions_version: tosca_simple_yaml_1_3
relationship_types:
  example.Link:
    derived_from: tosca.relationships.DependsOn
    properties:
      link_port: { type: integer }
topology_template:
  node_templates:
    db:
      type: tosca.nodes.DBMS
      properties: { port: 5432 }
      requirements: [ { host: vm } ]
    vm: { type: tosca.nodes.Compute, capabilities: { host: { properties: { num_cpus: 4 } } } }
    app:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: vm
        - dependency: { node: db, relationship: { type: example.Link, properties: { link_port: 9 } } }
  outputs:
    cpus: { value: { get_property: [ app, host, num_cpus ] } }
    db_port: { value: { get_property: [ app, dependency, port ] } }
    link: { value: { get_property: [ app, dependency, link_port ] } }
",
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let o = &c.topology.outputs;
    assert_eq!(o["cpus"].value, 4);
    assert_eq!(o["db_port"].value, 5432);
    assert!(o["link"].value.get("$expr").is_some());
}

#[test]
fn list_map_and_complex_inputs_show_their_value() {
    let text = "tosca_definitions_version: tosca_simple_yaml_1_3
data_types:
  example.datatypes.Pair:
    derived_from: tosca.datatypes.Root
    properties:
      a: { type: integer }
      b: { type: string, default: x }
topology_template:
  inputs:
    ports: { type: list, entry_schema: { type: integer }, default: [80, 443] }
    labels: { type: map, entry_schema: { type: string }, default: { tier: web } }
    pair: { type: example.datatypes.Pair, default: { a: 1 } }
    size: { type: scalar-unit.size, default: 1 GB }
    missing: { type: list, entry_schema: { type: string }, required: false }
  node_templates:
    n:
      type: tosca.nodes.Root
";
    let c = compile(text);
    assert!(c.diagnostics.is_empty(), "{:?}", codes(&c));
    let value = |n: &str| c.topology.inputs[n].value.clone();
    assert_eq!(value("ports"), Some(serde_json::json!([80, 443])));
    assert_eq!(value("labels"), Some(serde_json::json!({"tier": "web"})));
    assert_eq!(value("pair"), Some(serde_json::json!({"a": 1, "b": "x"})));
    assert_eq!(value("size"), c.topology.inputs["size"].default);
    assert_eq!(value("missing"), None);
    // Each value is also its default here.
    assert_eq!(value("ports"), c.topology.inputs["ports"].default);
}
