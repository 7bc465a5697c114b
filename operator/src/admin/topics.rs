//! Topics: describe (Metadata and DescribeConfigs), create, grow, configure, delete; every
//! partition's replicas; partition reassignments.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    ListPartitionReassignmentsRequest, MetadataRequest,
};

use super::{
    AdminError, OngoingReassignment, TopicDescription, UNKNOWN_TOPIC_OR_PARTITION, WireAdmin, sb,
    topic_name,
};

/// Versions this client sends (Kafka 3.x brokers and Strait serve them).
const METADATA_V: i16 = 12;
const CREATE_TOPICS_V: i16 = 7;
const CREATE_PARTITIONS_V: i16 = 3;
const DELETE_TOPICS_V: i16 = 6;
const DESCRIBE_CONFIGS_V: i16 = 4;
const INCREMENTAL_ALTER_CONFIGS_V: i16 = 1;
const ALTER_REASSIGNMENTS_V: i16 = 0;
const LIST_REASSIGNMENTS_V: i16 = 0;
/// Kafka's resource type code for topics in config APIs.
const CONFIG_RESOURCE_TOPIC: i8 = 2;
/// Broker-side timeout of the requests that wait for the controller.
const TIMEOUT_MS: i32 = 30_000;

pub(super) async fn describe(
    admin: &WireAdmin,
    name: &str,
) -> Result<Option<TopicDescription>, AdminError> {
    // Kafka's default would auto-create the topic being asked about.
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(topic_name(name))),
        ]));
    let resp = admin
        .request(METADATA_V, &request, name, &[UNKNOWN_TOPIC_OR_PARTITION])
        .await?;
    let Some(topic) = resp.topics.first() else {
        return Ok(None);
    };
    if topic.error_code == UNKNOWN_TOPIC_OR_PARTITION {
        return Ok(None);
    }
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
    let resp = admin
        .request(DESCRIBE_CONFIGS_V, &configs, name, &[])
        .await?;
    // Source 1 is DYNAMIC_TOPIC_CONFIG: keys set on this topic.
    let config = resp
        .results
        .iter()
        .flat_map(|r| &r.configs)
        .filter(|c| c.config_source == 1)
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect();
    Ok(Some(TopicDescription {
        topic_id: topic.topic_id.to_string(),
        partitions,
        config,
    }))
}

pub(super) async fn cluster_id(admin: &WireAdmin) -> Result<Option<String>, AdminError> {
    // An empty topic list asks for brokers and cluster id only.
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(Vec::new()));
    let resp = admin.request(METADATA_V, &request, "cluster", &[]).await?;
    Ok(resp.cluster_id.map(|id| id.to_string()))
}

pub(super) async fn all_partitions(
    admin: &WireAdmin,
) -> Result<BTreeMap<(String, i32), Vec<i32>>, AdminError> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(None);
    let resp = admin.request(METADATA_V, &request, "cluster", &[]).await?;
    let mut out = BTreeMap::new();
    for topic in &resp.topics {
        let Some(name) = &topic.name else { continue };
        for p in &topic.partitions {
            out.insert(
                (name.0.to_string(), p.partition_index),
                p.replica_nodes.iter().map(|b| b.0).collect(),
            );
        }
    }
    Ok(out)
}

pub(super) async fn create(
    admin: &WireAdmin,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    config: &BTreeMap<String, String>,
) -> Result<(), AdminError> {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = config
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(sb(k))
                .with_value(Some(sb(v)))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(TIMEOUT_MS);
    admin.request(CREATE_TOPICS_V, &request, name, &[]).await?;
    Ok(())
}

pub(super) async fn create_partitions(
    admin: &WireAdmin,
    name: &str,
    count: i32,
) -> Result<(), AdminError> {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)
                // `None`: the cluster places the new partitions.
                .with_assignments(None),
        ])
        .with_timeout_ms(TIMEOUT_MS);
    admin
        .request(CREATE_PARTITIONS_V, &request, name, &[])
        .await?;
    Ok(())
}

pub(super) async fn alter_config(
    admin: &WireAdmin,
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
    admin
        .request(INCREMENTAL_ALTER_CONFIGS_V, &request, name, &[])
        .await?;
    Ok(())
}

pub(super) async fn delete(admin: &WireAdmin, name: &str) -> Result<(), AdminError> {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(name))),
        ])
        .with_timeout_ms(TIMEOUT_MS);
    admin
        .request(
            DELETE_TOPICS_V,
            &request,
            name,
            &[UNKNOWN_TOPIC_OR_PARTITION],
        )
        .await?;
    Ok(())
}

pub(super) async fn reassign(
    admin: &WireAdmin,
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
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(topics);
    admin
        .request(ALTER_REASSIGNMENTS_V, &request, "cluster", &[])
        .await?;
    Ok(())
}

pub(super) async fn ongoing_reassignments(
    admin: &WireAdmin,
) -> Result<BTreeMap<(String, i32), OngoingReassignment>, AdminError> {
    // No topic list: every reassignment in progress.
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(None);
    let resp = admin
        .request(LIST_REASSIGNMENTS_V, &request, "cluster", &[])
        .await?;
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
