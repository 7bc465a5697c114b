//! Listener endpoints: Kafka's `NAME://host:port` lists, the listener security protocol map, and
//! plain `host:port` addresses.

use std::collections::BTreeMap;

use crate::error::ConfigError;

/// One listener endpoint. `name` is upper-cased as Kafka normalises listener names; an empty
/// `host` means all interfaces (and, when advertised, the machine's host name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

impl Listener {
    /// `host:port`, with IPv6 hosts in brackets, ready for socket address parsing.
    pub fn address(&self) -> String {
        join_host_port(&self.host, self.port)
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.name, self.address())
    }
}

/// `host:port`, with an IPv6 host in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Kafka's security protocols.
pub(crate) const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`) into upper-cased names and
/// protocols.
pub fn parse_security_protocol_map(
    key: &str,
    value: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .map(|(n, p)| (n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!("map entry '{entry}' is not of the form NAME:PROTOCOL"),
                )
            })?;
        if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "invalid security protocol '{protocol}' for listener {name}; expected one of {}",
                    SECURITY_PROTOCOLS.join(", ")
                ),
            ));
        }
        if map.insert(name.clone(), protocol).is_some() {
            return Err(ConfigError::invalid(
                key,
                format!("listener name {name} is mapped twice"),
            ));
        }
    }
    Ok(map)
}

/// Parses `PLAINTEXT://host:port,NAME://[::1]:port` (Kafka's listener format). Names are
/// upper-cased and must be unique and present in `map` (listener name -> security protocol);
/// ports are 0..=65535 (0 picks a free port).
pub fn parse_listeners(
    key: &str,
    value: &str,
    map: &BTreeMap<String, String>,
) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| ConfigError::invalid(key, format!("listener '{entry}': {why}"));
        let (name, address) = entry
            .split_once("://")
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(bad("missing listener name"));
        }
        let (host, port) = split_host_port(address).map_err(|why| bad(&why))?;
        let security_protocol = map
            .get(&name)
            .cloned()
            .ok_or_else(|| bad(&format!("no security protocol defined for listener {name}")))?;
        if listeners.iter().any(|l| l.name == name) {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "each listener must have a different name; {name} appears twice in '{value}'"
                ),
            ));
        }
        listeners.push(Listener {
            name,
            host,
            port,
            security_protocol,
        });
    }
    Ok(listeners)
}

/// Splits `host:port` / `[v6]:port` / `:port`. The host keeps Kafka's allowed characters.
pub(crate) fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| "expected host:port".to_string())?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| "unclosed '[' in host".to_string())?,
        None => host,
    };
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_' | ':')))
    {
        return Err(format!("invalid character '{c}' in host"));
    }
    let port: i64 = port
        .parse()
        .map_err(|_| format!("port '{port}' is not a number"))?;
    let port = u16::try_from(port).map_err(|_| format!("port {port} is out of range 0..65535"))?;
    Ok((host.to_string(), port))
}

/// Kafka's rule for `listeners`: two listeners may share a port only on different, specific
/// addresses (port 0 is exempt: each gets its own ephemeral port).
pub(crate) fn check_distinct_ports(key: &str, listeners: &[Listener]) -> Result<(), ConfigError> {
    let wildcard = |h: &str| h.is_empty() || h == "0.0.0.0" || h == "::";
    for (i, a) in listeners.iter().enumerate() {
        for b in &listeners[i + 1..] {
            let clash = a.port != 0
                && a.port == b.port
                && (a.host == b.host || wildcard(&a.host) || wildcard(&b.host));
            if clash {
                return Err(ConfigError::invalid(
                    key,
                    format!("each listener must have a different port: {a} and {b} clash"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
