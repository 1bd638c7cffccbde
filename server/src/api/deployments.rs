//! `/deployments` and `/deployments/{id}`: list, create, show, update (an incremental
//! re-plan), reset, delete, template, log, extrainfo, and Rosca's `plan` and `state`.

use super::{base_url, caller, json_body, json_status, page_links, read_json, text_body, ApiError, ApiResult, AppState, PageQuery};
use crate::auth::{self, ListScope, Owner};
use crate::deploy;
use crate::engine::json_options;
use crate::present;
use crate::store::{DeploymentRow, JobRow, ListFilter};
use crate::wire::{self, Deployment, DeploymentRequest, ErrorBody, Page, ResetRequest, Status};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// `me`, or `<subject>@<issuer>`.
    pub created_by: Option<String>,
    pub user_group: Option<String>,
    pub page: Option<String>,
    pub size: Option<String>,
    pub sort: Option<String>,
}

fn owner_of(d: &DeploymentRow) -> Option<Owner> {
    Owner::from_columns(d.owner_issuer.as_deref(), d.owner_subject.as_deref(), d.owner_org.as_deref())
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("The deployment <{id}> doesn't exist"))
}

/// The deployment, if the caller may read it.
async fn readable(state: &AppState, headers: &HeaderMap, id: &str) -> ApiResult<(DeploymentRow, Option<auth::Principal>)> {
    let p = caller(state, headers).await?;
    let d = state.engine.store.deployment(id).await?.ok_or_else(|| missing(id))?;
    if !auth::can_read(p.as_ref(), owner_of(&d).as_ref()) {
        return Err(ApiError::forbidden(format!("You are not allowed to access the deployment <{id}>")));
    }
    Ok((d, p))
}

/// The deployment, if the caller owns it (mutations, log, extrainfo, state).
async fn owned(state: &AppState, headers: &HeaderMap, id: &str, write: bool) -> ApiResult<(DeploymentRow, Option<auth::Principal>)> {
    let p = caller(state, headers).await?;
    if write {
        state.auth.require_write(p.as_ref())?;
    }
    owned_by(state, id, p).await
}

/// The ownership check alone, for handlers that authenticated and read their body first. A
/// body is always read before an early error: a request body left unread makes the server
/// drop the kept-alive connection, and the client's next request on it fails.
async fn owned_by(state: &AppState, id: &str, p: Option<auth::Principal>) -> ApiResult<(DeploymentRow, Option<auth::Principal>)> {
    let d = state.engine.store.deployment(id).await?.ok_or_else(|| missing(id))?;
    if !auth::can_mutate(p.as_ref(), owner_of(&d).as_ref()) {
        return Err(ApiError::forbidden("Only the owner of the deployment can perform this operation"));
    }
    Ok((d, p))
}

#[utoipa::path(get, path = "/deployments", params(ListQuery), responses(
    (status = 200, description = "A page of deployments", body = Page<Deployment>),
    (status = 400, description = "Bad `createdBy` or paging", body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, description = "Another user's deployments, not admin", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let p = caller(&state, &headers).await?;
    let scope = auth::list_scope(p.as_ref(), q.created_by.as_deref()).map_err(|(s, m)| ApiError::new(s, m))?;
    let mut filter = ListFilter { user_group: q.user_group.clone().filter(|g| !g.is_empty()), ..ListFilter::default() };
    match scope {
        ListScope::All => {}
        ListScope::Owner { issuer, subject } => filter.owner = Some((issuer, subject)),
        ListScope::Organisation { issuer, organisation } => filter.org = Some((issuer, organisation)),
    }
    let pq = PageQuery { page: q.page.clone(), size: q.size.clone(), sort: q.sort.clone() };
    let page = pq.resolve(&state.limits)?;
    let (rows, total) = state.engine.store.list_deployments(&filter, page).await?;
    let base = base_url(&headers);
    let mut filters = Vec::new();
    if let Some(c) = &q.created_by {
        filters.push(("createdBy", c.clone()));
    }
    if let Some(g) = &q.user_group {
        filters.push(("userGroup", g.clone()));
    }
    let (links, meta) = page_links(&format!("{base}/deployments"), &filters, &pq, &page, total, false);
    let content: Vec<Deployment> = rows.iter().map(|r| present::deployment(r, Some(&base))).collect();
    Ok(json_body(&Page { links, content, page: meta }))
}

/// Checks the run options as upstream's bean validation does.
fn check_options(req: &DeploymentRequest) -> ApiResult<()> {
    if let Some(cb) = &req.callback {
        let ok = (cb.starts_with("http:") || cb.starts_with("https:")) && reqwest::Url::parse(cb).is_ok();
        if !ok {
            return Err(ApiError::bad_request("Callback value, if provided, must be a valid HTTP or HTTPS URL"));
        }
    }
    for (name, v) in [("timeoutMins", req.timeout_mins), ("providerTimeoutMins", req.provider_timeout_mins), ("maxProvidersRetry", req.max_providers_retry)] {
        if v == Some(0) {
            return Err(ApiError::bad_request(format!("{name} must be greater than or equal to 1")));
        }
    }
    if let (Some(t), Some(p)) = (req.timeout_mins, req.provider_timeout_mins) {
        if p > t {
            return Err(ApiError::bad_request("ProviderTimeout must be <= Timeout"));
        }
    }
    Ok(())
}

fn template_of(req: &DeploymentRequest) -> ApiResult<String> {
    req.template.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| ApiError::bad_request("A TOSCA template must be provided"))
}

/// Compiles off the async threads: a large template takes CPU time.
async fn compile(state: &AppState, template: String, params: Map<String, Value>) -> ApiResult<tosca::topology::Topology> {
    let settings = state.engine.settings.templates.clone();
    tokio::task::spawn_blocking(move || deploy::compile(&template, &params, &settings)).await.map_err(ApiError::internal)?.map_err(ApiError::bad_request)
}

#[utoipa::path(post, path = "/deployments", request_body = DeploymentRequest, responses(
    (status = 201, description = "Accepted: CREATE_IN_PROGRESS", body = Deployment),
    (status = 400, description = "Invalid body, template or inputs (every diagnostic with line:col)", body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let p = caller(&state, &headers).await?;
    state.auth.require_write(p.as_ref())?;
    let req: DeploymentRequest = read_json(&headers, body, &state.limits).await?;
    let template = template_of(&req)?;
    check_options(&req)?;
    let params = req.parameters.clone().unwrap_or_default();
    let topology = compile(&state, template.clone(), params.clone()).await?;
    let id = wire::new_uuid();
    check_plannable(&state, &topology, &id)?;
    let now = wire::now_millis();
    let rows = deploy::instance_rows(&topology, &state::StateDoc::new(String::new()), &id, "INITIAL");
    let owner = p.as_ref().map(|p| p.owner());
    let row = DeploymentRow {
        id: id.clone(),
        created_at: now,
        updated_at: now,
        status: Status::CreateInProgress.as_str().into(),
        status_reason: None,
        task: "NONE".into(),
        physical_id: None,
        callback: req.callback.clone(),
        user_group: req.user_group.clone(),
        owner_issuer: owner.as_ref().map(|o| o.issuer.clone()),
        owner_subject: owner.as_ref().map(|o| o.subject.clone()),
        owner_org: owner.as_ref().and_then(|o| o.organisation.clone()),
        template,
        parameters: params,
        outputs: Map::new(),
        options: json_options(&req),
        cloud_provider_name: None,
    };
    let job = JobRow { id: wire::new_uuid(), deployment_id: id.clone(), kind: "create".into(), payload: Value::Null, attempts: 0 };
    state.engine.store.create_deployment(&row, &rows, &job).await?;
    state.engine.notify();
    Ok(json_status(StatusCode::CREATED, &present::deployment(&row, Some(&base_url(&headers)))))
}

#[utoipa::path(get, path = "/deployments/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = Deployment), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let (d, _) = readable(&state, &headers, &id).await?;
    Ok(json_body(&present::deployment(&d, Some(&base_url(&headers)))))
}

/// Plans against empty state, so what only the planner finds (a missing script, a cycle
/// through attribute references) is a 400 now rather than a failed deployment later.
fn check_plannable(state: &AppState, topology: &tosca::topology::Topology, id: &str) -> ApiResult<()> {
    let registry = state.engine.registry(id);
    planner::plan(&planner::PlanRequest {
        topology,
        prior: &state::StateDoc::new(String::new()),
        registry: &registry,
        mode: planner::PlanMode::Normal,
        replace: vec![],
        targets: vec![],
        base_dir: state.engine.workdir(id),
        template: String::new(),
        digest: String::new(),
        refreshed: false,
        drift: vec![],
        created: String::new(),
    })
    .map(|_| ())
    .map_err(|e| ApiError::bad_request(format!("The template cannot be deployed: {e}")))
}

/// Upstream's `removal_list` names resource uuids; an entry given in this request (template or
/// parameters) that names no resource of this deployment is an error, not silently ignored. An
/// entry only carried over in the stored parameters from an earlier update names what that
/// update removed, and is ignored. (An instance address such as `vm[1]` is accepted too.)
async fn check_removal_lists(state: &AppState, topology: &tosca::topology::Topology, id: &str, given: &str) -> ApiResult<()> {
    let (rows, _) = state.engine.store.resources(id, None, None).await?;
    for (name, node) in &topology.nodes {
        for entry in node.scaling.iter().flat_map(|s| s.removal_list.iter()) {
            let known = rows.iter().any(|r| r.node_name == *name && (r.id == *entry || r.address == *entry));
            if !known && given.contains(entry.as_str()) {
                return Err(ApiError::bad_request(format!("removal_list of node {name} names {entry}, which is not a resource of node {name} in deployment <{id}>")));
            }
        }
    }
    Ok(())
}

/// The stored deployment with a PUT body applied (parameters merged, template replaced,
/// callback replaced only when given).
fn updated(d: &DeploymentRow, req: &DeploymentRequest, template: String) -> DeploymentRow {
    let mut n = d.clone();
    for (k, v) in req.parameters.clone().unwrap_or_default() {
        n.parameters.insert(k, v);
    }
    n.template = template;
    if req.callback.is_some() {
        n.callback = req.callback.clone();
    }
    let mut options = json_options(req);
    if let Some(e) = d.options.get("cloudProviderEndpoint") {
        options.insert("cloudProviderEndpoint".into(), e.clone());
    }
    n.options = options;
    n
}

#[utoipa::path(put, path = "/deployments/{id}", params(("id" = String, Path)), request_body = DeploymentRequest, responses(
    (status = 202, description = "Accepted: UPDATE_IN_PROGRESS, an incremental re-plan of the deployment"),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "Not in CREATE_COMPLETE, UPDATE_COMPLETE or UPDATE_FAILED", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn update(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let p = caller(&state, &headers).await?;
    state.auth.require_write(p.as_ref())?;
    let req: DeploymentRequest = read_json(&headers, body, &state.limits).await?;
    let (d, _) = owned_by(&state, &id, p).await?;
    let status = Status::parse(&d.status).unwrap_or(Status::Unknown);
    if !status.updatable() {
        return Err(ApiError::conflict(format!("Cannot update a deployment in {} state", status.as_str())));
    }
    let template = template_of(&req)?;
    check_options(&req)?;
    let n = updated(&d, &req, template);
    let topology = compile(&state, n.template.clone(), n.parameters.clone()).await?;
    check_plannable(&state, &topology, &id)?;
    let given = format!("{}\n{}", n.template, serde_json::to_string(&req.parameters).unwrap_or_default());
    check_removal_lists(&state, &topology, &id, &given).await?;
    let job = JobRow { id: wire::new_uuid(), deployment_id: id.clone(), kind: "update".into(), payload: Value::Null, attempts: 0 };
    if !state.engine.store.start_update(&n, &job).await? {
        let now = state.engine.store.deployment(&id).await?.map(|d| d.status).unwrap_or_default();
        return Err(ApiError::conflict(format!("Cannot update a deployment in {now} state")));
    }
    state.engine.publish(crate::engine::Change::status(id, Status::UpdateInProgress.as_str(), None));
    state.engine.notify();
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(patch, path = "/deployments/{id}", params(("id" = String, Path)), request_body = ResetRequest, responses(
    (status = 204, description = "Reset to DELETE_FAILED"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reset(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let p = caller(&state, &headers).await?;
    state.auth.require_write(p.as_ref())?;
    let req: ResetRequest = read_json(&headers, body, &state.limits).await?;
    let (d, _) = owned_by(&state, &id, p).await?;
    let wanted = req.status.unwrap_or_default();
    if wanted != "DELETE_FAILED" {
        return Err(ApiError::bad_request(format!("Cannot reset deployment: illegal status {wanted}.")));
    }
    if !state.engine.store.reset(&id).await? {
        return Err(ApiError::conflict(format!("Cannot reset a deployment in {} state", d.status)));
    }
    state.engine.publish(crate::engine::Change::status(id, "DELETE_FAILED", None));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(delete, path = "/deployments/{id}", params(("id" = String, Path)), responses(
    (status = 204, description = "Accepted: DELETE_IN_PROGRESS; the deployment disappears once destroyed"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let (d, _) = owned(&state, &headers, &id, true).await?;
    let job = JobRow { id: wire::new_uuid(), deployment_id: id.clone(), kind: "delete".into(), payload: Value::Null, attempts: 0 };
    if !state.engine.store.start_delete(&id, &job).await? {
        let now = state.engine.store.deployment(&id).await?.map(|d| d.status).unwrap_or(d.status);
        return Err(ApiError::conflict(format!("Deployment already in {now} state.")));
    }
    state.engine.publish(crate::engine::Change::status(id, Status::DeleteInProgress.as_str(), None));
    state.engine.notify();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/deployments/{id}/template", params(("id" = String, Path)), responses(
    (status = 200, description = "The TOSCA template as stored", content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn template(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let (d, _) = readable(&state, &headers, &id).await?;
    Ok(text_body(d.template))
}

#[utoipa::path(get, path = "/deployments/{id}/log", params(("id" = String, Path)), responses(
    (status = 200, description = "What the applier printed, with operation failures", content_type = "text/plain", body = String),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    owned(&state, &headers, &id, false).await?;
    Ok(text_body(state.engine.store.log(&id).await?))
}

async fn state_doc(state: &AppState, id: &str) -> ApiResult<state::StateDoc> {
    let backend = crate::dbstate::DbStateBackend::new(state.engine.store.clone(), id.to_string(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || state::StateBackend::read(&backend))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
        .map(|d| d.unwrap_or_else(|| state::StateDoc::new(String::new())))
}

#[utoipa::path(get, path = "/deployments/{id}/extrainfo", params(("id" = String, Path)), responses(
    (status = 200, description = "Per-instance provider details (JSON in a text/plain body, as upstream)", content_type = "text/plain", body = String),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn extrainfo(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    owned(&state, &headers, &id, false).await?;
    let doc = state_doc(&state, &id).await?.redacted();
    let info: Vec<Value> = doc
        .resources
        .iter()
        .map(|r| serde_json::json!({"address": r.address, "toscaNodeName": r.node, "toscaNodeType": r.type_name, "provider": r.provider, "physicalId": r.id, "status": r.status, "attributes": r.attributes}))
        .collect();
    Ok(text_body(serde_json::to_string(&info).unwrap_or_else(|_| "[]".into())))
}

#[utoipa::path(get, path = "/deployments/{id}/state", params(("id" = String, Path)), responses(
    (status = 200, description = "The deployment's state document (docs/state.md), sensitive values masked", body = Object),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn state(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    owned(&state, &headers, &id, false).await?;
    let doc = state_doc(&state, &id).await?.redacted();
    Ok(json_body(&doc))
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct PlanQuery {
    /// `json` (default), `markdown` (a pull-request comment) or `text`.
    pub format: Option<String>,
}

#[utoipa::path(post, path = "/deployments/{id}/plan", params(("id" = String, Path), PlanQuery), request_body = DeploymentRequest, responses(
    (status = 200, description = "The plan of this update (docs/plan-json.md), nothing changed", body = Object),
    (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn plan(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<PlanQuery>, body: Body) -> ApiResult<Response> {
    let req: DeploymentRequest = read_json(&headers, body, &state.limits).await?;
    let (d, _) = readable(&state, &headers, &id).await?;
    let template = template_of(&req)?;
    let n = updated(&d, &req, template);
    let topology = compile(&state, n.template.clone(), n.parameters.clone()).await?;
    let prior = state_doc(&state, &id).await?;
    let registry = state.engine.registry(&id);
    let plan = planner::plan(&planner::PlanRequest {
        topology: &topology,
        prior: &prior,
        registry: &registry,
        mode: planner::PlanMode::Normal,
        replace: vec![],
        targets: vec![],
        base_dir: state.engine.settings.data_dir.join("deployments").join(&id),
        template: format!("deployment {id}"),
        digest: String::new(),
        refreshed: false,
        drift: vec![],
        created: planner::time::now(),
    })
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(match q.format.as_deref().unwrap_or("json") {
        "markdown" => ([(axum::http::header::CONTENT_TYPE, "text/markdown;charset=UTF-8")], planner::render::markdown(&plan, &planner::render::MarkdownOptions::default()).join("\n\n")).into_response(),
        "text" => text_body(planner::render::human(&plan, &planner::render::HumanOptions::default())),
        "json" => json_body(&planner::render::json(&plan)),
        other => return Err(ApiError::bad_request(format!("format `{other}` is not one of json, markdown, text"))),
    })
}
