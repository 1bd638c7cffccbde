//! The CLI on every state backend (`[backend]` of rosca.toml), through the real binary: two
//! working directories (two team members) share one state on the local file, PostgreSQL, etcd,
//! S3 (started by scripts/test.sh: ROSCA_TEST_PG_URL, ROSCA_TEST_ETCD_ENDPOINTS,
//! ROSCA_TEST_S3_ENDPOINT) and the HTTP backend against a `rosca serve` the test starts.

mod util;
#[path = "util/state_server.rs"]
mod state_server;

use serde_json::json;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::{show, stderr, stdout, Workdir};

const TEMPLATE: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  inputs:\n    n: { type: integer, default: 2 }\n  node_templates:\n    app:\n      type: tosca.nodes.Compute\n      capabilities:\n        scalable: { properties: { default_instances: { get_input: n } } }\n";

/// A component whose create writes its PID to `pidfile` and sleeps: its apply holds the lock.
const SLOW: &str = "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  inputs:\n    pidfile: { type: string }\n  node_templates:\n    box:\n      type: tosca.nodes.Compute\n    sleeper:\n      type: tosca.nodes.SoftwareComponent\n      requirements:\n        - host: box\n      interfaces:\n        Standard:\n          create:\n            implementation: sleep.sh\n            inputs:\n              PIDFILE: { get_input: pidfile }\n";
const SLEEP_SH: &str = "#!/bin/sh\nset -eu\necho $$ > \"$PIDFILE.tmp\"\nmv \"$PIDFILE.tmp\" \"$PIDFILE\"\nexec sleep 60\n";

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// One backend under test: the `[backend]` table, and what must live as long as it (the local
/// state's directory, the `rosca serve` process).
struct Backend {
    kind: &'static str,
    table: String,
    _keep: Option<Box<dyn std::any::Any>>,
}

/// Every backend, each on a state of its own: local, and those whose service the run provides
/// (all of them under scripts/test.sh), and http on a `rosca serve` started here.
fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.state.json");
    out.push(Backend { kind: "local", table: format!("kind = \"local\"\npath = \"{}\"\n", path.display()), _keep: Some(Box::new(dir)) });
    match var("ROSCA_TEST_PG_URL") {
        Some(url) => out.push(Backend { kind: "postgres", table: format!("kind = \"postgres\"\nurl = \"{url}\"\nname = \"{}\"\n", unique("cli")), _keep: None }),
        None => assert_eq!(var("ROSCA_SKIP_PG").as_deref(), Some("1"), "ROSCA_TEST_PG_URL is not set: run scripts/test.sh or set ROSCA_SKIP_PG=1"),
    }
    match var("ROSCA_TEST_ETCD_ENDPOINTS") {
        Some(e) => out.push(Backend { kind: "etcd", table: format!("kind = \"etcd\"\nendpoints = [\"{e}\"]\nname = \"{}\"\n", unique("cli")), _keep: None }),
        None => assert_eq!(var("ROSCA_SKIP_ETCD").as_deref(), Some("1"), "ROSCA_TEST_ETCD_ENDPOINTS is not set: run scripts/test.sh or set ROSCA_SKIP_ETCD=1"),
    }
    match var("ROSCA_TEST_S3_ENDPOINT") {
        Some(e) => {
            let bucket = "rosca-cli-tests";
            // moto answers an unsigned bucket creation; a real S3 would need it signed.
            let _ = reqwest::blocking::Client::new().put(format!("{e}/{bucket}")).send();
            out.push(Backend {
                kind: "s3",
                table: format!("kind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{e}\"\nregion = \"us-east-1\"\nname = \"{}\"\n", unique("cli")),
                _keep: None,
            });
        }
        None => assert_eq!(var("ROSCA_SKIP_S3").as_deref(), Some("1"), "ROSCA_TEST_S3_ENDPOINT is not set: run scripts/test.sh or set ROSCA_SKIP_S3=1"),
    }
    // A short lock TTL: a holder that is alive must keep its lock by renewing it.
    let server = state_server::serve("[server]\nstate_lock_ttl = \"3s\"\n", true);
    out.push(Backend { kind: "http", table: format!("kind = \"http\"\nurl = \"{}/state/{}\"\n", server.base, unique("cli")), _keep: Some(Box::new(server)) });
    out
}

/// Two working directories (alice, bob) on the backend's state, with `files` in each.
fn pair(b: &Backend, files: &[(&str, &str)]) -> (Workdir, Workdir) {
    let (alice, bob) = (Workdir::new(&format!("{}-alice", b.kind)), Workdir::new(&format!("{}-bob", b.kind)));
    for w in [&alice, &bob] {
        w.write("rosca.toml", &format!("[backend]\n{}", b.table));
        for (name, text) in files {
            w.write(name, text);
        }
    }
    (alice, bob)
}

/// `rosca ARGS` in `w`, with S3 credentials in the environment (moto takes any).
fn cmd(w: &Workdir, args: &[&str]) -> Command {
    let mut c = w.command(args);
    c.env("AWS_ACCESS_KEY_ID", std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("test".into()))
        .env("AWS_SECRET_ACCESS_KEY", std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("test".into()))
        .env("AWS_REGION", "us-east-1");
    c
}

fn run(w: &Workdir, args: &[&str]) -> Output {
    cmd(w, args).output().unwrap()
}

/// Runs `rosca ARGS` and asserts the exit code.
fn expect(kind: &str, w: &Workdir, code: i32, args: &[&str]) -> Output {
    let out = run(w, args);
    assert_eq!(out.status.code(), Some(code), "{kind}: rosca {}\n{}", args.join(" "), show(&out));
    out
}

fn pull(kind: &str, w: &Workdir) -> Vec<u8> {
    expect(kind, w, 0, &["state", "pull"]).stdout
}

#[test]
fn two_working_directories_share_one_state_on_every_backend() {
    for b in backends() {
        let kind = b.kind;
        let (alice, bob) = pair(&b, &[("app.yaml", TEMPLATE)]);
        expect(kind, &alice, 0, &["apply", "app.yaml", "--auto-approve"]);
        assert!(!alice.path().join("rosca.state.json").exists(), "{kind}: the state is not in the working directory");
        // Bob sees Alice's resources: nothing to do.
        expect(kind, &bob, 0, &["plan", "app.yaml", "--detailed-exitcode"]);
        let out = expect(kind, &bob, 0, &["state", "list"]);
        assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), vec!["app[0]", "app[1]"], "{kind}: {}", show(&out));
        // Bob scales out; Alice's next plan starts from Bob's state.
        expect(kind, &bob, 0, &["apply", "app.yaml", "-i", "n=3", "--auto-approve"]);
        expect(kind, &alice, 0, &["plan", "app.yaml", "-i", "n=3", "--detailed-exitcode"]);
        expect(kind, &alice, 0, &["destroy", "app.yaml", "--auto-approve"]);
        let out = pull(kind, &bob);
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|_| panic!("{kind}: {}", String::from_utf8_lossy(&out)));
        assert_eq!(doc["resources"], json!([]), "{kind}");
    }
}

#[test]
fn a_saved_plan_is_refused_once_another_apply_changed_the_state_on_every_backend() {
    for b in backends() {
        let kind = b.kind;
        let (alice, bob) = pair(&b, &[("app.yaml", TEMPLATE)]);
        expect(kind, &alice, 0, &["apply", "app.yaml", "--auto-approve"]);
        expect(kind, &alice, 0, &["plan", "app.yaml", "-i", "n=3", "--out", "saved.plan"]);
        expect(kind, &bob, 0, &["apply", "app.yaml", "-i", "n=4", "--auto-approve"]);
        let before = pull(kind, &bob);
        let out = expect(kind, &alice, 1, &["apply", "saved.plan"]);
        let err = stderr(&out);
        assert!(err.contains("Saved plan is stale") && err.contains("plan made at serial 1, state is now at serial 2"), "{kind}: {}", show(&out));
        assert!(err.contains("rosca plan"), "{kind}: the message says what to do: {err}");
        assert_eq!(pull(kind, &alice), before, "{kind}: nothing changed");
        let listed = stdout(&expect(kind, &alice, 0, &["state", "list"]));
        assert_eq!(listed.lines().collect::<Vec<_>>(), ["app[0]", "app[1]", "app[2]", "app[3]"], "{kind}");
    }
}

/// `state pull` prints the document, `state push` replaces it but refuses (without `--force`)
/// another lineage, an older serial, or other content under the same serial; `state list`.
#[test]
fn state_pull_push_and_list_on_every_backend() {
    for b in backends() {
        let kind = b.kind;
        let (alice, bob) = pair(&b, &[("app.yaml", TEMPLATE)]);
        expect(kind, &alice, 0, &["apply", "app.yaml", "--auto-approve"]);
        let pulled = pull(kind, &bob);
        let doc: serde_json::Value = serde_json::from_slice(&pulled).unwrap();
        assert_eq!(doc["serial"], 1, "{kind}: {doc}");
        assert_eq!(stdout(&expect(kind, &bob, 0, &["state", "list"])).lines().collect::<Vec<_>>(), ["app[0]", "app[1]"], "{kind}");
        // The same document again: accepted, nothing changes.
        bob.write("same.json", std::str::from_utf8(&pulled).unwrap());
        expect(kind, &bob, 0, &["state", "push", "same.json"]);
        assert_eq!(pull(kind, &alice), pulled, "{kind}");

        let variant = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut d = doc.clone();
            edit(&mut d);
            serde_json::to_string_pretty(&d).unwrap()
        };
        let refused = [
            ("lineage.json", variant(&|d| d["lineage"] = json!("another-lineage")), "lineage another-lineage differs"),
            ("older.json", variant(&|d| d["serial"] = json!(0)), "serial 0 is older than the current state's 1"),
            (
                "same-serial.json",
                variant(&|d| {
                    d["resources"].as_array_mut().unwrap().pop();
                }),
                "has the same serial 1 as the current state but other content",
            ),
        ];
        for (file, text, says) in &refused {
            bob.write(file, text);
            let out = expect(kind, &bob, 1, &["state", "push", file]);
            assert!(stderr(&out).contains(says) && stderr(&out).contains("--force"), "{kind} {file}: {}", show(&out));
            assert_eq!(pull(kind, &alice), pulled, "{kind} {file}: a refused push changes nothing");
        }
        // A newer serial of the same lineage is a normal push.
        bob.write("newer.json", &variant(&|d| {
            d["serial"] = json!(5);
            d["resources"].as_array_mut().unwrap().pop();
        }));
        let out = expect(kind, &bob, 0, &["state", "push", "newer.json"]);
        assert!(stdout(&out).contains("State replaced (1 resources, serial 5)"), "{kind}: {}", show(&out));
        assert_eq!(stdout(&expect(kind, &alice, 0, &["state", "list"])).lines().collect::<Vec<_>>(), ["app[0]"], "{kind}");
        // --force replaces even another lineage.
        expect(kind, &bob, 0, &["state", "push", "lineage.json", "--force"]);
        let now: serde_json::Value = serde_json::from_slice(&pull(kind, &alice)).unwrap();
        assert_eq!(now["lineage"], "another-lineage", "{kind}");
        // From stdin too.
        let mut c = cmd(&bob, &["state", "push", "-", "--force"]);
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &pulled).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        assert_eq!(pull(kind, &alice), pulled, "{kind}");
    }
}

/// `rosca apply` of the slow template in `w`, running until killed; returns once its create
/// script runs (so the apply holds the lock), with the script's PID.
struct SlowApply {
    child: Child,
    script: Option<i32>,
}

impl SlowApply {
    fn start(kind: &str, w: &Workdir) -> SlowApply {
        let pidfile = w.path().join("sleeper.pid");
        let _ = std::fs::remove_file(&pidfile);
        let p = pidfile.display().to_string();
        let child = cmd(w, &["apply", "slow.yaml", "-i", &format!("pidfile={p}"), "--auto-approve"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut me = SlowApply { child, script: None };
        let start = Instant::now();
        while me.script.is_none() {
            me.script = std::fs::read_to_string(&pidfile).ok().and_then(|t| t.trim().parse().ok());
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("{kind}: the slow apply ended early: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{kind}: the slow apply never ran its create script");
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// SIGKILL: no unlock runs.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SlowApply {
    fn drop(&mut self) {
        self.kill();
        // The script runs in a process group of its own and outlives a killed rosca.
        if let Some(pid) = self.script.take() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
}

/// The lock error another command gets while `holder` applies: the holder's LockInfo and the
/// exact force-unlock command. Returns the lock's ID.
fn lock_error_names_the_holder(kind: &str, w: &Workdir) -> String {
    let out = expect(kind, w, 1, &["plan", "slow.yaml", "-i", "pidfile=/nonexistent"]);
    let err = stderr(&out);
    assert!(err.contains("Error acquiring the state lock"), "{kind}: {err}");
    let id = err.lines().find_map(|l| l.trim().strip_prefix("ID:")).map(|s| s.trim().to_string()).unwrap_or_else(|| panic!("{kind}: no ID line: {err}"));
    assert!(uuid_like(&id), "{kind}: the ID line holds a lock ID: {id}");
    for line in ["Lock Info:", "Operation: apply", "Who:", "Version:", "Created:", "Path:"] {
        assert!(err.contains(line), "{kind}: the lock error shows {line}: {err}");
    }
    assert!(err.contains(&format!("`rosca state force-unlock {id}`")), "{kind}: the exact command: {err}");
    id
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// While a live holder applies: another working directory gets the lock error; force-unlock
/// with a wrong ID is refused naming the real one; force-unlock with the right ID breaks the
/// lock (the local OS lock cannot be broken from outside: refused, saying the holder runs).
#[test]
fn force_unlock_of_a_lock_held_by_another_process_on_every_backend() {
    for b in backends() {
        let kind = b.kind;
        let (alice, bob) = pair(&b, &[("slow.yaml", SLOW), ("sleep.sh", SLEEP_SH)]);
        let mut holder = SlowApply::start(kind, &alice);
        let id = lock_error_names_the_holder(kind, &bob);
        let out = expect(kind, &bob, 1, &["state", "force-unlock", "00000000-0000-4000-8000-000000000000", "--force"]);
        assert!(stderr(&out).contains(&id), "{kind}: a wrong ID is refused, naming the real one: {}", show(&out));
        let out = run(&bob, &["state", "force-unlock", &id, "--force"]);
        if kind == "local" {
            assert_eq!(out.status.code(), Some(1), "{kind}: {}", show(&out));
            assert!(stderr(&out).contains("still running"), "{kind}: {}", show(&out));
            holder.kill();
            // Once the holder is gone, the OS lock is free; force-unlock clears its record.
            expect(kind, &bob, 0, &["state", "force-unlock", &id, "--force"]);
        } else {
            assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
            assert!(stdout(&out).contains(&format!("The state has been unlocked (lock {id})")), "{kind}: {}", show(&out));
        }
        // The lock is free at once for the next run.
        let out = run(&bob, &["plan", "slow.yaml", "-i", "pidfile=/nonexistent", "--detailed-exitcode"]);
        assert_ne!(out.status.code(), Some(1), "{kind}: {}", show(&out));
        drop(holder);
    }
}

/// A holder killed with SIGKILL mid-apply leaves its lock behind (until the service frees it:
/// at once on local and PostgreSQL, after a TTL on etcd, S3 and http): force-unlock with the
/// ID from the lock error frees it at once, and nothing the holder recorded is lost.
#[test]
fn force_unlock_of_a_lock_left_by_a_killed_holder_on_every_backend() {
    for b in backends() {
        let kind = b.kind;
        let (alice, bob) = pair(&b, &[("slow.yaml", SLOW), ("sleep.sh", SLEEP_SH)]);
        let mut holder = SlowApply::start(kind, &alice);
        let id = lock_error_names_the_holder(kind, &bob);
        holder.kill();
        let out = run(&bob, &["state", "force-unlock", &id, "--force"]);
        if kind == "postgres" {
            // The session died with the process, and its advisory lock with it.
            assert_eq!(out.status.code(), Some(1), "{kind}: {}", show(&out));
            assert!(stderr(&out).contains("not locked"), "{kind}: {}", show(&out));
        } else {
            assert_eq!(out.status.code(), Some(0), "{kind}: {}", show(&out));
        }
        // What the killed apply recorded before its provider call is there: box created, and
        // sleeper pending (write-ahead), so the next plan knows about both.
        let doc: serde_json::Value = serde_json::from_slice(&pull(kind, &bob)).unwrap();
        let status = |a: &str| doc["resources"].as_array().unwrap().iter().find(|r| r["address"] == a).map(|r| r["status"].clone());
        assert_eq!(status("box"), Some(json!("created")), "{kind}: {doc}");
        assert_eq!(status("sleeper"), Some(json!("pending")), "{kind}: {doc}");
        let start = Instant::now();
        let out = run(&bob, &["plan", "slow.yaml", "-i", "pidfile=/nonexistent", "--detailed-exitcode"]);
        assert_ne!(out.status.code(), Some(1), "{kind}: the lock is free: {}", show(&out));
        assert!(start.elapsed() < Duration::from_secs(5), "{kind}: no wait for a TTL: {:?}", start.elapsed());
        drop(holder);
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
