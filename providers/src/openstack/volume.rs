//! BlockStorage nodes as Cinder volumes. Attachments are made by the server side of the
//! `AttachesTo` relationship (server.rs), since Nova owns them.

use super::client::{request, Call, ErrorKind, Service};
use super::select::size_bytes;
use super::wait::{self, Poll};
use super::{cloud_name, fail, private_value, Ctx};
use crate::api::{ApplyRequest, ProviderError, Realized};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct VolumePrivate {
    kind: String,
    name: String,
    /// An existing volume named by `volume_id`: never deleted by Rosca.
    #[serde(default)]
    adopted: bool,
}

/// Cinder sizes are whole GB (GiB in practice): round up, at least 1.
fn size_gb(config: &Value) -> u64 {
    let bytes = config.pointer("/properties/size").and_then(size_bytes).unwrap_or(0.0);
    ((bytes / (1024.0 * 1024.0 * 1024.0)).ceil() as u64).max(1)
}

fn attributes(node: &str, v: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    m.insert("tosca_id".into(), id.clone());
    m.insert("tosca_name".into(), json!(node));
    m.insert("volume_id".into(), id);
    let status = v.get("status").and_then(Value::as_str).unwrap_or("unknown");
    m.insert("state".into(), json!(match status {
        "available" | "in-use" => "available",
        "error" | "error_deleting" | "error_extending" => "error",
        _ => "configuring",
    }));
    let gb = v.get("size").and_then(Value::as_u64).unwrap_or(0);
    m.insert("size".into(), json!(format!("{gb} GiB")));
    m
}

async fn wait_ready(ctx: &Ctx<'_>, id: &str, what: &str) -> Result<Value, ProviderError> {
    let found = wait::until(ctx.api, &Call::get(Service::BlockStorage, format!("volumes/{id}")), what, ctx.timeout, ctx.poll, |v| {
        let vol = &v["volume"];
        match vol.get("status").and_then(Value::as_str).unwrap_or("") {
            "available" | "in-use" => Poll::Done(vol.clone()),
            s @ ("error" | "error_extending" | "error_restoring") => Poll::Failed(format!("Cinder reports status {s}")),
            s => Poll::Pending(s.to_string()),
        }
    })
    .await
    .map_err(|e| fail(ctx.site, e))?;
    found.ok_or_else(|| ProviderError::new(format!("OpenStack site {}: {what}: the volume disappeared", ctx.site)))
}

pub async fn create(ctx: &Ctx<'_>, req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let existing = req.config.pointer("/properties/volume_id").and_then(Value::as_str);
    if let Some(id) = existing {
        let v = wait_ready(ctx, id, &format!("volume {id} (volume_id)")).await?;
        let p = VolumePrivate { kind: "volume".into(), name: v.get("name").and_then(Value::as_str).unwrap_or_default().into(), adopted: true };
        return Ok(Realized { id: id.to_string(), attributes: attributes(&req.node, &v), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None });
    }
    let name = cloud_name(&req.address);
    let mut body = json!({"name": name, "size": size_gb(&req.config), "metadata": {"rosca_address": req.address}});
    if let Some(s) = req.config.pointer("/properties/snapshot_id").and_then(Value::as_str) {
        body["snapshot_id"] = json!(s);
    }
    let v = request(ctx.api, &Call::post(Service::BlockStorage, "volumes", json!({ "volume": body }))).await.map_err(|e| fail(ctx.site, e))?;
    let id = v.pointer("/volume/id").and_then(Value::as_str).unwrap_or_default().to_string();
    let p = VolumePrivate { kind: "volume".into(), name: name.clone(), adopted: false };
    let ready = wait_ready(ctx, &id, &format!("volume {name} ({id})")).await.map_err(|e| ProviderError {
        partial: Some(Box::new(Realized { id: id.clone(), attributes: attributes(&req.node, &v["volume"]), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None })),
        ..e
    })?;
    Ok(Realized { id, attributes: attributes(&req.node, &ready), outputs: BTreeMap::new(), private: private_value(&p), observed: None, tainted: None })
}

pub async fn update(ctx: &Ctx<'_>, prior: &ResourceState, req: &ApplyRequest) -> Result<Realized, ProviderError> {
    let id = prior.id.clone().unwrap_or_default();
    let now = wait_ready(ctx, &id, &format!("volume {id}")).await?;
    let have = now.get("size").and_then(Value::as_u64).unwrap_or(0);
    let want = size_gb(&req.config);
    if want < have {
        return Err(ProviderError::new(format!(
            "OpenStack site {}: volume {id} has {have} GB and Cinder cannot shrink it to {want} GB; keep the size or replace the volume (rosca apply --replace {})",
            ctx.site, prior.address
        )));
    }
    if want > have {
        request(ctx.api, &Call::post(Service::BlockStorage, format!("volumes/{id}/action"), json!({"os-extend": {"new_size": want}})))
            .await
            .map_err(|e| fail(ctx.site, e))?;
    }
    let after = wait_ready(ctx, &id, &format!("extending volume {id} to {want} GB")).await?;
    Ok(Realized { id, attributes: attributes(&req.node, &after), outputs: prior.outputs.clone(), private: prior.private.clone(), observed: None, tainted: None })
}

pub async fn read(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<Option<Realized>, ProviderError> {
    let Some(id) = prior.id.clone() else { return Ok(None) };
    match request(ctx.api, &Call::get(Service::BlockStorage, format!("volumes/{id}"))).await {
        Ok(v) if v.pointer("/volume/status").and_then(Value::as_str) == Some("deleting") => Ok(None),
        Ok(v) => Ok(Some(Realized { id, attributes: attributes(&prior.node, &v["volume"]), outputs: prior.outputs.clone(), private: prior.private.clone(), observed: None, tainted: None })),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(ctx.site, e)),
    }
}

pub async fn delete(ctx: &Ctx<'_>, prior: &ResourceState) -> Result<(), ProviderError> {
    let p: VolumePrivate = serde_json::from_value(prior.private.clone()).unwrap_or_default();
    let Some(id) = prior.id.clone().filter(|_| !p.adopted) else { return Ok(()) };
    // A server deleted just before detaches its volumes asynchronously: wait until free.
    let what = format!("volume {id} to be detached");
    let free = wait::until(ctx.api, &Call::get(Service::BlockStorage, format!("volumes/{id}")), &what, ctx.timeout, ctx.poll, |v| {
        match v.pointer("/volume/status").and_then(Value::as_str).unwrap_or("") {
            "in-use" | "detaching" | "attaching" | "creating" | "extending" => Poll::Pending(v.pointer("/volume/status").and_then(Value::as_str).unwrap_or("").to_string()),
            "deleting" => Poll::Gone,
            _ => Poll::Done(v.clone()),
        }
    })
    .await
    .map_err(|e| fail(ctx.site, e))?;
    if free.is_none() {
        return Ok(());
    }
    match request(ctx.api, &Call::delete(Service::BlockStorage, format!("volumes/{id}"))).await {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(ctx.site, e)),
    }
    wait::until(ctx.api, &Call::get(Service::BlockStorage, format!("volumes/{id}")), &format!("deleting volume {id}"), ctx.timeout, ctx.poll, |v| {
        match v.pointer("/volume/status").and_then(Value::as_str).unwrap_or("") {
            "error_deleting" => Poll::Failed("Cinder reports status error_deleting".into()),
            s => Poll::Pending(s.to_string()),
        }
    })
    .await
    .map_err(|e| fail(ctx.site, e))?;
    Ok(())
}
