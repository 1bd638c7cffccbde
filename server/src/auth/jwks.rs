//! One issuer's signing keys: discovery, JWKS fetch, cache, rate-limited single-flight refresh.
//!
//! Invariants:
//! - at most one fetch per issuer is in flight (a tokio mutex around the refresh); requests that
//!   waited for it use its result instead of fetching again (the snapshot generation moved);
//! - fetches are at least `cooldown` apart, whatever the tokens say (a random `kid` cannot make
//!   the server hammer the identity provider); a cached set past its TTL is refetched, and kept
//!   in use if the fetch fails;
//! - every key carries the one algorithm it verifies (its JWK `alg`, else derived from its
//!   type); symmetric (`oct`) keys and encryption keys are never loaded.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::config::IssuerConfig;

/// Largest discovery document or JWKS read.
const MAX_BODY: usize = 1 << 20;
/// Per-request timeout of discovery and JWKS fetches.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A verification key and the algorithm it is pinned to.
pub(crate) struct Key {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

struct Snapshot {
    keys: Vec<Arc<Key>>,
    fetched_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    /// From discovery, unless configured.
    jwks_uri: Option<String>,
}

/// What a key lookup found.
pub(crate) enum Lookup {
    Found(Arc<Key>),
    /// No key with that `kid` (after a refresh if one was allowed).
    Unknown,
    /// The token has no `kid` and the issuer publishes several keys.
    Ambiguous,
}

pub(crate) struct IssuerKeys {
    cfg: IssuerConfig,
    current: RwLock<Option<Arc<Snapshot>>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl IssuerKeys {
    pub fn new(cfg: IssuerConfig) -> Self {
        let jwks_uri = cfg.jwks_uri.clone();
        IssuerKeys {
            cfg,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState { jwks_uri, ..RefreshState::default() }),
        }
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key for a token's `kid`, loading or refreshing the set when needed and allowed.
    pub async fn lookup(
        &self,
        http: &reqwest::Client,
        kid: Option<&str>,
        ttl: Duration,
        cooldown: Duration,
    ) -> Result<Lookup, String> {
        let snap = match self.snapshot() {
            Some(s) if s.fetched_at.elapsed() < ttl => s,
            other => self.refresh(http, other.map_or(0, |s| s.generation), cooldown).await?,
        };
        match select(&snap, kid) {
            Lookup::Unknown => {}
            found => return Ok(found),
        }
        let fresh = self.refresh(http, snap.generation, cooldown).await?;
        Ok(select(&fresh, kid))
    }

    /// Fetches the set unless another request did while this one waited (generation moved past
    /// `seen`) or the last fetch was less than `cooldown` ago; returns the set to use.
    async fn refresh(&self, http: &reqwest::Client, seen: u64, cooldown: Duration) -> Result<Arc<Snapshot>, String> {
        let mut st = self.refresh.lock().await;
        let current = self.snapshot();
        if let Some(cur) = &current {
            if cur.generation != seen {
                return Ok(cur.clone());
            }
        }
        if st.last_attempt.is_some_and(|t| t.elapsed() < cooldown) {
            return current.ok_or_else(|| st.last_error.clone().unwrap_or_else(|| "signing keys not loaded".into()));
        }
        st.last_attempt = Some(Instant::now());
        match self.fetch(http, &mut st).await {
            Ok(keys) => {
                st.last_error = None;
                let snap = Arc::new(Snapshot {
                    keys,
                    fetched_at: Instant::now(),
                    generation: current.as_ref().map_or(0, |c| c.generation) + 1,
                });
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
                tracing::debug!(issuer = %self.cfg.issuer, keys = snap.keys.len(), "JWKS loaded");
                Ok(snap)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.cfg.issuer, error = %e, "fetching the issuer's signing keys failed");
                st.last_error = Some(e.clone());
                // A stale set beats none.
                current.ok_or(e)
            }
        }
    }

    async fn fetch(&self, http: &reqwest::Client, st: &mut RefreshState) -> Result<Vec<Arc<Key>>, String> {
        let uri = match &st.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let u = self.discover(http).await?;
                st.jwks_uri = Some(u.clone());
                u
            }
        };
        let result = get_json(http, &uri).await.and_then(|doc| parse_jwks(&doc));
        if result.is_err() && self.cfg.jwks_uri.is_none() {
            // The discovery document may have moved the keys: look again next time.
            st.jwks_uri = None;
        }
        result
    }

    async fn discover(&self, http: &reqwest::Client) -> Result<String, String> {
        let url = self.cfg.discovery_url();
        let doc = get_json(http, &url).await?;
        if let Some(iss) = doc.get("issuer").and_then(Value::as_str) {
            if iss != self.cfg.issuer {
                return Err(format!("the discovery document at {url} is for issuer {iss:?}, not {:?}", self.cfg.issuer));
            }
        }
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the discovery document at {url} has no jwks_uri"))
    }
}

fn select(snap: &Snapshot, kid: Option<&str>) -> Lookup {
    match kid {
        Some(kid) => snap
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .map_or(Lookup::Unknown, |k| Lookup::Found(k.clone())),
        None => match snap.keys.as_slice() {
            [only] => Lookup::Found(only.clone()),
            [] => Lookup::Unknown,
            _ => Lookup::Ambiguous,
        },
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("GET {url}: body too large"));
    }
    let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if body.len() > MAX_BODY {
        return Err(format!("GET {url}: body too large"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// The usable signing keys of a JWKS document; keys this server cannot or must not use are
/// skipped, a set with none is an error.
fn parse_jwks(doc: &Value) -> Result<Vec<Arc<Key>>, String> {
    let entries = doc.get("keys").and_then(Value::as_array).ok_or("the JWKS has no \"keys\" array")?;
    let mut keys = Vec::new();
    for entry in entries {
        match parse_key(entry) {
            Ok(k) => keys.push(Arc::new(k)),
            Err(why) => tracing::debug!(kid = ?entry.get("kid"), %why, "JWK skipped"),
        }
    }
    if keys.is_empty() {
        return Err("the JWKS has no usable signing key".into());
    }
    Ok(keys)
}

fn parse_key(entry: &Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|e| format!("unreadable JWK: {e}"))?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Err("not a signing key".into());
    }
    let alg = match jwk.common.key_algorithm {
        Some(ka) => Algorithm::from_str(&ka.to_string()).map_err(|_| format!("algorithm {ka} is not a signature algorithm"))?,
        None => derived_alg(&jwk.algorithm)?,
    };
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), a) => matches!(
            a,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
        ),
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    if !fits {
        return Err(format!("algorithm {alg:?} does not fit the key type"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key material: {e}"))?;
    Ok(Key { kid: jwk.common.key_id.clone(), alg, key })
}

fn derived_alg(params: &AlgorithmParameters) -> Result<Algorithm, String> {
    match params {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            ref c => Err(format!("unsupported curve {c:?}")),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Ok(Algorithm::EdDSA),
        AlgorithmParameters::OctetKeyPair(p) => Err(format!("unsupported curve {:?}", p.curve)),
        AlgorithmParameters::OctetKey(_) => Err("symmetric keys are never used".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oct_and_encryption_keys_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h2", "alg": "HS256"},
            {"kty": "RSA", "use": "enc", "kid": "e", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RSA-OAEP", "kid": "o", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "ES256", "kid": "m", "n": "AQAB", "e": "AQAB"},
            {"kty": "XYZ", "kid": "x"},
        ]});
        assert_eq!(parse_jwks(&doc).err().as_deref(), Some("the JWKS has no usable signing key"));
    }

    #[test]
    fn alg_is_derived_from_the_key_type() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "p", "alg": "PS384", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "d", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        ]});
        let keys = parse_jwks(&doc).unwrap();
        let algs: Vec<_> = keys.iter().map(|k| (k.kid.clone().unwrap(), k.alg)).collect();
        assert_eq!(
            algs,
            vec![("r".into(), Algorithm::RS256), ("p".into(), Algorithm::PS384), ("d".into(), Algorithm::EdDSA)]
        );
    }
}
