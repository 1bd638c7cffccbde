//! Snapshots of every plan format, secrets never rendered, and the Markdown splitter's
//! invariants under random plans and limits.

use planner::plan::{Binding, Desired, Drift, OutputChange, Reason, ReasonCode, PLAN_FORMAT_VERSION};
use planner::render::{self, GraphFormat, HumanOptions, MarkdownOptions};
use planner::{Action, Plan, PlanMode, ResourceChange};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const SECRET: &str = "s3cr3t-value";

fn plan(changes: Vec<ResourceChange>) -> Plan {
    Plan {
        format_version: PLAN_FORMAT_VERSION.to_string(),
        rosca_version: "0.1.0".to_string(),
        mode: PlanMode::Normal,
        created: "2026-11-22T10:00:00Z".to_string(),
        binding: Binding { lineage: "3f1c".to_string(), serial: 7, template: "shop.yaml".to_string(), digest: "sha256:ab12".to_string() },
        inputs: BTreeMap::new(),
        sensitive_inputs: Vec::new(),
        changes,
        drift: Vec::new(),
        outputs: Vec::new(),
        refreshed: true,
    }
}

fn rc(address: &str, type_name: &str, action: Action) -> ResourceChange {
    let (node, index) = match address.split_once('[') {
        Some((n, i)) => (n.to_string(), i.trim_end_matches(']').parse().ok()),
        None => (address.to_string(), None),
    };
    ResourceChange {
        address: address.to_string(),
        node,
        index,
        type_name: type_name.to_string(),
        provider: "local".to_string(),
        action,
        reasons: Vec::new(),
        before: Value::Null,
        after: Value::Null,
        after_unknown: json!({}),
        before_sensitive: json!({}),
        after_sensitive: json!({}),
        replace_paths: Vec::new(),
        operations: Vec::new(),
        depends_on: Vec::new(),
        desired: None,
    }
}

fn reason(code: ReasonCode) -> Reason {
    Reason { code, paths: Vec::new(), detail: None }
}

fn desired_with_secret() -> Option<Desired> {
    Some(Desired {
        types: vec!["tosca.nodes.WebServer".to_string()],
        config: json!({"properties": {"admin_password": SECRET}}),
        operations: BTreeMap::new(),
        relationships: Vec::new(),
        hosts: vec!["app_host[0]".to_string()],
        dependencies: vec!["app_host[0]".to_string()],
        sensitive: vec!["properties.admin_password".to_string()],
        create_before_destroy: false,
    })
}

/// A plan with every kind of change: creates with unknown and sensitive leaves, an update
/// with nested changes and a changed secret, replaces (tainted, forced path, interrupted),
/// deletes for each reason, a no-op, drift and outputs.
fn full_plan() -> Plan {
    let mut host = rc("app_host[0]", "tosca.nodes.Compute", Action::DeleteThenCreate);
    host.reasons = vec![reason(ReasonCode::ReplaceBecauseTainted)];
    let host_cfg = json!({"properties": {"image": "ubuntu-24.04"}, "capabilities": {"host": {"num_cpus": 2, "mem_size": "4 GB"}}});
    host.before = host_cfg.clone();
    host.after = host_cfg;

    let mut webs = Vec::new();
    for i in 0..2 {
        let mut w = rc(&format!("web[{i}]"), "tosca.nodes.WebServer", Action::Create);
        w.reasons = vec![reason(ReasonCode::NotInState)];
        w.after = json!({
            "properties": {"port": 8080, "url": null, "admin_password": SECRET, "tags": {"team": "web", "tier": "front"}},
            "capabilities": {},
            "operations": {"configure": {"db_url": null, "workers": 4}}
        });
        w.after_unknown = json!({"properties": {"url": true}, "operations": {"configure": {"db_url": true}}});
        w.after_sensitive = json!({"properties": {"admin_password": true}});
        w.depends_on = vec!["app_host[0]".to_string(), "db".to_string()];
        w.desired = desired_with_secret();
        webs.push(w);
    }

    let mut db = rc("db", "tosca.nodes.Database", Action::Update);
    db.reasons = vec![Reason {
        code: ReasonCode::ConfigChanged,
        paths: vec!["properties.port".into(), "properties.password".into(), "properties.settings.max_connections".into(), "properties.allowed_hosts".into()],
        detail: None,
    }];
    db.before = json!({"properties": {
        "name": "shop", "port": 5432, "password": "old-pass", "user": "shop",
        "settings": {"max_connections": 100, "log_level": "warn"},
        "allowed_hosts": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"],
        "replicas": ["a", "b"], "note": "to be removed"
    }});
    db.after = json!({"properties": {
        "name": "shop", "port": 5433, "password": SECRET, "user": "shop",
        "settings": {"max_connections": 200, "log_level": "warn"},
        "allowed_hosts": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"],
        "replicas": ["a", "c"]
    }});
    db.before_sensitive = json!({"properties": {"password": true}});
    db.after_sensitive = json!({"properties": {"password": true}});
    db.operations = vec!["stop".into(), "configure".into(), "start".into()];

    let mut lb = rc("lb", "tosca.nodes.LoadBalancer", Action::CreateThenDelete);
    lb.reasons = vec![
        reason(ReasonCode::ReplaceByRequest),
        Reason { code: ReasonCode::ReplaceBecauseCannotUpdate, paths: vec!["properties.image".into()], detail: None },
    ];
    lb.before = json!({"properties": {"image": "nginx:1.24", "algorithm": "round_robin"}});
    lb.after = json!({"properties": {"image": "nginx:1.25", "algorithm": "round_robin"}});
    lb.replace_paths = vec![vec!["properties".into(), "image".into()]];
    lb.depends_on = vec!["web[0]".into(), "web[1]".into()];

    let mut storage = rc("storage[0]", "tosca.nodes.Storage.BlockStorage", Action::DeleteThenCreate);
    storage.reasons = vec![Reason { code: ReasonCode::ReplaceBecausePending, paths: vec![], detail: Some("an interrupted create left its outcome unknown".into()) }];
    storage.before = json!({"properties": {"size": "10 GB"}});
    storage.after = json!({"properties": {"size": "10 GB"}});

    let mut deletes = Vec::new();
    for (addr, code) in [
        ("cache[1]", ReasonCode::DeleteBecauseScaledIn),
        ("old_worker", ReasonCode::DeleteBecauseNoNode),
        ("queue[2]", ReasonCode::DeleteBecauseRemovalList),
    ] {
        let mut d = rc(addr, "tosca.nodes.SoftwareComponent", Action::Delete);
        d.reasons = vec![reason(code)];
        d.before = json!({"properties": {"component_version": "1.2", "token": SECRET}});
        d.before_sensitive = json!({"properties": {"token": true}});
        d.after_unknown = json!({});
        d.after_sensitive = Value::Null;
        deletes.push(d);
    }
    deletes[1].depends_on = vec!["queue[2]".into()];

    let mut net = rc("net", "tosca.nodes.network.Network", Action::NoOp);
    net.before = json!({"properties": {"cidr": "10.0.0.0/24"}});
    net.after = net.before.clone();

    let mut changes = vec![net, host];
    changes.push(db);
    changes.extend(webs);
    changes.push(lb);
    changes.push(storage);
    changes.extend(deletes);
    let mut p = plan(changes);
    p.inputs.insert("region".into(), json!("eu-west"));
    p.inputs.insert("db_password".into(), json!(SECRET));
    p.sensitive_inputs = vec!["db_password".into()];
    p.drift = vec![
        Drift {
            address: "db".into(),
            kind: "changed".into(),
            before: json!({"properties": {"port": 5432, "password": "old-pass", "name": "shop"}}),
            after: json!({"properties": {"port": 5431, "password": SECRET, "name": "shop"}}),
        },
        Drift { address: "cache[0]".into(), kind: "gone".into(), before: json!({"properties": {}}), after: Value::Null },
    ];
    p.outputs = vec![
        OutputChange { name: "url".into(), action: Action::Create, before: Value::Null, after: Value::Null, after_unknown: true, sensitive: false, value: json!({"$expr": "x"}) },
        OutputChange { name: "endpoint".into(), action: Action::Update, before: json!("http://a"), after: Value::Null, after_unknown: true, sensitive: false, value: Value::Null },
        OutputChange { name: "admin_password".into(), action: Action::Update, before: json!("old"), after: json!(SECRET), after_unknown: false, sensitive: true, value: Value::Null },
        OutputChange { name: "legacy".into(), action: Action::Delete, before: json!("v1"), after: Value::Null, after_unknown: false, sensitive: false, value: Value::Null },
        OutputChange { name: "region".into(), action: Action::NoOp, before: json!("eu-west"), after: json!("eu-west"), after_unknown: false, sensitive: false, value: Value::Null },
    ];
    p
}

fn plain() -> HumanOptions {
    HumanOptions::default()
}

#[test]
fn human_full() {
    insta::assert_snapshot!(render::human(&full_plan(), &plain()));
}

#[test]
fn human_summary_only() {
    insta::assert_snapshot!(render::human(&full_plan(), &HumanOptions { summary_only: true, ..plain() }));
}

#[test]
fn human_show_unchanged() {
    let p = full_plan();
    let db = p.changes.iter().find(|c| c.address == "db").unwrap().clone();
    insta::assert_snapshot!(render::human(&plan(vec![db]), &HumanOptions { show_unchanged: true, ..plain() }));
}

#[test]
fn human_color_is_the_plain_text_styled() {
    let p = full_plan();
    let colored = render::human(&p, &HumanOptions { color: true, ..plain() });
    let uncolored = render::human(&p, &plain());
    assert!(colored.contains("\u{1b}["));
    assert!(!uncolored.contains('\u{1b}'));
    assert_eq!(console::strip_ansi_codes(&colored), uncolored);
}

#[test]
fn human_no_changes() {
    let mut net = rc("net", "tosca.nodes.network.Network", Action::NoOp);
    net.before = json!({"properties": {"cidr": "10.0.0.0/24"}});
    net.after = net.before.clone();
    let p = plan(vec![net]);
    let out = render::human(&p, &plain());
    assert!(out.starts_with("No changes. Your infrastructure matches the configuration."));
    insta::assert_snapshot!(out);
}

#[test]
fn human_destroy_mode_with_empty_state() {
    let mut p = plan(Vec::new());
    p.mode = PlanMode::Destroy;
    let out = render::human(&p, &plain());
    assert!(out.starts_with("No changes. No objects need to be destroyed."), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn human_refresh_only_with_drift() {
    let mut p = full_plan();
    p.mode = PlanMode::RefreshOnly;
    for c in &mut p.changes {
        c.action = Action::NoOp;
        c.reasons.clear();
    }
    p.outputs.clear();
    insta::assert_snapshot!(render::human(&p, &plain()));
}

#[test]
fn human_outputs_only() {
    let mut p = plan(Vec::new());
    p.outputs = full_plan().outputs;
    insta::assert_snapshot!(render::human(&p, &plain()));
}

#[test]
fn human_plan_line_counts_replaces_twice() {
    let out = render::human(&full_plan(), &plain());
    // 2 web creates + 3 replaces = 5 added; 1 update; 3 deletes + 3 replaces = 6 destroyed.
    assert!(out.contains("\nPlan: 5 to add, 1 to change, 6 to destroy.\n"), "{out}");
}

#[test]
fn json_full() {
    let v = render::json(&full_plan());
    assert_eq!(v["format_version"], "1.0");
    assert_eq!(v["resource_changes"][1]["change"]["actions"], json!(["delete", "create"]));
    assert_eq!(v["resource_changes"][1]["action_reason"], "replace_because_tainted");
    assert!(v["resource_changes"][3].get("desired").is_none());
    assert_eq!(v["variables"]["db_password"], json!({"value": null, "sensitive": true}));
    assert_eq!(v["applyable"], true);
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn json_empty_plan_is_not_applyable() {
    let v = render::json(&plan(Vec::new()));
    assert_eq!(v["applyable"], false);
    assert_eq!(v["summary"], json!({"add": 0, "change": 0, "destroy": 0, "no_op": 0, "by_type": {}}));
    assert_eq!(v["action_graph"], json!({"nodes": [], "edges": []}));
}

#[test]
fn markdown_full() {
    let parts = render::markdown(&full_plan(), &MarkdownOptions::default());
    assert_eq!(parts.len(), 1);
    insta::assert_snapshot!(parts[0]);
}

#[test]
fn markdown_no_changes() {
    let parts = render::markdown(&plan(Vec::new()), &MarkdownOptions::default());
    assert_eq!(parts.len(), 1);
    insta::assert_snapshot!(parts[0]);
}

/// A plan of `n` created instances, each with a few properties.
fn many(n: usize) -> Plan {
    let changes = (0..n)
        .map(|i| {
            let mut c = rc(&format!("worker[{i}]"), "tosca.nodes.SoftwareComponent", Action::Create);
            c.after = json!({"properties": {"name": format!("worker-{i}"), "port": 9000 + i, "env": {"MODE": "batch", "ID": i}}});
            c
        })
        .collect();
    plan(changes)
}

#[test]
fn markdown_split_in_parts() {
    let parts = render::markdown(&many(12), &MarkdownOptions { max_chars: 2000, ..Default::default() });
    assert!(parts.len() > 1);
    for p in &parts {
        assert!(p.chars().count() <= 2000);
    }
    insta::assert_snapshot!(parts.join("\n======== next comment ========\n"));
}

#[test]
fn markdown_splits_inside_a_block_and_reopens_it() {
    let mut c = rc("config_store", "tosca.nodes.SoftwareComponent", Action::Create);
    let props: serde_json::Map<String, Value> = (0..120).map(|i| (format!("key_{i:03}"), json!(format!("value number {i}")))).collect();
    c.after = json!({"properties": props});
    let parts = render::markdown(&plan(vec![c]), &MarkdownOptions { max_chars: 2000, ..Default::default() });
    assert!(parts.len() >= 3, "{}", parts.len());
    assert!(parts[1].contains("(continued)</summary>"));
    for p in &parts {
        assert!(p.chars().count() <= 2000);
    }
    insta::assert_snapshot!(parts[..2].join("\n======== next comment ========\n"));
}

#[test]
fn markdown_long_line_is_truncated_with_a_marker() {
    let mut c = rc("blob", "tosca.nodes.SoftwareComponent", Action::Create);
    c.after = json!({"properties": {"payload": "x".repeat(5000)}});
    let parts = render::markdown(&plan(vec![c]), &MarkdownOptions { max_chars: 2000, ..Default::default() });
    for p in &parts {
        assert!(p.chars().count() <= 2000, "{}", p.chars().count());
    }
    let all = parts.concat();
    assert!(all.contains("(line truncated, "), "{all}");
    assert!(all.contains("<code>blob</code>"));
}

#[test]
fn markdown_fence_in_a_value_cannot_close_the_block() {
    let mut c = rc("doc", "tosca.nodes.SoftwareComponent", Action::Create);
    c.after = json!({"properties": {"readme": "```\n</details>\n# pwned"}});
    let parts = render::markdown(&plan(vec![c]), &MarkdownOptions::default());
    assert_eq!(parts[0].matches("```").count() % 2, 0, "{}", parts[0]);
}

#[test]
fn graph_dot() {
    insta::assert_snapshot!(render::graph(&full_plan(), GraphFormat::Dot));
}

#[test]
fn graph_mermaid() {
    insta::assert_snapshot!(render::graph(&full_plan(), GraphFormat::Mermaid));
}

#[test]
fn secrets_appear_in_no_output() {
    let p = full_plan();
    // The fixture does hold the secret (inputs, after, desired).
    assert!(serde_json::to_string(&p).unwrap().contains(SECRET));
    for summary_only in [false, true] {
        for show_unchanged in [false, true] {
            for color in [false, true] {
                let out = render::human(&p, &HumanOptions { color, summary_only, show_unchanged });
                assert!(!out.contains(SECRET), "human leaks: {out}");
            }
        }
    }
    let js = serde_json::to_string(&render::json(&p)).unwrap();
    assert!(!js.contains(SECRET), "json leaks: {js}");
    for max_chars in [2_000, 65_000] {
        for show_unchanged in [false, true] {
            for part in render::markdown(&p, &MarkdownOptions { max_chars, show_unchanged }) {
                assert!(!part.contains(SECRET), "markdown leaks: {part}");
            }
        }
    }
    for f in [GraphFormat::Dot, GraphFormat::Mermaid] {
        assert!(!render::graph(&p, f).contains(SECRET));
    }
}

#[test]
fn drift_of_an_instance_outside_the_plan_is_fully_masked() {
    let mut p = plan(Vec::new());
    p.drift = vec![Drift { address: "x".into(), kind: "changed".into(), before: json!({"properties": {"k": "a"}}), after: json!({"properties": {"k": SECRET}}) }];
    assert!(!render::human(&p, &plain()).contains(SECRET));
    assert!(!render::json(&p).to_string().contains(SECRET));
    assert!(!render::markdown(&p, &MarkdownOptions::default()).concat().contains(SECRET));
}

#[test]
fn sensitive_leaf_masks_only_that_leaf() {
    let p = full_plan();
    let out = render::human(&p, &plain());
    assert!(out.contains("~ password      = (sensitive value changed)"), "{out}");
    assert!(out.contains("~ port          = 5432 -> 5433"), "{out}");
    let v = render::json(&p);
    let db = v["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "db").unwrap();
    assert_eq!(db["change"]["after"]["properties"]["password"], Value::Null);
    assert_eq!(db["change"]["after"]["properties"]["port"], 5433);
    assert_eq!(db["change"]["after_sensitive"]["properties"]["password"], true);
    assert_eq!(db["change"]["sensitive_changed_paths"], json!([["properties", "password"]]));
    let web = v["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "web[0]").unwrap();
    assert_eq!(web["change"]["sensitive_changed_paths"], json!([["properties", "admin_password"]]));
}

// ---------------------------------------------------------------------------------------------
// Markdown splitting properties.

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Create),
        Just(Action::Update),
        Just(Action::Delete),
        Just(Action::DeleteThenCreate),
        Just(Action::CreateThenDelete),
        Just(Action::NoOp),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9 `<>|*_#-]{0,40}".prop_map(Value::String),
        (1usize..3000).prop_map(|n| Value::String("v".repeat(n))),
        any::<bool>().prop_map(Value::Bool),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_props() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,10}", arb_value(), 0..6).prop_map(|m| json!({"properties": m.into_iter().collect::<serde_json::Map<_, _>>()}))
}

fn arb_change() -> impl Strategy<Value = ResourceChange> {
    ("[a-z][a-z_]{0,12}", 0u32..200, arb_action(), arb_props(), arb_props(), any::<bool>()).prop_map(|(node, i, action, before, after, replace)| {
        let mut c = rc(&format!("{node}[{i}]"), "tosca.nodes.Compute", action);
        c.before = if action == Action::Create { Value::Null } else { before };
        c.after = if action == Action::Delete { Value::Null } else { after };
        if replace && action.is_replace() {
            c.reasons = vec![reason(ReasonCode::ReplaceBecauseTainted)];
        }
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64), ..ProptestConfig::default() })]

    #[test]
    fn markdown_parts_are_balanced_and_bounded(changes in prop::collection::vec(arb_change(), 0..40), limit in 2000usize..12000) {
        let mut p = plan(changes);
        // Unique addresses.
        let mut seen = std::collections::HashSet::new();
        p.changes.retain(|c| seen.insert(c.address.clone()));
        let parts = render::markdown(&p, &MarkdownOptions { max_chars: limit, show_unchanged: false });
        prop_assert!(!parts.is_empty());
        for part in &parts {
            prop_assert!(part.chars().count() <= limit, "part of {} chars > {}", part.chars().count(), limit);
            prop_assert_eq!(part.matches("```").count() % 2, 0, "unbalanced fences in {}", part);
            prop_assert_eq!(part.matches("<details>").count(), part.matches("</details>").count(), "unbalanced details in {}", part);
        }
        if parts.len() > 1 {
            for (i, part) in parts.iter().enumerate() {
                let header = format!("**Part {} of {}**", i + 1, parts.len());
                prop_assert!(part.starts_with(&header));
            }
        }
        let all = parts.concat();
        for c in p.changes.iter().filter(|c| c.action != Action::NoOp) {
            let code = format!("<code>{}</code>", c.address);
            prop_assert!(all.contains(&code), "{} lost", c.address);
        }
        // The other formats take any plan too.
        let h = render::human(&p, &HumanOptions { show_unchanged: limit % 2 == 0, ..HumanOptions::default() });
        prop_assert!(h.ends_with('\n'));
        let _ = render::json(&p);
        let _ = render::graph(&p, GraphFormat::Mermaid);
    }
}
