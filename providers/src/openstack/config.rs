//! Where an OpenStack site's connection comes from: a `[sites.NAME]` table of `rosca.toml`, a
//! cloud of `clouds.yaml` (the standard search path, `OS_CLIENT_CONFIG_FILE`, or `clouds_file`),
//! or the `OS_*` environment variables. Secrets are never in `rosca.toml`: the site names the
//! environment variable or file that holds them.

use openstack_sdk::config::{Auth, CloudConfig, ConfigFile};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

/// One OpenStack site of `rosca.toml`. Every field is optional: with none, the site is the
/// `OS_CLOUD` cloud of `clouds.yaml`, else the `OS_*` environment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// A cloud of `clouds.yaml`.
    pub cloud: Option<String>,
    /// A `clouds.yaml` to read besides the standard ones.
    pub clouds_file: Option<PathBuf>,
    pub auth_url: Option<String>,
    /// `password` (default), `v3applicationcredential`, `v3oidcaccesstoken`, `token`.
    pub auth_type: Option<String>,
    pub username: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub application_credential_id: Option<String>,
    /// Federation (`v3oidcaccesstoken`): the identity provider and protocol registered in Keystone.
    pub identity_provider: Option<String>,
    pub protocol: Option<String>,
    /// Environment variable holding the password, application credential secret, OIDC access
    /// token or Keystone token, as `auth_type` needs.
    pub secret_env: Option<String>,
    /// File holding that secret (first line), instead of `secret_env`.
    pub secret_file: Option<PathBuf>,
    pub region: Option<String>,
    /// `public` (default), `internal`, `admin`.
    pub interface: Option<String>,
    /// Network that servers join when the template names none.
    pub network: Option<String>,
    /// External network floating IPs come from, for public endpoints.
    pub floating_network: Option<String>,
    /// Key pair injected into servers when the template names none.
    pub key_name: Option<String>,
    /// Longest wait for a server or volume to become ready (`10m`).
    pub wait_timeout: Option<String>,
}

/// Fields a user may try to put in `rosca.toml` but must not: secrets.
pub const SECRET_KEYS: &[&str] = &["password", "application_credential_secret", "token", "access_token", "secret"];

impl SiteConfig {
    /// The SDK's connection configuration of this site. `env` reads environment variables (the
    /// process environment outside tests).
    pub fn cloud_config(&self, site: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<CloudConfig, String> {
        let named = self.cloud.clone().or_else(|| if self.auth_url.is_none() { env("OS_CLOUD") } else { None });
        let mut cfg = if let Some(name) = named {
            let file = ConfigFile::new_with_user_specified_configs(self.clouds_file.as_ref(), None::<PathBuf>)
                .map_err(|e| format!("site {site}: cannot read clouds.yaml: {e}"))?;
            match file.get_cloud_config(&name).map_err(|e| format!("site {site}: clouds.yaml: {e}"))? {
                Some(c) => c,
                None => {
                    let known = file.get_available_clouds().join(", ");
                    return Err(format!(
                        "site {site}: no cloud `{name}` in clouds.yaml (known: {}); the search path is ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml and OS_CLIENT_CONFIG_FILE",
                        if known.is_empty() { "none".to_string() } else { known }
                    ));
                }
            }
        } else if self.auth_url.is_some() {
            CloudConfig { interface: Some("public".into()), ..CloudConfig::default() }
        } else {
            from_env(env)
        };
        self.overlay(&mut cfg, site, env)?;
        let auth = cfg.auth.as_ref();
        if auth.and_then(|a| a.auth_url.as_ref()).is_none() {
            return Err(format!(
                "site {site}: no Keystone URL: set `auth_url` in [sites.{site}] of rosca.toml, name a `cloud` of clouds.yaml, or export OS_AUTH_URL (or OS_CLOUD)"
            ));
        }
        Ok(cfg)
    }

    fn overlay(&self, cfg: &mut CloudConfig, site: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(t) = &self.auth_type {
            cfg.auth_type = Some(t.clone());
        }
        if let Some(r) = &self.region {
            cfg.region_name = Some(r.clone());
        }
        if let Some(i) = &self.interface {
            cfg.interface = Some(i.clone());
        }
        let auth = cfg.auth.get_or_insert_with(Auth::default);
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                slot.clone_from(v);
            }
        };
        set(&mut auth.auth_url, &self.auth_url);
        set(&mut auth.username, &self.username);
        set(&mut auth.user_domain_name, &self.user_domain_name);
        set(&mut auth.project_name, &self.project_name);
        set(&mut auth.project_id, &self.project_id);
        set(&mut auth.project_domain_name, &self.project_domain_name);
        set(&mut auth.application_credential_id, &self.application_credential_id);
        set(&mut auth.identity_provider, &self.identity_provider);
        set(&mut auth.protocol, &self.protocol);
        let secret = match (&self.secret_env, &self.secret_file) {
            (Some(var), _) => Some(env(var).ok_or_else(|| format!("site {site}: environment variable {var} (secret_env) is not set"))?),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| format!("site {site}: cannot read secret_file {}: {e}", file.display()))?;
                Some(text.lines().next().unwrap_or_default().trim().to_string())
            }
            (None, None) => None,
        };
        if let Some(s) = secret {
            let s = Some(SecretString::from(s));
            match cfg.auth_type.as_deref().unwrap_or("password") {
                "v3applicationcredential" | "applicationcredential" => auth.application_credential_secret = s,
                "v3oidcaccesstoken" | "accesstoken" => auth.access_token = s,
                "v3token" | "token" => auth.token = s,
                _ => auth.password = s,
            }
        }
        if cfg.auth_type.is_none() {
            cfg.auth_type = Some(infer_auth_type(auth).to_string());
        }
        Ok(())
    }
}

fn infer_auth_type(auth: &Auth) -> &'static str {
    if auth.application_credential_id.is_some() || auth.application_credential_secret.is_some() {
        "v3applicationcredential"
    } else if auth.access_token.is_some() {
        "v3oidcaccesstoken"
    } else if auth.password.is_none() && auth.token.is_some() {
        "v3token"
    } else {
        "v3password"
    }
}

/// The `OS_*` variables, as keystoneauth reads them.
fn from_env(env: &dyn Fn(&str) -> Option<String>) -> CloudConfig {
    let s = |k: &str| env(k).filter(|v| !v.is_empty());
    let secret = |k: &str| s(k).map(SecretString::from);
    let auth = Auth {
        auth_url: s("OS_AUTH_URL"),
        username: s("OS_USERNAME"),
        user_id: s("OS_USER_ID"),
        user_domain_name: s("OS_USER_DOMAIN_NAME"),
        user_domain_id: s("OS_USER_DOMAIN_ID"),
        password: secret("OS_PASSWORD"),
        project_name: s("OS_PROJECT_NAME").or_else(|| s("OS_TENANT_NAME")),
        project_id: s("OS_PROJECT_ID").or_else(|| s("OS_TENANT_ID")),
        project_domain_name: s("OS_PROJECT_DOMAIN_NAME"),
        project_domain_id: s("OS_PROJECT_DOMAIN_ID"),
        application_credential_id: s("OS_APPLICATION_CREDENTIAL_ID"),
        application_credential_name: s("OS_APPLICATION_CREDENTIAL_NAME"),
        application_credential_secret: secret("OS_APPLICATION_CREDENTIAL_SECRET"),
        access_token: secret("OS_ACCESS_TOKEN"),
        identity_provider: s("OS_IDENTITY_PROVIDER"),
        protocol: s("OS_PROTOCOL"),
        token: secret("OS_TOKEN"),
        ..Auth::default()
    };
    CloudConfig {
        auth_type: s("OS_AUTH_TYPE"),
        region_name: s("OS_REGION_NAME"),
        interface: s("OS_INTERFACE").or(Some("public".into())),
        auth: Some(auth),
        ..CloudConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn os_variables_give_a_password_cloud() {
        let e = env(&[
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "pw-secret"),
            ("OS_PROJECT_NAME", "p"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"),
            ("OS_REGION_NAME", "RegionTwo"),
        ]);
        let c = SiteConfig::default().cloud_config("openstack", &e).unwrap();
        assert_eq!(c.auth_type.as_deref(), Some("v3password"));
        assert_eq!(c.region_name.as_deref(), Some("RegionTwo"));
        assert_eq!(c.interface.as_deref(), Some("public"));
        let a = c.auth.unwrap();
        assert_eq!(a.password.unwrap().expose_secret(), "pw-secret");
        assert_eq!(a.project_name.as_deref(), Some("p"));
    }

    #[test]
    fn a_site_takes_its_secret_from_the_variable_it_names() {
        let site = SiteConfig {
            auth_url: Some("http://k:5000/v3".into()),
            auth_type: Some("v3applicationcredential".into()),
            application_credential_id: Some("ac-id".into()),
            secret_env: Some("MY_AC_SECRET".into()),
            interface: Some("internal".into()),
            ..SiteConfig::default()
        };
        let c = site.cloud_config("egi", &env(&[("MY_AC_SECRET", "s3cr3t")])).unwrap();
        assert_eq!(c.interface.as_deref(), Some("internal"));
        let a = c.auth.unwrap();
        assert_eq!(a.application_credential_secret.unwrap().expose_secret(), "s3cr3t");
        assert!(a.password.is_none());

        let e = site.cloud_config("egi", &env(&[])).unwrap_err();
        assert_eq!(e, "site egi: environment variable MY_AC_SECRET (secret_env) is not set");
    }

    #[test]
    fn oidc_access_token_for_federated_sites() {
        let site = SiteConfig {
            auth_url: Some("https://keystone.example:5000/v3".into()),
            auth_type: Some("v3oidcaccesstoken".into()),
            identity_provider: Some("egi.eu".into()),
            protocol: Some("openid".into()),
            project_id: Some("abc".into()),
            secret_env: Some("IAM_ACCESS_TOKEN".into()),
            ..SiteConfig::default()
        };
        let c = site.cloud_config("fedcloud", &env(&[("IAM_ACCESS_TOKEN", "eyJhbGciOi")])).unwrap();
        let a = c.auth.unwrap();
        assert_eq!(a.access_token.unwrap().expose_secret(), "eyJhbGciOi");
        assert_eq!(a.identity_provider.as_deref(), Some("egi.eu"));
    }

    #[test]
    fn clouds_yaml_by_name_and_unknown_names_list_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("clouds.yaml");
        std::fs::write(
            &f,
            "clouds:\n  lab:\n    auth:\n      auth_url: http://lab:5000/v3\n      username: u\n      password: p4ss-word\n      project_name: p\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n",
        )
        .unwrap();
        let site = SiteConfig { cloud: Some("lab".into()), clouds_file: Some(f.clone()), ..SiteConfig::default() };
        let c = site.cloud_config("lab", &env(&[])).unwrap();
        assert_eq!(c.auth.unwrap().auth_url.as_deref(), Some("http://lab:5000/v3"));

        let site = SiteConfig { cloud: Some("nope".into()), clouds_file: Some(f), ..SiteConfig::default() };
        let e = site.cloud_config("x", &env(&[])).unwrap_err();
        assert!(e.starts_with("site x: no cloud `nope` in clouds.yaml (known: "), "{e}");
        assert!(e.contains("lab"), "{e}");
    }

    #[test]
    fn nothing_configured_says_what_to_set() {
        let e = SiteConfig::default().cloud_config("openstack", &env(&[])).unwrap_err();
        assert!(e.contains("export OS_AUTH_URL"), "{e}");
    }
}
