//! Gaining and losing coordinatorship of `__transaction_state` partitions, as for groups: when
//! this broker becomes a partition's leader its transactions are loaded from the log, with the
//! leader epoch as coordinator epoch (markers carry it, so a partition can refuse a deposed
//! coordinator's); losing leadership unloads them. Transactions found in a Prepare state are
//! completed by the coordinator's ticker; ongoing ones time out there as usual.

use strait_cluster::rpc::NewTopic;
use strait_config::BrokerConfig;
use tracing::{info, warn};

use super::{TXN_TOPIC, TxnCoordinator};
use crate::errors::ApiError;
use crate::node::ClusterNode;
use crate::replica_manager::Partition;

/// After the applier set `partition`'s role: loads it when this broker leads it (again, at a
/// new epoch) and unloads it when it stopped leading it.
pub fn sync_role(txns: &TxnCoordinator, partitions: i32, partition: &Partition) {
    let (leading, epoch) = {
        let replica = partition.replica();
        (replica.is_leader(), replica.leader_epoch)
    };
    let loaded = txns.loaded().get(&partition.index).copied();
    if leading && loaded != Some(epoch) {
        match txns.load(partition, partitions, epoch) {
            Ok(records) => info!(
                partition = partition.index,
                epoch, records, "coordinating the transactions of this partition"
            ),
            // Stays unloaded: clients get COORDINATOR_LOAD_IN_PROGRESS and the next image pass
            // retries.
            Err(e) => {
                warn!(partition = partition.index, error = %e, "cannot load {TXN_TOPIC} partition")
            }
        }
    } else if !leading && loaded.is_some() {
        let n = txns.unload(partition.index, partitions);
        info!(
            partition = partition.index,
            transactions = n,
            "no longer coordinating the transactions of this partition"
        );
    }
}

/// The topic was deleted or is no longer hosted here.
pub fn unload_all(txns: &TxnCoordinator, partitions: i32) {
    for p in txns.loaded().into_keys() {
        txns.unload(p, partitions);
    }
}

/// The config overrides `__transaction_state` is created with (Kafka's).
fn topic_configs(config: &BrokerConfig) -> std::collections::BTreeMap<String, String> {
    let settings = &config.transactions;
    std::collections::BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            settings.state_log_segment_bytes.to_string(),
        ),
        ("compression.type".to_string(), "uncompressed".to_string()),
        (
            "min.insync.replicas".to_string(),
            settings.state_log_min_isr.to_string(),
        ),
        (
            "unclean.leader.election.enable".to_string(),
            "false".to_string(),
        ),
    ])
}

/// Creates `__transaction_state` on the first FindCoordinator for a transactional id, with
/// `transaction.state.log.replication.factor` replicas capped by the live brokers and
/// `min.insync.replicas` = `transaction.state.log.min.isr` (capped by the replication factor so
/// a capped topic stays writable).
pub async fn ensure_topic(config: &BrokerConfig, node: &ClusterNode) -> Result<(), ApiError> {
    let settings = &config.transactions;
    let image = node.image();
    let live = image
        .brokers
        .keys()
        .filter(|id| image.is_live(**id))
        .count();
    let rf = settings
        .state_log_replication_factor
        .min(i16::try_from(live).unwrap_or(i16::MAX))
        .max(1);
    let mut configs = topic_configs(config);
    configs.insert(
        "min.insync.replicas".to_string(),
        settings.state_log_min_isr.min(i32::from(rf)).to_string(),
    );
    let topic = NewTopic {
        name: TXN_TOPIC.to_string(),
        partitions: settings.state_log_num_partitions,
        replication_factor: rf,
        assignments: None,
        configs,
    };
    crate::internal_topic::ensure(node, topic).await
}
