//! What the cluster is: the APIs it serves (ApiVersions) and its KRaft metadata quorum
//! (DescribeQuorum, at the highest version both sides speak: its leader, and from v2 its voters
//! and observers with their directory ids), and the KIP-853 voter changes (AddRaftVoter,
//! RemoveRaftVoter).

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, ApiVersionsResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use strait_client::{ClientError, KafkaError, SupportedApis};
use uuid::Uuid;

use super::{AdminError, UNSUPPORTED_VERSION, WireAdmin, sb, topic_name};

/// The KRaft metadata log's topic; DescribeQuorum describes its partition 0.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// DescribeQuorum versions this client speaks (v2 only adds the voters' endpoints).
const DESCRIBE_QUORUM_VERSIONS: std::ops::RangeInclusive<i16> = 0..=2;

/// The DescribeQuorum version to use with a broker that answered `versions`: the highest both
/// speak (this client: 0 to 2), `None` when the broker does not list the API or shares no
/// version.
pub fn describe_quorum_version(versions: &ApiVersionsResponse) -> Option<i16> {
    SupportedApis::from_response(versions)
        .highest_common(ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSIONS)
}

/// Name of the controller listener that voter endpoints are given on.
const CONTROLLER_LISTENER: &str = "CONTROLLER";
/// How long the leader may wait for a new voter to catch up (AddRaftVoter's `timeout_ms`),
/// within the admin client's 30 s request timeout.
const ADD_VOTER_TIMEOUT_MS: i32 = 20_000;

/// One member of the metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub id: i32,
    /// The node's metadata log directory id; nil when unknown (a voter seeded from
    /// `controller.quorum.voters` before it reported its own).
    pub directory_id: Uuid,
    pub log_end_offset: i64,
}

/// The metadata quorum: `__cluster_metadata`-0 of a DescribeQuorum (v2) response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quorum {
    pub leader: Option<i32>,
    pub voters: Vec<Replica>,
    pub observers: Vec<Replica>,
}

impl Quorum {
    /// The quorum a DescribeQuorum partition describes (`leader_id` -1: no leader).
    pub fn from_partition(partition: &PartitionData) -> Quorum {
        let replicas = |states: &[ReplicaState]| {
            states
                .iter()
                .map(|s| Replica {
                    id: s.replica_id.0,
                    directory_id: s.replica_directory_id,
                    log_end_offset: s.log_end_offset,
                })
                .collect()
        };
        Quorum {
            leader: (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
            voters: replicas(&partition.current_voters),
            observers: replicas(&partition.observers),
        }
    }

    /// The voter `id`, if it is one.
    pub fn voter(&self, id: i32) -> Option<&Replica> {
        self.voters.iter().find(|v| v.id == id)
    }
}

/// `__cluster_metadata`-0 of a DescribeQuorum response: `None` for UNSUPPORTED_VERSION or a
/// missing partition, an error for any other error code.
fn metadata_partition(resp: &DescribeQuorumResponse) -> Result<Option<&PartitionData>, AdminError> {
    let check = |code, message: Option<&str>| {
        KafkaError::check(ApiKey::DescribeQuorum, Some(METADATA_TOPIC), code, message)
            .map_err(|e| AdminError::from(ClientError::from(e)))
    };
    if resp.error_code == UNSUPPORTED_VERSION {
        return Ok(None);
    }
    check(resp.error_code, resp.error_message.as_deref())?;
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
    check(partition.error_code, partition.error_message.as_deref())?;
    Ok(Some(partition))
}

/// The quorum leader a DescribeQuorum response names for `__cluster_metadata`-0: `None` for
/// UNSUPPORTED_VERSION, a missing partition or no leader (`leader_id` -1), an error for any
/// other error code.
pub fn quorum_leader(resp: &DescribeQuorumResponse) -> Result<Option<i32>, AdminError> {
    Ok(metadata_partition(resp)?.and_then(|p| (p.leader_id.0 >= 0).then_some(p.leader_id.0)))
}

/// DescribeQuorum for `__cluster_metadata`-0 at the highest version both speak, with that
/// version; `None` when the broker does not serve the API.
async fn describe(admin: &WireAdmin) -> Result<Option<(i16, DescribeQuorumResponse)>, AdminError> {
    let mut connection = admin.connection().await?;
    // Negotiated first: a broker without the API may drop the connection on an unknown key.
    let version = match connection
        .negotiate::<DescribeQuorumRequest>(DESCRIBE_QUORUM_VERSIONS)
        .await
    {
        Ok(version) => version,
        Err(ClientError::UnsupportedVersion { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(topic_name(METADATA_TOPIC))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    Ok(Some((version, connection.call(version, &request).await?)))
}

pub(super) async fn active_controller(admin: &WireAdmin) -> Result<Option<i32>, AdminError> {
    match describe(admin).await? {
        Some((_, response)) => quorum_leader(&response),
        None => Ok(None),
    }
}

pub(super) async fn describe_quorum(admin: &WireAdmin) -> Result<Option<Quorum>, AdminError> {
    // Before v2 there are no directory ids, and voter changes need them.
    match describe(admin).await? {
        Some((version, response)) if version >= 2 => {
            Ok(metadata_partition(&response)?.map(Quorum::from_partition))
        }
        _ => Ok(None),
    }
}

pub(super) async fn add_raft_voter(
    admin: &WireAdmin,
    id: i32,
    directory_id: Uuid,
    (host, port): (&str, u16),
) -> Result<(), AdminError> {
    let mut connection = admin.connection().await?;
    let version = connection.negotiate::<AddRaftVoterRequest>(0..=0).await?;
    use kafka_protocol::messages::add_raft_voter_request::Listener;
    let request = AddRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_timeout_ms(ADD_VOTER_TIMEOUT_MS)
        .with_voter_id(id)
        .with_voter_directory_id(directory_id)
        .with_listeners(vec![
            Listener::default()
                .with_name(sb(CONTROLLER_LISTENER))
                .with_host(sb(host))
                .with_port(port),
        ]);
    let response: AddRaftVoterResponse = connection.call(version, &request).await?;
    check_voter_change(
        ApiKey::AddRaftVoter,
        id,
        response.error_code,
        response.error_message.as_deref(),
    )
}

pub(super) async fn remove_raft_voter(
    admin: &WireAdmin,
    id: i32,
    directory_id: Uuid,
) -> Result<(), AdminError> {
    let mut connection = admin.connection().await?;
    let version = connection
        .negotiate::<RemoveRaftVoterRequest>(0..=0)
        .await?;
    let request = RemoveRaftVoterRequest::default()
        .with_cluster_id(None)
        .with_voter_id(id)
        .with_voter_directory_id(directory_id);
    let response: RemoveRaftVoterResponse = connection.call(version, &request).await?;
    check_voter_change(
        ApiKey::RemoveRaftVoter,
        id,
        response.error_code,
        response.error_message.as_deref(),
    )
}

fn check_voter_change(
    api: ApiKey,
    id: i32,
    code: i16,
    message: Option<&str>,
) -> Result<(), AdminError> {
    KafkaError::check(api, Some(&format!("voter {id}")), code, message)
        .map_err(|e| AdminError::from(ClientError::from(e)))
}

pub(super) async fn supported_apis(admin: &WireAdmin) -> Result<SupportedApis, AdminError> {
    let mut connection = admin.connection().await?;
    Ok(connection.api_versions().await?.clone())
}
