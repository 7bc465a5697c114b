//! A small async Kafka admin client over the wire protocol (`kafka-protocol`): the operations the
//! operator needs from any Kafka-compatible cluster, behind the [`KafkaAdmin`] trait so that
//! controllers can be tested without a broker. It speaks plaintext, or TLS ([`tls_config`]:
//! rustls on aws-lc-rs, trusting only the given CA, host names checked, with a client
//! certificate) as a Strait Cluster's replication listener requires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId,
    CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeAclsRequest, DescribeAclsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response frame accepted.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// Deadline of one request, connect included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka's `UNKNOWN_TOPIC_OR_PARTITION`.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's `TOPIC_ALREADY_EXISTS`.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's `RESOURCE_NOT_FOUND` (for example no SCRAM credential to delete).
pub const RESOURCE_NOT_FOUND: i16 = 91;
/// Kafka's `UNSUPPORTED_VERSION`.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// The KRaft metadata log's topic; DescribeQuorum describes its partition 0.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

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
    /// The broker answered with an error code.
    #[error("{operation} on {resource}: Kafka error {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// Operation.
        operation: &'static str,
        /// Topic, user or other resource name.
        resource: String,
        /// Kafka error code.
        code: i16,
        /// Broker's message.
        message: Option<String>,
    },
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
    /// The APIs and versions the cluster advertises (ApiVersions). Asked before calls a
    /// cluster may not implement: a broker drops the connection on an API it does not know.
    fn supported_apis(&self) -> impl Future<Output = Result<SupportedApis, AdminError>> + Send;
}

/// The APIs a cluster advertises in ApiVersions, with their version ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupportedApis(BTreeMap<i16, (i16, i16)>);

impl SupportedApis {
    /// From `(api, min version, max version)` triples.
    pub fn new(ranges: impl IntoIterator<Item = (ApiKey, i16, i16)>) -> Self {
        SupportedApis(
            ranges
                .into_iter()
                .map(|(key, min, max)| (key as i16, (min, max)))
                .collect(),
        )
    }

    /// What an ApiVersions response lists.
    pub fn from_response(versions: &ApiVersionsResponse) -> Self {
        SupportedApis(
            versions
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        )
    }

    /// Whether the cluster serves `key` at `version`.
    pub fn speaks(&self, key: ApiKey, version: i16) -> bool {
        self.0
            .get(&(key as i16))
            .is_some_and(|(min, max)| (*min..=*max).contains(&version))
    }

    /// Those of `needed` (APIs at the versions this client sends) the cluster does not serve.
    pub fn missing(&self, needed: &[(ApiKey, i16)]) -> Vec<(ApiKey, i16)> {
        needed
            .iter()
            .filter(|(key, version)| !self.speaks(*key, *version))
            .copied()
            .collect()
    }
}

/// What [`KafkaAdmin::upsert_scram`] and [`KafkaAdmin::delete_scram`] send.
pub const SCRAM_APIS: &[(ApiKey, i16)] = &[(ApiKey::AlterUserScramCredentials, ALTER_SCRAM_V)];
/// What the ACL calls send ([`KafkaAdmin::describe_acls_of`], `create_acls`, `delete_acls`).
pub const ACL_APIS: &[(ApiKey, i16)] = &[
    (ApiKey::DescribeAcls, DESCRIBE_ACLS_V),
    (ApiKey::CreateAcls, CREATE_ACLS_V),
    (ApiKey::DeleteAcls, DELETE_ACLS_V),
];
/// What [`KafkaAdmin::alter_user_quotas`] sends.
pub const QUOTA_APIS: &[(ApiKey, i16)] = &[(ApiKey::AlterClientQuotas, ALTER_QUOTAS_V)];

/// The DescribeQuorum version to use with a broker that answered `versions`: the highest both
/// speak (this client: 0 to 2), `None` when the broker does not list the API or shares no
/// version.
pub fn describe_quorum_version(versions: &ApiVersionsResponse) -> Option<i16> {
    let api = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::DescribeQuorum as i16)?;
    let version = api.max_version.min(DESCRIBE_QUORUM_MAX_V);
    (version >= api.min_version.max(0)).then_some(version)
}

/// The quorum leader a DescribeQuorum response names for `__cluster_metadata`-0: `None` for
/// UNSUPPORTED_VERSION, a missing partition or no leader (`leader_id` -1), an error for any
/// other error code.
pub fn quorum_leader(resp: &DescribeQuorumResponse) -> Result<Option<i32>, AdminError> {
    if resp.error_code == UNSUPPORTED_VERSION {
        return Ok(None);
    }
    check(
        "DescribeQuorum",
        METADATA_TOPIC,
        resp.error_code,
        resp.error_message.as_ref(),
        &[],
    )?;
    let Some(partition) = resp
        .topics
        .iter()
        .filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == 0)
    else {
        return Ok(None);
    };
    if partition.error_code == UNSUPPORTED_VERSION {
        return Ok(None);
    }
    check(
        "DescribeQuorum",
        METADATA_TOPIC,
        partition.error_code,
        partition.error_message.as_ref(),
        &[],
    )?;
    Ok((partition.leader_id.0 >= 0).then_some(partition.leader_id.0))
}

/// Versions this client speaks (Kafka 3.x brokers and Strait serve them).
const METADATA_V: i16 = 12;
const CREATE_TOPICS_V: i16 = 7;
const CREATE_PARTITIONS_V: i16 = 3;
const DELETE_TOPICS_V: i16 = 6;
const DESCRIBE_CONFIGS_V: i16 = 4;
const INCREMENTAL_ALTER_CONFIGS_V: i16 = 1;
const ALTER_REASSIGNMENTS_V: i16 = 0;
const LIST_REASSIGNMENTS_V: i16 = 0;
const ALTER_SCRAM_V: i16 = 0;
const CREATE_ACLS_V: i16 = 3;
const DELETE_ACLS_V: i16 = 3;
const DESCRIBE_ACLS_V: i16 = 3;
const ALTER_QUOTAS_V: i16 = 1;
const API_VERSIONS_V: i16 = 3;
/// Highest DescribeQuorum version this client speaks (v2 only adds the voters' endpoints).
const DESCRIBE_QUORUM_MAX_V: i16 = 2;
/// Kafka's resource type code for topics in config APIs.
const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// SCRAM-SHA-512 mechanism code.
const SCRAM_SHA_512: i8 = 2;

/// TLS settings of an admin client (see [`tls_config`]).
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// A TLS client configuration (TLS 1.2 and 1.3, aws-lc-rs) trusting only the CA certificates
/// in `ca_pem`, showing the key and certificate chain in `keystore_pem` (a PEM keystore: key,
/// then the chain, leaf first). Server host names are checked against the certificates.
pub fn tls_config(ca_pem: &str, keystore_pem: &str) -> Result<TlsConfig, AdminError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| AdminError::Tls(format!("{what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| bad("CA certificate", &e))?)
            .map_err(|e| bad("CA certificate", &e))?;
    }
    if roots.is_empty() {
        return Err(AdminError::Tls("no CA certificate".into()));
    }
    let chain = CertificateDer::pem_slice_iter(keystore_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("client certificate", &e))?;
    if chain.is_empty() {
        return Err(AdminError::Tls("no client certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(keystore_pem.as_bytes())
        .map_err(|e| bad("client key", &e))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("protocol versions", &e))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| bad("client certificate", &e))?;
    Ok(Arc::new(config))
}

/// The host of `host:port` (without the brackets of an IPv6 literal).
fn host_of(address: &str) -> &str {
    address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// A connection, plaintext or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The admin client: one short-lived connection per call to the first reachable bootstrap
/// server (Strait's single controller answers every admin request), plaintext or TLS.
#[derive(Clone)]
pub struct WireAdmin {
    bootstrap: Vec<String>,
    client_id: String,
    tls: Option<TlsConfig>,
    /// Where to dial a bootstrap address instead (see [`WireAdmin::connect_via`]).
    via: BTreeMap<String, String>,
}

impl std::fmt::Debug for WireAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireAdmin")
            .field("bootstrap", &self.bootstrap)
            .field("tls", &self.tls.is_some())
            .field("via", &self.via)
            .finish()
    }
}

impl WireAdmin {
    /// A plaintext client for `bootstrap` (`host:port,host:port`).
    pub fn new(bootstrap: &str) -> Self {
        Self::with_tls(bootstrap, None)
    }

    /// A client for `bootstrap` (`host:port,host:port`), over TLS with `tls` (then each
    /// server's certificate must name the host it is dialled by).
    pub fn with_tls(bootstrap: &str, tls: Option<TlsConfig>) -> Self {
        WireAdmin {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: "strait-operator".to_owned(),
            tls,
            via: BTreeMap::new(),
        }
    }

    /// Dials `to` (`host:port`) whenever bootstrap address `address` is used, still checking
    /// the TLS server certificate for `address`'s host: a port-forward, or a test broker on a
    /// loopback port standing for a cluster's Service name.
    #[must_use]
    pub fn connect_via(mut self, address: &str, to: &str) -> Self {
        self.via.insert(address.to_owned(), to.to_owned());
        self
    }

    /// A connection to `address`, TLS handshake done when TLS is configured.
    async fn connect_to(&self, address: &str) -> Result<Box<dyn Io>, String> {
        let dial = self.via.get(address).map_or(address, String::as_str);
        let tcp = TcpStream::connect(dial).await.map_err(|e| e.to_string())?;
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(host_of(address).to_owned())
            .map_err(|e| format!("bad host name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(Box::new(tls))
    }

    async fn connect(&self) -> Result<Box<dyn Io>, AdminError> {
        let mut last = AdminError::Connect {
            address: "(no bootstrap servers)".to_owned(),
            reason: "empty list".to_owned(),
        };
        for address in &self.bootstrap {
            match tokio::time::timeout(REQUEST_TIMEOUT, self.connect_to(address)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(reason)) => {
                    last = AdminError::Connect {
                        address: address.clone(),
                        reason,
                    }
                }
                Err(_) => {
                    last = AdminError::Connect {
                        address: address.clone(),
                        reason: "timed out".to_owned(),
                    }
                }
            }
        }
        Err(last)
    }

    async fn call<Req, Resp>(
        &self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, AdminError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let frame = encode_frame(key, version, &self.client_id, request)?;
        let exchange = async {
            let mut stream = self.connect().await?;
            stream.write_all(&frame).await.map_err(io)?;
            stream.flush().await.map_err(io)?;
            let len = stream.read_i32().await.map_err(io)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_RESPONSE)
                .ok_or_else(|| AdminError::Protocol(format!("bad response length {len}")))?;
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).await.map_err(io)?;
            Ok::<_, AdminError>(body)
        };
        let body = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| AdminError::Io(format!("{key:?} timed out")))??;
        decode_response(&body, version)
    }

    /// The cluster's ApiVersions answer.
    async fn api_versions(&self) -> Result<ApiVersionsResponse, AdminError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(sb("strait-operator"))
            .with_client_software_version(sb(env!("CARGO_PKG_VERSION")));
        let versions: ApiVersionsResponse = self
            .call(ApiKey::ApiVersions, API_VERSIONS_V, &request)
            .await?;
        check("ApiVersions", "cluster", versions.error_code, None, &[])?;
        Ok(versions)
    }
}

fn io(e: std::io::Error) -> AdminError {
    AdminError::Io(e.to_string())
}

/// A request frame: length prefix, header, body.
pub fn encode_frame<Req: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    client_id: &str,
    request: &Req,
) -> Result<Vec<u8>, AdminError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, Req::header_version(version))
        .map_err(|e| AdminError::Protocol(format!("encode header: {e}")))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| AdminError::Protocol(format!("encode {key:?}: {e}")))?;
    let len =
        i32::try_from(buf.len()).map_err(|_| AdminError::Protocol("request too large".into()))?;
    let mut out = Vec::with_capacity(buf.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Decodes a response frame body (after the length prefix).
pub fn decode_response<Resp: Decodable + HeaderVersion>(
    body: &[u8],
    version: i16,
) -> Result<Resp, AdminError> {
    let mut buf = bytes::Bytes::copy_from_slice(body);
    ResponseHeader::decode(&mut buf, Resp::header_version(version))
        .map_err(|e| AdminError::Protocol(format!("decode response header: {e}")))?;
    let resp = Resp::decode(&mut buf, version)
        .map_err(|e| AdminError::Protocol(format!("decode response: {e}")))?;
    if buf.has_remaining() {
        return Err(AdminError::Protocol(format!(
            "{} trailing bytes in response",
            buf.remaining()
        )));
    }
    Ok(resp)
}

fn check(
    operation: &'static str,
    resource: &str,
    code: i16,
    message: Option<&StrBytes>,
    tolerated: &[i16],
) -> Result<(), AdminError> {
    if code == 0 || tolerated.contains(&code) {
        return Ok(());
    }
    Err(AdminError::Kafka {
        operation,
        resource: resource.to_owned(),
        code,
        message: message.map(|m| m.to_string()),
    })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl KafkaAdmin for WireAdmin {
    async fn describe_topic(&self, name: &str) -> Result<Option<TopicDescription>, AdminError> {
        // Kafka's default would auto-create the topic being asked about.
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic_name(name))),
            ]));
        let resp: MetadataResponse = self.call(ApiKey::Metadata, METADATA_V, &request).await?;
        let Some(topic) = resp.topics.first() else {
            return Ok(None);
        };
        if topic.error_code == UNKNOWN_TOPIC_OR_PARTITION {
            return Ok(None);
        }
        check("Metadata", name, topic.error_code, None, &[])?;
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.replica_nodes.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        let configs = DescribeConfigsRequest::default().with_resources(vec![
            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(CONFIG_RESOURCE_TOPIC)
                .with_resource_name(sb(name))
                // `None` asks for every key (the message default is an empty list: none).
                .with_configuration_keys(None),
        ]);
        let resp: DescribeConfigsResponse = self
            .call(ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_V, &configs)
            .await?;
        let mut config = BTreeMap::new();
        for result in &resp.results {
            check(
                "DescribeConfigs",
                name,
                result.error_code,
                result.error_message.as_ref(),
                &[],
            )?;
            // Source 1 is DYNAMIC_TOPIC_CONFIG: keys set on this topic.
            for c in result.configs.iter().filter(|c| c.config_source == 1) {
                if let Some(v) = &c.value {
                    config.insert(c.name.to_string(), v.to_string());
                }
            }
        }
        Ok(Some(TopicDescription {
            topic_id: topic.topic_id.to_string(),
            partitions,
            config,
        }))
    }

    async fn cluster_id(&self) -> Result<Option<String>, AdminError> {
        // An empty topic list asks for brokers and cluster id only.
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(Vec::new()));
        let resp: MetadataResponse = self.call(ApiKey::Metadata, METADATA_V, &request).await?;
        Ok(resp.cluster_id.map(|id| id.to_string()))
    }

    async fn all_partitions(&self) -> Result<BTreeMap<(String, i32), Vec<i32>>, AdminError> {
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(None);
        let resp: MetadataResponse = self.call(ApiKey::Metadata, METADATA_V, &request).await?;
        let mut out = BTreeMap::new();
        for topic in &resp.topics {
            let Some(name) = &topic.name else { continue };
            check("Metadata", &name.0, topic.error_code, None, &[])?;
            for p in &topic.partitions {
                out.insert(
                    (name.0.to_string(), p.partition_index),
                    p.replica_nodes.iter().map(|b| b.0).collect(),
                );
            }
        }
        Ok(out)
    }

    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        config: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        use kafka_protocol::messages::create_topics_request::{
            CreatableTopic, CreatableTopicConfig,
        };
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                config
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        let resp: CreateTopicsResponse = self
            .call(ApiKey::CreateTopics, CREATE_TOPICS_V, &request)
            .await?;
        for t in &resp.topics {
            check(
                "CreateTopics",
                name,
                t.error_code,
                t.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn create_partitions(&self, name: &str, count: i32) -> Result<(), AdminError> {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(count)
                    // `None`: the cluster places the new partitions.
                    .with_assignments(None),
            ])
            .with_timeout_ms(30_000);
        let resp: CreatePartitionsResponse = self
            .call(ApiKey::CreatePartitions, CREATE_PARTITIONS_V, &request)
            .await?;
        for r in &resp.results {
            check(
                "CreatePartitions",
                name,
                r.error_code,
                r.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn alter_topic_config(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<(), AdminError> {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        if changes.is_empty() {
            return Ok(());
        }
        let configs = changes
            .iter()
            .map(|(k, v)| {
                // Operation 0 is SET, 1 is DELETE.
                AlterableConfig::default()
                    .with_name(sb(k))
                    .with_config_operation(if v.is_some() { 0 } else { 1 })
                    .with_value(v.as_deref().map(sb))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(CONFIG_RESOURCE_TOPIC)
                .with_resource_name(sb(name))
                .with_configs(configs),
        ]);
        let resp: IncrementalAlterConfigsResponse = self
            .call(
                ApiKey::IncrementalAlterConfigs,
                INCREMENTAL_ALTER_CONFIGS_V,
                &request,
            )
            .await?;
        for r in &resp.responses {
            check(
                "IncrementalAlterConfigs",
                name,
                r.error_code,
                r.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
        let request = DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(name))),
            ])
            .with_timeout_ms(30_000);
        let resp: DeleteTopicsResponse = self
            .call(ApiKey::DeleteTopics, DELETE_TOPICS_V, &request)
            .await?;
        for r in &resp.responses {
            check(
                "DeleteTopics",
                name,
                r.error_code,
                r.error_message.as_ref(),
                &[UNKNOWN_TOPIC_OR_PARTITION],
            )?;
        }
        Ok(())
    }

    async fn reassign_partitions(
        &self,
        moves: &BTreeMap<(String, i32), Vec<i32>>,
    ) -> Result<(), AdminError> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for ((topic, partition), replicas) in moves {
            by_topic.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(Some(replicas.iter().map(|b| BrokerId(*b)).collect())),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(t, p)| {
                ReassignableTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(p)
            })
            .collect();
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(topics);
        let resp: AlterPartitionReassignmentsResponse = self
            .call(
                ApiKey::AlterPartitionReassignments,
                ALTER_REASSIGNMENTS_V,
                &request,
            )
            .await?;
        check(
            "AlterPartitionReassignments",
            "cluster",
            resp.error_code,
            resp.error_message.as_ref(),
            &[],
        )?;
        for t in &resp.responses {
            for p in &t.partitions {
                check(
                    "AlterPartitionReassignments",
                    &t.name.0,
                    p.error_code,
                    p.error_message.as_ref(),
                    &[],
                )?;
            }
        }
        Ok(())
    }

    async fn ongoing_reassignments(
        &self,
    ) -> Result<BTreeMap<(String, i32), OngoingReassignment>, AdminError> {
        // No topic list: every reassignment in progress.
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(None);
        let resp: ListPartitionReassignmentsResponse = self
            .call(
                ApiKey::ListPartitionReassignments,
                LIST_REASSIGNMENTS_V,
                &request,
            )
            .await?;
        check(
            "ListPartitionReassignments",
            "cluster",
            resp.error_code,
            resp.error_message.as_ref(),
            &[],
        )?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    OngoingReassignment {
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    },
                );
            }
        }
        Ok(out)
    }

    async fn upsert_scram(&self, credential: &ScramCredential) -> Result<(), AdminError> {
        use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
        let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(sb(&credential.user))
                .with_mechanism(SCRAM_SHA_512)
                .with_iterations(credential.iterations)
                .with_salt(credential.salt.clone().into())
                .with_salted_password(credential.salted_password.clone().into()),
        ]);
        let resp: AlterUserScramCredentialsResponse = self
            .call(ApiKey::AlterUserScramCredentials, ALTER_SCRAM_V, &request)
            .await?;
        for r in &resp.results {
            check(
                "AlterUserScramCredentials",
                &credential.user,
                r.error_code,
                r.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn delete_scram(&self, user: &str) -> Result<(), AdminError> {
        use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
        let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(sb(user))
                .with_mechanism(SCRAM_SHA_512),
        ]);
        let resp: AlterUserScramCredentialsResponse = self
            .call(ApiKey::AlterUserScramCredentials, ALTER_SCRAM_V, &request)
            .await?;
        for r in &resp.results {
            check(
                "AlterUserScramCredentials",
                user,
                r.error_code,
                r.error_message.as_ref(),
                &[RESOURCE_NOT_FOUND],
            )?;
        }
        Ok(())
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
        use kafka_protocol::messages::create_acls_request::AclCreation;
        if acls.is_empty() {
            return Ok(());
        }
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type)
                    .with_resource_name(sb(&a.resource_name))
                    .with_resource_pattern_type(a.pattern_type)
                    .with_principal(sb(&a.principal))
                    .with_host(sb(&a.host))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let request = CreateAclsRequest::default().with_creations(creations);
        let resp: CreateAclsResponse = self
            .call(ApiKey::CreateAcls, CREATE_ACLS_V, &request)
            .await?;
        for r in &resp.results {
            check(
                "CreateAcls",
                "acl",
                r.error_code,
                r.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn alter_user_quotas(
        &self,
        user: &str,
        quotas: &BTreeMap<String, Option<f64>>,
    ) -> Result<(), AdminError> {
        use kafka_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        let ops = quotas
            .iter()
            .map(|(k, v)| {
                OpData::default()
                    .with_key(sb(k))
                    .with_value(v.unwrap_or(0.0))
                    .with_remove(v.is_none())
            })
            .collect();
        let request = AlterClientQuotasRequest::default().with_entries(vec![
            EntryData::default()
                .with_entity(vec![
                    EntityData::default()
                        .with_entity_type(sb("user"))
                        .with_entity_name(Some(sb(user))),
                ])
                .with_ops(ops),
        ]);
        let resp: AlterClientQuotasResponse = self
            .call(ApiKey::AlterClientQuotas, ALTER_QUOTAS_V, &request)
            .await?;
        for e in &resp.entries {
            check(
                "AlterClientQuotas",
                user,
                e.error_code,
                e.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn describe_acls_of(&self, principal: &str) -> Result<Vec<AclBinding>, AdminError> {
        // Resource type, pattern type, operation and permission 1 mean ANY.
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_resource_name_filter(None)
            .with_host_filter(None)
            .with_principal_filter(Some(sb(principal)))
            .with_operation(1)
            .with_permission_type(1);
        let resp: DescribeAclsResponse = self
            .call(ApiKey::DescribeAcls, DESCRIBE_ACLS_V, &request)
            .await?;
        check(
            "DescribeAcls",
            principal,
            resp.error_code,
            resp.error_message.as_ref(),
            &[],
        )?;
        let mut out = Vec::new();
        for r in &resp.resources {
            for a in &r.acls {
                out.push(AclBinding {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.to_string(),
                    pattern_type: r.pattern_type,
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: a.operation,
                    permission: a.permission_type,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
        use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
        if acls.is_empty() {
            return Ok(());
        }
        let filters = acls
            .iter()
            .map(|a| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(a.resource_type)
                    .with_resource_name_filter(Some(sb(&a.resource_name)))
                    .with_pattern_type_filter(a.pattern_type)
                    .with_principal_filter(Some(sb(&a.principal)))
                    .with_host_filter(Some(sb(&a.host)))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let request = DeleteAclsRequest::default().with_filters(filters);
        let resp: DeleteAclsResponse = self
            .call(ApiKey::DeleteAcls, DELETE_ACLS_V, &request)
            .await?;
        for r in &resp.filter_results {
            check(
                "DeleteAcls",
                "acl",
                r.error_code,
                r.error_message.as_ref(),
                &[],
            )?;
        }
        Ok(())
    }

    async fn active_controller(&self) -> Result<Option<i32>, AdminError> {
        // Asking first: a broker without the API may drop the connection on an unknown key.
        let versions = self.api_versions().await?;
        let Some(version) = describe_quorum_version(&versions) else {
            return Ok(None);
        };
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        let request = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let resp: DescribeQuorumResponse =
            self.call(ApiKey::DescribeQuorum, version, &request).await?;
        quorum_leader(&resp)
    }

    async fn supported_apis(&self) -> Result<SupportedApis, AdminError> {
        Ok(SupportedApis::from_response(&self.api_versions().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::CreateTopicsResponse;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;

    #[test]
    fn frames_carry_length_header_and_body() {
        let request = CreateTopicsRequest::default().with_timeout_ms(5);
        let frame =
            encode_frame(ApiKey::CreateTopics, CREATE_TOPICS_V, "t", &request).expect("encode");
        let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(usize::try_from(len).ok(), Some(frame.len() - 4));
        // Api key 19 (CreateTopics), version 7.
        assert_eq!(&frame[4..8], &[0, 19, 0, 7]);
    }

    #[test]
    fn responses_decode_and_errors_map_to_kafka_codes() {
        let resp = CreateTopicsResponse::default().with_topics(vec![
            CreatableTopicResult::default()
                .with_name(topic_name("a"))
                .with_error_code(TOPIC_ALREADY_EXISTS),
        ]);
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(1)
            .encode(
                &mut buf,
                CreateTopicsResponse::header_version(CREATE_TOPICS_V),
            )
            .expect("header");
        resp.encode(&mut buf, CREATE_TOPICS_V).expect("body");
        let back: CreateTopicsResponse = decode_response(&buf, CREATE_TOPICS_V).expect("decode");
        assert_eq!(back, resp);
        let err = check("CreateTopics", "a", back.topics[0].error_code, None, &[]).unwrap_err();
        assert!(matches!(
            err,
            AdminError::Kafka {
                code: TOPIC_ALREADY_EXISTS,
                ..
            }
        ));
        assert!(decode_response::<CreateTopicsResponse>(&buf[..3], CREATE_TOPICS_V).is_err());
    }

    fn versions(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        ApiVersionsResponse::default().with_api_keys(
            keys.iter()
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
    }

    #[test]
    fn describe_quorum_version_is_the_highest_both_speak() {
        assert_eq!(
            describe_quorum_version(&versions(&[(ApiKey::DescribeQuorum, 0, 2)])),
            Some(2)
        );
        assert_eq!(
            describe_quorum_version(&versions(&[(ApiKey::DescribeQuorum, 0, 5)])),
            Some(2)
        );
        assert_eq!(
            describe_quorum_version(&versions(&[(ApiKey::DescribeQuorum, 0, 1)])),
            Some(1)
        );
        // Missing, or only newer versions than this client speaks.
        assert_eq!(
            describe_quorum_version(&versions(&[(ApiKey::Metadata, 0, 12)])),
            None
        );
        assert_eq!(
            describe_quorum_version(&versions(&[(ApiKey::DescribeQuorum, 3, 4)])),
            None
        );
    }

    fn quorum(top: i16, partition: Option<(i16, i32)>) -> DescribeQuorumResponse {
        use kafka_protocol::messages::describe_quorum_response::{PartitionData, TopicData};
        DescribeQuorumResponse::default()
            .with_error_code(top)
            .with_topics(
                partition
                    .map(|(code, leader)| {
                        TopicData::default()
                            .with_topic_name(topic_name(METADATA_TOPIC))
                            .with_partitions(vec![
                                PartitionData::default()
                                    .with_partition_index(0)
                                    .with_error_code(code)
                                    .with_leader_id(BrokerId(leader)),
                            ])
                    })
                    .into_iter()
                    .collect(),
            )
    }

    #[test]
    fn quorum_leader_or_none_when_the_cluster_cannot_say() {
        assert_eq!(
            quorum_leader(&quorum(0, Some((0, 1000)))).ok(),
            Some(Some(1000))
        );
        assert_eq!(quorum_leader(&quorum(0, Some((0, -1)))).ok(), Some(None));
        assert_eq!(quorum_leader(&quorum(0, None)).ok(), Some(None));
        assert_eq!(
            quorum_leader(&quorum(UNSUPPORTED_VERSION, None)).ok(),
            Some(None)
        );
        assert_eq!(
            quorum_leader(&quorum(0, Some((UNSUPPORTED_VERSION, -1)))).ok(),
            Some(None)
        );
        // Any other error is an error (INVALID_REQUEST: a broker that runs alone).
        assert!(matches!(
            quorum_leader(&quorum(42, None)),
            Err(AdminError::Kafka { code: 42, .. })
        ));
        assert!(matches!(
            quorum_leader(&quorum(0, Some((3, -1)))),
            Err(AdminError::Kafka { code: 3, .. })
        ));
    }

    /// A one-connection-per-request fake broker answering each request with the next of
    /// `answers` (encoded at the version the request asked for); returns its address and
    /// the api keys and versions it was asked.
    async fn fake_broker(
        answers: Vec<Box<dyn Fn(i16) -> BytesMut + Send>>,
    ) -> (String, tokio::task::JoinHandle<Vec<(i16, i16)>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(async move {
            let mut asked = Vec::new();
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept().await else {
                    break;
                };
                let len = stream.read_i32().await.expect("len");
                let mut body = vec![0u8; usize::try_from(len).expect("len")];
                stream.read_exact(&mut body).await.expect("body");
                let key = i16::from_be_bytes([body[0], body[1]]);
                let version = i16::from_be_bytes([body[2], body[3]]);
                asked.push((key, version));
                let payload = answer(version);
                let mut frame = (i32::try_from(payload.len()).expect("len"))
                    .to_be_bytes()
                    .to_vec();
                frame.extend_from_slice(&payload);
                stream.write_all(&frame).await.expect("write");
            }
            asked
        });
        (address, server)
    }

    fn encoded<R: Encodable + HeaderVersion + Send + 'static>(
        resp: R,
    ) -> Box<dyn Fn(i16) -> BytesMut + Send> {
        Box::new(move |version| {
            let mut buf = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(1)
                .encode(&mut buf, R::header_version(version))
                .expect("header");
            resp.encode(&mut buf, version).expect("body");
            buf
        })
    }

    #[tokio::test]
    async fn active_controller_over_the_wire() {
        // DescribeQuorum v1 at most: the client asks v1 and reads the leader.
        let (address, server) = fake_broker(vec![
            encoded(versions(&[(ApiKey::DescribeQuorum, 0, 1)])),
            encoded(quorum(0, Some((0, 2000)))),
        ])
        .await;
        let leader = WireAdmin::new(&address).active_controller().await;
        assert_eq!(leader.ok(), Some(Some(2000)));
        assert_eq!(
            server.await.expect("server"),
            [
                (ApiKey::ApiVersions as i16, 3),
                (ApiKey::DescribeQuorum as i16, 1)
            ]
        );
        // Not in ApiVersions: never asked.
        let (address, server) =
            fake_broker(vec![encoded(versions(&[(ApiKey::Metadata, 0, 12)]))]).await;
        let leader = WireAdmin::new(&address).active_controller().await;
        assert_eq!(leader.ok(), Some(None));
        assert_eq!(server.await.expect("server").len(), 1);
        // Listed, but answered UNSUPPORTED_VERSION.
        let (address, server) = fake_broker(vec![
            encoded(versions(&[(ApiKey::DescribeQuorum, 0, 2)])),
            encoded(quorum(UNSUPPORTED_VERSION, None)),
        ])
        .await;
        let leader = WireAdmin::new(&address).active_controller().await;
        assert_eq!(leader.ok(), Some(None));
        assert_eq!(
            server.await.expect("server")[1],
            (ApiKey::DescribeQuorum as i16, 2)
        );
    }

    #[test]
    fn missing_apis_are_those_absent_or_not_at_the_version_sent() {
        // Strait's broker today: topics and configs, no SCRAM, ACL or quota APIs.
        let strait = SupportedApis::from_response(&versions(&[
            (ApiKey::CreateTopics, 2, 7),
            (ApiKey::DescribeConfigs, 1, 4),
        ]));
        assert!(strait.speaks(ApiKey::CreateTopics, CREATE_TOPICS_V));
        assert_eq!(strait.missing(SCRAM_APIS), SCRAM_APIS);
        assert_eq!(strait.missing(ACL_APIS), ACL_APIS);
        // Listed, but only older versions than this client sends.
        let old = SupportedApis::new([
            (ApiKey::DescribeAcls, 0, 3),
            (ApiKey::CreateAcls, 0, 1),
            (ApiKey::DeleteAcls, 0, 3),
        ]);
        assert_eq!(old.missing(ACL_APIS), [(ApiKey::CreateAcls, CREATE_ACLS_V)]);
        assert!(SupportedApis::default().missing(&[]).is_empty());
    }

    #[tokio::test]
    async fn supported_apis_over_the_wire() {
        let (address, server) = fake_broker(vec![encoded(versions(&[
            (ApiKey::Metadata, 0, 12),
            (ApiKey::AlterUserScramCredentials, 0, 0),
        ]))])
        .await;
        let apis = WireAdmin::new(&address)
            .supported_apis()
            .await
            .expect("apis");
        assert!(apis.speaks(ApiKey::AlterUserScramCredentials, 0));
        assert!(!apis.speaks(ApiKey::CreateAcls, CREATE_ACLS_V));
        assert_eq!(
            server.await.expect("server"),
            [(ApiKey::ApiVersions as i16, API_VERSIONS_V)]
        );
    }

    #[tokio::test]
    async fn unreachable_cluster_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let admin = WireAdmin::new(&address);
        let err = admin.delete_topic("x").await.unwrap_err();
        assert!(matches!(err, AdminError::Connect { .. }), "{err}");
    }
}
