//! Authentication and authorization (SPEC §8, indigo-api.md §5).
//!
//! - [`Authenticator`] checks `Authorization: Bearer <JWT>` against the configured OIDC issuers
//!   (allow-list by exact `iss`; keys from discovery + JWKS, cached; algorithm pinned per key;
//!   `none` and HMAC refused; `exp`/`nbf` with leeway, `iss`, `aud`, required scopes) and yields
//!   a [`Principal`].
//! - [`Auth`] is what the API holds: either no-auth mode (every request anonymous, loudly
//!   logged) or an authenticator.
//! - [`can_read`], [`can_mutate`] and [`list_scope`] are the pure ownership rules.
//!
//! Tokens are never logged nor echoed in errors.

mod config;
mod error;
mod jwks;
mod visibility;

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

pub use config::{AuthConfig, IssuerConfig};
pub use error::AuthError;
pub use visibility::{can_mutate, can_read, list_scope, ListScope, Owner};

use jwks::{IssuerKeys, Lookup};

/// Largest bearer token accepted.
const MAX_TOKEN: usize = 16 * 1024;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub issuer: String,
    pub subject: String,
    /// Claim `organisation_name`.
    pub organisation: Option<String>,
    /// Claims `groups`, `wlcg.groups` and `eduperson_entitlement`, merged.
    pub groups: Vec<String>,
    /// Claim `scope` (space-separated) or `scp` (array).
    pub scopes: Vec<String>,
    /// Member of the issuer's `admin_group`.
    pub admin: bool,
    pub email: Option<String>,
}

impl Principal {
    /// The owner to record on a deployment this principal creates.
    pub fn owner(&self) -> Owner {
        Owner::new(self.issuer.clone(), self.subject.clone(), self.organisation.clone())
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The principal a verified claim set describes.
    fn from_claims(cfg: &IssuerConfig, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::Invalid("the token has no subject".into()))?;
        let mut groups: Vec<String> = Vec::new();
        for claim in ["groups", "wlcg.groups", "eduperson_entitlement"] {
            for g in strings(claims.get(claim)) {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        let scopes = match claims.get("scope") {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            _ => strings(claims.get("scp")).iter().flat_map(|s| s.split_whitespace()).map(str::to_string).collect(),
        };
        let admin = cfg.admin_group.as_ref().is_some_and(|a| groups.contains(a));
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        Ok(Principal {
            issuer: cfg.issuer.clone(),
            subject: subject.to_string(),
            organisation: text("organisation_name"),
            groups,
            scopes,
            admin,
            email: text("email"),
        })
    }
}

/// A claim holding a string or an array of strings (other items ignored).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Validates bearer tokens against the configured issuers.
pub struct Authenticator {
    config: AuthConfig,
    /// Parallel to `config.issuers`.
    keys: Vec<IssuerKeys>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Nothing is fetched until the first token of an issuer arrives.
    pub fn new(config: AuthConfig, http: reqwest::Client) -> Self {
        let keys = config.issuers.iter().cloned().map(IssuerKeys::new).collect();
        Authenticator { config, keys, http }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The principal of a request's `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let result = self.check(authorization).await;
        if let Err(e) = &result {
            tracing::debug!(error = %e, "request not authenticated");
        }
        result
    }

    /// [`Authenticator::authenticate`] on a request's headers (a non-UTF-8 header is invalid).
    pub async fn authenticate_headers(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        match headers.get(header::AUTHORIZATION) {
            None => self.authenticate(None).await,
            Some(v) => match v.to_str() {
                Ok(v) => self.authenticate(Some(v)).await,
                Err(_) => Err(AuthError::Invalid("the Authorization header is not readable".into())),
            },
        }
    }

    /// For a mutating request: the token must carry one of its issuer's `write_scopes` (none
    /// configured: nothing needed).
    pub fn require_write(&self, p: &Principal) -> Result<(), AuthError> {
        let Some(cfg) = self.config.issuers.iter().find(|c| c.issuer == p.issuer) else {
            return Err(AuthError::Invalid("untrusted issuer".into()));
        };
        if cfg.write_scopes.is_empty() || cfg.write_scopes.iter().any(|s| p.has_scope(s)) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(cfg.write_scopes.join(" ")))
        }
    }

    async fn check(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer(authorization)?;
        let parts: Vec<&str> = token.split('.').collect();
        let [raw_header, raw_payload, _] = parts.as_slice() else {
            return Err(invalid("not a signed JWT"));
        };

        // The algorithm, before anything trusts the header.
        let head = json_part(raw_header).ok_or_else(|| invalid("malformed token header"))?;
        let alg = head.get("alg").and_then(Value::as_str).ok_or_else(|| invalid("the token header has no alg"))?;
        if alg.eq_ignore_ascii_case("none") {
            return Err(invalid("unsigned tokens (alg none) are not accepted"));
        }
        if alg.to_ascii_uppercase().starts_with("HS") {
            return Err(invalid("symmetric (HMAC) algorithms are not accepted"));
        }
        if head.contains_key("crit") {
            return Err(invalid("critical header parameters are not supported"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("unsupported token algorithm"))?;

        // `iss` picks the issuer config; it is trusted only once the signature is verified.
        let payload = json_part(raw_payload).ok_or_else(|| invalid("malformed token payload"))?;
        let iss = payload.get("iss").and_then(Value::as_str).ok_or_else(|| invalid("the token has no issuer"))?;
        let Some(idx) = self.config.issuers.iter().position(|c| c.issuer == iss) else {
            return Err(invalid(&format!("untrusted issuer {}", truncate(iss, 120))));
        };
        let cfg = &self.config.issuers[idx];

        let lookup = self.keys[idx]
            .lookup(&self.http, header.kid.as_deref(), self.config.cache_ttl, self.config.jwks_cooldown)
            .await
            .map_err(AuthError::Unavailable)?;
        let key = match lookup {
            Lookup::Found(k) => k,
            Lookup::Unknown => return Err(invalid("unknown signing key")),
            Lookup::Ambiguous => return Err(invalid("the token names no key (kid) and the issuer has several")),
        };
        if header.alg != key.alg {
            return Err(invalid(&format!("algorithm {:?} does not match the key's {:?}", header.alg, key.alg)));
        }

        let mut validation = Validation::new(key.alg);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&cfg.issuer]);
        match &cfg.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| invalid(jwt_reason(e.kind())))?;

        let principal = Principal::from_claims(cfg, &data.claims)?;
        if !cfg.required_scopes.iter().all(|s| principal.has_scope(s)) {
            return Err(AuthError::InsufficientScope(cfg.required_scopes.join(" ")));
        }
        Ok(principal)
    }
}

/// The token of a `Bearer` header value (scheme case-insensitive).
fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?.trim();
    if value.is_empty() {
        return Err(AuthError::Missing);
    }
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid("the Authorization header must be \"Bearer <token>\""));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(invalid("the bearer token is empty"));
    }
    if token.len() > MAX_TOKEN {
        return Err(invalid("the bearer token is too large"));
    }
    if token.contains(char::is_whitespace) {
        return Err(invalid("not a signed JWT"));
    }
    Ok(token)
}

/// A base64url JSON object part of a JWT (padding tolerated).
fn json_part(part: &str) -> Option<Map<String, Value>> {
    const B64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = B64.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn jwt_reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not yet valid",
        ErrorKind::InvalidSignature => "signature verification failed",
        ErrorKind::InvalidAudience => "the token is not meant for this audience",
        ErrorKind::InvalidIssuer => "issuer mismatch",
        ErrorKind::InvalidAlgorithm => "algorithm mismatch",
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => "the token has no expiry (exp)",
        ErrorKind::MissingRequiredClaim(c) if c == "sub" => "the token has no subject",
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => "the token has no audience",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed token",
    }
}

fn invalid(why: &str) -> AuthError {
    AuthError::Invalid(why.to_string())
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The API's view of authentication: off (no-auth mode, for local use) or OIDC.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Every request is anonymous; nothing is owned; everything is visible.
    Disabled,
    Oidc(Arc<Authenticator>),
}

impl Auth {
    /// No-auth mode, logged loudly.
    pub fn disabled() -> Auth {
        tracing::warn!("AUTHENTICATION IS DISABLED: every request is anonymous and may read and change every deployment; use only locally");
        Auth::Disabled
    }

    pub fn oidc(config: AuthConfig, http: reqwest::Client) -> Auth {
        Auth::Oidc(Arc::new(Authenticator::new(config, http)))
    }

    pub fn enabled(&self) -> bool {
        matches!(self, Auth::Oidc(_))
    }

    /// The request's principal: `None` in no-auth mode (pass it as is to [`can_read`],
    /// [`can_mutate`], [`list_scope`]).
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
        match self {
            Auth::Disabled => Ok(None),
            Auth::Oidc(a) => a.authenticate_headers(headers).await.map(Some),
        }
    }

    /// Scope check of a mutating request ([`Authenticator::require_write`]); always passes in
    /// no-auth mode.
    pub fn require_write(&self, p: Option<&Principal>) -> Result<(), AuthError> {
        match (self, p) {
            (Auth::Oidc(a), Some(p)) => a.require_write(p),
            _ => Ok(()),
        }
    }
}
