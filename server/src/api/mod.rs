//! The HTTP API (axum): INDIGO-compatible routes plus Rosca's additions. Handlers are thin:
//! parse and authorize, call the store or the engine, present rows as wire bodies.

mod deployments;
mod extra;
mod resources;
pub mod state;

use crate::auth::{Auth, AuthError, Principal};
use crate::engine::Engine;
use crate::wire::ErrorBody;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub use extra::openapi;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub auth: Auth,
    pub limits: Arc<Limits>,
    /// `GET /configuration` values (`cpr_url`, `im_url`, ...).
    pub endpoints: Arc<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted request body (413 above).
    pub max_body: usize,
    /// Largest `size` of a page.
    pub max_page: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body: 4 << 20, max_page: 2000 }
    }
}

/// The whole application, ready to serve (trailing slashes tolerated: a layer added with
/// `Router::layer` runs after routing, so the routes sit behind a path-normalizing fallback).
pub fn router(state: AppState) -> Router {
    let routes = tower::Layer::layer(&tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(), routes(state));
    Router::new().fallback_service(routes)
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(extra::root))
        .route("/info", get(extra::info))
        .route("/configuration", get(extra::configuration))
        .route("/healthz", get(extra::healthz))
        .route("/openapi.json", get(extra::openapi_json))
        .route("/deployments", get(deployments::list).post(deployments::create))
        .route("/deployments/{id}", get(deployments::show).put(deployments::update).patch(deployments::reset).delete(deployments::delete))
        .route("/deployments/{id}/template", get(deployments::template))
        .route("/deployments/{id}/log", get(deployments::log))
        .route("/deployments/{id}/extrainfo", get(deployments::extrainfo))
        .route("/deployments/{id}/plan", post(deployments::plan))
        .route("/deployments/{id}/state", get(deployments::state))
        .route("/deployments/{id}/events", get(extra::events))
        .route("/deployments/{id}/resources", get(resources::list))
        .route("/deployments/{id}/resources/filter", get(resources::filter))
        .route("/deployments/{id}/resources/{rid}", get(resources::show))
        .route("/deployments/{id}/resources/{rid}/actions", post(resources::action))
        .route("/schedules", get(extra::schedules).post(extra::create_schedule))
        .route("/schedules/{*rest}", get(extra::schedules).post(extra::schedules))
        .route("/state", get(state::list))
        .route("/state/{name}", axum::routing::any(state::handle))
        .route("/state/{name}/lock", get(state::holder))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An error as upstream renders every status ≥ 400: `{code, title, message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), headers: Vec::new() }
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, m)
    }
    pub fn internal(m: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {m}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "The request could not be completed because of an internal error; it was logged")
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Conflict(m) => {
                let mut e = ApiError::conflict(m);
                e.headers.push((header::RETRY_AFTER, "0".into()));
                e
            }
            crate::store::StoreError::NotFound(m) => ApiError::not_found(m),
            other => ApiError::internal(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let mut out = ApiError::new(e.status(), e.message());
        if let Some(w) = e.www_authenticate() {
            out.headers.push((header::WWW_AUTHENTICATE, w));
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.status.as_u16(), title: self.status.canonical_reason().unwrap_or("Error").to_string(), message: self.message };
        let mut r = (self.status, json_body(&body)).into_response();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `application/json;charset=UTF-8`, as upstream.
pub fn json_body<T: serde::Serialize>(v: &T) -> Response {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json;charset=UTF-8")], bytes).into_response()
}

pub fn json_status<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    let mut r = json_body(v);
    *r.status_mut() = status;
    r
}

pub fn text_body(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain;charset=UTF-8")], text).into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("No handler found for {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("Request method '{method}' is not supported for {}", uri.path()))
}

/// Reads a JSON body: 415 unless JSON, 413 above the limit, 400 naming the JSON path of what
/// is wrong. Nothing is stored before this succeeds.
pub async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limits: &Limits) -> ApiResult<T> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content type '{}' not supported; send application/json", if ct.is_empty() { "(none)" } else { ct })));
    }
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok()) {
        if len > limits.max_body {
            return Err(too_large(limits));
        }
    }
    let bytes = axum::body::to_bytes(body, limits.max_body).await.map_err(|_| too_large(limits))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." || path.is_empty() { "$".to_string() } else { format!("$.{path}") };
        ApiError::bad_request(format!("JSON parse error at {at}: {inner}"))
    })
}

fn too_large(limits: &Limits) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("The request body is larger than the limit of {} bytes", limits.max_body))
}

/// The server's own URL as the client sees it (honours `X-Forwarded-Proto/Host/Prefix`).
pub fn base_url(headers: &HeaderMap) -> String {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(|s| s.split(',').next().unwrap_or("").trim().to_string()).filter(|s| !s.is_empty());
    let proto = h("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = h("x-forwarded-host").or_else(|| h("host")).unwrap_or_else(|| "localhost".into());
    let prefix = h("x-forwarded-prefix").unwrap_or_default();
    format!("{proto}://{host}{}", prefix.trim_end_matches('/'))
}

/// The caller (`None` in no-auth mode); 401 when a token is required and missing or bad.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Principal>> {
    Ok(state.auth.principal(headers).await?)
}

/// Pagination query (`page` 0-based, `size` default 10, `sort=createdAt,desc`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
    pub size: Option<String>,
    pub sort: Option<String>,
}

impl PageQuery {
    pub fn explicit(&self) -> bool {
        self.page.is_some() || self.size.is_some() || self.sort.is_some()
    }

    pub fn resolve(&self, limits: &Limits) -> ApiResult<crate::store::PageReq> {
        let num = |v: &Option<String>, name: &str, default: u64| -> ApiResult<u64> {
            match v {
                None => Ok(default),
                Some(s) => s.trim().parse::<u64>().map_err(|_| ApiError::bad_request(format!("Value {s} for param {name} is not a non-negative integer"))),
            }
        };
        let page = num(&self.page, "page", 0)?;
        let size = num(&self.size, "size", 10)?.clamp(1, limits.max_page);
        let (prop, dir) = match self.sort.as_deref() {
            Some(s) => {
                let mut it = s.split(',');
                (it.next().unwrap_or("createdAt").trim().to_string(), it.next().unwrap_or("asc").trim().to_ascii_lowercase())
            }
            None => ("createdAt".into(), "desc".into()),
        };
        Ok(crate::store::PageReq { page, size, sort_updated: prop == "updatedAt", desc: dir != "asc" })
    }

    pub fn sort_text(&self) -> String {
        self.sort.clone().unwrap_or_else(|| "createdAt,desc".into())
    }
}

/// Page links as Spring HATEOAS writes them: `self` always; `first`/`prev`/`next`/`last` when
/// there is more than one page. `filters` are the non-paging query parameters.
pub fn page_links(base_path: &str, filters: &[(&str, String)], q: &PageQuery, page: &crate::store::PageReq, total: u64, self_with_paging: bool) -> (Vec<crate::wire::Link>, crate::wire::PageMeta) {
    let pages = if total == 0 { 0 } else { total.div_ceil(page.size) };
    let url = |p: Option<u64>| {
        let mut params: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(p) = p {
            params.push(format!("page={p}"));
            params.push(format!("size={}", page.size));
            params.push(format!("sort={}", q.sort_text()));
        }
        if params.is_empty() {
            base_path.to_string()
        } else {
            format!("{base_path}?{}", params.join("&"))
        }
    };
    let multi = pages > 1;
    let mut links = Vec::new();
    if multi {
        links.push(crate::wire::Link::new("first", url(Some(0))));
        if page.page > 0 {
            links.push(crate::wire::Link::new("prev", url(Some(page.page - 1))));
        }
    }
    links.push(crate::wire::Link::new("self", url(if multi || self_with_paging || q.explicit() { Some(page.page) } else { None })));
    if multi {
        if page.page + 1 < pages {
            links.push(crate::wire::Link::new("next", url(Some(page.page + 1))));
        }
        links.push(crate::wire::Link::new("last", url(Some(pages - 1))));
    }
    (links, crate::wire::PageMeta { size: page.size, total_elements: total, total_pages: pages, number: page.page })
}
