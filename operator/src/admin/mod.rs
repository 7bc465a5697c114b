//! A small async Kafka admin client: the operations the operator needs from any
//! Kafka-compatible cluster, behind the [`KafkaAdmin`] trait so that controllers can be tested
//! without a broker. The wire (framing, connections, TLS, ApiVersions) is `strait_client`'s;
//! this module builds the requests and reads the answers, every call through one path
//! ([`WireAdmin`]'s `request`: connect, send, check every error code of the answer). It speaks
//! plaintext, or TLS ([`tls_config`]: trusting only the given CA, host names checked, with a
//! client certificate) as a Strait Cluster's replication listener requires.
//!
//! - `topics.rs`: topics, their configs and partitions, reassignments;
//! - `security.rs`: SCRAM credentials, ACLs, client quotas;
//! - `quorum.rs`: the active controller (DescribeQuorum) and the APIs a cluster serves;
//! - `offsets.rs`: partitions' end offsets (ListOffsets at their leaders), for mirror lag.

mod offsets;
mod quorum;
mod security;
mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use strait_client::{
    Client, ClientError, ClientTls, ConnectOptions, Connection, ResponseErrors, Step, frame,
};

pub use quorum::{METADATA_TOPIC, Quorum, Replica, describe_quorum_version, quorum_leader};
pub use security::{ACL_APIS, QUOTA_APIS, SCRAM_APIS};
pub use strait_client::SupportedApis;

/// Deadline of the connect (and of the TLS handshake), and of each request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka's `UNKNOWN_TOPIC_OR_PARTITION`.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's `TOPIC_ALREADY_EXISTS`.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's `RESOURCE_NOT_FOUND` (for example no SCRAM credential to delete).
pub const RESOURCE_NOT_FOUND: i16 = 91;
/// Kafka's `UNSUPPORTED_VERSION`.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// Kafka's `SECURITY_DISABLED`: Kafka's answer to the ACL APIs when no authorizer is configured.
pub const SECURITY_DISABLED: i16 = 54;

/// Errors of admin calls.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No broker could be reached.
    #[error("cannot reach {address}: {reason}")]
    Connect {
        /// Address tried.
        address: String,
        /// Cause.
        reason: String,
    },
    /// TLS settings that cannot be used (bad PEM, a key that does not fit).
    #[error("TLS settings: {0}")]
    Tls(String),
    /// Socket I/O failed or timed out.
    #[error("i/o with the cluster: {0}")]
    Io(String),
    /// Bytes that do not decode, or an encoding failure.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The SASL login failed on the client's side (the broker's refusals are `Kafka`).
    #[error("{0}")]
    Authentication(String),
    /// The broker answered with an error code.
    #[error("{operation} on {resource}: Kafka error {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// Operation: the API's name (`CreateTopics`).
        operation: String,
        /// Topic, user or other resource name.
        resource: String,
        /// Kafka error code.
        code: i16,
        /// Broker's message.
        message: Option<String>,
    },
}

impl AdminError {
    /// A client error as the operator reports it: an unreachable broker is `Connect`, a
    /// Kafka error code is `Kafka`, about `resource` when the response names none.
    fn from_client(e: ClientError, resource: &str) -> Self {
        match e {
            ClientError::Kafka(k) => AdminError::Kafka {
                operation: format!("{:?}", k.api),
                resource: k.resource.unwrap_or_else(|| resource.to_owned()),
                code: k.code,
                message: k.message,
            },
            ClientError::Connect { addr, source } => AdminError::Connect {
                address: addr,
                reason: source.to_string(),
            },
            ClientError::Tls { addr, source } => AdminError::Connect {
                address: addr,
                reason: format!("TLS handshake: {source}"),
            },
            ClientError::Timeout {
                addr,
                step: step @ (Step::Connect | Step::Handshake),
                ..
            } => AdminError::Connect {
                address: addr,
                reason: format!("{step} timed out"),
            },
            ClientError::NoBootstrap => AdminError::Connect {
                address: "(no bootstrap servers)".to_owned(),
                reason: "empty list".to_owned(),
            },
            ClientError::TlsConfig(e) => AdminError::Tls(e.to_string()),
            e @ ClientError::Authentication { .. } => AdminError::Authentication(e.to_string()),
            e @ (ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::Broken { .. }) => AdminError::Io(e.to_string()),
            e @ (ClientError::Frame { .. }
            | ClientError::UnsupportedVersion { .. }
            | ClientError::UnknownNode { .. }) => AdminError::Protocol(e.to_string()),
        }
    }
}

impl From<ClientError> for AdminError {
    fn from(e: ClientError) -> Self {
        AdminError::from_client(e, "cluster")
    }
}

/// A topic as the cluster describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic id (UUID text).
    pub topic_id: String,
    /// Replica lists, by partition index.
    pub partitions: BTreeMap<i32, Vec<i32>>,
    /// Topic configs set explicitly on the topic (not defaults).
    pub config: BTreeMap<String, String>,
}

impl TopicDescription {
    /// The replication factor (replicas of partition 0).
    pub fn replication_factor(&self) -> i32 {
        self.partitions
            .values()
            .next()
            .map_or(0, |r| i32::try_from(r.len()).unwrap_or(i32::MAX))
    }
}

/// A partition reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Every replica while the move runs: the target plus the replicas being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added (catching up).
    pub adding: Vec<i32>,
    /// Replicas being removed once the added ones are in sync.
    pub removing: Vec<i32>,
}

impl OngoingReassignment {
    /// The replica list the partition will have when the move completes.
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .filter(|b| !self.removing.contains(b))
            .copied()
            .collect()
    }
}

/// One ACL binding in Kafka's numeric codes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    /// Resource type (2 topic, 3 group, 4 cluster, 5 transactional id).
    pub resource_type: i8,
    /// Resource name (`kafka-cluster` for the cluster).
    pub resource_name: String,
    /// Pattern type (3 literal, 4 prefixed).
    pub pattern_type: i8,
    /// `User:<name>`.
    pub principal: String,
    /// Host.
    pub host: String,
    /// Operation code.
    pub operation: i8,
    /// 2 deny, 3 allow.
    pub permission: i8,
}

/// A SCRAM-SHA-512 credential, already salted and hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    /// User name.
    pub user: String,
    /// PBKDF2 iterations.
    pub iterations: i32,
    /// Salt.
    pub salt: Vec<u8>,
    /// PBKDF2-HMAC-SHA512 of the password.
    pub salted_password: Vec<u8>,
}

/// The admin operations the controllers use.
pub trait KafkaAdmin: Send + Sync {
    /// Describes a topic; `None` when it does not exist.
    fn describe_topic(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<TopicDescription>, AdminError>> + Send;
    /// Creates a topic.
    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        config: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// The cluster id the brokers report (`None` when they report none).
    fn cluster_id(&self) -> impl Future<Output = Result<Option<String>, AdminError>> + Send;
    /// Replica lists of every partition of every topic.
    fn all_partitions(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<(String, i32), Vec<i32>>, AdminError>> + Send;
    /// Grows a topic to `count` partitions.
    fn create_partitions(
        &self,
        name: &str,
        count: i32,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Sets (`Some`) or deletes (`None`) topic configs.
    fn alter_topic_config(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Deletes a topic (absent is fine).
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Moves partitions: `(topic, partition) -> replicas`.
    fn reassign_partitions(
        &self,
        moves: &BTreeMap<(String, i32), Vec<i32>>,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Partition reassignments in progress, all topics.
    fn ongoing_reassignments(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<(String, i32), OngoingReassignment>, AdminError>> + Send;
    /// Sets a SCRAM-SHA-512 credential.
    fn upsert_scram(
        &self,
        credential: &ScramCredential,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Deletes a user's SCRAM-SHA-512 credential (absent is fine).
    fn delete_scram(&self, user: &str) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Creates ACL bindings.
    fn create_acls(
        &self,
        acls: &[AclBinding],
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Sets (`Some`) or removes (`None`) client quotas of a user.
    fn alter_user_quotas(
        &self,
        user: &str,
        quotas: &BTreeMap<String, Option<f64>>,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Every ACL binding of `principal`.
    fn describe_acls_of(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<Vec<AclBinding>, AdminError>> + Send;
    /// Deletes exactly these ACL bindings.
    fn delete_acls(
        &self,
        acls: &[AclBinding],
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Node id of the active controller (the KRaft metadata quorum's leader), from
    /// DescribeQuorum; `None` when the cluster cannot say: DescribeQuorum missing from
    /// ApiVersions, answered with UNSUPPORTED_VERSION, or no leader at the moment.
    fn active_controller(&self) -> impl Future<Output = Result<Option<i32>, AdminError>> + Send;
    /// The metadata quorum's voters and observers with their directory ids (DescribeQuorum
    /// v2); `None` when the cluster does not speak v2 or does not describe the partition.
    fn describe_quorum(&self) -> impl Future<Output = Result<Option<Quorum>, AdminError>> + Send;
    /// AddRaftVoter: observer `id` with `directory_id` becomes a voter reachable on the
    /// CONTROLLER listener at `endpoint` (host, port), once it has caught up.
    fn add_raft_voter(
        &self,
        id: i32,
        directory_id: uuid::Uuid,
        endpoint: (&str, u16),
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// RemoveRaftVoter: voter `id` with `directory_id` leaves the voter set (it stays an
    /// observer while it runs).
    fn remove_raft_voter(
        &self,
        id: i32,
        directory_id: uuid::Uuid,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// The APIs and versions the cluster advertises (ApiVersions). Asked before calls a
    /// cluster may not implement: a broker drops the connection on an API it does not know.
    fn supported_apis(&self) -> impl Future<Output = Result<SupportedApis, AdminError>> + Send;
    /// The high watermark of each partition of `topic` (ListOffsets, latest, at each
    /// partition's leader); empty when the topic does not exist.
    fn end_offsets(
        &self,
        topic: &str,
    ) -> impl Future<Output = Result<BTreeMap<i32, i64>, AdminError>> + Send;
}

/// TLS settings of an admin client (see [`tls_config`]).
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// A TLS client configuration (TLS 1.2 and 1.3, aws-lc-rs) trusting only the CA certificates
/// in `ca_pem`, showing the key and certificate chain in `keystore_pem` (a PEM keystore: key,
/// then the chain, leaf first). Server host names are checked against the certificates.
pub fn tls_config(ca_pem: &str, keystore_pem: &str) -> Result<TlsConfig, AdminError> {
    ClientTls::from_pem(ca_pem, Some(keystore_pem))
        .map(|tls| tls.config().clone())
        .map_err(|e| AdminError::Tls(e.to_string()))
}

/// The admin client: one short-lived connection per call to the first reachable bootstrap
/// server (Strait's single controller answers every admin request), plaintext or TLS.
#[derive(Clone, Debug)]
pub struct WireAdmin {
    client: Client,
}

impl WireAdmin {
    /// A plaintext client for `bootstrap` (`host:port,host:port`).
    pub fn new(bootstrap: &str) -> Self {
        Self::with_tls(bootstrap, None)
    }

    /// A client for `bootstrap` (`host:port,host:port`), over TLS with `tls` (then each
    /// server's certificate must name the host it is dialled by).
    pub fn with_tls(bootstrap: &str, tls: Option<TlsConfig>) -> Self {
        let options = ConnectOptions {
            connect_timeout: REQUEST_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            tls: tls.map(ClientTls::new),
            ..ConnectOptions::new("strait-operator")
        };
        WireAdmin {
            client: Client::new(bootstrap, options),
        }
    }

    /// Dials `to` (`host:port`) whenever bootstrap address `address` is used, still checking
    /// the TLS server certificate for `address`'s host: a port-forward, or a test broker on a
    /// loopback port standing for a cluster's Service name.
    #[must_use]
    pub fn connect_via(self, address: &str, to: &str) -> Self {
        WireAdmin {
            client: self.client.via(address, to),
        }
    }

    /// A connection to the first bootstrap server that answers.
    async fn connection(&self) -> Result<Connection, AdminError> {
        Ok(self.client.connect().await?)
    }

    /// The path of every admin call: a connection, `request` at `version`, and every error
    /// code of the answer checked (those in `tolerated` pass); `resource` names what a code
    /// is about when the answer does not.
    async fn request<R>(
        &self,
        version: i16,
        request: &R,
        resource: &str,
        tolerated: &[i16],
    ) -> Result<R::Response, AdminError>
    where
        R: Request + Sync,
        R::Response: ResponseErrors,
    {
        let mut connection = self.connection().await?;
        connection
            .call_checked(version, request, tolerated)
            .await
            .map_err(|e| AdminError::from_client(e, resource))
    }
}

impl KafkaAdmin for WireAdmin {
    async fn describe_topic(&self, name: &str) -> Result<Option<TopicDescription>, AdminError> {
        topics::describe(self, name).await
    }

    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        config: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        topics::create(self, name, partitions, replication_factor, config).await
    }

    async fn cluster_id(&self) -> Result<Option<String>, AdminError> {
        topics::cluster_id(self).await
    }

    async fn all_partitions(&self) -> Result<BTreeMap<(String, i32), Vec<i32>>, AdminError> {
        topics::all_partitions(self).await
    }

    async fn create_partitions(&self, name: &str, count: i32) -> Result<(), AdminError> {
        topics::create_partitions(self, name, count).await
    }

    async fn alter_topic_config(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<(), AdminError> {
        topics::alter_config(self, name, changes).await
    }

    async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        topics::delete(self, name).await
    }

    async fn reassign_partitions(
        &self,
        moves: &BTreeMap<(String, i32), Vec<i32>>,
    ) -> Result<(), AdminError> {
        topics::reassign(self, moves).await
    }

    async fn ongoing_reassignments(
        &self,
    ) -> Result<BTreeMap<(String, i32), OngoingReassignment>, AdminError> {
        topics::ongoing_reassignments(self).await
    }

    async fn upsert_scram(&self, credential: &ScramCredential) -> Result<(), AdminError> {
        security::upsert_scram(self, credential).await
    }

    async fn delete_scram(&self, user: &str) -> Result<(), AdminError> {
        security::delete_scram(self, user).await
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
        security::create_acls(self, acls).await
    }

    async fn alter_user_quotas(
        &self,
        user: &str,
        quotas: &BTreeMap<String, Option<f64>>,
    ) -> Result<(), AdminError> {
        security::alter_user_quotas(self, user, quotas).await
    }

    async fn describe_acls_of(&self, principal: &str) -> Result<Vec<AclBinding>, AdminError> {
        security::describe_acls_of(self, principal).await
    }

    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
        security::delete_acls(self, acls).await
    }

    async fn active_controller(&self) -> Result<Option<i32>, AdminError> {
        quorum::active_controller(self).await
    }

    async fn describe_quorum(&self) -> Result<Option<Quorum>, AdminError> {
        quorum::describe_quorum(self).await
    }

    async fn add_raft_voter(
        &self,
        id: i32,
        directory_id: uuid::Uuid,
        endpoint: (&str, u16),
    ) -> Result<(), AdminError> {
        quorum::add_raft_voter(self, id, directory_id, endpoint).await
    }

    async fn remove_raft_voter(&self, id: i32, directory_id: uuid::Uuid) -> Result<(), AdminError> {
        quorum::remove_raft_voter(self, id, directory_id).await
    }

    async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, AdminError> {
        offsets::end_offsets(self, topic).await
    }

    async fn supported_apis(&self) -> Result<SupportedApis, AdminError> {
        quorum::supported_apis(self).await
    }
}

/// A request frame (length prefix, header, body) for `key` at `version`, correlation id 1.
pub fn encode_frame<Req: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    client_id: &str,
    request: &Req,
) -> Result<Vec<u8>, AdminError> {
    let header = frame::request_header(key as i16, version, 1, Some(client_id));
    frame::encode_frame(&header, Req::header_version(version), request, version)
        .map_err(|e| AdminError::Protocol(e.to_string()))
}

/// Decodes a response frame body (after the length prefix) to an [`encode_frame`] request.
pub fn decode_response<Resp: Decodable + HeaderVersion>(
    body: &[u8],
    version: i16,
) -> Result<Resp, AdminError> {
    frame::decode_response(bytes::Bytes::copy_from_slice(body), 1, version)
        .map_err(|e| AdminError::Protocol(e.to_string()))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(sb(name))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

#[cfg(test)]
mod tests;
