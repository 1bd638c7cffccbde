//! Data-driven plans: each directory of `fixtures/plan/` holds `v1.yaml` and `v2.yaml`. v1 is
//! planned against empty state and applied (in-memory provider, real state file); v2 is
//! planned against the result. The snapshot holds both action lists and v2's human plan, so a
//! reviewer sees template change → plan. Nothing secret may appear in any rendered form.

mod common;

use common::*;
use planner::plan::PlanMode;
use planner::render::{self, HumanOptions, MarkdownOptions};
use state::StateDoc;
use std::path::Path;

fn case(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/plan").join(name);
    let v1 = std::fs::read_to_string(dir.join("v1.yaml")).unwrap();
    let v2 = std::fs::read_to_string(dir.join("v2.yaml")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let reg = registry(&fake);
    let t1 = compile(&v1, &[]);
    let p1 = make_plan(&t1, &StateDoc::new(String::new()), &reg, PlanMode::Normal);
    let (report, doc) = apply(&p1, &reg, work.path(), StateDoc::new(String::new()));
    assert!(report.ok(), "{report:?}");
    assert!(!make_plan(&t1, &doc, &reg, PlanMode::Normal).has_changes(), "v1 re-plan is not empty");
    let t2 = compile(&v2, &[]);
    let p2 = make_plan(&t2, &doc, &reg, PlanMode::Normal);
    let human = render::human(&p2, &HumanOptions::default());
    let json = serde_json::to_string_pretty(&render::json(&p2)).unwrap();
    let md = render::markdown(&p2, &MarkdownOptions::default()).join("\n");
    for out in [&human, &json, &md] {
        assert!(!out.contains("s3cr3t"), "a secret reached a rendered plan:\n{out}");
    }
    let (report2, doc2) = apply(&p2, &reg, work.path(), doc);
    assert!(report2.ok(), "{report2:?}");
    assert!(!make_plan(&t2, &doc2, &reg, PlanMode::Normal).has_changes(), "v2 re-plan is not empty");
    let text = format!(
        "== v1 against empty state ==\n{}\n\n== v2 against v1's state ==\n{}\n\n== v2, human ==\n{}",
        actions(&p1).join("\n"),
        actions(&p2).join("\n"),
        human
    );
    insta::assert_snapshot!(name, text);
}

#[test]
fn scale_out() {
    case("scale_out");
}

#[test]
fn scale_in_removal_list() {
    case("scale_in_removal_list");
}

#[test]
fn node_removed() {
    case("node_removed");
}

#[test]
fn update_vs_replace() {
    case("update_vs_replace");
}

#[test]
fn sensitive() {
    case("sensitive");
}

#[test]
fn hosted_on_scaled() {
    case("hosted_on_scaled");
}

#[test]
fn outputs_across_nodes() {
    case("outputs_across_nodes");
}
