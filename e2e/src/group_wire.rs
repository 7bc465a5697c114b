//! Raw classic group protocol over a `WireClient`: JoinGroup (with the member-id handshake),
//! SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch, for tests that need exact
//! error codes and stale or forged member state that real clients never send.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::error::{HarnessError, Result};
use crate::wire::WireClient;

/// Kafka's MEMBER_ID_REQUIRED: a JoinGroup v4+ without a member id gets one and must rejoin.
pub const MEMBER_ID_REQUIRED: i16 = 79;

/// Versions this client speaks, each lowered to what the broker advertises. JoinGroup v5 is
/// what librdkafka 2.x sends; the others are their non-flexible versions of the same era.
const PREFERRED: [(ApiKey, i16); 7] = [
    (ApiKey::FindCoordinator, 2),
    (ApiKey::JoinGroup, 5),
    (ApiKey::SyncGroup, 3),
    (ApiKey::Heartbeat, 3),
    (ApiKey::LeaveGroup, 3),
    (ApiKey::OffsetCommit, 7),
    (ApiKey::OffsetFetch, 7),
];

/// OffsetFetch answers per partition: `(error_code, committed offset, metadata)`.
pub type FetchedOffsets = HashMap<i32, (i16, i64, Option<String>)>;

/// What a member knows after a completed JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub member_id: String,
    pub generation_id: i32,
    pub leader: String,
    pub protocol_name: Option<String>,
    /// Member ids of the group (only the leader receives them).
    pub members: Vec<String>,
}

/// A raw connection speaking the classic group protocol to one broker.
#[derive(Debug)]
pub struct GroupWire {
    client: WireClient,
    versions: HashMap<i16, i16>,
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Encodes a consumer-protocol structure with its leading i16 version, as clients embed it in
/// JoinGroup metadata and SyncGroup assignments.
fn versioned<T: Encodable>(value: &T, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    value
        .encode(&mut buf, version)
        .map_err(|e| HarnessError::Protocol(format!("encode consumer protocol: {e:#}")))?;
    Ok(buf.freeze())
}

/// JoinGroup metadata of a consumer subscribed to `topics` (ConsumerProtocolSubscription v0).
pub fn subscription(topics: &[&str]) -> Result<Bytes> {
    let value = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t)).collect());
    versioned(&value, 0)
}

/// A SyncGroup assignment of `partitions` of `topic` (ConsumerProtocolAssignment v0).
pub fn assignment(topic: &str, partitions: &[i32]) -> Result<Bytes> {
    let value = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(TopicName(str_bytes(topic)))
            .with_partitions(partitions.to_vec()),
    ]);
    versioned(&value, 0)
}

impl GroupWire {
    /// Connects and negotiates the versions of the group APIs with ApiVersions.
    pub fn connect(addr: SocketAddr) -> Result<GroupWire> {
        let mut client = WireClient::connect(addr)?;
        let advertised = client.api_versions()?;
        let mut versions = HashMap::new();
        for (key, preferred) in PREFERRED {
            let (min, max) = advertised.get(&(key as i16)).copied().ok_or_else(|| {
                HarnessError::Unexpected(format!("broker does not advertise {key:?}"))
            })?;
            let version = preferred.min(max);
            if version < min {
                return Err(HarnessError::Unexpected(format!(
                    "{key:?}: broker supports {min}..{max}, client needs <= {preferred}"
                )));
            }
            versions.insert(key as i16, version);
        }
        Ok(GroupWire { client, versions })
    }

    /// The version negotiated for `key`.
    pub fn version(&self, key: ApiKey) -> i16 {
        self.versions.get(&(key as i16)).copied().unwrap_or(0)
    }

    /// FindCoordinator for a group: `(error_code, node_id, port)`.
    pub fn find_coordinator(&mut self, group: &str) -> Result<(i16, i32, i32)> {
        let request = FindCoordinatorRequest::default().with_key(str_bytes(group));
        let version = self.version(ApiKey::FindCoordinator);
        let response: FindCoordinatorResponse =
            self.client
                .call(ApiKey::FindCoordinator, version, &request)?;
        Ok((response.error_code, response.node_id.0, response.port))
    }

    /// One JoinGroup request as given; returns the raw response.
    pub fn join_once(
        &mut self,
        group: &str,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(&str, Bytes)],
        session_timeout_ms: i32,
    ) -> Result<JoinGroupResponse> {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_session_timeout_ms(session_timeout_ms)
            .with_rebalance_timeout_ms(session_timeout_ms)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes(protocol_type))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(str_bytes(name))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        let version = self.version(ApiKey::JoinGroup);
        self.client.call(ApiKey::JoinGroup, version, &request)
    }

    /// JoinGroup with the member-id handshake: a MEMBER_ID_REQUIRED answer is followed by one
    /// rejoin with the assigned id. Returns the final error code and, on success, the member's
    /// view of the generation.
    pub fn join(
        &mut self,
        group: &str,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(&str, Bytes)],
        session_timeout_ms: i32,
    ) -> Result<(i16, Option<Joined>)> {
        let mut response = self.join_once(
            group,
            member_id,
            protocol_type,
            protocols,
            session_timeout_ms,
        )?;
        if response.error_code == MEMBER_ID_REQUIRED {
            let assigned = response.member_id.to_string();
            response = self.join_once(
                group,
                &assigned,
                protocol_type,
                protocols,
                session_timeout_ms,
            )?;
        }
        if response.error_code != 0 {
            return Ok((response.error_code, None));
        }
        Ok((
            0,
            Some(Joined {
                member_id: response.member_id.to_string(),
                generation_id: response.generation_id,
                leader: response.leader.to_string(),
                protocol_name: response.protocol_name.as_ref().map(|p| p.to_string()),
                members: response
                    .members
                    .iter()
                    .map(|m| m.member_id.to_string())
                    .collect(),
            }),
        ))
    }

    /// Sends a JoinGroup without waiting for its answer (a rebalance holds it until every member
    /// rejoined); `finish_join` reads it later. Returns the correlation id.
    pub fn start_join(
        &mut self,
        group: &str,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(&str, Bytes)],
        session_timeout_ms: i32,
    ) -> Result<i32> {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_session_timeout_ms(session_timeout_ms)
            .with_rebalance_timeout_ms(session_timeout_ms)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes(protocol_type))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(str_bytes(name))
                            .with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        let version = self.version(ApiKey::JoinGroup);
        self.client
            .send_request(ApiKey::JoinGroup as i16, version, &request, version)
    }

    /// Reads the answer of a `start_join`.
    pub fn finish_join(&mut self, correlation_id: i32) -> Result<JoinGroupResponse> {
        use kafka_protocol::protocol::HeaderVersion;
        let version = self.version(ApiKey::JoinGroup);
        self.client.read_response(
            correlation_id,
            JoinGroupResponse::header_version(version),
            version,
        )
    }

    /// SyncGroup; the leader passes every member's assignment, followers none. Returns
    /// `(error_code, assignment bytes)`.
    pub fn sync(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        assignments: &[(&str, Bytes)],
    ) -> Result<(i16, Bytes)> {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(member, bytes)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(str_bytes(member))
                            .with_assignment(bytes.clone())
                    })
                    .collect(),
            );
        let version = self.version(ApiKey::SyncGroup);
        let response: SyncGroupResponse = self.client.call(ApiKey::SyncGroup, version, &request)?;
        Ok((response.error_code, response.assignment))
    }

    /// Heartbeat; returns its error code.
    pub fn heartbeat(&mut self, group: &str, generation_id: i32, member_id: &str) -> Result<i16> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id));
        let version = self.version(ApiKey::Heartbeat);
        let response: HeartbeatResponse = self.client.call(ApiKey::Heartbeat, version, &request)?;
        Ok(response.error_code)
    }

    /// LeaveGroup of one member; returns `(top-level error, member error)` (v3+ answers per
    /// member; older versions only at the top).
    pub fn leave(&mut self, group: &str, member_id: &str) -> Result<(i16, Option<i16>)> {
        let version = self.version(ApiKey::LeaveGroup);
        let mut request = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(group)));
        if version >= 3 {
            request = request.with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(member_id)),
            ]);
        } else {
            request = request.with_member_id(str_bytes(member_id));
        }
        let response: LeaveGroupResponse =
            self.client.call(ApiKey::LeaveGroup, version, &request)?;
        Ok((
            response.error_code,
            response.members.first().map(|m| m.error_code),
        ))
    }

    /// OffsetCommit of `(topic, partition, offset, metadata)` entries; returns the error code of
    /// every entry keyed by `(topic, partition)`.
    pub fn commit(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &[(&str, i32, i64, &str)],
    ) -> Result<HashMap<(String, i32), i16>> {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset, metadata) in offsets {
            let entry = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_metadata(Some(str_bytes(metadata)));
            match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(str_bytes(member_id))
            .with_topics(topics);
        let version = self.version(ApiKey::OffsetCommit);
        let response: OffsetCommitResponse =
            self.client.call(ApiKey::OffsetCommit, version, &request)?;
        let mut out = HashMap::new();
        for topic in &response.topics {
            for partition in &topic.partitions {
                out.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    partition.error_code,
                );
            }
        }
        Ok(out)
    }

    /// OffsetFetch of some partitions of one topic: `(top-level error, partition ->
    /// (error, offset, metadata))`.
    pub fn fetch_offsets(
        &mut self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<(i16, FetchedOffsets)> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partition_indexes(partitions.to_vec()),
            ]));
        let version = self.version(ApiKey::OffsetFetch);
        let response: OffsetFetchResponse =
            self.client.call(ApiKey::OffsetFetch, version, &request)?;
        let mut out = HashMap::new();
        for t in response
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
        {
            for p in &t.partitions {
                out.insert(
                    p.partition_index,
                    (
                        p.error_code,
                        p.committed_offset,
                        p.metadata.as_ref().map(|m| m.to_string()),
                    ),
                );
            }
        }
        Ok((response.error_code, out))
    }
}
