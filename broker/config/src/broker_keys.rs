//! The broker config keys Strait knows (Kafka's names, types, defaults and validators), the
//! Kafka keys it accepts but ignores, and Kafka's broker-level synonym chains.

use crate::schema::{ConfigDef, ConfigType, LONG_MAX, Validator};
use crate::topic::{CLEANUP_POLICIES, COMPRESSION_TYPES, TIMESTAMP_TYPES};

use ConfigType::{Boolean, Double, Int, List, Long, Password, String as Str};
use Validator::{Any, AtLeast, Between, DoubleBetween, GzipLevel, ListOf, OneOf};

const fn key(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        validator,
        doc,
    }
}

/// Strait's embedded listener default: loopback, so a laptop run exposes nothing.
pub(crate) const DEFAULT_LISTENERS: &str = "PLAINTEXT://127.0.0.1:9092";
pub(crate) const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
pub(crate) const DEFAULT_LOG_DIR: &str = "./strait-data";
pub(crate) const DEFAULT_METRICS_LISTENER: &str = "127.0.0.1:9404";
pub(crate) const PROCESS_ROLES: &[&str] = &["broker", "controller"];
pub(crate) const SSL_ENDPOINT_IDENTIFICATION: &[&str] = &["https", ""];
pub(crate) const SSL_CLIENT_AUTH: &[&str] = &["required", "requested", "none"];
/// rustls speaks TLS 1.2 and 1.3 only; older versions are refused by the validator.
/// Kafka's rack-aware selector (KIP-392), the one `replica.selector.class` Strait implements.
pub const RACK_AWARE_REPLICA_SELECTOR: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";
pub(crate) const SSL_PROTOCOLS: &[&str] = &["TLSv1.2", "TLSv1.3"];

/// Every broker key Strait knows, sorted by name (the order DescribeConfigs returns them in).
#[rustfmt::skip]
pub(crate) static BROKER_DEFS: &[ConfigDef] = &[
    key("advertised.listeners", Str, None, Any,
        "Listeners published to clients, if different from listeners."),

    key("allow.everyone.if.no.acl.found", Boolean, Some("false"), Any,
        "With an authorizer, whether a resource without any ACL is open to everyone."),
    key("authorizer.class.name", Str, Some(""), Any,
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer turns on ACLs kept in the metadata log; empty: no authorization."),
    key("auto.create.topics.enable", Boolean, Some("true"), Any,
        "Create a topic automatically when a client asks for metadata of an unknown topic."),
    key("auto.leader.rebalance.enable", Boolean, Some("true"), Any,
        "Let the controller move leadership back to the preferred replica when leaders are imbalanced."),
    key("broker.heartbeat.interval.ms", Int, Some("2000"), AtLeast(1),
        "How often a broker sends heartbeats to the active controller (KRaft mode)."),
    key("broker.id", Int, None, AtLeast(0),
        "Legacy name of node.id; must equal node.id when both are set."),
    key("broker.rack", Str, None, Any,
        "Rack (zone) of this broker, used for rack-aware replica placement."),
    key("broker.session.timeout.ms", Int, Some("9000"), AtLeast(1),
        "A broker that sends no heartbeat for this long is fenced by the controller (KRaft mode)."),
    key("cluster.id", Str, None, Any,
        "Expected cluster id; the data directories must belong to this cluster."),
    key("compression.gzip.level", Int, Some("-1"), GzipLevel,
        "Default gzip level for topics."),
    key("compression.lz4.level", Int, Some("9"), Between(1, 17),
        "Default lz4 level for topics."),
    key("compression.type", Str, Some("producer"), OneOf(COMPRESSION_TYPES),
        "Default final compression of topics."),
    key("compression.zstd.level", Int, Some("3"), Between(-131_072, 22),
        "Default zstd level for topics."),
    key("connection.failed.authentication.delay.ms", Int, Some("100"), AtLeast(0),
        "How long a failed SASL authentication waits before its answer and the connection close."),
    key("connections.max.reauth.ms", Long, Some("0"), AtLeast(0),
        "Longest SASL session before the client must re-authenticate (KIP-368); 0 means never."),
    key("controlled.shutdown.enable", Boolean, Some("true"), Any,
        "On shutdown, ask the controller to move this broker's leaderships away first."),
    key("controller.listener.names", Str, None, Any,
        "Comma-separated names of the listeners used by the controller."),
    key("controller.quorum.bootstrap.servers", List, Some(""), Any,
        "host:port entries of controllers used to discover the metadata quorum."),
    key("controller.quorum.election.timeout.ms", Int, Some("1000"), AtLeast(1),
        "Longest time without a quorum leader before a voter starts an election."),
    key("controller.quorum.fetch.timeout.ms", Int, Some("2000"), AtLeast(1),
        "Longest time without a successful fetch from the quorum leader before a voter starts an election."),
    key("controller.quorum.voters", List, Some(""), Any,
        "Metadata quorum voters as id@host:port entries, e.g. 1@ctl1:9093,2@ctl2:9093."),
    key("default.replication.factor", Int, Some("1"), Between(1, 32_767),
        "Replication factor of automatically created topics and of CreateTopics without one."),
    key("delete.topic.enable", Boolean, Some("true"), Any,
        "Whether topics may be deleted."),
    key("group.consumer.heartbeat.interval.ms", Int, Some("5000"), AtLeast(1),
        "How often members of consumer-protocol (KIP-848) groups heartbeat."),
    key("group.consumer.session.timeout.ms", Int, Some("45000"), AtLeast(1),
        "Session timeout of members of consumer-protocol (KIP-848) groups."),
    key("group.initial.rebalance.delay.ms", Int, Some("3000"), AtLeast(0),
        "How long the coordinator waits for more members before the first rebalance of an empty group."),
    key("group.max.session.timeout.ms", Int, Some("1800000"), AtLeast(1),
        "Largest session timeout a group member may ask for."),
    key("group.max.size", Int, Some("2147483647"), AtLeast(1),
        "Largest number of members a classic group may have."),
    key("group.min.session.timeout.ms", Int, Some("6000"), AtLeast(1),
        "Smallest session timeout a group member may ask for."),
    key("inter.broker.listener.name", Str, None, Any,
        "Listener used between brokers; must be one of advertised.listeners."),
    key("leader.imbalance.check.interval.seconds", Long, Some("300"), AtLeast(1),
        "How often the controller checks for leader imbalance (auto.leader.rebalance.enable)."),
    key("listener.security.protocol.map", Str, Some(DEFAULT_PROTOCOL_MAP), Any,
        "Security protocol of each listener name, as NAME:PROTOCOL pairs."),
    key("listeners", Str, Some(DEFAULT_LISTENERS), Any,
        "Addresses the broker listens on, as NAME://host:port entries."),
    key("log.cleaner.backoff.ms", Long, Some("15000"), AtLeast(0),
        "Pause between log cleaner passes over the compacted topics."),
    key("log.cleaner.delete.retention.ms", Long, Some("86400000"), AtLeast(0),
        "Default delete.retention.ms for topics."),
    key("log.cleaner.max.compaction.lag.ms", Long, Some(LONG_MAX), AtLeast(1),
        "Default max.compaction.lag.ms for topics."),
    key("log.cleaner.min.cleanable.ratio", Double, Some("0.5"), DoubleBetween(0.0, 1.0),
        "Default min.cleanable.dirty.ratio for topics."),
    key("log.cleaner.min.compaction.lag.ms", Long, Some("0"), AtLeast(0),
        "Default min.compaction.lag.ms for topics."),
    key("log.cleanup.policy", List, Some("delete"), ListOf(CLEANUP_POLICIES),
        "Default cleanup.policy for topics."),
    key("log.dir", Str, Some(DEFAULT_LOG_DIR), Any,
        "Data directory, used when log.dirs is not set."),
    key("log.dirs", Str, None, Any,
        "Comma-separated data directories."),
    key("log.flush.interval.messages", Long, Some(LONG_MAX), AtLeast(1),
        "Default flush.messages for topics."),
    key("log.flush.interval.ms", Long, None, AtLeast(0),
        "Default flush.ms for topics; log.flush.scheduler.interval.ms when not set."),
    key("log.flush.scheduler.interval.ms", Long, Some(LONG_MAX), AtLeast(0),
        "How often the flusher checks whether a log needs flushing."),
    key("log.index.interval.bytes", Int, Some("4096"), AtLeast(0),
        "Default index.interval.bytes for topics."),
    key("log.index.size.max.bytes", Int, Some("10485760"), AtLeast(4),
        "Default segment.index.bytes for topics."),
    key("log.local.retention.bytes", Long, Some("-2"), AtLeast(-2),
        "Default local.retention.bytes for topics."),
    key("log.local.retention.ms", Long, Some("-2"), AtLeast(-2),
        "Default local.retention.ms for topics."),
    key("log.message.downconversion.enable", Boolean, Some("true"), Any,
        "Default message.downconversion.enable for topics (deprecated, no effect)."),
    key("log.message.format.version", Str, Some("3.0-IV1"), Any,
        "Default message.format.version for topics (deprecated, no effect: batches are always v2)."),
    key("log.message.timestamp.after.max.ms", Long, Some(LONG_MAX), AtLeast(0),
        "Default message.timestamp.after.max.ms for topics."),
    key("log.message.timestamp.before.max.ms", Long, Some(LONG_MAX), AtLeast(0),
        "Default message.timestamp.before.max.ms for topics."),
    key("log.message.timestamp.difference.max.ms", Long, Some(LONG_MAX), AtLeast(0),
        "Default message.timestamp.difference.max.ms for topics (deprecated)."),
    key("log.message.timestamp.type", Str, Some("CreateTime"), OneOf(TIMESTAMP_TYPES),
        "Default message.timestamp.type for topics."),
    key("log.preallocate", Boolean, Some("false"), Any,
        "Default preallocate for topics."),
    key("log.retention.bytes", Long, Some("-1"), Any,
        "Default retention.bytes for topics."),
    key("log.retention.check.interval.ms", Long, Some("300000"), AtLeast(1),
        "How often logs are checked for segments to delete."),
    key("log.retention.hours", Int, Some("168"), Any,
        "Default retention time in hours; log.retention.minutes and log.retention.ms win."),
    key("log.retention.minutes", Int, None, Any,
        "Default retention time in minutes; log.retention.ms wins."),
    key("log.retention.ms", Long, None, Any,
        "Default retention.ms for topics; -1 means unlimited."),
    key("log.roll.hours", Int, Some("168"), AtLeast(1),
        "Default segment roll time in hours; log.roll.ms wins."),
    key("log.roll.jitter.hours", Int, Some("0"), AtLeast(0),
        "Default segment roll jitter in hours; log.roll.jitter.ms wins."),
    key("log.roll.jitter.ms", Long, None, AtLeast(0),
        "Default segment.jitter.ms for topics."),
    key("log.roll.ms", Long, None, AtLeast(1),
        "Default segment.ms for topics."),
    key("log.segment.bytes", Int, Some("1073741824"), AtLeast(14),
        "Default segment.bytes for topics."),
    key("log.segment.delete.delay.ms", Long, Some("60000"), AtLeast(0),
        "Default file.delete.delay.ms for topics."),
    key("max.incremental.fetch.session.cache.slots", Int, Some("1000"), AtLeast(0),
        "Incremental fetch sessions (KIP-227) the broker keeps; 0 turns them off."),
    key("message.max.bytes", Int, Some("1048588"), AtLeast(0),
        "Default max.message.bytes for topics."),
    key("metadata.log.dir", Str, None, Any,
        "Directory of the cluster metadata log; the first of log.dirs when not set."),
    key("metadata.log.max.record.bytes.between.snapshots", Long, Some("20971520"), AtLeast(1),
        "Bytes of metadata log records after which a new metadata snapshot is taken."),
    key("metadata.max.idle.interval.ms", Int, Some("500"), AtLeast(0),
        "How often the active controller appends a no-op record when idle; 0 disables it."),
    key("metrics.listener", Str, Some(DEFAULT_METRICS_LISTENER), Any,
        "host:port of the Prometheus metrics endpoint; empty disables it (Strait-specific)."),
    key("min.insync.replicas", Int, Some("1"), AtLeast(1),
        "Default min.insync.replicas for topics."),
    key("node.id", Int, Some("1"), AtLeast(0),
        "Id of this node in the cluster."),
    key("num.partitions", Int, Some("1"), AtLeast(1),
        "Partition count of automatically created topics and of CreateTopics without one."),
    key("num.replica.fetchers", Int, Some("1"), AtLeast(1),
        "Replica fetchers (each with its own connection) per broker followed; partitions are spread over them by hash."),
    key("offset.metadata.max.bytes", Int, Some("4096"), AtLeast(0),
        "Largest metadata string a committed offset may carry."),
    key("offsets.retention.check.interval.ms", Long, Some("600000"), AtLeast(1),
        "How often committed offsets are checked for expiry."),
    key("offsets.retention.minutes", Int, Some("10080"), AtLeast(1),
        "Committed offsets of a group that has been empty this long are deleted."),
    key("offsets.topic.num.partitions", Int, Some("50"), AtLeast(1),
        "Partition count of the __consumer_offsets topic."),
    key("offsets.topic.replication.factor", Int, Some("3"), AtLeast(1),
        "Replication factor of __consumer_offsets in a cluster; groups are unavailable until \
         this many brokers have registered (a single node keeps it local)."),
    key("offsets.topic.segment.bytes", Int, Some("104857600"), AtLeast(1),
        "Segment size of the __consumer_offsets topic."),
    key("process.roles", List, Some(""), ListOf(PROCESS_ROLES),
        "Roles of this node: broker, controller, or both."),
    key("producer.id.expiration.check.interval.ms", Int, Some("600000"), AtLeast(1),
        "How often idle producer ids are expired."),
    key("producer.id.expiration.ms", Int, Some("86400000"), AtLeast(1),
        "Producer ids idle this long are forgotten by partition leaders."),
    key("quota.window.num", Int, Some("11"), AtLeast(1),
        "Samples a client quota's rate is measured over."),
    key("quota.window.size.seconds", Int, Some("1"), AtLeast(1),
        "Length of one client quota sample."),
    key("remote.log.manager.copy.max.bytes.per.second", Long, Some(LONG_MAX), AtLeast(1),
        "Upload rate cap of tiered storage in bytes per second; Long.MAX_VALUE is unlimited."),
    key("remote.log.manager.fetch.max.bytes.per.second", Long, Some(LONG_MAX), AtLeast(1),
        "Remote read rate cap of tiered storage in bytes per second; Long.MAX_VALUE is unlimited."),
    key("remote.log.manager.task.interval.ms", Long, Some("30000"), AtLeast(1),
        "How often the remote log manager looks for segments to upload and remote data to expire."),
    key("remote.log.manager.thread.pool.size", Int, Some("10"), AtLeast(1),
        "Segment uploads (and remote expirations) run at the same time."),
    key("remote.log.metadata.manager.class.name", Str, None, Any,
        "Accepted for Kafka configs; Strait keeps remote segment metadata in its own metadata log, so it is ignored."),
    key("remote.log.reader.threads", Int, Some("10"), AtLeast(1),
        "Remote reads (fetches below the local log start) served at the same time."),
    key("remote.log.storage.manager.class.name", Str, None, Any,
        "Accepted for Kafka configs; Strait's remote storage manager is built in (rsm.config.* configures it), so it is ignored."),
    key("remote.log.storage.system.enable", Boolean, Some("false"), Any,
        "Whether tiered storage (KIP-405) is available to topics (remote.storage.enable)."),
    key("replica.fetch.backoff.ms", Int, Some("1000"), AtLeast(0),
        "How long a follower waits after a fetch error before fetching again."),
    key("replica.fetch.max.bytes", Int, Some("1048576"), AtLeast(0),
        "Bytes a follower asks for per partition in one fetch (the first batch is returned whole)."),
    key("replica.fetch.min.bytes", Int, Some("1"), AtLeast(0),
        "Bytes a follower's fetch waits for before the leader answers, up to replica.fetch.wait.max.ms."),
    key("replica.fetch.response.max.bytes", Int, Some("10485760"), AtLeast(0),
        "Bytes a follower asks for in one whole fetch response."),
    key("replica.fetch.wait.max.ms", Int, Some("500"), AtLeast(0),
        "Longest wait of a follower's fetch for replica.fetch.min.bytes; below replica.lag.time.max.ms."),
    key("replica.lag.time.max.ms", Long, Some("30000"), AtLeast(1),
        "A follower that has not caught up with the leader for this long leaves the ISR."),
    key("replica.selector.class", Str, None, OneOf(&["", RACK_AWARE_REPLICA_SELECTOR]),
        "Lets consumers with client.rack fetch from a replica in their rack (KIP-392): org.apache.kafka.common.replica.RackAwareReplicaSelector, or unset for leader-only reads."),
    key("sasl.enabled.mechanisms", List, Some("GSSAPI"), Any,
        "SASL mechanisms SASL listeners offer: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, OAUTHBEARER (Kafka's default GSSAPI is not supported)."),
    key("sasl.mechanism.inter.broker.protocol", Str, Some("GSSAPI"), Any,
        "SASL mechanism brokers log in with on a SASL inter-broker listener."),
    key("sasl.oauthbearer.clock.skew.seconds", Int, Some("30"), AtLeast(0),
        "Clock difference allowed when checking an OAUTHBEARER token's exp, nbf and iat."),
    key("sasl.oauthbearer.expected.audience", List, None, Any,
        "If set, an OAUTHBEARER token's aud must contain one of these."),
    key("sasl.oauthbearer.expected.issuer", Str, None, Any,
        "If set, an OAUTHBEARER token's iss must equal it."),
    key("sasl.oauthbearer.jwks.endpoint.refresh.ms", Long, Some("3600000"), AtLeast(1),
        "How often the JSON Web Key Set file is read again."),
    key("sasl.oauthbearer.jwks.endpoint.url", Str, None, Any,
        "JSON Web Key Set OAUTHBEARER tokens are verified against: a file:///path URL or a path (HTTP(S) is not fetched)."),
    key("sasl.oauthbearer.scope.claim.name", Str, Some("scope"), Any,
        "Claim holding an OAUTHBEARER token's scopes."),
    key("sasl.oauthbearer.sub.claim.name", Str, Some("sub"), Any,
        "Claim holding an OAUTHBEARER token's subject, the principal name (User:<sub>)."),
    key("socket.request.max.bytes", Int, Some("104857600"), AtLeast(1),
        "Largest request the broker accepts."),
    key("ssl.client.auth", Str, Some("none"), OneOf(SSL_CLIENT_AUTH),
        "Whether SSL listeners ask clients for a certificate: required, requested or none."),
    key("ssl.enabled.protocols", List, Some("TLSv1.2,TLSv1.3"), ListOf(SSL_PROTOCOLS),
        "TLS versions SSL listeners accept."),
    key("ssl.endpoint.identification.algorithm", Str, Some("https"), OneOf(SSL_ENDPOINT_IDENTIFICATION),
        "https checks a peer broker's host name against its certificate; empty checks only the chain."),
    key("ssl.key.password", Password, None, Any,
        "Password of an encrypted private key; not supported (use an unencrypted PEM key)."),
    key("ssl.keystore.certificate.chain", Password, None, Any,
        "Certificate chain in PEM, leaf first, when ssl.keystore.type is PEM and no location is set."),
    key("ssl.keystore.key", Password, None, Any,
        "Unencrypted private key in PEM, when ssl.keystore.type is PEM and no location is set."),
    key("ssl.keystore.location", Str, None, Any,
        "Keystore file: with type PEM, the private key and the certificate chain (leaf first)."),
    key("ssl.keystore.password", Password, None, Any,
        "Keystore password (JKS and PKCS12 keystores, which Strait does not read)."),
    key("ssl.keystore.type", Str, Some("JKS"), Any,
        "Keystore format; Strait reads PEM."),
    key("ssl.principal.mapping.rules", Str, Some("DEFAULT"), Any,
        "How a client certificate's subject becomes the principal name: RULE:<regex>/<replacement>/[LU] entries, then DEFAULT (the whole subject)."),
    key("ssl.truststore.certificates", Password, None, Any,
        "Trusted CA certificates in PEM for client authentication, when no location is set."),
    key("ssl.truststore.location", Str, None, Any,
        "Truststore file: with type PEM, the CA certificates client certificates must chain to."),
    key("ssl.truststore.password", Password, None, Any,
        "Truststore password (JKS and PKCS12 truststores, which Strait does not read)."),
    key("ssl.truststore.type", Str, Some("JKS"), Any,
        "Truststore format; Strait reads PEM."),
    key("super.users", Str, Some(""), Any,
        "Principals allowed everything, separated by semicolons, e.g. User:admin;User:broker."),
    key("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, Some("10000"), AtLeast(1),
        "How often the transaction coordinator aborts transactions open longer than their transaction.timeout.ms."),
    key("transaction.max.timeout.ms", Int, Some("900000"), AtLeast(1),
        "Largest transaction.timeout.ms a transactional producer may ask for."),
    key("transaction.partition.verification.enable", Boolean, Some("true"), Any,
        "KIP-890: a partition leader checks with the transaction coordinator that a transactional batch's partition is in the producer's ongoing transaction before appending it."),
    key("transaction.remove.expired.transaction.cleanup.interval.ms", Int, Some("3600000"), AtLeast(1),
        "How often transactional ids idle past transactional.id.expiration.ms are removed."),
    key("transaction.state.log.min.isr", Int, Some("2"), AtLeast(1),
        "min.insync.replicas of the __transaction_state topic (capped by its replication factor)."),
    key("transaction.state.log.num.partitions", Int, Some("50"), AtLeast(1),
        "Partition count of the __transaction_state topic."),
    key("transaction.state.log.replication.factor", Int, Some("3"), AtLeast(1),
        "Replication factor of the __transaction_state topic, capped by the brokers registered when it is created."),
    key("transaction.state.log.segment.bytes", Int, Some("104857600"), AtLeast(1),
        "Segment size of the __transaction_state topic."),
    key("transactional.id.expiration.ms", Int, Some("604800000"), AtLeast(1),
        "A transactional id without transaction activity for this long is removed by its coordinator."),
    key("unclean.leader.election.enable", Boolean, Some("false"), Any,
        "Default unclean.leader.election.enable for topics."),
];

/// Kafka keys that Strait accepts silently because they tune Kafka internals with no Strait
/// counterpart; they appear in stock `server.properties` files.
pub(crate) const IGNORED_KEYS: &[&str] = &[
    "background.threads",
    "log.cleaner.enable",
    "log.cleaner.threads",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "queued.max.requests",
    // Retries of an HTTP(S) JWKS fetch; Strait reads the set from a file.
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
];

/// Keys Kafka 3.x still accepts but deprecated; Strait accepts them with a warning and, like Kafka
/// 3.x for these, they change nothing. Broker and topic names alike.
pub(crate) const DEPRECATED_KEYS: &[(&str, &str)] = &[
    (
        "log.message.downconversion.enable",
        "down-conversion was removed in Kafka 4.0",
    ),
    (
        "log.message.format.version",
        "every batch is written as magic v2",
    ),
    (
        "log.message.timestamp.difference.max.ms",
        "use log.message.timestamp.before.max.ms and log.message.timestamp.after.max.ms",
    ),
    (
        "message.downconversion.enable",
        "down-conversion was removed in Kafka 4.0",
    ),
    (
        "message.format.version",
        "every batch is written as magic v2",
    ),
    (
        "message.timestamp.difference.max.ms",
        "use message.timestamp.before.max.ms and message.timestamp.after.max.ms",
    ),
];

/// Why a deprecated key (broker or topic) is, if it is one.
pub fn deprecation(name: &str) -> Option<&'static str> {
    DEPRECATED_KEYS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, why)| *why)
}

/// Prefixes of ignored Kafka keys (ZooKeeper mode is gone).
pub(crate) const IGNORED_PREFIXES: &[&str] = &["zookeeper."];

pub(crate) fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_DEFS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &BROKER_DEFS[i])
}

pub(crate) fn is_ignored(name: &str) -> bool {
    IGNORED_KEYS.contains(&name) || IGNORED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`: keys that set the same thing, in
/// precedence order.
pub(crate) fn broker_synonym_chain(name: &str) -> Vec<&'static str> {
    const CHAINS: &[&[&str]] = &[
        &["log.roll.ms", "log.roll.hours"],
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ];
    // Kafka lists the whole chain for the roll and retention keys, but only starts the flush
    // chain at log.flush.interval.ms (the scheduler interval is just its default).
    for chain in CHAINS {
        if chain[0] == "log.flush.interval.ms" {
            if name == chain[0] {
                return chain.to_vec();
            }
        } else if chain.contains(&name) {
            return chain.to_vec();
        }
    }
    match broker_def(name) {
        Some(def) => vec![def.name],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_defaults_valid() {
        for pair in BROKER_DEFS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} out of order", pair[1].name);
        }
        for def in BROKER_DEFS {
            if let Some(default) = def.default {
                assert!(
                    def.check(default).is_ok(),
                    "default of {} invalid",
                    def.name
                );
            }
        }
        for pair in crate::topic::TOPIC_DEFS.windows(2) {
            assert!(
                pair[0].def.name < pair[1].def.name,
                "{} out of order",
                pair[1].def.name
            );
        }
        for t in crate::topic::TOPIC_DEFS {
            let default = t.def.default.unwrap_or_default();
            assert!(
                t.def.check(default).is_ok(),
                "default of {} invalid",
                t.def.name
            );
            for syn in t.synonyms {
                assert!(
                    broker_def(syn.name).is_some(),
                    "synonym {} unknown",
                    syn.name
                );
            }
        }
    }
}
