//! The replicated cluster under real faults: rack-aware placement, leader SIGKILL, ISR shrink and
//! expansion with SIGSTOP, a network-partitioned leader (network namespaces), partition
//! reassignment, rolling restarts and a controller restart, each under idempotent acks=all load
//! and each ending with the checker: every acknowledged message read back once, in order.
//!
//! Tests run one at a time (a lock), each on its own cluster, so two cores suffice.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::admin::TopicReplication;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use strait_e2e::checker::{Report, read_topic, verify};
use strait_e2e::cluster::{Cluster, ClusterSpec, NodeSpec, PartitionInfo, READY_TIMEOUT, same_set};
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::netns::{self, NetLab};
use strait_e2e::segments::{batches, partition_dir, segment_files};
use strait_e2e::{TestMessage, idempotent_producer_config, produce_all, wait_for, wait_until};

/// Kafka error codes the tests expect from raw requests.
const NOT_ENOUGH_REPLICAS: i16 = 19;
const PARTITIONS: i32 = 3;
const FAULT_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(90);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn durable_topic(cluster: &mut Cluster, name: &str) -> Vec<PartitionInfo> {
    cluster
        .create_topic(name, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create RF=3 topic")
}

fn load(cluster: &Cluster, topic: &str, limit: Option<u64>, rate: u32) -> BackgroundProducer {
    BackgroundProducer::start(
        idempotent_producer_config(&cluster.bootstrap()),
        topic,
        LoadPlan {
            partitions: PARTITIONS,
            limit,
            rate: Some(rate),
            max_duration: Duration::from_secs(180),
        },
    )
    .expect("start producer")
}

/// Waits until `more` further messages are acknowledged: production is flowing.
fn wait_acked(producer: &BackgroundProducer, more: usize, what: &str) {
    let target = producer.acked() + more;
    wait_until(FAULT_TIMEOUT, what, || producer.acked() >= target).unwrap_or_else(|e| {
        panic!(
            "{e}: {} acked of {} sent",
            producer.acked(),
            producer.sent()
        )
    });
}

/// Stops the producer and runs the checker against the whole topic.
fn check(cluster: &mut Cluster, topic: &str, producer: BackgroundProducer) -> Report {
    let acked = producer.stop().expect("stop producer");
    let content =
        read_topic(&cluster.live_bootstrap(), topic, READ_TIMEOUT).expect("read topic back");
    let report = verify(&acked, &content);
    eprintln!(
        "{topic}: {} acked, {} failed ({} stored anyway), {} read",
        report.acked, report.failed, report.failed_but_stored, report.read
    );
    report.check().expect("checker");
    report
}

fn leader_of(cluster: &mut Cluster, topic: &str, partition: i32) -> u32 {
    let info = cluster
        .wait_for_leader(topic, partition, FAULT_TIMEOUT, |p| p.leader > 0)
        .expect("a leader");
    info.leader as u32
}

fn rack_of(cluster: &Cluster, id: i32) -> String {
    cluster
        .node(id as u32)
        .ok()
        .and_then(|n| n.spec().rack.clone())
        .unwrap_or_default()
}

#[test]
fn replicas_span_racks() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    for p in durable_topic(&mut cluster, "spread") {
        let racks: BTreeSet<String> = p.replicas.iter().map(|&r| rack_of(&cluster, r)).collect();
        assert_eq!(
            racks.len(),
            3,
            "partition {} replicas {:?}",
            p.partition,
            p.replicas
        );
    }
    let refused = cluster
        .try_create_topic("too-wide", 1, TopicReplication::Fixed(4), &[])
        .expect("CreateTopics answered");
    assert_eq!(refused, Err(RDKafkaErrorCode::InvalidReplicationFactor));

    // Broker-only nodes join through the voters list, or (node 6) knowing only the
    // controllers' addresses (controller.quorum.bootstrap.servers).
    for (id, rack) in [(4, "a"), (5, "b")] {
        cluster
            .add_node(NodeSpec::broker(id, rack))
            .expect("broker-only node joins");
    }
    cluster
        .add_node(NodeSpec::bootstrapped_broker(6, "c"))
        .expect("bootstrap-servers broker joins");
    let info = cluster
        .create_topic("twelve", 12, 3, &[])
        .expect("12-partition topic");
    let mut hosting = BTreeSet::new();
    for p in &info {
        let racks: BTreeSet<String> = p.replicas.iter().map(|&r| rack_of(&cluster, r)).collect();
        assert_eq!(
            racks,
            BTreeSet::from(["a".to_string(), "b".to_string(), "c".to_string()]),
            "partition {} replicas {:?}",
            p.partition,
            p.replicas
        );
        hosting.extend(p.replicas.iter().copied());
    }
    assert_eq!(hosting.len(), 6, "every broker hosts replicas: {info:?}");
}

#[test]
fn leader_killed_during_production() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    let topic = "failover";
    durable_topic(&mut cluster, topic);
    let total = 200_000;
    let producer = load(&cluster, topic, Some(total), 20_000);
    wait_acked(&producer, 40_000, "40k messages before the fault");

    let old = leader_of(&mut cluster, topic, 0);
    cluster.kill(old).expect("SIGKILL the leader");
    let new = cluster
        .wait_for_leader(topic, 0, FAULT_TIMEOUT, |p| {
            p.leader > 0 && p.leader as u32 != old
        })
        .expect("a new leader takes over");
    eprintln!("leader {old} killed, {new:?} took over");

    wait_until(Duration::from_secs(120), "the producer to finish", || {
        producer.finished()
    })
    .expect("production completes");
    let report = check(&mut cluster, topic, producer);
    assert_eq!(report.acked as u64, total, "every message acknowledged");

    cluster.restart(old).expect("restart the killed node");
    cluster
        .wait_ready(old, READY_TIMEOUT)
        .expect("killed node rejoins every ISR");
    for p in cluster.partition_info(topic).expect("metadata") {
        assert!(p.isr.contains(&(old as i32)), "{p:?}");
    }
}

#[test]
fn isr_shrinks_and_expands() {
    let _serial = serial();
    // The followers are broker-only nodes so that stopping both keeps the controller quorum
    // (1, 2, 3) alive: only a live quorum can shrink an ISR.
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.nodes.push(NodeSpec::broker(4, "b"));
    spec.nodes.push(NodeSpec::broker(5, "c"));
    let mut cluster = Cluster::start(spec).expect("cluster");
    let topic = "isr";
    cluster
        .create_topic_assigned(
            topic,
            &[&[1, 4, 5], &[2, 4, 5], &[3, 4, 5]],
            &[("min.insync.replicas", "2")],
        )
        .expect("create topic");
    let producer = load(&cluster, topic, None, 10_000);
    wait_acked(&producer, 10_000, "10k messages before the fault");

    let isr_without = |cluster: &mut Cluster, gone: &[i32]| {
        let mut last = None;
        wait_until(FAULT_TIMEOUT, "the ISRs to shrink", || {
            let Ok(info) = cluster.partition_info(topic) else {
                return false;
            };
            let done = info.iter().all(|p| {
                let expected: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| !gone.contains(r))
                    .collect();
                same_set(&p.isr, &expected)
            });
            last = Some(info);
            done
        })
        .unwrap_or_else(|e| panic!("{e}: {last:?}"));
    };

    cluster.pause(4).expect("SIGSTOP follower 4");
    isr_without(&mut cluster, &[4]);
    wait_acked(&producer, 10_000, "acks=all with two in-sync replicas");

    cluster.pause(5).expect("SIGSTOP follower 5");
    isr_without(&mut cluster, &[4, 5]);
    let leader = leader_of(&mut cluster, topic, 0);
    let (code, _) = cluster
        .produce_raw(leader, topic, 0, -1, 5000, &[b"refused".as_slice()])
        .expect("raw produce");
    assert_eq!(
        code, NOT_ENOUGH_REPLICAS,
        "acks=all below min.insync.replicas"
    );

    cluster.resume(4).expect("SIGCONT 4");
    cluster.resume(5).expect("SIGCONT 5");
    cluster
        .wait_topic_settled(topic, PARTITIONS)
        .expect("ISRs expand back to three");
    wait_acked(&producer, 10_000, "production resumes");
    cluster.wait_all_ready(READY_TIMEOUT).expect("all ready");
    // The refused batch must not be readable: the checker counts it as foreign.
    let report = check(&mut cluster, topic, producer);
    assert_eq!(
        report.failed, 0,
        "no delivery failed while the ISR recovered"
    );
}

#[test]
fn partitioned_leader_is_fenced() {
    let _serial = serial();
    if !netns::required().unwrap_or_else(|reason| panic!("{reason}")) {
        return;
    }
    let lab = Arc::new(NetLab::create(&[1, 2, 3]).expect("network namespaces"));
    let inner = lab.clone();
    lab.run_in_clients(move || partitioned_leader_scenario(inner))
        .expect("enter the client namespace");
}

fn partitioned_leader_scenario(lab: Arc<NetLab>) {
    let spec = ClusterSpec::combined(&["a", "b", "c"]);
    let mut cluster = Cluster::start_in_lab(spec, lab.clone()).expect("cluster in namespaces");
    let topic = "fenced";
    durable_topic(&mut cluster, topic);
    let producer = load(&cluster, topic, None, 10_000);
    wait_acked(&producer, 20_000, "20k messages before the partition");

    let before = cluster
        .wait_for_leader(topic, 0, FAULT_TIMEOUT, |p| p.leader > 0)
        .expect("leader");
    let old = before.leader as u32;
    let majority: Vec<u32> = cluster.ids().into_iter().filter(|&i| i != old).collect();
    lab.cut(old).expect("cut the leader off its peers");

    // The old leader cannot commit anything any more; an acks=1 write makes a divergent tail
    // (if it still accepts writes at all), which must vanish after healing.
    let (divergent, _) = cluster
        .produce_raw(old, topic, 0, 1, 2000, &[b"divergent".as_slice()])
        .expect("acks=1 produce to the isolated leader");
    let (committed, _) = cluster
        .produce_raw(old, topic, 0, -1, 3000, &[b"divergent-all".as_slice()])
        .expect("acks=all produce to the isolated leader");
    assert_ne!(
        committed, 0,
        "an isolated leader acknowledged an acks=all write"
    );
    eprintln!("isolated leader {old}: acks=1 -> {divergent}, acks=all -> {committed}");

    let mut seen = None;
    let elected = wait_for(FAULT_TIMEOUT, "the majority to elect a new leader", || {
        let info = cluster.partition_info_from(majority[0], topic).ok()?;
        let p = info.into_iter().find(|p| p.partition == 0)?;
        seen = Some(p.clone());
        (p.leader > 0
            && p.leader as u32 != old
            && !p.isr.contains(&(old as i32))
            && p.leader_epoch > before.leader_epoch)
            .then_some(p)
    })
    .unwrap_or_else(|e| {
        let tails: Vec<String> = cluster
            .nodes()
            .iter()
            .map(|n| format!("node {}:\n{}", n.spec().id, n.stderr_tail()))
            .collect();
        panic!(
            "{e}: before {before:?}, majority now sees {seen:?}; cut node {old}\n{}",
            tails.join("\n")
        )
    });
    eprintln!("majority elected {elected:?}");
    wait_acked(&producer, 10_000, "production continues on the majority");

    lab.heal(old).expect("heal the partition");
    cluster
        .wait_all_ready(Duration::from_secs(90))
        .expect("old leader catches up");
    wait_acked(&producer, 5_000, "production after healing");
    let stale = cluster
        .partition_info_from(old, topic)
        .expect("old leader's metadata");
    let fresh = cluster
        .partition_info_from(majority[0], topic)
        .expect("majority's metadata");
    let report = check(&mut cluster, topic, producer);
    eprintln!("checker: {report:?}");
    assert_eq!(
        stale[0].leader, fresh[0].leader,
        "the old leader agrees on who leads: {stale:?} vs {fresh:?}"
    );

    // Once production stopped and every replica is in sync, the replicas hold the same batches:
    // the old leader truncated its divergent tail.
    let layouts = |cluster: &Cluster| -> Option<Vec<Vec<(i64, i64, u64)>>> {
        cluster
            .nodes()
            .iter()
            .map(|n| {
                let dir = partition_dir(n.log_dir(), topic, 0);
                let mut all = Vec::new();
                for (_, segment) in segment_files(&dir).ok()? {
                    all.extend(
                        batches(&segment)
                            .ok()?
                            .into_iter()
                            .map(|b| (b.base_offset, b.last_offset, b.size)),
                    );
                }
                Some(all)
            })
            .collect()
    };
    let mut last = None;
    wait_until(
        FAULT_TIMEOUT,
        "replicas of partition 0 to be identical",
        || {
            let Some(l) = layouts(&cluster) else {
                return false;
            };
            let same = l.windows(2).all(|w| w[0] == w[1]) && !l[0].is_empty();
            last = Some(
                l.iter()
                    .map(|b| (b.len(), b.last().copied()))
                    .collect::<Vec<_>>(),
            );
            same
        },
    )
    .unwrap_or_else(|e| panic!("{e}: (batches, last batch) per node {last:?}"));
}

#[test]
fn reassignment_under_load() {
    let _serial = serial();
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.nodes.push(NodeSpec::broker(4, "a"));
    let mut cluster = Cluster::start(spec).expect("cluster");
    let topic = "moving";
    cluster
        .create_topic_assigned(
            topic,
            &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]],
            &[("min.insync.replicas", "2")],
        )
        .expect("create topic");
    let producer = load(&cluster, topic, None, 10_000);
    wait_acked(&producer, 10_000, "10k messages before the move");

    cluster
        .reassign(2, topic, 0, &[4, 2, 3])
        .expect("reassign partition 0");
    let mut last = None;
    wait_until(
        Duration::from_secs(90),
        "the reassignment to complete",
        || {
            let Ok(ongoing) = cluster.list_reassignments(2) else {
                return false;
            };
            let Ok(info) = cluster.partition_info(topic) else {
                return false;
            };
            let p0 = info[0].clone();
            last = Some((ongoing.clone(), p0.clone()));
            ongoing.is_empty()
                && same_set(&p0.replicas, &[2, 3, 4])
                && same_set(&p0.isr, &[2, 3, 4])
                && p0.leader != 1
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {last:?}"));
    wait_acked(&producer, 10_000, "production after the move");
    check(&mut cluster, topic, producer);
}

#[test]
fn rolling_restart_under_load() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    let topic = "rolling";
    durable_topic(&mut cluster, topic);
    let producer = load(&cluster, topic, None, 10_000);
    wait_acked(&producer, 10_000, "10k messages before the roll");
    for id in cluster.ids() {
        let status = cluster.terminate(id).expect("SIGTERM");
        assert!(
            status.success(),
            "node {id} controlled shutdown exited {status}"
        );
        cluster.restart(id).expect("restart");
        cluster
            .wait_ready(id, READY_TIMEOUT)
            .expect("back in every ISR");
        wait_acked(&producer, 5_000, "production after a restart");
    }
    let report = check(&mut cluster, topic, producer);
    assert_eq!(report.failed, 0, "a controlled roll fails no delivery");
}

#[test]
fn controller_restart_keeps_metadata_consistent() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    durable_topic(&mut cluster, "before");
    // The active controller, by DescribeQuorum: the hardest voter to lose.
    let before = cluster.quorum(1).expect("DescribeQuorum");
    assert_eq!(
        before.voters.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{before:?}"
    );
    let victim = u32::try_from(before.leader).expect("a leader");
    eprintln!("killing controller {victim}");
    cluster.kill(victim).expect("SIGKILL a controller");
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|&i| i != victim)
        .unwrap_or(1);
    let mut elected = None;
    wait_until(FAULT_TIMEOUT, "a new active controller", || {
        elected = cluster
            .quorum(survivor)
            .ok()
            .filter(|q| q.leader > 0 && q.leader != victim as i32);
        elected.is_some()
    })
    .expect("the quorum elected a new leader");
    let elected = elected.expect("elected");
    assert!(elected.epoch > before.epoch, "{elected:?} after {before:?}");
    wait_until(
        FAULT_TIMEOUT,
        "the killed node to leave the broker list",
        || {
            cluster
                .metadata_from(survivor, None)
                .is_ok_and(|v| !v.brokers.contains_key(&(victim as i32)))
        },
    )
    .expect("killed node fenced");
    cluster
        .create_topic("during", PARTITIONS, 2, &[])
        .expect("create a topic without one controller");
    cluster.restart(victim).expect("restart");
    cluster.wait_all_ready(READY_TIMEOUT).expect("all ready");

    let mut last = None;
    wait_until(
        FAULT_TIMEOUT,
        "every node to describe the same cluster",
        || {
            let views: Vec<_> = cluster
                .ids()
                .into_iter()
                .filter_map(|id| cluster.metadata_from(id, None).ok())
                .collect();
            let agree = views.len() == 3
                // Not controller_id: KRaft brokers may answer any live broker there.
            && views
                .windows(2)
                .all(|w| w[0].brokers == w[1].brokers && w[0].topics == w[1].topics)
                && ["before", "during"].iter().all(|t| {
                    views[0]
                        .topics
                        .get(*t)
                        .is_some_and(|(code, p)| *code == 0 && p.len() == 3)
                });
            last = Some(views);
            agree
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {last:#?}"));
    // Every node names the same quorum leader, and the restarted voter caught up with its log.
    let mut seen = None;
    wait_until(FAULT_TIMEOUT, "the restarted voter to catch up", || {
        let views: Vec<_> = cluster
            .ids()
            .into_iter()
            .filter_map(|id| cluster.quorum(id).ok())
            .collect();
        let caught_up = views.len() == 3
            && views.windows(2).all(|w| w[0].leader == w[1].leader)
            && views[0]
                .voters
                .get(&(victim as i32))
                .is_some_and(|end| *end > 0 && *end >= views[0].high_watermark);
        seen = Some(views);
        caught_up
    })
    .unwrap_or_else(|e| panic!("{e}: {seen:#?}"));
}

/// DeleteRecords goes to the leader; followers follow its log start offset, so the deleted
/// records stay deleted after the leader dies.
#[test]
fn deleted_records_stay_deleted_after_failover() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    let topic = "trimmed";
    durable_topic(&mut cluster, topic);
    let producer = load(&cluster, topic, Some(3_000), 20_000);
    wait_until(FAULT_TIMEOUT, "3000 messages acknowledged", || {
        producer.acked() >= 3_000
    })
    .expect("produce");
    let acked = producer.stop().expect("stop producer");
    assert!(
        acked.iter().all(|a| a.result.is_ok()),
        "every send acknowledged"
    );

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .expect("admin client");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(500))
        .expect("offset");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let deleted = runtime
        .block_on(admin.delete_records(
            &offsets,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(15))),
        ))
        .expect("DeleteRecords");
    let low = deleted.elements()[0].offset();
    assert_eq!(
        low,
        Offset::Offset(500),
        "low watermark after DeleteRecords"
    );

    let leader = leader_of(&mut cluster, topic, 0);
    // Followers learn the new log start offset from a fetch response. An acks=all write acked
    // after the delete means both followers fetched past it, so they have seen that response.
    let (code, _) = cluster
        .produce_raw(leader, topic, 0, -1, 10_000, &[b"after-delete".as_slice()])
        .expect("produce after DeleteRecords");
    assert_eq!(code, 0, "acks=all produce after DeleteRecords");
    let earliest = |cluster: &mut Cluster| -> Option<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.live_bootstrap())
            .create()
            .ok()?;
        consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(5))
            .ok()
            .map(|(low, _)| low)
    };
    cluster.kill(leader).expect("kill the leader");
    cluster
        .wait_for_leader(topic, 0, FAULT_TIMEOUT, |p| {
            p.leader > 0 && p.leader as u32 != leader
        })
        .expect("a new leader");
    let mut seen = None;
    wait_until(FAULT_TIMEOUT, "the new leader's log start offset", || {
        seen = earliest(&mut cluster);
        seen.is_some()
    })
    .expect("watermarks from the new leader");
    assert_eq!(
        seen,
        Some(500),
        "records deleted on the old leader came back on the new one"
    );
}

/// A produce to a follower gets NOT_LEADER_OR_FOLLOWER with the current leader and its endpoint
/// (KIP-951), so clients re-route without a metadata round trip.
#[test]
fn followers_answer_with_the_current_leader() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    let info = durable_topic(&mut cluster, "hinted");
    let p0 = &info[0];
    let follower = p0
        .replicas
        .iter()
        .copied()
        .find(|r| *r != p0.leader)
        .expect("a follower") as u32;
    let (version, response) = cluster
        .produce_response(follower, "hinted", 0, 10, &[b"to-a-follower".as_slice()])
        .expect("produce to a follower");
    assert_eq!(version, 10, "Produce v10 negotiated");
    let part = &response.responses[0].partition_responses[0];
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    assert_eq!(part.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(part.current_leader.leader_id.0, p0.leader, "leader hint");
    assert_eq!(
        part.current_leader.leader_epoch, p0.leader_epoch,
        "leader epoch hint"
    );
    let endpoint = response
        .node_endpoints
        .iter()
        .find(|e| e.node_id.0 == p0.leader)
        .expect("the leader's endpoint");
    let leader_addr = cluster
        .node(p0.leader as u32)
        .expect("leader node")
        .addr()
        .expect("leader address");
    assert_eq!(
        format!("{}:{}", endpoint.host.as_str(), endpoint.port),
        leader_addr.to_string()
    );
}

/// Leadership goes back to the preferred replica: SIGTERM moves it away (controlled shutdown),
/// and once the preferred replica is back in the ISR, ElectLeaders (auto rebalance off) or the
/// controller's periodic rebalance (on, 1 s interval) returns it.
fn preferred_leader_returns(auto_rebalance: bool) {
    let _serial = serial();
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.overrides.push((
        "auto.leader.rebalance.enable".into(),
        auto_rebalance.to_string(),
    ));
    spec.overrides
        .push(("leader.imbalance.check.interval.seconds".into(), "1".into()));
    let mut cluster = Cluster::start(spec).expect("cluster");
    let topic = "preferred";
    cluster
        .create_topic_assigned(topic, &[&[1, 2, 3]], &[("min.insync.replicas", "2")])
        .expect("topic led by 1");
    cluster.terminate(1).expect("SIGTERM broker 1");
    let moved = cluster
        .wait_for_leader(topic, 0, FAULT_TIMEOUT, |p| p.leader > 0 && p.leader != 1)
        .expect("leadership moved off the stopped broker");
    eprintln!("after controlled shutdown of 1: {moved:?}");
    cluster.restart(1).expect("restart broker 1");
    cluster
        .wait_for_leader(topic, 0, FAULT_TIMEOUT, |p| same_set(&p.isr, &p.replicas))
        .expect("broker 1 back in the ISR");
    if !auto_rebalance {
        let code = cluster.elect_preferred(2, topic, 0).expect("ElectLeaders");
        assert_eq!(code, 0, "preferred election error code");
    }
    let back = cluster
        .wait_for_leader(topic, 0, FAULT_TIMEOUT, |p| p.leader == 1)
        .expect("the preferred replica leads again");
    assert!(
        back.leader_epoch > moved.leader_epoch,
        "{back:?} after {moved:?}"
    );
    if !auto_rebalance {
        const ELECTION_NOT_NEEDED: i16 = 84;
        let again = cluster
            .elect_preferred(3, topic, 0)
            .expect("ElectLeaders again");
        assert_eq!(again, ELECTION_NOT_NEEDED);
    }
}

#[test]
fn elect_leaders_restores_the_preferred_leader() {
    preferred_leader_returns(false);
}

#[test]
fn auto_rebalance_restores_the_preferred_leader() {
    preferred_leader_returns(true);
}

/// A group's committed offsets live in the replicated `__consumer_offsets`: when the broker
/// coordinating the group is SIGKILLed, the leader of the group's offsets partition takes over
/// as coordinator with every acknowledged commit, keeps accepting commits, and the old
/// coordinator hands nothing stale back when it returns.
#[test]
fn committed_offsets_survive_the_coordinator_failure() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    let topic = "orders";
    cluster
        .create_topic(topic, 1, 3, &[("min.insync.replicas", "2")])
        .expect("topic");
    let messages: Vec<TestMessage> = (0..1000)
        .map(|i| TestMessage {
            value: Some(format!("order-{i}").into_bytes()),
            partition: Some(0),
            ..Default::default()
        })
        .collect();
    let acked = produce_all(
        &idempotent_producer_config(&cluster.bootstrap()),
        topic,
        &messages,
        FAULT_TIMEOUT,
    )
    .expect("produce");
    assert!(
        acked.iter().all(|d| d.result.is_ok()),
        "every message acked"
    );

    let group = "billing";
    let commit = |cluster: &mut Cluster, offset: i64| {
        let consumer = group_consumer(&cluster.live_bootstrap(), group);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
            .expect("tpl");
        // Retried: right after a coordinator change the client may still be finding it.
        wait_until(FAULT_TIMEOUT, &format!("commit {offset}"), || {
            consumer.commit(&tpl, CommitMode::Sync).is_ok()
        })
        .expect("offset committed");
    };
    let committed = |cluster: &mut Cluster| -> i64 {
        let consumer = group_consumer(&cluster.live_bootstrap(), group);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        let mut last = None;
        wait_until(FAULT_TIMEOUT, "committed offsets", || {
            match consumer.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
                Ok(list) => {
                    last = list.find_partition(topic, 0).map(|e| e.offset());
                    last.is_some()
                }
                Err(_) => false,
            }
        })
        .expect("committed offsets read");
        match last {
            Some(Offset::Offset(o)) => o,
            other => panic!("no committed offset: {other:?}"),
        }
    };

    commit(&mut cluster, 400);
    let first = cluster
        .group_coordinator(1, group)
        .expect("FindCoordinator")
        .expect("a coordinator");
    eprintln!("group {group} coordinated by broker {first}");
    cluster.kill(first as u32).expect("SIGKILL the coordinator");
    let survivor = cluster
        .ids()
        .into_iter()
        .find(|id| *id != first as u32)
        .expect("a surviving broker");
    let mut second = -1;
    wait_until(FAULT_TIMEOUT, "a new coordinator", || {
        match cluster.group_coordinator(survivor, group) {
            Ok(Ok(id)) if id != first => {
                second = id;
                true
            }
            _ => false,
        }
    })
    .expect("coordination moved");
    eprintln!("group {group} now coordinated by broker {second}");
    assert_eq!(committed(&mut cluster), 400, "the commit survived");
    commit(&mut cluster, 700);

    cluster
        .restart(first as u32)
        .expect("restart the old coordinator");
    cluster
        .wait_all_ready(READY_TIMEOUT)
        .expect("every broker caught up");
    assert_eq!(
        committed(&mut cluster),
        700,
        "the newer commit, not the stale one"
    );
    // A consumer of the group starts where the group left off.
    let consumer = group_consumer(&cluster.bootstrap(), group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Stored)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut first_read = None;
    wait_until(
        FAULT_TIMEOUT,
        "a message from the committed position",
        || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                first_read = Some(m.offset());
            }
            first_read.is_some()
        },
    )
    .expect("read");
    assert_eq!(first_read, Some(700));
}

/// A consumer of `group` that commits only when told to.
fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest");
    config.create().expect("consumer")
}
