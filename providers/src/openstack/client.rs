//! How the provider talks to OpenStack: one [`Call`] in, one [`Reply`] out, behind the object-safe
//! [`Api`] trait so tests can swap the cloud for a scripted one (kube-rs style). The real
//! implementation ([`SdkApi`], in `session.rs`) goes through `openstack_sdk`'s session, which owns
//! Keystone auth, token renewal, the service catalog and microversion negotiation. [`Retrying`]
//! wraps any `Api` with the retry policy for transient failures.

use crate::api::BoxFuture;
use serde_json::Value;
use std::sync::Arc;

/// The OpenStack services the provider uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Compute,
    Image,
    Network,
    BlockStorage,
}

impl Service {
    pub fn label(self) -> &'static str {
        match self {
            Service::Compute => "Nova",
            Service::Image => "Glance",
            Service::Network => "Neutron",
            Service::BlockStorage => "Cinder",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Whether repeating the call after an unknown outcome cannot do something twice.
    fn idempotent(self) -> bool {
        !matches!(self, Method::Post)
    }
}

/// One request: a path relative to the service's versioned endpoint (`servers/ID`), query
/// parameters and an optional JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub service: Service,
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Call {
    pub fn new(service: Service, method: Method, path: impl Into<String>) -> Call {
        Call { service, method, path: path.into(), query: Vec::new(), body: None }
    }

    pub fn get(service: Service, path: impl Into<String>) -> Call {
        Call::new(service, Method::Get, path)
    }

    pub fn post(service: Service, path: impl Into<String>, body: Value) -> Call {
        Call { body: Some(body), ..Call::new(service, Method::Post, path) }
    }

    pub fn put(service: Service, path: impl Into<String>, body: Value) -> Call {
        Call { body: Some(body), ..Call::new(service, Method::Put, path) }
    }

    pub fn delete(service: Service, path: impl Into<String>) -> Call {
        Call::new(service, Method::Delete, path)
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Call {
        self.query.push((key.to_string(), value.into()));
        self
    }

    /// `GET servers/ID` style, for messages.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.service.label(), self.method.as_str(), self.path)
    }
}

/// An answer with a status, whatever the status.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, when the service sent one.
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a call failed. `message` is the service's own message, never a request body or token.
#[derive(Clone, Debug, PartialEq)]
pub struct CallError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer (connection refused or reset, timeout): the outcome of a POST is unknown.
    Connection,
    /// Keystone refused the credentials or the token.
    Auth,
    NotFound,
    /// 409: the resource is busy (a server in a task state) or the name is taken.
    Conflict,
    /// 403/413 with a quota message: more than the project may have.
    Quota,
    /// 429/413 rate limits and 5xx.
    Transient,
    /// A 4xx the caller caused: bad request, unknown flavor, ...
    Rejected,
    /// No endpoint for the service in the catalog, microversion out of range, bad config.
    Setup,
}

impl CallError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CallError {
        CallError { kind, status: None, message: message.into(), retry_after: None }
    }

    /// Classifies a non-2xx reply, extracting OpenStack's message from its error body.
    pub fn from_reply(call: &Call, reply: &Reply) -> CallError {
        let detail = error_message(&reply.body);
        let kind = match reply.status {
            401 => ErrorKind::Auth,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            403 | 413 if is_quota(&detail) => ErrorKind::Quota,
            413 | 429 => ErrorKind::Transient,
            s if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Rejected,
        };
        let message = if detail.is_empty() {
            format!("{} answered HTTP {}", call.describe(), reply.status)
        } else {
            format!("{} answered HTTP {}: {detail}", call.describe(), reply.status)
        };
        CallError { kind, status: Some(reply.status), message, retry_after: reply.retry_after }
    }

    pub fn retryable(&self, method: Method) -> bool {
        match self.kind {
            ErrorKind::Transient => true,
            // A POST whose answer was lost may have happened; the caller reconciles instead.
            ErrorKind::Connection => method.idempotent(),
            // A server busy with a task refuses actions with 409 until the task ends.
            ErrorKind::Conflict => method != Method::Get,
            _ => false,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn is_quota(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("quota") || m.contains("overlimit") || m.contains("over limit")
}

/// OpenStack's error bodies: Nova `{"badRequest": {"message": ..}}`, Neutron
/// `{"NeutronError": {"message": ..}}`, Cinder like Nova, Glance/Keystone `{"error":
/// {"message": ..}}` or plain text.
pub fn error_message(body: &Value) -> String {
    match body {
        Value::Object(map) => {
            for v in map.values() {
                if let Some(m) = v.get("message").and_then(Value::as_str) {
                    return m.to_string();
                }
            }
            map.get("message").and_then(Value::as_str).unwrap_or_default().to_string()
        }
        Value::String(s) => s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// A cloud, as the provider sees it.
pub trait Api: Send + Sync {
    fn send<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Reply, CallError>>;
}

/// Sends a call and turns every non-2xx answer into a [`CallError`].
pub async fn request(api: &dyn Api, call: &Call) -> Result<Value, CallError> {
    let reply = api.send(call).await?;
    if reply.ok() {
        Ok(reply.body)
    } else {
        Err(CallError::from_reply(call, &reply))
    }
}

pub use crate::retry::RetryPolicy;

/// An [`Api`] that retries transient failures of the one it wraps.
pub struct Retrying {
    pub inner: Arc<dyn Api>,
    pub policy: RetryPolicy,
}

impl Api for Retrying {
    fn send<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                let outcome = match self.inner.send(call).await {
                    Ok(reply) if reply.ok() => return Ok(reply),
                    Ok(reply) => CallError::from_reply(call, &reply),
                    Err(e) => e,
                };
                attempt += 1;
                if attempt >= self.policy.attempts || !outcome.retryable(call.method) {
                    return Err(CallError { message: retried(&outcome.message, attempt), ..outcome });
                }
                tracing::debug!(call = %call.describe(), attempt, "retrying: {}", outcome.message);
                tokio::time::sleep(self.policy.delay(attempt - 1, outcome.retry_after)).await;
            }
        })
    }
}

fn retried(message: &str, attempts: u32) -> String {
    if attempts > 1 {
        format!("{message} (after {attempts} attempts)")
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Answers from a script, one per call, and records the calls.
    struct Scripted {
        replies: Mutex<Vec<Result<Reply, CallError>>>,
        calls: Mutex<u32>,
    }

    impl Api for Scripted {
        fn send<'a>(&'a self, _call: &'a Call) -> BoxFuture<'a, Result<Reply, CallError>> {
            *self.calls.lock().unwrap() += 1;
            let next = self.replies.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }
    }

    fn reply(status: u16, body: Value) -> Result<Reply, CallError> {
        Ok(Reply { status, retry_after: None, body })
    }

    fn retrying(replies: Vec<Result<Reply, CallError>>) -> (Retrying, Arc<Scripted>) {
        let s = Arc::new(Scripted { replies: Mutex::new(replies), calls: Mutex::new(0) });
        let policy = RetryPolicy { attempts: 4, base: Duration::from_millis(1), max: Duration::from_millis(2) };
        (Retrying { inner: s.clone(), policy }, s)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let (api, s) = retrying(vec![
            reply(503, json!("Service Unavailable")),
            Err(CallError::new(ErrorKind::Connection, "connection refused")),
            reply(200, json!({"ok": true})),
        ]);
        let out = request(&api, &Call::get(Service::Compute, "servers")).await.unwrap();
        assert_eq!(out, json!({"ok": true}));
        assert_eq!(*s.calls.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn a_post_is_not_repeated_after_a_lost_answer() {
        let (api, s) = retrying(vec![Err(CallError::new(ErrorKind::Connection, "connection reset"))]);
        let e = request(&api, &Call::post(Service::Compute, "servers", json!({}))).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connection);
        assert_eq!(*s.calls.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn busy_server_conflicts_are_retried_but_bad_requests_are_not() {
        let (api, s) = retrying(vec![
            reply(409, json!({"conflictingRequest": {"message": "Cannot 'resize' instance while it is in task_state rebuilding", "code": 409}})),
            reply(202, Value::Null),
        ]);
        request(&api, &Call::post(Service::Compute, "servers/x/action", json!({}))).await.unwrap();
        assert_eq!(*s.calls.lock().unwrap(), 2);

        let (api, s) = retrying(vec![reply(400, json!({"badRequest": {"message": "Invalid flavorRef provided.", "code": 400}}))]);
        let e = request(&api, &Call::post(Service::Compute, "servers", json!({}))).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Rejected);
        assert_eq!(e.message, "Nova POST servers answered HTTP 400: Invalid flavorRef provided.");
        assert_eq!(*s.calls.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn quota_errors_are_reported_as_such_and_not_retried() {
        let body = json!({"forbidden": {"message": "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances", "code": 403}});
        let (api, s) = retrying(vec![reply(403, body)]);
        let e = request(&api, &Call::post(Service::Compute, "servers", json!({}))).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Quota);
        assert!(e.message.contains("Quota exceeded for instances"), "{}", e.message);
        assert_eq!(*s.calls.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn giving_up_says_how_many_attempts_were_made() {
        let (api, _) = retrying((0..4).map(|_| reply(500, json!({"computeFault": {"message": "boom"}}))).collect());
        let e = request(&api, &Call::get(Service::Compute, "flavors")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.ends_with("boom (after 4 attempts)"), "{}", e.message);
    }

    #[test]
    fn retry_after_is_honoured_and_backoff_is_capped() {
        let p = RetryPolicy { attempts: 5, base: Duration::from_millis(500), max: Duration::from_secs(4) };
        assert_eq!(p.delay(0, None), Duration::from_millis(500));
        assert_eq!(p.delay(2, None), Duration::from_secs(2));
        assert_eq!(p.delay(10, None), Duration::from_secs(4));
        assert_eq!(p.delay(0, Some(7)), Duration::from_secs(7));
    }

    #[test]
    fn error_bodies_of_each_service() {
        assert_eq!(error_message(&json!({"NeutronError": {"type": "X", "message": "Network abc could not be found.", "detail": ""}})), "Network abc could not be found.");
        assert_eq!(error_message(&json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})), "The request you have made requires authentication.");
        assert_eq!(error_message(&json!("<html>\n 404 Not Found\n\n The resource could not be found.\n</html>")), "<html> 404 Not Found The resource could not be found. </html>");
    }
}
