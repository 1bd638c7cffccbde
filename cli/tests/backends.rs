//! The CLI on every shared state backend (`[backend]` of rosca.toml): two working directories
//! (two team members) share one state through PostgreSQL, etcd and S3, started by
//! scripts/test.sh (ROSCA_TEST_PG_URL, ROSCA_TEST_ETCD_ENDPOINTS, ROSCA_TEST_S3_ENDPOINT).

mod util;

use serde_json::json;
use util::{show, Workdir};

const TEMPLATE: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  inputs:\n    n: { type: integer, default: 2 }\n  node_templates:\n    app:\n      type: tosca.nodes.Compute\n      capabilities:\n        scalable: { properties: { default_instances: { get_input: n } } }\n";

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// The `[backend]` table of each backend whose service the run provides.
fn backends() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match var("ROSCA_TEST_PG_URL") {
        Some(url) => out.push(("postgres", format!("kind = \"postgres\"\nurl = \"{url}\"\nname = \"{}\"\n", unique("cli")))),
        None => assert_eq!(var("ROSCA_SKIP_PG").as_deref(), Some("1"), "ROSCA_TEST_PG_URL is not set: run scripts/test.sh or set ROSCA_SKIP_PG=1"),
    }
    match var("ROSCA_TEST_ETCD_ENDPOINTS") {
        Some(e) => out.push(("etcd", format!("kind = \"etcd\"\nendpoints = [\"{e}\"]\nname = \"{}\"\n", unique("cli")))),
        None => assert_eq!(var("ROSCA_SKIP_ETCD").as_deref(), Some("1"), "ROSCA_TEST_ETCD_ENDPOINTS is not set: run scripts/test.sh or set ROSCA_SKIP_ETCD=1"),
    }
    match var("ROSCA_TEST_S3_ENDPOINT") {
        Some(e) => {
            let bucket = "rosca-cli-tests";
            // moto answers an unsigned bucket creation; a real S3 would need it signed.
            let _ = reqwest::blocking::Client::new().put(format!("{e}/{bucket}")).send();
            out.push(("s3", format!("kind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{e}\"\nregion = \"us-east-1\"\nname = \"{}\"\n", unique("cli"))));
        }
        None => assert_eq!(var("ROSCA_SKIP_S3").as_deref(), Some("1"), "ROSCA_TEST_S3_ENDPOINT is not set: run scripts/test.sh or set ROSCA_SKIP_S3=1"),
    }
    out
}

#[test]
fn two_working_directories_share_one_state_on_every_backend() {
    for (kind, table) in backends() {
        let (alice, bob) = (Workdir::new(&format!("{kind}-alice")), Workdir::new(&format!("{kind}-bob")));
        for w in [&alice, &bob] {
            w.write("rosca.toml", &format!("[backend]\n{table}"));
            w.write("app.yaml", TEMPLATE);
        }
        let env = |w: &Workdir, args: &[&str]| {
            let mut c = w.command(args);
            c.env("AWS_ACCESS_KEY_ID", std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("test".into()))
                .env("AWS_SECRET_ACCESS_KEY", std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("test".into()))
                .env("AWS_REGION", "us-east-1");
            c.output().unwrap()
        };
        let out = env(&alice, &["apply", "app.yaml", "--auto-approve"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        assert!(!alice.path().join("rosca.state.json").exists(), "{kind}: the state is not local");
        // Bob sees Alice's resources: nothing to do.
        let out = env(&bob, &["plan", "app.yaml", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        let out = env(&bob, &["state", "list"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(), vec!["app[0]", "app[1]"], "{kind}: {}", show(&out));
        // Bob scales out; Alice's next plan starts from Bob's state.
        let out = env(&bob, &["apply", "app.yaml", "-i", "n=3", "--auto-approve"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        let out = env(&alice, &["plan", "app.yaml", "-i", "n=3", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        let out = env(&alice, &["destroy", "app.yaml", "--auto-approve"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        let out = env(&bob, &["state", "pull"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{kind}: {}", show(&out)));
        assert_eq!(doc["resources"], json!([]), "{kind}");
    }
}

#[test]
fn migrate_copies_the_state_to_another_backend_and_refuses_to_overwrite() {
    let Some(url) = std::env::var("ROSCA_TEST_PG_URL").ok().filter(|v| !v.is_empty()) else {
        assert_eq!(std::env::var("ROSCA_SKIP_PG").as_deref(), Ok("1"), "ROSCA_TEST_PG_URL is not set: run scripts/test.sh or set ROSCA_SKIP_PG=1");
        return;
    };
    let w = Workdir::new("migrate");
    w.write("app.yaml", TEMPLATE);
    w.ok(&["apply", "app.yaml", "--auto-approve"]);
    let before = w.state();
    let target = format!("[backend]\nkind = \"postgres\"\nurl = \"{url}\"\nname = \"{}\"\n", unique("migrated"));
    w.write("target.toml", &target);
    let out = w.ok(&["state", "migrate", "--to", "target.toml"]);
    assert!(out.contains("Migrated the state (2 resources, serial"), "{out}");
    // The target now answers for it: same document.
    let t = Workdir::new("migrate-target");
    t.write("rosca.toml", &target);
    assert_eq!(t.state(), before);
    assert_eq!(t.ok(&["state", "list"]).lines().collect::<Vec<_>>(), vec!["app[0]", "app[1]"]);
    // Again: the target is not empty.
    let out = w.expect(1, &["state", "migrate", "--to", "target.toml"]);
    assert!(util::stderr(&out).contains("already holds a state (2 resources"), "{}", show(&out));
    w.ok(&["state", "migrate", "--to", "target.toml", "--force"]);
}

#[test]
fn an_encrypted_state_opens_only_with_its_key_and_rekey_rotates_it() {
    let (k1, k2) = ("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
    let w = Workdir::new("encrypted");
    w.write("app.yaml", TEMPLATE);
    w.write("rosca.toml", "[backend.encryption]\nkey_env = \"TEST_STATE_KEY\"\n");
    let run = |key: &str, args: &[&str]| w.command(args).env("TEST_STATE_KEY", key).env("TEST_OLD_KEY", k1).output().unwrap();
    let out = run(k1, &["apply", "app.yaml", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let raw = std::fs::read_to_string(w.path().join("rosca.state.json")).unwrap();
    assert!(raw.contains("AES-256-GCM") && !raw.contains("app[0]"), "sealed on disk: {raw}");
    let out = run(k1, &["state", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(), vec!["app[0]", "app[1]"], "{}", show(&out));
    // Another key: a clear error, nothing changed.
    let out = run(k2, &["apply", "app.yaml", "-i", "n=3", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(util::stderr(&out).contains("no configured key matches"), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(w.path().join("rosca.state.json")).unwrap(), raw);
    // Rotation: the new key seals, the old one opens.
    w.write("rosca.toml", "[backend.encryption]\nkey_env = \"TEST_STATE_KEY\"\nold_key_env = \"TEST_OLD_KEY\"\n");
    let out = run(k2, &["state", "rekey"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    w.write("rosca.toml", "[backend.encryption]\nkey_env = \"TEST_STATE_KEY\"\n");
    let out = run(k2, &["plan", "app.yaml", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "the new key alone opens it: {}", show(&out));
    let out = run(k1, &["state", "list"]);
    assert_eq!(out.status.code(), Some(1), "the old key no longer does: {}", show(&out));
}
