//! SASL settings of the broker's `SASL_PLAINTEXT` and `SASL_SSL` listeners, from Kafka's keys:
//! the mechanisms each offers (`sasl.enabled.mechanisms`, or per listener
//! `listener.name.<l>.sasl.enabled.mechanisms`), the JAAS options per listener and mechanism
//! (`listener.name.<l>.<mechanism>.sasl.jaas.config`: PLAIN's `user_<name>` entries, and the
//! username/password this broker logs in with on the inter-broker listener),
//! `sasl.mechanism.inter.broker.protocol`, `connections.max.reauth.ms` (KIP-368),
//! `connection.failed.authentication.delay.ms`, and OAUTHBEARER's KIP-768 validation keys
//! (`sasl.oauthbearer.*`, global only; Kafka also reads them per listener and mechanism as
//! `listener.name.<l>.oauthbearer.sasl.oauthbearer.*`, which Strait does not).

use std::collections::BTreeMap;
use std::path::PathBuf;

use strait_auth::jaas::JaasConfig;
use strait_auth::oauth::Validation;

use crate::error::ConfigError;
use crate::listener::Listener;
use crate::ssl::LISTENER_PREFIX;

/// Mechanisms Strait serves. Kafka's default, GSSAPI (Kerberos), is not among them.
pub const SUPPORTED_MECHANISMS: &[&str] =
    &["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "OAUTHBEARER"];

/// Per-listener SASL keys Strait reads, after `listener.name.<l>.`.
const MECHANISMS_KEY: &str = "sasl.enabled.mechanisms";
const JAAS_SUFFIX: &str = ".sasl.jaas.config";
/// `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class`: Kafka's switch from its
/// unsecured test validator to KIP-768's JWT validator. Strait always validates JWTs, so the
/// key may only name that validator.
const OAUTH_CALLBACK_KEY: &str = "oauthbearer.sasl.server.callback.handler.class";
/// The values Kafka configs give [`OAUTH_CALLBACK_KEY`]: the class and its pre-3.4 name.
pub const OAUTH_VALIDATOR_CLASSES: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];
/// The global key naming the JSON Web Key Set.
pub const JWKS_URL_KEY: &str = "sasl.oauthbearer.jwks.endpoint.url";
const OAUTHBEARER: &str = "OAUTHBEARER";

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
    /// OAUTHBEARER's token validation; `Some` exactly when a SASL listener enables OAUTHBEARER.
    pub oauth: Option<OAuthSettings>,
}

/// How OAUTHBEARER access tokens are validated (KIP-768's broker keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The JSON Web Key Set file, from `sasl.oauthbearer.jwks.endpoint.url` (`file:` URL or
    /// path).
    pub jwks_path: PathBuf,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`: how often the file is read again.
    pub refresh_ms: u64,
    /// `sasl.oauthbearer.expected.audience`, `.expected.issuer`, `.sub.claim.name`,
    /// `.scope.claim.name`, `.clock.skew.seconds`.
    pub validation: Validation,
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
        || config.eq_ignore_ascii_case(OAUTH_CALLBACK_KEY)
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
    pub oauth: OAuthGlobals,
}

/// The `sasl.oauthbearer.*` keys as set (or defaulted).
pub(crate) struct OAuthGlobals {
    /// `sasl.oauthbearer.jwks.endpoint.url`; `None` when unset or empty.
    pub jwks_url: Option<String>,
    pub refresh_ms: u64,
    pub validation: Validation,
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
            if key.eq_ignore_ascii_case(OAUTH_CALLBACK_KEY) {
                if !value.is_empty() && !OAUTH_VALIDATOR_CLASSES.contains(&value.as_str()) {
                    return Err(ConfigError::invalid(
                        &prefixed(key),
                        format!(
                            "Strait validates OAUTHBEARER JWTs itself (KIP-768's checks, with the \
                             keys of {JWKS_URL_KEY}) and loads no Java callback handler: leave \
                             this key out or set it to {}, not {value}",
                            OAUTH_VALIDATOR_CLASSES[0]
                        ),
                    ));
                }
                if !mechanisms.iter().any(|m| m == OAUTHBEARER) {
                    warnings.push(format!(
                        "config key '{}' is for OAUTHBEARER, which listener {} does not enable",
                        prefixed(key),
                        l.name
                    ));
                }
                continue;
            }
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
    let oauth = match out
        .iter()
        .find(|(_, l)| l.mechanisms.iter().any(|m| m == OAUTHBEARER))
    {
        Some((name, _)) => Some(oauth_settings(name, globals.oauth)?),
        None => None,
    };
    let settings = SaslSettings {
        listeners: out,
        inter_broker_mechanism: globals.inter_broker_mechanism.to_ascii_uppercase(),
        max_reauth_ms: globals.max_reauth_ms,
        failed_authentication_delay_ms: globals.failed_authentication_delay_ms,
        oauth,
    };
    // Brokers authenticate to each other on the inter-broker listener with their own login.
    if let Some(ib) = inter_broker
        && let Some(l) = settings.listeners.get(&ib.name)
    {
        let mechanism = &settings.inter_broker_mechanism;
        if mechanism == OAUTHBEARER {
            return Err(ConfigError::invalid(
                "sasl.mechanism.inter.broker.protocol",
                "brokers log in to each other with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; \
                 OAUTHBEARER is served to clients only (a broker has no token to present)",
            ));
        }
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

/// The OAUTHBEARER settings, needed because `listener` enables the mechanism.
fn oauth_settings(listener: &str, globals: OAuthGlobals) -> Result<OAuthSettings, ConfigError> {
    let Some(url) = globals.jwks_url else {
        return Err(ConfigError::invalid(
            JWKS_URL_KEY,
            format!(
                "SASL listener {listener} enables OAUTHBEARER: set {JWKS_URL_KEY} to the JSON Web \
                 Key Set file tokens are verified against (file:///path/to/jwks.json)"
            ),
        ));
    };
    let jwks_path = jwks_path(&url).map_err(|why| ConfigError::invalid(JWKS_URL_KEY, why))?;
    for (key, value) in [
        (
            "sasl.oauthbearer.sub.claim.name",
            &globals.validation.sub_claim,
        ),
        (
            "sasl.oauthbearer.scope.claim.name",
            &globals.validation.scope_claim,
        ),
    ] {
        if value.is_empty() {
            return Err(ConfigError::invalid(key, "must name a claim, not be empty"));
        }
    }
    Ok(OAuthSettings {
        jwks_path,
        refresh_ms: globals.refresh_ms,
        validation: globals.validation,
    })
}

/// The file a `sasl.oauthbearer.jwks.endpoint.url` names: `file:///path` (also `file:/path` and
/// `file://localhost/path`, percent-escapes decoded) or a plain path. Kafka also fetches the set
/// over HTTP(S); Strait does not (yet).
pub(crate) fn jwks_path(url: &str) -> Result<PathBuf, String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(format!(
            "{url}: only file URLs (file:///path/to/jwks.json) or paths are served for now; \
             Strait does not fetch a JSON Web Key Set over HTTP(S), so keep a copy of the set \
             in a file (it is read again every sasl.oauthbearer.jwks.endpoint.refresh.ms)"
        ));
    }
    let Some(rest) = lower.starts_with("file:").then(|| &url["file:".len()..]) else {
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "{url}: unsupported URL scheme {scheme}; use a file:///path URL or a path"
            ));
        }
        return Ok(PathBuf::from(url));
    };
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(format!(
                    "{url}: a file URL names a local file, not one on host {host}"
                ));
            }
            path
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(format!(
            "{url}: a file URL needs an absolute path (file:///path/to/jwks.json)"
        ));
    }
    percent_decode(path).ok_or_else(|| format!("{url}: invalid percent-escape in the path"))
}

/// `%XX` escapes of a URL path decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(path: &str) -> Option<PathBuf> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(PathBuf::from)
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
        assert_eq!(
            listener_sasl_key(
                "listener.name.external.oauthbearer.sasl.server.callback.handler.class"
            ),
            Some((
                "EXTERNAL".into(),
                "oauthbearer.sasl.server.callback.handler.class".into()
            ))
        );
        assert_eq!(
            listener_sasl_key("listener.name.external.plain.sasl.server.callback.handler.class"),
            None
        );
    }

    #[test]
    fn jwks_urls_name_local_files() {
        let ok = |url: &str| jwks_path(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            ok("file:///etc/strait/jwks.json"),
            PathBuf::from("/etc/strait/jwks.json")
        );
        assert_eq!(ok("FILE:/etc/jwks.json"), PathBuf::from("/etc/jwks.json"));
        assert_eq!(
            ok("file://localhost/etc/jwks.json"),
            PathBuf::from("/etc/jwks.json")
        );
        assert_eq!(
            ok("file:///etc/my%20keys.json"),
            PathBuf::from("/etc/my keys.json")
        );
        assert_eq!(ok("/etc/jwks.json"), PathBuf::from("/etc/jwks.json"));
        assert_eq!(ok("conf/jwks.json"), PathBuf::from("conf/jwks.json"));
        for (url, why) in [
            ("https://idp.example.com/keys", "only file URLs"),
            ("HTTP://idp/keys", "only file URLs"),
            ("ftp://idp/keys", "unsupported URL scheme ftp"),
            ("file://idp.example.com/keys.json", "host idp.example.com"),
            ("file:keys.json", "absolute path"),
            ("file:///bad%zz", "percent-escape"),
        ] {
            let e = jwks_path(url).expect_err(url);
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
