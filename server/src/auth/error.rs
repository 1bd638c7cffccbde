//! Why a request was not authenticated, rendered like upstream's `CustomOAuth2ExceptionRenderer`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An authentication failure. Messages never contain the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header: 401.
    #[error("Full authentication is required to access this resource")]
    Missing,
    /// A bad header or token (the reason): 401.
    #[error("Invalid access token: {0}")]
    Invalid(String),
    /// A valid token lacking scopes (the scopes needed, space-separated): 403.
    #[error("Insufficient scope for this resource, scope=\"{0}\"")]
    InsufficientScope(String),
    /// The issuer's discovery document or JWKS could not be fetched (why): 503.
    #[error("Authentication service unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `message` of the error body (upstream's wording).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The `WWW-Authenticate` header value (RFC 6750 §3); `None` for 503.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            AuthError::Missing => Some("Bearer realm=\"rosca\"".to_string()),
            AuthError::Invalid(why) => Some(format!(
                "Bearer realm=\"rosca\", error=\"invalid_token\", error_description=\"{}\"",
                quoted(why)
            )),
            AuthError::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"rosca\", error=\"insufficient_scope\", error_description=\"Insufficient scope for this resource\", scope=\"{}\"",
                quoted(scope)
            )),
            AuthError::Unavailable(_) => None,
        }
    }

    /// The upstream error body `{"code", "title", "message"}`.
    pub fn body(&self) -> serde_json::Value {
        let status = self.status();
        serde_json::json!({
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or(""),
            "message": self.message(),
        })
    }
}

/// Status, `WWW-Authenticate` and the upstream JSON error body.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
        if let Some(v) = self.www_authenticate().and_then(|v| HeaderValue::from_str(&v).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Safe inside a quoted-string of a header: no quotes, backslashes or control characters.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_control() || !c.is_ascii() => '?',
            c => c,
        })
        .collect()
}
