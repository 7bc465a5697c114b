//! KIP-848 consumer groups kept in `__consumer_offsets` with Kafka 4.0's record types, and regex
//! subscriptions. On a three-node cluster two members join over the wire (ConsumerGroupHeartbeat)
//! and settle; the coordinator is SIGKILLed; the new coordinator knows both members with their
//! epochs and assignments, so their next heartbeats are answered at the same epochs with no
//! rebalance (the group epoch does not move). A librdkafka consumer (`group.protocol=consumer`)
//! subscribed to `^fx-.*` reads the matching topics, and one created later, and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::wire::WireClient;
use strait_e2e::{Broker, TestMessage, consumer_config, produce_all, producer_config, wait_for};

const GROUP: &str = "durable-848";
const TIMEOUT: Duration = Duration::from_secs(60);

/// One member's view: id, epoch, owned partitions (topic id, partition).
#[derive(Debug, Clone, PartialEq)]
struct MemberState {
    id: String,
    epoch: i32,
    owned: BTreeSet<(uuid::Uuid, i32)>,
}

fn connect(cluster: &Cluster, id: u32) -> Option<(WireClient, i16, i16)> {
    let mut client = WireClient::connect(cluster.node(id).ok()?.addr().ok()?).ok()?;
    let versions = client.api_versions().ok()?;
    let hb = versions.get(&(ApiKey::ConsumerGroupHeartbeat as i16))?.1;
    let describe = versions.get(&(ApiKey::ConsumerGroupDescribe as i16))?.1;
    Some((client, hb, describe))
}

/// The live coordinator of the group: FindCoordinator through any live node.
fn coordinator(cluster: &mut Cluster) -> u32 {
    wait_for(TIMEOUT, "a live coordinator for the group", || {
        let live = cluster.live_ids();
        live.iter()
            .find_map(|via| match cluster.group_coordinator(*via, GROUP).ok()? {
                Ok(id) if live.contains(&(id as u32)) => Some(id as u32),
                _ => None,
            })
    })
    .expect("coordinator")
}

fn heartbeat(
    client: &mut WireClient,
    version: i16,
    member: &MemberState,
    join: bool,
) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(GROUP.into())))
        .with_member_id(StrBytes::from_string(member.id.clone()))
        .with_member_epoch(member.epoch)
        .with_instance_id(None)
        .with_rack_id(None)
        .with_server_assignor(None)
        .with_subscribed_topic_regex(None)
        .with_rebalance_timeout_ms(if join { 30_000 } else { -1 })
        .with_subscribed_topic_names(None)
        .with_topic_partitions(None);
    if join {
        req = req.with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str(
            "orders",
        ))]));
    }
    let mut by_topic: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in &member.owned {
        by_topic.entry(*t).or_default().push(*p);
    }
    req = req.with_topic_partitions(Some(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic_id(t)
                    .with_partitions(ps)
            })
            .collect(),
    ));
    client
        .call(ApiKey::ConsumerGroupHeartbeat, version, &req)
        .expect("ConsumerGroupHeartbeat")
}

/// Applies a heartbeat answer to the member as a client does.
fn apply(member: &mut MemberState, r: &ConsumerGroupHeartbeatResponse) {
    assert_eq!(r.error_code, 0, "heartbeat error {:?}", r.error_message);
    if let Some(id) = &r.member_id {
        member.id = id.to_string();
    }
    member.epoch = r.member_epoch;
    if let Some(a) = &r.assignment {
        member.owned = a
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
            .collect();
    }
}

fn group_epoch(client: &mut WireClient, version: i16) -> (i32, String) {
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(GROUP.into()))]);
    let r: ConsumerGroupDescribeResponse = client
        .call(ApiKey::ConsumerGroupDescribe, version, &req)
        .expect("ConsumerGroupDescribe");
    let g = &r.groups[0];
    (g.group_epoch, g.group_state.to_string())
}

#[test]
fn members_keep_their_epochs_across_a_coordinator_failover() {
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    cluster
        .create_topic("orders", 4, 3, &[])
        .expect("create orders");
    let first = coordinator(&mut cluster);
    let (mut client, hb_version, describe_version) =
        connect(&cluster, first).expect("connect to the coordinator");
    let mut a = MemberState {
        id: String::new(),
        epoch: 0,
        owned: BTreeSet::new(),
    };
    let mut b = a.clone();
    let r = heartbeat(&mut client, hb_version, &a, true);
    apply(&mut a, &r);
    let r = heartbeat(&mut client, hb_version, &b, true);
    apply(&mut b, &r);
    // Heartbeat both until the group is stable with two partitions each.
    let settled = wait_for(TIMEOUT, "the group to settle", || {
        for m in [&mut a, &mut b] {
            let r = heartbeat(&mut client, hb_version, m, false);
            apply(m, &r);
        }
        let (epoch, state) = group_epoch(&mut client, describe_version);
        (state == "Stable" && a.owned.len() == 2 && b.owned.len() == 2 && a.epoch == epoch)
            .then_some(epoch)
    })
    .expect("stable group");
    assert!(a.owned.is_disjoint(&b.owned));
    eprintln!("settled at group epoch {settled} on coordinator {first}: {a:?} {b:?}");

    cluster.kill(first).expect("kill the coordinator");
    let second = coordinator(&mut cluster);
    assert_ne!(second, first);
    let (mut client, hb_version, describe_version) =
        wait_for(TIMEOUT, "the new coordinator", || connect(&cluster, second))
            .expect("connect to the new coordinator");
    // The new coordinator may still be loading the partition: retriable errors until it is.
    for m in [&mut a, &mut b] {
        let before = m.clone();
        let r = wait_for(TIMEOUT, "the new coordinator to answer the member", || {
            let r = heartbeat(&mut client, hb_version, m, false);
            // 14 COORDINATOR_LOAD_IN_PROGRESS, 15 COORDINATOR_NOT_AVAILABLE, 16 NOT_COORDINATOR.
            (!matches!(r.error_code, 14..=16)).then_some(r)
        })
        .expect("an answer");
        apply(m, &r);
        assert_eq!(m.id, before.id, "same member");
        assert_eq!(m.epoch, before.epoch, "same member epoch: no rejoin");
        assert_eq!(m.owned, before.owned, "same assignment");
    }
    let (epoch, state) = group_epoch(&mut client, describe_version);
    assert_eq!((epoch, state.as_str()), (settled, "Stable"), "no rebalance");

    cluster.restart(first).expect("restart");
    cluster.wait_ready(first, READY_TIMEOUT).expect("ready");
}

#[test]
fn regex_subscription_follows_matching_topics() {
    let broker = Broker::start(&[]).expect("broker");
    let admin = strait_e2e::Admin::new(&broker.bootstrap()).expect("admin");
    for t in ["fx-1", "fx-2", "other"] {
        admin.create_topic(t, 2, &[]).expect("create topic");
    }
    let produce = |topic: &str, n: usize| {
        let messages: Vec<TestMessage> = (0..n)
            .map(|i| TestMessage {
                value: Some(format!("{topic}-{i}").into_bytes()),
                ..TestMessage::default()
            })
            .collect();
        produce_all(
            &producer_config(&broker.bootstrap()),
            topic,
            &messages,
            Duration::from_secs(30),
        )
        .expect("produce");
    };
    for t in ["fx-1", "fx-2", "other"] {
        produce(t, 10);
    }
    let consumer: BaseConsumer = consumer_config(&broker.bootstrap())
        .set("group.id", "regex-848")
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["^fx-.*"]).expect("subscribe");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let poll_until = |seen: &mut BTreeMap<String, usize>, want: &[(&str, usize)], what: &str| {
        let deadline = Instant::now() + TIMEOUT;
        while want
            .iter()
            .any(|(t, n)| seen.get(*t).copied().unwrap_or(0) < *n)
        {
            assert!(Instant::now() < deadline, "{what}: read {seen:?}");
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                *seen.entry(m.topic().to_string()).or_default() += 1;
            }
        }
    };
    poll_until(
        &mut seen,
        &[("fx-1", 10), ("fx-2", 10)],
        "the matching topics",
    );
    admin.create_topic("fx-3", 1, &[]).expect("create fx-3");
    produce("fx-3", 5);
    poll_until(&mut seen, &[("fx-3", 5)], "a matching topic created later");
    assert_eq!(seen.get("other"), None, "a topic the regex does not match");
    assert_eq!(
        seen.values().sum::<usize>(),
        25,
        "each record once: {seen:?}"
    );
}
