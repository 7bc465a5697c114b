//! TLS settings of SSL listeners: Kafka's `ssl.*` broker keys, overridable per listener with
//! `listener.name.<name>.ssl.*`, resolved into what a TLS acceptor needs. Only PEM key and trust
//! stores are read (Kafka's `ssl.keystore.type=PEM`, KIP-651): a JKS or PKCS12 store, or an
//! encrypted key, is refused here with the key at fault rather than failing at the first
//! handshake. The files themselves are read by the server when it binds the listener.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::broker_keys::broker_def;
use crate::error::ConfigError;

/// Prefix of Kafka's per-listener config keys: `listener.name.<lower-case name>.<key>`.
pub(crate) const LISTENER_PREFIX: &str = "listener.name.";

/// Where the listener's private key and certificate chain come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// One PEM file holding the private key and the certificate chain, leaf first.
    File(PathBuf),
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain` given as PEM text.
    Inline {
        certificate_chain: String,
        key: String,
    },
}

// Manual so that a logged config never shows an inline private key.
impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(path) => f.debug_tuple("File").field(path).finish(),
            KeySource::Inline { .. } => f.write_str("Inline([hidden])"),
        }
    }
}

/// Where the CA certificates that client certificates must chain to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    File(PathBuf),
    Inline(String),
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Ask for a certificate; verify it when one is sent, accept clients that send none.
    Requested,
    Required,
}

/// TLS versions from `ssl.enabled.protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Everything needed to serve one SSL listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    pub key: KeySource,
    pub trust: Option<TrustSource>,
    pub client_auth: ClientAuth,
    pub protocols: Vec<TlsVersion>,
    /// `ssl.endpoint.identification.algorithm=https`: as a client (to other brokers), check the
    /// peer's host name against its certificate.
    pub verify_hostname: bool,
}

/// Splits `listener.name.<name>.<ssl key>` into the upper-cased listener name and the `ssl.*` key
/// when that key is one Strait knows; anything else is not a per-listener SSL key.
pub(crate) fn listener_ssl_key(key: &str) -> Option<(String, &'static str)> {
    let rest = key.strip_prefix(LISTENER_PREFIX)?;
    let (name, config) = rest.split_once('.')?;
    if name.is_empty() || !config.starts_with("ssl.") {
        return None;
    }
    let def = broker_def(config)?;
    Some((name.to_ascii_uppercase(), def.name))
}

/// The effective value of `key` for one listener, with the name of the key that supplied it (the
/// per-listener key wins over the global one, as in Kafka).
pub(crate) struct Lookup<'a> {
    pub listener: &'a str,
    pub overrides: Option<&'a BTreeMap<&'static str, String>>,
    pub global: &'a dyn Fn(&str) -> Option<String>,
}

impl Lookup<'_> {
    fn get(&self, key: &'static str) -> Option<(String, String)> {
        if let Some(v) = self.overrides.and_then(|o| o.get(key)) {
            let name = format!(
                "{LISTENER_PREFIX}{}.{key}",
                self.listener.to_ascii_lowercase()
            );
            return Some((name, v.clone()));
        }
        (self.global)(key).map(|v| (key.to_string(), v))
    }

    fn non_empty(&self, key: &'static str) -> Option<(String, String)> {
        self.get(key).filter(|(_, v)| !v.trim().is_empty())
    }
}

/// Resolves and checks the SSL settings of one listener.
pub(crate) fn ssl_settings(l: &Lookup<'_>) -> Result<SslSettings, ConfigError> {
    let listener = l.listener;
    let store_type = |key: &'static str| -> Result<(), ConfigError> {
        let (name, value) = l
            .get(key)
            .unwrap_or_else(|| (key.to_string(), "JKS".into()));
        if value.trim().eq_ignore_ascii_case("PEM") {
            Ok(())
        } else {
            Err(ConfigError::invalid(
                &name,
                format!(
                    "listener {listener}: Strait reads PEM stores only, got '{}'; convert the \
                     store to PEM and set {name}=PEM",
                    value.trim()
                ),
            ))
        }
    };

    if let Some((name, _)) = l.non_empty("ssl.key.password") {
        return Err(ConfigError::invalid(
            &name,
            format!(
                "listener {listener}: encrypted private keys are not supported; give an \
                 unencrypted PEM key and leave {name} unset"
            ),
        ));
    }
    let location = l.non_empty("ssl.keystore.location");
    let chain = l.non_empty("ssl.keystore.certificate.chain");
    let key = l.non_empty("ssl.keystore.key");
    let key = match (location, chain, key) {
        (Some((_, path)), None, None) => {
            store_type("ssl.keystore.type")?;
            KeySource::File(PathBuf::from(path.trim()))
        }
        (None, Some((_, chain)), Some((_, key))) => {
            store_type("ssl.keystore.type")?;
            KeySource::Inline {
                certificate_chain: chain,
                key,
            }
        }
        (None, None, None) => {
            return Err(ConfigError::invalid(
                "ssl.keystore.location",
                format!(
                    "listener {listener} uses SSL but has no keystore: set ssl.keystore.type=PEM \
                     and ssl.keystore.location (or listener.name.{}.ssl.keystore.location)",
                    listener.to_ascii_lowercase()
                ),
            ));
        }
        (Some((name, _)), _, _) => {
            return Err(ConfigError::invalid(
                &name,
                format!(
                    "listener {listener}: set either a keystore location or \
                     ssl.keystore.certificate.chain with ssl.keystore.key, not both"
                ),
            ));
        }
        (None, chain, _) => {
            let missing = if chain.is_some() {
                "ssl.keystore.key"
            } else {
                "ssl.keystore.certificate.chain"
            };
            return Err(ConfigError::invalid(
                missing,
                format!(
                    "listener {listener}: ssl.keystore.certificate.chain and ssl.keystore.key \
                     must be set together"
                ),
            ));
        }
    };

    let trust = match (
        l.non_empty("ssl.truststore.location"),
        l.non_empty("ssl.truststore.certificates"),
    ) {
        (Some((name, _)), Some(_)) => {
            return Err(ConfigError::invalid(
                &name,
                format!(
                    "listener {listener}: set either a truststore location or \
                     ssl.truststore.certificates, not both"
                ),
            ));
        }
        (Some((_, path)), None) => {
            store_type("ssl.truststore.type")?;
            Some(TrustSource::File(PathBuf::from(path.trim())))
        }
        (None, Some((_, pem))) => {
            store_type("ssl.truststore.type")?;
            Some(TrustSource::Inline(pem))
        }
        (None, None) => None,
    };

    let (auth_key, auth) = l
        .get("ssl.client.auth")
        .unwrap_or_else(|| ("ssl.client.auth".into(), "none".into()));
    let client_auth = match auth.trim().to_ascii_lowercase().as_str() {
        "required" => ClientAuth::Required,
        "requested" => ClientAuth::Requested,
        "none" => ClientAuth::None,
        other => {
            return Err(ConfigError::invalid(
                &auth_key,
                format!("invalid value '{other}': expected required, requested or none"),
            ));
        }
    };
    if client_auth != ClientAuth::None && trust.is_none() {
        return Err(ConfigError::invalid(
            &auth_key,
            format!(
                "listener {listener}: client authentication needs the CAs to verify client \
                 certificates against: set ssl.truststore.type=PEM and ssl.truststore.location"
            ),
        ));
    }

    let (proto_key, protos) = l
        .get("ssl.enabled.protocols")
        .unwrap_or_else(|| ("ssl.enabled.protocols".into(), "TLSv1.2,TLSv1.3".into()));
    let mut protocols = Vec::new();
    for p in protos.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = match p {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            other => {
                return Err(ConfigError::invalid(
                    &proto_key,
                    format!("unsupported TLS version '{other}': expected TLSv1.2 or TLSv1.3"),
                ));
            }
        };
        if !protocols.contains(&v) {
            protocols.push(v);
        }
    }
    if protocols.is_empty() {
        return Err(ConfigError::invalid(
            &proto_key,
            format!("listener {listener}: no TLS version enabled"),
        ));
    }
    protocols.sort();

    let verify_hostname = l
        .get("ssl.endpoint.identification.algorithm")
        .is_none_or(|(_, v)| v.trim().eq_ignore_ascii_case("https"));

    Ok(SslSettings {
        key,
        trust,
        client_auth,
        protocols,
        verify_hostname,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        global: &[(&str, &str)],
        overrides: &[(&'static str, &str)],
    ) -> Result<SslSettings, ConfigError> {
        let global: BTreeMap<String, String> = global
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let overrides: BTreeMap<&'static str, String> =
            overrides.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let lookup = move |k: &str| global.get(k).cloned();
        ssl_settings(&Lookup {
            listener: "EXTERNAL",
            overrides: Some(&overrides),
            global: &lookup,
        })
    }

    #[test]
    fn per_listener_keys_win_and_pem_files_are_read() {
        let s = settings(
            &[
                ("ssl.keystore.type", "JKS"),
                ("ssl.keystore.location", "/global.jks"),
            ],
            &[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", "/tls/keystore.pem"),
                ("ssl.client.auth", "required"),
                ("ssl.truststore.type", "pem"),
                ("ssl.truststore.location", "/tls/ca.crt"),
                ("ssl.enabled.protocols", "TLSv1.3"),
            ],
        )
        .unwrap();
        assert_eq!(s.key, KeySource::File("/tls/keystore.pem".into()));
        assert_eq!(s.trust, Some(TrustSource::File("/tls/ca.crt".into())));
        assert_eq!(s.client_auth, ClientAuth::Required);
        assert_eq!(s.protocols, vec![TlsVersion::Tls13]);
    }

    #[test]
    fn jks_stores_missing_keystores_and_encrypted_keys_are_refused_by_name() {
        let jks = settings(&[("ssl.keystore.location", "/k.jks")], &[]).unwrap_err();
        assert!(
            jks.to_string().contains("ssl.keystore.type") && jks.to_string().contains("PEM"),
            "{jks}"
        );
        let none = settings(&[], &[]).unwrap_err();
        assert!(none.to_string().contains("has no keystore"), "{none}");
        let encrypted = settings(
            &[],
            &[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", "/k.pem"),
                ("ssl.key.password", "secret"),
            ],
        )
        .unwrap_err();
        assert!(
            encrypted
                .to_string()
                .contains("listener.name.external.ssl.key.password"),
            "{encrypted}"
        );
        let half = settings(
            &[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(
            half.to_string().contains("ssl.keystore.certificate.chain"),
            "{half}"
        );
    }

    #[test]
    fn client_auth_needs_a_truststore() {
        let e = settings(
            &[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", "/k.pem"),
                ("ssl.client.auth", "requested"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("truststore"), "{e}");
    }

    #[test]
    fn inline_keys_are_never_printed() {
        let s = settings(
            &[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.certificate.chain", "CHAIN"),
                ("ssl.keystore.key", "VERY-SECRET"),
            ],
            &[],
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("VERY-SECRET"));
        assert_eq!(s.protocols, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    }

    #[test]
    fn only_known_ssl_keys_are_per_listener_keys() {
        assert_eq!(
            listener_ssl_key("listener.name.external.ssl.keystore.location"),
            Some(("EXTERNAL".into(), "ssl.keystore.location"))
        );
        assert_eq!(
            listener_ssl_key("listener.name.external.ssl.nonsense"),
            None
        );
        assert_eq!(
            listener_ssl_key("listener.name.external.sasl.enabled.mechanisms"),
            None
        );
        assert_eq!(
            listener_ssl_key("listener.name..ssl.keystore.location"),
            None
        );
    }
}
