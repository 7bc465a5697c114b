//! Makes this broker's partitions match the metadata image, after every image change: opens
//! logs for partitions newly assigned here, deletes logs of deleted topics and of replicas moved
//! away, applies topic config changes, and puts every hosted partition in the role the image
//! gives it (leader or follower at the image's leader epoch, with its replicas and ISR).
//! `__consumer_offsets` is replicated like any topic; its partitions' roles also decide which
//! groups this broker coordinates, which the applier reports to a [`RoleListener`] rather than
//! knowing the group coordinator (Kafka's metadata publisher calls `onElection`/`onResignation`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use strait_cluster::image::{Image, NO_LEADER, TopicImage};
use strait_storage::TopicPartition;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::ClusterNode;
use crate::partition::replica::{ReplicaState, Role};
use crate::replica_manager::{Partition, ReplicaManager, Topic, TopicMeta, log_config};

/// Told what the applier did to hosted partitions' roles, on its blocking thread.
pub trait RoleListener: Send + Sync {
    /// After `partition` of `topic` (of `partitions` partitions) was put in the image's role, or
    /// made a follower of nobody because its replica moved away.
    fn role_applied(&self, topic: &str, partitions: i32, partition: &Partition);
    /// `topic` (of `partitions` partitions) was removed, before its partitions step down.
    fn topic_removed(&self, topic: &str, partitions: i32);
}

pub async fn run(
    replicas: Arc<ReplicaManager>,
    roles: Arc<dyn RoleListener>,
    node: Arc<ClusterNode>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = node.watch_image();
    loop {
        let image = images.borrow_and_update().clone();
        let offset = image.offset;
        let r = replicas.clone();
        let l = roles.clone();
        let n = node.clone();
        let applied = tokio::task::spawn_blocking(move || apply(&r, &*l, &n, &image)).await;
        match applied {
            Ok(()) => node.mark_applied(offset),
            Err(e) => warn!(error = %e, "applying the metadata image failed"),
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return; },
            _ = shutdown.changed() => return,
        }
    }
}

/// One reconciliation pass. Idempotent: applying the same image twice changes nothing.
pub fn apply(
    replicas: &ReplicaManager,
    roles: &dyn RoleListener,
    node: &ClusterNode,
    image: &Image,
) {
    let me = node.node_id;
    let now = Instant::now();
    // Deletions are only safe once the image is at least as new as our registration: before
    // that, a topic missing from the image may simply not have been replicated to us yet.
    let current = node.broker_epoch() >= 0 && image.offset >= node.broker_epoch() as u64;
    replicas.note_topics_at_start(image.topics.values().map(|t| t.id), current);
    for topic in replicas.all_topics() {
        let name = topic.meta.name.clone();
        let gone = match image.topic(&name) {
            None => true,
            Some(t) => t.id != topic.meta.id,
        };
        if gone
            && current
            && let Some(old) = replicas.uninstall_topic(&name)
        {
            roles.topic_removed(&name, old.meta.partitions);
            for p in &old.partitions {
                p.replica()
                    .become_follower(NO_LEADER, -1, -1, Vec::new(), Vec::new());
                p.publish_high_watermark();
                if let Err(e) = replicas.logs.delete(p.log.topic_partition()) {
                    warn!(topic = %name, partition = p.index, error = %e, "cannot delete log");
                }
            }
            info!(topic = %name, "deleted topic (metadata)");
        }
    }
    for topic in image.topics.values() {
        if let Err(e) = apply_topic(replicas, roles, me, image, topic, current, now) {
            warn!(topic = %topic.name, error = %e, "cannot apply topic metadata");
        }
    }
    if current {
        delete_strays(replicas, image);
    }
    // Roles and leader epochs may have changed: replica fetchers rebuild what they follow.
    replicas.bump_generation();
}

fn apply_topic(
    replicas: &ReplicaManager,
    roles: &dyn RoleListener,
    me: i32,
    image: &Image,
    topic: &TopicImage,
    current: bool,
    now: Instant,
) -> Result<(), strait_storage::LogError> {
    let existing = replicas
        .topic(&topic.name)
        .filter(|t| t.meta.id == topic.id);
    let meta = TopicMeta {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        replication_factor: topic
            .partitions
            .first()
            .map_or(1, |p| (p.replicas.len() - p.adding.len()) as i16),
        configs: topic.configs.clone(),
    };
    let configs_changed = existing
        .as_ref()
        .is_some_and(|t| t.meta.configs != meta.configs);
    let mut partitions: Vec<Arc<Partition>> = Vec::new();
    let mut changed = existing.is_none() || configs_changed;
    // Parsed once per pass; the installed `Topic` keeps it for the request path.
    let effective = match &existing {
        Some(t) if !configs_changed => t.config.clone(),
        _ => strait_config::effective_topic_config(&meta.configs, replicas.config()),
    };
    let config = log_config(&effective, replicas.config());
    for (index, state) in topic.partitions.iter().enumerate() {
        let index = index as i32;
        let local = existing.as_ref().and_then(|t| t.partition(index).cloned());
        if !state.replicas.contains(&me) {
            if let Some(p) = local {
                changed = true;
                // Produces still waiting on this replica's high watermark must fail, not time out.
                p.replica().become_follower(
                    NO_LEADER,
                    state.leader_epoch,
                    state.partition_epoch,
                    state.replicas.clone(),
                    state.isr.clone(),
                );
                roles.role_applied(&topic.name, topic.partitions.len() as i32, &p);
                if current {
                    p.publish_high_watermark();
                    replicas.logs.delete(p.log.topic_partition())?;
                    info!(topic = %topic.name, partition = index, "replica moved away; log deleted");
                }
            }
            continue;
        }
        let partition = match local {
            Some(p) => {
                if configs_changed {
                    p.log.update_config(config.clone());
                }
                p
            }
            None => {
                changed = true;
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: index,
                };
                if replicas.logs.get(&tp).is_none() && !replicas.may_create_log(&topic.id) {
                    // Its log may be in the log dir that failed at start: never an empty one.
                    // The partition stays unhosted here; the topic's others are installed.
                    debug!(partition = %tp, "not creating the log of an existing partition while a log dir is offline since start");
                    continue;
                }
                let log = replicas.logs.get_or_create(&tp, config.clone())?;
                // A log opened at start-up may predate the image's view of its topic's configs.
                log.update_config(config.clone());
                let id = topic.id.to_string();
                if log.topic_id().as_deref() != Some(id.as_str()) {
                    log.set_topic_id(&id)?;
                }
                Arc::new(Partition::new(
                    index,
                    log,
                    ReplicaState::follower_of(me, NO_LEADER),
                ))
            }
        };
        // Before the partition serves: a read below the local segments must find the remote
        // tier, not an out-of-range error that would reset consumers past it.
        let remote = image.remote_partition(&topic.name, index);
        let epochs = remote.map(|r| r.leader_epochs()).unwrap_or_default();
        if let Err(e) = partition.log.set_remote_bounds(
            remote.and_then(|r| r.start_offset()),
            remote.map_or(-1, |r| r.highest_copied_offset()),
            &epochs,
        ) {
            warn!(topic = %topic.name, partition = index, error = %e,
                "cannot record the remote tier's leader epochs");
        }
        apply_role(&partition, me, image, state, now);
        roles.role_applied(&topic.name, topic.partitions.len() as i32, &partition);
        partitions.push(partition);
    }
    if changed {
        replicas.install_topic(Topic::new(meta, effective, partitions));
    }
    Ok(())
}

/// Puts one partition in the role the image gives it.
fn apply_role(
    partition: &Partition,
    me: i32,
    image: &Image,
    state: &strait_cluster::image::PartitionState,
    now: Instant,
) {
    let leader = if image.is_live(state.leader) {
        state.leader
    } else {
        NO_LEADER
    };
    let became_leader;
    {
        let mut replica = partition.replica();
        let same = replica.leader_epoch == state.leader_epoch
            && replica.partition_epoch == state.partition_epoch
            && replica.leader_id() == leader;
        // An image older than an AlterPartition answer this leader already took: keep the newer.
        let stale = replica.leader_epoch == state.leader_epoch
            && state.partition_epoch < replica.partition_epoch;
        if same || stale {
            return;
        }
        if leader == me {
            became_leader = !replica.is_leader() || replica.leader_epoch != state.leader_epoch;
            replica.become_leader(
                state.leader_epoch,
                state.partition_epoch,
                state.replicas.clone(),
                state.isr.clone(),
                partition.log.log_end_offset(),
                now,
            );
        } else {
            became_leader = false;
            replica.become_follower(
                leader,
                state.leader_epoch,
                state.partition_epoch,
                state.replicas.clone(),
                state.isr.clone(),
            );
        }
        if became_leader || replica.role != Role::Leader {
            info!(
                partition = %partition.log.topic_partition(),
                leader,
                leader_epoch = state.leader_epoch,
                isr = ?state.isr,
                "partition role"
            );
        }
    }
    if became_leader {
        // A leader whose ISR is itself commits everything it has at once.
        partition.advance_high_watermark();
    }
    // Fetches and acks=all waits re-check their role.
    partition.publish_high_watermark();
}

/// Deletes logs on disk that belong to no topic of the image (topics deleted while this broker
/// was down).
fn delete_strays(replicas: &ReplicaManager, image: &Image) {
    let mut hosted: BTreeMap<String, ()> = BTreeMap::new();
    for t in replicas.all_topics() {
        hosted.insert(t.meta.name.clone(), ());
    }
    for log in replicas.logs.all() {
        let tp = log.topic_partition().clone();
        if hosted.contains_key(&tp.topic) {
            continue;
        }
        if image.topic(&tp.topic).is_none() {
            warn!(partition = %tp, "deleting the log of a topic the cluster no longer has");
            if let Err(e) = replicas.logs.delete(&tp) {
                warn!(partition = %tp, error = %e, "cannot delete stray log");
            }
        }
    }
}
