//! `rosca.toml`: project configuration. Only the `[tosca]` table exists so far.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub tosca: ToscaConfig,
    /// Directory of the config file: relative paths in it are resolved against it.
    #[serde(skip)]
    pub base: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
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

impl Config {
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
