//! What the admin APIs and metrics see of the groups: ListGroups, DescribeGroups, DeleteGroups,
//! and the per-group offsets the lag metrics are computed from.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::state::Member;
use super::{Coordinator, GroupState, OffsetsLog, Record, no_error};
use crate::group::records::RecordKey;

/// For metrics: group id, member count, committed (topic, partition, offset).
pub type GroupOffsetsView = (String, usize, Vec<(String, i32, i64)>);

pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

impl Coordinator {
    /// ListGroups: (group id, protocol type, state name, group type).
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.lock();
        let mut out: Vec<_> = groups
            .iter()
            .map(|(id, g)| match &g.consumer {
                Some(c) => (id.clone(), "consumer".to_string(), c.state(), "consumer"),
                None => (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                    "classic",
                ),
            })
            .collect();
        out.sort();
        out
    }

    /// For metrics: per group, its member count and committed offsets (topic, partition, offset).
    pub fn lag_view(&self) -> Vec<GroupOffsetsView> {
        let groups = self.lock();
        groups
            .iter()
            .map(|(id, g)| {
                let members =
                    g.members.len() + g.consumer.as_ref().map(|c| c.members().len()).unwrap_or(0);
                let offsets = g
                    .offsets
                    .iter()
                    .map(|((t, p), v)| (t.clone(), *p, v.offset))
                    .collect();
                (id.clone(), members, offsets)
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let stable = g.state == GroupState::Stable;
        let mut members: Vec<(&String, &Member)> = g.members.iter().collect();
        members.sort_by_key(|(_, m)| m.joined_seq);
        Some(GroupSummary {
            group_id: group_id.to_string(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|(id, m)| MemberSummary {
                    member_id: id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups: only empty groups; offsets and metadata are tombstoned.
    pub fn delete_group(&self, log: &dyn OffsetsLog, group_id: &str) -> ResponseError {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::GroupIdNotFound;
        };
        if group.state != GroupState::Empty
            || !group.members.is_empty()
            || group.is_active_consumer_group()
        {
            return ResponseError::NonEmptyGroup;
        }
        let mut records: Vec<(RecordKey, Option<Record>)> = group
            .offsets
            .keys()
            .map(|(topic, partition)| {
                (
                    RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    None,
                )
            })
            .collect();
        records.push((
            RecordKey::Group {
                group: group_id.to_string(),
            },
            None,
        ));
        if let Some(cg) = &group.consumer {
            records.extend(super::consumer_records(cg.tombstones()));
        }
        match log.append(group_id, records) {
            Ok(()) => {
                groups.remove(group_id);
                no_error()
            }
            Err(e) => e.error,
        }
    }
}
