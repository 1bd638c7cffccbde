//! `/deployments/{id}/resources`: one resource per node instance.

use super::{base_url, caller, json_body, page_links, read_json, ApiError, ApiResult, AppState, PageQuery};
use crate::auth::{self, Owner};
use crate::present;
use crate::wire::{ActionRequest, ErrorBody, Page, Resource};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct ResourceQuery {
    /// A TOSCA node type: resources of that type or of a type derived from it.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub page: Option<String>,
    pub size: Option<String>,
    pub sort: Option<String>,
}

async fn deployment_visible(state: &AppState, headers: &HeaderMap, id: &str, mutate: bool) -> ApiResult<()> {
    let p = caller(state, headers).await?;
    if mutate {
        state.auth.require_write(p.as_ref())?;
    }
    let d = state.engine.store.deployment(id).await?.ok_or_else(|| ApiError::not_found(format!("The deployment <{id}> doesn't exist")))?;
    let owner = Owner::from_columns(d.owner_issuer.as_deref(), d.owner_subject.as_deref(), d.owner_org.as_deref());
    let allowed = if mutate { auth::can_mutate(p.as_ref(), owner.as_ref()) } else { auth::can_read(p.as_ref(), owner.as_ref()) };
    if !allowed {
        return Err(ApiError::forbidden(if mutate { "Only the owner of the deployment can perform this operation".to_string() } else { format!("You are not allowed to access the deployment <{id}>") }));
    }
    Ok(())
}

#[utoipa::path(get, path = "/deployments/{id}/resources", params(("id" = String, Path), ResourceQuery), responses(
    (status = 200, body = Page<Resource>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<ResourceQuery>) -> ApiResult<Response> {
    deployment_visible(&state, &headers, &id, false).await?;
    let pq = PageQuery { page: q.page.clone(), size: q.size.clone(), sort: q.sort.clone() };
    let page = pq.resolve(&state.limits)?;
    let kind = q.kind.clone().filter(|t| !t.is_empty());
    let (rows, total) = state.engine.store.resources(&id, kind.as_deref(), Some(page)).await?;
    let base = base_url(&headers);
    let filters: Vec<(&str, String)> = kind.iter().map(|t| ("type", t.clone())).collect();
    let (links, meta) = page_links(&format!("{base}/deployments/{id}/resources"), &filters, &pq, &page, total, true);
    Ok(json_body(&Page { links, content: rows.iter().map(|r| present::resource(r, &base)).collect::<Vec<_>>(), page: meta }))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct FilterQuery {
    /// Required: a TOSCA node type (or an ancestor of the resources' types).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[utoipa::path(get, path = "/deployments/{id}/resources/filter", params(("id" = String, Path), FilterQuery), responses(
    (status = 200, description = "A plain JSON array (not paged)", body = Vec<Resource>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn filter(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<FilterQuery>) -> ApiResult<Response> {
    deployment_visible(&state, &headers, &id, false).await?;
    let kind = q.kind.filter(|t| !t.is_empty()).ok_or_else(|| ApiError::bad_request("Parameter type must not be empty"))?;
    let (rows, _) = state.engine.store.resources(&id, Some(&kind), None).await?;
    let base = base_url(&headers);
    Ok(json_body(&rows.iter().map(|r| present::resource(r, &base)).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/deployments/{id}/resources/{rid}", params(("id" = String, Path), ("rid" = String, Path)), responses(
    (status = 200, body = Resource), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, headers: HeaderMap, Path((id, rid)): Path<(String, String)>) -> ApiResult<Response> {
    deployment_visible(&state, &headers, &id, false).await?;
    let r = state.engine.store.resource(&id, &rid).await?.ok_or_else(|| ApiError::not_found(format!("The resource <{rid}> in deployment <{id}> doesn't exist")))?;
    Ok(json_body(&present::resource(&r, &base_url(&headers))))
}

#[utoipa::path(post, path = "/deployments/{id}/resources/{rid}/actions", params(("id" = String, Path), ("rid" = String, Path)), request_body = ActionRequest, responses(
    (status = 202, description = "Accepted"), (status = 400, description = "Unknown action, resource not found, or the provider cannot start/stop it", body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn action(State(state): State<AppState>, headers: HeaderMap, Path((id, rid)): Path<(String, String)>, body: Body) -> ApiResult<Response> {
    // The body first: an unread body makes the server drop the kept-alive connection.
    let req: Result<ActionRequest, _> = read_json(&headers, body, &state.limits).await;
    deployment_visible(&state, &headers, &id, true).await?;
    let req = req?;
    let kind = req.kind.unwrap_or_default();
    if kind != "start" && kind != "stop" {
        return Err(ApiError::bad_request(format!("Action type `{kind}` is not supported (start, stop)")));
    }
    let d = state.engine.store.deployment(&id).await?.ok_or_else(|| ApiError::not_found(format!("The deployment <{id}> doesn't exist")))?;
    if !crate::wire::Status::parse(&d.status).is_some_and(|s| s.updatable()) {
        return Err(ApiError::conflict(format!("Cannot perform actions on deployment in {} state", d.status)));
    }
    let r = state.engine.store.resource(&id, &rid).await?.ok_or_else(|| ApiError::bad_request(format!("Resource <{rid}> not found in deployment <{id}>")))?;
    // The providers of this build (local) have no start/stop of a single instance.
    Err(ApiError::bad_request(format!("Cannot {kind} resource <{}> ({}): its provider does not support actions", r.id, r.node_type)))
}
