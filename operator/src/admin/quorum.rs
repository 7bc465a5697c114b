//! What the cluster is: the APIs it serves (ApiVersions) and its active controller, the KRaft
//! metadata quorum's leader (DescribeQuorum, at the highest version both sides speak).

use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
};
use strait_client::{ClientError, KafkaError, SupportedApis};

use super::{AdminError, UNSUPPORTED_VERSION, WireAdmin, topic_name};

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

/// The quorum leader a DescribeQuorum response names for `__cluster_metadata`-0: `None` for
/// UNSUPPORTED_VERSION, a missing partition or no leader (`leader_id` -1), an error for any
/// other error code.
pub fn quorum_leader(resp: &DescribeQuorumResponse) -> Result<Option<i32>, AdminError> {
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
    Ok((partition.leader_id.0 >= 0).then_some(partition.leader_id.0))
}

pub(super) async fn active_controller(admin: &WireAdmin) -> Result<Option<i32>, AdminError> {
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
    quorum_leader(&connection.call(version, &request).await?)
}

pub(super) async fn supported_apis(admin: &WireAdmin) -> Result<SupportedApis, AdminError> {
    let mut connection = admin.connection().await?;
    Ok(connection.api_versions().await?.clone())
}
