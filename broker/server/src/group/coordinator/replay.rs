//! Gaining and losing coordinatorship of an offsets partition: the groups stored in it are rebuilt
//! from its `__consumer_offsets` records when this broker becomes its leader, and forgotten when
//! it stops leading it.

use std::time::{Duration, Instant};

use super::state::{Group, Member};
use super::{Coordinator, GroupState, Record};
use crate::group::consumer::ConsumerGroup;
use crate::group::consumer_records::ConsumerKey;
use crate::group::records::{self, RecordKey};

impl Coordinator {
    /// Forgets every group stored in offsets partition `partition` (of `partitions`): this
    /// broker stopped leading it, so another coordinator owns those groups now. Waiting members
    /// are dropped and retry against the new coordinator. Returns how many groups went.
    pub fn unload_partition(&self, partition: i32, partitions: i32) -> usize {
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|id, _| records::partition_for(id, partitions) != partition);
        before - groups.len()
    }

    /// Rebuilds state from `__consumer_offsets` records, in log order (later records win).
    pub fn load_record(&self, key: RecordKey, value: Option<Record>, now: Instant, now_ms: i64) {
        let mut groups = self.lock();
        match (key, value) {
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                Some(Record::Offset(v)),
            ) => {
                groups
                    .entry(group)
                    .or_insert_with(|| Group::new(now_ms))
                    .offsets
                    .insert((topic, partition), v);
            }
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                None,
            ) => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            (RecordKey::Group { group }, Some(Record::Group(v))) => {
                let g = groups.entry(group).or_insert_with(|| Group::new(now_ms));
                g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                g.protocol = v.protocol;
                g.generation = v.generation;
                g.leader = v.leader;
                g.state_timestamp_ms = if v.current_state_timestamp > 0 {
                    v.current_state_timestamp
                } else {
                    now_ms
                };
                g.members.clear();
                let protocol = g.protocol.clone().unwrap_or_default();
                for m in v.members {
                    // Restored members must heartbeat within their session timeout, as in Kafka.
                    g.members.insert(
                        m.member_id,
                        Member {
                            instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout: Duration::from_millis(
                                m.session_timeout_ms.max(0) as u64
                            ),
                            rebalance_timeout: Duration::from_millis(
                                m.rebalance_timeout_ms.max(0) as u64
                            ),
                            protocols: vec![(protocol.clone(), m.subscription)],
                            assignment: m.assignment,
                            join_waiter: None,
                            sync_waiter: None,
                            joined_seq: self.next_seq(),
                            last_heartbeat: now,
                        },
                    );
                }
                g.state = if g.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
            }
            (RecordKey::Consumer(key), value) => {
                let deleted = matches!((&key, &value), (ConsumerKey::Metadata { .. }, None));
                let group_id = key.group().to_string();
                if deleted {
                    // The group's metadata tombstone: the KIP-848 group was deleted.
                    if let Some(g) = groups.get_mut(&group_id) {
                        g.consumer = None;
                        if g.offsets.is_empty() && g.members.is_empty() {
                            groups.remove(&group_id);
                        }
                    }
                    return;
                }
                let value = match value {
                    Some(Record::Consumer(v)) => Some(v),
                    None => None,
                    Some(_) => return,
                };
                groups
                    .entry(group_id)
                    .or_insert_with(|| Group::new(now_ms))
                    .consumer
                    .get_or_insert_with(ConsumerGroup::default)
                    .load(&key, value, now);
            }
            (RecordKey::Group { group }, None) => {
                // A group tombstone deletes the group; offsets were tombstoned before it.
                if groups.get(&group).is_some_and(|g| g.offsets.is_empty()) {
                    groups.remove(&group);
                } else if let Some(g) = groups.get_mut(&group) {
                    g.members.clear();
                    g.state = GroupState::Empty;
                }
            }
            _ => {}
        }
    }
}
