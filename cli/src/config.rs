//! `rosca.toml`: project configuration: `[tosca]` (loading), `[backend]` (where state
//! lives), `[providers]` (which provider realizes which node type), `[apply]` (parallelism,
//! timeouts, where local resources go).

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub tosca: ToscaConfig,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default)]
    pub providers: ProvidersConfig,
    #[serde(default)]
    pub apply: ApplyConfig,
    #[serde(default)]
    pub server: ServerConfig,
    /// Named sites (clouds, clusters) that realize nodes: `[sites.NAME]` with a `kind`.
    #[serde(default)]
    pub sites: std::collections::BTreeMap<String, toml::Table>,
    /// Directory of the config file: relative paths in it are resolved against it.
    #[serde(skip)]
    pub base: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToscaConfig {
    /// URL (or URL prefix ending in '/') -> local path.
    #[serde(default)]
    pub import_map: std::collections::BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub offline: bool,
    pub cache_dir: Option<PathBuf>,
    pub max_file_size: Option<usize>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `local` (the default), `postgres`, `etcd`, `s3`, `http`.
    #[serde(alias = "type")]
    pub kind: Option<String>,
    /// The state's name (workspace) in a shared backend (default `default`); for `local`,
    /// the file `<name>.state.json` when `path` is not given.
    pub name: Option<String>,
    /// State file of the local backend (default `rosca.state.json`).
    pub path: Option<PathBuf>,
    /// `postgres://...` (postgres) or the state URL (http).
    pub url: Option<String>,
    /// etcd client URLs.
    pub endpoints: Option<Vec<String>>,
    /// S3: bucket, endpoint (S3-compatible servers), region, key prefix.
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    /// Client-side encryption of the state (any kind).
    pub encryption: Option<EncryptionConfig>,
}

/// `[backend.encryption]`: where the keys are (never the keys themselves). With no source set,
/// the key is read from `ROSCA_STATE_KEY`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Variable holding a base64 256-bit key.
    pub key_env: Option<String>,
    /// File holding a base64 256-bit key.
    pub key_file: Option<PathBuf>,
    /// Variable holding a passphrase (PBKDF2-stretched).
    pub passphrase_env: Option<String>,
    /// The previous key, to open a state while rotating (`rosca state rekey`).
    pub old_key_env: Option<String>,
    pub old_key_file: Option<PathBuf>,
    pub old_passphrase_env: Option<String>,
    /// Read a state that is not encrypted yet (migrating to encryption).
    #[serde(default)]
    pub allow_plaintext: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Provider for node types not mapped below (default `local`).
    pub default: Option<String>,
    /// Node type → provider name; the first type of a node's chain that is mapped wins.
    #[serde(default)]
    pub types: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Default of `--parallelism` (10).
    pub parallelism: Option<usize>,
    /// Provider name → most actions it runs at once.
    #[serde(default)]
    pub provider_limits: std::collections::BTreeMap<String, usize>,
    /// Where providers keep local resources (default `.rosca`).
    pub workdir: Option<PathBuf>,
    /// Default timeout of one lifecycle operation (`10m`).
    pub timeout: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Default of `--listen` (`127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Default of `--database`: `sqlite://FILE` or `postgres://...` (default: a SQLite file in
    /// the data directory).
    pub database: Option<String>,
    /// Where the local provider keeps deployments' sandboxes (default `.rosca-server`).
    pub data_dir: Option<PathBuf>,
    /// Jobs run at once by this server (default 4).
    pub workers: Option<usize>,
    /// Largest request body in bytes (default 4 MiB).
    pub max_body: Option<usize>,
    /// Job lease (`30s`): a job whose server died is taken over after it expires.
    pub lease: Option<String>,
    /// `/state/{name}` (the CLI's http backend): a lock whose holder never unlocks lapses after
    /// this long without a write or re-lock by its holder (`10m`).
    pub state_lock_ttl: Option<String>,
    /// Trusted OIDC issuers; without any, the server refuses to start unless `--no-auth`.
    pub auth: Option<server::auth::AuthConfig>,
    /// `GET /configuration`: `cpr_url`, `slam_url`, `cmdb_url`, `im_url`, `monitoring_url`, ...
    #[serde(default)]
    pub endpoints: std::collections::BTreeMap<String, String>,
}

/// The site kinds this build knows.
const SITE_KINDS: &[&str] = &[
    #[cfg(feature = "openstack")]
    "openstack",
    #[cfg(feature = "hpc")]
    "slurm",
    #[cfg(feature = "hpc")]
    "qcg",
];

impl Config {
    /// A provider for every `[sites.NAME]`, named after its site, plus `openstack` (the
    /// `OS_CLOUD` cloud or the `OS_*` environment) unless a site has that name.
    pub fn sites(&self) -> Result<Vec<(String, std::sync::Arc<dyn providers::Provider>)>, String> {
        let mut out: Vec<(String, std::sync::Arc<dyn providers::Provider>)> = Vec::new();
        for (name, table) in &self.sites {
            let mut table = table.clone();
            let kind = match table.remove("kind") {
                Some(toml::Value::String(k)) => k,
                Some(_) => return Err(format!("rosca.toml [sites.{name}]: `kind` must be a string such as \"openstack\"")),
                None => return Err(format!("rosca.toml [sites.{name}]: no `kind`; add kind = \"openstack\"")),
            };
            match kind.as_str() {
                #[cfg(feature = "openstack")]
                "openstack" => {
                    use providers::openstack::{config::SECRET_KEYS, OpenStackProvider, SiteConfig};
                    use serde::Deserialize;
                    if let Some(k) = table.keys().find(|k| SECRET_KEYS.contains(&k.as_str())) {
                        return Err(format!(
                            "rosca.toml [sites.{name}]: `{k}` is a secret and does not belong in rosca.toml; put it in an environment variable and name it with secret_env = \"VAR\" (or secret_file = \"PATH\")"
                        ));
                    }
                    let mut site = SiteConfig::deserialize(toml::Value::Table(table)).map_err(|e| format!("rosca.toml [sites.{name}]: {}", e.message()))?;
                    site.clouds_file = site.clouds_file.map(|p| self.resolve(&p));
                    site.secret_file = site.secret_file.map(|p| self.resolve(&p));
                    out.push((name.clone(), std::sync::Arc::new(OpenStackProvider::new(name, site)?)));
                }
                #[cfg(feature = "hpc")]
                "slurm" => {
                    use providers::hpc::site::{SlurmSite, SECRET_KEYS};
                    use serde::Deserialize;
                    if let Some(k) = table.keys().find(|k| SECRET_KEYS.contains(&k.as_str())) {
                        return Err(format!(
                            "rosca.toml [sites.{name}]: `{k}` is a secret and does not belong in rosca.toml; name the variable that holds it with token_env = \"VAR\" (or token_file = \"PATH\", token_command = \"CMD\")"
                        ));
                    }
                    let mut site = SlurmSite::deserialize(toml::Value::Table(table)).map_err(|e| format!("rosca.toml [sites.{name}]: {}", e.message()))?;
                    site.token_file = site.token_file.map(|p| self.resolve(&p));
                    let p = site.provider(name, &|k| std::env::var(k).ok()).map_err(|e| format!("rosca.toml [sites.{name}]: {e}"))?;
                    out.push((name.clone(), std::sync::Arc::new(p)));
                }
                #[cfg(feature = "hpc")]
                "qcg" => {
                    use providers::hpc::site::{QcgSite, SECRET_KEYS};
                    use serde::Deserialize;
                    if let Some(k) = table.keys().find(|k| SECRET_KEYS.contains(&k.as_str())) {
                        return Err(format!(
                            "rosca.toml [sites.{name}]: `{k}` is a secret and does not belong in rosca.toml; name the variable that holds it with token_env = \"VAR\" (or token_file = \"PATH\", token_command = [\"CMD\", \"ARG\"])"
                        ));
                    }
                    let mut site = QcgSite::deserialize(toml::Value::Table(table)).map_err(|e| format!("rosca.toml [sites.{name}]: {}", e.message()))?;
                    site.token_file = site.token_file.map(|p| self.resolve(&p));
                    let p = site.provider(name).map_err(|e| format!("rosca.toml [sites.{name}]: {e}"))?;
                    out.push((name.clone(), std::sync::Arc::new(p)));
                }
                other => return Err(format!("rosca.toml [sites.{name}]: unknown kind `{other}` (known: {})", SITE_KINDS.join(", "))),
            }
        }
        // Slurm's own environment makes a `slurm` site, as `OS_*` makes `openstack`.
        #[cfg(feature = "hpc")]
        if !self.sites.contains_key("slurm") && std::env::var_os("SLURMRESTD_URL").is_some() {
            let p = providers::hpc::site::SlurmSite::default().provider("slurm", &|k| std::env::var(k).ok())?;
            out.push(("slurm".to_string(), std::sync::Arc::new(p)));
        }
        #[cfg(feature = "openstack")]
        if !self.sites.contains_key("openstack") {
            let p = providers::openstack::OpenStackProvider::new("openstack", Default::default())?;
            out.push(("openstack".to_string(), std::sync::Arc::new(p)));
        }
        Ok(out)
    }

    /// Node type → provider: `[providers.types]`, plus each job type not mapped there sent to
    /// the first site (by name) of the kind made for it: a BatchJob to a `slurm` site (else a
    /// `qcg` one), an INDIGO `Qcg.Job` to a `qcg` site (else a `slurm` one). With no such site a
    /// job goes to a provider named `slurm` / `qcg`, so a template with jobs and no site fails
    /// to plan with "no provider named ..." instead of running nowhere.
    pub fn type_mappings(&self, sites: &[(String, std::sync::Arc<dyn providers::Provider>)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self.providers.types.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        #[cfg(feature = "hpc")]
        {
            // A site not in [sites] is one made from the environment, named after its kind
            // (`slurm` from SLURMRESTD_URL, `openstack` from OS_*).
            let kind_of = |name: &str| match self.sites.get(name).and_then(|t| t.get("kind")).and_then(toml::Value::as_str) {
                Some(k) => k.to_string(),
                None => name.to_string(),
            };
            let mut names: Vec<&str> = sites.iter().map(|(n, _)| n.as_str()).collect();
            names.sort();
            let first = |kinds: &[&str]| kinds.iter().find_map(|k| names.iter().find(|n| kind_of(n) == *k).map(|n| n.to_string()));
            for (ty, kinds) in [(providers::hpc::BATCH_JOB, ["slurm", "qcg"]), (providers::hpc::QCG_JOB, ["qcg", "slurm"])] {
                if !self.providers.types.contains_key(ty) {
                    out.push((ty.to_string(), first(&kinds).unwrap_or_else(|| kinds[0].to_string())));
                }
            }
        }
        #[cfg(not(feature = "hpc"))]
        let _ = sites;
        out
    }

    /// `path` when given (must exist), else `./rosca.toml` when present, else defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("rosca.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(_) if !required => return Ok(Config::default()),
            Err(e) => return Err(format!("{}: cannot read config: {e}", path.display())),
        };
        let mut c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(c)
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

#[cfg(all(test, feature = "hpc"))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    fn sites(names: &[&str]) -> Vec<(String, Arc<dyn providers::Provider>)> {
        names.iter().map(|n| (n.to_string(), Arc::new(providers::LocalProvider::with_workdir(std::env::temp_dir())) as Arc<dyn providers::Provider>)).collect()
    }

    fn target(m: &[(String, String)], ty: &str) -> Option<String> {
        m.iter().find(|(t, _)| t == ty).map(|(_, p)| p.clone())
    }

    #[test]
    fn job_types_go_to_a_site_of_their_kind() {
        // Sites made from the environment are named after their kind.
        let m = config("").type_mappings(&sites(&["openstack", "slurm"]));
        assert_eq!(target(&m, providers::hpc::BATCH_JOB).as_deref(), Some("slurm"));
        assert_eq!(target(&m, providers::hpc::QCG_JOB).as_deref(), Some("slurm"));
        let c = config("[sites.a]\nkind = \"openstack\"\n[sites.hpc]\nkind = \"slurm\"\n[sites.grid]\nkind = \"qcg\"\n");
        let m = c.type_mappings(&sites(&["a", "grid", "hpc"]));
        assert_eq!(target(&m, providers::hpc::BATCH_JOB).as_deref(), Some("hpc"));
        assert_eq!(target(&m, providers::hpc::QCG_JOB).as_deref(), Some("grid"));
        // With no site, jobs name a provider that is not there, so planning says so.
        let m = config("").type_mappings(&sites(&["openstack"]));
        assert_eq!(target(&m, providers::hpc::BATCH_JOB).as_deref(), Some("slurm"));
        // [providers.types] wins.
        let m = config("[providers.types]\n\"rosca.nodes.hpc.BatchJob\" = \"grid\"\n").type_mappings(&sites(&["slurm"]));
        assert_eq!(m.iter().filter(|(t, _)| t == providers::hpc::BATCH_JOB).count(), 1);
        assert_eq!(target(&m, providers::hpc::BATCH_JOB).as_deref(), Some("grid"));
    }
}
