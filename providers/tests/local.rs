//! The local provider against real processes and files.

#[path = "support/recorded.rs"]
mod recorded;

use providers::{ApplyRequest, HostRef, LocalProvider, OperationSpec, Provider, Realized, RelationshipSpec, Resolver};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Returns values unchanged, except `{"$expr": {"get_attribute": ["SELF", name]}}`, taken from
/// the instance's own attributes known so far.
struct TestResolver;

impl Resolver for TestResolver {
    fn resolve(
        &self,
        value: &Value,
        self_attributes: &Map<String, Value>,
        _self_outputs: &BTreeMap<String, Map<String, Value>>,
    ) -> Result<Value, String> {
        let Some(args) = value.pointer("/$expr/get_attribute").and_then(Value::as_array) else {
            return Ok(value.clone());
        };
        match (args.first().and_then(Value::as_str), args.get(1).and_then(Value::as_str)) {
            (Some("SELF"), Some(name)) => {
                self_attributes.get(name).cloned().ok_or_else(|| format!("SELF has no attribute `{name}` yet"))
            }
            _ => Err("unsupported get_attribute".to_string()),
        }
    }
}

const COMPUTE: &str = "tosca.nodes.Compute";
const ROOT: &str = "tosca.nodes.Root";

fn req(workdir: &Path, address: &str, types: &[&str]) -> ApplyRequest {
    let node = address.split('[').next().unwrap().to_string();
    ApplyRequest {
        address: address.to_string(),
        node,
        index: None,
        types: types.iter().map(|t| t.to_string()).collect(),
        config: json!({"properties": {}, "capabilities": {}}),
        operations: BTreeMap::new(),
        relationships: Vec::new(),
        hosts: Vec::new(),
        workdir: workdir.to_path_buf(),
        timeout: Duration::from_secs(30),
        resolver: Arc::new(TestResolver),
        status: Default::default(),
    }
}

fn state_of(req: &ApplyRequest, r: &Realized) -> ResourceState {
    recorded::recorded(req, r, "local")
}

fn host_ref(address: &str, r: &Realized) -> HostRef {
    HostRef { address: address.to_string(), attributes: r.attributes.clone() }
}

/// Writes an executable-free script (`sh` runs it) and returns its path.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn op(path: &Path) -> OperationSpec {
    OperationSpec { implementation: Some(path.to_path_buf()), ..OperationSpec::default() }
}

fn op_with(path: &Path, inputs: Value) -> OperationSpec {
    OperationSpec {
        implementation: Some(path.to_path_buf()),
        inputs: inputs.as_object().unwrap().clone(),
        ..OperationSpec::default()
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

fn attr<'a>(r: &'a Realized, name: &str) -> &'a str {
    r.attributes.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("no attribute {name}: {:?}", r.attributes))
}

/// A live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

async fn eventually_dead(pid: u32) -> bool {
    for _ in 0..50 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn compute(p: &LocalProvider, work: &Path, address: &str) -> (ApplyRequest, Realized) {
    let r = req(work, address, &[COMPUTE, ROOT]);
    let realized = p.create(&r).await.expect("compute create");
    (r, realized)
}

#[tokio::test]
async fn compute_sandbox_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    let p = LocalProvider::new();
    let (r, c) = compute(&p, tmp.path(), "server[0]").await;
    assert!(c.id.starts_with("local-"));
    let sandbox = PathBuf::from(attr(&c, "sandbox"));
    assert!(sandbox.is_absolute() && sandbox.is_dir(), "{sandbox:?}");
    assert!(sandbox.starts_with(tmp.path().join("sandboxes")));
    assert!(sandbox.file_name().unwrap().to_str().unwrap().starts_with("server-0-"));
    assert_eq!(attr(&c, "private_address"), "127.0.0.1");
    assert_eq!(attr(&c, "public_address"), "127.0.0.1");
    assert_eq!(attr(&c, "tosca_id"), c.id);
    assert_eq!(attr(&c, "tosca_name"), "server");
    assert_eq!(attr(&c, "state"), "started");

    let prior = state_of(&r, &c);
    let read = p.read(&prior).await.unwrap().expect("exists");
    assert_eq!(read.id, c.id);
    assert_eq!(read.attributes.get("sandbox"), c.attributes.get("sandbox"));

    // An update keeps the sandbox.
    let u = p.update(&prior, &r, &[]).await.unwrap();
    assert_eq!(u.id, c.id);
    assert_eq!(attr(&u, "sandbox"), attr(&c, "sandbox"));

    p.delete(&prior).await.unwrap();
    assert!(!sandbox.exists());
    assert_eq!(p.read(&prior).await.unwrap(), None);
    p.delete(&prior).await.expect("deleting what is gone succeeds");
}

#[tokio::test]
async fn read_reports_drift_when_sandbox_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let p = LocalProvider::new();
    let (hr, host) = compute(&p, tmp.path(), "host").await;
    let mut r = req(tmp.path(), "app", &["my.App", "tosca.nodes.SoftwareComponent", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), op(&script(scripts.path(), "create.sh", "true\n")));
    let app = p.create(&r).await.unwrap();
    let app_prior = state_of(&r, &app);
    assert!(p.read(&app_prior).await.unwrap().is_some());

    std::fs::remove_dir_all(attr(&host, "sandbox")).unwrap();
    assert_eq!(p.read(&state_of(&hr, &host)).await.unwrap(), None);
    assert_eq!(p.read(&app_prior).await.unwrap(), None);
    // Nothing left to stop: deletes succeed.
    p.delete(&app_prior).await.unwrap();
    p.delete(&state_of(&hr, &host)).await.unwrap();
}

#[tokio::test]
async fn software_component_full_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let s = scripts.path();
    let order = s.join("order.txt");
    let p = LocalProvider::new();
    let (_, host) = compute(&p, tmp.path(), "host").await;
    let sandbox = PathBuf::from(attr(&host, "sandbox"));

    let append = format!("echo \"$ROSCA_OPERATION $(pwd)\" >> {}\n", order.display());
    let create = script(s, "create.sh", &format!("{append}echo ip=10.0.0.7 >> \"$ROSCA_OUTPUTS\"\necho \"port=$PORT name=$NAME flags=$FLAGS\" > inputs.txt\n"));
    let configure = script(s, "configure.sh", &format!("{append}echo \"$ADDR\" > addr.txt\necho configured=yes >> \"$ROSCA_OUTPUTS\"\n"));
    let start = script(
        s,
        "start.sh",
        &format!("{append}nohup sleep 30 > /dev/null 2>&1 &\necho $! > server.pid\necho started in background\n"),
    );
    let stop = script(s, "stop.sh", &format!("{append}kill \"$(cat server.pid)\"\necho \"$WHO\" > stopped-by.txt\n"));
    let delete = script(s, "delete.sh", &format!("{append}rm -f server.pid\n"));

    let mut r = req(tmp.path(), "app", &["my.App", "tosca.nodes.SoftwareComponent", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), op_with(&create, json!({"PORT": 8080, "NAME": "web", "FLAGS": ["a", "b"]})));
    r.operations.insert(
        "configure".into(),
        op_with(&configure, json!({"ADDR": {"$expr": {"get_attribute": ["SELF", "ip"]}}})),
    );
    r.operations.insert("start".into(), op(&start));
    r.operations.insert("stop".into(), op_with(&stop, json!({"WHO": {"$expr": {"get_attribute": ["SELF", "tosca_name"]}}})));
    r.operations.insert("delete".into(), op(&delete));

    let began = Instant::now();
    let app = tokio::time::timeout(Duration::from_secs(20), p.create(&r))
        .await
        .expect("a background server must not keep create waiting")
        .expect("create");
    assert!(began.elapsed() < Duration::from_secs(20));

    let sb = sandbox.display().to_string();
    assert_eq!(
        lines(&order),
        vec![format!("Standard.create {sb}"), format!("Standard.configure {sb}"), format!("Standard.start {sb}")]
    );
    assert_eq!(std::fs::read_to_string(sandbox.join("inputs.txt")).unwrap().trim(), "port=8080 name=web flags=[\"a\",\"b\"]");
    assert_eq!(std::fs::read_to_string(sandbox.join("addr.txt")).unwrap().trim(), "10.0.0.7", "get_attribute of a create output");
    assert_eq!(app.outputs["Standard.create"]["ip"], json!("10.0.0.7"));
    assert_eq!(app.outputs["Standard.configure"]["configured"], json!("yes"));
    assert_eq!(attr(&app, "ip"), "10.0.0.7");
    assert_eq!(attr(&app, "state"), "started");
    let log = sandbox.join(".rosca-logs/app/Standard.start.log");
    assert!(std::fs::read_to_string(&log).unwrap().contains("started in background"));

    let pid: u32 = std::fs::read_to_string(sandbox.join("server.pid")).unwrap().trim().parse().unwrap();
    assert!(alive(pid), "the background server survives the start script");

    // The template no longer has the node: delete works from the state alone.
    let prior = state_of(&r, &app);
    drop(r);
    p.delete(&prior).await.expect("delete");
    assert!(eventually_dead(pid).await, "stop killed the server");
    assert_eq!(std::fs::read_to_string(sandbox.join("stopped-by.txt")).unwrap().trim(), "app");
    assert!(!sandbox.join("server.pid").exists());
    let l = lines(&order);
    assert_eq!(l[3..], [format!("Standard.stop {sb}"), format!("Standard.delete {sb}")]);
    assert!(sandbox.is_dir(), "a component's delete leaves its host's sandbox");
}

#[tokio::test]
async fn failures_carry_log_tail_and_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let s = scripts.path();
    let p = LocalProvider::new();
    let (_, host) = compute(&p, tmp.path(), "host").await;

    let ok = script(s, "ok.sh", "echo fine\n");
    let bad = script(s, "bad.sh", "for i in $(seq 1 40); do echo noise-$i; done\necho 'boom: cannot configure' >&2\nexit 3\n");
    let stop = script(s, "stop.sh", "echo stopping\n");

    // Fails after create: partial, so the state keeps it (tainted) with what delete needs.
    let mut r = req(tmp.path(), "app[1]", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), op(&ok));
    r.operations.insert("configure".into(), op_with(&bad, json!({"PASSWORD": "s3cret-value"})));
    r.operations.insert("stop".into(), op(&stop));
    let e = p.create(&r).await.unwrap_err();
    let m = &e.message;
    assert!(m.contains("app[1]"), "{m}");
    assert!(m.contains("Standard.configure"), "{m}");
    assert!(m.contains(&bad.display().to_string()), "{m}");
    assert!(m.contains("code 3"), "{m}");
    assert!(m.contains("boom: cannot configure"), "{m}");
    assert!(m.contains("noise-40") && !m.contains("noise-5\n"), "only the tail: {m}");
    assert!(!m.contains("s3cret-value"), "no input values in errors: {m}");
    let partial = e.partial.expect("failed after create: partial");
    assert!(partial.id.starts_with("local-"));
    assert_eq!(partial.attributes["state"], json!("error"));
    assert!(partial.private["operations"]["stop"].is_object(), "{:?}", partial.private);
    // The tainted resource can be deleted.
    p.delete(&state_of(&r, &partial)).await.unwrap();

    // Fails in create itself: nothing to keep.
    let mut r = req(tmp.path(), "other", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), op(&bad));
    let e = p.create(&r).await.unwrap_err();
    assert!(e.partial.is_none());
    assert!(e.message.contains("Standard.create"), "{}", e.message);
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let s = scripts.path();
    let p = LocalProvider::new();
    let (_, host) = compute(&p, tmp.path(), "host").await;
    let sandbox = PathBuf::from(attr(&host, "sandbox"));

    let slow = script(s, "slow.sh", "sleep 10 &\necho $! > child.pid\nsleep 10\n");
    let mut r = req(tmp.path(), "slow", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), OperationSpec { timeout: Some(1), ..op(&slow) });
    let began = Instant::now();
    let e = p.create(&r).await.unwrap_err();
    assert!(e.message.contains("timed out"), "{}", e.message);
    assert!(began.elapsed() < Duration::from_secs(9));
    let pid: u32 = std::fs::read_to_string(sandbox.join("child.pid")).unwrap().trim().parse().unwrap();
    assert!(eventually_dead(pid).await, "the script's background child was killed with it");

    // The request's default applies when the operation has none.
    let mut r = req(tmp.path(), "slow2", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.timeout = Duration::from_secs(1);
    r.operations.insert("create".into(), op(&script(s, "slow2.sh", "sleep 10\n")));
    assert!(p.create(&r).await.unwrap_err().message.contains("timed out"));
}

#[tokio::test]
async fn relationship_operations_run_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let s = scripts.path();
    let order = s.join("order.txt");
    let p = LocalProvider::new();
    let (_, web_host) = compute(&p, tmp.path(), "web_host").await;
    let (_, db_host) = compute(&p, tmp.path(), "db_host").await;
    let append = script(s, "append.sh", &format!("echo \"$ROSCA_OPERATION $(pwd) $ROSCA_TARGET\" >> {}\n", order.display()));

    let mut r = req(tmp.path(), "app", &["my.App", ROOT]);
    r.hosts = vec![host_ref("web_host", &web_host)];
    for o in ["create", "configure", "start"] {
        r.operations.insert(o.into(), op(&append));
    }
    let mut rel = RelationshipSpec {
        requirement: "database".into(),
        type_name: "tosca.relationships.ConnectsTo".into(),
        target: "db".into(),
        target_attributes: Map::new(),
        target_host: Some(host_ref("db_host", &db_host)),
        operations: BTreeMap::new(),
    };
    for o in ["add_source", "add_target", "post_configure_target", "post_configure_source", "pre_configure_target", "pre_configure_source"] {
        rel.operations.insert(o.into(), op(&append));
    }
    r.relationships.push(rel);
    let app = p.create(&r).await.unwrap();

    let web = attr(&web_host, "sandbox");
    let db = attr(&db_host, "sandbox");
    let expected = [
        format!("Standard.create {web} db"),
        format!("Configure.pre_configure_source {web} db"),
        format!("Configure.pre_configure_target {db} db"),
        format!("Standard.configure {web} db"),
        format!("Configure.post_configure_source {web} db"),
        format!("Configure.post_configure_target {db} db"),
        format!("Standard.start {web} db"),
        format!("Configure.add_target {web} db"),
        format!("Configure.add_source {db} db"),
    ];
    let got = lines(&order);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        // Standard ops have no ROSCA_TARGET: compare the leading part.
        assert!(g.starts_with(e.trim_end_matches(" db")), "{g} vs {e}");
    }
    assert!(got[2].ends_with(" db") && got[8].ends_with(" db"));
    assert!(Path::new(web).join(".rosca-logs/app/Configure.add_source.database.db.log").is_file());
    assert_eq!(app.attributes["state"], json!("started"));
}

#[tokio::test]
async fn update_reruns_only_listed_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let s = scripts.path();
    let order = s.join("order.txt");
    let p = LocalProvider::new();
    let (_, host) = compute(&p, tmp.path(), "host").await;
    let sandbox = PathBuf::from(attr(&host, "sandbox"));
    let record = script(
        s,
        "record.sh",
        &format!("echo \"$ROSCA_OPERATION $GREETING\" >> {}\necho last=$ROSCA_OPERATION >> \"$ROSCA_OUTPUTS\"\n", order.display()),
    );
    let create = script(s, "create.sh", &format!("echo Standard.create >> {}\necho made=1 >> \"$ROSCA_OUTPUTS\"\n", order.display()));

    let mut r = req(tmp.path(), "app", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), op(&create));
    for o in ["configure", "start", "stop"] {
        r.operations.insert(o.into(), op_with(&record, json!({"GREETING": "hello"})));
    }
    let app = p.create(&r).await.unwrap();
    assert_eq!(lines(&order).len(), 3);

    for o in ["configure", "start", "stop"] {
        r.operations.insert(o.into(), op_with(&record, json!({"GREETING": "bonjour"})));
    }
    let prior = state_of(&r, &app);
    let u = p.update(&prior, &r, &["configure".to_string()]).await.unwrap();
    assert_eq!(lines(&order)[3..], ["Standard.configure bonjour"]);
    assert_eq!(u.id, app.id);
    assert_eq!(u.outputs["Standard.create"]["made"], json!("1"), "earlier outputs kept");
    assert_eq!(u.outputs["Standard.configure"]["last"], json!("Standard.configure"));

    let ops: Vec<String> = ["configure", "stop", "start"].iter().map(|s| s.to_string()).collect();
    let u2 = p.update(&state_of(&r, &u), &r, &ops).await.unwrap();
    assert_eq!(
        lines(&order)[4..],
        ["Standard.configure bonjour", "Standard.stop bonjour", "Standard.start bonjour"]
    );
    assert_eq!(u2.id, app.id);
    // The stored stop has the new inputs.
    assert_eq!(u2.private["operations"]["stop"]["inputs"]["GREETING"], json!("bonjour"));
    assert!(sandbox.join(".rosca-logs/app/Standard.configure.log").is_file());

    // A failing update keeps the resource, tainted.
    r.operations.insert("configure".into(), op(&script(s, "bad.sh", "echo nope; exit 1\n")));
    let e = p.update(&state_of(&r, &u2), &r, &["configure".to_string()]).await.unwrap_err();
    assert_eq!(e.partial.expect("partial").id, app.id);
}

#[tokio::test]
async fn delete_uses_private_even_when_artifacts_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("deleted.txt");
    let p = LocalProvider::new();
    let (_, host) = compute(&p, tmp.path(), "host").await;
    let del = script(scripts.path(), "delete.sh", &format!("echo \"$TOKEN\" > {}\n", marker.display()));
    let mut r = req(tmp.path(), "app", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("delete".into(), op_with(&del, json!({"TOKEN": {"$expr": {"get_attribute": ["SELF", "tosca_id"]}}})));
    let app = p.create(&r).await.unwrap();
    let prior = state_of(&r, &app);
    drop(r);
    drop(scripts); // the unpacked CSAR is gone
    p.delete(&prior).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), app.id);
}

#[tokio::test]
async fn failing_stop_fails_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let p = LocalProvider::new();
    let stop = script(scripts.path(), "stop.sh", "echo 'still running, cannot stop'\nexit 7\n");
    // A component without host: its own sandbox.
    let mut r = req(tmp.path(), "lonely", &["my.App", ROOT]);
    r.operations.insert("stop".into(), op(&stop));
    let app = p.create(&r).await.unwrap();
    let own = PathBuf::from(attr(&app, "sandbox"));
    assert!(own.is_dir());
    let e = p.delete(&state_of(&r, &app)).await.unwrap_err();
    assert!(e.message.contains("Standard.stop") && e.message.contains("code 7"), "{}", e.message);
    assert!(e.message.contains("still running, cannot stop"), "{}", e.message);
    assert!(own.is_dir(), "nothing removed when stop fails");

    std::fs::write(&stop, "true\n").unwrap();
    p.delete(&state_of(&r, &app)).await.unwrap();
    assert!(!own.exists(), "its own sandbox is removed");
}

#[tokio::test]
async fn block_storage_records_size() {
    let tmp = tempfile::tempdir().unwrap();
    let p = LocalProvider::new();
    for ty in ["tosca.nodes.BlockStorage", "tosca.nodes.Storage.BlockStorage"] {
        let mut r = req(tmp.path(), "vol", &[ty, ROOT]);
        r.config = json!({"properties": {"size": "10 GB"}});
        let v = p.create(&r).await.unwrap();
        assert_eq!(v.attributes["size"], json!(10_000_000_000u64));
        assert_eq!(attr(&v, "volume_id"), v.id);
        let dir = PathBuf::from(attr(&v, "path"));
        let rec: Value = serde_json::from_slice(&std::fs::read(dir.join(".rosca-volume.json")).unwrap()).unwrap();
        assert_eq!(rec["size"], json!(10_000_000_000u64));

        r.config = json!({"properties": {"size": 2048}});
        let u = p.update(&state_of(&r, &v), &r, &[]).await.unwrap();
        assert_eq!(u.id, v.id);
        assert_eq!(u.attributes["size"], json!(2048));
        let rec: Value = serde_json::from_slice(&std::fs::read(dir.join(".rosca-volume.json")).unwrap()).unwrap();
        assert_eq!(rec["size"], json!(2048));
        let prior = state_of(&r, &u);
        assert_eq!(p.read(&prior).await.unwrap().unwrap().attributes["size"], json!(2048));

        p.delete(&prior).await.unwrap();
        assert!(!dir.exists());
        assert_eq!(p.read(&prior).await.unwrap(), None);
    }
    let mut r = req(tmp.path(), "bad", &["tosca.nodes.BlockStorage", ROOT]);
    r.config = json!({"properties": {"size": "ten gigs"}});
    assert!(p.create(&r).await.unwrap_err().message.contains("scalar-unit"));
}

#[tokio::test]
async fn null_resources_do_no_io() {
    let p = LocalProvider::new();
    // A working directory that does not exist and could not be created.
    let nowhere = Path::new("/nonexistent/rosca-null-test");
    let mut r = req(nowhere, "thing[0]", &["my.Null", ROOT]);
    r.operations.insert("configure".into(), OperationSpec::default()); // declared, no artifact
    let began = Instant::now();
    let mut ids = std::collections::HashSet::new();
    for i in 0..10_000 {
        r.address = format!("thing[{i}]");
        let n = p.create(&r).await.unwrap();
        assert!(ids.insert(n.id));
    }
    let took = began.elapsed();
    assert!(took < Duration::from_secs(30), "10k null creates took {took:?}");
    assert!(!nowhere.exists());

    let n = p.create(&r).await.unwrap();
    assert_eq!(attr(&n, "tosca_name"), "thing");
    assert_eq!(attr(&n, "tosca_id"), n.id);
    assert!(n.outputs.is_empty());
    let prior = state_of(&r, &n);
    assert_eq!(p.read(&prior).await.unwrap().unwrap().id, n.id);
    assert_eq!(p.update(&prior, &r, &["configure".into()]).await.unwrap().id, n.id);
    p.delete(&prior).await.unwrap();
    assert!(!nowhere.exists());
}

#[test]
fn schema_lists_kinds() {
    let p = LocalProvider::new();
    let s = p.schema();
    assert_eq!(s.name, "local");
    let names: Vec<&str> = s.resources.iter().map(|r| r.node_type.as_str()).collect();
    assert_eq!(names, [COMPUTE, "tosca.nodes.BlockStorage", "tosca.nodes.Storage.BlockStorage", ROOT]);
    assert!(s.resources.iter().all(|r| r.update_all && r.force_replace.is_empty()));
    assert!(s.resources[0].attributes.contains(&"sandbox".to_string()));
}

#[tokio::test]
async fn cancelled_apply_kills_the_running_script() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let p = LocalProvider::new();
    let (_, host) = compute(&p, tmp.path(), "host").await;
    let sandbox = PathBuf::from(attr(&host, "sandbox"));
    let slow = script(scripts.path(), "slow.sh", "sleep 30 &\necho $! > child.pid\nwait\n");
    let mut r = req(tmp.path(), "app", &["my.App", ROOT]);
    r.hosts = vec![host_ref("host", &host)];
    r.operations.insert("create".into(), op(&slow));
    // The applier dropping the future (Ctrl-C) must not leave the script running.
    assert!(tokio::time::timeout(Duration::from_millis(1500), p.create(&r)).await.is_err());
    let pid: u32 = std::fs::read_to_string(sandbox.join("child.pid")).unwrap().trim().parse().unwrap();
    assert!(eventually_dead(pid).await);
}
