//! The `openstack` provider: TOSCA nodes as Nova servers, Cinder volumes and Neutron networks and
//! ports (SPEC §6; docs/providers/openstack.md).
//!
//! - `client`: the [`Api`] seam (a call in, a reply out), error classification and retries;
//! - `session`: the real `Api` over `openstack_sdk` (auth, catalog, microversions);
//! - `config`: where a site's connection comes from (`rosca.toml`, `clouds.yaml`, `OS_*`);
//! - `select`: pure choices (flavor, image, security-group rules);
//! - `server`, `volume`, `network`: one module per kind of resource.
//!
//! Every create records what it made in the resource's `private` data before waiting on it, so
//! a failure after the first POST hands the applier a partial resource (kept as tainted) and
//! nothing is left in the cloud that state does not know about.

pub mod client;
pub mod config;
mod network;
pub mod select;
mod server;
mod session;
mod volume;
mod wait;

use crate::api::{ApplyRequest, BoxFuture, Provider, ProviderError, ProviderSchema, Realized, ResourceSchema};
use client::{Api, CallError, ErrorKind, RetryPolicy, Retrying};
pub use config::SiteConfig;
use serde_json::{json, Value};
use state::ResourceState;
use std::sync::Arc;
use std::time::Duration;

pub const COMPUTE: &str = "tosca.nodes.Compute";
pub const INDIGO_COMPUTE: &str = "tosca.nodes.indigo.Compute";
pub const BLOCK_STORAGE: [&str; 2] = ["tosca.nodes.BlockStorage", "tosca.nodes.Storage.BlockStorage"];
pub const NETWORK: &str = "tosca.nodes.network.Network";
pub const PORT: &str = "tosca.nodes.network.Port";

/// Site settings the provider uses beyond the connection.
#[derive(Clone, Debug, Default)]
pub struct SiteOptions {
    /// Network (name or id) servers join; without it, the only network the project can use.
    pub network: Option<String>,
    /// External network for floating IPs; without it, the only external network.
    pub floating_network: Option<String>,
    pub key_name: Option<String>,
    /// Longest wait for a resource to become ready; the apply timeout when absent.
    pub wait_timeout: Option<Duration>,
}

enum Connection {
    Ready(Arc<dyn Api>),
    /// Connects on first use, so plans that touch no OpenStack resource need no credentials.
    Lazy { site: String, config: Box<SiteConfig>, cell: tokio::sync::OnceCell<Arc<dyn Api>> },
}

pub struct OpenStackProvider {
    site: String,
    options: SiteOptions,
    connection: Connection,
    poll: Duration,
    schema: ProviderSchema,
}

impl OpenStackProvider {
    /// A provider for a configured site; it authenticates when first needed.
    pub fn new(site: &str, config: SiteConfig) -> Result<OpenStackProvider, String> {
        let wait_timeout = match &config.wait_timeout {
            Some(t) => Some(humantime::parse_duration(t).map_err(|e| format!("site {site}: wait_timeout `{t}`: {e} (write e.g. 10m)"))?),
            None => None,
        };
        let options = SiteOptions {
            network: config.network.clone(),
            floating_network: config.floating_network.clone(),
            key_name: config.key_name.clone(),
            wait_timeout,
        };
        Ok(OpenStackProvider {
            site: site.to_string(),
            options,
            connection: Connection::Lazy { site: site.to_string(), config: Box::new(config), cell: tokio::sync::OnceCell::new() },
            poll: Duration::from_millis(500),
            schema: schema(site),
        })
    }

    /// A provider over a given cloud (tests swap in a scripted one).
    pub fn with_api(site: &str, options: SiteOptions, api: Arc<dyn Api>) -> OpenStackProvider {
        OpenStackProvider { site: site.to_string(), options, connection: Connection::Ready(api), poll: Duration::from_millis(10), schema: schema(site) }
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    async fn api(&self) -> Result<Arc<dyn Api>, ProviderError> {
        match &self.connection {
            Connection::Ready(api) => Ok(api.clone()),
            Connection::Lazy { site, config, cell } => cell
                .get_or_try_init(|| async {
                    let cloud = config.cloud_config(site, &|k| std::env::var(k).ok()).map_err(ProviderError::new)?;
                    let api = session::SdkApi::connect(&cloud, Duration::from_secs(60))
                        .await
                        .map_err(|e| ProviderError::new(format!("OpenStack site {site}: {}", e.message)))?;
                    Ok::<_, ProviderError>(Arc::new(Retrying { inner: Arc::new(api), policy: RetryPolicy::default() }) as Arc<dyn Api>)
                })
                .await
                .cloned(),
        }
    }

    fn ctx<'a>(&'a self, api: &'a dyn Api, timeout: Duration) -> Ctx<'a> {
        Ctx { api, options: &self.options, timeout: self.options.wait_timeout.unwrap_or(timeout), poll: self.poll, site: &self.site }
    }
}

/// What every operation needs: the cloud, the site's options and the time budget.
pub(crate) struct Ctx<'a> {
    pub api: &'a dyn Api,
    pub options: &'a SiteOptions,
    pub timeout: Duration,
    pub poll: Duration,
    pub site: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Server,
    Volume,
    Network,
    Port,
}

fn classify(types: &[String]) -> Option<Kind> {
    let has = |t: &str| types.iter().any(|x| x == t);
    if has(COMPUTE) {
        Some(Kind::Server)
    } else if BLOCK_STORAGE.iter().any(|t| has(t)) {
        Some(Kind::Volume)
    } else if has(NETWORK) {
        Some(Kind::Network)
    } else if has(PORT) {
        Some(Kind::Port)
    } else {
        None
    }
}

fn kind_of_prior(prior: &ResourceState) -> Option<Kind> {
    match prior.private.get("kind").and_then(Value::as_str)? {
        "server" => Some(Kind::Server),
        "volume" => Some(Kind::Volume),
        "network" => Some(Kind::Network),
        "port" => Some(Kind::Port),
        _ => None,
    }
}

fn unsupported(types: &[String], site: &str) -> ProviderError {
    ProviderError::new(format!(
        "the openstack provider (site {site}) does not realize {}: it makes Compute, BlockStorage, network.Network and network.Port nodes; map this node type to another provider in [providers] of rosca.toml",
        types.first().map(String::as_str).unwrap_or("this node")
    ))
}

/// A failure as the applier sees it; quota errors keep their wording so users see them as such.
pub(crate) fn fail(site: &str, e: CallError) -> ProviderError {
    let message = match e.kind {
        ErrorKind::Quota => format!("OpenStack site {site}: quota exceeded: {}", e.message),
        ErrorKind::Auth => format!("OpenStack site {site}: authentication failed: {} (check the site's credentials)", e.message),
        _ => format!("OpenStack site {site}: {}", e.message),
    };
    ProviderError { message, retryable: e.kind == ErrorKind::Transient, partial: None }
}

impl Provider for OpenStackProvider {
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }

    fn preflight<'a>(&'a self) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { self.api().await.map(|_| ()) })
    }

    fn create<'a>(&'a self, req: &'a ApplyRequest) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(async move {
            let kind = classify(&req.types).ok_or_else(|| unsupported(&req.types, &self.site))?;
            let api = self.api().await?;
            let ctx = self.ctx(api.as_ref(), req.timeout);
            match kind {
                Kind::Server => server::create(&ctx, req).await,
                Kind::Volume => volume::create(&ctx, req).await,
                Kind::Network => network::create_network(&ctx, req).await,
                Kind::Port => network::create_port(&ctx, req).await,
            }
        })
    }

    fn update<'a>(&'a self, prior: &'a ResourceState, req: &'a ApplyRequest, _operations: &'a [String]) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(async move {
            let kind = kind_of_prior(prior).ok_or_else(|| unsupported(&req.types, &self.site))?;
            let api = self.api().await?;
            let ctx = self.ctx(api.as_ref(), req.timeout);
            match kind {
                Kind::Server => server::update(&ctx, prior, req).await,
                Kind::Volume => volume::update(&ctx, prior, req).await,
                // Everything else about networks and ports forces replacement (see the schema).
                Kind::Network | Kind::Port => Ok(Realized {
                    id: prior.id.clone().unwrap_or_default(),
                    attributes: prior.attributes.clone(),
                    outputs: prior.outputs.clone(),
                    private: prior.private.clone(),
                    observed: None, tainted: None,
                }),
            }
        })
    }

    fn read<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<Option<Realized>, ProviderError>> {
        Box::pin(async move {
            let Some(kind) = kind_of_prior(prior) else { return Ok(None) };
            let api = self.api().await?;
            let ctx = self.ctx(api.as_ref(), Duration::from_secs(60));
            match kind {
                Kind::Server => server::read(&ctx, prior).await,
                Kind::Volume => volume::read(&ctx, prior).await,
                Kind::Network => network::read_network(&ctx, prior).await,
                Kind::Port => network::read_port(&ctx, prior).await,
            }
        })
    }

    fn delete<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            // Nothing was recorded: the create never reached the cloud.
            let Some(kind) = kind_of_prior(prior) else { return Ok(()) };
            let api = self.api().await?;
            let ctx = self.ctx(api.as_ref(), Duration::from_secs(600));
            match kind {
                Kind::Server => server::delete(&ctx, prior).await,
                Kind::Volume => volume::delete(&ctx, prior).await,
                Kind::Network => network::delete_network(&ctx, prior).await,
                Kind::Port => network::delete_port(&ctx, prior).await,
            }
        })
    }
}

fn schema(site: &str) -> ProviderSchema {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let server_attrs = owned(&["tosca_id", "tosca_name", "state", "private_address", "public_address", "networks", "flavor", "image"]);
    let server = |node_type: &str| ResourceSchema {
        node_type: node_type.to_string(),
        force_replace: Vec::new(),
        update_all: false,
        update_in_place: owned(&["capabilities.host", "capabilities.os.image", "capabilities.os.distribution", "capabilities.os.version", "capabilities.endpoint", "properties.tags"]),
        attributes: server_attrs.clone(),
        update_notes: vec![
            ("capabilities.host".into(), "resize to the flavor that fits (resize + confirm; the server restarts)".into()),
            ("capabilities.os".into(), "rebuild from the new image (the root disk is wiped; id, addresses and volumes are kept)".into()),
            ("capabilities.endpoint".into(), "security group rules and floating IP updated".into()),
        ],
    };
    let volume = |node_type: &str| ResourceSchema {
        node_type: node_type.to_string(),
        force_replace: Vec::new(),
        update_all: false,
        update_in_place: owned(&["properties.size"]),
        attributes: owned(&["tosca_id", "tosca_name", "state", "volume_id", "size"]),
        update_notes: vec![("properties.size".into(), "extend the volume (grow only)".into())],
    };
    let fixed = |node_type: &str, attrs: &[&str]| ResourceSchema {
        node_type: node_type.to_string(),
        force_replace: Vec::new(),
        update_all: false,
        update_in_place: Vec::new(),
        attributes: owned(attrs),
        update_notes: Vec::new(),
    };
    ProviderSchema {
        name: site.to_string(),
        resources: vec![
            server(INDIGO_COMPUTE),
            server(COMPUTE),
            volume(BLOCK_STORAGE[0]),
            volume(BLOCK_STORAGE[1]),
            fixed(NETWORK, &["tosca_id", "tosca_name", "state", "network_id", "network_name", "segmentation_id"]),
            fixed(PORT, &["tosca_id", "tosca_name", "state", "ip_address", "mac_address"]),
        ],
    }
}

/// `{"kind": .., ...}` private data, with serde's help.
pub(crate) fn private_value<T: serde::Serialize>(p: &T) -> Value {
    serde_json::to_value(p).unwrap_or_else(|_| json!({}))
}

/// A name the cloud shows for what Rosca made: the instance address and a short unique suffix.
pub(crate) fn cloud_name(address: &str) -> String {
    let safe: String = address.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("rosca-{}-{}", safe.trim_matches('-'), &suffix[..8])
}
