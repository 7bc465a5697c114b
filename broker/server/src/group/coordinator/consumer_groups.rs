//! The KIP-848 consumer protocol's entry points: ConsumerGroupHeartbeat and ConsumerGroupDescribe
//! reach the group's [`ConsumerGroup`] under the coordinator's lock, so a group id is a classic
//! or a consumer group, never both at once. The protocol itself lives in `group::consumer`.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::state::Group;
use super::{Coordinator, OffsetsLog};
use crate::group::consumer::{ConsumerGroup, Heartbeat, HeartbeatReply, MemberView};

/// ConsumerGroupDescribe's view: group epoch, assignment epoch, state, assignor, members.
pub type ConsumerGroupView = (i32, i32, &'static str, String, Vec<MemberView>);

impl Coordinator {
    /// Whether the group runs the KIP-848 protocol (classic DescribeGroups does not describe it).
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
    }

    /// ConsumerGroupHeartbeat. The second value says whether the heartbeat changed the group's
    /// records: they were appended, and the reply must wait until they are durable.
    pub fn consumer_heartbeat(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        hb: Heartbeat,
        now: Instant,
        now_ms: i64,
    ) -> Result<(HeartbeatReply, bool), (ResponseError, String)> {
        if group_id.is_empty() {
            return Err((
                ResponseError::InvalidGroupId,
                "The group id must not be empty".into(),
            ));
        }
        let mut groups = self.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(now_ms));
        if !group.members.is_empty() {
            return Err((
                ResponseError::InconsistentGroupProtocol,
                format!(
                    "Group {group_id} is a classic group with members; it cannot use the consumer protocol"
                ),
            ));
        }
        let cg = group.consumer.get_or_insert_with(ConsumerGroup::default);
        let regex = hb
            .subscribed_topic_regex
            .as_deref()
            .is_some_and(|r| !r.is_empty());
        let topics = if regex || cg.uses_regex() {
            log.all_topics()
        } else {
            let mut wanted = cg.subscribed_topics();
            if let Some(names) = &hb.subscribed_topic_names {
                wanted.extend(names.iter().cloned());
            }
            log.topics(&wanted)
        };
        let reply = cg.heartbeat(hb, &topics, now)?;
        let changes = cg.changes(group_id);
        if changes.is_empty() {
            return Ok((reply, false));
        }
        log.append(group_id, super::consumer_records(changes.clone()))
            .map_err(|e| (e.error, e.message))?;
        cg.written(&changes);
        Ok((reply, true))
    }

    /// ConsumerGroupDescribe: (group epoch, assignment epoch, state, assignor, members).
    pub fn consumer_describe(&self, group_id: &str) -> Option<ConsumerGroupView> {
        let groups = self.lock();
        let cg = groups.get(group_id)?.consumer.as_ref()?;
        Some((
            cg.group_epoch,
            cg.assignment_epoch,
            cg.state(),
            cg.assignor_name(),
            cg.members(),
        ))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.limits.consumer.heartbeat_interval
    }
}
