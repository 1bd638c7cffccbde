//! The small endpoints (`/`, `/info`, `/configuration`, `/healthz`), schedules (501), the
//! event stream, and the OpenAPI document.

use super::{json_body, ApiError, ApiResult, AppState};
use crate::wire::{ErrorBody, Page, PageMeta};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use utoipa::OpenApi;

#[utoipa::path(get, path = "/", responses((status = 200, description = "The service name", content_type = "text/plain", body = String)))]
pub async fn root() -> Response {
    super::text_body("INDIGO-Orchestrator".into())
}

#[utoipa::path(get, path = "/info", responses((status = 200, description = "Build information", body = Object)))]
pub async fn info() -> Response {
    json_body(&serde_json::json!({"build": {"name": "rosca", "version": env!("CARGO_PKG_VERSION"), "artifact": "rosca-server"}}))
}

#[utoipa::path(get, path = "/configuration", responses((status = 200, description = "Endpoints of the services around the orchestrator (strings)", body = Object), (status = 401, body = ErrorBody)))]
pub async fn configuration(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    super::caller(&state, &headers).await?;
    Ok(json_body(&*state.endpoints))
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The store answers", body = Object), (status = 503, body = ErrorBody)))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Response> {
    sqlx::query("SELECT 1").execute(state.engine.store.pool()).await.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the store does not answer: {e}")))?;
    Ok(json_body(&serde_json::json!({"status": "ok"})))
}

#[utoipa::path(get, path = "/schedules", responses((status = 501, description = "Data-movement schedules (Rucio) are not implemented", body = ErrorBody)))]
pub async fn schedules() -> ApiError {
    schedules_unimplemented()
}

#[utoipa::path(post, path = "/schedules", responses((status = 501, description = "Data-movement schedules (Rucio) are not implemented", body = ErrorBody)))]
pub async fn create_schedule() -> ApiError {
    schedules_unimplemented()
}

fn schedules_unimplemented() -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, "Deployment schedules (Rucio data movement) are not implemented by this orchestrator")
}

#[utoipa::path(get, path = "/deployments/{id}/events", params(("id" = String, Path)), responses(
    (status = 200, description = "Server-Sent Events: `status` and `resource` changes of the deployment, as JSON", content_type = "text/event-stream", body = String),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn events(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>> {
    let p = super::caller(&state, &headers).await?;
    let d = state.engine.store.deployment(&id).await?.ok_or_else(|| ApiError::not_found(format!("The deployment <{id}> doesn't exist")))?;
    let owner = crate::auth::Owner::from_columns(d.owner_issuer.as_deref(), d.owner_subject.as_deref(), d.owner_org.as_deref());
    if !crate::auth::can_read(p.as_ref(), owner.as_ref()) {
        return Err(ApiError::forbidden(format!("You are not allowed to access the deployment <{id}>")));
    }
    let rx = state.engine.events.subscribe();
    let first = SseEvent::default().event("status").data(serde_json::json!({"deployment": id, "kind": "status", "status": d.status}).to_string());
    let stream = futures_util::stream::unfold((Some(first), rx, id), |(first, mut rx, id)| async move {
        if let Some(f) = first {
            return Some((Ok(f), (None, rx, id)));
        }
        loop {
            match rx.recv().await {
                Ok(c) if c.deployment == id => {
                    let ev = SseEvent::default().event(c.kind).data(serde_json::to_string(&c).unwrap_or_default());
                    return Some((Ok(ev), (None, rx, id)));
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Rosca REST API", description = "Wire-compatible with the INDIGO PaaS Orchestrator API, plus plan, state, events and health endpoints.", version = env!("CARGO_PKG_VERSION")),
    paths(
        root, info, configuration, healthz, openapi_json, schedules, create_schedule, events,
        super::deployments::list, super::deployments::create, super::deployments::show, super::deployments::update,
        super::deployments::reset, super::deployments::delete, super::deployments::template, super::deployments::log,
        super::deployments::extrainfo, super::deployments::state, super::deployments::plan,
        super::resources::list, super::resources::filter, super::resources::show, super::resources::action,
    ),
    components(schemas(ErrorBody, PageMeta, crate::wire::Deployment, crate::wire::Resource, crate::wire::Link, crate::wire::Owner,
        crate::wire::Status, crate::wire::NodeState, crate::wire::Task, crate::wire::DeploymentRequest, crate::wire::ActionRequest,
        crate::wire::ResetRequest, Page<crate::wire::Deployment>, Page<crate::wire::Resource>)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    json_body(&openapi())
}
