//! Parked requests complete on the event they wait for, not on their timeout (Kafka's
//! DelayedFetch / DelayedProduce semantics), and do not hold up their connection:
//!
//! - a consumer fetch parked at a partition's leader is completed once an acks=all produce's
//!   records are replicated and the high watermark moves, and the
//!   `kafka_server_delayedoperationpurgatory_purgatorysize` gauge shows the parked fetch. The
//!   fetch asks for up to 25 s of waiting and the harness gives it 10 s to answer: a fetch woken
//!   only by its timeout fails the test whatever the machine's speed;
//! - an acks=all produce waiting for a paused follower does not stop the leader from reading and
//!   appending the next produce on the same connection (librdkafka sends one partition per
//!   request, so a connection that waited would give one replication round trip per partition),
//!   and the responses still come back in request order.
//!
//! - with `num.replica.fetchers=2`, followers fetch over two sessions per leader and acks=all
//!   completes on every partition.
//!
//! All run on one three-node cluster, one after the other.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceResponse, TopicName};
use kafka_protocol::protocol::HeaderVersion;
use kafka_protocol::protocol::StrBytes;
use strait_e2e::cluster::{Cluster, ClusterSpec};
use strait_e2e::exposition::Scrape;
use strait_e2e::wait_until;
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};

const PURGATORY: &str = "kafka_server_delayedoperationpurgatory_purgatorysize";
const SESSIONS: &str = "kafka_server_fetchsessioncache_numincrementalfetchsessions";
const MESSAGES_IN: &str = "kafka_server_brokertopicmetrics_messagesin_total";
/// The parked fetch's own wait: far beyond what the test allows for its answer.
const FETCH_MAX_WAIT_MS: i32 = 25_000;
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn scrape(metrics: SocketAddr) -> Option<Scrape> {
    Scrape::fetch(metrics, Duration::from_secs(2)).ok()
}

fn parked_fetches(metrics: SocketAddr) -> f64 {
    scrape(metrics)
        .and_then(|s| s.sum(PURGATORY, &[("delayedoperation", "Fetch")]))
        .unwrap_or(0.0)
}

fn fetch_from_start(topic: &str) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[test]
fn parked_requests_complete_on_their_event_and_do_not_hold_up_the_connection() {
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    // The paused follower must stay in the ISR (and registered) well beyond the checks' time.
    spec.overrides.extend(
        [
            ("replica.lag.time.max.ms", "15000"),
            ("broker.session.timeout.ms", "15000"),
            // Two fetchers (connections, fetch sessions) per followed leader.
            ("num.replica.fetchers", "2"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut cluster = Cluster::start(spec).expect("cluster");
    a_parked_consumer_fetch_is_completed_by_replication_not_by_its_timeout(&mut cluster);
    an_acks_all_produce_waiting_for_its_isr_does_not_hold_up_the_connection(&mut cluster);
    partitions_spread_over_num_replica_fetchers(&mut cluster);
}

/// With `num.replica.fetchers=2` a follower fetches a leader's partitions over two connections,
/// each in its own fetch session, and acks=all still completes on every partition.
fn partitions_spread_over_num_replica_fetchers(cluster: &mut Cluster) {
    let topic = "spread";
    let partitions = cluster
        .create_topic(topic, 24, 3, &[("min.insync.replicas", "3")])
        .expect("topic");
    for p in &partitions {
        let leader = u32::try_from(p.leader).expect("a leader");
        let produced = cluster
            .produce_raw(
                leader,
                topic,
                p.partition,
                -1,
                30_000,
                &[b"to all replicas"],
            )
            .expect("produce");
        assert_eq!(produced, (0, 0), "partition {}", p.partition);
    }
    // One fetcher per (leader, follower) pair would hold 6 sessions in the cluster; with two,
    // the pairs whose partitions hash to both fetchers hold two.
    let ids = cluster.ids();
    wait_until(
        Duration::from_secs(10),
        "followers fetching in more than one session per leader",
        || {
            let total: f64 = ids
                .iter()
                .filter_map(|id| cluster.node(*id).ok()?.metrics_addr().ok())
                .filter_map(|m| scrape(m)?.sum(SESSIONS, &[]))
                .sum();
            total > 6.0
        },
    )
    .expect("several replica fetchers per leader");
}

fn a_parked_consumer_fetch_is_completed_by_replication_not_by_its_timeout(cluster: &mut Cluster) {
    let topic = "parked";
    let partitions = cluster
        .create_topic(topic, 1, 3, &[("min.insync.replicas", "2")])
        .expect("topic");
    let leader = u32::try_from(partitions[0].leader).expect("a leader");
    let leader_addr = cluster.node(leader).unwrap().addr().unwrap();
    let leader_metrics = cluster.node(leader).unwrap().metrics_addr().unwrap();
    // The followers' own fetches park at the leader too (up to replica.fetch.wait.max.ms each).
    let followers_parked = 2.0;
    // ... each in an incremental fetch session (KIP-227) with the leader.
    wait_until(
        Duration::from_secs(10),
        "both followers in fetch sessions",
        || {
            scrape(leader_metrics)
                .and_then(|s| s.sum(SESSIONS, &[]))
                .is_some_and(|n| n >= 2.0)
        },
    )
    .expect("the followers fetch in sessions");

    let (answered, answer) = mpsc::channel();
    let fetcher = std::thread::spawn(move || {
        let mut client = WireClient::connect(leader_addr).expect("connect to the leader");
        let versions = client.api_versions().expect("api versions");
        // Topic names in the request: up to v12.
        let version = versions[&(ApiKey::Fetch as i16)].1.min(12);
        let response: strait_e2e::Result<FetchResponse> =
            client.call(ApiKey::Fetch, version, &fetch_from_start(topic));
        let _ = answered.send(response);
    });

    wait_until(Duration::from_secs(10), "the consumer fetch parked", || {
        parked_fetches(leader_metrics) > followers_parked
    })
    .expect("the fetch is parked at the leader");
    assert!(
        answer.try_recv().is_err(),
        "an empty partition answered a min_bytes=1 fetch at once"
    );

    // acks=all: the leader appends (that alone shows a consumer nothing: it reads up to the high
    // watermark), the followers fetch, the high watermark moves, and that wakes the parked fetch.
    let mut producer = WireClient::connect(leader_addr).expect("connect");
    let batch = record_batch(&[b"wake up".as_slice()]).unwrap();
    let produced: ProduceResponse = producer
        .call(ApiKey::Produce, 7, &produce_request(topic, 0, -1, batch))
        .expect("produce");
    assert_eq!(produce_result(&produced).unwrap(), (0, 0));

    let response = answer
        .recv_timeout(ANSWER_WITHIN)
        .expect("the parked fetch answered before its own timeout")
        .expect("fetch response");
    fetcher.join().unwrap();
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 1);
    assert!(
        partition.records.as_ref().is_some_and(|r| !r.is_empty()),
        "the fetch was completed with the replicated record"
    );
    wait_until(Duration::from_secs(10), "the purgatory drained", || {
        parked_fetches(leader_metrics) <= followers_parked
    })
    .expect("the completed fetch left the purgatory");
}

fn messages_in(metrics: SocketAddr, topic: &str) -> f64 {
    scrape(metrics)
        .and_then(|s| s.sum(MESSAGES_IN, &[("topic", topic)]))
        .unwrap_or(0.0)
}

fn an_acks_all_produce_waiting_for_its_isr_does_not_hold_up_the_connection(cluster: &mut Cluster) {
    let topic = "pipelined";
    let partitions = cluster
        .create_topic(topic, 1, 3, &[("min.insync.replicas", "2")])
        .expect("topic");
    let leader = u32::try_from(partitions[0].leader).expect("a leader");
    let follower = partitions[0]
        .replicas
        .iter()
        .map(|r| u32::try_from(*r).expect("replica id"))
        .find(|r| *r != leader)
        .expect("a follower");
    let leader_addr = cluster.node(leader).unwrap().addr().unwrap();
    let leader_metrics = cluster.node(leader).unwrap().metrics_addr().unwrap();
    wait_until(Duration::from_secs(15), "a full ISR", || {
        cluster
            .partition_info_from(leader, topic)
            .is_ok_and(|p| p[0].isr.len() == 3)
    })
    .expect("every replica in sync");

    let mut client = WireClient::connect(leader_addr).expect("connect to the leader");
    let versions = client.api_versions().expect("api versions");
    let version = versions[&(ApiKey::Produce as i16)].1.min(9);
    // With a follower stopped and still in the ISR, an acks=all produce cannot complete.
    cluster.pause(follower).expect("pause a follower");
    let waiting = produce_request(
        topic,
        0,
        -1,
        record_batch(&[b"waits for the ISR".as_slice()]).unwrap(),
    )
    .with_timeout_ms(60_000);
    let first = client
        .send_request(ApiKey::Produce as i16, version, &waiting, version)
        .expect("send the acks=all produce");
    let next = produce_request(
        topic,
        0,
        1,
        record_batch(&[b"sent behind it".as_slice()]).unwrap(),
    );
    let second = client
        .send_request(ApiKey::Produce as i16, version, &next, version)
        .expect("send the acks=1 produce");

    let (answered, answers) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for _ in 0..2 {
            let frame = client.read_frame();
            if answered.send(frame).is_err() {
                return;
            }
        }
    });
    // The leader read the second request and appended it while the first still waits.
    wait_until(
        Duration::from_secs(10),
        "both produces appended at the leader",
        || messages_in(leader_metrics, topic) >= 2.0,
    )
    .expect("the produce behind a waiting acks=all produce is appended");
    assert!(
        answers.try_recv().is_err(),
        "a response arrived while the acks=all produce could not be complete"
    );

    cluster.resume(follower).expect("resume the follower");
    let header = ProduceResponse::header_version(version);
    let read = |correlation_id: i32| -> ProduceResponse {
        let frame = answers
            .recv_timeout(ANSWER_WITHIN)
            .expect("answered once the follower caught up")
            .expect("read a response")
            .expect("the connection stays open");
        // The correlation id check fails if the responses come out of order.
        strait_client::frame::decode_response_as(frame, correlation_id, header, version)
            .expect("the responses come back in request order")
    };
    let acks_all = read(first);
    let acks_one = read(second);
    reader.join().unwrap();
    assert_eq!(produce_result(&acks_all).unwrap(), (0, 0));
    assert_eq!(produce_result(&acks_one).unwrap(), (0, 1));
}
