//! SASL settings of the broker's `SASL_PLAINTEXT` and `SASL_SSL` listeners, from Kafka's keys:
//! the mechanisms each offers (`sasl.enabled.mechanisms`, or per listener
//! `listener.name.<l>.sasl.enabled.mechanisms`), the JAAS options per listener and mechanism
//! (`listener.name.<l>.<mechanism>.sasl.jaas.config`: PLAIN's `user_<name>` entries, and the
//! username/password this broker logs in with on the inter-broker listener),
//! `sasl.mechanism.inter.broker.protocol`, `connections.max.reauth.ms` (KIP-368) and
//! `connection.failed.authentication.delay.ms`.

use std::collections::BTreeMap;

use strait_auth::jaas::JaasConfig;

use crate::error::ConfigError;
use crate::listener::Listener;
use crate::ssl::LISTENER_PREFIX;

/// Mechanisms Strait serves. Kafka's default, GSSAPI (Kerberos), is not among them.
pub const SUPPORTED_MECHANISMS: &[&str] = &["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"];

/// Per-listener SASL keys Strait reads, after `listener.name.<l>.`.
const MECHANISMS_KEY: &str = "sasl.enabled.mechanisms";
const JAAS_SUFFIX: &str = ".sasl.jaas.config";

/// One SASL listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslListener {
    /// Upper-case mechanism names, in the configured order.
    pub mechanisms: Vec<String>,
    /// JAAS options by upper-case mechanism name.
    pub jaas: BTreeMap<String, JaasConfig>,
}

impl SaslListener {
    /// PLAIN's `user_<name>="<password>"` entries, when the listener's PLAIN JAAS config has
    /// any; otherwise PLAIN checks passwords against the SCRAM credentials.
    pub fn plain_users(&self) -> Option<BTreeMap<String, String>> {
        let users = self.jaas.get("PLAIN")?.plain_users();
        (!users.is_empty()).then_some(users)
    }
}

/// Everything the connection layer and the inter-broker clients need for SASL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslSettings {
    /// By upper-case listener name; only SASL listeners.
    pub listeners: BTreeMap<String, SaslListener>,
    /// `sasl.mechanism.inter.broker.protocol`.
    pub inter_broker_mechanism: String,
    /// `connections.max.reauth.ms`; 0: sessions never expire.
    pub max_reauth_ms: u64,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_authentication_delay_ms: u64,
}

impl SaslSettings {
    /// The credential this broker logs in with on `listener` (the inter-broker one): the
    /// `username`/`password` of that listener's JAAS config for `inter_broker_mechanism`.
    pub fn client_login(&self, listener: &str) -> Option<(String, String, String)> {
        let l = self.listeners.get(listener)?;
        let jaas = l.jaas.get(&self.inter_broker_mechanism)?;
        Some((
            self.inter_broker_mechanism.clone(),
            jaas.username()?.to_string(),
            jaas.password()?.to_string(),
        ))
    }
}

/// Splits `listener.name.<name>.<key>` into the upper-cased listener name and the SASL key
/// (`sasl.enabled.mechanisms` or `<mechanism>.sasl.jaas.config`), or `None` for other keys.
pub(crate) fn listener_sasl_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(LISTENER_PREFIX)?;
    let (name, config) = rest.split_once('.')?;
    if name.is_empty() {
        return None;
    }
    let known = config == MECHANISMS_KEY
        || config
            .strip_suffix(JAAS_SUFFIX)
            .is_some_and(|m| !m.is_empty() && !m.contains('.'));
    known.then(|| (name.to_ascii_uppercase(), config.to_string()))
}

/// The global values the SASL settings start from.
pub(crate) struct Globals {
    pub mechanisms: Vec<String>,
    pub inter_broker_mechanism: String,
    pub max_reauth_ms: u64,
    pub failed_authentication_delay_ms: u64,
}

/// Resolves the SASL settings of `listeners`; `per_listener` holds the `listener.name.*` SASL
/// keys by listener. A listener that cannot authenticate anyone is refused rather than served.
pub(crate) fn sasl_settings(
    listeners: &[Listener],
    per_listener: &BTreeMap<String, BTreeMap<String, String>>,
    globals: Globals,
    inter_broker: Option<&Listener>,
    warnings: &mut Vec<String>,
) -> Result<SaslSettings, ConfigError> {
    for (name, keys) in per_listener {
        if !listeners.iter().any(|l| &l.name == name) {
            for key in keys.keys() {
                warnings.push(format!(
                    "config key '{LISTENER_PREFIX}{}.{key}' names no listener; ignored",
                    name.to_ascii_lowercase()
                ));
            }
        }
    }
    let mut out = BTreeMap::new();
    for l in listeners {
        let keys = per_listener.get(&l.name);
        let prefixed =
            |key: &str| format!("{LISTENER_PREFIX}{}.{key}", l.name.to_ascii_lowercase());
        if !l.security_protocol.starts_with("SASL_") {
            if let Some(keys) = keys {
                for key in keys.keys() {
                    warnings.push(format!(
                        "config key '{}' applies to SASL listeners only; listener {} is {}",
                        prefixed(key),
                        l.name,
                        l.security_protocol
                    ));
                }
            }
            continue;
        }
        let (mechanisms_key, mechanisms) = match keys.and_then(|k| k.get(MECHANISMS_KEY)) {
            Some(v) => (prefixed(MECHANISMS_KEY), split_mechanisms(v)),
            None => (MECHANISMS_KEY.to_string(), globals.mechanisms.clone()),
        };
        if mechanisms.is_empty() {
            return Err(ConfigError::invalid(
                &mechanisms_key,
                format!("SASL listener {} offers no mechanism", l.name),
            ));
        }
        for m in &mechanisms {
            if !SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                let hint = if m == "GSSAPI" {
                    " (Kafka's default; Kerberos is not supported)"
                } else {
                    ""
                };
                return Err(ConfigError::invalid(
                    &mechanisms_key,
                    format!(
                        "mechanism {m}{hint} is not supported on listener {}; Strait serves {}",
                        l.name,
                        SUPPORTED_MECHANISMS.join(", ")
                    ),
                ));
            }
        }
        let mut jaas = BTreeMap::new();
        for (key, value) in keys.into_iter().flatten() {
            let Some(mechanism) = key.strip_suffix(JAAS_SUFFIX) else {
                continue;
            };
            let mechanism = mechanism.to_ascii_uppercase();
            let parsed = strait_auth::jaas::parse(value)
                .map_err(|e| ConfigError::invalid(&prefixed(key), e.to_string()))?;
            if !mechanisms.contains(&mechanism) {
                warnings.push(format!(
                    "config key '{}' is for {mechanism}, which listener {} does not enable",
                    prefixed(key),
                    l.name
                ));
            }
            jaas.insert(mechanism, parsed);
        }
        out.insert(l.name.clone(), SaslListener { mechanisms, jaas });
    }
    let settings = SaslSettings {
        listeners: out,
        inter_broker_mechanism: globals.inter_broker_mechanism.to_ascii_uppercase(),
        max_reauth_ms: globals.max_reauth_ms,
        failed_authentication_delay_ms: globals.failed_authentication_delay_ms,
    };
    // Brokers authenticate to each other on the inter-broker listener with their own login.
    if let Some(ib) = inter_broker
        && let Some(l) = settings.listeners.get(&ib.name)
    {
        let mechanism = &settings.inter_broker_mechanism;
        if !l.mechanisms.contains(mechanism) {
            return Err(ConfigError::invalid(
                "sasl.mechanism.inter.broker.protocol",
                format!(
                    "{mechanism} is not enabled on the inter-broker listener {} (enabled: {})",
                    ib.name,
                    l.mechanisms.join(", ")
                ),
            ));
        }
        if settings.client_login(&ib.name).is_none() {
            let key = format!(
                "{LISTENER_PREFIX}{}.{}{JAAS_SUFFIX}",
                ib.name.to_ascii_lowercase(),
                mechanism.to_ascii_lowercase()
            );
            return Err(ConfigError::invalid(
                &key,
                format!(
                    "the inter-broker listener {} uses SASL: set username and password (this \
                     broker's own login) in {key}",
                    ib.name
                ),
            ));
        }
    }
    Ok(settings)
}

pub(crate) fn split_mechanisms(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_listener_sasl_keys_are_recognised() {
        assert_eq!(
            listener_sasl_key("listener.name.sasl_ssl.sasl.enabled.mechanisms"),
            Some(("SASL_SSL".into(), "sasl.enabled.mechanisms".into()))
        );
        assert_eq!(
            listener_sasl_key("listener.name.external.scram-sha-512.sasl.jaas.config"),
            Some(("EXTERNAL".into(), "scram-sha-512.sasl.jaas.config".into()))
        );
        assert_eq!(
            listener_sasl_key("listener.name.external.ssl.keystore.location"),
            None
        );
        assert_eq!(
            listener_sasl_key("listener.name.external..sasl.jaas.config"),
            None
        );
        assert_eq!(listener_sasl_key("sasl.enabled.mechanisms"), None);
    }
}
