//! A fake OIDC identity provider for the auth tests: discovery + JWKS on 127.0.0.1:0, RSA keys
//! generated here, request counters, and token minting.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

/// An RSA signing key with its id.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub private_pem: String,
    /// SPKI PEM of the public key (what a confusion attack would use as an HMAC secret).
    pub public_pem: String,
    pub n: String,
    pub e: String,
}

impl TestKey {
    /// The public JWK; `alg` included when given.
    pub fn jwk(&self, alg: Option<&str>) -> Value {
        let mut k = json!({"kty": "RSA", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e});
        if let Some(a) = alg {
            k["alg"] = json!(a);
        }
        k
    }

    pub fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).expect("RSA PEM")
    }
}

/// Three 2048-bit RSA keys, generated once per test binary: by `openssl genpkey` when it is
/// installed (fast), else by the pure-Rust `rsa` crate (slow in debug builds: about half a
/// minute; forced with `ROSCA_TEST_PURE_RSA=1`).
pub fn keys() -> &'static [TestKey] {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    let private = openssl_key().unwrap_or_else(|| {
                        RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation")
                    });
                    let public = private.to_public_key();
                    TestKey {
                        kid: format!("key-{i}"),
                        private_pem: private.to_pkcs1_pem(LineEnding::LF).expect("PEM").to_string(),
                        public_pem: public.to_public_key_pem(LineEnding::LF).expect("PEM"),
                        n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                        e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("keygen thread")).collect()
    })
}

fn openssl_key() -> Option<RsaPrivateKey> {
    if std::env::var_os("ROSCA_TEST_PURE_RSA").is_some() {
        return None;
    }
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&out.stdout).ok()?).ok()
}

#[derive(Default)]
pub struct IdpState {
    pub jwks: Mutex<Vec<Value>>,
    pub jwks_hits: AtomicUsize,
    pub discovery_hits: AtomicUsize,
    /// Overrides the `issuer` of the discovery document.
    pub discovery_issuer: Mutex<Option<String>>,
    /// Delay of each JWKS response, so concurrent requests overlap.
    pub jwks_delay_ms: AtomicUsize,
}

/// A running fake identity provider; its issuer is its base URL.
pub struct Idp {
    pub issuer: String,
    pub state: Arc<IdpState>,
}

impl Idp {
    /// Serves `GET /.well-known/openid-configuration` and `GET /jwks` publishing `jwks`.
    pub async fn start(jwks: Vec<Value>) -> Idp {
        let state = Arc::new(IdpState::default());
        *state.jwks.lock().unwrap() = jwks;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let iss = issuer.clone();
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move |State(st): State<Arc<IdpState>>| async move {
                    st.discovery_hits.fetch_add(1, Ordering::SeqCst);
                    let claimed = st.discovery_issuer.lock().unwrap().clone().unwrap_or_else(|| iss.clone());
                    Json(json!({"issuer": claimed, "jwks_uri": format!("{iss}/jwks"), "token_endpoint": format!("{iss}/token")}))
                }),
            )
            .route(
                "/jwks",
                get(|State(st): State<Arc<IdpState>>| async move {
                    st.jwks_hits.fetch_add(1, Ordering::SeqCst);
                    let delay = st.jwks_delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(delay as u64)).await;
                    }
                    let keys = st.jwks.lock().unwrap().clone();
                    Json(json!({ "keys": keys }))
                }),
            )
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { issuer, state }
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    pub fn publish(&self, jwks: Vec<Value>) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    /// Claims of a valid token of this issuer: an hour left, scopes `openid profile`.
    pub fn claims(&self, sub: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer,
            "sub": sub,
            "iat": now,
            "exp": now + 3600,
            "scope": "openid profile offline_access",
            "organisation_name": "egi.eu",
            "email": format!("{sub}@example.org"),
        })
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RS256 token signed by `key`, naming its kid.
pub fn sign(key: &TestKey, claims: &Value) -> String {
    sign_with(key, Some(&key.kid), Algorithm::RS256, claims)
}

pub fn sign_with(key: &TestKey, kid: Option<&str>, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).expect("sign")
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A fresh P-256 key: (encoding key for ES256, public JWK without `alg`).
pub fn ec_key(kid: &str) -> (EncodingKey, Value) {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref(); // 0x04 || x || y
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

/// A fresh Ed25519 key: (encoding key for EdDSA, public JWK without `alg`).
pub fn ed_key(kid: &str) -> (EncodingKey, Value) {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
    (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
}

pub fn sign_key(key: &EncodingKey, kid: &str, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}
