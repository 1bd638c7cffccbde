//! [`SdkApi`]: the [`Api`] of a real cloud, through `openstack_sdk`'s `AsyncOpenStack` session.
//!
//! The SDK owns what is hard to get right: Keystone v3 auth (password, application credential,
//! OIDC access token), re-authentication on 401 and before expiry, the service catalog with
//! region and interface selection, version discovery and microversion negotiation. Requests go
//! through one `RestEndpoint` of ours ([`Endpoint`]) rather than the SDK's generated per-service
//! crates: those add minutes of compile time for the handful of calls made here, and their typed
//! bodies differ per microversion while the provider reads a few fields of plain JSON.

use super::client::{Api, Call, CallError, ErrorKind, Method, Reply, Service};
use crate::api::BoxFuture;
use openstack_sdk::api::rest_endpoint::RestEndpoint;
use openstack_sdk::api::{raw, ApiError, BodyError, QueryAsync, QueryParams};
use openstack_sdk::config::CloudConfig;
use openstack_sdk::types::{ApiVersion, ServiceType};
use openstack_sdk::AsyncOpenStack;
use std::borrow::Cow;

/// Nova microversion requested: 2.47 embeds the flavor in server bodies (what refresh compares),
/// and everything used here exists since. Zed serves up to 2.93.
const COMPUTE_MICROVERSION: (u8, u8) = (2, 47);

/// The auth methods offered. `openstack_sdk` finds its auth plugins through link-time
/// registration, and its build script (which should anchor them) does not see them in the
/// published manifest: without a reference the linker drops them and every method but the
/// built-in ones is "not a supported type".
#[used]
static AUTH_METHODS: [&dyn Sync; 4] = [
    &openstack_sdk_auth_password::ANCHOR,
    &openstack_sdk_auth_applicationcredential::ANCHOR,
    &openstack_sdk_auth_oidcaccesstoken::ANCHOR,
    &openstack_sdk_auth_token::ANCHOR,
];

pub struct SdkApi {
    session: AsyncOpenStack,
    /// Values never to show in a message (passwords, secrets, tokens).
    secrets: Vec<String>,
    /// Keeps the background token renewal alive as long as the session.
    _renew: openstack_sdk::RenewHandle,
}

impl SdkApi {
    /// Authenticates and discovers the endpoints of the services the provider uses.
    pub async fn connect(config: &CloudConfig, timeout: std::time::Duration) -> Result<SdkApi, CallError> {
        let secrets: Vec<String> = config.get_sensitive_values().into_iter().filter(|s| s.len() >= 4).map(str::to_string).collect();
        let scrub = |m: String| scrub(&m, &secrets);
        let auth_url = config.auth.as_ref().and_then(|a| a.auth_url.clone()).unwrap_or_default();
        let session = AsyncOpenStack::builder(config)
            .disable_auth_cache(true)
            .http_timeout(timeout)
            .connect()
            .await
            .map_err(|e| CallError::new(ErrorKind::Auth, scrub(format!("authentication at {auth_url} failed: {}", chain(&e)))))?;
        for st in [ServiceType::Compute, ServiceType::Image, ServiceType::Network, ServiceType::BlockStorage] {
            // A cloud without a service (no Cinder, say) is usable for the rest; calls to the
            // missing one fail with a clear message.
            if let Err(e) = session.discover_service_endpoint(&st).await {
                tracing::debug!("no {st} endpoint: {}", scrub(e.to_string()));
            }
        }
        let renew = session.enable_auto_renew(chrono::TimeDelta::minutes(5));
        Ok(SdkApi { session, secrets, _renew: renew })
    }
}

/// The whole cause chain on one line (the SDK's messages span lines).
fn chain(e: &dyn std::error::Error) -> String {
    tosca::diag::error_chain(e).split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut m = message.to_string();
    for s in secrets {
        m = m.replace(s.as_str(), "***");
    }
    m
}

struct Endpoint<'a> {
    call: &'a Call,
}

impl RestEndpoint for Endpoint<'_> {
    fn method(&self) -> http::Method {
        match self.call.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Delete => http::Method::DELETE,
        }
    }

    fn endpoint(&self) -> Cow<'static, str> {
        self.call.path.clone().into()
    }

    fn service_type(&self) -> ServiceType {
        match self.call.service {
            Service::Compute => ServiceType::Compute,
            Service::Image => ServiceType::Image,
            Service::Network => ServiceType::Network,
            Service::BlockStorage => ServiceType::BlockStorage,
        }
    }

    fn parameters(&self) -> QueryParams<'_> {
        let mut p = QueryParams::default();
        for (k, v) in &self.call.query {
            p.push(k.as_str(), v.as_str());
        }
        p
    }

    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        match &self.call.body {
            Some(v) => Ok(Some(("application/json", serde_json::to_vec(v)?))),
            None => Ok(None),
        }
    }

    /// The major version whose endpoint the catalog and discovery give.
    fn api_version(&self) -> Option<ApiVersion> {
        Some(match self.call.service {
            Service::Compute => ApiVersion::new(2, 1),
            Service::Image | Service::Network => ApiVersion::new(2, 0),
            Service::BlockStorage => ApiVersion::new(3, 0),
        })
    }

    /// The microversion to negotiate (`OpenStack-API-Version`).
    fn min_version(&self) -> Option<ApiVersion> {
        match self.call.service {
            Service::Compute => Some(ApiVersion::new(COMPUTE_MICROVERSION.0, COMPUTE_MICROVERSION.1)),
            _ => self.api_version(),
        }
    }
}

impl Api for SdkApi {
    fn send<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            let ep = Endpoint { call };
            let rsp = raw(ep).skip_error_check(true).query_async(&self.session).await.map_err(|e| {
                let kind = match &e {
                    ApiError::Client { .. } => ErrorKind::Connection,
                    _ => ErrorKind::Setup,
                };
                CallError::new(kind, scrub(&format!("{}: {}", call.describe(), chain(&e)), &self.secrets))
            })?;
            let status = rsp.status().as_u16();
            let retry_after = rsp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = rsp.body();
            let body = if bytes.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(bytes)
                    .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).chars().take(2000).collect()))
            };
            Ok(Reply { status, retry_after, body })
        })
    }
}
