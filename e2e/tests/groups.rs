//! Consumer groups through librdkafka and raw frames: rebalances while messages flow (eager,
//! cooperative-sticky and KIP-848 protocols), committed offsets and metadata across SIGTERM and
//! SIGKILL, and Kafka's error codes for stale, unknown or inconsistent group requests.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use strait_e2e::group_member::{GroupLog, GroupMember, RebalanceKind};
use strait_e2e::group_wire::{GroupWire, MEMBER_ID_REQUIRED, assignment, subscription};
use strait_e2e::load::{BackgroundProducer, LoadPlan, payload_of};
use strait_e2e::wire::WireClient;
use strait_e2e::{Admin, Broker, TestMessage, produce_all, producer_config, wait_for, wait_until};

const PARTITIONS: i32 = 6;
/// Messages produced while the group rebalances (the 300k).
const TOTAL: u64 = 300_000;
/// Messages per second: the stream lasts 30 s, long enough for both membership changes to
/// complete while it flows.
const RATE: u32 = 10_000;
/// Messages processed in each phase before the next membership change.
const PER_PHASE: usize = 5_000;
const STABLE_TIMEOUT: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Kafka error codes checked below.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;

/// Which group protocol the members use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Classic protocol, librdkafka's default eager assignors (range, roundrobin).
    Eager,
    /// Classic protocol, cooperative-sticky assignor (incremental rebalances).
    CooperativeSticky,
    /// KIP-848 `group.protocol=consumer`: the broker assigns.
    Consumer,
}

fn member_config(bootstrap: &str, group: &str, protocol: Protocol) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("check.crcs", "true");
    match protocol {
        Protocol::Eager => {
            config
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "300");
        }
        Protocol::CooperativeSticky => {
            config
                .set("partition.assignment.strategy", "cooperative-sticky")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "300");
        }
        Protocol::Consumer => {
            config.set("group.protocol", "consumer");
        }
    }
    config
}

/// One stable generation: the callback sequence number it was observed at and who owned what.
#[derive(Debug, Clone)]
struct Stable {
    seq: u64,
    owners: HashMap<String, BTreeSet<i32>>,
}

/// Waits until exactly `members` own partitions, each an equal share, together all of them:
/// the assignment of the new generation is a partition of the topic's partitions.
fn wait_stable(log: &GroupLog, members: &[&str], what: &str) -> Stable {
    let share = PARTITIONS as usize / members.len();
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let found = wait_for(STABLE_TIMEOUT, what, || {
        let (seq, owners) = log.snapshot();
        let names: BTreeSet<&str> = owners.keys().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = members.iter().copied().collect();
        let union: BTreeSet<i32> = owners.values().flatten().copied().collect();
        let total: usize = owners.values().map(BTreeSet::len).sum();
        let balanced = owners.values().all(|s| s.len() == share);
        (names == wanted && union == all && total == all.len() && balanced)
            .then_some(Stable { seq, owners })
    });
    match found {
        Ok(stable) => stable,
        Err(e) => panic!(
            "{e}: ownership {:?}\nevents {:#?}\nviolations {:?}",
            log.ownership(),
            log.events(),
            log.violations()
        ),
    }
}

fn wait_processed(log: &GroupLog, at_least: usize, what: &str) {
    wait_until(STABLE_TIMEOUT, what, || log.processed_count() >= at_least)
        .unwrap_or_else(|e| panic!("{e}: processed {}", log.processed_count()));
}

/// Revocations of `member` between two callback sequence numbers.
fn revoked_between(log: &GroupLog, member: &str, after: u64, until: u64) -> BTreeSet<i32> {
    log.events()
        .iter()
        .filter(|e| e.member == member && e.kind == RebalanceKind::Revoke)
        .filter(|e| e.seq > after && e.seq <= until)
        .flat_map(|e| e.partitions.iter().copied())
        .collect()
}

/// Three members on six partitions while messages are produced; one leaves and another joins
/// mid-stream. Checks the assignment of each generation, ownership never overlapping, every
/// produced message processed at least once, and what the protocol promises about movement.
fn rebalance_scenario(protocol: Protocol) {
    // KIP-848 members learn of a new target assignment on their next heartbeat; Kafka's 5 s
    // default would stretch each rebalance over several seconds of the stream.
    let broker = Broker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "500"),
    ])
    .expect("broker");
    let topic = "group-stream";
    let group = format!("group-{protocol:?}").to_lowercase();
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, PARTITIONS, &[]))
        .expect("create topic");

    let log = Arc::new(GroupLog::default());
    let config = member_config(&broker.bootstrap(), &group, protocol);
    let run_for = Duration::from_secs(240);
    let spawn = |name: &str| {
        GroupMember::spawn(name, &config, topic, log.clone(), run_for).expect("spawn member")
    };
    let a = spawn("member-a");
    let b = spawn("member-b");
    let c = spawn("member-c");
    let first = wait_stable(
        &log,
        &["member-a", "member-b", "member-c"],
        "a, b, c stable",
    );

    let mut pconfig = producer_config(&broker.bootstrap());
    pconfig.set("acks", "all");
    let producer = BackgroundProducer::start(
        pconfig,
        topic,
        LoadPlan {
            partitions: PARTITIONS,
            limit: Some(TOTAL),
            rate: Some(RATE),
            max_duration: Duration::from_secs(240),
        },
    )
    .expect("producer");
    // Membership changes are tied to the stream's progress: c leaves a third of the way in,
    // d joins at two thirds, and both rebalances must settle before the stream ends.
    let wait_sent = |count: u64, what: &str| {
        wait_until(STABLE_TIMEOUT, what, || producer.sent() as u64 >= count)
            .unwrap_or_else(|e| panic!("{e}: sent {}", producer.sent()));
    };
    wait_processed(&log, PER_PHASE, "first phase processed");
    wait_sent(TOTAL / 3, "a third of the stream sent");

    c.leave().expect("member-c leaves");
    let second = wait_stable(&log, &["member-a", "member-b"], "a, b stable after c left");
    let mark = log.processed_count();
    wait_processed(&log, mark + PER_PHASE, "second phase processed");
    assert!(
        !producer.finished(),
        "the stream ended before the group settled after c left"
    );
    wait_sent(2 * TOTAL / 3, "two thirds of the stream sent");

    let d = spawn("member-d");
    let third = wait_stable(
        &log,
        &["member-a", "member-b", "member-d"],
        "a, b, d stable",
    );
    let mark = log.processed_count();
    wait_processed(&log, mark + PER_PHASE, "third phase processed");
    assert!(
        !producer.finished(),
        "the stream ended before the group settled after d joined"
    );
    wait_until(STABLE_TIMEOUT, "whole stream sent and flushed", || {
        producer.finished()
    })
    .unwrap_or_else(|e| panic!("{e}: sent {}", producer.sent()));

    let acked = producer.stop().expect("stop producer");
    let failed: Vec<_> = acked.iter().filter(|a| a.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "failed deliveries: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert_eq!(acked.len() as u64, TOTAL, "delivery reports");
    // Every acknowledged (partition, offset) must be processed.
    let expected: HashMap<(i32, i64), String> = acked
        .iter()
        .filter_map(|a| {
            a.result
                .as_ref()
                .ok()
                .map(|o| ((a.partition, *o), payload_of(a.seq)))
        })
        .collect();
    let coverage = |log: &GroupLog| -> usize {
        // Cheap precheck: at least one processing per acknowledged message is necessary.
        let processed = log.processed_count();
        if processed < expected.len() {
            return expected.len() - processed;
        }
        let seen: BTreeSet<(i32, i64)> = log
            .processed_messages()
            .iter()
            .map(|p| (p.partition, p.offset))
            .collect();
        expected.keys().filter(|k| !seen.contains(k)).count()
    };
    wait_until(
        STABLE_TIMEOUT,
        "every acknowledged message processed",
        || coverage(&log) == 0,
    )
    .unwrap_or_else(|e| panic!("{e}: {} missing", coverage(&log)));
    for member in [a, b, d] {
        member.leave().expect("member leaves");
    }

    let violations = log.violations();
    assert!(
        violations.is_empty(),
        "ownership violations: {violations:#?}"
    );
    let errors: Vec<_> = log
        .events()
        .into_iter()
        .filter(|e| e.kind == RebalanceKind::Error)
        .collect();
    let processed = log.processed_messages();
    let mut duplicates = 0usize;
    let mut seen = BTreeSet::new();
    for p in &processed {
        let want = expected.get(&(p.partition, p.offset)).unwrap_or_else(|| {
            panic!(
                "{} processed {}@{}, never acknowledged",
                p.member, p.partition, p.offset
            )
        });
        assert_eq!(
            p.payload,
            want.as_bytes(),
            "payload of {}@{} processed by {}",
            p.partition,
            p.offset,
            p.member
        );
        if !seen.insert((p.partition, p.offset)) {
            duplicates += 1;
        }
    }
    println!(
        "{protocol:?}: {} produced, {} processed, {duplicates} processed twice, {} client errors {:?}, commit failures {:?}",
        expected.len(),
        processed.len(),
        errors.len(),
        errors.iter().map(|e| &e.detail).collect::<Vec<_>>(),
        log.commit_failures()
    );
    println!(
        "{protocol:?} generations: {:?} / {:?} / {:?}",
        first.owners, second.owners, third.owners
    );

    match protocol {
        Protocol::CooperativeSticky => {
            // c's partitions move; a and b keep theirs through the rebalance.
            for m in ["member-a", "member-b"] {
                let revoked = revoked_between(&log, m, first.seq, second.seq);
                assert!(revoked.is_empty(), "{m} lost {revoked:?} when c left");
                assert!(
                    first.owners[m].is_subset(&second.owners[m]),
                    "{m}: {:?} then {:?}",
                    first.owners[m],
                    second.owners[m]
                );
                // When d joins, a and b only give partitions up, and only those they lose.
                let revoked = revoked_between(&log, m, second.seq, third.seq);
                let kept: BTreeSet<i32> = second.owners[m]
                    .intersection(&third.owners[m])
                    .copied()
                    .collect();
                assert!(
                    revoked.is_disjoint(&kept),
                    "{m} had {kept:?} revoked although it kept them"
                );
                assert!(third.owners[m].is_subset(&second.owners[m]));
            }
        }
        Protocol::Eager => {
            // Eager: every remaining member gives up everything at each rebalance.
            for m in ["member-a", "member-b"] {
                let revoked = revoked_between(&log, m, first.seq, second.seq);
                assert!(
                    revoked.is_superset(&first.owners[m]),
                    "{m}: eager revocation of {:?} when c left, saw {revoked:?}",
                    first.owners[m]
                );
            }
        }
        Protocol::Consumer => {}
    }
    // After everyone left, the committed offsets are the ends of the partitions.
    let check = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", &group)
        .create::<BaseConsumer>()
        .expect("offset checker");
    let mut list = TopicPartitionList::new();
    list.add_partition_range(topic, 0, PARTITIONS - 1);
    let committed = check
        .committed_offsets(list, CALL_TIMEOUT)
        .expect("committed offsets");
    for element in committed.elements() {
        let end = expected
            .keys()
            .filter(|(p, _)| *p == element.partition())
            .map(|(_, o)| o + 1)
            .max()
            .unwrap_or(0);
        assert_eq!(
            element.offset(),
            Offset::Offset(end),
            "committed offset of partition {}",
            element.partition()
        );
    }
}

#[test]
fn eager_group_rebalances_without_skipping() {
    rebalance_scenario(Protocol::Eager);
}

#[test]
fn cooperative_sticky_keeps_unmoved_partitions() {
    rebalance_scenario(Protocol::CooperativeSticky);
}

#[test]
fn consumer_protocol_group_kip848() {
    let broker = Broker::start(&[]).expect("broker");
    let versions = WireClient::connect(broker.addr())
        .and_then(|mut c| c.api_versions())
        .expect("ApiVersions");
    if !versions.contains_key(&(ApiKey::ConsumerGroupHeartbeat as i16)) {
        println!(
            "SKIP consumer_protocol_group_kip848: the broker does not advertise ConsumerGroupHeartbeat (key 68), so group.protocol=consumer (KIP-848) is not implemented"
        );
        return;
    }
    drop(broker);
    rebalance_scenario(Protocol::Consumer);
}

/// Committed `(offset, metadata)` per partition.
type Commits = HashMap<i32, (i64, String)>;

/// A consumer of `group` with a bounded close (dropping an unclosed consumer can wait forever).
struct Member(Option<BaseConsumer>);

impl Member {
    fn new(bootstrap: &str, group: &str) -> Member {
        let consumer = member_config(bootstrap, group, Protocol::Eager)
            .set("enable.auto.commit", "false")
            .create::<BaseConsumer>()
            .expect("consumer");
        Member(Some(consumer))
    }

    fn consumer(&self) -> &BaseConsumer {
        self.0.as_ref().expect("consumer present until drop")
    }

    /// Subscribes and polls until the assignment has `partitions` partitions; returns the first
    /// message seen per partition.
    fn join(&self, topic: &str, partitions: usize) -> HashMap<i32, i64> {
        let consumer = self.consumer();
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut first = HashMap::new();
        let deadline = Instant::now() + STABLE_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no assignment of {partitions} partitions"
            );
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                first.entry(message.partition()).or_insert(message.offset());
            }
            let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
            if assigned == partitions && first.len() == partitions {
                return first;
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            if consumer.close_queue().is_err() {
                std::mem::forget(consumer);
                return;
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while !consumer.closed() && Instant::now() < deadline {
                let _ = consumer.poll(Duration::from_millis(50));
            }
            if !consumer.closed() {
                std::mem::forget(consumer);
            }
        }
    }
}

/// `(offset, metadata)` per partition as committed for `group`, read with librdkafka's
/// committed() (OffsetFetch), retried while the coordinator loads after a restart.
fn committed(bootstrap: &str, group: &str, topic: &str, n: i32) -> Commits {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    wait_for(Duration::from_secs(60), "committed offsets", || {
        let mut list = TopicPartitionList::new();
        list.add_partition_range(topic, 0, n - 1);
        let got = consumer.committed_offsets(list, CALL_TIMEOUT).ok()?;
        let mut out = HashMap::new();
        for e in got.elements() {
            e.error().ok()?;
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            out.insert(e.partition(), (offset, e.metadata().to_string()));
        }
        Some(out)
    })
    .expect("committed offsets readable")
}

fn commit_with_metadata(consumer: &BaseConsumer, topic: &str, offsets: &Commits) {
    let mut list = TopicPartitionList::new();
    for (partition, (offset, metadata)) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .expect("add partition");
        let mut element = list
            .find_partition(topic, *partition)
            .expect("element just added");
        element.set_metadata(metadata.as_str());
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .expect("sync commit");
}

/// Checks the committed offsets of both groups, through librdkafka and through raw OffsetFetch
/// (which shows the metadata string exactly as stored).
fn assert_committed(broker: &Broker, topic: &str, groups: &[(&str, &Commits)], when: &str) {
    for (group, want) in groups {
        let got = committed(&broker.bootstrap(), group, topic, 3);
        assert_eq!(&got, *want, "{group} committed offsets {when}");
        let mut wire = GroupWire::connect(broker.addr()).expect("wire");
        let (error, raw) = wire
            .fetch_offsets(group, topic, &[0, 1, 2])
            .expect("OffsetFetch");
        assert_eq!(error, NONE, "OffsetFetch error {when}");
        for (p, (offset, metadata)) in want.iter() {
            assert_eq!(
                raw.get(p),
                Some(&(NONE, *offset, Some(metadata.clone()))),
                "{group} partition {p} over the wire {when}"
            );
        }
    }
}

#[test]
fn committed_offsets_survive_sigterm_and_sigkill() {
    let mut broker = Broker::start(&[("group.initial.rebalance.delay.ms", "0")]).expect("broker");
    let topic = "committed";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, 3, &[]))
        .expect("create topic");
    let messages: Vec<TestMessage> = (0..300)
        .map(|i| TestMessage {
            value: Some(format!("v{i}").into_bytes()),
            partition: Some(i % 3),
            ..TestMessage::default()
        })
        .collect();
    let delivered = produce_all(
        &producer_config(&broker.bootstrap()),
        topic,
        &messages,
        CALL_TIMEOUT,
    )
    .expect("produce");
    assert!(delivered.iter().all(|d| d.result.is_ok()));

    // Two groups, so that more than one __consumer_offsets partition is likely involved.
    let round = |tag: &str, base: i64| -> Commits {
        (0..3)
            .map(|p| {
                let metadata = if p == 2 {
                    String::new()
                } else {
                    format!("{tag}-p{p}-ü")
                };
                (p, (base + 10 * i64::from(p), metadata))
            })
            .collect()
    };
    let first_a = round("a1", 17);
    let first_b = round("b1", 3);
    for (group, offsets) in [("durable-a", &first_a), ("durable-b", &first_b)] {
        let member = Member::new(&broker.bootstrap(), group);
        member.join(topic, 3);
        commit_with_metadata(member.consumer(), topic, offsets);
    }
    assert_committed(
        &broker,
        topic,
        &[("durable-a", &first_a), ("durable-b", &first_b)],
        "before restart",
    );

    let status = broker.stop().expect("SIGTERM");
    assert!(status.success(), "exit after SIGTERM: {status}");
    broker.restart().expect("restart after SIGTERM");
    assert_committed(
        &broker,
        topic,
        &[("durable-a", &first_a), ("durable-b", &first_b)],
        "after SIGTERM",
    );

    // A member resumes exactly at the committed offsets, then commits new ones.
    let second_a = round("a2", 55);
    {
        let member = Member::new(&broker.bootstrap(), "durable-a");
        let resumed = member.join(topic, 3);
        for (p, (offset, _)) in &first_a {
            assert_eq!(
                resumed.get(p),
                Some(offset),
                "partition {p} resumed at the commit"
            );
        }
        commit_with_metadata(member.consumer(), topic, &second_a);
    }
    broker.kill().expect("SIGKILL");
    broker.restart().expect("restart after SIGKILL");
    let ready = broker.ready_line().unwrap_or_default();
    assert!(
        ready.contains("clean_start=false"),
        "recovery after SIGKILL: {ready}"
    );
    assert_committed(
        &broker,
        topic,
        &[("durable-a", &second_a), ("durable-b", &first_b)],
        "after SIGKILL",
    );
    let member = Member::new(&broker.bootstrap(), "durable-a");
    let resumed = member.join(topic, 3);
    for (p, (offset, _)) in &second_a {
        assert_eq!(
            resumed.get(p),
            Some(offset),
            "partition {p} resumed after SIGKILL"
        );
    }
}

/// Raw JoinGroup/SyncGroup/Heartbeat/OffsetCommit with wrong protocol types, stale generations,
/// unknown or departed members and unknown topics: each gets Kafka's error code and the group
/// keeps working for its real member.
#[test]
fn bad_group_requests_get_kafka_error_codes() {
    let broker = Broker::start(&[("group.initial.rebalance.delay.ms", "0")]).expect("broker");
    let topic = "bad-group-input";
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(topic, 2, &[]))
        .expect("create topic");
    let group = "bad-input-group";
    let session = 30_000;
    let sub = subscription(&[topic]).expect("subscription");
    let range = [("range", sub.clone())];

    let mut a = GroupWire::connect(broker.addr()).expect("connect a");
    let (error, node, port) = a.find_coordinator(group).expect("FindCoordinator");
    assert_eq!(
        (error, i32::from(broker.port())),
        (NONE, port),
        "coordinator of {group} (node {node})"
    );
    let (error, joined) = a
        .join(group, "", "consumer", &range, session)
        .expect("join a");
    assert_eq!(error, NONE, "first JoinGroup");
    let a1 = joined.expect("joined");
    assert_eq!(a1.leader, a1.member_id, "the only member leads");
    assert_eq!(a1.protocol_name.as_deref(), Some("range"));
    let both = assignment(topic, &[0, 1]).expect("assignment");
    let (error, got) = a
        .sync(
            group,
            a1.generation_id,
            &a1.member_id,
            &[(&a1.member_id, both.clone())],
        )
        .expect("sync");
    assert_eq!(
        (error, got),
        (NONE, both.clone()),
        "SyncGroup returns the leader's assignment"
    );
    assert_eq!(
        a.heartbeat(group, a1.generation_id, &a1.member_id).unwrap(),
        NONE
    );

    // A different protocol type, or no protocol in common, is INCONSISTENT_GROUP_PROTOCOL.
    let mut b = GroupWire::connect(broker.addr()).expect("connect b");
    let (error, _) = b
        .join(group, "", "connect", &[("range", sub.clone())], session)
        .expect("join with other protocol type");
    assert_eq!(
        error, INCONSISTENT_GROUP_PROTOCOL,
        "JoinGroup with protocol type 'connect'"
    );
    let (error, _) = b
        .join(
            group,
            "",
            "consumer",
            &[("no-such-assignor", sub.clone())],
            session,
        )
        .expect("join with unknown assignor");
    assert_eq!(
        error, INCONSISTENT_GROUP_PROTOCOL,
        "JoinGroup without a common protocol"
    );
    assert_eq!(
        a.heartbeat(group, a1.generation_id, &a1.member_id).unwrap(),
        NONE,
        "rejected joins leave the generation alone"
    );

    // The leader rejoining starts generation 2; SyncGroup and Heartbeat for generation 1 are stale.
    let (error, joined) = a
        .join(group, &a1.member_id, "consumer", &range, session)
        .expect("rejoin");
    assert_eq!(error, NONE, "leader rejoin");
    let a2 = joined.expect("joined");
    assert!(a2.generation_id > a1.generation_id, "{a2:?} after {a1:?}");
    let (error, _) = a
        .sync(
            group,
            a1.generation_id,
            &a1.member_id,
            &[(&a1.member_id, both.clone())],
        )
        .expect("stale sync");
    assert_eq!(
        error, ILLEGAL_GENERATION,
        "SyncGroup for the previous generation"
    );
    let (error, _) = a
        .sync(
            group,
            a2.generation_id,
            &a2.member_id,
            &[(&a2.member_id, both.clone())],
        )
        .expect("sync");
    assert_eq!(error, NONE, "SyncGroup for the current generation");
    assert_eq!(
        a.heartbeat(group, a1.generation_id, &a1.member_id).unwrap(),
        ILLEGAL_GENERATION,
        "Heartbeat for the previous generation"
    );
    assert_eq!(
        a.heartbeat(group, a2.generation_id, &a2.member_id).unwrap(),
        NONE
    );

    // Commits: a stale generation, an unknown member, an admin-style commit to a live group.
    let commit_one = |w: &mut GroupWire, generation: i32, member: &str, offset: i64| {
        w.commit(group, generation, member, &[(topic, 0, offset, "m")])
            .expect("OffsetCommit")
            .get(&(topic.to_string(), 0))
            .copied()
    };
    assert_eq!(
        commit_one(&mut a, a2.generation_id, &a2.member_id, 5),
        Some(NONE)
    );
    assert_eq!(
        commit_one(&mut a, a1.generation_id, &a2.member_id, 6),
        Some(ILLEGAL_GENERATION),
        "commit with a stale generation"
    );
    assert_eq!(
        commit_one(&mut b, a2.generation_id, "no-such-member", 6),
        Some(UNKNOWN_MEMBER_ID),
        "commit from an unknown member"
    );
    assert_eq!(
        commit_one(&mut b, -1, "", 6),
        Some(UNKNOWN_MEMBER_ID),
        "generation -1 commit to a group with members"
    );

    // A second member joins (a rebalance a learns of by heartbeat), then leaves: it is fenced.
    let first = b
        .join_once(group, "", "consumer", &range, session)
        .expect("join b");
    let b_id = if first.error_code == MEMBER_ID_REQUIRED {
        first.member_id.to_string()
    } else {
        panic!(
            "JoinGroup v{} without member id: {first:?}",
            b.version(ApiKey::JoinGroup)
        )
    };
    let pending = b
        .start_join(group, &b_id, "consumer", &range, session)
        .expect("start join b");
    let hb = wait_for(Duration::from_secs(20), "REBALANCE_IN_PROGRESS", || {
        let code = a.heartbeat(group, a2.generation_id, &a2.member_id).ok()?;
        (code != NONE).then_some(code)
    })
    .expect("heartbeat sees the rebalance");
    assert_eq!(hb, REBALANCE_IN_PROGRESS, "heartbeat during a rebalance");
    let (error, joined) = a
        .join(group, &a2.member_id, "consumer", &range, session)
        .expect("a rejoins");
    assert_eq!(error, NONE);
    let a3 = joined.expect("joined");
    let b3 = b.finish_join(pending).expect("b's JoinGroup answer");
    assert_eq!(b3.error_code, NONE, "b joins");
    assert_eq!(b3.generation_id, a3.generation_id);
    let mut members = a3.members.clone();
    members.sort();
    let mut expected_members = vec![a3.member_id.clone(), b_id.clone()];
    expected_members.sort();
    assert_eq!(members, expected_members, "the leader sees both members");
    let only = |p: i32| assignment(topic, &[p]).expect("assignment");
    let (error, _) = a
        .sync(
            group,
            a3.generation_id,
            &a3.member_id,
            &[(&a3.member_id, only(0)), (&b_id, only(1))],
        )
        .expect("leader sync");
    assert_eq!(error, NONE);
    let (error, got) = b
        .sync(group, b3.generation_id, &b_id, &[])
        .expect("follower sync");
    assert_eq!(
        (error, got),
        (NONE, only(1)),
        "the follower gets its assignment"
    );
    assert_eq!(
        commit_one(&mut b, b3.generation_id, &b_id, 9),
        Some(NONE),
        "b commits"
    );
    let (error, member_error) = b.leave(group, &b_id).expect("leave");
    assert_eq!(error, NONE, "LeaveGroup");
    assert!(
        member_error.is_none_or(|e| e == NONE),
        "LeaveGroup member error {member_error:?}"
    );
    assert_eq!(
        commit_one(&mut b, b3.generation_id, &b_id, 10),
        Some(UNKNOWN_MEMBER_ID),
        "commit from a member that left"
    );
    assert_eq!(
        b.heartbeat(group, b3.generation_id, &b_id).unwrap(),
        UNKNOWN_MEMBER_ID,
        "heartbeat from a member that left"
    );

    // The remaining member rejoins and the group is usable.
    let code = wait_for(Duration::from_secs(20), "a to see the rebalance", || {
        let code = a.heartbeat(group, a3.generation_id, &a3.member_id).ok()?;
        (code != NONE).then_some(code)
    })
    .expect("heartbeat");
    assert_eq!(code, REBALANCE_IN_PROGRESS);
    let (error, joined) = a
        .join(group, &a3.member_id, "consumer", &range, session)
        .expect("rejoin");
    assert_eq!(error, NONE);
    let a4 = joined.expect("joined");
    assert_eq!(a4.members, vec![a4.member_id.clone()], "only a remains");
    let (error, _) = a
        .sync(
            group,
            a4.generation_id,
            &a4.member_id,
            &[(&a4.member_id, both)],
        )
        .expect("sync");
    assert_eq!(error, NONE);

    // Unknown topics and partitions: UNKNOWN_TOPIC_OR_PARTITION for them, success for the rest.
    let results = a
        .commit(
            group,
            a4.generation_id,
            &a4.member_id,
            &[
                ("no-such-topic", 0, 1, ""),
                (topic, 99, 1, ""),
                (topic, 0, 7, "ok"),
            ],
        )
        .expect("OffsetCommit");
    assert_eq!(
        results.get(&("no-such-topic".to_string(), 0)),
        Some(&UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        results.get(&(topic.to_string(), 99)),
        Some(&UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(results.get(&(topic.to_string(), 0)), Some(&NONE));
    let (error, fetched) = a.fetch_offsets(group, topic, &[0, 1]).expect("OffsetFetch");
    assert_eq!(error, NONE);
    assert_eq!(
        fetched.get(&0),
        Some(&(NONE, 7, Some("ok".to_string()))),
        "last good commit"
    );
    assert_eq!(
        fetched.get(&1).map(|f| (f.0, f.1)),
        Some((NONE, -1)),
        "never committed"
    );
    assert_eq!(
        a.heartbeat(group, a4.generation_id, &a4.member_id).unwrap(),
        NONE
    );
    let (error, member_error) = a.leave(group, &a4.member_id).expect("leave");
    assert_eq!(error, NONE);
    assert!(member_error.is_none_or(|e| e == NONE));
}
