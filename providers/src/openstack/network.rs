//! Neutron: the network servers join, security groups, floating IPs, and the
//! `tosca.nodes.network.Network` / `Port` nodes.

use super::client::{request, Call, CallError, ErrorKind, Service};
use super::select::Ingress;
use super::wait::{self, Poll};
use super::{cloud_name, fail, private_value, Ctx};
use crate::api::{ApplyRequest, ProviderError, Realized};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;

fn list(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

/// A network by id or name; an ambiguous name is an error.
async fn find_network(ctx: &Ctx<'_>, want: &str, what: &str) -> Result<Value, CallError> {
    match request(ctx.api, &Call::get(Service::Network, format!("networks/{want}"))).await {
        Ok(v) => return Ok(v["network"].clone()),
        Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::Rejected => {}
        Err(e) => return Err(e),
    }
    let v = request(ctx.api, &Call::get(Service::Network, "networks").query("name", want)).await?;
    let found = list(&v, "networks");
    match found.len() {
        1 => Ok(found[0].clone()),
        0 => Err(CallError::new(ErrorKind::Rejected, format!("no network `{want}` ({what}) in Neutron"))),
        n => Err(CallError::new(ErrorKind::Rejected, format!("{n} networks are named `{want}` ({what}); give its id instead"))),
    }
}

/// The network a new server joins: the site's `network`, else the only non-external network
/// the project can use, else none (a server without a NIC).
pub async fn server_network(ctx: &Ctx<'_>) -> Result<Option<String>, CallError> {
    if let Some(n) = &ctx.options.network {
        return Ok(id_of(&find_network(ctx, n, "the site's network").await?));
    }
    let v = request(ctx.api, &Call::get(Service::Network, "networks").query("router:external", "false")).await?;
    let nets = list(&v, "networks");
    match nets.len() {
        0 => Ok(None),
        1 => Ok(id_of(&nets[0])),
        _ => {
            let mut names: Vec<&str> = nets.iter().filter_map(|n| n.get("name").and_then(Value::as_str)).collect();
            names.sort();
            Err(CallError::new(
                ErrorKind::Setup,
                format!("the project can use several networks ({}); set `network` in the site's [sites.NAME] table of rosca.toml", names.join(", ")),
            ))
        }
    }
}

pub async fn create_security_group(ctx: &Ctx<'_>, name: &str, rules: &[Ingress]) -> Result<String, CallError> {
    let body = json!({"security_group": {"name": name, "description": "made by Rosca from the endpoint's ports"}});
    let v = request(ctx.api, &Call::post(Service::Network, "security-groups", body)).await?;
    let id = v.pointer("/security_group/id").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Err(e) = add_rules(ctx, &id, rules).await {
        let _ = delete_security_group(ctx, &id).await;
        return Err(e);
    }
    Ok(id)
}

async fn add_rules(ctx: &Ctx<'_>, sg: &str, rules: &[Ingress]) -> Result<(), CallError> {
    for r in rules {
        let body = json!({"security_group_rule": {
            "security_group_id": sg,
            "direction": "ingress",
            "ethertype": if r.cidr.contains(':') { "IPv6" } else { "IPv4" },
            "protocol": r.protocol,
            "port_range_min": r.from,
            "port_range_max": r.to,
            "remote_ip_prefix": r.cidr,
        }});
        request(ctx.api, &Call::post(Service::Network, "security-group-rules", body)).await?;
    }
    Ok(())
}

/// Makes the group's ingress rules exactly `rules`.
pub async fn replace_rules(ctx: &Ctx<'_>, sg: &str, rules: &[Ingress]) -> Result<(), CallError> {
    let v = request(ctx.api, &Call::get(Service::Network, "security-group-rules").query("security_group_id", sg).query("direction", "ingress")).await?;
    for r in list(&v, "security_group_rules") {
        if let Some(id) = id_of(&r) {
            match request(ctx.api, &Call::delete(Service::Network, format!("security-group-rules/{id}"))).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    add_rules(ctx, sg, rules).await
}

pub async fn delete_security_group(ctx: &Ctx<'_>, sg: &str) -> Result<(), CallError> {
    // Neutron answers 409 while a port of the deleted server still uses the group; the retry
    // layer waits that out.
    match request(ctx.api, &Call::delete(Service::Network, format!("security-groups/{sg}"))).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Allocates a floating IP on the external network and binds it to the server's first port.
/// Returns the floating IP's id and address.
pub async fn associate_floating_ip(ctx: &Ctx<'_>, server: &str) -> Result<(String, String), CallError> {
    let external = match &ctx.options.floating_network {
        Some(n) => find_network(ctx, n, "the site's floating_network").await?,
        None => {
            let v = request(ctx.api, &Call::get(Service::Network, "networks").query("router:external", "true")).await?;
            let nets = list(&v, "networks");
            match nets.len() {
                1 => nets[0].clone(),
                0 => return Err(CallError::new(ErrorKind::Setup, "the endpoint is public but the cloud has no external network for floating IPs")),
                _ => return Err(CallError::new(ErrorKind::Setup, "several external networks: set `floating_network` in the site's table of rosca.toml")),
            }
        }
    };
    let ports = request(ctx.api, &Call::get(Service::Network, "ports").query("device_id", server)).await?;
    let Some(port) = list(&ports, "ports").first().and_then(id_of) else {
        return Err(CallError::new(ErrorKind::Setup, format!("server {server} has no port to bind a floating IP to (it joined no network)")));
    };
    let body = json!({"floatingip": {"floating_network_id": id_of(&external), "port_id": port, "description": format!("Rosca: server {server}")}});
    let v = request(ctx.api, &Call::post(Service::Network, "floatingips", body)).await?;
    let field = |k: &str| v.pointer(&format!("/floatingip/{k}")).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((field("id"), field("floating_ip_address")))
}

pub async fn delete_floating_ip(ctx: &Ctx<'_>, id: &str) -> Result<(), CallError> {
    match request(ctx.api, &Call::delete(Service::Network, format!("floatingips/{id}"))).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct NetworkPrivate {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subnet: Option<String>,
    /// An existing network the template referred to: never deleted by Rosca.
    #[serde(default)]
    adopted: bool,
}

fn prop<'a>(req: &'a ApplyRequest, k: &str) -> Option<&'a Value> {
    req.config.get("properties").and_then(|p| p.get(k)).filter(|v| !v.is_null())
}

fn prop_str(req: &ApplyRequest, k: &str) -> Option<String> {
    prop(req, k).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn network_attributes(node: &str, net: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    let id = net.get("id").cloned().unwrap_or(Value::Null);
    m.insert("tosca_id".into(), id.clone());
    m.insert("tosca_name".into(), json!(node));
    m.insert("state".into(), json!(if net.get("status").and_then(Value::as_str) == Some("ACTIVE") { "available" } else { "configuring" }));
    m.insert("network_id".into(), id);
    m.insert("network_name".into(), net.get("name").cloned().unwrap_or(Value::Null));
    m.insert("segmentation_id".into(), net.get("provider:segmentation_id").cloned().unwrap_or(Value::Null));
    m
}

pub async fn create_network(ctx: &Ctx<'_>, req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let f = |e| fail(ctx.site, e);
    let cidr = prop_str(req, "cidr");
    // A network named or identified without a CIDR to make is an existing one.
    let existing = prop_str(req, "network_id").or_else(|| if cidr.is_none() { prop_str(req, "network_name") } else { None });
    if let Some(want) = existing {
        let net = find_network(ctx, &want, "network_id / network_name").await.map_err(f)?;
        let p = NetworkPrivate { kind: "network".into(), subnet: None, adopted: true };
        return Ok(Realized { id: id_of(&net).unwrap_or_default(), attributes: network_attributes(&req.node, &net), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None });
    }
    let name = prop_str(req, "network_name").unwrap_or_else(|| cloud_name(&req.address));
    let v = request(ctx.api, &Call::post(Service::Network, "networks", json!({"network": {"name": name, "admin_state_up": true}}))).await.map_err(f)?;
    let net = v["network"].clone();
    let id = id_of(&net).unwrap_or_default();
    let mut p = NetworkPrivate { kind: "network".into(), subnet: None, adopted: false };
    if let Some(cidr) = cidr {
        let mut subnet = json!({
            "network_id": id,
            "name": name,
            "cidr": cidr,
            "ip_version": prop(req, "ip_version").and_then(Value::as_u64).unwrap_or(4),
            "enable_dhcp": prop(req, "dhcp_enabled").and_then(Value::as_bool).unwrap_or(true),
        });
        if let Some(g) = prop_str(req, "gateway_ip") {
            subnet["gateway_ip"] = json!(g);
        }
        if let (Some(s), Some(e)) = (prop_str(req, "start_ip"), prop_str(req, "end_ip")) {
            subnet["allocation_pools"] = json!([{"start": s, "end": e}]);
        }
        match request(ctx.api, &Call::post(Service::Network, "subnets", json!({ "subnet": subnet }))).await {
            Ok(v) => p.subnet = v.pointer("/subnet/id").and_then(Value::as_str).map(str::to_string),
            Err(e) => {
                let partial = Realized { id: id.clone(), attributes: network_attributes(&req.node, &net), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None };
                return Err(ProviderError { partial: Some(Box::new(partial)), ..fail(ctx.site, e) });
            }
        }
    }
    Ok(Realized { id, attributes: network_attributes(&req.node, &net), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None })
}

pub async fn read_network(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<Option<Realized>, ProviderError> {
    let Some(id) = prior.id.clone() else { return Ok(None) };
    match request(ctx.api, &Call::get(Service::Network, format!("networks/{id}"))).await {
        Ok(v) => Ok(Some(Realized {
            id,
            attributes: network_attributes(&prior.node, &v["network"]),
            outputs: prior.outputs.clone(),
            private: prior.private.clone(),
            observed: None, tainted: None,
        })),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(ctx.site, e)),
    }
}

pub async fn delete_network(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<(), ProviderError> {
    let p: NetworkPrivate = serde_json::from_value(prior.private.clone()).unwrap_or_default();
    let Some(id) = prior.id.clone().filter(|_| !p.adopted) else { return Ok(()) };
    // Deleting the network deletes its subnets; 409 while ports remain is retried.
    match request(ctx.api, &Call::delete(Service::Network, format!("networks/{id}"))).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(ctx.site, e)),
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PortPrivate {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<String>,
}

fn port_attributes(node: &str, port: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tosca_id".into(), port.get("id").cloned().unwrap_or(Value::Null));
    m.insert("tosca_name".into(), json!(node));
    m.insert("state".into(), json!(port.get("status").and_then(Value::as_str).unwrap_or("DOWN").to_ascii_lowercase()));
    m.insert("ip_address".into(), port.pointer("/fixed_ips/0/ip_address").cloned().unwrap_or(Value::Null));
    m.insert("mac_address".into(), port.get("mac_address").cloned().unwrap_or(Value::Null));
    m
}

/// A port on the `link` network, plugged into the `binding` server.
pub async fn create_port(ctx: &Ctx<'_>, req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let f = |e| fail(ctx.site, e);
    let target = |suffix: &str| req.relationships.iter().find(|r| r.type_name.ends_with(suffix));
    let Some(network) = target("LinksTo").and_then(|r| r.target_attributes.get("network_id")).and_then(Value::as_str) else {
        return Err(ProviderError::new(format!("OpenStack site {}: port {} has no `link` requirement to a network (tosca.relationships.network.LinksTo)", ctx.site, req.address)));
    };
    let server = target("BindsTo").and_then(|r| r.target_attributes.get("tosca_id")).and_then(Value::as_str).map(str::to_string);
    let mut port = json!({"network_id": network, "name": cloud_name(&req.address)});
    if let Some(ip) = prop_str(req, "ip_address") {
        port["fixed_ips"] = json!([{"ip_address": ip}]);
    }
    let v = request(ctx.api, &Call::post(Service::Network, "ports", json!({ "port": port }))).await.map_err(f)?;
    let port = v["port"].clone();
    let id = id_of(&port).unwrap_or_default();
    let mut p = PortPrivate { kind: "port".into(), server: None };
    if let Some(server) = server {
        let body = json!({"interfaceAttachment": {"port_id": id}});
        if let Err(e) = request(ctx.api, &Call::post(Service::Compute, format!("servers/{server}/os-interface"), body)).await {
            let partial = Realized { id: id.clone(), attributes: port_attributes(&req.node, &port), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None };
            return Err(ProviderError { partial: Some(Box::new(partial)), ..fail(ctx.site, e) });
        }
        p.server = Some(server);
    }
    let now = request(ctx.api, &Call::get(Service::Network, format!("ports/{id}"))).await.map(|v| v["port"].clone()).unwrap_or(port);
    Ok(Realized { id, attributes: port_attributes(&req.node, &now), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None })
}

pub async fn read_port(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<Option<Realized>, ProviderError> {
    let Some(id) = prior.id.clone() else { return Ok(None) };
    match request(ctx.api, &Call::get(Service::Network, format!("ports/{id}"))).await {
        Ok(v) => Ok(Some(Realized { id, attributes: port_attributes(&prior.node, &v["port"]), outputs: prior.outputs.clone(), private: prior.private.clone(), observed: None, tainted: None })),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(ctx.site, e)),
    }
}

pub async fn delete_port(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<(), ProviderError> {
    let p: PortPrivate = serde_json::from_value(prior.private.clone()).unwrap_or_default();
    let Some(id) = prior.id.clone() else { return Ok(()) };
    if let Some(server) = &p.server {
        match request(ctx.api, &Call::delete(Service::Compute, format!("servers/{server}/os-interface/{id}"))).await {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(fail(ctx.site, e)),
        }
        // Detaching is asynchronous: wait until the port no longer belongs to the server.
        let what = format!("detaching port {id} from server {server}");
        wait::until(ctx.api, &Call::get(Service::Network, format!("ports/{id}")), &what, ctx.timeout, ctx.poll, |v| {
            match v.pointer("/port/device_id").and_then(Value::as_str) {
                Some(d) if d == server => Poll::Pending("attached".into()),
                _ => Poll::Done(v.clone()),
            }
        })
        .await
        .map_err(|e| fail(ctx.site, e))?;
    }
    match request(ctx.api, &Call::delete(Service::Network, format!("ports/{id}"))).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(ctx.site, e)),
    }
}
