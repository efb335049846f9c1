//! The router's options: the cluster config's `[router]` section, overridden
//! by the environment (`ROUTER_ADD_EXISTING`, `ROUTER_ALLOW_RESET`,
//! `ROUTER_MAX_BODY_BYTES`, `ROUTER_MAX_IN_FLIGHT`, `ROUTER_TLS_CERT_FILE`,
//! `ROUTER_TLS_KEY_FILE`, and Chroma's own
//! `CHROMA_SERVER_AUTHN_PROVIDER`, `CHROMA_SERVER_AUTHN_CREDENTIALS`,
//! `CHROMA_SERVER_AUTHN_CREDENTIALS_FILE`, `CHROMA_AUTH_TOKEN_TRANSPORT_HEADER`;
//! `scripts/cluster start` passes them through) and by the command line.

use std::time::Duration;

use common::command::AddMode;
use common::config::{AddExisting, ClusterConfig};
use thiserror::Error;

use crate::auth::{AuthConfig, AuthConfigError, AuthSources};
use crate::tls::TlsFiles;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSettings {
    pub listen: String,
    /// What `add` does with ids that exist.
    pub add_mode: AddMode,
    pub allow_reset: bool,
    /// Every request's deadline; a request that cannot finish by then fails
    /// (503 when a group has no quorum) instead of hanging.
    pub request_timeout: Duration,
    /// The most records one write may carry (pre-flight `max_batch_size`).
    pub max_batch_size: usize,
    /// Token authentication; `None`: the API is open.
    pub auth: Option<AuthConfig>,
    /// Largest request body read (413 beyond).
    pub max_body_bytes: usize,
    /// Requests served at once (429 beyond).
    pub max_in_flight: usize,
    /// HTTPS only with these files; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{name} must be a positive integer, got {got:?}")]
    BadNumber { name: &'static str, got: String },
    #[error("authentication: {0}")]
    Auth(#[from] AuthConfigError),
    #[error("{name} must be one of {expected}, got {got:?}")]
    BadValue {
        name: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("TLS needs both tls_cert_file and tls_key_file (ROUTER_TLS_CERT_FILE, ROUTER_TLS_KEY_FILE); only {given} is set")]
    TlsPair { given: &'static str },
}

impl RouterSettings {
    /// Settings from the config, then `env(name)` overrides (a function so
    /// tests need not touch the process environment).
    pub fn from_config(
        config: &ClusterConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let r = &config.router;
        let mut add_mode = match r.add_existing {
            AddExisting::Reject => AddMode::RejectExisting,
            AddExisting::Skip => AddMode::SkipExisting,
        };
        if let Some(v) = env("ROUTER_ADD_EXISTING") {
            add_mode = match v.trim().to_ascii_lowercase().as_str() {
                "reject" => AddMode::RejectExisting,
                "skip" => AddMode::SkipExisting,
                _ => {
                    return Err(SettingsError::BadValue {
                        name: "ROUTER_ADD_EXISTING",
                        expected: "reject, skip",
                        got: v,
                    })
                }
            };
        }
        let mut allow_reset = r.allow_reset;
        if let Some(v) = env("ROUTER_ALLOW_RESET") {
            allow_reset = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(SettingsError::BadValue {
                        name: "ROUTER_ALLOW_RESET",
                        expected: "true, false",
                        got: v,
                    })
                }
            };
        }
        // Chroma's variables; an empty one counts as unset.
        let text = |name: &str, configured: &Option<String>| {
            env(name)
                .or_else(|| configured.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let auth = AuthConfig::load(AuthSources {
            provider: text("CHROMA_SERVER_AUTHN_PROVIDER", &r.authn_provider),
            credentials: text("CHROMA_SERVER_AUTHN_CREDENTIALS", &r.authn_credentials),
            credentials_file: text(
                "CHROMA_SERVER_AUTHN_CREDENTIALS_FILE",
                &r.authn_credentials_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            )
            .map(Into::into),
            transport_header: text(
                "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER",
                &r.auth_token_transport_header,
            ),
        })?;
        let number = |name: &'static str, configured: usize| match env(name) {
            None => Ok(configured.max(1)),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(SettingsError::BadNumber { name, got: v }),
            },
        };
        let path = |name: &str, configured: &Option<std::path::PathBuf>| {
            text(name, &configured.as_ref().map(|p| p.display().to_string()))
                .map(std::path::PathBuf::from)
        };
        let tls = match (
            path("ROUTER_TLS_CERT_FILE", &r.tls_cert_file),
            path("ROUTER_TLS_KEY_FILE", &r.tls_key_file),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingsError::TlsPair {
                    given: "the certificate",
                })
            }
            (None, Some(_)) => return Err(SettingsError::TlsPair { given: "the key" }),
        };
        Ok(RouterSettings {
            listen: r.listen.clone(),
            add_mode,
            allow_reset,
            request_timeout: Duration::from_millis(r.request_timeout_ms.max(1)),
            max_batch_size: r.max_batch_size.max(1),
            auth,
            max_body_bytes: number("ROUTER_MAX_BODY_BYTES", r.max_body_bytes)?,
            max_in_flight: number("ROUTER_MAX_IN_FLIGHT", r.max_in_flight)?,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig::parse(
            "[cluster]\nname = \"t\"\ndata_dir = \"d\"\nreplication_factor = 1\nshard_count = 1\n\
             [router]\nadd_existing = \"reject\"\nallow_reset = false\n\
             [[nodes]]\nid = 1\naddr = \"127.0.0.1:1\"\n",
        )
        .expect("valid config")
    }

    #[test]
    fn environment_overrides_the_config() {
        let s = RouterSettings::from_config(&config(), |_| None).unwrap();
        assert_eq!(
            (s.add_mode, s.allow_reset),
            (AddMode::RejectExisting, false)
        );
        let env = |k: &str| match k {
            "ROUTER_ADD_EXISTING" => Some("skip".to_owned()),
            "ROUTER_ALLOW_RESET" => Some("TRUE".to_owned()),
            _ => None,
        };
        let s = RouterSettings::from_config(&config(), env).unwrap();
        assert_eq!((s.add_mode, s.allow_reset), (AddMode::SkipExisting, true));
        let bad = RouterSettings::from_config(&config(), |k| {
            (k == "ROUTER_ALLOW_RESET").then(|| "maybe".to_owned())
        });
        assert!(matches!(bad, Err(SettingsError::BadValue { .. })));
    }

    #[test]
    fn limits_and_auth_from_the_environment() {
        let s = RouterSettings::from_config(&config(), |_| None).unwrap();
        assert_eq!((s.max_body_bytes, s.max_in_flight), (32 << 20, 64));
        assert!(s.auth.is_none());
        let env = |k: &str| match k {
            "ROUTER_MAX_BODY_BYTES" => Some("1024".to_owned()),
            "ROUTER_MAX_IN_FLIGHT" => Some("3".to_owned()),
            "CHROMA_SERVER_AUTHN_PROVIDER" => Some(crate::auth::TOKEN_PROVIDER.to_owned()),
            "CHROMA_SERVER_AUTHN_CREDENTIALS" => Some("tok".to_owned()),
            _ => None,
        };
        let s = RouterSettings::from_config(&config(), env).unwrap();
        assert_eq!((s.max_body_bytes, s.max_in_flight), (1024, 3));
        let auth = s.auth.expect("auth configured");
        assert!(auth.users.authenticate("tok").is_some());
        let zero = RouterSettings::from_config(&config(), |k| {
            (k == "ROUTER_MAX_IN_FLIGHT").then(|| "0".to_owned())
        });
        assert!(matches!(zero, Err(SettingsError::BadNumber { .. })));
        let creds_alone = RouterSettings::from_config(&config(), |k| {
            (k == "CHROMA_SERVER_AUTHN_CREDENTIALS").then(|| "tok".to_owned())
        });
        assert!(matches!(creds_alone, Err(SettingsError::Auth(_))));
    }

    #[test]
    fn tls_needs_both_files() {
        assert!(RouterSettings::from_config(&config(), |_| None)
            .unwrap()
            .tls
            .is_none());
        let half = RouterSettings::from_config(&config(), |k| {
            (k == "ROUTER_TLS_CERT_FILE").then(|| "c.pem".to_owned())
        });
        assert!(matches!(half, Err(SettingsError::TlsPair { .. })));
        let both = RouterSettings::from_config(&config(), |k| match k {
            "ROUTER_TLS_CERT_FILE" => Some("c.pem".to_owned()),
            "ROUTER_TLS_KEY_FILE" => Some("k.pem".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            both.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
    }
}
