//! Fetch from follower (KIP-392) on a three-rack cluster with Kafka's RackAwareReplicaSelector:
//! a librdkafka consumer with `client.rack=b` is sent by the leader (rack a) to the rack-b
//! replica and reads everything there — the per-broker byte counters show the leader served it
//! no records — while a consumer in the leader's rack stays on the leader. The rack-b consumer
//! keeps reading correctly, every acknowledged message once and in order, across a restart of
//! the follower it reads from and a leader change under load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use strait_e2e::checker::{TopicContent, verify};
use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::exposition::Scrape;
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::{consumer_config, idempotent_producer_config, wait_until};

const TOPIC: &str = "zoned";
const SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const BYTES_OUT: &str = "kafka_server_brokertopicmetrics_bytesout_total";
const FOLLOWER_BYTES: &str = "strait_fetch_follower_read_bytes_total";
const REDIRECTS: &str = "strait_fetch_preferred_replica_redirects_total";
const FIRST: usize = 300;
const FAULT_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(90);

fn scrape(cluster: &Cluster, id: u32) -> Scrape {
    let addr: SocketAddr = cluster
        .node(id)
        .and_then(|n| n.metrics_addr())
        .expect("metrics address");
    Scrape::fetch(addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("scrape node {id}: {e}"))
}

fn value(scrape: &Scrape, name: &str) -> f64 {
    scrape.sum(name, &[("topic", TOPIC)]).unwrap_or(0.0)
}

fn metric(cluster: &Cluster, id: u32, name: &str) -> f64 {
    value(&scrape(cluster, id), name)
}

/// What a consumer read: (offset, value) in order.
type Read = Arc<Mutex<Vec<(i64, Vec<u8>)>>>;

/// A consumer of partition 0 from the start that tells the brokers its rack, reading on its own
/// thread into a shared list of (offset, value).
struct RackConsumer {
    read: Read,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RackConsumer {
    fn start(bootstrap: &str, rack: &str) -> RackConsumer {
        let consumer: BaseConsumer = consumer_config(bootstrap)
            .set("client.rack", rack)
            .set("fetch.wait.max.ms", "200")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        let read: Read = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (read, stop, rack) = (read.clone(), stop.clone(), rack.to_string());
            std::thread::spawn(move || {
                // Bounded: the test's own deadlines end far sooner.
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => read
                            .lock()
                            .unwrap()
                            .push((m.offset(), m.payload().unwrap_or_default().to_vec())),
                        Some(Err(e)) => eprintln!("consumer (rack {rack}): {e}"),
                        None => {}
                    }
                }
            })
        };
        RackConsumer {
            read,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.read.lock().unwrap().len()
    }

    fn wait_count(&self, n: usize, what: &str) {
        wait_until(READ_TIMEOUT, what, || self.count() >= n)
            .unwrap_or_else(|e| panic!("{e}: read {} of {n}", self.count()));
    }

    fn stop(mut self) -> Vec<(i64, Vec<u8>)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
        std::mem::take(&mut *self.read.lock().unwrap())
    }
}

impl Drop for RackConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn consumer_reads_from_the_replica_in_its_rack() {
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.overrides
        .push(("replica.selector.class".into(), SELECTOR.into()));
    let mut cluster = Cluster::start(spec).expect("cluster");
    cluster
        .create_topic_assigned(TOPIC, &[&[1, 3, 2]], &[("min.insync.replicas", "2")])
        .expect("create topic led by node 1 (rack a)");

    // One producer for the whole test, so every payload is unique for the checker.
    let producer = BackgroundProducer::start(
        idempotent_producer_config(&cluster.bootstrap()),
        TOPIC,
        LoadPlan {
            partitions: 1,
            limit: Some(20_000),
            rate: Some(200),
            max_duration: Duration::from_secs(180),
        },
    )
    .expect("producer");

    // Rack b: the leader redirects, node 2 serves every record.
    let b = RackConsumer::start(&cluster.bootstrap(), "b");
    b.wait_count(FIRST, "the rack-b consumer to read the first messages");
    let node2 = scrape(&cluster, 2);
    let served_by_2 = value(&node2, FOLLOWER_BYTES);
    assert!(served_by_2 > 0.0, "node 2 served the rack-b consumer");
    assert_eq!(
        value(&node2, BYTES_OUT),
        served_by_2,
        "node 2's consumer bytes are all follower reads"
    );
    assert_eq!(
        metric(&cluster, 1, BYTES_OUT),
        0.0,
        "the leader in rack a sent the rack-b consumer no records"
    );
    assert_eq!(metric(&cluster, 3, BYTES_OUT), 0.0, "node 3 served nothing");
    assert!(
        metric(&cluster, 1, REDIRECTS) >= 1.0,
        "the leader redirected"
    );

    // Rack a: the leader itself is in the consumer's rack. (The rack-b consumer keeps reading
    // on node 2 meanwhile, so only the leader's counter tells who served rack a.)
    let a = RackConsumer::start(&cluster.bootstrap(), "a");
    a.wait_count(FIRST, "the rack-a consumer to read the first messages");
    let read_a = a.stop();
    assert!(
        metric(&cluster, 1, BYTES_OUT) > 0.0,
        "rack a read from the leader"
    );
    assert_eq!(
        metric(&cluster, 3, BYTES_OUT),
        0.0,
        "node 3 still served nothing"
    );
    assert!(read_a.len() >= FIRST);

    // Under load: restart the follower the consumer reads from, then kill the leader.
    let progress = |b: &RackConsumer, what: &str| {
        let target = b.count() + 200;
        b.wait_count(target, what);
    };
    progress(&b, "reading under load");
    cluster.restart(2).expect("restart node 2");
    cluster.wait_ready(2, READY_TIMEOUT).expect("node 2 ready");
    progress(&b, "reading after the rack-b follower restarted");
    cluster
        .wait_for_leader(TOPIC, 0, FAULT_TIMEOUT, |p| p.isr.len() == 3)
        .expect("node 2 back in the ISR");
    let before_kill = metric(&cluster, 2, FOLLOWER_BYTES);
    wait_until(
        FAULT_TIMEOUT,
        "node 2 to serve the rack-b consumer again",
        || metric(&cluster, 2, FOLLOWER_BYTES) > before_kill,
    )
    .expect("back on the rack-b follower");

    cluster.kill(1).expect("kill the leader");
    let moved = cluster
        .wait_for_leader(TOPIC, 0, FAULT_TIMEOUT, |p| p.leader > 1)
        .expect("a new leader");
    eprintln!("new leader: node {}", moved.leader);
    let before_change = metric(&cluster, 2, FOLLOWER_BYTES);
    progress(&b, "reading after the leader change");
    if moved.leader != 2 {
        // The new leader (rack c) sends the rack-b consumer back to node 2.
        wait_until(
            FAULT_TIMEOUT,
            "the new leader to redirect to node 2",
            || metric(&cluster, 2, FOLLOWER_BYTES) > before_change,
        )
        .expect("reading on the rack-b follower under the new leader");
    }
    cluster.restart(1).expect("restart node 1");
    cluster.wait_ready(1, READY_TIMEOUT).expect("node 1 ready");
    progress(&b, "reading after node 1 returned");

    let acked = producer.stop().expect("stop producer");
    let want = acked.iter().filter(|a| a.result.is_ok()).count();
    // Everything acknowledged is below the high watermark: the consumer must get to it all.
    b.wait_count(
        want,
        "the rack-b consumer to read every acknowledged message",
    );
    let read = b.stop();
    let content: TopicContent = [(0, read)].into_iter().collect();
    let report = verify(&acked, &content);
    eprintln!(
        "{TOPIC}: {} acked, {} failed ({} stored anyway), {} read",
        report.acked, report.failed, report.failed_but_stored, report.read
    );
    report.check().expect("checker");
}
