//! The KRaft (multi-node) view of the broker config: `process.roles`, the quorum voters and
//! bootstrap servers, the controller listener, and Kafka's `KafkaConfig.validateValues` rules
//! that tie them to `node.id` and the listeners; plus the choice of the inter-broker listener.

use std::collections::BTreeMap;

use crate::error::ConfigError;
use crate::listener::{Listener, join_host_port, split_host_port};

const VOTERS: &str = "controller.quorum.voters";
const BOOTSTRAP: &str = "controller.quorum.bootstrap.servers";
const CONTROLLER_NAMES: &str = "controller.listener.names";
const ROLES: &str = "process.roles";

/// The roles named in `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// Validated KRaft settings, present when `process.roles` is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KraftSettings {
    pub roles: ProcessRoles,
    /// `controller.quorum.voters`: node id -> (host, port). Always contains this node when it is a
    /// controller; may be empty on a broker-only node configured with bootstrap servers alone.
    pub voters: BTreeMap<i32, (String, u16)>,
    /// `controller.quorum.bootstrap.servers` as (host, port).
    pub bootstrap_servers: Vec<(String, u16)>,
    /// This node's listener named by `controller.listener.names` (the first such name that is in
    /// `listeners`); always set for a controller, None for a broker-only node.
    pub controller_listener: Option<Listener>,
}

/// Parses `controller.quorum.voters` (`id@host:port,...`, Kafka's syntax, `[v6]` hosts allowed).
/// Errors name the key and the bad entry.
pub fn parse_voters(value: &str) -> Result<BTreeMap<i32, (String, u16)>, ConfigError> {
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| ConfigError::invalid(VOTERS, format!("voter entry '{entry}': {why}"));
        let (id, address) = match entry.split('@').collect::<Vec<_>>().as_slice() {
            [id, address] => (id.trim(), address.trim()),
            _ => {
                return Err(bad(
                    "does not contain exactly one '@' (expected id@host:port)",
                ));
            }
        };
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(&format!("failed to parse node id '{id}'")))?;
        let (host, port) = parse_address(address).map_err(|why| bad(&why))?;
        if voters.insert(id, (host, port)).is_some() {
            return Err(bad(&format!("node id {id} is listed twice")));
        }
    }
    Ok(voters)
}

/// Parses `controller.quorum.bootstrap.servers` (`host:port,...`).
pub fn parse_bootstrap_servers(value: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            parse_address(entry).map_err(|why| {
                ConfigError::invalid(BOOTSTRAP, format!("server entry '{entry}': {why}"))
            })
        })
        .collect()
}

/// A routable `host:port` with a real port.
fn parse_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = split_host_port(address)?;
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host == "0.0.0.0" || host == "::" {
        return Err(format!("host {host} is not routable"));
    }
    if port == 0 {
        return Err("port 0 is not a reachable port".into());
    }
    Ok((host, port))
}

/// What the KRaft rules look at, all parsed already.
pub(crate) struct KraftInputs<'a> {
    pub node_id: i32,
    pub process_roles: &'a [String],
    /// From [`parse_voters`] and [`parse_bootstrap_servers`].
    pub voters: BTreeMap<i32, (String, u16)>,
    pub bootstrap_servers: Vec<(String, u16)>,
    /// Upper-cased.
    pub controller_listener_names: &'a [String],
    pub listeners: &'a [Listener],
    pub advertised_listeners: &'a [Listener],
}

/// Validates the KRaft settings with Kafka's rules; None in single-node mode (no roles).
pub(crate) fn kraft_settings(i: KraftInputs<'_>) -> Result<Option<KraftSettings>, ConfigError> {
    let (voters, bootstrap_servers) = (i.voters, i.bootstrap_servers);
    if i.process_roles.is_empty() {
        return Ok(None);
    }
    let roles = ProcessRoles {
        broker: i.process_roles.iter().any(|r| r == "broker"),
        controller: i.process_roles.iter().any(|r| r == "controller"),
    };
    let node = i.node_id;
    if voters.is_empty() && bootstrap_servers.is_empty() {
        return Err(ConfigError::invalid(
            VOTERS,
            format!(
                "If using {ROLES}, either {VOTERS} or {BOOTSTRAP} must contain the set of \
                 bootstrap controllers"
            ),
        ));
    }
    let voter_ids = || {
        voters
            .keys()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if i.controller_listener_names.is_empty() {
        return Err(ConfigError::invalid(
            CONTROLLER_NAMES,
            format!("must contain at least one value when {ROLES} is set"),
        ));
    }
    let controller_listener = i
        .controller_listener_names
        .iter()
        .find_map(|name| i.listeners.iter().find(|l| &l.name == name))
        .cloned();
    if roles.controller {
        // With voters configured, a controller must be one of them; with bootstrap servers
        // alone it joins the quorum as an observer and is promoted by AddRaftVoter (KIP-853).
        if !voters.is_empty() && !voters.contains_key(&node) {
            return Err(ConfigError::invalid(
                VOTERS,
                format!(
                    "If {ROLES} contains the 'controller' role, the node id {node} must be \
                     included in the set of voters {VOTERS}=[{}]",
                    voter_ids()
                ),
            ));
        }
        if let Some(name) = i
            .controller_listener_names
            .iter()
            .find(|name| !i.listeners.iter().any(|l| &l.name == *name))
        {
            return Err(ConfigError::invalid(
                CONTROLLER_NAMES,
                format!(
                    "must only contain values appearing in the 'listeners' configuration when \
                     running the KRaft controller role; {name} is not a listener"
                ),
            ));
        }
        let Some(listener) = &controller_listener else {
            return Err(ConfigError::invalid(
                CONTROLLER_NAMES,
                "must contain at least one value appearing in the 'listeners' configuration \
                 when running the KRaft controller role",
            ));
        };
        if let Some((host, port)) = voters.get(&node)
            && listener.port != *port
        {
            return Err(ConfigError::invalid(
                VOTERS,
                format!(
                    "the voter entry of this node ({node}@{}) does not match the port of its \
                     controller listener {listener}",
                    join_host_port(host, *port)
                ),
            ));
        }
    } else {
        if voters.contains_key(&node) {
            return Err(ConfigError::invalid(
                VOTERS,
                format!(
                    "If {ROLES} contains just the 'broker' role, the node id {node} must not be \
                     included in the set of voters {VOTERS}=[{}]",
                    voter_ids()
                ),
            ));
        }
        if let Some(l) = &controller_listener {
            return Err(ConfigError::invalid(
                CONTROLLER_NAMES,
                format!(
                    "must not contain a value appearing in the 'listeners' configuration when \
                     running KRaft with just the broker role; {} is a listener",
                    l.name
                ),
            ));
        }
    }
    if roles.broker
        && let Some(l) = i
            .advertised_listeners
            .iter()
            .find(|l| i.controller_listener_names.contains(&l.name))
    {
        return Err(ConfigError::invalid(
            "advertised.listeners",
            format!(
                "must not contain KRaft controller listeners from {CONTROLLER_NAMES} when \
                 {ROLES} contains the broker role, because Kafka clients that send requests via \
                 advertised listeners do not send requests to KRaft controllers; found {}",
                l.name
            ),
        ));
    }
    Ok(Some(KraftSettings {
        roles,
        voters,
        bootstrap_servers,
        controller_listener: if roles.controller {
            controller_listener
        } else {
            None
        },
    }))
}

/// Picks the inter-broker listener: `inter.broker.listener.name` when set (it must be
/// advertised and, in KRaft mode, not a controller listener), else PLAINTEXT when advertised
/// (Kafka's default through `security.inter.broker.protocol`), else the first advertised listener
/// that is not a controller listener. A KRaft broker must have one; otherwise (single-node mode
/// with only controller listeners) the first listener stands in.
pub(crate) fn inter_broker_listener(
    name: Option<&str>,
    advertised: &[Listener],
    listeners: &[Listener],
    controller_names: &[String],
    kraft_broker: Option<bool>,
) -> Result<Listener, ConfigError> {
    const KEY: &str = "inter.broker.listener.name";
    if let Some(name) = name {
        let name = name.to_ascii_uppercase();
        let Some(l) = advertised.iter().find(|l| l.name == name) else {
            return Err(ConfigError::invalid(
                KEY,
                format!("{name} must be a listener name defined in advertised.listeners"),
            ));
        };
        if kraft_broker.is_some() && controller_names.contains(&name) {
            return Err(ConfigError::invalid(
                KEY,
                format!("{CONTROLLER_NAMES} must not contain the inter-broker listener {name}"),
            ));
        }
        return Ok(l.clone());
    }
    let brokers = || {
        advertised
            .iter()
            .filter(|l| !controller_names.contains(&l.name))
    };
    let found = brokers()
        .find(|l| l.name == "PLAINTEXT")
        .or_else(|| brokers().next())
        .cloned();
    match (found, kraft_broker) {
        (Some(l), _) => Ok(l),
        (None, Some(true)) => Err(ConfigError::invalid(
            "advertised.listeners",
            "a KRaft broker needs an advertised listener that is not a controller listener, \
             for clients and for inter-broker traffic",
        )),
        (None, _) => listeners
            .first()
            .cloned()
            .ok_or_else(|| ConfigError::invalid("listeners", "must name at least one listener")),
    }
}

#[cfg(test)]
mod tests;
