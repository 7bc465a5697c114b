//! Which groups this broker coordinates in a cluster, as in Kafka: `__consumer_offsets` is an
//! ordinary replicated topic created through the controller, a group belongs to partition
//! `partition_for(group)`, and that partition's leader is the group's coordinator. Becoming
//! leader loads the partition's groups from the log; losing leadership unloads them. Group APIs
//! check ownership here first (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS send clients back
//! to FindCoordinator), and an offset commit is answered only once the offsets partition's high
//! watermark covers it, so an acknowledged commit survives the loss of the coordinator. A
//! single node is a cluster of one: it leads every offsets partition, so every group is its own.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::ResponseError;
use strait_cluster::rpc::NewTopic;
use tracing::{info, warn};

use strait_config::BrokerConfig;

use super::records::partition_for;
use super::store::{load_partition, offsets_topic_configs};
use super::{Coordinator, OFFSETS_TOPIC};
use crate::errors::ApiError;
use crate::node::ClusterNode;
use crate::partition::Replicated;
use crate::replica_manager::{Partition, ReplicaManager, Topic};

/// The offsets partitions whose groups are loaded here (this broker leads them).
#[derive(Default)]
pub struct Coordinated(Mutex<BTreeSet<i32>>);

impl Coordinated {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contains(&self, partition: i32) -> bool {
        self.lock().contains(&partition)
    }
}

/// After the applier set `partition`'s role: loads its groups when this broker leads it and has
/// not loaded them, unloads them when it stopped leading. Runs on the applier's blocking thread.
pub fn sync_role(
    groups: &Coordinator,
    coordinated: &Coordinated,
    partitions: i32,
    partition: &Partition,
) {
    let leading = partition.replica().is_leader();
    let loaded = coordinated.contains(partition.index);
    if leading && !loaded {
        match load_partition(groups, partition) {
            Ok(records) => {
                coordinated.lock().insert(partition.index);
                info!(
                    partition = partition.index,
                    records, "coordinating the groups of this offsets partition"
                );
            }
            // Stays unloaded: clients get COORDINATOR_LOAD_IN_PROGRESS and the next image pass
            // retries.
            Err(e) => {
                warn!(partition = partition.index, error = %e, "cannot load offsets partition")
            }
        }
    } else if !leading && loaded {
        coordinated.lock().remove(&partition.index);
        let groups = groups.unload_partition(partition.index, partitions);
        info!(
            partition = partition.index,
            groups, "no longer coordinating the groups of this offsets partition"
        );
    }
}

/// The offsets topic was deleted or this broker no longer hosts it: forget its groups.
pub fn unload_all(groups: &Coordinator, coordinated: &Coordinated, partitions: i32) {
    let owned: Vec<i32> = std::mem::take(&mut *coordinated.lock())
        .into_iter()
        .collect();
    for p in owned {
        groups.unload_partition(p, partitions);
    }
}

/// Whether this broker coordinates `group` now.
///
/// FindCoordinator answers from the metadata image, which a broker sees before its applier has
/// installed the offsets partition and made it leader. In that window the group is loading
/// here, not elsewhere: NOT_COORDINATOR would fail a client's synchronous commit (librdkafka
/// returns it to the application) where COORDINATOR_LOAD_IN_PROGRESS is retried.
pub fn check(
    replicas: &ReplicaManager,
    coordinated: &Coordinated,
    node: &ClusterNode,
    group: &str,
) -> Result<(), ApiError> {
    let loading = |index: i32| {
        ApiError::new(
            ResponseError::CoordinatorLoadInProgress,
            format!("the groups of {OFFSETS_TOPIC}-{index} are still loading"),
        )
    };
    let leads_in_image = || {
        let image = node.image();
        let topic = image.topic(OFFSETS_TOPIC)?;
        let index = partition_for(group, topic.partitions.len() as i32);
        let state = topic.partitions.get(usize::try_from(index).ok()?)?;
        (state.leader == node.node_id).then_some(index)
    };
    let Some(topic) = replicas.topic(OFFSETS_TOPIC) else {
        return Err(leads_in_image().map_or_else(|| not_coordinator(group), loading));
    };
    let index = partition_for(group, topic.meta.partitions);
    if coordinated.contains(index) {
        return Ok(());
    }
    match topic.partition(index) {
        Some(p) if p.replica().is_leader() => Err(loading(index)),
        _ => Err(leads_in_image().map_or_else(|| not_coordinator(group), loading)),
    }
}

fn not_coordinator(group: &str) -> ApiError {
    ApiError::new(
        ResponseError::NotCoordinator,
        format!("this broker is not the coordinator of group '{group}'"),
    )
}

/// Creates `__consumer_offsets` when the cluster does not have it yet (Kafka does so on the
/// first FindCoordinator), with `offsets.topic.replication.factor` replicas: until that many
/// brokers have registered, groups are unavailable, as in Kafka.
pub async fn ensure_topic(config: &BrokerConfig, node: &ClusterNode) -> Result<(), ApiError> {
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: config.offsets_topic_num_partitions,
        replication_factor: config.offsets_topic_replication_factor,
        assignments: None,
        configs: offsets_topic_configs(config),
    };
    crate::internal_topic::ensure(node, topic).await
}

/// OffsetCommit's durability: waits until the high watermark of `group`'s offsets partition
/// covers everything appended to it so far (the commit just made included), failing when
/// leadership moves or `timeout` passes.
pub async fn wait_durable(
    replicas: &ReplicaManager,
    group: &str,
    timeout: Duration,
) -> Result<(), ApiError> {
    let Some(topic) = replicas.topic(OFFSETS_TOPIC) else {
        return Err(not_coordinator(group));
    };
    let partition: Arc<Partition> =
        match topic.partition(partition_for(group, topic.meta.partitions)) {
            Some(p) => p.clone(),
            None => return Err(not_coordinator(group)),
        };
    wait_partition(&topic, &partition, group, timeout).await
}

async fn wait_partition(
    topic: &Topic,
    partition: &Partition,
    group: &str,
    timeout: Duration,
) -> Result<(), ApiError> {
    let target = partition.log.log_end_offset();
    let epoch = partition.replica().leader_epoch;
    match partition
        .wait_for_high_watermark(target, epoch, timeout)
        .await
    {
        Replicated::Yes => {}
        Replicated::LostLeadership => return Err(not_coordinator(group)),
        Replicated::TimedOut => {
            return Err(ApiError::new(
                ResponseError::RequestTimedOut,
                format!(
                    "the commit to {}-{} was not replicated within {} ms",
                    topic.meta.name,
                    partition.index,
                    timeout.as_millis()
                ),
            ));
        }
    }
    Ok(())
}
