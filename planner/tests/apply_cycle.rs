//! Plan → apply → re-plan with an in-memory provider: ordering, convergence, failure
//! isolation, updates vs replacements, scaling, destroy.

mod common;

use common::*;
use planner::plan::PlanMode;
use proptest::prelude::*;
use state::StateDoc;

const THREE: &str = r#"
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    image: { type: string, default: debian-12 }
    size: { type: integer, default: 1 }
  node_templates:
    db:
      type: tosca.nodes.Root
      properties: {}
    vm:
      type: tosca.nodes.Root
    app:
      type: tosca.nodes.Root
      requirements:
        - dependency: db
        - dependency: vm
    other:
      type: tosca.nodes.Root
"#;

fn with_props(yaml: &str) -> String {
    // Root has no properties: give the test nodes a type that has some.
    yaml.replace(
        "topology_template:",
        "node_types:\n  t.Box:\n    derived_from: tosca.nodes.Root\n    properties:\n      image: { type: string, required: false }\n      size: { type: integer, required: false }\n      peer: { type: string, required: false }\n    attributes:\n      private_address: { type: string }\ntopology_template:",
    )
    .replace("type: tosca.nodes.Root", "type: t.Box")
}

#[test]
fn creates_follow_dependencies_and_a_replan_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let topo = compile(THREE, &[]);
    let fake = Fake::new();
    let reg = registry(&fake);
    let plan = make_plan(&topo, &StateDoc::new(String::new()), &reg, PlanMode::Normal);
    assert_eq!(plan.counts().add, 4);
    let (report, doc) = apply(&plan, &reg, dir.path(), StateDoc::new(String::new()));
    assert!(report.ok(), "{report:?}");
    let order: Vec<String> = fake.calls().into_iter().map(|(_, a)| a).collect();
    let pos = |a: &str| order.iter().position(|x| x == a).unwrap();
    assert!(pos("db") < pos("app") && pos("vm") < pos("app"), "{order:?}");
    assert_eq!(doc.serial, 1);
    let again = make_plan(&topo, &doc, &reg, PlanMode::Normal);
    assert!(!again.has_changes(), "{:?}", actions(&again));
}

#[test]
fn a_failure_skips_dependents_and_independent_branches_finish_then_reapply_converges() {
    let dir = tempfile::tempdir().unwrap();
    let topo = compile(THREE, &[]);
    let fake = Fake::new();
    fake.fail.lock().unwrap().insert("db".into());
    let reg = registry(&fake);
    let plan = make_plan(&topo, &StateDoc::new(String::new()), &reg, PlanMode::Normal);
    let (report, doc) = apply(&plan, &reg, dir.path(), StateDoc::new(String::new()));
    assert_eq!(report.failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["db"]);
    assert_eq!(report.skipped.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["app"]);
    let mut done: Vec<&str> = report.done.iter().map(|d| d.0.as_str()).collect();
    done.sort();
    assert_eq!(done, ["other", "vm"]);
    // A create that failed cleanly leaves nothing behind in state.
    assert!(doc.resource("db").is_none());
    fake.fail.lock().unwrap().clear();
    let plan2 = make_plan(&topo, &doc, &reg, PlanMode::Normal);
    assert_eq!(actions(&plan2), ["db: create [not_in_state]", "app: create [not_in_state]"]);
    let (report2, doc2) = apply(&plan2, &reg, dir.path(), doc);
    assert!(report2.ok());
    assert!(!make_plan(&topo, &doc2, &reg, PlanMode::Normal).has_changes());
}

#[test]
fn property_changes_update_in_place_and_forcing_paths_replace() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_props(
        r#"
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    image: { type: string, default: debian-12 }
    size: { type: integer, default: 1 }
  node_templates:
    vm:
      type: tosca.nodes.Root
      properties:
        image: { get_input: image }
        size: { get_input: size }
    app:
      type: tosca.nodes.Root
      properties:
        peer: { get_attribute: [ vm, private_address ] }
      requirements:
        - dependency: vm
"#,
    );
    let fake = Fake::new();
    let reg = registry(&fake);
    let topo = compile(&yaml, &[]);
    let (_, doc) = apply(&make_plan(&topo, &StateDoc::new(String::new()), &reg, PlanMode::Normal), &reg, dir.path(), StateDoc::new(String::new()));
    assert_eq!(doc.resource("app").unwrap().config["properties"]["peer"], "10.0.0.2");

    let bigger = compile(&yaml, &[("size", "2")]);
    let plan = make_plan(&bigger, &doc, &reg, PlanMode::Normal);
    assert_eq!(actions(&plan), ["vm: update [config_changed]"]);

    let new_image = compile(&yaml, &[("image", "debian-13")]);
    let plan = make_plan(&new_image, &doc, &reg, PlanMode::Normal);
    // The replaced vm's address is unknown until apply, so app is updated with it.
    assert_eq!(actions(&plan), ["vm: delete,create [replace_because_cannot_update]", "app: update [update_because_dependency_changes]"]);
    let vm = plan.changes.iter().find(|c| c.address == "vm").unwrap();
    assert_eq!(vm.replace_paths, vec![vec!["properties".to_string(), "image".into()]]);
    let app = plan.changes.iter().find(|c| c.address == "app").unwrap();
    assert_eq!(app.after_unknown["properties"]["peer"], true);

    let plan = try_plan(&topo, &doc, &reg, PlanMode::Normal, &["app"]).unwrap();
    assert_eq!(actions(&plan), ["app: delete,create [replace_by_request]"]);
    assert!(try_plan(&topo, &doc, &reg, PlanMode::Normal, &["nope"]).is_err());
}

#[test]
fn destroy_deletes_dependents_first() {
    let dir = tempfile::tempdir().unwrap();
    let topo = compile(THREE, &[]);
    let fake = Fake::new();
    let reg = registry(&fake);
    let (_, doc) = apply(&make_plan(&topo, &StateDoc::new(String::new()), &reg, PlanMode::Normal), &reg, dir.path(), StateDoc::new(String::new()));
    fake.calls.lock().unwrap().clear();
    let plan = make_plan(&topo, &doc, &reg, PlanMode::Destroy);
    assert_eq!(plan.counts().destroy, 4);
    let (report, after) = apply(&plan, &reg, dir.path(), doc);
    assert!(report.ok());
    assert!(after.resources.is_empty());
    let order: Vec<String> = fake.calls().into_iter().map(|(_, a)| a).collect();
    let pos = |a: &str| order.iter().position(|x| x == a).unwrap();
    assert!(pos("app") < pos("db") && pos("app") < pos("vm"), "{order:?}");
}

#[test]
fn a_requirement_cycle_is_reported_with_its_path() {
    // The front-end reports requirement cycles too; the planner's own check covers the
    // dependencies it adds from attribute references.
    let yaml = with_props(
        r#"
tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    a:
      type: tosca.nodes.Root
      properties:
        peer: { get_attribute: [ b, private_address ] }
    b:
      type: tosca.nodes.Root
      properties:
        peer: { get_attribute: [ a, private_address ] }
"#,
    );
    let topo = compile(&yaml, &[]);
    let fake = Fake::new();
    let err = try_plan(&topo, &StateDoc::new(String::new()), &registry(&fake), PlanMode::Normal, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cycle") && msg.contains("a") && msg.contains("b"), "{msg}");
}

/// A random DAG of `n` nodes: node i depends on some nodes j < i.
fn dag_template(n: usize, edges: &[(usize, usize)]) -> String {
    let mut y = String::from("tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n");
    for i in 0..n {
        y.push_str(&format!("    n{i}:\n      type: tosca.nodes.Root\n"));
        let deps: Vec<usize> = edges.iter().filter(|(a, b)| *a == i && *b < i).map(|(_, b)| *b).collect();
        if !deps.is_empty() {
            y.push_str("      requirements:\n");
            for d in deps {
                y.push_str(&format!("        - dependency: n{d}\n"));
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For any DAG: every create runs after the creates of its dependencies, the re-plan is
    /// empty, and destroy deletes every dependent before what it depends on.
    #[test]
    fn apply_order_respects_every_dependency(n in 1usize..12, raw in proptest::collection::vec((0usize..12, 0usize..12), 0..30)) {
        let edges: Vec<(usize, usize)> = raw.into_iter().filter(|(a, b)| a < &n && b < a).collect();
        let topo = compile(&dag_template(n, &edges), &[]);
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::new();
        let reg = registry(&fake);
        let plan = make_plan(&topo, &StateDoc::new(String::new()), &reg, PlanMode::Normal);
        let (report, doc) = apply(&plan, &reg, dir.path(), StateDoc::new(String::new()));
        prop_assert!(report.ok());
        let order: Vec<String> = fake.calls().into_iter().map(|(_, a)| a).collect();
        let pos = |a: usize| order.iter().position(|x| *x == format!("n{a}")).unwrap();
        for (a, b) in &edges {
            prop_assert!(pos(*b) < pos(*a), "n{} created before its dependency n{}: {:?}", a, b, order);
        }
        prop_assert!(!make_plan(&topo, &doc, &reg, PlanMode::Normal).has_changes());
        fake.calls.lock().unwrap().clear();
        let (report, after) = apply(&make_plan(&topo, &doc, &reg, PlanMode::Destroy), &reg, dir.path(), doc);
        prop_assert!(report.ok());
        prop_assert!(after.resources.is_empty());
        let order: Vec<String> = fake.calls().into_iter().map(|(_, a)| a).collect();
        let pos = |a: usize| order.iter().position(|x| *x == format!("n{a}")).unwrap();
        for (a, b) in &edges {
            prop_assert!(pos(*a) < pos(*b), "n{} deleted after its dependency n{}: {:?}", a, b, order);
        }
    }
}
