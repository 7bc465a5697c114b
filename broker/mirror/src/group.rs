//! Work sharing between the mirror processes of one flow: each process joins the consumer group
//! `strait-mirror-<source>-<target>-members` on the source (classic protocol, protocol type
//! `strait-mirror`); the leader hands every member its index among the members, and a partition
//! belongs to the member whose index is a stable hash of (topic, partition) modulo the member
//! count. New topics and partitions therefore need no rebalance: every member decides the same
//! way on its own. While a rebalance runs a process owns nothing, so two processes copy the
//! same partition only for the moment a stale member takes to notice.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use strait_client::Connection;
use tokio::sync::watch;

use crate::wire::{Cluster, WireError};

pub const PROTOCOL_TYPE: &str = "strait-mirror";
/// The one assignment protocol: members numbered, partitions hashed.
pub const PROTOCOL: &str = "hash";

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// This process's share of the flow's partitions: member `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: u32,
    pub count: u32,
}

impl Share {
    /// The whole flow (a single process).
    pub const ALL: Share = Share { index: 0, count: 1 };

    /// Whether `topic`/`partition` is this member's to copy.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        if self.count == 0 {
            return false;
        }
        let slot = fnv1a(topic).wrapping_add(u64::from(partition.unsigned_abs()));
        slot % u64::from(self.count) == u64::from(self.index)
    }

    fn encode(self) -> Bytes {
        let mut buf = BytesMut::with_capacity(8);
        buf.put_u32(self.index);
        buf.put_u32(self.count);
        buf.freeze()
    }

    fn decode(mut bytes: &[u8]) -> Option<Share> {
        if bytes.len() != 8 {
            return None;
        }
        let index = bytes.get_u32();
        let count = bytes.get_u32();
        (index < count).then_some(Share { index, count })
    }
}

/// FNV-1a: stable across processes and versions (std's hasher is neither).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The members' shares as the leader hands them out: sorted member ids, numbered in order.
pub fn assign(members: &[String]) -> Vec<(String, Share)> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    sorted.dedup();
    let count = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.clone(),
                Share {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    count,
                },
            )
        })
        .collect()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Keeps this process in `group` and publishes its share (`None` while it has none) until
/// shutdown, then leaves the group so the others take over at once.
pub async fn run(
    cluster: Cluster,
    group: String,
    share: watch::Sender<Option<Share>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut member = Member {
        cluster,
        group,
        member_id: String::new(),
        generation: -1,
        coordinator: None,
    };
    loop {
        let result = tokio::select! {
            r = member.session(&share) => r,
            _ = shutdown.changed() => Ok(()),
        };
        share.send_replace(None);
        if *shutdown.borrow() {
            member.leave().await;
            return;
        }
        if let Err(e) = result {
            tracing::warn!(group = %member.group, error = %e, "mirror group membership lost; rejoining");
            member.coordinator = None;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

struct Member {
    cluster: Cluster,
    group: String,
    member_id: String,
    generation: i32,
    coordinator: Option<Connection>,
}

impl Member {
    fn err(&self, api: kafka_protocol::messages::ApiKey, code: i16) -> WireError {
        WireError::Client {
            cluster: self.cluster.alias.clone(),
            source: strait_client::ClientError::Kafka(strait_client::KafkaError {
                api,
                resource: Some(self.group.clone()),
                code,
                message: None,
            }),
        }
    }

    fn client_err(&self, source: strait_client::ClientError) -> WireError {
        WireError::Client {
            cluster: self.cluster.alias.clone(),
            source,
        }
    }

    async fn coordinator(&mut self) -> Result<&mut Connection, WireError> {
        if self.coordinator.is_none() {
            self.coordinator = Some(self.cluster.coordinator(&self.group).await?);
        }
        Ok(self.coordinator.as_mut().expect("set above"))
    }

    /// Join, sync, then heartbeat until the group rebalances (Ok: rejoin at once) or fails.
    async fn session(&mut self, share: &watch::Sender<Option<Share>>) -> Result<(), WireError> {
        let join = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(s(&self.member_id))
                .with_protocol_type(s(PROTOCOL_TYPE))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s(PROTOCOL))
                        .with_metadata(Bytes::new()),
                ]);
            let conn = self.coordinator().await?;
            let version = conn
                .negotiate::<JoinGroupRequest>(1..=5)
                .await
                .map_err(|e| self.client_err(e))?;
            let conn = self.coordinator.as_mut().expect("connected above");
            let response: JoinGroupResponse = conn
                .call_within(
                    version,
                    &request,
                    Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 10_000),
                )
                .await
                .map_err(|e| self.client_err(e))?;
            match response.error_code {
                0 => break response,
                MEMBER_ID_REQUIRED => self.member_id = response.member_id.to_string(),
                UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => self.member_id.clear(),
                code => return Err(self.err(kafka_protocol::messages::ApiKey::JoinGroup, code)),
            }
        };
        self.member_id = join.member_id.to_string();
        self.generation = join.generation_id;
        let assignments = if join.leader == join.member_id {
            let members: Vec<String> = join
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            assign(&members)
                .into_iter()
                .map(|(m, share)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&m))
                        .with_assignment(share.encode())
                })
                .collect()
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id))
            .with_protocol_type(Some(s(PROTOCOL_TYPE)))
            .with_protocol_name(Some(s(PROTOCOL)))
            .with_assignments(assignments);
        let conn = self.coordinator().await?;
        let version = conn
            .negotiate::<SyncGroupRequest>(0..=5)
            .await
            .map_err(|e| self.client_err(e))?;
        let conn = self.coordinator.as_mut().expect("connected above");
        let response: SyncGroupResponse = conn
            .call_within(
                version,
                &request,
                Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 10_000),
            )
            .await
            .map_err(|e| self.client_err(e))?;
        match response.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS => return Ok(()),
            UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                self.member_id.clear();
                return Ok(());
            }
            code => return Err(self.err(kafka_protocol::messages::ApiKey::SyncGroup, code)),
        }
        let Some(mine) = Share::decode(&response.assignment) else {
            // The leader gave us nothing (it did not know us yet): rejoin.
            return Ok(());
        };
        tracing::info!(group = %self.group, generation = self.generation, index = mine.index, count = mine.count, "mirror group assignment");
        share.send_replace(Some(mine));
        let session = Duration::from_millis(SESSION_TIMEOUT_MS as u64);
        let mut confirmed = Instant::now();
        loop {
            tokio::time::sleep(HEARTBEAT_INTERVAL).await;
            // The coordinator evicts a member it has not heard from within the session timeout
            // and hands its share to the others; a member that cannot tell whether it is still
            // in must give its share up by then too, or two processes copy the same partitions
            // (a request's own 30 s timeout is far longer).
            let left = session.saturating_sub(confirmed.elapsed());
            let response = match tokio::time::timeout(left, self.heartbeat()).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(WireError::SessionExpired {
                        cluster: self.cluster.alias.clone(),
                        group: self.group.clone(),
                        session,
                    });
                }
            };
            match response.error_code {
                0 => confirmed = Instant::now(),
                REBALANCE_IN_PROGRESS => {
                    // Give up the share before rejoining, so no partition has two copiers for
                    // longer than a heartbeat interval.
                    share.send_replace(None);
                    return Ok(());
                }
                UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                    share.send_replace(None);
                    self.member_id.clear();
                    return Ok(());
                }
                code => return Err(self.err(kafka_protocol::messages::ApiKey::Heartbeat, code)),
            }
        }
    }

    async fn heartbeat(&mut self) -> Result<HeartbeatResponse, WireError> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let conn = self.coordinator().await?;
        let response = conn.call_negotiated(0..=4, &request).await;
        response.map_err(|e| self.client_err(e))
    }

    async fn leave(&mut self) {
        if self.member_id.is_empty() {
            return;
        }
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_member_id(s(&self.member_id));
        if let Ok(conn) = self.coordinator().await {
            let result: Result<LeaveGroupResponse, _> = conn.call_negotiated(0..=2, &request).await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "leaving the mirror group failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let members: Vec<String> = ["c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let shares = assign(&members);
        assert_eq!(
            shares
                .iter()
                .map(|(m, s)| (m.as_str(), s.index))
                .collect::<Vec<_>>(),
            vec![("a", 0), ("b", 1), ("c", 2)]
        );
        let mut per_member = [0usize; 3];
        for topic in ["orders", "payments", "A.heartbeats"] {
            for p in 0..30 {
                let owners: Vec<u32> = shares
                    .iter()
                    .filter(|(_, s)| s.owns(topic, p))
                    .map(|(_, s)| s.index)
                    .collect();
                assert_eq!(owners.len(), 1, "{topic}-{p}: {owners:?}");
                per_member[owners[0] as usize] += 1;
            }
        }
        assert_eq!(
            per_member,
            [30, 30, 30],
            "consecutive partitions go round the members"
        );
        assert!((0..5).all(|p| Share::ALL.owns("t", p)));
        let (_, share) = shares[1];
        assert_eq!(Share::decode(&share.encode()), Some(share));
        assert_eq!(
            Share::decode(&[0, 0, 0, 3, 0, 0, 0, 3]),
            None,
            "index out of range"
        );
        assert_eq!(Share::decode(&[1]), None);
    }
}
