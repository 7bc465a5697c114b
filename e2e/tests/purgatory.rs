//! Parked requests complete on the event they wait for, not on their timeout (Kafka's
//! DelayedFetch / DelayedProduce semantics): a consumer fetch parked at a partition's leader is
//! completed once an acks=all produce's records are replicated and the high watermark moves, and
//! the `kafka_server_delayedoperationpurgatory_purgatorysize` gauge shows the parked fetch.
//!
//! The fetch asks for up to 25 s of waiting and the harness gives it 10 s to answer: a fetch
//! woken only by its timeout fails the test whatever the machine's speed.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strait_e2e::cluster::{Cluster, ClusterSpec};
use strait_e2e::exposition::Scrape;
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};
use strait_e2e::{http, wait_until};

const PURGATORY: &str = "kafka_server_delayedoperationpurgatory_purgatorysize";
const SESSIONS: &str = "kafka_server_fetchsessioncache_numincrementalfetchsessions";
/// The parked fetch's own wait: far beyond what the test allows for its answer.
const FETCH_MAX_WAIT_MS: i32 = 25_000;
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn scrape(metrics: SocketAddr) -> Option<Scrape> {
    http::get(metrics, "/metrics", Duration::from_secs(2))
        .ok()
        .and_then(|r| Scrape::parse(&String::from_utf8_lossy(&r.body)).ok())
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
fn a_parked_consumer_fetch_is_completed_by_replication_not_by_its_timeout() {
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
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
