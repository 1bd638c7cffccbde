//! Failure injection for the openstack provider, with an in-process cloud behind its `Api` seam.
//! The real services are exercised end to end in cli/tests/openstack.rs; this fake exists for
//! what a real cloud will not do on demand: a server going to ERROR, an answer lost after Nova
//! acted, a quota refusal after a security group was made.

#![cfg(feature = "openstack")]

use providers::openstack::client::{Api, Call, CallError, ErrorKind, Method, Reply, Service};
use providers::openstack::{OpenStackProvider, SiteOptions};
use providers::{ApplyRequest, BoxFuture, Provider, Resolver};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Cloud {
    servers: BTreeMap<String, Value>,
    security_groups: BTreeMap<String, Value>,
    /// Fault message the next server gets when it is polled (ERROR instead of ACTIVE).
    fail_with: Option<String>,
    /// Nova creates the server but the answer never arrives.
    lose_answer: bool,
    /// POST servers is refused with a quota error.
    over_quota: bool,
    next: u32,
}

#[derive(Clone, Default)]
struct FakeApi(Arc<Mutex<Cloud>>);

fn ok(body: Value) -> Result<Reply, CallError> {
    Ok(Reply { status: 200, retry_after: None, body })
}

fn status(code: u16, body: Value) -> Result<Reply, CallError> {
    Ok(Reply { status: code, retry_after: None, body })
}

impl FakeApi {
    fn handle(&self, call: &Call) -> Result<Reply, CallError> {
        let mut c = self.0.lock().unwrap();
        let path: Vec<&str> = call.path.split('/').collect();
        match (call.service, call.method, path.as_slice()) {
            (Service::Compute, Method::Get, ["flavors", "detail"]) => ok(json!({"flavors": [
                {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 128, "disk": 1},
                {"id": "3", "name": "m1.medium", "vcpus": 2, "ram": 1024, "disk": 10}
            ]})),
            (Service::Image, Method::Get, ["images"]) => ok(json!({"images": [
                {"id": "img-1", "name": "cirros", "os_distro": "cirros", "os_version": "0.6.2", "created_at": "2026-01-01T00:00:00Z"}
            ]})),
            (Service::Network, Method::Get, ["networks"]) => ok(json!({"networks": [{"id": "net-1", "name": "private"}]})),
            (Service::Network, Method::Post, ["security-groups"]) => {
                c.next += 1;
                let id = format!("sg-{}", c.next);
                c.security_groups.insert(id.clone(), call.body.clone().unwrap_or_default());
                ok(json!({"security_group": {"id": id}}))
            }
            (Service::Network, Method::Post, ["security-group-rules"]) => ok(json!({"security_group_rule": {"id": "r"}})),
            (Service::Network, Method::Delete, ["security-groups", id]) => {
                c.security_groups.remove(*id);
                status(204, Value::Null)
            }
            (Service::Compute, Method::Post, ["servers"]) => {
                if c.over_quota {
                    return status(403, json!({"forbidden": {"message": "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances", "code": 403}}));
                }
                c.next += 1;
                let id = format!("srv-{}", c.next);
                let name = call.body.as_ref().and_then(|b| b.pointer("/server/name")).cloned().unwrap_or_default();
                let st = if c.fail_with.is_some() { "ERROR" } else { "ACTIVE" };
                let mut server = json!({"id": id, "name": name, "status": st, "flavor": {"original_name": "m1.tiny", "vcpus": 1, "ram": 128, "disk": 1},
                    "addresses": {"private": [{"addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}]}});
                if let Some(f) = &c.fail_with {
                    server["fault"] = json!({"message": f, "code": 500});
                }
                c.servers.insert(id.clone(), server);
                if c.lose_answer {
                    return Err(CallError::new(ErrorKind::Connection, "Nova POST servers: connection reset"));
                }
                status(202, json!({"server": {"id": id}}))
            }
            (Service::Compute, Method::Get, ["servers"]) => {
                let want = call.query.iter().find(|(k, _)| k == "name").map(|(_, v)| v.trim_matches(|ch| ch == '^' || ch == '$').to_string());
                let found: Vec<Value> = c.servers.values().filter(|s| Some(s["name"].as_str().unwrap_or_default().to_string()) == want).cloned().collect();
                ok(json!({ "servers": found }))
            }
            (Service::Compute, Method::Get, ["servers", id]) => match c.servers.get(*id) {
                Some(s) => ok(json!({ "server": s })),
                None => status(404, json!({"itemNotFound": {"message": "Instance could not be found.", "code": 404}})),
            },
            (Service::Compute, Method::Delete, ["servers", id]) => {
                c.servers.remove(*id);
                status(204, Value::Null)
            }
            _ => status(404, json!({"error": {"message": format!("the fake does not serve {}", call.describe())}})),
        }
    }
}

impl Api for FakeApi {
    fn send<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Reply, CallError>> {
        let out = self.handle(call);
        Box::pin(async move { out })
    }
}

struct NoResolve;
impl Resolver for NoResolve {
    fn resolve(&self, value: &Value, _: &Map<String, Value>, _: &BTreeMap<String, Map<String, Value>>) -> Result<Value, String> {
        Ok(value.clone())
    }
}

fn request(config: Value) -> ApplyRequest {
    ApplyRequest {
        address: "vm".into(),
        node: "vm".into(),
        index: None,
        types: vec!["tosca.nodes.Compute".into(), "tosca.nodes.Root".into()],
        config,
        operations: BTreeMap::new(),
        relationships: Vec::new(),
        hosts: Vec::new(),
        workdir: std::env::temp_dir(),
        timeout: Duration::from_secs(5),
        resolver: Arc::new(NoResolve),
        status: Default::default(),
    }
}

fn vm_config() -> Value {
    json!({"capabilities": {"os": {"distribution": "cirros"}, "endpoint": {"port": 22, "protocol": "tcp"}}})
}

fn provider(api: &FakeApi) -> OpenStackProvider {
    OpenStackProvider::with_api("lab", SiteOptions::default(), Arc::new(api.clone()))
}

fn prior_from(realized: &providers::Realized, config: Value) -> ResourceState {
    ResourceState {
        address: "vm".into(),
        node: "vm".into(),
        index: None,
        type_name: "tosca.nodes.Compute".into(),
        provider: "lab".into(),
        site: Some("lab".into()),
        id: Some(realized.id.clone()),
        status: state::ResourceStatus::Created,
        pending: None,
        config,
        attributes: realized.attributes.clone(),
        outputs: BTreeMap::new(),
        sensitive: Vec::new(),
        dependencies: Vec::new(),
        private: realized.private.clone(),
    }
}

#[tokio::test]
async fn a_server_in_error_fails_with_novas_fault_and_is_handed_back_for_the_state() {
    let api = FakeApi::default();
    api.0.lock().unwrap().fail_with = Some("No valid host was found. There are not enough hosts available.".into());
    let p = provider(&api);
    let err = p.create(&request(vm_config())).await.unwrap_err();
    assert!(err.message.contains("Nova put it in ERROR: No valid host was found."), "{}", err.message);
    let partial = err.partial.expect("the server exists: state must keep it");
    assert_eq!(partial.id, "srv-2");
    assert_eq!(partial.private["security_group"], "sg-1");
    // Deleting what was recorded removes the server and its security group.
    p.delete(&prior_from(&partial, vm_config())).await.unwrap();
    let c = api.0.lock().unwrap();
    assert!(c.servers.is_empty() && c.security_groups.is_empty());
}

#[tokio::test]
async fn a_lost_answer_is_reconciled_by_the_servers_unique_name() {
    let api = FakeApi::default();
    api.0.lock().unwrap().lose_answer = true;
    let realized = provider(&api).create(&request(vm_config())).await.unwrap();
    assert_eq!(realized.id, "srv-2", "the server Nova made, found by name");
    assert_eq!(realized.attributes["private_address"], "10.0.0.5");
    assert_eq!(api.0.lock().unwrap().servers.len(), 1, "no second server");
}

#[tokio::test]
async fn a_quota_refusal_is_named_and_leaves_no_security_group_behind() {
    let api = FakeApi::default();
    api.0.lock().unwrap().over_quota = true;
    let err = provider(&api).create(&request(vm_config())).await.unwrap_err();
    assert!(err.message.starts_with("OpenStack site lab: quota exceeded: Nova POST servers answered HTTP 403: Quota exceeded for instances"), "{}", err.message);
    assert!(err.partial.is_none());
    assert!(api.0.lock().unwrap().security_groups.is_empty(), "the group made for the server was deleted");
}

#[tokio::test]
async fn a_resize_outside_rosca_is_reported_as_observed_config() {
    let api = FakeApi::default();
    let p = provider(&api);
    let realized = p.create(&request(vm_config())).await.unwrap();
    let prior = prior_from(&realized, vm_config());
    assert!(p.read(&prior).await.unwrap().unwrap().observed.is_none(), "as applied: nothing observed");
    api.0.lock().unwrap().servers.get_mut(&realized.id).unwrap()["flavor"] = json!({"original_name": "m1.medium", "vcpus": 2, "ram": 1024, "disk": 10});
    let read = p.read(&prior).await.unwrap().unwrap();
    let host = &read.observed.expect("the size the server has")["capabilities"]["host"];
    assert_eq!(host["num_cpus"], 2);
    assert_eq!(host["mem_size"]["normalized"], 1024u64 * 1024 * 1024);
    // Gone outside Rosca: read says so.
    api.0.lock().unwrap().servers.clear();
    assert!(p.read(&prior).await.unwrap().is_none());
}
