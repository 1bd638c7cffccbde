//! `rosca serve`: the REST server on the store, with the worker pool, until SIGTERM/SIGINT.

use crate::config::Config;
use server::api::{self, AppState, Limits};
use server::auth::Auth;
use server::deploy::TemplateSettings;
use server::engine::{Engine, EngineSettings};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: Option<String>,
    /// `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long)]
    pub database: Option<String>,
    /// Serve without authentication: every request is anonymous (local use only).
    #[arg(long)]
    pub no_auth: bool,
    /// Jobs this server runs at once.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Where deployments' local resources live.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

pub fn run(args: ServeArgs, config: Config) -> Result<ExitCode, String> {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).try_init();
    let sc = &config.server;
    let listen = args.listen.clone().or(sc.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let data_dir = args.data_dir.clone().or(sc.data_dir.as_ref().map(|p| config.resolve(p))).unwrap_or_else(|| ".rosca-server".into());
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: cannot create the data directory: {e}", data_dir.display()))?;
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let database = args.database.clone().or(sc.database.clone()).unwrap_or_else(|| format!("sqlite://{}", data_dir.join("rosca.db").display()));
    let lease = sc.lease.as_deref().map(state::parse_duration).transpose().map_err(|e| format!("rosca.toml [server] lease: {e}"))?.unwrap_or(Duration::from_secs(30));
    if let Some(ttl) = sc.state_lock_ttl.as_deref() {
        server::api::state::set_lock_ttl(state::parse_duration(ttl).map_err(|e| format!("rosca.toml [server] state_lock_ttl: {e}"))?);
    }
    let auth_config = sc.auth.clone();
    let auth = match (args.no_auth, auth_config) {
        (true, _) => Auth::disabled(),
        (false, Some(a)) if !a.issuers.is_empty() => Auth::oidc(a, reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?),
        _ => return Err("no OIDC issuer is configured: add [[server.auth.issuers]] to rosca.toml, or pass --no-auth to serve without authentication (local use only)".into()),
    };
    let templates = TemplateSettings {
        import_map: config.tosca.import_map.iter().map(|(u, p)| (u.clone(), config.resolve(p))).collect(),
        offline: config.tosca.offline,
        cache_dir: config.tosca.cache_dir.clone(),
    };
    let sites = config.sites()?;
    let settings = EngineSettings {
        templates,
        data_dir,
        lease,
        workers: args.workers.or(sc.workers).unwrap_or(4),
        parallelism: config.apply.parallelism.unwrap_or(10),
        provider_types: config.type_mappings(&sites),
        default_provider: config.providers.default.clone().unwrap_or_else(|| "local".into()),
        sites,
        operation_timeout: config.apply.timeout.as_deref().map(state::parse_duration).transpose().map_err(|e| format!("rosca.toml [apply] timeout: {e}"))?.unwrap_or(Duration::from_secs(600)),
        grace: Duration::from_secs(30),
    };
    let mut endpoints = serde_json::Map::new();
    for k in ["cpr_url", "slam_url", "cmdb_url", "im_url", "monitoring_url"] {
        endpoints.insert(k.into(), serde_json::Value::String(String::new()));
    }
    for (k, v) in &sc.endpoints {
        endpoints.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let limits = Limits { max_body: sc.max_body.unwrap_or(4 << 20), ..Limits::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async move {
        let store = server::store::Store::connect(&database).await.map_err(|e| format!("{}: {e}", redact_url(&database)))?;
        let engine = Engine::new(store, settings);
        let workers = engine.start();
        let state = AppState { engine: engine.clone(), auth, limits: Arc::new(limits), endpoints: Arc::new(endpoints) };
        let app = api::router(state);
        let app = tower::Layer::layer(&tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(), app);
        let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        tracing::info!("rosca serve: listening on http://{listen}, store {}", redact_url(&database));
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            tracing::info!("stopping: no new jobs; running ones finish or are handed back");
        };
        let serve = axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).with_graceful_shutdown(shutdown);
        serve.await.map_err(|e| format!("server error: {e}"))?;
        engine.shutdown();
        for w in workers {
            let _ = w.await;
        }
        Ok::<_, String>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_never_reach_messages() {
        assert_eq!(super::redact_url("postgres://rosca:s3cret@db:5432/rosca"), "postgres://rosca:***@db:5432/rosca");
        assert_eq!(super::redact_url("postgres://rosca@db/rosca"), "postgres://rosca@db/rosca");
        assert_eq!(super::redact_url("sqlite:///var/lib/rosca.db"), "sqlite:///var/lib/rosca.db");
    }
}
