//! End to end through the `rosca` binary against a real OpenStack on 127.0.0.1 (Keystone,
//! Nova with the fake compute driver, Glance, Neutron, Cinder), started by
//! scripts/services/openstack.sh; `scripts/test.sh` exports ROSCA_TEST_OPENSTACK_CLOUDS (its
//! clouds.yaml). What the tests check in the cloud they read with their own small client
//! ([`Cloud`]), not through the provider.

mod util;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use util::{example, show, stderr, stdout, Workdir};

/// The testbed's clouds.yaml, or None when the run chose to skip OpenStack.
fn clouds_file() -> Option<PathBuf> {
    match std::env::var("ROSCA_TEST_OPENSTACK_CLOUDS") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var("ROSCA_SKIP_OPENSTACK").as_deref() == Ok("1") => {
            eprintln!("ROSCA_SKIP_OPENSTACK=1: OpenStack tests skipped");
            None
        }
        _ => panic!("ROSCA_TEST_OPENSTACK_CLOUDS is not set: run the tests with scripts/test.sh (which starts OpenStack) or set ROSCA_SKIP_OPENSTACK=1"),
    }
}

/// A minimal admin client: Keystone password auth, then plain GETs and a few actions.
struct Cloud {
    http: reqwest::blocking::Client,
    token: String,
    user_id: String,
    keystone: String,
    endpoints: std::collections::BTreeMap<String, String>,
}

impl Cloud {
    fn connect(clouds: &PathBuf, name: &str) -> Cloud {
        let text = std::fs::read_to_string(clouds).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        let auth = &doc["clouds"][name]["auth"];
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": auth["username"], "password": auth["password"], "domain": {"name": auth["user_domain_name"]}}}},
            "scope": {"project": {"name": auth["project_name"], "domain": {"name": auth["project_domain_name"]}}}
        }});
        let url = format!("{}/auth/tokens", auth["auth_url"].as_str().unwrap().trim_end_matches('/'));
        let rsp = http.post(&url).json(&body).send().unwrap();
        assert_eq!(rsp.status().as_u16(), 201, "Keystone auth for the test client");
        let token = rsp.headers()["x-subject-token"].to_str().unwrap().to_string();
        let cat: Value = rsp.json().unwrap();
        let user_id = cat["token"]["user"]["id"].as_str().unwrap().to_string();
        let keystone = auth["auth_url"].as_str().unwrap().trim_end_matches('/').to_string();
        let mut endpoints = std::collections::BTreeMap::new();
        for svc in cat["token"]["catalog"].as_array().unwrap() {
            for ep in svc["endpoints"].as_array().unwrap() {
                if ep["interface"] == "public" {
                    endpoints.insert(svc["type"].as_str().unwrap().to_string(), ep["url"].as_str().unwrap().trim_end_matches('/').to_string());
                }
            }
        }
        Cloud { http, token, user_id, keystone, endpoints }
    }

    fn url(&self, service: &str, path: &str) -> String {
        let base = match service {
            "network" => format!("{}/v2.0", self.endpoints["network"]),
            "volume" => self.endpoints.get("volumev3").or(self.endpoints.get("block-storage")).cloned().expect("a Cinder endpoint"),
            s => self.endpoints[s].clone(),
        };
        format!("{base}/{path}")
    }

    /// GET; None on 404.
    fn get(&self, service: &str, path: &str) -> Option<Value> {
        let mut req = self.http.get(self.url(service, path)).header("X-Auth-Token", &self.token);
        if service == "compute" {
            req = req.header("OpenStack-API-Version", "compute 2.47");
        }
        let rsp = req.send().unwrap();
        if rsp.status().as_u16() == 404 {
            return None;
        }
        assert!(rsp.status().is_success(), "GET {service} {path}: {}", rsp.status());
        Some(rsp.json().unwrap())
    }

    fn post(&self, service: &str, path: &str, body: Value) {
        let rsp = self.http.post(self.url(service, path)).header("X-Auth-Token", &self.token).json(&body).send().unwrap();
        assert!(rsp.status().is_success(), "POST {service} {path}: {} {}", rsp.status(), rsp.text().unwrap_or_default());
    }

    fn delete(&self, service: &str, path: &str) {
        let rsp = self.http.delete(self.url(service, path)).header("X-Auth-Token", &self.token).send().unwrap();
        assert!(rsp.status().is_success() || rsp.status().as_u16() == 404, "DELETE {service} {path}: {}", rsp.status());
    }

    fn server(&self, id: &str) -> Option<Value> {
        self.get("compute", &format!("servers/{id}")).map(|v| v["server"].clone()).filter(|s| s["status"] != "DELETED")
    }

    fn wait_server(&self, id: &str, status: &str) -> Value {
        let start = Instant::now();
        loop {
            let s = self.server(id);
            match &s {
                Some(s) if s["status"] == status && s["OS-EXT-STS:task_state"].is_null() => return s.clone(),
                None if status == "gone" => return Value::Null,
                _ => {}
            }
            assert!(start.elapsed() < Duration::from_secs(180), "server {id} never reached {status}: {s:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Offline, the INDIGO types URL resolves to the copy in fixtures/.
fn import_map() -> String {
    format!(
        "[tosca.import_map]\n\"https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml\" = \"{}\"\n",
        util::fixtures().join("tosca/indigo/custom_types.yaml").display()
    )
}

fn workdir(name: &str, clouds: &PathBuf) -> Workdir {
    let w = Workdir::new(name);
    w.write(
        "rosca.toml",
        &format!("[providers]\ndefault = \"cloud\"\n\n[sites.cloud]\nkind = \"openstack\"\ncloud = \"rosca-test\"\nclouds_file = \"{}\"\nwait_timeout = \"3m\"\nnetwork = \"private\"\n\n{}", clouds.display(), import_map()),
    );
    w
}

fn ids_of(w: &Workdir, prefix: &str) -> Vec<String> {
    w.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["address"].as_str().unwrap().starts_with(prefix))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn private_of(w: &Workdir, address: &str) -> Value {
    w.resource(address).unwrap_or_else(|| panic!("{address} in state"))["private"].clone()
}

#[test]
fn servers_volumes_and_floating_ips_through_their_whole_life() {
    let Some(clouds) = clouds_file() else { return };
    let cloud = Cloud::connect(&clouds, "rosca-test");
    let w = workdir("os-life", &clouds);
    let t = example("openstack/two_servers.yaml");

    // Apply: two servers of different flavors, a volume attached to the head, a floating IP.
    w.ok(&["apply", &t, "--auto-approve"]);
    let head_id = ids_of(&w, "head")[0].clone();
    let worker_id = ids_of(&w, "worker")[0].clone();
    let volume_id = ids_of(&w, "data")[0].clone();
    let head = cloud.wait_server(&head_id, "ACTIVE");
    let worker = cloud.wait_server(&worker_id, "ACTIVE");
    assert_eq!(head["flavor"]["original_name"], "m1.medium", "2 vCPU, 1 GiB");
    assert_eq!(worker["flavor"]["original_name"], "m1.tiny", "1 vCPU, 128 MB");
    let vol = cloud.get("volume", &format!("volumes/{volume_id}")).unwrap();
    assert_eq!(vol["volume"]["status"], "in-use");
    assert_eq!(vol["volume"]["attachments"][0]["server_id"], head_id.as_str());
    let outputs = w.state()["outputs"].clone();
    let public = outputs["head_public_address"]["value"].as_str().expect("a public address").to_string();
    assert!(public.starts_with("172.24.4."), "a floating IP from the external network: {public}");
    assert!(outputs["head_private_address"]["value"].as_str().unwrap().starts_with("10.0.0."), "{outputs}");
    let fip = private_of(&w, "head")["floating_ip"].as_str().unwrap().to_string();
    let sg = private_of(&w, "head")["security_group"].as_str().unwrap().to_string();
    let rules = cloud.get("network", &format!("security-group-rules?security_group_id={sg}&direction=ingress")).unwrap();
    assert!(rules["security_group_rules"].as_array().unwrap().iter().any(|r| r["port_range_min"] == 22), "{rules}");

    // Re-plan: nothing to do.
    let out = w.run(&["plan", &t, "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // More CPUs: an in-place resize, said so in the plan.
    let out = w.run(&["plan", &t, "-i", "worker_cpus=2", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("# worker[0] will be updated in place"), "{text}");
    assert!(text.contains("resize"), "{text}");
    assert!(text.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{text}");
    w.ok(&["apply", &t, "-i", "worker_cpus=2", "--auto-approve"]);
    assert_eq!(cloud.wait_server(&worker_id, "ACTIVE")["flavor"]["original_name"], "m1.medium");
    assert_eq!(ids_of(&w, "worker"), vec![worker_id.clone()], "resized in place, same server");

    // Deleted outside Rosca: refresh sees it gone and the plan creates it again.
    cloud.delete("compute", &format!("servers/{worker_id}"));
    cloud.wait_server(&worker_id, "gone");
    let out = w.run(&["plan", &t, "-i", "worker_cpus=2", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("deleted outside of Rosca"), "{text}");
    assert!(text.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "{text}");
    w.ok(&["apply", &t, "-i", "worker_cpus=2", "--auto-approve"]);
    let worker_id = ids_of(&w, "worker")[0].clone();
    cloud.wait_server(&worker_id, "ACTIVE");

    // Resized outside Rosca (up: Nova cannot shrink a root disk): the plan shows the drift and
    // an update; the server keeps the larger flavor, whose disk is now the floor, and the next
    // plan is clean.
    cloud.post("compute", &format!("servers/{worker_id}/action"), json!({"resize": {"flavorRef": flavor_id(&cloud, "m1.large")}}));
    cloud.wait_server(&worker_id, "VERIFY_RESIZE");
    cloud.post("compute", &format!("servers/{worker_id}/action"), json!({"confirmResize": null}));
    cloud.wait_server(&worker_id, "ACTIVE");
    let out = w.run(&["plan", &t, "-i", "worker_cpus=2", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("changed outside of Rosca"), "{text}");
    assert!(text.contains("num_cpus") && text.contains("4 -> 2"), "{text}");
    assert!(text.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{text}");
    w.ok(&["apply", &t, "-i", "worker_cpus=2", "--auto-approve"]);
    assert_eq!(cloud.wait_server(&worker_id, "ACTIVE")["flavor"]["original_name"], "m1.large");
    let out = w.run(&["plan", &t, "-i", "worker_cpus=2", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Scale out to 3, then back to 1 removing worker[0] by name.
    w.ok(&["apply", &t, "-i", "workers=3", "-i", "worker_cpus=2", "--auto-approve"]);
    let three = ids_of(&w, "worker");
    assert_eq!(three.len(), 3, "{three:?}");
    for id in &three {
        cloud.wait_server(id, "ACTIVE");
    }
    let out = w.ok(&["plan", &t, "-i", "workers=1", "-i", "worker_cpus=2", "-i", r#"removal_list=["worker[0]"]"#]);
    assert!(out.contains("Plan: 0 to add, 0 to change, 2 to destroy."), "{out}");
    w.ok(&["apply", &t, "-i", "workers=1", "-i", "worker_cpus=2", "-i", r#"removal_list=["worker[0]"]"#, "--auto-approve"]);
    let left = ids_of(&w, "worker");
    assert_eq!(left.len(), 1);
    assert!(cloud.server(&three[0]).is_none(), "worker[0] was in removal_list");
    assert_eq!(cloud.server(&left[0]).map(|s| s["status"].clone()), Some(json!("ACTIVE")));

    // Destroy: nothing left in Nova, Cinder or Neutron.
    let mut servers = ids_of(&w, "head");
    servers.extend(left);
    w.ok(&["destroy", &t, "--auto-approve"]);
    for id in servers.iter().chain(&three) {
        assert!(cloud.server(id).is_none(), "server {id} left in Nova");
    }
    assert!(cloud.get("volume", &format!("volumes/{volume_id}")).is_none(), "volume left in Cinder");
    assert!(cloud.get("network", &format!("floatingips/{fip}")).is_none(), "floating IP left in Neutron");
    assert!(cloud.get("network", &format!("security-groups/{sg}")).is_none(), "security group left in Neutron");
    assert_eq!(w.state()["resources"], json!([]));
}

fn flavor_id(cloud: &Cloud, name: &str) -> String {
    let v = cloud.get("compute", "flavors").unwrap();
    v["flavors"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()["id"].as_str().unwrap().to_string()
}

const ONE_SERVER: &str = r#"tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    cpus: { type: integer, default: 1 }
    distribution: { type: string, default: cirros }
  node_templates:
    vm:
      type: tosca.nodes.Compute
      capabilities:
        host:
          properties: { num_cpus: { get_input: cpus } }
        os:
          properties: { distribution: { get_input: distribution } }
"#;

#[test]
fn bad_credentials_unknown_images_and_flavors_fail_clearly_and_leave_nothing_unrecorded() {
    let Some(clouds) = clouds_file() else { return };
    let w = Workdir::new("os-errors");
    let t = w.write("one.yaml", ONE_SERVER).display().to_string();
    let auth_url = "http://127.0.0.1:5000/v3";

    // Wrong password: refused before anything is created.
    w.write(
        "rosca.toml",
        &format!("[providers]\ndefault = \"cloud\"\n[sites.cloud]\nkind = \"openstack\"\nauth_url = \"{auth_url}\"\nusername = \"admin\"\nproject_name = \"admin\"\nuser_domain_name = \"Default\"\nproject_domain_name = \"Default\"\nsecret_env = \"TEST_OS_PASSWORD\"\n"),
    );
    let out = w.command(&["apply", &t, "--auto-approve"]).env("TEST_OS_PASSWORD", "not-the-password").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("OpenStack site cloud: authentication at http://127.0.0.1:5000/v3 failed"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("not-the-password"), "the password must not be printed: {err}");
    assert_eq!(w.state()["resources"], json!([]));

    // A password in rosca.toml is refused, with what to do instead.
    w.write("rosca.toml", "[sites.cloud]\nkind = \"openstack\"\npassword = \"x\"\n");
    let err = stderr(&w.expect(1, &["apply", &t, "--auto-approve"]));
    assert!(err.contains("`password` is a secret and does not belong in rosca.toml"), "{err}");

    // An expired or revoked token: a clear authentication error.
    w.write(
        "rosca.toml",
        &format!("[providers]\ndefault = \"cloud\"\n[sites.cloud]\nkind = \"openstack\"\nauth_type = \"v3token\"\nauth_url = \"{auth_url}\"\nproject_name = \"admin\"\nproject_domain_name = \"Default\"\nsecret_env = \"TEST_OS_TOKEN\"\n"),
    );
    let out = w.command(&["apply", &t, "--auto-approve"]).env("TEST_OS_TOKEN", "gAAAAABexpiredtoken0000000000").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("authentication at http://127.0.0.1:5000/v3 failed"), "{err}");
    assert!(!err.contains("gAAAAABexpiredtoken"), "{err}");

    // Good credentials, but no image for the distribution and then no flavor that fits.
    w.write(
        "rosca.toml",
        &format!("[providers]\ndefault = \"cloud\"\n[sites.cloud]\nkind = \"openstack\"\ncloud = \"rosca-test\"\nclouds_file = \"{}\"\nnetwork = \"private\"\n", clouds.display()),
    );
    let err = stderr(&w.expect(1, &["apply", &t, "-i", "distribution=plan9", "--auto-approve"]));
    assert!(err.contains("no image has os_distro `plan9` in Glance (images carry: "), "{err}");
    assert_eq!(w.state()["resources"], json!([]), "nothing was created, nothing recorded");
    let err = stderr(&w.expect(1, &["apply", &t, "-i", "cpus=64", "--auto-approve"]));
    assert!(err.contains("no flavor fits the host capability (num_cpus 64); the largest is m1.large (4 vCPU, 2048 MiB RAM, 20 GB disk)"), "{err}");
    assert_eq!(w.state()["resources"], json!([]));
}

#[test]
fn a_quota_error_is_reported_as_such_and_what_was_made_stays_recorded() {
    let Some(clouds) = clouds_file() else { return };
    let w = Workdir::new("os-quota");
    // The quota project may run one instance.
    w.write(
        "rosca.toml",
        &format!("[providers]\ndefault = \"cloud\"\n[sites.cloud]\nkind = \"openstack\"\ncloud = \"rosca-quota\"\nclouds_file = \"{}\"\nnetwork = \"private\"\n", clouds.display()),
    );
    let t = w
        .write(
            "two.yaml",
            "tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    vm:\n      type: tosca.nodes.Compute\n      capabilities:\n        scalable: { properties: { default_instances: 2 } }\n        os: { properties: { distribution: cirros } }\n",
        )
        .display()
        .to_string();
    let out = w.run(&["apply", &t, "--auto-approve", "--parallelism", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("quota exceeded"), "{err}");
    assert_eq!(ids_of(&w, "vm").len(), 1, "the first server is recorded");
    w.ok(&["destroy", &t, "--auto-approve"]);
    assert_eq!(w.state()["resources"], json!([]));
}

#[test]
fn an_indigo_vm_by_image_name_and_instance_type_with_public_ports() {
    let Some(clouds) = clouds_file() else { return };
    let cloud = Cloud::connect(&clouds, "rosca-test");
    let w = workdir("os-indigo", &clouds);
    let t = example("openstack/indigo_vm.yaml");
    w.ok(&["apply", &t, "--auto-approve"]);
    let id = ids_of(&w, "vm")[0].clone();
    let server = cloud.wait_server(&id, "ACTIVE");
    assert_eq!(server["flavor"]["original_name"], "m1.small", "instance_type");
    assert_eq!(server["metadata"]["project"], "rosca-example", "tags");
    assert_eq!(server["OS-EXT-AZ:availability_zone"], "nova", "the placement policy's zone");
    let user_data = String::from_utf8(base64_decode(server["OS-EXT-SRV-ATTR:user_data"].as_str().expect("user data"))).unwrap();
    assert!(user_data.starts_with("#cloud-config") && user_data.contains("made by Rosca"), "{user_data}");
    let image = cloud.get("image", &format!("v2/images/{}", server["image"]["id"].as_str().unwrap())).unwrap();
    assert_eq!(image["name"], "cirros-fake");
    let outputs = w.state()["outputs"].clone();
    assert!(outputs["vm_public_ip"]["value"].as_str().unwrap().starts_with("172.24.4."), "{outputs}");
    assert!(outputs["vm_private_ip"]["value"].as_str().unwrap().starts_with("10.0.0."), "{outputs}");
    let sg = private_of(&w, "vm")["security_group"].as_str().unwrap().to_string();
    let rules = cloud.get("network", &format!("security-group-rules?security_group_id={sg}&direction=ingress")).unwrap();
    let mut ports: Vec<u64> = rules["security_group_rules"].as_array().unwrap().iter().filter_map(|r| r["port_range_min"].as_u64()).collect();
    ports.sort();
    assert_eq!(ports, vec![22, 80]);

    // Another flavor by name: a resize, in place.
    let out = w.ok(&["plan", &t, "-i", "flavor=m1.medium"]);
    assert!(out.contains("resize") && out.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{out}");
    w.ok(&["apply", &t, "-i", "flavor=m1.medium", "--auto-approve"]);
    assert_eq!(cloud.wait_server(&id, "ACTIVE")["flavor"]["original_name"], "m1.medium");

    // Another image: a rebuild of the same server, said so in the plan.
    let args = ["-i", "flavor=m1.medium", "-i", "image=ubuntu-fake"];
    let out = w.ok(&[&["plan", t.as_str()][..], &args[..]].concat());
    assert!(out.contains("rebuild from the new image") && out.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{out}");
    w.ok(&[&["apply", t.as_str()][..], &args[..], &["--auto-approve"][..]].concat());
    let rebuilt = cloud.wait_server(&id, "ACTIVE");
    let image = cloud.get("image", &format!("v2/images/{}", rebuilt["image"]["id"].as_str().unwrap())).unwrap();
    assert_eq!(image["name"], "ubuntu-fake");
    assert_eq!(ids_of(&w, "vm"), vec![id.clone()], "rebuilt in place");

    w.ok(&["destroy", &t, "--auto-approve"]);
    assert!(cloud.server(&id).is_none());
    assert!(cloud.get("network", &format!("security-groups/{sg}")).is_none());
}

#[test]
fn networks_and_ports_with_an_application_credential() {
    let Some(clouds) = clouds_file() else { return };
    let cloud = Cloud::connect(&clouds, "rosca-test");
    // An application credential of the admin user, made for this test and deleted with it.
    let credential = AppCredential::new(&cloud);
    let (ac_id, ac_secret) = (credential.id.clone(), credential.secret.clone());

    let w = Workdir::new("os-net");
    w.write(
        "rosca.toml",
        &format!(
            "[providers]\ndefault = \"cloud\"\n[sites.cloud]\nkind = \"openstack\"\nauth_type = \"v3applicationcredential\"\nauth_url = \"{}\"\napplication_credential_id = \"{ac_id}\"\nsecret_env = \"TEST_AC_SECRET\"\nnetwork = \"private\"\n",
            cloud.keystone
        ),
    );
    let t = example("openstack/network.yaml");
    let run = |args: &[&str]| {
        let out = w.command(args).env("TEST_AC_SECRET", &ac_secret).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(!show(&out).contains(&ac_secret), "the secret must not be printed");
        out
    };
    run(&["apply", &t, "--auto-approve"]);
    let net = ids_of(&w, "backend")[0].clone();
    let port = ids_of(&w, "backend_port")[0].clone();
    let server = ids_of(&w, "server")[0].clone();
    let p = cloud.get("network", &format!("ports/{port}")).unwrap()["port"].clone();
    assert_eq!(p["device_id"], server.as_str(), "the port is plugged into the server");
    assert_eq!(p["fixed_ips"][0]["ip_address"], "192.168.77.20");
    assert_eq!(p["network_id"], net.as_str());
    let subnets = cloud.get("network", &format!("subnets?network_id={net}")).unwrap();
    assert_eq!(subnets["subnets"][0]["cidr"], "192.168.77.0/24");
    assert_eq!(w.state()["outputs"]["backend_address"]["value"], "192.168.77.20");
    let out = w.command(&["plan", &t, "--detailed-exitcode"]).env("TEST_AC_SECRET", &ac_secret).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    run(&["destroy", &t, "--auto-approve"]);
    assert!(cloud.get("network", &format!("ports/{port}")).is_none(), "port left in Neutron");
    assert!(cloud.get("network", &format!("networks/{net}")).is_none(), "network left in Neutron");
    assert!(cloud.server(&server).is_none(), "server left in Nova");
}

struct AppCredential<'a> {
    cloud: &'a Cloud,
    id: String,
    secret: String,
}

impl<'a> AppCredential<'a> {
    fn new(cloud: &'a Cloud) -> AppCredential<'a> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("rosca-e2e-{}-{nanos}", std::process::id());
        let url = format!("{}/users/{}/application_credentials", cloud.keystone, cloud.user_id);
        let rsp = cloud.http.post(&url).header("X-Auth-Token", &cloud.token).json(&json!({"application_credential": {"name": name}})).send().unwrap();
        let status = rsp.status();
        let body: Value = rsp.json().unwrap_or(Value::Null);
        let ac = &body["application_credential"];
        let (Some(id), Some(secret)) = (ac["id"].as_str(), ac["secret"].as_str()) else {
            panic!("POST {url}: {status} {body}");
        };
        AppCredential { cloud, id: id.to_string(), secret: secret.to_string() }
    }
}

impl Drop for AppCredential<'_> {
    fn drop(&mut self) {
        let c = self.cloud;
        let _ = c.http.delete(format!("{}/users/{}/application_credentials/{}", c.keystone, c.user_id, self.id)).header("X-Auth-Token", &c.token).send();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}
