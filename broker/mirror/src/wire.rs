//! The Kafka calls the mirror makes, on top of `strait-client`: a [`Cluster`] built from an
//! `mm2.properties` cluster (TLS, SASL), and one function per admin or data call (Metadata,
//! CreateTopics, CreatePartitions, configs, groups and offsets, topic ACLs, Fetch, Produce),
//! each checking its error codes and returning plain values.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest,
    CreateTopicsRequest, DescribeAclsRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeGroupsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    InitProducerIdResponse, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse,
    TopicName, TransactionalId,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::Request;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_client::connection::address;
use strait_client::{
    Client, ClientError, ClientTls, ConnectOptions, Connection, KafkaError, SaslLogin,
};

use crate::config::ClusterConfig;

/// Kafka error codes the mirror reacts to.
pub mod code {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const SECURITY_DISABLED: i16 = 54;
}

const METADATA: std::ops::RangeInclusive<i16> = 1..=12;
const FETCH: std::ops::RangeInclusive<i16> = 4..=12;
const PRODUCE: std::ops::RangeInclusive<i16> = 3..=9;
const LIST_OFFSETS: std::ops::RangeInclusive<i16> = 1..=7;
const OFFSET_COMMIT: std::ops::RangeInclusive<i16> = 2..=8;
const OFFSET_FETCH: std::ops::RangeInclusive<i16> = 1..=7;
const FIND_COORDINATOR: std::ops::RangeInclusive<i16> = 0..=3;
const LIST_GROUPS: std::ops::RangeInclusive<i16> = 0..=4;
const DESCRIBE_GROUPS: std::ops::RangeInclusive<i16> = 0..=5;
const INIT_PRODUCER_ID: std::ops::RangeInclusive<i16> = 0..=4;
const CREATE_TOPICS: std::ops::RangeInclusive<i16> = 2..=7;
const CREATE_PARTITIONS: std::ops::RangeInclusive<i16> = 0..=3;
const DESCRIBE_CONFIGS: std::ops::RangeInclusive<i16> = 1..=4;
const INCREMENTAL_ALTER_CONFIGS: std::ops::RangeInclusive<i16> = 0..=1;
const DESCRIBE_PRODUCERS: std::ops::RangeInclusive<i16> = 0..=0;
const WRITE_TXN_MARKERS: std::ops::RangeInclusive<i16> = 1..=1;
// Transactions as a transaction-version-1 client sends them: v4+ of AddPartitionsToTxn is the
// brokers' batched form, and EndTxn v5 / TxnOffsetCommit v5 belong to transaction version 2.
const ADD_PARTITIONS_TO_TXN: std::ops::RangeInclusive<i16> = 0..=3;
const ADD_OFFSETS_TO_TXN: std::ops::RangeInclusive<i16> = 0..=3;
const TXN_OFFSET_COMMIT: std::ops::RangeInclusive<i16> = 0..=3;
const END_TXN: std::ops::RangeInclusive<i16> = 0..=3;
/// OffsetFetch with `require_stable` (v7; v8 batches groups).
const OFFSET_FETCH_STABLE: std::ops::RangeInclusive<i16> = 7..=7;
/// How long a transactional call retries CONCURRENT_TRANSACTIONS (the previous transaction's
/// markers still being written) or UNSTABLE_OFFSET_COMMIT before giving up.
const TXN_BUSY_RETRY: Duration = Duration::from_secs(30);
// v1 added pattern types (PREFIXED); v0 knows only literal names.
const DESCRIBE_ACLS: std::ops::RangeInclusive<i16> = 1..=3;
const CREATE_ACLS: std::ops::RangeInclusive<i16> = 1..=3;

/// The `transactional_id` that makes a Produce a link append: the partition's records are
/// source batches the target leader appends verbatim (offsets, epochs, producer ids kept).
pub const LINK_TRANSACTIONAL_ID: &str = strait_client::link::TRANSACTIONAL_ID;
/// The topic config marking a linked mirror topic (`<source alias>:<source topic>`); removing
/// it is the topic's failover.
pub const MIRROR_SOURCE_CONFIG: &str = "strait.mirror.source";
/// Record batch v2 header: bytes before the first record.
pub const BATCH_HEADER_BYTES: usize = 61;

/// DescribeConfigs' source of a topic's own (non-default) setting.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// Config resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

/// A group's committed offsets: (topic, partition) → (offset, metadata).
pub type Offsets = BTreeMap<(String, i32), (i64, String)>;

/// Errors of the mirror's Kafka calls.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{cluster}: {source}")]
    Client {
        cluster: String,
        source: ClientError,
    },
    #[error("{cluster}: cannot read trust store {path}: {source}")]
    TrustStore {
        cluster: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{cluster}: records of {what}: {detail}")]
    Records {
        cluster: String,
        what: String,
        detail: String,
    },
    /// The mirror group's coordinator did not confirm this member within its session timeout.
    #[error(
        "{cluster}: group {group}: no heartbeat answered within the {session:?} session timeout"
    )]
    SessionExpired {
        cluster: String,
        group: String,
        session: std::time::Duration,
    },
}

impl WireError {
    /// The broker's error code, when the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            WireError::Client { source, .. } => source.kafka().map(|k| k.code),
            _ => None,
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn kafka(api: ApiKey, resource: &str, code: i16, message: Option<&StrBytes>) -> ClientError {
    ClientError::Kafka(KafkaError {
        api,
        resource: Some(resource.to_owned()),
        code,
        message: message.map(|m| m.to_string()),
    })
}

/// One cluster of the configuration, reachable through its bootstrap list.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub alias: String,
    client: Client,
}

impl Cluster {
    /// The cluster's client with its TLS and SASL settings.
    pub fn new(config: &ClusterConfig, client_id: &str) -> Result<Self, WireError> {
        let mut options = ConnectOptions::new(client_id);
        if config.security_protocol.tls()
            && let Some(path) = &config.truststore
        {
            let pem = std::fs::read_to_string(path).map_err(|source| WireError::TrustStore {
                cluster: config.alias.clone(),
                path: path.display().to_string(),
                source,
            })?;
            options.tls = Some(
                ClientTls::from_pem(&pem, None).map_err(|e| WireError::Client {
                    cluster: config.alias.clone(),
                    source: ClientError::TlsConfig(e),
                })?,
            );
        }
        if let Some(sasl) = &config.sasl {
            options.sasl = Some(SaslLogin {
                mechanism: sasl.mechanism.clone(),
                username: sasl.username.clone(),
                password: sasl.password.clone(),
            });
        }
        Ok(Cluster {
            alias: config.alias.clone(),
            client: Client::new(&config.bootstrap_servers, options),
        })
    }

    fn err(&self, source: ClientError) -> WireError {
        WireError::Client {
            cluster: self.alias.clone(),
            source,
        }
    }

    /// A connection to any broker.
    pub async fn connect(&self) -> Result<Connection, WireError> {
        self.client.connect().await.map_err(|e| self.err(e))
    }

    /// A connection to the leader of `topic`'s `partition`.
    pub async fn connect_leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Connection, WireError> {
        self.client
            .connect_leader(topic, partition)
            .await
            .map_err(|e| self.err(e))
    }

    /// Metadata of every topic (or of `topics`).
    pub async fn metadata(&self, topics: Option<&[String]>) -> Result<MetadataResponse, WireError> {
        let mut conn = self.connect().await?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                    .collect()
            }));
        conn.call_negotiated(METADATA, &request)
            .await
            .map_err(|e| self.err(e))
    }

    /// Every topic with its partition count (topics the broker marks internal left out), and
    /// the number of brokers.
    pub async fn topics(&self) -> Result<(BTreeMap<String, i32>, usize), WireError> {
        let metadata = self.metadata(None).await?;
        let topics = metadata
            .topics
            .iter()
            .filter(|t| !t.is_internal && t.error_code == 0)
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.to_string();
                Some((name, i32::try_from(t.partitions.len()).unwrap_or(i32::MAX)))
            })
            .collect();
        Ok((topics, metadata.brokers.len()))
    }

    /// Creates `topic` unless it exists.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<bool, WireError> {
        let mut conn = self.connect().await?;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(v)))
                            })
                            .collect(),
                    ),
            ]);
        let version = conn
            .negotiate::<CreateTopicsRequest>(CREATE_TOPICS)
            .await
            .map_err(|e| self.err(e))?;
        let response = conn
            .call_checked(version, &request, &[code::TOPIC_ALREADY_EXISTS])
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.topics.iter().all(|t| t.error_code == 0))
    }

    /// Grows `topic` to `count` partitions.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<(), WireError> {
        let mut conn = self.connect().await?;
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                // No assignments: the broker places the new partitions (the default is an
                // empty list, which asks for zero replicas).
                CreatePartitionsTopic::default()
                    .with_name(name(topic))
                    .with_count(count)
                    .with_assignments(None),
            ]);
        let version = conn
            .negotiate::<CreatePartitionsRequest>(CREATE_PARTITIONS)
            .await
            .map_err(|e| self.err(e))?;
        // INVALID_PARTITIONS: another mirror process grew it first.
        conn.call_checked(version, &request, &[code::INVALID_PARTITIONS])
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The settings `topic` has of its own (not the broker's defaults).
    pub async fn topic_configs(&self, topic: &str) -> Result<BTreeMap<String, String>, WireError> {
        let mut conn = self.connect().await?;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(topic))
                .with_configuration_keys(None),
        ]);
        let version = conn
            .negotiate::<DescribeConfigsRequest>(DESCRIBE_CONFIGS)
            .await
            .map_err(|e| self.err(e))?;
        let response = conn
            .call_checked(version, &request, &[])
            .await
            .map_err(|e| self.err(e))?;
        Ok(response
            .results
            .iter()
            .flat_map(|r| &r.configs)
            .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG && !c.is_sensitive)
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect())
    }

    /// Sets `configs` on `topic` (IncrementalAlterConfigs SET), leaving its other settings.
    pub async fn set_topic_configs(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), WireError> {
        let mut conn = self.connect().await?;
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(topic))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(str_bytes(k))
                                .with_config_operation(0)
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                ),
        ]);
        let version = conn
            .negotiate::<IncrementalAlterConfigsRequest>(INCREMENTAL_ALTER_CONFIGS)
            .await
            .map_err(|e| self.err(e))?;
        conn.call_checked(version, &request, &[])
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A connection to `group`'s coordinator.
    pub async fn coordinator(&self, group: &str) -> Result<Connection, WireError> {
        self.find_coordinator(group, 0).await
    }

    /// A connection to the transaction coordinator of `transactional_id`.
    pub async fn txn_coordinator(&self, transactional_id: &str) -> Result<Connection, WireError> {
        self.find_coordinator(transactional_id, 1).await
    }

    /// FindCoordinator of `key` (key type 0: group, 1: transactional id).
    async fn find_coordinator(&self, group: &str, key_type: i8) -> Result<Connection, WireError> {
        let mut conn = self.connect().await?;
        let request = FindCoordinatorRequest::default()
            .with_key(str_bytes(group))
            .with_key_type(key_type);
        let response: FindCoordinatorResponse = conn
            .call_negotiated(FIND_COORDINATOR, &request)
            .await
            .map_err(|e| self.err(e))?;
        if response.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::FindCoordinator,
                group,
                response.error_code,
                response.error_message.as_ref(),
            )));
        }
        let port = u16::try_from(response.port).unwrap_or(0);
        let at = address(&response.host, port);
        if at == conn.addr() {
            return Ok(conn);
        }
        self.client.connect_to(&at).await.map_err(|e| self.err(e))
    }

    /// `group`'s committed offsets: (topic, partition) → (offset, metadata).
    pub async fn committed(
        &self,
        coordinator: &mut Connection,
        group: &str,
    ) -> Result<Offsets, WireError> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(None);
        let response: OffsetFetchResponse = coordinator
            .call_negotiated(OFFSET_FETCH, &request)
            .await
            .map_err(|e| self.err(e))?;
        if response.error_code != 0 {
            return Err(self.err(kafka(ApiKey::OffsetFetch, group, response.error_code, None)));
        }
        let mut out = BTreeMap::new();
        for topic in &response.topics {
            for p in &topic.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert(
                        (topic.name.0.to_string(), p.partition_index),
                        (
                            p.committed_offset,
                            p.metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                        ),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` ((topic, partition) → (offset, metadata)) for `group` as a simple
    /// (member-less) group: generation -1, no member id, as admin tools do.
    pub async fn commit(
        &self,
        coordinator: &mut Connection,
        group: &str,
        offsets: &Offsets,
    ) -> Result<(), WireError> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), (offset, metadata)) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(str_bytes(metadata))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response: OffsetCommitResponse = coordinator
            .call_negotiated(OFFSET_COMMIT, &request)
            .await
            .map_err(|e| self.err(e))?;
        for topic in &response.topics {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    return Err(self.err(kafka(
                        ApiKey::OffsetCommit,
                        &format!("{group}/{}-{}", topic.name.0, p.partition_index),
                        p.error_code,
                        None,
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every group of the cluster (asking each broker, as each lists only its own), with its
    /// state.
    pub async fn list_groups(&self) -> Result<BTreeMap<String, String>, WireError> {
        let metadata = self.metadata(Some(&[])).await?;
        let mut out = BTreeMap::new();
        for broker in &metadata.brokers {
            let at = address(&broker.host, u16::try_from(broker.port).unwrap_or(0));
            let mut conn = self.client.connect_to(&at).await.map_err(|e| self.err(e))?;
            let response: ListGroupsResponse = conn
                .call_negotiated(LIST_GROUPS, &ListGroupsRequest::default())
                .await
                .map_err(|e| self.err(e))?;
            if response.error_code != 0 {
                return Err(self.err(kafka(ApiKey::ListGroups, &at, response.error_code, None)));
            }
            for g in response.groups {
                out.insert(g.group_id.0.to_string(), g.group_state.to_string());
            }
        }
        Ok(out)
    }

    /// `group`'s state and member count (DescribeGroups on its coordinator).
    pub async fn group_state(
        &self,
        coordinator: &mut Connection,
        group: &str,
    ) -> Result<(String, usize), WireError> {
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
        let response: DescribeGroupsResponse = coordinator
            .call_negotiated(DESCRIBE_GROUPS, &request)
            .await
            .map_err(|e| self.err(e))?;
        let g = response
            .groups
            .first()
            .ok_or_else(|| self.err(kafka(ApiKey::DescribeGroups, group, -1, None)))?;
        if g.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::DescribeGroups,
                group,
                g.error_code,
                g.error_message.as_ref(),
            )));
        }
        Ok((g.group_state.to_string(), g.members.len()))
    }

    /// The offset of `partition` at `timestamp` (-2: earliest, -1: latest), asked of the leader.
    pub async fn list_offset(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, WireError> {
        self.list_offset_isolated(leader, topic, partition, timestamp, 0)
            .await
    }

    /// [`Cluster::list_offset`] at an isolation level (1: read_committed, whose latest offset
    /// is the last stable offset).
    pub async fn list_offset_isolated(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        timestamp: i64,
        isolation_level: i8,
    ) -> Result<i64, WireError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation_level)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let response: ListOffsetsResponse = leader
            .call_negotiated(LIST_OFFSETS, &request)
            .await
            .map_err(|e| self.err(e))?;
        let p = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                self.err(kafka(
                    ApiKey::ListOffsets,
                    &format!("{topic}-{partition}"),
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    None,
                ))
            })?;
        if p.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::ListOffsets,
                &format!("{topic}-{partition}"),
                p.error_code,
                None,
            )));
        }
        Ok(p.offset)
    }

    /// One Fetch of `partition` from `offset` (read_uncommitted, as MM2's consumer).
    pub async fn fetch(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait: Duration,
        max_bytes: i32,
    ) -> Result<Fetched, WireError> {
        let raw = self
            .fetch_raw(leader, topic, partition, offset, max_wait, max_bytes)
            .await?;
        let batches = split_batches(raw.records, offset).map_err(|detail| WireError::Records {
            cluster: self.alias.clone(),
            what: format!("{topic}-{partition}"),
            detail,
        })?;
        Ok(Fetched {
            high_watermark: raw.high_watermark,
            batches,
        })
    }

    /// One Fetch of `partition` from `offset` (read_uncommitted), the record bytes as the
    /// broker sent them (a partial batch at the end included).
    pub async fn fetch_raw(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait: Duration,
        max_bytes: i32,
    ) -> Result<RawFetched, WireError> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offset)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(max_bytes),
                    ]),
            ]);
        let version = leader
            .negotiate::<FetchRequest>(FETCH)
            .await
            .map_err(|e| self.err(e))?;
        let response: FetchResponse = leader
            .call_within(version, &request, max_wait + Duration::from_secs(30))
            .await
            .map_err(|e| self.err(e))?;
        if response.error_code != 0 {
            return Err(self.err(kafka(ApiKey::Fetch, topic, response.error_code, None)));
        }
        let p = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                self.err(kafka(
                    ApiKey::Fetch,
                    &format!("{topic}-{partition}"),
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    None,
                ))
            })?;
        if p.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::Fetch,
                &format!("{topic}-{partition}"),
                p.error_code,
                None,
            )));
        }
        Ok(RawFetched {
            high_watermark: p.high_watermark,
            records: p.records.clone().unwrap_or_default(),
        })
    }

    /// A producer id for idempotent produce (InitProducerId without a transactional id).
    pub async fn init_producer_id(&self) -> Result<(i64, i16), WireError> {
        let mut conn = self.connect().await?;
        // No transactional id (the default is an empty one), and the Java client's timeout.
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        let response: InitProducerIdResponse = conn
            .call_negotiated(INIT_PRODUCER_ID, &request)
            .await
            .map_err(|e| self.err(e))?;
        if response.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::InitProducerId,
                "producer id",
                response.error_code,
                None,
            )));
        }
        Ok((response.producer_id.0, response.producer_epoch))
    }

    /// Produces one encoded batch to `partition` with acks=all; the base offset it got.
    pub async fn produce(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<i64, WireError> {
        let p = self
            .produce_one(leader, topic, partition, batch, None, timeout)
            .await?;
        if p.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::Produce,
                &format!("{topic}-{partition}"),
                p.error_code,
                p.error_message.as_ref(),
            )));
        }
        Ok(p.base_offset)
    }

    /// Appends source `batches` (whole v2 batches, verbatim) to `partition` of the mirror
    /// topic `topic` on its leader: a Produce with the link transactional id and acks=all.
    /// The partition's refusals a mirror acts on are answers, not errors.
    pub async fn link_append(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        batches: Bytes,
        timeout: Duration,
    ) -> Result<LinkAppend, WireError> {
        let link = Some(TransactionalId(str_bytes(LINK_TRANSACTIONAL_ID)));
        let p = self
            .produce_one(leader, topic, partition, batches, link, timeout)
            .await?;
        let message = p.error_message.as_ref().map(|m| m.to_string());
        match p.error_code {
            0 => Ok(LinkAppend::Appended {
                base_offset: p.base_offset,
            }),
            code::OFFSET_OUT_OF_RANGE => Ok(LinkAppend::OutOfRange {
                log_end: p.base_offset,
            }),
            code::INVALID_REQUEST
                if message
                    .as_deref()
                    .is_some_and(|m| m.contains("not a mirror topic")) =>
            {
                Ok(LinkAppend::NotMirror {
                    message: message.unwrap_or_default(),
                })
            }
            c => Err(self.err(kafka(
                ApiKey::Produce,
                &format!("{topic}-{partition}"),
                c,
                p.error_message.as_ref(),
            ))),
        }
    }

    /// One acks=all Produce of `records` to `partition` on its leader, and that partition's
    /// answer (whatever its error code); shared by a mirror's produce and its link append.
    async fn produce_one(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        records: Bytes,
        transactional_id: Option<TransactionalId>,
        timeout: Duration,
    ) -> Result<PartitionProduceResponse, WireError> {
        let request = ProduceRequest::default()
            .with_transactional_id(transactional_id)
            .with_acks(-1)
            .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ]),
            ]);
        let version = leader
            .negotiate::<ProduceRequest>(PRODUCE)
            .await
            .map_err(|e| self.err(e))?;
        let response: ProduceResponse = leader
            .call_within(version, &request, timeout + Duration::from_secs(10))
            .await
            .map_err(|e| self.err(e))?;
        response
            .responses
            .into_iter()
            .flat_map(|t| t.partition_responses)
            .find(|p| p.index == partition)
            .ok_or_else(|| {
                self.err(kafka(
                    ApiKey::Produce,
                    &format!("{topic}-{partition}"),
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    None,
                ))
            })
    }

    /// The producers of `partition` with a transaction open there, asked of its leader:
    /// (producer id, epoch, coordinator epoch, first offset of the open transaction).
    pub async fn open_transactions(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<OpenTransaction>, WireError> {
        let request = DescribeProducersRequest::default().with_topics(vec![
            kafka_protocol::messages::describe_producers_request::TopicRequest::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![partition]),
        ]);
        let response: DescribeProducersResponse = leader
            .call_negotiated(DESCRIBE_PRODUCERS, &request)
            .await
            .map_err(|e| self.err(e))?;
        let p = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                self.err(kafka(
                    ApiKey::DescribeProducers,
                    &format!("{topic}-{partition}"),
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    None,
                ))
            })?;
        if p.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::DescribeProducers,
                &format!("{topic}-{partition}"),
                p.error_code,
                p.error_message.as_ref(),
            )));
        }
        Ok(p.active_producers
            .iter()
            .filter(|s| s.current_txn_start_offset >= 0)
            .map(|s| OpenTransaction {
                producer_id: s.producer_id.0,
                producer_epoch: i16::try_from(s.producer_epoch).unwrap_or(i16::MAX),
                coordinator_epoch: s.coordinator_epoch.max(0),
                start_offset: s.current_txn_start_offset,
            })
            .collect())
    }

    /// Aborts `txn` on `partition` (WriteTxnMarkers with an abort marker, sent to the leader,
    /// as `kafka-transactions.sh abort` does).
    pub async fn abort_transaction(
        &self,
        leader: &mut Connection,
        topic: &str,
        partition: i32,
        txn: &OpenTransaction,
    ) -> Result<(), WireError> {
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        let request = WriteTxnMarkersRequest::default().with_markers(vec![
            WritableTxnMarker::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id))
                .with_producer_epoch(txn.producer_epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(txn.coordinator_epoch)
                .with_topics(vec![
                    WritableTxnMarkerTopic::default()
                        .with_name(name(topic))
                        .with_partition_indexes(vec![partition]),
                ]),
        ]);
        let response: WriteTxnMarkersResponse = leader
            .call_negotiated(WRITE_TXN_MARKERS, &request)
            .await
            .map_err(|e| self.err(e))?;
        for p in response
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| &t.partitions)
        {
            if p.error_code != 0 {
                return Err(self.err(kafka(
                    ApiKey::WriteTxnMarkers,
                    &format!("{topic}-{partition}"),
                    p.error_code,
                    None,
                )));
            }
        }
        Ok(())
    }

    /// InitProducerId for `transactional_id`, asked of its transaction `coordinator`: the
    /// producer id and epoch. A previous producer of the id is fenced and its open transaction
    /// aborted; the coordinator answers CONCURRENT_TRANSACTIONS until that is done, which is
    /// retried here.
    pub async fn init_transactional_producer(
        &self,
        coordinator: &mut Connection,
        transactional_id: &str,
        transaction_timeout_ms: i32,
    ) -> Result<TxnProducer, WireError> {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(transactional_id))))
            .with_transaction_timeout_ms(transaction_timeout_ms)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        let response: InitProducerIdResponse = self
            .until_not_busy(
                coordinator,
                INIT_PRODUCER_ID,
                &request,
                ApiKey::InitProducerId,
                transactional_id,
                |r: &InitProducerIdResponse| r.error_code,
            )
            .await?;
        Ok(TxnProducer {
            id: transactional_id.to_owned(),
            producer_id: response.producer_id.0,
            epoch: response.producer_epoch,
        })
    }

    /// AddPartitionsToTxn: `topic`-`partition` joins `txn`'s transaction (before its first
    /// transactional Produce there).
    pub async fn add_partition_to_txn(
        &self,
        coordinator: &mut Connection,
        txn: &TxnProducer,
        topic: &str,
        partition: i32,
    ) -> Result<(), WireError> {
        use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes(&txn.id)))
            .with_v3_and_below_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id))
            .with_v3_and_below_producer_epoch(txn.epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![partition]),
            ]);
        let what = format!("{}: {topic}-{partition}", txn.id);
        self.until_not_busy(
            coordinator,
            ADD_PARTITIONS_TO_TXN,
            &request,
            ApiKey::AddPartitionsToTxn,
            &what,
            |r: &AddPartitionsToTxnResponse| {
                r.results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| &t.results_by_partition)
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(r.error_code)
            },
        )
        .await
        .map(drop)
    }

    /// AddOffsetsToTxn: `group`'s offsets partition joins `txn`'s transaction (before its
    /// TxnOffsetCommit).
    pub async fn add_offsets_to_txn(
        &self,
        coordinator: &mut Connection,
        txn: &TxnProducer,
        group: &str,
    ) -> Result<(), WireError> {
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&txn.id)))
            .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id))
            .with_producer_epoch(txn.epoch)
            .with_group_id(GroupId(str_bytes(group)));
        let what = format!("{}: group {group}", txn.id);
        self.until_not_busy(
            coordinator,
            ADD_OFFSETS_TO_TXN,
            &request,
            ApiKey::AddOffsetsToTxn,
            &what,
            |r: &AddOffsetsToTxnResponse| r.error_code,
        )
        .await
        .map(drop)
    }

    /// TxnOffsetCommit of `offsets` for `group` in `txn`'s transaction, sent to the group's
    /// coordinator (a member-less group: generation -1, no member id). Visible once the
    /// transaction commits; dropped if it aborts.
    pub async fn txn_offset_commit(
        &self,
        group_coordinator: &mut Connection,
        txn: &TxnProducer,
        group: &str,
        offsets: &Offsets,
    ) -> Result<(), WireError> {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), (offset, metadata)) in offsets {
            topics.entry(topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(str_bytes(metadata))),
            );
        }
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&txn.id)))
            .with_group_id(GroupId(str_bytes(group)))
            .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id))
            .with_producer_epoch(txn.epoch)
            .with_generation_id(-1)
            .with_member_id(StrBytes::default())
            .with_group_instance_id(None)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let what = format!("{}: group {group}", txn.id);
        self.until_not_busy(
            group_coordinator,
            TXN_OFFSET_COMMIT,
            &request,
            ApiKey::TxnOffsetCommit,
            &what,
            |r: &TxnOffsetCommitResponse| {
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(0)
            },
        )
        .await
        .map(drop)
    }

    /// EndTxn: commits (or aborts) `txn`'s open transaction. Answered once the outcome is
    /// durable at the coordinator; the markers on the partitions follow.
    pub async fn end_txn(
        &self,
        coordinator: &mut Connection,
        txn: &TxnProducer,
        commit: bool,
    ) -> Result<(), WireError> {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(&txn.id)))
            .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id))
            .with_producer_epoch(txn.epoch)
            .with_committed(commit);
        self.until_not_busy(
            coordinator,
            END_TXN,
            &request,
            ApiKey::EndTxn,
            &txn.id,
            |r: &EndTxnResponse| r.error_code,
        )
        .await
        .map(drop)
    }

    /// Produces one transactional batch (see [`encode_transactional_batch`]) of `txn` to
    /// `partition`, which must have joined the transaction; the base offset it got.
    pub async fn produce_transactional(
        &self,
        leader: &mut Connection,
        txn: &TxnProducer,
        topic: &str,
        partition: i32,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<i64, WireError> {
        let id = Some(TransactionalId(str_bytes(&txn.id)));
        let p = self
            .produce_one(leader, topic, partition, batch, id, timeout)
            .await?;
        if p.error_code != 0 {
            return Err(self.err(kafka(
                ApiKey::Produce,
                &format!("{topic}-{partition}"),
                p.error_code,
                p.error_message.as_ref(),
            )));
        }
        Ok(p.base_offset)
    }

    /// `group`'s committed offset of `topic`-`partition` with `require_stable` (KIP-447): a
    /// commit still inside an open transaction is waited out (UNSTABLE_OFFSET_COMMIT, retried
    /// here), so what is returned is only ever a committed transaction's offset.
    pub async fn committed_stable(
        &self,
        coordinator: &mut Connection,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, WireError> {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_require_stable(true)
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name(topic))
                    .with_partition_indexes(vec![partition]),
            ]));
        let what = format!("{group}/{topic}-{partition}");
        let found = |r: &OffsetFetchResponse| {
            r.topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == partition)
                .map(|p| (p.error_code, p.committed_offset))
        };
        let response = self
            .until_not_busy(
                coordinator,
                OFFSET_FETCH_STABLE,
                &request,
                ApiKey::OffsetFetch,
                &what,
                |r: &OffsetFetchResponse| match found(r) {
                    Some((c, _)) if c != 0 => c,
                    _ => r.error_code,
                },
            )
            .await?;
        Ok(found(&response)
            .map(|(_, offset)| offset)
            .filter(|offset| *offset >= 0))
    }

    /// Sends `request` until the error `code` picks out of its answer is 0 and returns that
    /// answer, retrying while the coordinator is busy with a previous transaction or loading
    /// (see [`Cluster::busy_or_err`]) for up to `TXN_BUSY_RETRY`.
    async fn until_not_busy<R: Request>(
        &self,
        conn: &mut Connection,
        versions: std::ops::RangeInclusive<i16>,
        request: &R,
        api: ApiKey,
        what: &str,
        code: impl Fn(&R::Response) -> i16,
    ) -> Result<R::Response, WireError> {
        let deadline = tokio::time::Instant::now() + TXN_BUSY_RETRY;
        loop {
            let response = conn
                .call_negotiated(versions.clone(), request)
                .await
                .map_err(|e| self.err(e))?;
            match code(&response) {
                0 => return Ok(response),
                c => self.busy_or_err(c, deadline, api, what).await?,
            }
        }
    }

    /// Waits a little when `code` says the coordinator is busy with a previous transaction (or
    /// loading) and `deadline` is not reached; the error otherwise.
    async fn busy_or_err(
        &self,
        code: i16,
        deadline: tokio::time::Instant,
        api: ApiKey,
        what: &str,
    ) -> Result<(), WireError> {
        let busy = matches!(
            code,
            code::CONCURRENT_TRANSACTIONS
                | code::COORDINATOR_LOAD_IN_PROGRESS
                | code::UNSTABLE_OFFSET_COMMIT
        );
        if busy && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Ok(());
        }
        Err(self.err(kafka(api, what, code, None)))
    }

    /// The non-empty values of config `key` of each of `topics` (any config source); topics
    /// without it, or gone meanwhile, are left out.
    pub async fn topic_config_values(
        &self,
        topics: &[String],
        key: &str,
    ) -> Result<BTreeMap<String, String>, WireError> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut conn = self.connect().await?;
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(TOPIC_RESOURCE)
                        .with_resource_name(str_bytes(t))
                        .with_configuration_keys(Some(vec![str_bytes(key)]))
                })
                .collect(),
        );
        let version = conn
            .negotiate::<DescribeConfigsRequest>(DESCRIBE_CONFIGS)
            .await
            .map_err(|e| self.err(e))?;
        let response = conn
            .call_checked(version, &request, &[code::UNKNOWN_TOPIC_OR_PARTITION])
            .await
            .map_err(|e| self.err(e))?;
        Ok(response
            .results
            .iter()
            .filter(|r| r.error_code == 0)
            .filter_map(|r| {
                let value = r
                    .configs
                    .iter()
                    .find(|c| c.name.as_str() == key)?
                    .value
                    .as_ref()?
                    .to_string();
                (!value.is_empty()).then(|| (r.resource_name.to_string(), value))
            })
            .collect())
    }

    /// Removes config `key` from `topic` (IncrementalAlterConfigs DELETE).
    pub async fn delete_topic_config(&self, topic: &str, key: &str) -> Result<(), WireError> {
        let mut conn = self.connect().await?;
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(topic))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(str_bytes(key))
                        .with_config_operation(1)
                        .with_value(None),
                ]),
        ]);
        let version = conn
            .negotiate::<IncrementalAlterConfigsRequest>(INCREMENTAL_ALTER_CONFIGS)
            .await
            .map_err(|e| self.err(e))?;
        conn.call_checked(version, &request, &[])
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every ACL binding on a topic resource, of any pattern type, principal, host, operation
    /// and permission (DescribeAcls with MM2's `ANY_TOPIC_ACL` filter). A cluster without an
    /// authorizer answers SECURITY_DISABLED ([`code::SECURITY_DISABLED`] in the error).
    pub async fn topic_acls(&self) -> Result<Vec<TopicAcl>, WireError> {
        let mut conn = self.connect().await?;
        // The nullable filters must be null: kafka-protocol's defaults are empty strings,
        // which would match nothing.
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(acl::TOPIC)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(acl::PATTERN_ANY)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(acl::OPERATION_ANY)
            .with_permission_type(acl::PERMISSION_ANY);
        let version = conn
            .negotiate::<DescribeAclsRequest>(DESCRIBE_ACLS)
            .await
            .map_err(|e| self.err(e))?;
        let response = conn
            .call_checked(version, &request, &[])
            .await
            .map_err(|e| self.err(e))?;
        Ok(response
            .resources
            .iter()
            .filter(|r| r.resource_type == acl::TOPIC)
            .flat_map(|r| {
                r.acls.iter().map(|a| TopicAcl {
                    topic: r.resource_name.to_string(),
                    pattern_type: r.pattern_type,
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: a.operation,
                    permission: a.permission_type,
                })
            })
            .collect())
    }

    /// Creates `bindings` on topic resources (CreateAcls; an existing binding is a no-op).
    /// One result per binding, in order: the broker's error code when it refused that one.
    pub async fn create_topic_acls(
        &self,
        bindings: &[TopicAcl],
    ) -> Result<Vec<Result<(), WireError>>, WireError> {
        let mut conn = self.connect().await?;
        let request = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(acl::TOPIC)
                        .with_resource_name(str_bytes(&b.topic))
                        .with_resource_pattern_type(b.pattern_type)
                        .with_principal(str_bytes(&b.principal))
                        .with_host(str_bytes(&b.host))
                        .with_operation(b.operation)
                        .with_permission_type(b.permission)
                })
                .collect(),
        );
        let version = conn
            .negotiate::<CreateAclsRequest>(CREATE_ACLS)
            .await
            .map_err(|e| self.err(e))?;
        let response: CreateAclsResponse = conn
            .call(version, &request)
            .await
            .map_err(|e| self.err(e))?;
        if response.results.len() != bindings.len() {
            return Err(self.err(kafka(
                ApiKey::CreateAcls,
                "acls",
                -1,
                Some(&str_bytes(&format!(
                    "{} results for {} bindings",
                    response.results.len(),
                    bindings.len()
                ))),
            )));
        }
        Ok(bindings
            .iter()
            .zip(&response.results)
            .map(|(b, r)| {
                if r.error_code == 0 {
                    Ok(())
                } else {
                    Err(self.err(kafka(
                        ApiKey::CreateAcls,
                        &b.topic,
                        r.error_code,
                        r.error_message.as_ref(),
                    )))
                }
            })
            .collect())
    }
}

/// Kafka's ACL enum values (`ResourceType`, `PatternType`, `AclOperation`,
/// `AclPermissionType` ids) the mirror uses.
pub mod acl {
    pub const TOPIC: i8 = 2;
    pub const PATTERN_ANY: i8 = 1;
    pub const PATTERN_LITERAL: i8 = 3;
    pub const PATTERN_PREFIXED: i8 = 4;
    pub const OPERATION_ANY: i8 = 1;
    pub const OPERATION_ALL: i8 = 2;
    pub const OPERATION_READ: i8 = 3;
    pub const OPERATION_WRITE: i8 = 4;
    pub const OPERATION_DESCRIBE: i8 = 8;
    pub const PERMISSION_ANY: i8 = 1;
    pub const PERMISSION_DENY: i8 = 2;
    pub const PERMISSION_ALLOW: i8 = 3;
}

/// One ACL binding on a topic resource: the resource (name and pattern type) and the entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicAcl {
    pub topic: String,
    /// [`acl::PATTERN_LITERAL`], [`acl::PATTERN_PREFIXED`], ...
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// What one raw Fetch returned: the high watermark and the record bytes as sent.
#[derive(Debug, Default)]
pub struct RawFetched {
    pub high_watermark: i64,
    pub records: Bytes,
}

/// A transaction open on a partition (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransaction {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub start_offset: i64,
}

/// A transactional producer: its transactional id and the producer id and epoch
/// InitProducerId gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProducer {
    pub id: String,
    pub producer_id: i64,
    pub epoch: i16,
}

/// The target's answer to a link append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAppend {
    /// Appended at the first batch's base offset.
    Appended { base_offset: i64 },
    /// The first batch starts below the target's log end: resume the source from `log_end`.
    OutOfRange { log_end: i64 },
    /// The topic is no longer (or never was) a mirror topic: it was failed over.
    NotMirror { message: String },
}

/// What a v2 record batch header says (no record is decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Bytes of the whole batch.
    pub size: usize,
    pub control: bool,
    pub records: i32,
    pub max_timestamp: i64,
}

/// The complete v2 batches at the start of a Fetch's record bytes: their headers, and how many
/// leading bytes they span (a trailing partial batch, sent when a batch crosses the size limit,
/// is cut). Another magic is an error: only v2 batches are link-appended.
pub fn whole_batches(bytes: &[u8]) -> Result<(Vec<BatchHeader>, usize), String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= BATCH_HEADER_BYTES {
        let b = &bytes[at..];
        let base_offset = (&b[0..8]).get_i64();
        let length = (&b[8..12]).get_i32();
        let size = usize::try_from(length)
            .ok()
            .filter(|l| *l + 12 >= BATCH_HEADER_BYTES)
            .ok_or_else(|| format!("batch at offset {base_offset}: length {length}"))?
            + 12;
        if size > b.len() {
            break;
        }
        let magic = b[16];
        if magic != 2 {
            return Err(format!(
                "batch at offset {base_offset}: record batch v{magic} cannot be linked (v2 only)"
            ));
        }
        let attributes = (&b[21..23]).get_i16();
        let last_offset = base_offset + i64::from((&b[23..27]).get_i32());
        out.push(BatchHeader {
            base_offset,
            last_offset,
            size,
            control: attributes & (1 << 5) != 0,
            records: (&b[57..61]).get_i32(),
            max_timestamp: (&b[35..43]).get_i64(),
        });
        at += size;
    }
    Ok((out, at))
}

/// What one Fetch returned: the partition's high watermark and its complete batches.
#[derive(Debug, Default)]
pub struct Fetched {
    pub high_watermark: i64,
    pub batches: Vec<FetchedBatch>,
}

/// One record batch: its offset range, and its records (none for a control batch).
#[derive(Debug)]
pub struct FetchedBatch {
    pub last_offset: i64,
    pub control: bool,
    pub records: Vec<Record>,
}

/// Splits a Fetch's record bytes into complete batches (a partial batch at the end, as brokers
/// send when a batch crosses the size limit, is left for the next Fetch) and decodes each;
/// records before `from` (the first batch may start earlier) are dropped.
pub fn split_batches(mut bytes: Bytes, from: i64) -> Result<Vec<FetchedBatch>, String> {
    let mut out = Vec::new();
    while bytes.len() >= 61 {
        let base_offset = (&bytes[0..8]).get_i64();
        let length = (&bytes[8..12]).get_i32();
        let total = usize::try_from(length).map_err(|_| format!("batch length {length}"))? + 12;
        if total > bytes.len() {
            break;
        }
        let mut batch = bytes.split_to(total);
        let magic = batch[16];
        if magic != 2 {
            return Err(format!("record batch v{magic} is not supported"));
        }
        let attributes = (&batch[21..23]).get_i16();
        let last_offset_delta = (&batch[23..27]).get_i32();
        let last_offset = base_offset + i64::from(last_offset_delta);
        let control = attributes & (1 << 5) != 0;
        let records = if control || last_offset < from {
            Vec::new()
        } else {
            RecordBatchDecoder::decode(&mut batch)
                .map_err(|e| format!("batch at offset {base_offset}: {e}"))?
                .records
                .into_iter()
                .filter(|r| r.offset >= from)
                .collect()
        };
        out.push(FetchedBatch {
            last_offset,
            control,
            records,
        });
    }
    Ok(out)
}

/// Encodes `records` as one idempotent batch of producer `(id, epoch)` starting at sequence
/// `sequence`, CreateTime timestamps, keys, values and headers as they are.
pub fn encode_batch(
    records: &[Record],
    producer: (i64, i16),
    sequence: i32,
) -> Result<Bytes, String> {
    encode_records(records, producer, sequence, false)
}

/// [`encode_batch`] with the batch's transactional flag set: a batch of producer `(id, epoch)`'s
/// open transaction, invisible to read_committed consumers until the commit marker.
pub fn encode_transactional_batch(
    records: &[Record],
    producer: (i64, i16),
    sequence: i32,
) -> Result<Bytes, String> {
    encode_records(records, producer, sequence, true)
}

fn encode_records(
    records: &[Record],
    producer: (i64, i16),
    sequence: i32,
    transactional: bool,
) -> Result<Bytes, String> {
    let owned: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer.0,
                producer_epoch: producer.1,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: if producer.0 < 0 {
                    -1
                } else {
                    sequence.wrapping_add(i)
                },
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &owned,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// A record with `key` and `value`, timestamped `timestamp`, for MM2's internal topics.
pub fn plain_record(key: Bytes, value: Bytes, timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key),
        value: Some(value),
        headers: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_batches_carry_the_flag_and_the_producer() {
        let records = vec![plain_record(
            Bytes::from_static(b"k"),
            Bytes::from_static(b"v"),
            5,
        )];
        let attributes = |b: &Bytes| (&b[21..23]).get_i16();
        let plain = encode_batch(&records, (7, 3), 0).unwrap();
        let txn = encode_transactional_batch(&records, (7, 3), 4).unwrap();
        assert_eq!(attributes(&plain) & 0x10, 0);
        assert_eq!(attributes(&txn) & 0x10, 0x10, "transactional bit");
        let decoded = RecordBatchDecoder::decode(&mut txn.clone())
            .unwrap()
            .records;
        assert!(decoded[0].transactional);
        assert_eq!((decoded[0].producer_id, decoded[0].producer_epoch), (7, 3));
        assert_eq!(decoded[0].sequence, 4);
    }

    #[test]
    fn batches_round_trip_and_partial_tails_wait() {
        let mut records = Vec::new();
        for i in 0..5 {
            let mut r = plain_record(
                Bytes::from(format!("k{i}")),
                Bytes::from(format!("v{i}")),
                1_000 + i,
            );
            r.headers.insert(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"x")),
            );
            records.push(r);
        }
        let one = encode_batch(&records, (7, 0), 10).unwrap();
        let mut two = BytesMut::new();
        two.extend_from_slice(&one);
        // The second batch at offsets 5..9 (base offset patched as a broker would).
        let mut second = BytesMut::from(&one[..]);
        second[0..8].copy_from_slice(&5i64.to_be_bytes());
        two.extend_from_slice(&second);
        two.extend_from_slice(&one[..30]); // a partial batch
        let batches = split_batches(two.freeze(), 3).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].last_offset, 4);
        assert_eq!(
            batches[0]
                .records
                .iter()
                .map(|r| r.offset)
                .collect::<Vec<_>>(),
            vec![3, 4],
            "records before the fetch offset are dropped"
        );
        assert_eq!(batches[1].records.len(), 5);
        let r = &batches[1].records[2];
        assert_eq!(r.offset, 7);
        assert_eq!(r.key.as_deref(), Some(&b"k2"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(r.timestamp, 1_002);
        assert_eq!(r.producer_id, 7);
        assert_eq!(r.sequence, 12);
        assert_eq!(
            r.headers.get(&StrBytes::from_static_str("h")),
            Some(&Some(Bytes::from_static(b"x")))
        );
    }
}
