//! Compute nodes as Nova servers: flavor and image chosen from the capabilities, a security
//! group from the endpoint's ports, a floating IP for a public endpoint, volumes attached
//! through `AttachesTo` relationships.

use super::client::{request, Call, CallError, ErrorKind, Service};
use super::select::{self, Flavor, HostNeeds, Image, Ingress, OsNeeds};
use super::wait::{self, Poll};
use super::{cloud_name, fail, network, private_value, Ctx, INDIGO_COMPUTE};
use crate::api::{ApplyRequest, ProviderError, Realized};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;

/// What Rosca made for one server, kept in state so delete and update find it all.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerPrivate {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub flavor: String,
    #[serde(default)]
    pub flavor_name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_ip: Option<String>,
    /// Its address: Nova learns of floating IPs only through Neutron's notifications, which a
    /// cloud may not send, so the provider reports the address it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_address: Option<String>,
    /// A key pair made from the template's public key (deleted with the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypair: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

fn caps(config: &Value) -> &Value {
    config.get("capabilities").unwrap_or(&Value::Null)
}

async fn flavors(ctx: &Ctx<'_>) -> Result<Vec<Flavor>, CallError> {
    let v = request(ctx.api, &Call::get(Service::Compute, "flavors/detail").query("is_public", "None")).await?;
    Ok(v.get("flavors").and_then(Value::as_array).map(|a| a.iter().filter_map(Flavor::from_json).collect()).unwrap_or_default())
}

/// The flavor for `config`. For a server that exists (`current` flavor, by id or name) the root
/// disk cannot shrink (Nova refuses, and records the boot flavor's disk as the image's minimum),
/// so its disk is a floor: asking for fewer CPUs may keep a larger flavor.
async fn choose_flavor(ctx: &Ctx<'_>, config: &Value, current: Option<&str>) -> Result<Flavor, ProviderError> {
    let mut needs = HostNeeds::from_config(caps(config).get("host"));
    let all = flavors(ctx).await.map_err(|e| fail(ctx.site, e))?;
    if let Some(cur) = current.and_then(|c| all.iter().find(|f| f.id == c || f.name == c)) {
        if needs.instance_type.is_none() {
            needs.disk_gb = Some(needs.disk_gb.unwrap_or(0).max(cur.disk_gb));
        }
    }
    select::choose_flavor(&needs, &all).cloned().map_err(|m| ProviderError::new(format!("OpenStack site {}: {m}", ctx.site)))
}

async fn choose_image(ctx: &Ctx<'_>, config: &Value) -> Result<Image, ProviderError> {
    let needs = OsNeeds::from_config(caps(config).get("os"));
    let mut call = Call::get(Service::Image, "images").query("limit", "1000");
    if let Some(name) = &needs.image {
        // An id or a name: ask for both shapes, Glance filters on exact values.
        if uuid::Uuid::parse_str(name).is_ok() {
            match request(ctx.api, &Call::get(Service::Image, format!("images/{name}"))).await {
                Ok(v) => return Image::from_json(&v).ok_or_else(|| ProviderError::new(format!("OpenStack site {}: Glance returned an image without id", ctx.site))),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(fail(ctx.site, e)),
            }
        }
        call = call.query("name", name.clone());
    } else if let Some(d) = &needs.distribution {
        call = call.query("os_distro", d.to_ascii_lowercase());
    }
    let v = request(ctx.api, &call).await.map_err(|e| fail(ctx.site, e))?;
    let mut images: Vec<Image> = v.get("images").and_then(Value::as_array).map(|a| a.iter().filter_map(Image::from_json).collect()).unwrap_or_default();
    if images.is_empty() && needs.image.is_none() {
        // For the error message: what distributions the cloud does carry.
        let all = request(ctx.api, &Call::get(Service::Image, "images").query("limit", "1000")).await.map_err(|e| fail(ctx.site, e))?;
        images = all.get("images").and_then(Value::as_array).map(|a| a.iter().filter_map(Image::from_json).collect()).unwrap_or_default();
    }
    select::choose_image(&needs, &images).cloned().map_err(|m| ProviderError::new(format!("OpenStack site {}: {m}", ctx.site)))
}

/// A public key from the `os` capability's credential (`token_type: public_key`) or INDIGO's
/// `os_users`.
fn public_key(config: &Value) -> Option<String> {
    let cred = caps(config).get("os").and_then(|o| o.get("credential"));
    if let Some(c) = cred {
        let kind = c.get("token_type").and_then(Value::as_str).unwrap_or("password");
        if kind == "public_key" {
            return c.get("token").and_then(Value::as_str).map(str::to_string);
        }
    }
    config
        .get("properties")
        .and_then(|p| p.get("os_users"))
        .and_then(Value::as_array)
        .and_then(|users| users.iter().find_map(|u| u.get("ssh_key").and_then(Value::as_str)))
        .map(str::to_string)
}

fn to_realized(p: &ServerPrivate, id: &str, attributes: Map<String, Value>) -> Realized {
    Realized { id: id.to_string(), attributes, outputs: BTreeMap::new(), private: private_value(p), observed: None, tainted: None }
}

/// Undoes what was made before the server existed (its POST failed for good).
async fn discard(ctx: &Ctx<'_>, p: &ServerPrivate) {
    if let Some(sg) = &p.security_group {
        let _ = request(ctx.api, &Call::delete(Service::Network, format!("security-groups/{sg}"))).await;
    }
    if let Some(k) = &p.keypair {
        let _ = request(ctx.api, &Call::delete(Service::Compute, format!("os-keypairs/{k}"))).await;
    }
}

pub async fn create(ctx: &Ctx<'_>, req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let flavor = choose_flavor(ctx, &req.config, None).await?;
    let image = choose_image(ctx, &req.config).await?;
    let networks = match network::server_network(ctx).await.map_err(|e| fail(ctx.site, e))? {
        Some(id) => json!([{"uuid": id}]),
        None => json!("none"),
    };
    let name = req
        .config
        .get("properties")
        .and_then(|p| p.get("instance_name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| cloud_name(&req.address));
    let mut p = ServerPrivate { kind: "server".into(), name: name.clone(), flavor: flavor.id.clone(), flavor_name: flavor.name.clone(), image: image.id.clone(), ..Default::default() };

    let rules = select::ingress_rules(caps(&req.config).get("endpoint"));
    if !rules.is_empty() {
        let sg = network::create_security_group(ctx, &name, &rules).await;
        match sg {
            Ok(id) => p.security_group = Some(id),
            Err(e) => return Err(fail(ctx.site, e)),
        }
    }
    let mut key_name = ctx.options.key_name.clone();
    if let Some(key) = public_key(&req.config) {
        let body = json!({"keypair": {"name": name, "public_key": key}});
        if let Err(e) = request(ctx.api, &Call::post(Service::Compute, "os-keypairs", body)).await {
            discard(ctx, &p).await;
            return Err(fail(ctx.site, e));
        }
        p.keypair = Some(name.clone());
        key_name = Some(name.clone());
    }

    let mut server = json!({
        "name": name,
        "imageRef": image.id,
        "flavorRef": flavor.id,
        "networks": networks,
        "metadata": metadata(req),
    });
    if let Some(k) = key_name {
        server["key_name"] = json!(k);
    }
    if let Some(text) = req.config.pointer("/artifacts/user_data").and_then(Value::as_str) {
        use base64::Engine;
        server["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
    if let Some(az) = req.config.pointer("/placement/availability_zone").and_then(Value::as_str) {
        server["availability_zone"] = json!(az);
    }
    if p.security_group.is_some() {
        server["security_groups"] = json!([{"name": "default"}, {"name": name}]);
    }
    let id = match request(ctx.api, &Call::post(Service::Compute, "servers", json!({ "server": server }))).await {
        Ok(v) => v.pointer("/server/id").and_then(Value::as_str).unwrap_or_default().to_string(),
        // The answer was lost: the server may exist. Its unique name finds it.
        Err(e) if e.kind == ErrorKind::Connection => match find_by_name(ctx, &name).await {
            Some(id) => id,
            None => {
                discard(ctx, &p).await;
                return Err(fail(ctx.site, e));
            }
        },
        Err(e) => {
            discard(ctx, &p).await;
            return Err(fail(ctx.site, e));
        }
    };
    let partial = |p: &ServerPrivate, e: ProviderError| ProviderError {
        partial: Some(Box::new(to_realized(p, &id, base_attributes(&req.node, &id)))),
        ..e
    };
    let ready = wait_active(ctx, &id, &name).await.map_err(|e| partial(&p, fail(ctx.site, e)))?;

    for vol in attached_volumes(req) {
        attach(ctx, &id, &vol).await.map_err(|e| partial(&p, fail(ctx.site, e)))?;
        p.volumes.push(vol);
    }
    if select::wants_public_address(caps(&req.config).get("endpoint")) {
        let (fip, address) = network::associate_floating_ip(ctx, &id).await.map_err(|e| partial(&p, fail(ctx.site, e)))?;
        p.floating_ip = Some(fip);
        p.floating_address = Some(address);
    }
    let server = if p.floating_ip.is_some() || !p.volumes.is_empty() { get(ctx, &id).await.map_err(|e| partial(&p, fail(ctx.site, e)))?.unwrap_or(ready) } else { ready };
    Ok(to_realized(&p, &id, attributes(req.types.iter().any(|t| t == INDIGO_COMPUTE), &req.node, &server, p.floating_address.as_deref())))
}

fn metadata(req: &ApplyRequest) -> Value {
    let mut m = Map::new();
    m.insert("rosca_address".into(), json!(req.address));
    if let Some(Value::Object(tags)) = req.config.get("properties").and_then(|p| p.get("tags")) {
        for (k, v) in tags {
            if let Some(s) = v.as_str() {
                m.insert(k.clone(), json!(s));
            }
        }
    }
    Value::Object(m)
}

/// Volume ids of the `AttachesTo` targets.
fn attached_volumes(req: &ApplyRequest) -> Vec<String> {
    req.relationships
        .iter()
        .filter(|r| r.type_name.ends_with("AttachesTo"))
        .filter_map(|r| r.target_attributes.get("volume_id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

async fn attach(ctx: &Ctx<'_>, server: &str, volume: &str) -> Result<(), CallError> {
    let body = json!({"volumeAttachment": {"volumeId": volume}});
    request(ctx.api, &Call::post(Service::Compute, format!("servers/{server}/os-volume_attachments"), body)).await?;
    let what = format!("attaching volume {volume} to server {server}");
    wait::until(ctx.api, &Call::get(Service::BlockStorage, format!("volumes/{volume}")), &what, ctx.timeout, ctx.poll, |v| {
        match v.pointer("/volume/status").and_then(Value::as_str).unwrap_or("") {
            "in-use" => Poll::Done(v.clone()),
            s @ ("error" | "error_attaching") => Poll::Failed(format!("Cinder reports status {s}")),
            s => Poll::Pending(s.to_string()),
        }
    })
    .await?;
    Ok(())
}

async fn find_by_name(ctx: &Ctx<'_>, name: &str) -> Option<String> {
    let v = request(ctx.api, &Call::get(Service::Compute, "servers").query("name", format!("^{name}$"))).await.ok()?;
    v.get("servers")?.as_array()?.first()?.get("id")?.as_str().map(str::to_string)
}

async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Option<Value>, CallError> {
    match request(ctx.api, &Call::get(Service::Compute, format!("servers/{id}"))).await {
        Ok(v) => Ok(v.get("server").cloned()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits for ACTIVE; ERROR carries Nova's fault message.
async fn wait_active(ctx: &Ctx<'_>, id: &str, name: &str) -> Result<Value, CallError> {
    wait_status(ctx, id, &format!("server {name} ({id})"), "ACTIVE").await
}

async fn wait_status(ctx: &Ctx<'_>, id: &str, what: &str, target: &'static str) -> Result<Value, CallError> {
    let found = wait::until(ctx.api, &Call::get(Service::Compute, format!("servers/{id}")), what, ctx.timeout, ctx.poll, |v| {
        let s = &v["server"];
        match s.get("status").and_then(Value::as_str).unwrap_or("") {
            st if st == target && s.get("OS-EXT-STS:task_state").is_none_or(Value::is_null) => Poll::Done(s.clone()),
            "ERROR" => {
                let fault = s.pointer("/fault/message").and_then(Value::as_str).unwrap_or("no fault message");
                Poll::Failed(format!("Nova put it in ERROR: {fault}"))
            }
            "DELETED" | "SOFT_DELETED" => Poll::Gone,
            st => Poll::Pending(st.to_string()),
        }
    })
    .await?;
    found.ok_or_else(|| CallError::new(ErrorKind::NotFound, format!("{what}: deleted while Rosca waited for {target}")))
}

fn base_attributes(node: &str, id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tosca_id".into(), json!(id));
    m.insert("tosca_name".into(), json!(node));
    m
}

/// TOSCA attributes of a server. INDIGO's Compute has lists of addresses (one per network).
pub fn attributes(indigo: bool, node: &str, server: &Value, floating_address: Option<&str>) -> Map<String, Value> {
    let id = server.get("id").and_then(Value::as_str).unwrap_or_default();
    let mut m = base_attributes(node, id);
    let status = server.get("status").and_then(Value::as_str).unwrap_or("UNKNOWN");
    m.insert("state".into(), json!(tosca_state(status)));
    let mut fixed = Vec::new();
    let mut floating = Vec::new();
    let mut networks = Map::new();
    if let Some(Value::Object(addrs)) = server.get("addresses") {
        for (net, list) in addrs {
            let mut here = Vec::new();
            for a in list.as_array().into_iter().flatten() {
                let ip = a.get("addr").and_then(Value::as_str).unwrap_or_default().to_string();
                match a.get("OS-EXT-IPS:type").and_then(Value::as_str) {
                    Some("floating") => floating.push(ip.clone()),
                    _ => fixed.push(ip.clone()),
                }
                here.push(json!(ip));
            }
            networks.insert(net.clone(), json!({"network_name": net, "addresses": here}));
        }
    }
    if let Some(a) = floating_address.filter(|a| !floating.iter().any(|f| f == a)) {
        floating.insert(0, a.to_string());
    }
    // Without a floating IP the first fixed address is the one to reach the server at, as
    // Nova's accessIPv4 and Terraform's access_ip_v4 do.
    let public = if floating.is_empty() { fixed.first().cloned() } else { floating.first().cloned() };
    if indigo {
        m.insert("private_address".into(), json!(fixed));
        m.insert("public_address".into(), json!(if floating.is_empty() { fixed.iter().take(1).cloned().collect() } else { floating }));
    } else {
        m.insert("private_address".into(), json!(fixed.first()));
        m.insert("public_address".into(), json!(public));
    }
    m.insert("networks".into(), Value::Object(networks));
    if let Some(f) = server.pointer("/flavor/original_name").and_then(Value::as_str) {
        m.insert("flavor".into(), json!(f));
    }
    if let Some(i) = server.pointer("/image/id").and_then(Value::as_str) {
        m.insert("image".into(), json!(i));
    }
    m
}

fn tosca_state(status: &str) -> &'static str {
    match status {
        "ACTIVE" => "started",
        "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING" | "REBOOT" | "HARD_REBOOT" => "configuring",
        "SHUTOFF" | "STOPPED" | "SUSPENDED" | "PAUSED" | "SHELVED" | "SHELVED_OFFLOADED" => "stopped",
        "ERROR" => "error",
        "DELETED" | "SOFT_DELETED" => "deleted",
        _ => "initial",
    }
}

fn private_of(prior: &ResourceState) -> ServerPrivate {
    serde_json::from_value(prior.private.clone()).unwrap_or_default()
}

pub async fn update(ctx: &Ctx<'_>, prior: &ResourceState, req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let id = prior.id.clone().unwrap_or_default();
    let mut p = private_of(prior);
    let what = format!("server {} ({id})", p.name);
    let current = if p.flavor.is_empty() { p.flavor_name.clone() } else { p.flavor.clone() };
    let flavor = choose_flavor(ctx, &req.config, Some(&current)).await?;
    if flavor.id != p.flavor && flavor.name != p.flavor_name {
        let body = json!({"resize": {"flavorRef": flavor.id}});
        request(ctx.api, &Call::post(Service::Compute, format!("servers/{id}/action"), body)).await.map_err(|e| fail(ctx.site, e))?;
        wait_status(ctx, &id, &format!("resizing {what} to {}", flavor.name), "VERIFY_RESIZE").await.map_err(|e| fail(ctx.site, e))?;
        request(ctx.api, &Call::post(Service::Compute, format!("servers/{id}/action"), json!({"confirmResize": null}))).await.map_err(|e| fail(ctx.site, e))?;
        wait_status(ctx, &id, &format!("confirming the resize of {what}"), "ACTIVE").await.map_err(|e| fail(ctx.site, e))?;
    }
    p.flavor = flavor.id.clone();
    p.flavor_name = flavor.name.clone();
    let os_changed = caps(&prior.config).get("os") != caps(&req.config).get("os");
    if os_changed {
        let image = choose_image(ctx, &req.config).await?;
        if image.id != p.image {
            let body = json!({"rebuild": {"imageRef": image.id}});
            request(ctx.api, &Call::post(Service::Compute, format!("servers/{id}/action"), body)).await.map_err(|e| fail(ctx.site, e))?;
            // REBUILD shows only after Nova picked the action up; wait for the end of the task.
            wait_status(ctx, &id, &format!("rebuilding {what}"), "ACTIVE").await.map_err(|e| fail(ctx.site, e))?;
            p.image = image.id;
        }
    }
    let endpoint_before = caps(&prior.config).get("endpoint");
    let endpoint_after = caps(&req.config).get("endpoint");
    if endpoint_before != endpoint_after {
        update_endpoint(ctx, &id, &mut p, &select::ingress_rules(endpoint_after), select::wants_public_address(endpoint_after)).await.map_err(|e| fail(ctx.site, e))?;
    }
    let tags_before = prior.config.pointer("/properties/tags");
    if tags_before != req.config.pointer("/properties/tags") {
        request(ctx.api, &Call::put(Service::Compute, format!("servers/{id}/metadata"), json!({"metadata": metadata(req)}))).await.map_err(|e| fail(ctx.site, e))?;
    }
    let server = get(ctx, &id).await.map_err(|e| fail(ctx.site, e))?.ok_or_else(|| ProviderError::new(format!("OpenStack site {}: {what} is gone", ctx.site)))?;
    Ok(Realized {
        id: id.clone(),
        attributes: attributes(req.types.iter().any(|t| t == INDIGO_COMPUTE), &req.node, &server, p.floating_address.as_deref()),
        outputs: prior.outputs.clone(),
        private: private_value(&p),
        observed: None, tainted: None,
    })
}

async fn update_endpoint(ctx: &Ctx<'_>, id: &str, p: &mut ServerPrivate, rules: &[Ingress], public: bool) -> Result<(), CallError> {
    match (&p.security_group, rules.is_empty()) {
        (Some(sg), _) => network::replace_rules(ctx, sg, rules).await?,
        (None, false) => {
            let sg = network::create_security_group(ctx, &p.name, rules).await?;
            p.security_group = Some(sg);
            let body = json!({"addSecurityGroup": {"name": p.name}});
            request(ctx.api, &Call::post(Service::Compute, format!("servers/{id}/action"), body)).await?;
        }
        (None, true) => {}
    }
    match (&p.floating_ip, public) {
        (None, true) => {
            let (fip, address) = network::associate_floating_ip(ctx, id).await?;
            p.floating_ip = Some(fip);
            p.floating_address = Some(address);
        }
        (Some(fip), false) => {
            network::delete_floating_ip(ctx, fip).await?;
            p.floating_ip = None;
            p.floating_address = None;
        }
        _ => {}
    }
    Ok(())
}

pub async fn read(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<Option<Realized>, ProviderError> {
    let Some(id) = prior.id.clone() else { return Ok(None) };
    let Some(server) = get(ctx, &id).await.map_err(|e| fail(ctx.site, e))? else { return Ok(None) };
    if matches!(server.get("status").and_then(Value::as_str), Some("DELETED" | "SOFT_DELETED")) {
        return Ok(None);
    }
    let p = private_of(prior);
    let indigo = prior.type_name == INDIGO_COMPUTE || prior.attributes.get("private_address").is_some_and(Value::is_array);
    let mut realized = to_realized(&p, &id, attributes(indigo, &prior.node, &server, p.floating_address.as_deref()));
    // A resize made outside Rosca: report the size the server has, so the plan resizes back.
    if let Some(f) = server.get("flavor") {
        let now = f.get("original_name").and_then(Value::as_str).unwrap_or_default();
        if !p.flavor_name.is_empty() && !now.is_empty() && now != p.flavor_name {
            let mib = f.get("ram").and_then(Value::as_u64).unwrap_or(0);
            let gb = f.get("disk").and_then(Value::as_u64).unwrap_or(0);
            let mut host = json!({
                "num_cpus": f.get("vcpus").and_then(Value::as_u64).unwrap_or(0),
                "mem_size": {"value": mib, "unit": "MiB", "normalized": mib * 1024 * 1024, "base_unit": "B"},
                "disk_size": {"value": gb, "unit": "GB", "normalized": gb * 1_000_000_000, "base_unit": "B"},
            });
            if prior.config.pointer("/capabilities/host/instance_type").is_some() {
                host["instance_type"] = json!(now);
            }
            realized.observed = Some(json!({"capabilities": {"host": host}}));
            // The flavor Rosca chose is no longer the server's: the next update resizes.
            let mut now_private = p.clone();
            now_private.flavor = String::new();
            now_private.flavor_name = now.to_string();
            realized.private = private_value(&now_private);
        }
    }
    Ok(Some(realized))
}

pub async fn delete(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<(), ProviderError> {
    let p = private_of(prior);
    let id = match prior.id.clone() {
        Some(id) if !id.is_empty() => Some(id),
        // Interrupted before Nova answered: the unique name finds the server, if it exists.
        _ => find_by_name(ctx, &p.name).await,
    };
    if let Some(id) = &id {
        match request(ctx.api, &Call::delete(Service::Compute, format!("servers/{id}"))).await {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(fail(ctx.site, e)),
        }
        let what = format!("deleting server {} ({id})", p.name);
        wait::until(ctx.api, &Call::get(Service::Compute, format!("servers/{id}")), &what, ctx.timeout, ctx.poll, |v| {
            match v.pointer("/server/status").and_then(Value::as_str).unwrap_or("") {
                "DELETED" | "SOFT_DELETED" => Poll::Gone,
                "ERROR" if v.pointer("/server/OS-EXT-STS:task_state").is_none_or(Value::is_null) => {
                    Poll::Failed(format!("Nova could not delete it: {}", v.pointer("/server/fault/message").and_then(Value::as_str).unwrap_or("no fault message")))
                }
                s => Poll::Pending(s.to_string()),
            }
        })
        .await
        .map_err(|e| fail(ctx.site, e))?;
    }
    if let Some(fip) = &p.floating_ip {
        network::delete_floating_ip(ctx, fip).await.map_err(|e| fail(ctx.site, e))?;
    }
    if let Some(sg) = &p.security_group {
        network::delete_security_group(ctx, sg).await.map_err(|e| fail(ctx.site, e))?;
    }
    if let Some(k) = &p.keypair {
        match request(ctx.api, &Call::delete(Service::Compute, format!("os-keypairs/{k}"))).await {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(fail(ctx.site, e)),
        }
    }
    Ok(())
}
