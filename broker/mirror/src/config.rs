//! The MirrorMaker 2 properties file (`mm2.properties`): Java properties syntax, MM2's key names,
//! `source->target.` prefixed keys winning over global ones, per-cluster connection and security
//! settings. Parsing yields a [`MirrorConfig`] of clusters and enabled flows, or a [`ConfigError`]
//! naming the offending key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use crate::policy::{PolicyKind, ReplicationPolicy};

/// MM2's default `topics.exclude`.
pub const DEFAULT_TOPICS_EXCLUDE: &str = r".*[\-\.]internal, .*\.replica, __.*";
/// MM2's default `groups.exclude`.
pub const DEFAULT_GROUPS_EXCLUDE: &str = r"console-consumer-.*, connect-.*, __.*";
/// MM2's `replication.policy.class` values this engine implements.
pub const DEFAULT_POLICY_CLASS: &str = "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
pub const IDENTITY_POLICY_CLASS: &str = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy";

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: missing (required)")]
    Missing { key: String },
    #[error("{key}: invalid value {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// How a cluster is reached (`<alias>.security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(invalid(
                key,
                value,
                "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            )),
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// SASL credentials of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// One cluster of `clusters`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub alias: String,
    pub bootstrap_servers: String,
    pub security_protocol: SecurityProtocol,
    /// PEM file of trusted CAs (`<alias>.ssl.truststore.location`); system roots are not used.
    pub truststore: Option<PathBuf>,
    pub sasl: Option<SaslSettings>,
}

/// Comma-separated regexes matched against whole names, as MM2's filters do.
#[derive(Debug, Clone)]
pub struct NameFilter {
    include: Regex,
    exclude: Regex,
}

impl NameFilter {
    fn new(
        include_key: &str,
        include: &str,
        exclude_key: &str,
        exclude: &str,
    ) -> Result<Self, ConfigError> {
        Ok(NameFilter {
            include: pattern_list(include_key, include)?,
            exclude: pattern_list(exclude_key, exclude)?,
        })
    }

    /// Whether `name` is included and not excluded.
    pub fn matches(&self, name: &str) -> bool {
        self.include.is_match(name) && !self.exclude.is_match(name)
    }
}

/// `a, b, c` as one regex matching a whole name; an empty list matches nothing.
fn pattern_list(key: &str, value: &str) -> Result<Regex, ConfigError> {
    let parts: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Regex::new("^$.").map_err(|e| invalid(key, value, e.to_string()));
    }
    for part in &parts {
        Regex::new(part).map_err(|e| invalid(key, value, e.to_string()))?;
    }
    let joined = parts
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&format!("^(?:{joined})$")).map_err(|e| invalid(key, value, e.to_string()))
}

/// How a flow copies records (`mirror.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorMode {
    /// MirrorMaker 2 compatible: records re-produced, offsets translated through offset syncs.
    Mm2,
    /// Offset-preserving: source batches appended verbatim to read-only mirror topics of a
    /// Strait target (link appends), group offsets copied 1:1.
    Linked,
}

impl MirrorMode {
    fn parse(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "mm2" => Ok(Self::Mm2),
            "linked" => Ok(Self::Linked),
            _ => Err(invalid(key, value, "expected mm2 or linked")),
        }
    }
}

/// One enabled `source->target` flow with its settings resolved.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub source: String,
    pub target: String,
    pub mode: MirrorMode,
    /// `exactly.once.source.support=enabled` on an mm2 flow: each partition copies in
    /// transactions on the target, its progress committed inside them.
    pub exactly_once: bool,
    /// `transaction.timeout.ms` of the exactly-once copiers' transactional producers.
    pub transaction_timeout_ms: i32,
    pub topics: NameFilter,
    pub groups: NameFilter,
    pub policy: ReplicationPolicy,
    pub replication_factor: i16,
    pub refresh_topics_interval: Duration,
    pub refresh_groups_interval: Duration,
    pub sync_topic_configs: bool,
    pub emit_checkpoints_enabled: bool,
    pub emit_checkpoints_interval: Duration,
    pub emit_heartbeats_enabled: bool,
    pub emit_heartbeats_interval: Duration,
    pub sync_group_offsets_enabled: bool,
    pub sync_group_offsets_interval: Duration,
    pub offset_syncs_replication_factor: i16,
    pub checkpoints_replication_factor: i16,
    pub heartbeats_replication_factor: i16,
    pub offset_lag_max: i64,
    pub sync_topic_acls_enabled: bool,
    pub sync_topic_acls_interval: Duration,
}

impl FlowConfig {
    /// `source->target`, as MM2 names a flow.
    pub fn name(&self) -> String {
        format!("{}->{}", self.source, self.target)
    }

    /// Whether this flow mirrors source topic `topic`: selected by `topics`/`topics.exclude`
    /// and not excluded by the replication policy (internal topics, cycles back to the target).
    /// The one selection rule for topics, their checkpoints and their ACLs.
    pub fn mirrors_topic(&self, topic: &str) -> bool {
        self.policy
            .should_replicate(topic, &self.target, |t| self.topics.matches(t))
    }

    /// The consumer group on the source holding this flow's copy progress.
    pub fn progress_group(&self) -> String {
        format!("strait-mirror-{}-{}", self.source, self.target)
    }

    /// The consumer group on the source whose members (mirror processes) share the flow.
    pub fn members_group(&self) -> String {
        format!("strait-mirror-{}-{}-members", self.source, self.target)
    }

    /// Whether this flow runs in linked (offset-preserving) mode.
    pub fn linked(&self) -> bool {
        self.mode == MirrorMode::Linked
    }

    /// `mm2-offset-syncs.<target>.internal`, on the source cluster.
    pub fn offset_syncs_topic(&self) -> String {
        format!("mm2-offset-syncs.{}.internal", self.target)
    }

    /// `<source>.checkpoints.internal`, on the target cluster.
    pub fn checkpoints_topic(&self) -> String {
        format!("{}.checkpoints.internal", self.source)
    }
}

/// The whole file: clusters and the enabled flows between them.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub clusters: BTreeMap<String, ClusterConfig>,
    pub flows: Vec<FlowConfig>,
    /// Keys read but not used by this engine (logged as warnings at start).
    pub unknown_keys: Vec<String>,
}

/// Keys a flow reads, with or without a `source->target.` prefix.
const FLOW_KEYS: &[&str] = &[
    "enabled",
    "mirror.mode",
    "exactly.once.source.support",
    "transaction.timeout.ms",
    "topics",
    "topics.exclude",
    "topics.blacklist",
    "groups",
    "groups.exclude",
    "groups.blacklist",
    "replication.policy.class",
    "replication.policy.separator",
    "replication.factor",
    "refresh.topics.enabled",
    "refresh.topics.interval.seconds",
    "refresh.groups.interval.seconds",
    "sync.topic.configs.enabled",
    "emit.checkpoints.enabled",
    "emit.checkpoints.interval.seconds",
    "emit.heartbeats.enabled",
    "emit.heartbeats.interval.seconds",
    "sync.group.offsets.enabled",
    "sync.group.offsets.interval.seconds",
    "offset-syncs.topic.replication.factor",
    "checkpoints.topic.replication.factor",
    "heartbeats.topic.replication.factor",
    "offset.lag.max",
    "sync.topic.acls.enabled",
    "sync.topic.acls.interval.seconds",
];

/// Keys a cluster reads after its `<alias>.` prefix (and, as defaults, without it).
const CLUSTER_KEYS: &[&str] = &[
    "bootstrap.servers",
    "security.protocol",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.jaas.config",
];

impl MirrorConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses a properties text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, |name| std::env::var(name).ok())
    }

    /// [`MirrorConfig::parse`] with `env` standing for the process environment (tests).
    pub fn parse_with(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let props = resolve_providers(parse_properties(text), env)?;
        let aliases: Vec<String> = props
            .get("clusters")
            .ok_or_else(|| ConfigError::Missing {
                key: "clusters".into(),
            })?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if aliases.is_empty() {
            return Err(invalid("clusters", "", "no cluster alias"));
        }
        let mut clusters = BTreeMap::new();
        for alias in &aliases {
            if alias.contains("->") || alias.contains('.') {
                return Err(invalid("clusters", alias, "an alias has no '.' or '->'"));
            }
            clusters.insert(alias.clone(), cluster(&props, alias)?);
        }
        let mut flows = Vec::new();
        for source in &aliases {
            for target in &aliases {
                if source == target {
                    continue;
                }
                let key = format!("{source}->{target}.enabled");
                let enabled = match props.get(&key) {
                    Some(v) => parse_bool(&key, v)?,
                    None => false,
                };
                if enabled {
                    flows.push(flow(&props, source, target)?);
                }
            }
        }
        // Flows naming clusters that are not listed are errors: a typo would mirror nothing.
        for key in props.keys() {
            if let Some((flow, _)) = key.split_once('.')
                && let Some((s, t)) = flow.split_once("->")
                && (!clusters.contains_key(s) || !clusters.contains_key(t))
            {
                return Err(invalid(
                    key,
                    &props[key],
                    format!("flow {flow} names a cluster not in `clusters`"),
                ));
            }
        }
        if flows.is_empty() {
            return Err(ConfigError::Missing {
                key: "<source>-><target>.enabled = true".into(),
            });
        }
        let unknown_keys = unknown_keys(&props, &aliases);
        Ok(MirrorConfig {
            clusters,
            flows,
            unknown_keys,
        })
    }
}

/// Kafka's config providers (`config.providers=env,file`,
/// `config.providers.<name>.class=...`): `${env:VAR}` (EnvVarConfigProvider), `${file:PATH:KEY}`
/// (FileConfigProvider, a properties file) and `${dir:PATH:FILE}` (DirectoryConfigProvider)
/// references in values are replaced. A reference that cannot be resolved is an error naming
/// the key, so a missing secret is not sent as a literal password.
fn resolve_providers(
    mut props: BTreeMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(list) = props.get("config.providers").cloned() else {
        return Ok(props);
    };
    let mut providers = BTreeMap::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let key = format!("config.providers.{name}.class");
        let class = props
            .get(&key)
            .ok_or_else(|| ConfigError::Missing { key: key.clone() })?;
        let kind = match class.rsplit('.').next().unwrap_or_default() {
            "EnvVarConfigProvider" => "env",
            "FileConfigProvider" => "file",
            "DirectoryConfigProvider" => "dir",
            _ => {
                return Err(invalid(
                    &key,
                    class,
                    "only EnvVarConfigProvider, FileConfigProvider and DirectoryConfigProvider are supported",
                ));
            }
        };
        providers.insert(name.to_owned(), kind);
    }
    let reference = Regex::new(r"\$\{([^}:]+):([^}]*)\}").expect("static pattern");
    for (key, value) in props.iter_mut() {
        if key.starts_with("config.providers") || !value.contains("${") {
            continue;
        }
        let mut error = None;
        let resolved = reference.replace_all(value, |caps: &regex::Captures<'_>| {
            let (provider, path) = (&caps[1], &caps[2]);
            let found = match providers.get(provider) {
                Some(&"env") => env(path),
                Some(&"file") => path.rsplit_once(':').and_then(|(file, k)| {
                    let text = std::fs::read_to_string(file).ok()?;
                    parse_properties(&text).remove(k)
                }),
                Some(&"dir") => path.rsplit_once(':').and_then(|(dir, file)| {
                    std::fs::read_to_string(Path::new(dir).join(file)).ok()
                }),
                // Not a declared provider: left as written, as Kafka does.
                _ => return caps[0].to_owned(),
            };
            found.unwrap_or_else(|| {
                error = Some(format!("{} cannot be resolved", &caps[0]));
                String::new()
            })
        });
        if let Some(reason) = error {
            return Err(invalid(key, "<redacted>", reason));
        }
        *value = resolved.into_owned();
    }
    Ok(props)
}

fn unknown_keys(props: &BTreeMap<String, String>, aliases: &[String]) -> Vec<String> {
    let flows: BTreeSet<String> = aliases
        .iter()
        .flat_map(|s| aliases.iter().map(move |t| format!("{s}->{t}.")))
        .collect();
    props
        .keys()
        .filter(|key| {
            if key.as_str() == "clusters" || key.starts_with("config.providers") {
                return false;
            }
            let flow_rest = flows.iter().find_map(|p| key.strip_prefix(p.as_str()));
            let alias_rest = aliases
                .iter()
                .find_map(|a| key.strip_prefix(&format!("{a}.")));
            let known_flow = |k: &str| FLOW_KEYS.contains(&k);
            let known_cluster = |k: &str| CLUSTER_KEYS.contains(&k);
            let known = match (flow_rest, alias_rest) {
                (Some(rest), _) => known_flow(rest),
                (None, Some(rest)) => known_cluster(rest),
                (None, None) => known_flow(key) || known_cluster(key),
            };
            !known
        })
        .cloned()
        .collect()
}

fn cluster(props: &BTreeMap<String, String>, alias: &str) -> Result<ClusterConfig, ConfigError> {
    // `<alias>.key`, falling back to the global `key`.
    let get = |key: &str| -> Option<(String, String)> {
        let prefixed = format!("{alias}.{key}");
        props
            .get(&prefixed)
            .map(|v| (prefixed, v.clone()))
            .or_else(|| props.get(key).map(|v| (key.to_owned(), v.clone())))
    };
    let bootstrap_key = format!("{alias}.bootstrap.servers");
    let bootstrap_servers = props
        .get(&bootstrap_key)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing { key: bootstrap_key })?
        .clone();
    let security_protocol = match get("security.protocol") {
        Some((key, value)) => SecurityProtocol::parse(&key, &value)?,
        None => SecurityProtocol::Plaintext,
    };
    let truststore = get("ssl.truststore.location").map(|(_, v)| PathBuf::from(v));
    if let Some((key, value)) = get("ssl.truststore.type")
        && !value.eq_ignore_ascii_case("PEM")
    {
        return Err(invalid(&key, &value, "only PEM trust stores are supported"));
    }
    if security_protocol.tls() && truststore.is_none() {
        return Err(ConfigError::Missing {
            key: format!("{alias}.ssl.truststore.location"),
        });
    }
    let sasl = if security_protocol.sasl() {
        let mechanism = get("sasl.mechanism").map_or_else(|| "GSSAPI".to_owned(), |(_, v)| v);
        let mechanism = mechanism.to_ascii_uppercase();
        if !matches!(
            mechanism.as_str(),
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
        ) {
            return Err(invalid(
                &format!("{alias}.sasl.mechanism"),
                &mechanism,
                "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
            ));
        }
        let (key, jaas) = get("sasl.jaas.config").ok_or_else(|| ConfigError::Missing {
            key: format!("{alias}.sasl.jaas.config"),
        })?;
        let (username, password) = parse_jaas(&key, &jaas)?;
        Some(SaslSettings {
            mechanism,
            username,
            password,
        })
    } else {
        None
    };
    Ok(ClusterConfig {
        alias: alias.to_owned(),
        bootstrap_servers,
        security_protocol,
        truststore,
        sasl,
    })
}

/// `username` and `password` of a JAAS line such as
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";`.
pub fn parse_jaas(key: &str, jaas: &str) -> Result<(String, String), ConfigError> {
    let mut options = BTreeMap::new();
    let mut rest = jaas.trim();
    // Skip the login module class and the control flag.
    for _ in 0..2 {
        rest = rest
            .split_once(char::is_whitespace)
            .map_or("", |(_, r)| r)
            .trim_start();
    }
    while !rest.is_empty() && !rest.starts_with(';') {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| invalid(key, "<redacted>", "expected name=\"value\" options"))?;
        let after = after.trim_start();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| invalid(key, "<redacted>", "unterminated quoted value"))?;
            (value, &quoted[end..])
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        options.insert(name.trim().to_owned(), value);
        rest = after.trim_start();
    }
    match (options.remove("username"), options.remove("password")) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(invalid(
            key,
            "<redacted>",
            "the JAAS line needs username=\"...\" and password=\"...\"",
        )),
    }
}

fn flow(
    props: &BTreeMap<String, String>,
    source: &str,
    target: &str,
) -> Result<FlowConfig, ConfigError> {
    let prefix = format!("{source}->{target}.");
    // (key as written, value): the flow's own key first, then the global one.
    let get = |key: &str| -> Option<(String, String)> {
        let prefixed = format!("{prefix}{key}");
        props
            .get(&prefixed)
            .map(|v| (prefixed, v.clone()))
            .or_else(|| props.get(key).map(|v| (key.to_owned(), v.clone())))
    };
    let string = |key: &str, default: &str| get(key).unwrap_or((key.to_owned(), default.into()));
    let boolean = |key: &str, default: bool| -> Result<bool, ConfigError> {
        get(key).map_or(Ok(default), |(k, v)| parse_bool(&k, &v))
    };
    let seconds = |key: &str, default: u64| -> Result<Duration, ConfigError> {
        match get(key) {
            None => Ok(Duration::from_secs(default)),
            Some((k, v)) => {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid(&k, &v, "expected a whole number of seconds"))?;
                if n <= 0 {
                    return Err(invalid(&k, &v, "must be positive"));
                }
                Ok(Duration::from_secs(n.unsigned_abs()))
            }
        }
    };
    let factor = |key: &str, default: i16| -> Result<i16, ConfigError> {
        match get(key) {
            None => Ok(default),
            Some((k, v)) => {
                let n: i16 = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid(&k, &v, "expected a replication factor"))?;
                if n == 0 || n < -1 {
                    return Err(invalid(
                        &k,
                        &v,
                        "must be positive, or -1 for the broker default",
                    ));
                }
                Ok(n)
            }
        }
    };
    let (topics_key, topics) = string("topics", ".*");
    let (topics_ex_key, topics_ex) = get("topics.exclude")
        .or_else(|| get("topics.blacklist"))
        .unwrap_or(("topics.exclude".into(), DEFAULT_TOPICS_EXCLUDE.into()));
    let (groups_key, groups) = string("groups", ".*");
    let (groups_ex_key, groups_ex) = get("groups.exclude")
        .or_else(|| get("groups.blacklist"))
        .unwrap_or(("groups.exclude".into(), DEFAULT_GROUPS_EXCLUDE.into()));
    let (policy_key, policy_class) = string("replication.policy.class", DEFAULT_POLICY_CLASS);
    let kind = match policy_class.trim() {
        DEFAULT_POLICY_CLASS | "DefaultReplicationPolicy" => PolicyKind::Default,
        IDENTITY_POLICY_CLASS | "IdentityReplicationPolicy" => PolicyKind::Identity,
        other => {
            return Err(invalid(
                &policy_key,
                other,
                "only DefaultReplicationPolicy and IdentityReplicationPolicy are implemented",
            ));
        }
    };
    let (sep_key, separator) = string("replication.policy.separator", ".");
    if separator.is_empty() {
        return Err(invalid(&sep_key, &separator, "must not be empty"));
    }
    let mode = match get("mirror.mode") {
        None => MirrorMode::Mm2,
        Some((k, v)) => MirrorMode::parse(&k, &v)?,
    };
    let linked = mode == MirrorMode::Linked;
    let exactly_once = match get("exactly.once.source.support") {
        None => false,
        Some((k, v)) => parse_exactly_once(&k, &v)?,
    };
    if exactly_once && linked {
        tracing::info!(
            flow = %format!("{source}->{target}"),
            "exactly.once.source.support applies to mm2 flows only: a linked flow is exactly-once by construction"
        );
    }
    let transaction_timeout_ms = match get("transaction.timeout.ms") {
        None => 60_000,
        Some((k, v)) => v
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(&k, &v, "expected a positive number of milliseconds"))?,
    };
    let offset_lag_max = match get("offset.lag.max") {
        None => 100,
        Some((k, v)) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid(&k, &v, "expected a non-negative number"))?,
    };
    Ok(FlowConfig {
        source: source.to_owned(),
        target: target.to_owned(),
        mode,
        exactly_once: exactly_once && !linked,
        transaction_timeout_ms,
        topics: NameFilter::new(&topics_key, &topics, &topics_ex_key, &topics_ex)?,
        groups: NameFilter::new(&groups_key, &groups, &groups_ex_key, &groups_ex)?,
        policy: ReplicationPolicy::new(kind, &separator),
        replication_factor: factor("replication.factor", 2)?,
        refresh_topics_interval: seconds("refresh.topics.interval.seconds", 600)?,
        refresh_groups_interval: seconds("refresh.groups.interval.seconds", 600)?,
        sync_topic_configs: boolean("sync.topic.configs.enabled", true)?,
        emit_checkpoints_enabled: boolean("emit.checkpoints.enabled", true)?,
        emit_checkpoints_interval: seconds("emit.checkpoints.interval.seconds", 60)?,
        emit_heartbeats_enabled: boolean("emit.heartbeats.enabled", true)?,
        emit_heartbeats_interval: seconds("emit.heartbeats.interval.seconds", 1)?,
        // Linked flows copy group offsets 1:1 by default: that is what makes failover usable.
        sync_group_offsets_enabled: boolean("sync.group.offsets.enabled", linked)?,
        sync_group_offsets_interval: seconds("sync.group.offsets.interval.seconds", 60)?,
        offset_syncs_replication_factor: factor("offset-syncs.topic.replication.factor", 3)?,
        checkpoints_replication_factor: factor("checkpoints.topic.replication.factor", 3)?,
        heartbeats_replication_factor: factor("heartbeats.topic.replication.factor", 3)?,
        offset_lag_max,
        sync_topic_acls_enabled: boolean("sync.topic.acls.enabled", true)?,
        sync_topic_acls_interval: seconds("sync.topic.acls.interval.seconds", 600)?,
    })
}

/// Connect's `exactly.once.source.support`: `enabled` is true; `preparing` (a Connect cluster's
/// step before enabling) is false, logged; `disabled` is false.
fn parse_exactly_once(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        "preparing" => {
            tracing::info!(
                key,
                "exactly.once.source.support=preparing is treated as disabled (nothing to prepare: set enabled)"
            );
            Ok(false)
        }
        _ => Err(invalid(
            key,
            value,
            "expected disabled, preparing or enabled",
        )),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Java properties syntax: `key=value`, `key: value` or `key value`; `#`/`!` comments; a line
/// ending in an odd number of backslashes continues on the next (leading blanks dropped);
/// `\t`, `\n`, `\r`, `\f`, `\uXXXX` and `\<char>` escapes. Later keys win.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut continuing = false;
    for raw in text.lines() {
        let line = raw.trim_start_matches([' ', '\t', '\u{c}']);
        if !continuing && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        let trailing = line.len() - line.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continuing = true;
            continue;
        }
        logical.push_str(line);
        continuing = false;
        let (key, value) = split_entry(&logical);
        out.insert(key, value);
        logical.clear();
    }
    if continuing && !logical.is_empty() {
        let (key, value) = split_entry(&logical);
        out.insert(key, value);
    }
    out
}

fn split_entry(line: &str) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut key_end = chars.len();
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                key_end = i;
                break;
            }
            _ => i += 1,
        }
    }
    let key: String = chars[..key_end.min(chars.len())].iter().collect();
    let mut j = key_end;
    while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\u{c}') {
        j += 1;
    }
    if j < chars.len() && matches!(chars[j], '=' | ':') {
        j += 1;
    }
    while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\u{c}') {
        j += 1;
    }
    let value: String = chars[j.min(chars.len())..].iter().collect();
    (unescape(&key), unescape(value.trim_end()))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = r#"
# two clusters
clusters = A, B
A.bootstrap.servers = 127.0.0.1:9092
B.bootstrap.servers = 127.0.0.1:9093,\
    127.0.0.1:9094
A->B.enabled = true
B->A.enabled = false
topics = orders.*, payments
A->B.topics.exclude = .*\\.secret
replication.factor = 1
A->B.replication.factor = 3
refresh.topics.interval.seconds: 5
sync.group.offsets.enabled=true
some.unknown.key = 1
A.consumer.max.poll.records = 10
"#;

    #[test]
    fn properties_syntax() {
        let p = parse_properties(
            "a=1\n  b : 2\nc 3\n# d=4\n! e=5\nf = x\\\n   y\\\\\ng=\\u0041\\=\nh\\=k=v\n",
        );
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "2");
        assert_eq!(p["c"], "3");
        assert!(!p.contains_key("# d") && !p.contains_key("d"));
        assert_eq!(p["f"], "xy\\");
        assert_eq!(p["g"], "A=");
        assert_eq!(p["h=k"], "v");
    }

    #[test]
    fn flows_clusters_and_prefixed_keys() {
        let config = MirrorConfig::parse(BASIC).unwrap();
        assert_eq!(config.clusters.len(), 2);
        assert_eq!(
            config.clusters["B"].bootstrap_servers,
            "127.0.0.1:9093,127.0.0.1:9094"
        );
        assert_eq!(config.flows.len(), 1);
        let flow = &config.flows[0];
        assert_eq!(flow.name(), "A->B");
        assert_eq!(flow.replication_factor, 3, "prefixed key wins");
        assert_eq!(flow.refresh_topics_interval, Duration::from_secs(5));
        assert!(flow.sync_group_offsets_enabled);
        assert!(flow.sync_topic_configs);
        assert!(flow.topics.matches("orders"));
        assert!(flow.topics.matches("orders-eu"));
        assert!(flow.topics.matches("payments"));
        assert!(!flow.topics.matches("payments2"), "whole-name match");
        assert!(!flow.topics.matches("orders.secret"), "exclude honoured");
        assert_eq!(flow.offset_syncs_topic(), "mm2-offset-syncs.B.internal");
        assert_eq!(flow.checkpoints_topic(), "A.checkpoints.internal");
        assert_eq!(flow.progress_group(), "strait-mirror-A-B");
        assert_eq!(
            config.unknown_keys,
            vec!["A.consumer.max.poll.records", "some.unknown.key"]
        );
    }

    #[test]
    fn mm2_defaults() {
        let config = MirrorConfig::parse(
            "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\n",
        )
        .unwrap();
        let flow = &config.flows[0];
        assert!(flow.topics.matches("anything"));
        for excluded in [
            "x.internal",
            "x-internal",
            "t.replica",
            "__consumer_offsets",
        ] {
            assert!(!flow.topics.matches(excluded), "{excluded}");
        }
        assert!(flow.groups.matches("app"));
        assert!(!flow.groups.matches("console-consumer-1"));
        assert_eq!(flow.refresh_topics_interval, Duration::from_secs(600));
        assert_eq!(flow.emit_checkpoints_interval, Duration::from_secs(60));
        assert_eq!(flow.offset_lag_max, 100);
        assert!(!flow.sync_group_offsets_enabled);
        assert_eq!(flow.policy.format_remote_topic("a", "t"), "a.t");
        assert_eq!(
            config.clusters["a"].security_protocol,
            SecurityProtocol::Plaintext
        );
    }

    #[test]
    fn security_settings() {
        let text = r#"clusters=a,b
a.bootstrap.servers=x:1
b.bootstrap.servers=y:1
a->b.enabled=true
a.security.protocol=SASL_SSL
a.ssl.truststore.location=/etc/ca.pem
a.sasl.mechanism=SCRAM-SHA-512
a.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="mirror" password="p\\\"w d";
b.security.protocol=SSL
b.ssl.truststore.location=/etc/b.pem
"#;
        let config = MirrorConfig::parse(text).unwrap();
        let a = &config.clusters["a"];
        assert_eq!(a.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(a.truststore.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(
            a.sasl,
            Some(SaslSettings {
                mechanism: "SCRAM-SHA-512".into(),
                username: "mirror".into(),
                password: "p\"w d".into(),
            })
        );
        assert!(config.clusters["b"].sasl.is_none());
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
    }

    #[test]
    fn config_providers_resolve_secrets() {
        let dir = std::env::temp_dir().join(format!("strait-mirror-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secrets.properties"), "b.password=from-file\n").unwrap();
        std::fs::write(dir.join("user"), "from-dir").unwrap();
        let text = format!(
            r#"clusters=a,b
a.bootstrap.servers=x:1
b.bootstrap.servers=y:1
a->b.enabled=true
config.providers=env,file,dir
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
config.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider
a.security.protocol=SASL_PLAINTEXT
a.sasl.mechanism=SCRAM-SHA-512
a.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="mir\\\"ror" password="${{env:STRAIT_MIRROR_SOURCE_PASSWORD}}";
b.security.protocol=SASL_PLAINTEXT
b.sasl.mechanism=PLAIN
b.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${{dir:{d}:user}}" password="${{file:{d}/secrets.properties:b.password}}";
"#,
            d = dir.display()
        );
        let env =
            |name: &str| (name == "STRAIT_MIRROR_SOURCE_PASSWORD").then(|| "s3cret".to_owned());
        let config = MirrorConfig::parse_with(&text, env).unwrap();
        let a = config.clusters["a"].sasl.clone().unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("mir\"ror", "s3cret")
        );
        let b = config.clusters["b"].sasl.clone().unwrap();
        assert_eq!(
            (b.username.as_str(), b.password.as_str()),
            ("from-dir", "from-file")
        );
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
        let missing = MirrorConfig::parse_with(&text, |_| None).unwrap_err();
        assert!(
            matches!(&missing, ConfigError::Invalid { key, reason, .. } if key == "a.sasl.jaas.config" && reason.contains("STRAIT_MIRROR_SOURCE_PASSWORD")),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The shape the operator renders for a `Mirror` (operator/src/mirror/config.rs).
    #[test]
    fn operator_rendered_properties() {
        let text = "\
# Rendered by strait-operator from Mirror; do not edit.
clusters=east, west
config.providers=env
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
east.bootstrap.servers=east-bootstrap.ns.svc:9092
east.security.protocol=PLAINTEXT
west.bootstrap.servers=west-bootstrap.ns.svc:9094
west.security.protocol=SASL_SSL
west.ssl.truststore.type=PEM
west.ssl.truststore.location=/etc/strait-mirror-tls/target/ca.crt
west.sasl.mechanism=SCRAM-SHA-512
west.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"mir\\\\\"ror\" password=\"${env:STRAIT_MIRROR_TARGET_PASSWORD}\";
east->west.enabled=true
west->east.enabled=false
topics=orders\\\\..*, payments
groups=.*
groups.exclude=test-.*
replication.policy.class=org.apache.kafka.connect.mirror.DefaultReplicationPolicy
replication.policy.separator=.
replication.factor=3
sync.group.offsets.enabled=true
# spec.config
offset-syncs.topic.location=target
";
        let config = MirrorConfig::parse_with(text, |v| {
            (v == "STRAIT_MIRROR_TARGET_PASSWORD").then(|| "pw".to_owned())
        })
        .unwrap();
        assert_eq!(config.flows.len(), 1);
        let flow = &config.flows[0];
        assert_eq!(flow.name(), "east->west");
        assert!(flow.topics.matches("orders.eu") && !flow.topics.matches("ordersX"));
        assert!(flow.topics.matches("payments"));
        assert!(!flow.groups.matches("test-1") && flow.groups.matches("app"));
        assert_eq!(flow.replication_factor, 3);
        assert!(flow.sync_group_offsets_enabled);
        let west = &config.clusters["west"];
        assert_eq!(west.security_protocol, SecurityProtocol::SaslSsl);
        let sasl = west.sasl.clone().unwrap();
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("mir\"ror", "pw")
        );
        assert_eq!(config.unknown_keys, vec!["offset-syncs.topic.location"]);
    }

    #[test]
    fn jaas_unquoted_values() {
        let (u, p) = parse_jaas(
            "k",
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=pw;",
        )
        .unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("u", "pw"));
        assert!(parse_jaas("k", "X required username=\"u\";").is_err());
    }

    fn error_key(text: &str) -> String {
        match MirrorConfig::parse(text).unwrap_err() {
            ConfigError::Missing { key } | ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn invalid_configs_name_the_key() {
        let base =
            "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\n";
        assert_eq!(error_key("a.bootstrap.servers=x"), "clusters");
        assert_eq!(
            error_key("clusters=a,b\na.bootstrap.servers=x:1\na->b.enabled=true\n"),
            "b.bootstrap.servers"
        );
        assert_eq!(
            error_key(&format!("{base}a->b.topics=(unclosed\n")),
            "a->b.topics"
        );
        assert_eq!(
            error_key(&format!("{base}topics.exclude=[\n")),
            "topics.exclude"
        );
        assert_eq!(
            error_key(&format!(
                "{base}replication.policy.class=com.example.Mine\n"
            )),
            "replication.policy.class"
        );
        assert_eq!(
            error_key(&format!(
                "{base}a->b.refresh.topics.interval.seconds=soon\n"
            )),
            "a->b.refresh.topics.interval.seconds"
        );
        assert_eq!(
            error_key(&format!("{base}a.security.protocol=SSL\n")),
            "a.ssl.truststore.location"
        );
        assert_eq!(
            error_key(&format!("{base}b.security.protocol=BOGUS\n")),
            "b.security.protocol"
        );
        assert_eq!(
            error_key(&format!(
                "{base}a.security.protocol=SASL_PLAINTEXT\na.sasl.mechanism=PLAIN\n"
            )),
            "a.sasl.jaas.config"
        );
        assert_eq!(
            error_key(&format!("{base}a->c.enabled=true\n")),
            "a->c.enabled"
        );
        assert_eq!(
            error_key(&format!("{base}a->b.enabled=yes\n")),
            "a->b.enabled"
        );
        assert_eq!(
            error_key("clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\n"),
            "<source>-><target>.enabled = true"
        );
    }

    #[test]
    fn mirror_mode_global_per_flow_and_invalid() {
        let base = "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\nb->a.enabled=true\n";
        let config = MirrorConfig::parse(base).unwrap();
        assert!(config.flows.iter().all(|f| f.mode == MirrorMode::Mm2));
        assert!(
            config.flows.iter().all(|f| !f.sync_group_offsets_enabled),
            "mm2 flows keep MM2's default"
        );
        let config =
            MirrorConfig::parse(&format!("{base}mirror.mode=linked\nb->a.mirror.mode=MM2\n"))
                .unwrap();
        let ab = config.flows.iter().find(|f| f.source == "a").unwrap();
        let ba = config.flows.iter().find(|f| f.source == "b").unwrap();
        assert!(
            ab.linked() && ab.sync_group_offsets_enabled,
            "linked syncs groups by default"
        );
        assert_eq!(ba.mode, MirrorMode::Mm2, "the flow's own key wins");
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
        let off = MirrorConfig::parse(&format!(
            "{base}a->b.mirror.mode=linked\na->b.sync.group.offsets.enabled=false\n"
        ))
        .unwrap();
        assert!(
            !off.flows
                .iter()
                .find(|f| f.source == "a")
                .unwrap()
                .sync_group_offsets_enabled
        );
        assert_eq!(
            error_key(&format!("{base}a->b.mirror.mode=offsets\n")),
            "a->b.mirror.mode"
        );
        assert_eq!(error_key(&format!("{base}mirror.mode=\n")), "mirror.mode");
    }

    #[test]
    fn exactly_once_global_per_flow_and_invalid() {
        let base = "clusters=a,b\na.bootstrap.servers=x:1\nb.bootstrap.servers=y:1\na->b.enabled=true\nb->a.enabled=true\n";
        let flows = |text: &str| {
            let config = MirrorConfig::parse(text).unwrap();
            assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
            let ab = config
                .flows
                .iter()
                .find(|f| f.source == "a")
                .unwrap()
                .clone();
            let ba = config
                .flows
                .iter()
                .find(|f| f.source == "b")
                .unwrap()
                .clone();
            (ab, ba)
        };
        let (ab, ba) = flows(base);
        assert!(!ab.exactly_once && !ba.exactly_once, "disabled by default");
        assert_eq!(ab.transaction_timeout_ms, 60_000);
        let (ab, ba) = flows(&format!(
            "{base}exactly.once.source.support=Enabled\nb->a.exactly.once.source.support=disabled\ntransaction.timeout.ms=15000\n"
        ));
        assert!(ab.exactly_once, "the global key");
        assert!(!ba.exactly_once, "the flow's own key wins");
        assert_eq!(ab.transaction_timeout_ms, 15_000);
        let (ab, _) = flows(&format!(
            "{base}a->b.exactly.once.source.support=preparing\n"
        ));
        assert!(!ab.exactly_once, "preparing is disabled");
        let (ab, _) = flows(&format!(
            "{base}exactly.once.source.support=enabled\na->b.mirror.mode=linked\n"
        ));
        assert!(!ab.exactly_once, "linked flows do not use it");
        assert_eq!(
            error_key(&format!("{base}a->b.exactly.once.source.support=yes\n")),
            "a->b.exactly.once.source.support"
        );
        assert_eq!(
            error_key(&format!("{base}exactly.once.source.support=\n")),
            "exactly.once.source.support"
        );
        assert_eq!(
            error_key(&format!("{base}transaction.timeout.ms=0\n")),
            "transaction.timeout.ms"
        );
        assert_eq!(
            error_key(&format!("{base}b->a.transaction.timeout.ms=soon\n")),
            "b->a.transaction.timeout.ms"
        );
    }
}
