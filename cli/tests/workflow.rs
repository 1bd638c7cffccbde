//! End-to-end tests of the plan/apply workflow: the real `rosca` binary, the local state backend
//! and the embedded `local` provider, on the examples (fixtures/examples) and on this suite's
//! templates (fixtures/cli/workflow). Each test works in its own temporary directory (see
//! util/mod.rs), with ports picked free at run time, so the tests run in parallel.

mod util;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};
use util::*;

/// `actions` of every instance in a `plan --json`, by address.
fn plan_actions(plan: &Value) -> BTreeMap<String, Vec<String>> {
    plan["resource_changes"]
        .as_array()
        .expect("resource_changes")
        .iter()
        .map(|c| {
            let actions = c["change"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
            (c["address"].as_str().unwrap().to_string(), actions)
        })
        .collect()
}

/// Addresses whose actions are not `["no-op"]`, with their actions joined by `,`.
fn changed(plan: &Value) -> BTreeMap<String, String> {
    plan_actions(plan).into_iter().filter(|(_, a)| a != &["no-op"]).map(|(k, a)| (k, a.join(","))).collect()
}

fn json_plan(w: &Workdir, args: &[&str]) -> Value {
    let mut full = vec!["plan", "--json"];
    full.extend_from_slice(args);
    let out = w.ok(&full);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("plan --json is not JSON: {e}\n{out}"))
}

fn ids(w: &Workdir) -> BTreeMap<String, String> {
    resources(&w.state()).iter().map(|r| (r["address"].as_str().unwrap().to_string(), r["id"].as_str().unwrap_or("").to_string())).collect()
}

fn output_value(w: &Workdir, name: &str) -> String {
    w.ok(&["output", name]).trim().to_string()
}

#[test]
fn hello_apply_update_in_place_and_destroy() {
    let w = Workdir::new("hello");
    let t = example("hello/hello.yaml");
    let port = free_port();
    let p = format!("port={port}");

    let out = w.ok(&["apply", &t, "-i", &p, "--auto-approve"]);
    assert!(out.contains("Apply complete! Resources: 2 added, 0 changed, 0 destroyed."), "{out}");
    let url = output_value(&w, "url");
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    let page = http_get(&url).expect("the page answers after apply");
    assert!(page.contains("Hello from Rosca!"), "{page}");

    // Nothing changed: nothing to do.
    w.expect(0, &["plan", &t, "-i", &p, "--detailed-exitcode"]);

    // A new message: web is updated in place (configure re-runs), not replaced.
    let m = "message=Changed by the e2e test";
    let out = w.expect(2, &["plan", &t, "-i", &p, "-i", m, "--detailed-exitcode"]);
    let text = stdout(&out);
    assert!(text.contains("web will be updated in place"), "{text}");
    assert!(text.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{text}");
    assert_eq!(changed(&json_plan(&w, &[&t, "-i", &p, "-i", m])), BTreeMap::from([("web".to_string(), "update".to_string())]));
    let web_id = w.resource("web").unwrap()["id"].clone();
    let out = w.ok(&["apply", &t, "-i", &p, "-i", m, "--auto-approve"]);
    assert!(out.contains("0 added, 1 changed, 0 destroyed"), "{out}");
    assert_eq!(w.resource("web").unwrap()["id"], web_id, "an update keeps the instance");
    let page = http_get(&url).expect("the page answers after the update");
    assert!(page.contains("Changed by the e2e test"), "{page}");
    w.expect(0, &["plan", &t, "-i", &p, "-i", m, "--detailed-exitcode"]);

    // A new port: updated in place too; the server now answers on the new port only.
    let port2 = free_port();
    let p2 = format!("port={port2}");
    assert_eq!(changed(&json_plan(&w, &[&t, "-i", &p2, "-i", m])), BTreeMap::from([("web".to_string(), "update".to_string())]));
    w.ok(&["apply", &t, "-i", &p2, "-i", m, "--auto-approve"]);
    assert_eq!(w.resource("web").unwrap()["id"], web_id);
    let url2 = output_value(&w, "url");
    assert_eq!(url2, format!("http://127.0.0.1:{port2}/"));
    let page = http_get(&url2).expect("the page answers on the new port");
    assert!(page.contains("Changed by the e2e test"), "{page}");
    assert!(!listening(port), "the old server was stopped");
    w.expect(0, &["plan", &t, "-i", &p2, "-i", m, "--detailed-exitcode"]);

    let out = w.ok(&["destroy", "--auto-approve"]);
    assert!(out.contains("Destroy complete! Resources: 0 added, 0 changed, 2 destroyed."), "{out}");
    assert!(!listening(port2), "nothing listens after destroy");
    assert_eq!(w.sandboxes(), BTreeSet::new(), "no sandbox is left after destroy");
    assert!(resources(&w.state()).is_empty());
    assert_eq!(w.state()["outputs"], serde_json::json!({}));
}

#[test]
fn three_tier_apply_replan_destroy() {
    let w = Workdir::new("three-tier");
    let t = example("three_tier/three_tier.yaml");
    let p = format!("port={}", free_port());
    w.ok(&["apply", &t, "-i", &p, "--auto-approve"]);
    assert_eq!(w.addresses(), ["app", "app_host", "db", "db_host", "web"]);
    let outputs: Value = serde_json::from_str(&w.ok(&["output", "--json"])).unwrap();
    assert!(outputs["url"]["value"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{outputs}");
    let db_file = outputs["db_file"]["value"].as_str().expect("db_file output").to_string();
    assert!(std::path::Path::new(&db_file).is_file(), "{db_file}");
    let page = http_get(outputs["url"]["value"].as_str().unwrap()).expect("the web tier answers");
    assert!(!page.is_empty());

    w.expect(0, &["plan", &t, "-i", &p, "--detailed-exitcode"]);

    w.ok(&["destroy", "--auto-approve"]);
    assert!(w.addresses().is_empty());
    assert_eq!(w.sandboxes(), BTreeSet::new());
}

#[test]
fn scaled_out_then_in_with_removal_list() {
    let w = Workdir::new("scaled");
    let t = example("scaled/scaled.yaml");
    w.ok(&["apply", &t, "-i", "count=3", "--auto-approve"]);
    assert_eq!(w.addresses(), ["agent[0]", "agent[1]", "agent[2]", "worker[0]", "worker[1]", "worker[2]"]);
    let before = ids(&w);

    // Scale out to 5: two workers and their agents are added, nothing else is touched.
    let plan = json_plan(&w, &[&t, "-i", "count=5"]);
    let expect: BTreeMap<String, String> = ["worker[3]", "worker[4]", "agent[3]", "agent[4]"].iter().map(|a| (a.to_string(), "create".to_string())).collect();
    assert_eq!(changed(&plan), expect);
    let out = w.ok(&["apply", &t, "-i", "count=5", "--auto-approve"]);
    assert!(out.contains("Resources: 4 added, 0 changed, 0 destroyed."), "{out}");
    let after = ids(&w);
    assert_eq!(after.len(), 10);
    for (a, id) in &before {
        assert_eq!(&after[a], id, "{a} kept its id");
    }
    assert_eq!(w.sandboxes().len(), 5);

    // Scale in to 2, removing worker[1] first, then the highest indexes.
    let args = [t.as_str(), "-i", "count=2", "-i", "removal_list=[\"worker[1]\"]"];
    let plan = json_plan(&w, &args);
    let expect: BTreeMap<String, String> = ["worker[1]", "worker[3]", "worker[4]", "agent[1]", "agent[3]", "agent[4]"].iter().map(|a| (a.to_string(), "delete".to_string())).collect();
    assert_eq!(changed(&plan), expect);
    let mut apply = vec!["apply"];
    apply.extend_from_slice(&args);
    apply.push("--auto-approve");
    let out = w.ok(&apply);
    assert!(out.contains("Resources: 0 added, 0 changed, 6 destroyed."), "{out}");
    assert_eq!(w.addresses(), ["agent[0]", "agent[2]", "worker[0]", "worker[2]"]);
    let now = ids(&w);
    for a in ["agent[0]", "agent[2]", "worker[0]", "worker[2]"] {
        assert_eq!(now[a], before[a], "{a} kept its id");
    }
    assert_eq!(w.sandboxes(), referenced_sandboxes(&w.state()));
    assert_eq!(w.sandboxes().len(), 2);
    let mut plan = vec!["plan"];
    plan.extend_from_slice(&args);
    plan.push("--detailed-exitcode");
    w.expect(0, &plan);
}

#[test]
fn failing_script_taints_skips_dependent_and_recovers() {
    let w = Workdir::new("failing");
    let t = workflow_fixture("failing/failing.yaml");
    let flag = w.write("fail-now", "");
    let f = format!("fail_flag={}", flag.display());

    let out = w.expect(1, &["apply", &t, "-i", &f, "--auto-approve"]);
    let err = stderr(&out);
    assert!(err.contains("Apply failed."), "{err}");
    assert!(err.contains("Failed:    flaky: Standard.configure failed"), "{err}");
    assert!(!err.contains("flaky: flaky:"), "the address is said once:\n{err}");
    assert!(err.contains("refusing to configure while"), "the log tail is quoted:\n{err}");
    assert!(err.contains("Skipped:   dependent"), "{err}");
    let st = w.state();
    let status: BTreeMap<String, String> = resources(&st).iter().map(|r| (r["address"].as_str().unwrap().into(), r["status"].as_str().unwrap().into())).collect();
    assert_eq!(
        status,
        BTreeMap::from([
            ("flaky".into(), "tainted".into()),
            ("host".into(), "created".into()),
            ("other".into(), "created".into()),
            ("other_host".into(), "created".into()),
        ]),
        "the independent branch is created, the failure tainted, the dependent never started"
    );
    let flaky_id = w.resource("flaky").unwrap()["id"].clone();

    // Fixed: the plan replaces the tainted instance and creates the skipped one.
    std::fs::remove_file(&flag).unwrap();
    let plan = json_plan(&w, &[&t, "-i", &f]);
    let c = changed(&plan);
    assert_eq!(c.get("dependent").map(String::as_str), Some("create"), "{c:?}");
    assert!(c.get("flaky").is_some_and(|a| a.contains("delete") && a.contains("create")), "flaky is replaced: {c:?}");
    assert_eq!(c.len(), 2, "{c:?}");
    let out = w.ok(&["apply", &t, "-i", &f, "--auto-approve"]);
    assert!(out.contains("Apply complete!"), "{out}");
    assert_ne!(w.resource("flaky").unwrap()["id"], flaky_id, "the tainted instance was replaced");
    assert!(resources(&w.state()).iter().all(|r| r["status"] == "created"));
    assert_eq!(w.addresses().len(), 5);
    w.expect(0, &["plan", &t, "-i", &f, "--detailed-exitcode"]);
    w.ok(&["destroy", "--auto-approve"]);
    assert_eq!(w.sandboxes(), BTreeSet::new());
}

/// Every sandbox on disk is known to the state: referenced by path, or (a create interrupted
/// before its result was recorded) named after a `pending` create's address. Returns the
/// unknown ones.
fn unknown_sandboxes(w: &Workdir, state: &Value) -> BTreeSet<String> {
    let referenced = referenced_sandboxes(state);
    let pending: Vec<String> = resources(state)
        .iter()
        .filter(|r| r["status"] == "pending" && r["private"].is_null())
        .map(|r| safe_name(r["address"].as_str().unwrap()))
        .collect();
    w.sandboxes()
        .into_iter()
        .filter(|d| !referenced.contains(d))
        .filter(|d| {
            !pending.iter().any(|p| d.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix('-')).is_some_and(|hex| hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit())))
        })
        .collect()
}

#[test]
fn kill_9_during_apply_never_orphans_a_sandbox() {
    let w = Workdir::new("crash");
    let t = workflow_fixture("crash/crash.yaml");
    let seed = std::env::var("ROSCA_E2E_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test seed: {seed} (repeat with ROSCA_E2E_SEED={seed})");
    let mut rng = Rng::new(seed);
    let mut count = 10;
    for i in 0..15 {
        // Mostly ~20 instances; sometimes fewer, so deletes get interrupted too.
        count = [10, 10, 8, 6][rng.below(4) as usize];
        let c = format!("count={count}");
        let delay = Duration::from_millis(rng.below(1200));
        let mut child = w
            .command(&["apply", &t, "-i", &c, "--auto-approve", "--parallelism", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rosca apply");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        let ctx = format!("iteration {i} (seed {seed}, count {count}, killed after {delay:?})");
        w.ok(&["state", "list"]);
        let st = w.state();
        let file = w.path().join("rosca.state.json");
        if file.exists() {
            let text = std::fs::read_to_string(&file).unwrap();
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{ctx}: rosca.state.json does not parse: {e}"));
        }
        let unknown = unknown_sandboxes(&w, &st);
        assert!(unknown.is_empty(), "{ctx}: sandboxes unknown to the state: {unknown:?}\nstate: {st:#}");
    }

    // The next apply, not killed, converges.
    let c = format!("count={count}");
    let out = w.run(&["apply", &t, "-i", &c, "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "seed {seed}: the apply after the crashes\n{}", show(&out));
    w.expect(0, &["plan", &t, "-i", &c, "--detailed-exitcode"]);
    let st = w.state();
    assert!(resources(&st).iter().all(|r| r["status"] == "created"), "{st:#}");
    assert_eq!(resources(&st).len(), 2 * count);
    assert_eq!(w.sandboxes(), referenced_sandboxes(&st), "seed {seed}: sandboxes on disk are exactly those of the state");
    assert_eq!(w.sandboxes().len(), count);
}

#[test]
fn concurrent_apply_fails_on_the_lock_and_names_its_holder() {
    let w = Workdir::new("lock");
    let t = workflow_fixture("slow/slow.yaml");
    let first = w.command(&["apply", &t, "--auto-approve"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // The holder's LockInfo sidecar appears once the first apply holds the lock.
    let info_path = w.path().join(".rosca.state.json.lock.info");
    let start = Instant::now();
    let info: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&info_path) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                break v;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the first apply never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(info["Operation"], "apply");
    let lock_id = info["ID"].as_str().unwrap().to_string();

    let start = Instant::now();
    let second = w.run(&["apply", &t, "--auto-approve", "--lock-timeout", "1s"]);
    let took = start.elapsed();
    let first_out = first.wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", show(&second));
    assert!(took < Duration::from_secs(20), "the second apply gave up after {took:?}");
    let err = stderr(&second);
    assert!(err.contains(&lock_id), "stderr names the holder's lock ID {lock_id}:\n{err}");
    assert!(err.contains("apply"), "{err}");
    assert!(err.contains("force-unlock"), "{err}");
    assert_eq!(first_out.status.code(), Some(0), "the first apply finishes: {}", String::from_utf8_lossy(&first_out.stderr));
    assert_eq!(w.addresses(), ["box", "sleeper"]);
}

#[test]
fn saved_plans_apply_once_and_refuse_when_stale() {
    let w = Workdir::new("saved");
    let dir = w.copy_fixture("saved");
    let t = dir.join("saved.yaml").display().to_string();

    let plan: Value = serde_json::from_str(&w.ok(&["plan", &t, "--json"])).unwrap();
    assert!(plan["format_version"].is_string(), "{plan}");
    w.ok(&["plan", &t, "--out", "p1"]);
    let shown = w.ok(&["show", "p1"]);
    assert!(shown.contains("app") && shown.contains("Plan: 2 to add"), "{shown}");
    let shown: Value = serde_json::from_str(&w.ok(&["show", "--json", "p1"])).unwrap();
    assert!(shown["format_version"].is_string());
    assert_eq!(changed(&shown).len(), 2);
    let out = w.ok(&["apply", "p1"]);
    assert!(out.contains("Apply complete! Resources: 2 added"), "{out}");
    assert_eq!(w.addresses(), ["app", "box"]);
    // A saved plan applies once: the state moved on.
    let out = w.expect(1, &["apply", "p1"]);
    assert!(stderr(&out).contains("stale"), "{}", show(&out));

    // Two plans from an empty state: the first applied makes the second stale.
    let w2 = Workdir::new("saved2");
    w2.ok(&["plan", &t, "--out", "a"]);
    w2.ok(&["plan", &t, "--out", "b"]);
    w2.ok(&["apply", "a"]);
    let out = w2.expect(1, &["apply", "b"]);
    assert!(stderr(&out).contains("stale"), "{}", show(&out));
    assert_eq!(w2.addresses(), ["app", "box"]);

    // A plan made, then the script edited: the plan no longer describes what would run.
    w.ok(&["plan", &t, "-i", "greeting=bonjour", "--out", "p2"]);
    let script = dir.join("scripts/create.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, text.replace("greeting.txt", "greeting2.txt")).unwrap();
    let out = w.expect(1, &["apply", "p2"]);
    assert!(stderr(&out).contains("stale"), "{}", show(&out));
    // Re-planned, it applies.
    w.ok(&["plan", &t, "-i", "greeting=bonjour", "--out", "p3"]);
    w.ok(&["apply", "p3"]);
    w.expect(0, &["plan", &t, "-i", "greeting=bonjour", "--detailed-exitcode"]);

    // Inputs from a file: the saved plan carries their values.
    let inputs = w.write("inputs.yaml", "greeting: \"from a file\"\n").display().to_string();
    w.ok(&["plan", &t, "--inputs", &inputs, "--out", "p4"]);
    w.ok(&["apply", "p4"]);
    w.expect(0, &["plan", &t, "--inputs", &inputs, "--detailed-exitcode"]);
    let sandbox = w.resource("box").unwrap()["attributes"]["sandbox"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(std::path::Path::new(&sandbox).join("greeting2.txt")).unwrap(), "from a file\n");
}

#[test]
fn state_commands() {
    let w = Workdir::new("state");
    let t = example("scaled/scaled.yaml");
    w.ok(&["apply", &t, "-i", "count=2", "--auto-approve"]);
    assert_eq!(w.ok(&["state", "list"]).lines().collect::<Vec<_>>(), ["agent[0]", "agent[1]", "worker[0]", "worker[1]"]);
    let list: Value = serde_json::from_str(&w.ok(&["state", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    let shown = w.ok(&["state", "show", "worker[0]"]);
    assert!(shown.contains("worker[0]") && shown.contains("sandbox"), "{shown}");
    let shown: Value = serde_json::from_str(&w.ok(&["state", "show", "worker[1]", "--json"])).unwrap();
    assert_eq!(shown["address"], "worker[1]", "{shown}");
    w.expect(1, &["state", "show", "nope[7]"]);

    // pull → push round trip (same lineage and serial: accepted).
    let pulled = w.ok(&["state", "pull"]);
    let doc: Value = serde_json::from_str(&pulled).unwrap();
    let backup = w.write("backup.json", &pulled);
    let serial = doc["serial"].as_u64().unwrap();

    // mv: the instance keeps its id under the new address.
    let id = w.resource("agent[1]").unwrap()["id"].clone();
    w.ok(&["state", "mv", "agent[1]", "agent[7]"]);
    assert_eq!(w.resource("agent[7]").unwrap()["id"], id);
    assert!(w.resource("agent[1]").is_none());
    // rm: forgotten, not destroyed (its sandbox stays).
    let sandboxes = w.sandboxes();
    w.ok(&["state", "rm", "agent[7]"]);
    assert_eq!(w.addresses(), ["agent[0]", "worker[0]", "worker[1]"]);
    assert_eq!(w.sandboxes(), sandboxes);
    assert!(w.state()["serial"].as_u64().unwrap() > serial);

    // Pushing the older copy is refused without --force, accepted with it.
    let b = backup.display().to_string();
    w.expect(1, &["state", "push", &b]);
    w.ok(&["state", "push", &b, "--force"]);
    assert_eq!(w.addresses(), ["agent[0]", "agent[1]", "worker[0]", "worker[1]"]);
    w.expect(0, &["plan", &t, "-i", "count=2", "--detailed-exitcode"]);

    // Drift: a sandbox removed by hand is found by refresh and created again by apply.
    let sandbox = w.resource("worker[1]").unwrap()["attributes"]["sandbox"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(&sandbox).unwrap();
    let out = w.ok(&["refresh"]);
    assert!(out.contains("worker[1]: gone"), "{out}");
    assert!(w.resource("worker[1]").is_none());
    w.expect(2, &["plan", &t, "-i", "count=2", "--detailed-exitcode"]);
    w.ok(&["apply", "-i", "count=2", "--auto-approve"]); // the template recorded in the state
    w.expect(0, &["plan", &t, "-i", "count=2", "--detailed-exitcode"]);
    assert_eq!(w.sandboxes(), referenced_sandboxes(&w.state()));
    w.ok(&["destroy", "--auto-approve"]);
    assert_eq!(w.sandboxes(), BTreeSet::new());
}

#[test]
fn outputs_graphs_and_secrets_stay_masked() {
    let w = Workdir::new("secrets");
    let t = example("three_tier/three_tier.yaml");
    let secret = format!("pw-{}-e2e", std::process::id());
    let s = format!("db_password={secret}");
    let p = format!("port={}", free_port());
    let args = [t.as_str(), "-i", &s, "-i", &p];
    let no_secret = |what: &str, out: &std::process::Output| {
        assert!(!show(out).contains(&secret), "{what} shows the secret:\n{}", show(out));
    };

    for format in [&["--format", "human"][..], &["--json"], &["--format", "markdown"], &["--summary"]] {
        let mut cmd = vec!["plan"];
        cmd.extend_from_slice(&args);
        cmd.extend_from_slice(format);
        no_secret(&format!("plan {format:?}"), &w.expect(0, &cmd));
    }
    for format in ["dot", "mermaid"] {
        let mut cmd = vec!["graph"];
        cmd.extend_from_slice(&args);
        cmd.extend_from_slice(&["--format", format]);
        let out = w.expect(0, &cmd);
        let text = stdout(&out);
        for node in ["db_host", "db", "app_host", "app", "web"] {
            assert!(text.contains(&format!("\"{node}\"")) || text.contains(&format!("+ {node}")), "{format} graph lacks {node}:\n{text}");
        }
        no_secret("graph", &out);
    }
    w.ok(&["plan", &t, "-i", &s, "-i", &p, "--out", "tt.plan"]);
    no_secret("show PLAN", &w.expect(0, &["show", "tt.plan"]));
    no_secret("show --json PLAN", &w.expect(0, &["show", "--json", "tt.plan"]));

    let mut apply = vec!["apply"];
    apply.extend_from_slice(&args);
    apply.push("--auto-approve");
    no_secret("apply", &w.expect(0, &apply));

    no_secret("show", &w.expect(0, &["show"]));
    no_secret("show --json", &w.expect(0, &["show", "--json"]));
    no_secret("state show db", &w.expect(0, &["state", "show", "db"]));
    no_secret("state show --json db", &w.expect(0, &["state", "show", "db", "--json"]));
    no_secret("state list", &w.expect(0, &["state", "list"]));
    let out = w.expect(0, &["output"]);
    no_secret("output", &out);
    let listing = stdout(&out);
    assert!(listing.contains("url = \"http://127.0.0.1:") && listing.contains("db_file = "), "{listing}");
    no_secret("output --json", &w.expect(0, &["output", "--json"]));
    assert!(output_value(&w, "url").starts_with("http://127.0.0.1:"));
    w.expect(1, &["output", "no_such_output"]);
    // The raw state has it (that is what `state pull` is for).
    assert!(w.ok(&["state", "pull"]).contains(&secret));

    let mut replan = vec!["plan"];
    replan.extend_from_slice(&args);
    replan.push("--detailed-exitcode");
    no_secret("re-plan", &w.expect(0, &replan));
    no_secret("destroy", &w.expect(0, &["destroy", "--auto-approve"]));
}

#[test]
fn exit_codes_and_refusals() {
    let w = Workdir::new("exit");
    // An invalid template: exit 1, with located diagnostics.
    let bad = workflow_fixture("invalid.yaml");
    let out = w.expect(1, &["plan", &bad]);
    let err = stderr(&out);
    assert!(err.contains("unknown node type `example.nodes.DoesNotExist`"), "{err}");
    assert!(err.contains("invalid.yaml:11:13"), "the diagnostic is located:\n{err}");
    w.expect(1, &["apply", &bad, "--auto-approve"]);
    assert!(!w.path().join("rosca.state.json").exists(), "an invalid template changes nothing");
    // An undeclared input is invalid input too.
    w.expect(1, &["plan", &example("hello/hello.yaml"), "-i", "nope=1"]);

    // Usage errors: exit 2.
    w.expect(2, &["plan"]);
    w.expect(2, &["apply", "--no-such-flag"]);
    w.expect(2, &["plan", &example("hello/hello.yaml"), "--lock-timeout", "soon"]);
    w.expect(2, &["plan", "/nonexistent/template.yaml"]);
    w.expect(2, &["state", "frobnicate"]);

    // No terminal and no --auto-approve: the plan is shown, nothing is done.
    let t = workflow_fixture("saved/saved.yaml");
    let out = w.expect(2, &["apply", &t]);
    let err = stderr(&out);
    assert!(err.contains("--auto-approve"), "{err}");
    assert!(stdout(&out).contains("Plan: 2 to add"), "{}", show(&out));
    assert!(w.addresses().is_empty(), "nothing was applied");
    assert_eq!(w.sandboxes(), BTreeSet::new());
    w.ok(&["apply", &t, "--auto-approve"]);
    let out = w.expect(2, &["destroy"]);
    assert!(stderr(&out).contains("--auto-approve"), "{}", show(&out));
    assert_eq!(w.addresses(), ["app", "box"]);

    // plan --detailed-exitcode on changes: 2; on errors: 1.
    w.expect(2, &["plan", &t, "-i", "greeting=hi", "--detailed-exitcode"]);
    w.expect(1, &["plan", &bad, "--detailed-exitcode"]);
}
