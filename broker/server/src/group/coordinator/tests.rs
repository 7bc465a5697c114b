//! Unit tests of the coordinator with an explicit clock and an in-memory offsets log: the
//! classic rebalance, liveness, commits and their visibility, replay.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::*;
use crate::group::assignor::TopicsView;
use crate::group::consumer::Settings;

/// Records what would be written to `__consumer_offsets`; every topic has 4 partitions.
#[derive(Default)]
struct MemLog {
    written: RefCell<Vec<(RecordKey, Option<Record>)>>,
    fail: std::cell::Cell<bool>,
}

impl OffsetsLog for MemLog {
    fn append(
        &self,
        _group: &str,
        records: Vec<(RecordKey, Option<Record>)>,
    ) -> Result<(), ApiError> {
        if self.fail.get() {
            return Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                "disk full",
            ));
        }
        self.written.borrow_mut().extend(records);
        Ok(())
    }
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        topic != "missing" && (0..4).contains(&partition)
    }
    fn all_topics(&self) -> TopicsView {
        ["fx-a", "fx-b", "other"]
            .into_iter()
            .map(|n| (n.to_string(), (Uuid::from_u128(n.len() as u128 + 100), 2)))
            .collect()
    }
    fn topics(&self, names: &BTreeSet<String>) -> TopicsView {
        names
            .iter()
            .filter(|n| n.as_str() != "missing")
            .map(|n| (n.clone(), (Uuid::from_u128(n.len() as u128), 4)))
            .collect()
    }
}

fn coordinator() -> Coordinator {
    Coordinator::new(Limits {
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        max_size: 10,
        offset_metadata_max_bytes: 16,
        offsets_retention_ms: 60_000,
        consumer: Settings {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
        },
    })
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from_static(b"md")))
            .collect(),
        require_known_member_id: false,
    }
}

/// A simple (group-less) commit of `offset` to `t` partition 0 of group `g`.
fn simple_commit(offset: i64) -> CommitRequest {
    CommitRequest {
        producer: None,
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    }
}

fn fetched_offset(c: &Coordinator) -> Option<i64> {
    let fetched = c.fetch_offsets("g", Some(vec![("t".into(), vec![0])]));
    fetched[0].1[0].1.as_ref().map(|c| c.offset)
}

#[test]
fn a_pending_commit_is_invisible_until_applied_and_never_beats_a_newer_one() {
    let c = coordinator();
    let log = MemLog::default();
    let t0 = Instant::now();
    let (errors, first) = c.commit_pending(&log, simple_commit(10), t0, 0);
    assert_eq!(errors, vec![no_error()]);
    assert_eq!(log.written.borrow().len(), 1, "appended at once");
    assert_eq!(fetched_offset(&c), None, "not visible before it is durable");

    // A second commit is appended after the first but becomes durable first.
    let (_, second) = c.commit_pending(&log, simple_commit(20), t0, 0);
    c.apply_commit(second.unwrap());
    assert_eq!(fetched_offset(&c), Some(20));
    c.apply_commit(first.unwrap());
    assert_eq!(
        fetched_offset(&c),
        Some(20),
        "the older commit does not win"
    );

    // A commit pending while its group is deleted does not bring the group back.
    let (_, orphan) = c.commit_pending(&log, simple_commit(30), t0, 0);
    assert_eq!(c.delete_group(&log, "g"), no_error());
    c.apply_commit(orphan.unwrap());
    assert_eq!(fetched_offset(&c), None);
    assert!(c.describe("g").is_none(), "the group stays deleted");

    // A failed append leaves nothing pending.
    log.fail.set(true);
    let (errors, none) = c.commit_pending(&log, simple_commit(40), t0, 0);
    assert_eq!(errors, vec![ResponseError::CoordinatorNotAvailable]);
    assert!(none.is_none());
}

fn now_join(c: &Coordinator, log: &MemLog, req: JoinRequest, now: Instant) -> JoinOutcome {
    match c.join(log, req, now, 0) {
        Reply::Now(o) => o,
        Reply::Wait(mut rx) => rx.try_recv().expect("join should have completed"),
    }
}

fn sync_req(member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

#[test]
fn single_member_joins_syncs_and_commits() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let j = now_join(&c, &log, join_req("", None, &["range"]), t0);
    assert_eq!(j.error, 0);
    assert_eq!(j.generation, 1);
    assert_eq!(j.leader, j.member_id);
    assert_eq!(j.members.len(), 1);
    let asg = vec![(j.member_id.clone(), Bytes::from_static(b"p0"))];
    let s = match c.sync(&log, sync_req(&j.member_id, 1, asg), t0, 0) {
        Reply::Wait(mut rx) => rx.try_recv().unwrap(),
        Reply::Now(o) => o,
    };
    assert_eq!((s.error, &s.assignment[..]), (0, &b"p0"[..]));
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    assert_eq!(c.heartbeat("g", 1, &j.member_id, None, t0), no_error());
    let errors = c.commit(
        &log,
        CommitRequest {
            producer: None,
            group_id: "g".into(),
            generation: 1,
            member_id: j.member_id.clone(),
            group_instance_id: None,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset: 42,
                leader_epoch: 3,
                metadata: Some("meta".into()),
            }],
        },
        t0,
        5,
    );
    assert_eq!(errors, vec![no_error()]);
    let fetched = c.fetch_offsets("g", Some(vec![("t".into(), vec![0, 1])]));
    assert_eq!(
        fetched[0].1,
        vec![
            (
                0,
                Some(Committed {
                    offset: 42,
                    leader_epoch: 3,
                    metadata: "meta".into()
                })
            ),
            (1, None)
        ]
    );
    // Group metadata then the offset were written.
    let written = log.written.borrow();
    assert!(matches!(
        written.first(),
        Some((RecordKey::Group { .. }, Some(Record::Group(_))))
    ));
    assert!(matches!(
        written.last(),
        Some((
            RecordKey::Offset { partition: 0, .. },
            Some(Record::Offset(_))
        ))
    ));
}

#[test]
fn member_id_required_then_join() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let mut req = join_req("", None, &["range"]);
    req.require_known_member_id = true;
    let first = now_join(&c, &log, req, t0);
    assert_eq!(first.error, ResponseError::MemberIdRequired.code());
    assert!(first.member_id.starts_with("client-"));
    let mut again = join_req(&first.member_id, None, &["range"]);
    again.require_known_member_id = true;
    let j = now_join(&c, &log, again, t0);
    assert_eq!((j.error, j.generation), (0, 1));
    assert_eq!(j.member_id, first.member_id);
}

#[test]
fn second_member_triggers_rebalance_and_stale_generation_is_rejected() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", None, &["range", "roundrobin"]), t0);
    let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
    // B joins: A learns through its heartbeat and rejoins.
    let b_wait = match c.join(&log, join_req("", None, &["roundrobin"]), t0, 0) {
        Reply::Wait(rx) => rx,
        Reply::Now(o) => panic!("B should wait, got {o:?}"),
    };
    assert_eq!(
        c.heartbeat("g", 1, &a.member_id, None, t0),
        ResponseError::RebalanceInProgress
    );
    let a2 = now_join(
        &c,
        &log,
        join_req(&a.member_id, None, &["range", "roundrobin"]),
        t0,
    );
    let mut b_wait = b_wait;
    let b = b_wait.try_recv().unwrap();
    assert_eq!((a2.generation, b.generation), (2, 2));
    // Only the protocol both support can be chosen.
    assert_eq!(a2.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(a2.leader, a.member_id, "the old leader keeps leading");
    assert_eq!(a2.members.len(), 2);
    assert!(b.members.is_empty(), "only the leader gets the roster");
    // A SyncGroup for the old generation is refused.
    match c.sync(&log, sync_req(&b.member_id, 1, vec![]), t0, 0) {
        Reply::Now(o) => assert_eq!(o.error, ResponseError::IllegalGeneration.code()),
        Reply::Wait(_) => panic!("stale sync must not wait"),
    }
    // So is a commit from an unknown member and one from the old generation.
    let commit = |member: &str, generation| {
        c.commit(
            &log,
            CommitRequest {
                producer: None,
                group_id: "g".into(),
                generation,
                member_id: member.into(),
                group_instance_id: None,
                partitions: vec![CommitPartition {
                    topic: "t".into(),
                    partition: 1,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: None,
                }],
            },
            t0,
            0,
        )
    };
    // The group is CompletingRebalance until the leader syncs.
    assert_eq!(
        commit(&b.member_id, 2),
        vec![ResponseError::RebalanceInProgress]
    );
    let _ = c.sync(&log, sync_req(&a.member_id, 2, vec![]), t0, 0);
    assert_eq!(commit("ghost", 2), vec![ResponseError::UnknownMemberId]);
    assert_eq!(
        commit(&b.member_id, 1),
        vec![ResponseError::IllegalGeneration]
    );
    assert_eq!(commit(&b.member_id, 2), vec![no_error()]);
}

#[test]
fn inconsistent_protocol_and_unknown_topics_get_kafka_errors() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
    let mut other = join_req("", None, &["range"]);
    other.protocol_type = "connect".into();
    assert_eq!(
        now_join(&c, &log, other, t0).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    assert_eq!(
        now_join(&c, &log, join_req("", None, &["sticky"]), t0).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let mut bad_session = join_req("", None, &["range"]);
    bad_session.session_timeout_ms = 10;
    assert_eq!(
        now_join(&c, &log, bad_session, t0).error,
        ResponseError::InvalidSessionTimeout.code()
    );
    let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
    let errors = c.commit(
        &log,
        CommitRequest {
            producer: None,
            group_id: "g".into(),
            generation: 1,
            member_id: a.member_id.clone(),
            group_instance_id: None,
            partitions: vec![
                CommitPartition {
                    topic: "missing".into(),
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: None,
                },
                CommitPartition {
                    topic: "t".into(),
                    partition: 9,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: None,
                },
                CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: Some("x".repeat(17)),
                },
                CommitPartition {
                    topic: "t".into(),
                    partition: 1,
                    offset: 7,
                    leader_epoch: -1,
                    metadata: None,
                },
            ],
        },
        t0,
        0,
    );
    assert_eq!(
        errors,
        vec![
            ResponseError::UnknownTopicOrPartition,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::OffsetMetadataTooLarge,
            no_error()
        ]
    );
    // The group is still usable.
    assert_eq!(c.heartbeat("g", 1, &a.member_id, None, t0), no_error());
}

#[test]
fn expired_session_removes_member_and_group_becomes_empty() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
    let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
    c.tick(&log, t0 + Duration::from_secs(5), 0);
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
    c.tick(&log, t0 + Duration::from_secs(11), 0);
    let g = c.describe("g").unwrap();
    assert_eq!((g.state, g.members.len()), (GroupState::Empty, 0));
    assert_eq!(
        c.heartbeat("g", 1, &a.member_id, None, t0),
        ResponseError::UnknownMemberId
    );
}

#[test]
fn member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
    let _ = c.sync(&log, sync_req(&a.member_id, 1, vec![]), t0, 0);
    let mut b = match c.join(&log, join_req("", None, &["range"]), t0, 0) {
        Reply::Wait(rx) => rx,
        Reply::Now(o) => panic!("{o:?}"),
    };
    // A keeps heartbeating but never rejoins (stuck in processing, like max.poll.interval.ms).
    for s in [8, 16, 24] {
        let at = t0 + Duration::from_secs(s);
        assert_eq!(
            c.heartbeat("g", 1, &a.member_id, None, at),
            ResponseError::RebalanceInProgress
        );
        c.tick(&log, at, 0);
    }
    c.tick(&log, t0 + Duration::from_secs(29), 0);
    assert!(b.try_recv().is_err());
    c.tick(&log, t0 + Duration::from_secs(31), 0);
    let b = b.try_recv().unwrap();
    assert_eq!((b.error, b.generation), (0, 2));
    assert_eq!(b.leader, b.member_id);
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
}

#[test]
fn static_member_rejoins_without_rebalance_and_old_id_is_fenced() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", Some("i-a"), &["range"]), t0);
    let b = match c.join(&log, join_req("", Some("i-b"), &["range"]), t0, 0) {
        Reply::Wait(rx) => rx,
        Reply::Now(o) => panic!("{o:?}"),
    };
    let a2 = now_join(
        &c,
        &log,
        join_req(&a.member_id, Some("i-a"), &["range"]),
        t0,
    );
    let mut b = b;
    let b1 = b.try_recv().unwrap();
    let asg = vec![
        (a2.member_id.clone(), Bytes::from_static(b"A")),
        (b1.member_id.clone(), Bytes::from_static(b"B")),
    ];
    let _ = c.sync(&log, sync_req(&a2.member_id, 2, asg), t0, 0);
    // B restarts with the same instance id: same generation, same assignment, no rebalance.
    let b2 = now_join(&c, &log, join_req("", Some("i-b"), &["range"]), t0);
    assert_eq!((b2.error, b2.generation), (0, 2));
    assert_ne!(b2.member_id, b1.member_id);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    let s = match c.sync(&log, sync_req(&b2.member_id, 2, vec![]), t0, 0) {
        Reply::Now(o) => o,
        Reply::Wait(_) => panic!("stable group answers at once"),
    };
    assert_eq!(&s.assignment[..], b"B");
    assert_eq!(
        c.heartbeat("g", 2, &b1.member_id, None, t0),
        ResponseError::UnknownMemberId
    );
    assert_eq!(
        c.heartbeat("g", 2, &b2.member_id, Some("i-x"), t0),
        ResponseError::FencedInstanceId
    );
}

#[test]
fn leave_empties_group_and_delete_requires_empty() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
    assert_eq!(c.delete_group(&log, "g"), ResponseError::NonEmptyGroup);
    assert_eq!(
        c.leave(&log, "g", &[(a.member_id.clone(), None)], t0, 0),
        Ok(vec![no_error()])
    );
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    assert_eq!(c.delete_group(&log, "g"), no_error());
    assert!(c.describe("g").is_none());
    assert_eq!(c.delete_group(&log, "g"), ResponseError::GroupIdNotFound);
    assert!(matches!(
        log.written.borrow().last(),
        Some((RecordKey::Group { .. }, None))
    ));
}

#[test]
fn failed_persistence_is_reported_not_acknowledged() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    log.fail.set(true);
    let errors = c.commit(&log, simple_commit(5), t0, 0);
    assert_eq!(errors, vec![ResponseError::CoordinatorNotAvailable]);
    assert_eq!(fetched_offset(&c), None);
}

#[test]
fn state_reloads_from_records_and_offsets_expire_when_empty() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let a = now_join(&c, &log, join_req("", None, &["range"]), t0);
    let _ = c.sync(
        &log,
        sync_req(
            &a.member_id,
            1,
            vec![(a.member_id.clone(), Bytes::from_static(b"X"))],
        ),
        t0,
        0,
    );
    let _ = c.commit(
        &log,
        CommitRequest {
            producer: None,
            group_id: "g".into(),
            generation: 1,
            member_id: a.member_id.clone(),
            group_instance_id: None,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 2,
                offset: 9,
                leader_epoch: 1,
                metadata: Some("m".into()),
            }],
        },
        t0,
        1_000,
    );
    let restored = coordinator();
    for (k, v) in log.written.borrow().iter().cloned() {
        restored.load_record(k, v, t0, 1_000);
    }
    let g = restored.describe("g").unwrap();
    assert_eq!((g.state, g.members.len()), (GroupState::Stable, 1));
    assert_eq!(&g.members[0].assignment[..], b"X");
    assert_eq!(
        restored.heartbeat("g", 1, &a.member_id, None, t0),
        no_error()
    );
    assert_eq!(
        restored.fetch_offsets("g", None)[0].1,
        vec![(
            2,
            Some(Committed {
                offset: 9,
                leader_epoch: 1,
                metadata: "m".into()
            })
        )]
    );
    // Not expired while the group has members, expired once it has been empty long enough.
    assert_eq!(restored.expire_offsets(&log, 1_000_000), 0);
    let _ = restored.leave(&log, "g", &[(a.member_id.clone(), None)], t0, 2_000);
    assert_eq!(restored.expire_offsets(&log, 2_000 + 59_000), 0);
    assert_eq!(restored.expire_offsets(&log, 2_000 + 61_000), 1);
    assert!(
        restored.describe("g").is_none(),
        "an empty group without offsets is deleted"
    );
}

fn consumer_hb(member: &str, epoch: i32, regex: Option<&str>) -> crate::group::consumer::Heartbeat {
    crate::group::consumer::Heartbeat {
        member_id: member.into(),
        member_epoch: epoch,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: (epoch == 0 && regex.is_none()).then(|| vec!["t".to_string()]),
        subscribed_topic_regex: regex.map(str::to_string),
        server_assignor: None,
        owned: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    }
}

/// KIP-848 groups are written as Kafka 4.0's records and a new coordinator (after a failover or
/// restart) rebuilt from them knows every member with its epoch and assignment.
#[test]
fn consumer_groups_survive_a_coordinator_change() {
    let (c, log, t0) = (coordinator(), MemLog::default(), Instant::now());
    let (a, written) = c
        .consumer_heartbeat(&log, "g", consumer_hb("", 0, None), t0, 0)
        .unwrap();
    assert!(written, "a join is written");
    let (b, _) = c
        .consumer_heartbeat(&log, "g", consumer_hb("", 0, Some("fx-.*")), t0, 0)
        .unwrap();
    assert!(
        log.written
            .borrow()
            .iter()
            .all(|(k, _)| matches!(k, RecordKey::Consumer(_)))
    );
    let restored = coordinator();
    for (k, v) in log.written.borrow().iter().cloned() {
        restored.load_record(k, v, t0, 0);
    }
    assert_eq!(
        restored.consumer_describe("g").map(|d| (d.0, d.1)),
        c.consumer_describe("g").map(|d| (d.0, d.1)),
        "group and assignment epochs"
    );
    let members = |c: &Coordinator| {
        c.consumer_describe("g")
            .unwrap()
            .4
            .into_iter()
            .map(|m| (m.member_id, m.member_epoch, m.assigned, m.target, m.regex))
            .collect::<Vec<_>>()
    };
    assert_eq!(members(&restored), members(&c));
    // Both members go on at their epochs; neither is unknown or fenced.
    for (id, epoch, ..) in members(&c) {
        let (reply, _) = restored
            .consumer_heartbeat(&log, "g", consumer_hb(&id, epoch, None), t0, 0)
            .unwrap();
        assert_eq!((reply.member_id, reply.member_epoch >= epoch), (id, true));
    }
    // Deleting the empty group tombstones its consumer records.
    for m in [&a, &b] {
        restored
            .consumer_heartbeat(&log, "g", consumer_hb(&m.member_id, -1, None), t0, 0)
            .unwrap();
    }
    log.written.borrow_mut().clear();
    assert_eq!(restored.delete_group(&log, "g"), no_error());
    let gone = coordinator();
    for (k, v) in log.written.borrow().iter().cloned() {
        gone.load_record(k, v, t0, 0);
    }
    assert!(gone.consumer_describe("g").is_none());
}
