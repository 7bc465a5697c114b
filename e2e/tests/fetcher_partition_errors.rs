//! One follower's log dir fills up under acks=all load: only that dir's partitions back off in
//! its replica fetchers (Kafka's per-partition fetch back-off) and leave their ISRs; the
//! partitions of its healthy dir, fetched by the same fetchers, keep replicating and stay in
//! their ISRs. Once space is freed the backed-off partitions catch up, byte for byte, and nothing
//! acked is lost.
//!
//! Node 3 follows all 8 partitions (leaders alternate between nodes 1 and 2 in pairs); its even
//! partitions live on a small tmpfs, its odd ones on its own dir, so in each fetcher a healthy
//! partition follows a full one in the fetch order: a fetcher that gave up a whole response on
//! the first failing partition would starve the healthy ones too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strait_e2e::checker::{read_topic, verify};
use strait_e2e::cluster::{Cluster, ClusterSpec, PartitionInfo};
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::log_dirs::{self, Described};
use strait_e2e::tmpfs::Mount;
use strait_e2e::wire::WireClient;
use strait_e2e::{idempotent_producer_config, wait_for, wait_until};

const TOPIC: &str = "backoff";
const PARTITIONS: i32 = 8;
const FOLLOWER: u32 = 3;
/// How long the dir stays full: several `replica.lag.time.max.ms` (3 s here), so a stalled
/// healthy partition would surely leave its ISR.
const FULL_FOR: Duration = Duration::from_secs(10);

fn describe(cluster: &Cluster, id: u32) -> Described {
    let addr = cluster
        .node(id)
        .and_then(|n| n.addr())
        .expect("node address");
    let mut client = WireClient::connect(addr).expect("connect");
    log_dirs::describe(&mut client).expect("DescribeLogDirs")
}

fn partitions(cluster: &mut Cluster) -> BTreeMap<i32, PartitionInfo> {
    cluster
        .partition_info(TOPIC)
        .expect("metadata")
        .into_iter()
        .map(|p| (p.partition, p))
        .collect()
}

#[test]
fn a_full_log_dir_backs_off_only_its_own_partitions() {
    let work = tempfile::tempdir().expect("temp dir");
    let small = work.path().join("small");
    std::fs::create_dir_all(&small).expect("mount point");
    let mount = match Mount::tmpfs(&small, "16m") {
        Ok(m) => m,
        Err(reason) => {
            println!(
                "SKIP a_full_log_dir_backs_off_only_its_own_partitions: mount not permitted: {reason}"
            );
            return;
        }
    };
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.nodes[2] = spec.nodes[2].clone().with_log_dirs(vec![small.clone()]);
    // One fetcher per leader: every fetcher of node 3 holds full and healthy partitions.
    spec.overrides
        .push(("num.replica.fetchers".into(), "1".into()));
    // Declared after the mount so that the nodes are killed before the unmount.
    let mut cluster = Cluster::start(spec).expect("start cluster");
    let assignment: Vec<&[i32]> = (0..PARTITIONS)
        .map(|p| -> &[i32] {
            if p % 4 < 2 { &[1, 2, 3] } else { &[2, 1, 3] }
        })
        .collect();
    cluster
        .create_topic_assigned(TOPIC, &assignment, &[])
        .expect("create topic");

    // Node 3: even partitions on the tmpfs, odd ones on its own dir.
    let own = cluster
        .node(FOLLOWER)
        .expect("node 3")
        .log_dir()
        .display()
        .to_string();
    let small_dir = small.display().to_string();
    let wanted: BTreeMap<i32, String> = (0..PARTITIONS)
        .map(|p| {
            let dir = if p % 2 == 0 { &small_dir } else { &own };
            (p, dir.clone())
        })
        .collect();
    let placed = describe(&cluster, FOLLOWER).placement(TOPIC);
    let moves: Vec<(String, &str, i32)> = wanted
        .iter()
        .filter(|(p, dir)| placed.get(p) != Some(dir))
        .map(|(p, dir)| (dir.clone(), TOPIC, *p))
        .collect();
    let mut client =
        WireClient::connect(cluster.node(FOLLOWER).and_then(|n| n.addr()).expect("addr"))
            .expect("connect");
    let results = log_dirs::alter(&mut client, &moves).expect("AlterReplicaLogDirs");
    assert!(results.iter().all(|(_, _, e)| *e == 0), "{results:?}");
    wait_until(Duration::from_secs(30), "node 3's placement", || {
        let d = describe(&cluster, FOLLOWER);
        !d.moving() && d.placement(TOPIC) == wanted
    })
    .expect("placed");
    let (full, healthy): (Vec<i32>, Vec<i32>) = (0..PARTITIONS).partition(|p| p % 2 == 0);

    let mut config = idempotent_producer_config(&cluster.bootstrap());
    config.set("message.timeout.ms", "120000");
    let producer = BackgroundProducer::start(
        config,
        TOPIC,
        LoadPlan {
            partitions: PARTITIONS,
            limit: None,
            rate: Some(2000),
            max_duration: Duration::from_secs(120),
        },
    )
    .expect("producer");
    wait_until(Duration::from_secs(30), "2000 acked", || {
        producer.acked() >= 2000
    })
    .expect("producing");

    // The tmpfs fills up: node 3 can append nothing more to its even partitions.
    let filler = mount.fill("filler").expect("fill the tmpfs");
    let filled_at = Instant::now();
    let sizes_at_fill = describe(&cluster, FOLLOWER).sizes(TOPIC);
    let acked_at_fill = producer.acked();
    let mut full_left_isr = false;
    while filled_at.elapsed() < FULL_FOR {
        let now = partitions(&mut cluster);
        for p in &healthy {
            assert!(
                now[p].isr.contains(&(FOLLOWER as i32)),
                "healthy partition {p} left node 3's ISR {:.1} s after the other dir filled: \
                 {:?}\nnode 3 stderr:\n{}",
                filled_at.elapsed().as_secs_f64(),
                now[p],
                cluster.node(FOLLOWER).expect("node").stderr_tail()
            );
        }
        full_left_isr |= full
            .iter()
            .all(|p| !now[p].isr.contains(&(FOLLOWER as i32)));
        std::thread::sleep(Duration::from_millis(200));
    }
    // The full dir's partitions did stall (else this test proved nothing) and the healthy
    // dir's replicas kept growing on node 3, acks=all kept completing.
    assert!(
        full_left_isr,
        "the full dir's partitions never left node 3's ISR: {:?}",
        partitions(&mut cluster)
    );
    let sizes_full = describe(&cluster, FOLLOWER).sizes(TOPIC);
    for p in &healthy {
        assert!(
            sizes_full[p] > sizes_at_fill[p],
            "node 3's partition {p} did not grow while the other dir was full: {} -> {}",
            sizes_at_fill[p],
            sizes_full[p]
        );
    }
    let acked_full = producer.acked();
    assert!(
        acked_full >= acked_at_fill + 5000,
        "acks=all stalled: {acked_at_fill} -> {acked_full} acked in {FULL_FOR:?}"
    );
    println!(
        "dir full for {FULL_FOR:?}: {} acked meanwhile, node 3 sizes {sizes_at_fill:?} -> {sizes_full:?}",
        acked_full - acked_at_fill
    );

    // Space comes back: the backed-off partitions catch up and rejoin their ISRs.
    std::fs::remove_file(&filler).expect("free the tmpfs");
    let freed_at = Instant::now();
    wait_until(
        Duration::from_secs(30),
        "every partition back in node 3's ISR",
        || {
            let now = partitions(&mut cluster);
            now.values().all(|p| p.isr.contains(&(FOLLOWER as i32)))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\nnode 3 stderr:\n{}",
            partitions(&mut cluster),
            cluster.node(FOLLOWER).expect("node").stderr_tail()
        )
    });
    println!(
        "back in every ISR {:.1} s after space was freed",
        freed_at.elapsed().as_secs_f64()
    );
    let reports = producer.stop().expect("producer stopped");

    // Node 3 holds the same bytes as the others for every partition.
    let same = wait_for(
        Duration::from_secs(30),
        "node 3's replicas the size of node 1's and 2's",
        || {
            let sizes: Vec<BTreeMap<i32, i64>> = [1, 2, FOLLOWER]
                .iter()
                .map(|&id| describe(&cluster, id).sizes(TOPIC))
                .collect();
            (sizes[0].len() == PARTITIONS as usize && sizes[0] == sizes[1] && sizes[1] == sizes[2])
                .then(|| sizes[2].clone())
        },
    )
    .expect("caught up");
    assert!(same.values().all(|&s| s > 0), "{same:?}");
    let content =
        read_topic(&cluster.bootstrap(), TOPIC, Duration::from_secs(60)).expect("read topic");
    let report = verify(&reports, &content);
    println!(
        "{} acked, {} failed, {} read",
        report.acked, report.failed, report.read
    );
    report.check().expect("nothing lost or duplicated");
    assert_eq!(report.failed, 0);
    for id in cluster.ids() {
        assert!(cluster.accepts(id), "node {id} down");
    }
}
