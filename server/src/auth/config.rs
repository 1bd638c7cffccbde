//! `[server.auth]` in `rosca.toml`: the trusted OIDC issuers and the token-check knobs.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Which issuers are trusted and how their tokens are checked.
///
/// ```toml
/// [server.auth]
/// leeway = "60s"          # clock skew allowed on exp/nbf (seconds as a number, or humantime)
/// jwks_cooldown = "30s"   # at most one JWKS refetch per issuer per cooldown on an unknown kid
/// cache_ttl = "1h"        # JWKS cache lifetime
///
/// [[server.auth.issuers]]
/// issuer = "https://iam.example.org/"         # exact `iss` value (allow-list)
/// audience = "rosca"                          # optional: `aud` must contain it
/// admin_group = "orchestrator-admins"         # optional
/// required_scopes = ["openid", "profile"]     # all of them, on every request
/// write_scopes = ["offline_access", "fts:submit-transfer"]  # any of them, on mutations
/// # discovery_url = "https://iam.example.org/.well-known/openid-configuration"
/// # jwks_uri = "https://iam.example.org/jwk"  # skips discovery
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Clock skew tolerated on `exp` and `nbf` (whole seconds are used).
    #[serde(default = "default_leeway", deserialize_with = "duration")]
    pub leeway: Duration,
    /// Minimum time between two JWKS fetches of one issuer caused by an unknown `kid`.
    #[serde(default = "default_cooldown", deserialize_with = "duration")]
    pub jwks_cooldown: Duration,
    /// How long a fetched JWKS is used before it is fetched again.
    #[serde(default = "default_cache_ttl", deserialize_with = "duration")]
    pub cache_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuers: Vec::new(),
            leeway: default_leeway(),
            jwks_cooldown: default_cooldown(),
            cache_ttl: default_cache_ttl(),
        }
    }
}

impl AuthConfig {
    /// A config trusting the given issuers, with the default durations.
    pub fn new(issuers: Vec<IssuerConfig>) -> Self {
        AuthConfig { issuers, ..AuthConfig::default() }
    }
}

/// One trusted OIDC issuer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// When set, the token's `aud` (string or array) must contain it.
    #[serde(default)]
    pub audience: Option<String>,
    /// Members of this group (claims `groups`, `wlcg.groups`, `eduperson_entitlement`) are admins.
    #[serde(default)]
    pub admin_group: Option<String>,
    /// Scopes every request must carry, all of them (upstream: `openid profile`).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Scopes a mutating request needs, any one of them (upstream: `offline_access` or
    /// `fts:submit-transfer`); empty: no extra scope.
    #[serde(default)]
    pub write_scopes: Vec<String>,
    /// Default `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// When given, discovery is skipped.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

impl IssuerConfig {
    /// An issuer with nothing but its `iss` value set.
    pub fn new(issuer: impl Into<String>) -> Self {
        IssuerConfig {
            issuer: issuer.into(),
            audience: None,
            admin_group: None,
            required_scopes: Vec::new(),
            write_scopes: Vec::new(),
            discovery_url: None,
            jwks_uri: None,
        }
    }

    /// The discovery document's address.
    pub fn discovery_url(&self) -> String {
        match &self.discovery_url {
            Some(u) => u.clone(),
            None => format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/')),
        }
    }
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_cooldown() -> Duration {
    Duration::from_secs(30)
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// A duration as a number of seconds or a humantime string (`"90s"`, `"1h 30m"`).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => humantime::parse_duration(t.trim())
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {t:?}: {e}"))),
    }
}
