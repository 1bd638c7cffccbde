//! An HPC site of `rosca.toml`: `[sites.NAME]` with `kind = "slurm"` (or Slurm's own
//! environment when no table says otherwise), or `kind = "qcg"`. Secrets are never in `rosca.toml`: the site names
//! the variable, file or command that gives the token.

use super::slurm::token::TokenSource;
use super::qcg::{QcgAuth, QcgScheduler};
use super::slurm::{SlurmConfig, SlurmScheduler};
use super::{HpcProvider, PollPolicy};
use crate::retry::RetryPolicy;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `[sites.NAME]` with `kind = "slurm"`. Every field is optional; the defaults are Slurm's
/// environment variables `SLURMRESTD_URL`, `SLURM_USER_NAME` and `SLURM_JWT`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmSite {
    /// `http://HOST:6820`.
    pub url: Option<String>,
    pub user: Option<String>,
    /// Environment variable holding the JWT (default `SLURM_JWT`).
    pub token_env: Option<String>,
    /// File holding the JWT (or a `SLURM_JWT=` line), read again when it expires.
    pub token_file: Option<PathBuf>,
    /// Command printing a JWT (`scontrol token lifespan=3600`), run again when it expires or
    /// is refused.
    pub token_command: Option<String>,
    /// `v0.0.38` or `v0.0.41`, instead of asking the server.
    pub api_version: Option<String>,
    /// First interval between looks at a running job (`2s`); it grows to `poll_max`.
    pub poll_interval: Option<String>,
    pub poll_max: Option<String>,
    /// Longest wait for one answer of slurmrestd (`30s`).
    pub request_timeout: Option<String>,
}

/// Fields a user may try to put in `rosca.toml` but must not.
pub const SECRET_KEYS: &[&str] = &["token", "jwt", "password", "secret"];

impl SlurmSite {
    /// The provider of this site. `env` reads environment variables (the process environment
    /// outside tests).
    pub fn provider(&self, site: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<HpcProvider, String> {
        let at = |m: String| format!("site {site}: {m}");
        let url = self.url.clone().or_else(|| env("SLURMRESTD_URL")).ok_or_else(|| at("no slurmrestd URL: set url in [sites.NAME] or SLURMRESTD_URL".into()))?;
        let user = self.user.clone().or_else(|| env("SLURM_USER_NAME")).or_else(|| env("USER")).unwrap_or_default();
        let token = if let Some(c) = &self.token_command {
            TokenSource::Command(c.clone())
        } else if let Some(f) = &self.token_file {
            TokenSource::File(f.clone())
        } else {
            let var = self.token_env.clone().unwrap_or_else(|| "SLURM_JWT".into());
            match env(&var).filter(|t| !t.trim().is_empty()) {
                Some(t) => TokenSource::Fixed(t.trim().to_string()),
                None => return Err(at(format!("no Slurm token: set {var} (`scontrol token` prints one), or token_file / token_command in [sites.NAME]"))),
            }
        };
        let poll = PollPolicy {
            first: duration(site, &self.poll_interval, "poll_interval", PollPolicy::default().first)?,
            max: duration(site, &self.poll_max, "poll_max", PollPolicy::default().max)?,
        };
        let config = SlurmConfig {
            url,
            user,
            token,
            api_version: self.api_version.clone(),
            retry: RetryPolicy::default(),
            request_timeout: duration(site, &self.request_timeout, "request_timeout", Duration::from_secs(30))?,
        };
        let scheduler = SlurmScheduler::new(config).map_err(|e| at(e.message))?;
        Ok(HpcProvider::new(site, Arc::new(scheduler), poll))
    }
}

/// `[sites.NAME]` with `kind = "qcg"`: a QCG-Computing service with OIDC bearer auth.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QcgSite {
    /// `https://qcg.example.org:8443`.
    pub url: Option<String>,
    /// Environment variable holding the OIDC access token (default `ACCESS_TOKEN`).
    pub token_env: Option<String>,
    /// File holding the token, read again when QCG refuses it.
    pub token_file: Option<PathBuf>,
    /// Program and arguments printing a token (`["oidc-token", "egi"]`), run again when QCG
    /// refuses it.
    pub token_command: Option<Vec<String>>,
    pub poll_interval: Option<String>,
    pub poll_max: Option<String>,
    pub request_timeout: Option<String>,
}

impl QcgSite {
    pub fn provider(&self, site: &str) -> Result<HpcProvider, String> {
        let at = |m: String| format!("site {site}: {m}");
        let url = self.url.clone().ok_or_else(|| at("no QCG-Computing URL: set url in [sites.NAME]".into()))?;
        let auth = match (&self.token_command, &self.token_file) {
            (Some(argv), _) => QcgAuth::from_command(argv.clone()).map_err(|e| at(e.message))?,
            (None, Some(f)) => QcgAuth::from_file(f.clone()),
            (None, None) => QcgAuth::from_env(self.token_env.clone().unwrap_or_else(|| "ACCESS_TOKEN".into())),
        };
        let poll = PollPolicy {
            first: duration(site, &self.poll_interval, "poll_interval", PollPolicy::default().first)?,
            max: duration(site, &self.poll_max, "poll_max", PollPolicy::default().max)?,
        };
        let timeout = duration(site, &self.request_timeout, "request_timeout", Duration::from_secs(30))?;
        let scheduler = QcgScheduler::new(&url, auth, RetryPolicy::default(), timeout).map_err(|e| at(e.message))?;
        Ok(HpcProvider::new(site, Arc::new(scheduler), poll))
    }
}

fn duration(site: &str, v: &Option<String>, key: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s).map_err(|e| format!("site {site}: {key} = {s:?} is not a duration such as \"30s\" ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn slurms_own_environment_is_the_default() {
        let vars = [("SLURMRESTD_URL", "http://127.0.0.1:6820"), ("SLURM_USER_NAME", "alice"), ("SLURM_JWT", "t")];
        assert!(SlurmSite::default().provider("slurm", &env(&vars)).is_ok());
    }

    #[test]
    fn missing_pieces_are_named() {
        let e = SlurmSite::default().provider("hpc", &env(&[])).err().unwrap();
        assert_eq!(e, "site hpc: no slurmrestd URL: set url in [sites.NAME] or SLURMRESTD_URL");
        let e = SlurmSite { url: Some("http://h:6820".into()), user: Some("u".into()), ..Default::default() }.provider("hpc", &env(&[])).err().unwrap();
        assert!(e.contains("no Slurm token: set SLURM_JWT"), "{e}");
        let site = SlurmSite { url: Some("h:6820".into()), user: Some("u".into()), token_command: Some("true".into()), ..Default::default() };
        let e = site.provider("hpc", &env(&[])).err().unwrap();
        assert!(e.contains("must start with http"), "{e}");
        let site = SlurmSite { url: Some("http://h".into()), user: Some("u".into()), token_command: Some("true".into()), poll_interval: Some("often".into()), ..Default::default() };
        assert!(site.provider("hpc", &env(&[])).err().unwrap().contains("poll_interval = \"often\""));
    }
}
