//! `/state/{name}`: states of the CLI's `http` backend, in the Terraform HTTP backend protocol
//! (docs/state.md): `GET` (200 with the bytes and an `ETag`, 204 when there is no state),
//! `POST` (write; `?ID=<lock id>` when the writer holds the lock; `If-Match` / `If-None-Match:
//! *` for compare-and-swap, 412 when the stored state moved), `LOCK` and `UNLOCK` (body:
//! LockInfo JSON; 423 with the holder's LockInfo when someone else holds it), plus `GET
//! /state/{name}/lock` (the holder, 204 when free) and `GET /state` (the names the caller may
//! see). A namespace apart from deployments' states.
//!
//! Authorization: the owner of a state is the subject who first wrote (or locked) it; the
//! owner and the admins of its issuer may use it, others get 403; a state created without
//! authentication (`--no-auth`) is everyone's.
//!
//! Locks expire: a lock whose holder never unlocks (it crashed) lapses `lock_ttl` after it was
//! taken or last renewed (each write by the holder and each repeated LOCK with its ID renew
//! it), so a crashed client can never leave a state stuck. Default 10 minutes
//! (`[server] state_lock_ttl`). A granted LOCK says the TTL (`X-Rosca-Lock-TTL-Ms`), and a
//! LOCK with `X-Rosca-Lock-Renew` only renews a lock still held by its ID, so a live client
//! keeps its lock without ever re-taking one that was broken.

use super::{caller, ApiError, ApiResult, AppState};
use crate::auth::Principal;
use crate::store::cli_state::{Expect, PutOutcome};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static LOCK_TTL_MS: AtomicU64 = AtomicU64::new(10 * 60 * 1000);

/// How long a lock lives without being renewed (default 10 minutes).
pub fn set_lock_ttl(ttl: Duration) {
    LOCK_TTL_MS.store(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1), Ordering::SeqCst);
}

fn ttl_ms() -> i64 {
    i64::try_from(LOCK_TTL_MS.load(Ordering::SeqCst)).unwrap_or(i64::MAX / 2)
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty() && name.len() <= 200 && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("Invalid state name {name:?}: use letters, digits, '-', '_' and '.' (not first), at most 200 characters")))
    }
}

fn may_use(p: Option<&Principal>, issuer: Option<&str>, subject: Option<&str>) -> bool {
    let (Some(p), Some(issuer), Some(subject)) = (p, issuer, subject) else { return true };
    p.issuer == issuer && (p.subject == subject || p.admin)
}

/// The caller, after checking it may use state `name` (and write, for a mutation).
async fn authorize(state: &AppState, headers: &HeaderMap, name: &str, write: bool) -> ApiResult<Option<Principal>> {
    check_name(name)?;
    let p = caller(state, headers).await?;
    if write {
        state.auth.require_write(p.as_ref())?;
    }
    if let Some(row) = state.engine.store.cli_state(name).await? {
        if !may_use(p.as_ref(), row.owner_issuer.as_deref(), row.owner_subject.as_deref()) {
            return Err(ApiError::forbidden(format!("State {name} belongs to another user: only its owner and the admins may use it; pick another state name")));
        }
    }
    Ok(p)
}

fn owner(p: &Option<Principal>) -> Option<(&str, &str)> {
    p.as_ref().map(|p| (p.issuer.as_str(), p.subject.as_str()))
}

fn lock_info_response(status: StatusCode, info: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], info).into_response()
}

/// `GET /state`: the names of the states the caller may use, as a JSON array.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let p = caller(&state, &headers).await?;
    let names: Vec<String> = state
        .engine
        .store
        .cli_states()
        .await?
        .into_iter()
        .filter(|(_, iss, sub)| may_use(p.as_ref(), iss.as_deref(), sub.as_deref()))
        .map(|(n, _, _)| n)
        .collect();
    Ok(super::json_body(&names))
}

/// `GET /state/{name}/lock`: the holder's LockInfo, or 204 when the state is not locked.
pub async fn holder(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&state, &headers, &name, false).await?;
    Ok(match state.engine.store.cli_state_lock_holder(&name).await? {
        Some(info) => lock_info_response(StatusCode::OK, info),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `/state/{name}`: GET, POST, LOCK, UNLOCK.
pub async fn handle(State(state): State<AppState>, Path(name): Path<String>, method: Method, Query(query): Query<HashMap<String, String>>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    match method.as_str() {
        "GET" | "HEAD" => get(&state, &name, &headers).await,
        "POST" | "PUT" => post(&state, &name, &query, &headers, body).await,
        "LOCK" => lock(&state, &name, &headers, body).await,
        "UNLOCK" => unlock(&state, &name, &headers, body).await,
        other => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("Request method '{other}' is not supported for /state/{name} (GET, POST, LOCK, UNLOCK)"))),
    }
}

async fn get(state: &AppState, name: &str, headers: &HeaderMap) -> ApiResult<Response> {
    authorize(state, headers, name, false).await?;
    let Some(row) = state.engine.store.cli_state(name).await? else { return Ok(StatusCode::NO_CONTENT.into_response()) };
    let (Some(doc), Some(etag)) = (row.doc, row.etag) else { return Ok(StatusCode::NO_CONTENT.into_response()) };
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], doc).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

async fn read_body(state: &AppState, body: Body) -> ApiResult<Vec<u8>> {
    let max = state.limits.max_body;
    axum::body::to_bytes(body, max)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("The request body is larger than the limit of {max} bytes ([server] max_body)")))
}

/// The LockInfo of a LOCK/UNLOCK body: its JSON text and `ID`.
fn lock_body(bytes: &[u8]) -> ApiResult<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("The body must be the LockInfo JSON ({e})")))?;
    let id = v.get("ID").and_then(|i| i.as_str()).filter(|i| !i.is_empty()).ok_or_else(|| ApiError::bad_request("The LockInfo has no \"ID\""))?;
    Ok((v.to_string(), id.to_string()))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

async fn post(state: &AppState, name: &str, query: &HashMap<String, String>, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let p = authorize(state, headers, name, true).await?;
    let bytes = read_body(state, body).await?;
    let doc = String::from_utf8(bytes).map_err(|_| ApiError::bad_request("The state must be UTF-8 text (JSON)"))?;
    let expect = if let Some(m) = header_text(headers, header::IF_MATCH) {
        if m == "*" {
            Expect::Anything
        } else {
            Expect::Etag(m.split(',').map(|t| t.trim().trim_start_matches("W/").to_string()).filter(|t| !t.is_empty()).collect())
        }
    } else if header_text(headers, header::IF_NONE_MATCH) == Some("*") {
        Expect::Absent
    } else {
        Expect::Anything
    };
    let lock_id = query.get("ID").map(String::as_str).filter(|s| !s.is_empty());
    match state.engine.store.put_cli_state(name, &doc, lock_id, &expect, owner(&p), ttl_ms()).await? {
        PutOutcome::Written => {
            let mut r = StatusCode::OK.into_response();
            if let Ok(v) = HeaderValue::from_str(&crate::store::cli_state::etag_of(&doc)) {
                r.headers_mut().insert(header::ETAG, v);
            }
            Ok(r)
        }
        PutOutcome::Locked(info) => Ok(lock_info_response(StatusCode::CONFLICT, info)),
        PutOutcome::PreconditionFailed => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("State {name} changed since it was read (If-Match / If-None-Match): read it again and retry"),
        )),
    }
}

/// Response header of a granted LOCK: how long the lock lives without renewal, in
/// milliseconds, so a client knows how often to renew it (Rosca's client renews at a third).
pub const LOCK_TTL_HEADER: &str = "x-rosca-lock-ttl-ms";
/// Request header of a LOCK that only renews the caller's lock: it never takes a lock that
/// lapsed or was force-unlocked (409 then, with the holder's LockInfo or none).
pub const RENEW_HEADER: &str = "x-rosca-lock-renew";

async fn lock(state: &AppState, name: &str, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let p = authorize(state, headers, name, true).await?;
    let (info, id) = lock_body(&read_body(state, body).await?)?;
    let store = &state.engine.store;
    let mut r = if headers.contains_key(RENEW_HEADER) {
        match store.renew_cli_state_lock(name, &id, ttl_ms()).await? {
            Ok(()) => lock_info_response(StatusCode::OK, info),
            Err(Some(holder)) => return Ok(lock_info_response(StatusCode::CONFLICT, holder)),
            Err(None) => return Err(ApiError::conflict(format!("State {name} is not locked with ID {id} any more (it lapsed or was force-unlocked): lock it again"))),
        }
    } else {
        store.claim_cli_state(name, owner(&p)).await?;
        match store.lock_cli_state(name, &id, &info, ttl_ms()).await? {
            Ok(()) => lock_info_response(StatusCode::OK, info),
            Err(holder) => return Ok(lock_info_response(StatusCode::LOCKED, holder)),
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ttl_ms().to_string()) {
        r.headers_mut().insert(LOCK_TTL_HEADER, v);
    }
    Ok(r)
}

async fn unlock(state: &AppState, name: &str, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    authorize(state, headers, name, true).await?;
    let bytes = read_body(state, body).await?;
    let store = &state.engine.store;
    // Terraform's `force-unlock` sends no body: it breaks whatever lock is held.
    let id = if bytes.iter().all(u8::is_ascii_whitespace) {
        match store.cli_state_lock_holder(name).await? {
            Some(info) => lock_body(info.as_bytes())?.1,
            None => return Ok(StatusCode::OK.into_response()),
        }
    } else {
        lock_body(&bytes)?.1
    };
    match store.unlock_cli_state(name, &id).await? {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(Some(holder)) => Ok(lock_info_response(StatusCode::CONFLICT, holder)),
        Err(None) => Err(ApiError::conflict(format!("State {name} is not locked with ID {id}: it is not locked at all"))),
    }
}
