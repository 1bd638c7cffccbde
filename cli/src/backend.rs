//! Which state backend a command uses: `[backend]` of `rosca.toml`, each setting overridable
//! by `ROSCA_BACKEND_<SETTING>` (`KIND`, `NAME`, `PATH`, `URL`, `ENDPOINTS` comma-separated,
//! `BUCKET`, `ENDPOINT`, `REGION`, `PREFIX`), and `--state PATH` for the local file. Credentials
//! never come from here: PostgreSQL's password from `PGPASSWORD` or `~/.pgpass`, S3's keys from
//! `AWS_*`, HTTP's from `ROSCA_BACKEND_HTTP_TOKEN` / `_USERNAME` / `_PASSWORD`.

use crate::config::{BackendConfig, Config};
use state::{LocalBackend, StateBackend};
use std::path::PathBuf;
use std::sync::Arc;

/// The `[backend]` table with the environment's overrides applied.
pub fn effective(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> BackendConfig {
    let mut b = config.backend.clone();
    let var = |k: &str| env(&format!("ROSCA_BACKEND_{k}")).filter(|v| !v.is_empty());
    if let Some(v) = var("KIND") {
        b.kind = Some(v);
    }
    if let Some(v) = var("NAME") {
        b.name = Some(v);
    }
    if let Some(v) = var("PATH") {
        b.path = Some(PathBuf::from(v));
    }
    if let Some(v) = var("URL") {
        b.url = Some(v);
    }
    if let Some(v) = var("ENDPOINTS") {
        b.endpoints = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
    }
    if let Some(v) = var("BUCKET") {
        b.bucket = Some(v);
    }
    if let Some(v) = var("ENDPOINT") {
        b.endpoint = Some(v);
    }
    if let Some(v) = var("REGION") {
        b.region = Some(v);
    }
    if let Some(v) = var("PREFIX") {
        b.prefix = Some(v);
    }
    b
}

/// Opens the configured backend, encrypted when `[backend.encryption]` says so.
pub fn open(config: &Config, state_flag: Option<PathBuf>) -> Result<Arc<dyn StateBackend>, String> {
    let plain = open_plain(config, state_flag)?;
    match &config.backend.encryption {
        None => Ok(plain),
        Some(enc) => {
            let keys = keys(config, enc, &|k| std::env::var(k).ok())?;
            Ok(Arc::new(state::EncryptedBackend::new(plain, keys, enc.allow_plaintext)?))
        }
    }
}

/// The keys of `[backend.encryption]`: the current one first, then the old one if any.
fn keys(config: &Config, enc: &crate::config::EncryptionConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<state::KeySource>, String> {
    let source = |var: &Option<String>, file: &Option<PathBuf>, pass: &Option<String>, default_var: Option<&str>| -> Result<Option<state::KeySource>, String> {
        if let Some(v) = var.as_deref().or(if file.is_none() && pass.is_none() { default_var } else { None }) {
            let text = env(v).filter(|t| !t.is_empty()).ok_or_else(|| format!("[backend.encryption]: environment variable {v} (the state key) is not set"))?;
            return state::KeySource::from_base64(&text, v).map(Some);
        }
        if let Some(f) = file {
            let path = config.resolve(f);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("[backend.encryption]: cannot read the key file {}: {e}", path.display()))?;
            return state::KeySource::from_base64(&text, &path.display().to_string()).map(Some);
        }
        if let Some(v) = pass {
            let text = env(v).filter(|t| !t.is_empty()).ok_or_else(|| format!("[backend.encryption]: environment variable {v} (the state passphrase) is not set"))?;
            return Ok(Some(state::KeySource::Passphrase(text)));
        }
        Ok(None)
    };
    let mut keys = Vec::new();
    keys.extend(source(&enc.key_env, &enc.key_file, &enc.passphrase_env, Some("ROSCA_STATE_KEY"))?);
    keys.extend(source(&enc.old_key_env, &enc.old_key_file, &enc.old_passphrase_env, None)?);
    Ok(keys)
}

/// The configured backend without encryption. `state_flag` is `--state PATH` (local only).
fn open_plain(config: &Config, state_flag: Option<PathBuf>) -> Result<Arc<dyn StateBackend>, String> {
    let b = effective(config, &|k| std::env::var(k).ok());
    let kind = b.kind.as_deref().unwrap_or("local");
    let name = b.name.clone().unwrap_or_else(|| "default".to_string());
    let need = |what: Option<&String>, key: &str| {
        what.cloned().ok_or_else(|| format!("rosca.toml [backend]: kind = \"{kind}\" needs `{key}` (or ROSCA_BACKEND_{})", key.to_ascii_uppercase()))
    };
    if state_flag.is_some() && kind != "local" {
        return Err(format!("--state names a local file, but the backend is `{kind}`; drop --state or set kind = \"local\""));
    }
    match kind {
        "local" => {
            let path = state_flag
                .or_else(|| b.path.as_ref().map(|p| config.resolve(p)))
                .unwrap_or_else(|| match &b.name {
                    Some(n) => PathBuf::from(format!("{n}.state.json")),
                    None => PathBuf::from("rosca.state.json"),
                });
            Ok(Arc::new(LocalBackend::new(path)))
        }
        "postgres" => {
            let url = need(b.url.as_ref(), "url")?;
            Ok(Arc::new(state::PostgresBackend::new(&url, &name).map_err(|e| e.to_string())?))
        }
        "etcd" => {
            let endpoints = b.endpoints.clone().filter(|e| !e.is_empty()).ok_or_else(|| {
                "rosca.toml [backend]: kind = \"etcd\" needs `endpoints` (or ROSCA_BACKEND_ENDPOINTS)".to_string()
            })?;
            Ok(Arc::new(state::EtcdBackend::new(endpoints, &name).map_err(|e| e.to_string())?))
        }
        "s3" => {
            let bucket = need(b.bucket.as_ref(), "bucket")?;
            let cfg = state::S3Config { bucket, endpoint: b.endpoint.clone(), region: b.region.clone(), prefix: b.prefix.clone() };
            Ok(Arc::new(state::S3Backend::new(cfg, &name).map_err(|e| e.to_string())?))
        }
        "http" => {
            let url = need(b.url.as_ref(), "url")?;
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let auth = match (env("ROSCA_BACKEND_HTTP_TOKEN"), env("ROSCA_BACKEND_HTTP_USERNAME"), env("ROSCA_BACKEND_HTTP_PASSWORD")) {
                (Some(token), _, _) => state::HttpAuth::Bearer(token),
                (None, Some(username), password) => state::HttpAuth::Basic { username, password: password.unwrap_or_default() },
                (None, None, Some(_)) => return Err("ROSCA_BACKEND_HTTP_PASSWORD is set without ROSCA_BACKEND_HTTP_USERNAME: set both for basic auth, or ROSCA_BACKEND_HTTP_TOKEN for a bearer token".into()),
                (None, None, None) => state::HttpAuth::None,
            };
            Ok(Arc::new(state::HttpBackend::new(&url, auth).map_err(|e| e.to_string())?))
        }
        other => Err(format!(
            "rosca.toml [backend]: unknown kind `{other}` (available: local, postgres, etcd, s3, http)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_table() {
        let mut c = Config::default();
        c.backend.kind = Some("local".into());
        c.backend.name = Some("dev".into());
        let env = |k: &str| match k {
            "ROSCA_BACKEND_KIND" => Some("etcd".to_string()),
            "ROSCA_BACKEND_ENDPOINTS" => Some("http://a:2379, http://b:2379".to_string()),
            _ => None,
        };
        let b = effective(&c, &env);
        assert_eq!(b.kind.as_deref(), Some("etcd"));
        assert_eq!(b.name.as_deref(), Some("dev"));
        assert_eq!(b.endpoints, Some(vec!["http://a:2379".to_string(), "http://b:2379".to_string()]));
    }

    #[test]
    fn a_kind_without_its_setting_says_which() {
        let mut c = Config::default();
        c.backend.kind = Some("postgres".into());
        let e = open(&c, None).err().unwrap();
        assert_eq!(e, "rosca.toml [backend]: kind = \"postgres\" needs `url` (or ROSCA_BACKEND_URL)");
        let e = open(&Config::default(), None).map(|b| b.location()).unwrap();
        assert_eq!(e, "rosca.state.json");
    }
}
