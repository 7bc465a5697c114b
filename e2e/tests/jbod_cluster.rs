//! JBOD in a 3-node cluster: node 1 has two log dirs, its own and a tmpfs, with partitions it
//! leads and partitions it follows on both. DescribeLogDirs sizes equal the segment files on
//! every node; AlterReplicaLogDirs moves every replica of node 1 to its other dir under an
//! idempotent acks=all producer without losing, doubling or reordering a record; then the tmpfs
//! is unmounted under the running broker: its partitions go offline on node 1, so leadership
//! moves to another node and the ISRs shrink (as clients see it in Metadata), while the other
//! dir's partitions keep being led and served by node 1, which stays up.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use strait_e2e::checker::{read_topic, verify};
use strait_e2e::cluster::{Cluster, ClusterSpec, PartitionInfo};
use strait_e2e::load::{BackgroundProducer, LoadPlan};
use strait_e2e::log_dirs::{self, Described, segment_bytes};
use strait_e2e::tmpfs::Mount;
use strait_e2e::wire::WireClient;
use strait_e2e::{TestMessage, idempotent_producer_config, produce_all, wait_for, wait_until};

const TOPIC: &str = "jbod";
const PARTITIONS: i32 = 4;
/// Records of 1000 bytes written to each partition before the load (several 64 KiB segments).
const PREFILL: usize = 300;
const KAFKA_STORAGE_ERROR: i16 = 56;
const NODE: u32 = 1;

fn client(cluster: &Cluster, id: u32) -> WireClient {
    WireClient::connect(cluster.node(id).and_then(|n| n.addr()).expect("address")).expect("connect")
}

fn describe(cluster: &Cluster, id: u32) -> Described {
    log_dirs::describe(&mut client(cluster, id)).expect("DescribeLogDirs")
}

fn partitions(cluster: &mut Cluster) -> BTreeMap<i32, PartitionInfo> {
    cluster
        .partition_info(TOPIC)
        .expect("metadata")
        .into_iter()
        .map(|p| (p.partition, p))
        .collect()
}

/// Moves node 1's replicas so that `wanted` holds and waits until no copy is running.
fn place(cluster: &Cluster, wanted: &BTreeMap<i32, String>) {
    let placed = describe(cluster, NODE).placement(TOPIC);
    let moves: Vec<(String, &str, i32)> = wanted
        .iter()
        .filter(|(p, dir)| placed.get(p) != Some(dir))
        .map(|(p, dir)| (dir.clone(), TOPIC, *p))
        .collect();
    let results = log_dirs::alter(&mut client(cluster, NODE), &moves).expect("alter");
    assert!(results.iter().all(|(_, _, e)| *e == 0), "{results:?}");
    wait_until(Duration::from_secs(60), "node 1's replicas moved", || {
        let d = describe(cluster, NODE);
        !d.moving() && d.placement(TOPIC) == *wanted
    })
    .expect("moved");
}

#[test]
fn a_node_with_two_log_dirs_moves_replicas_and_survives_losing_one() {
    let work = tempfile::tempdir().expect("temp dir");
    let tmpfs = work.path().join("tmpfs");
    std::fs::create_dir_all(&tmpfs).expect("mount point");
    let mount = match Mount::tmpfs(&tmpfs, "64m") {
        Ok(m) => m,
        Err(reason) => {
            println!(
                "SKIP a_node_with_two_log_dirs_moves_replicas_and_survives_losing_one: \
                 mount not permitted: {reason}"
            );
            return;
        }
    };
    let mut spec = ClusterSpec::combined(&["a", "b", "c"]);
    spec.nodes[0] = spec.nodes[0].clone().with_log_dirs(vec![tmpfs.clone()]);
    // Small segments: several per partition, and a roll soon after the disk goes away.
    spec.overrides
        .push(("log.segment.bytes".into(), "65536".into()));
    // Declared after the mount so that the nodes are killed before the unmount.
    let mut cluster = Cluster::start(spec).expect("start cluster");
    // Node 1 leads partitions 0 and 2 and follows 1 and 3.
    cluster
        .create_topic_assigned(
            TOPIC,
            &[&[1, 2, 3], &[2, 1, 3], &[1, 3, 2], &[3, 1, 2]],
            &[],
        )
        .expect("create topic");
    let own = cluster
        .node(NODE)
        .expect("node 1")
        .log_dir()
        .display()
        .to_string();
    let small = tmpfs.display().to_string();
    // 0 and 1 on node 1's own dir, 2 and 3 on the tmpfs; the move below swaps them.
    let first: BTreeMap<i32, String> = (0..PARTITIONS)
        .map(|p| (p, if p < 2 { own.clone() } else { small.clone() }))
        .collect();
    place(&cluster, &first);

    // (a) Data everywhere; DescribeLogDirs sizes are the segment files' on every node.
    let value = vec![b'p'; 1000];
    let messages: Vec<TestMessage> = (0..PARTITIONS)
        .flat_map(|p| {
            (0..PREFILL).map(move |_| TestMessage {
                partition: Some(p),
                ..TestMessage::default()
            })
        })
        .map(|m| TestMessage {
            value: Some(value.clone()),
            ..m
        })
        .collect();
    let mut config = idempotent_producer_config(&cluster.bootstrap());
    // Batches must fit in a 64 KiB segment.
    config.set("batch.size", "32768");
    let deliveries =
        produce_all(&config, TOPIC, &messages, Duration::from_secs(60)).expect("prefill");
    let failed: Vec<_> = deliveries.iter().filter(|d| d.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of the prefill failed, first {:?}",
        failed.len(),
        failed.first()
    );
    let sizes = wait_for(
        Duration::from_secs(30),
        "every node's replicas the same size",
        || {
            let sizes: Vec<BTreeMap<i32, i64>> = (1..=3)
                .map(|id| describe(&cluster, id).sizes(TOPIC))
                .collect();
            (sizes[0].len() == PARTITIONS as usize && sizes[0] == sizes[1] && sizes[1] == sizes[2])
                .then(|| sizes[0].clone())
        },
    )
    .expect("replicated");
    assert!(sizes.values().all(|&s| s > 300_000), "{sizes:?}");
    for id in 1..=3 {
        let described = describe(&cluster, id);
        assert_eq!(described.dirs.len(), if id == NODE { 2 } else { 1 });
        for (dir, state) in &described.dirs {
            assert_eq!(state.error_code, 0, "node {id} {dir}");
            assert!(
                state.total_bytes > 0 && state.usable_bytes > 0,
                "node {id} {dir}: {state:?}"
            );
        }
        for ((dir, t, p), r) in &described.replicas {
            let on_disk = segment_bytes(&Path::new(dir).join(format!("{t}-{p}"))).expect("files");
            assert_eq!(r.size, on_disk, "node {id} {dir} {t}-{p}");
        }
    }
    assert_eq!(describe(&cluster, NODE).placement(TOPIC), first);

    // (b) Every replica of node 1, led or followed, to its other dir under acks=all load.
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
    wait_until(
        Duration::from_secs(30),
        "2000 acked before the move",
        || producer.acked() >= 2000,
    )
    .expect("producing");
    let swapped: BTreeMap<i32, String> = first
        .iter()
        .map(|(p, dir)| {
            (
                *p,
                if *dir == own {
                    small.clone()
                } else {
                    own.clone()
                },
            )
        })
        .collect();
    place(&cluster, &swapped);
    for (p, dir) in &first {
        assert!(
            !Path::new(dir).join(format!("{TOPIC}-{p}")).exists(),
            "{dir} still holds {p}"
        );
    }
    let acked = producer.acked();
    wait_until(Duration::from_secs(30), "2000 acked after the move", || {
        producer.acked() >= acked + 2000
    })
    .expect("producing after the move");

    // (c) The tmpfs (now holding partitions 0, led by node 1, and 1, followed) goes away.
    let (lost, kept): (Vec<i32>, Vec<i32>) = (0..PARTITIONS).partition(|p| swapped[p] == small);
    assert_eq!(
        (lost.as_slice(), kept.as_slice()),
        (&[0, 1][..], &[2, 3][..])
    );
    mount.pull().expect("pull the disk");
    let me = NODE as i32;
    let seen = wait_for(
        Duration::from_secs(30),
        "partitions 0 and 1 offline on node 1 (new leader, ISR without node 1)",
        || {
            let now = partitions(&mut cluster);
            // Metadata lists node 1's replicas in the lost dir as offline, as Kafka does.
            let moved = lost.iter().all(|p| {
                let i = &now[p];
                i.leader >= 0 && i.leader != me && !i.isr.contains(&me) && i.offline == [me]
            });
            moved.then_some(now)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\nnode 1 stderr:\n{}",
            partitions(&mut cluster),
            cluster.node(NODE).expect("node").stderr_tail()
        )
    });
    println!("after the pull: {seen:?}");
    // Partition 0's leadership went to another replica; node 1 keeps leading partition 2 and
    // stays in the ISRs of its healthy dir's partitions.
    assert_ne!(seen[&0].leader, me);
    assert_eq!(seen[&2].leader, me, "{:?}", seen[&2]);
    assert!(kept.iter().all(|p| seen[p].isr.contains(&me)), "{seen:?}");
    assert!(kept.iter().all(|p| seen[p].offline.is_empty()), "{seen:?}");
    let described = describe(&cluster, NODE);
    assert_eq!(described.dirs[&small].error_code, KAFKA_STORAGE_ERROR);
    assert_eq!(described.dirs[&own].error_code, 0);
    assert_eq!(
        described.placement(TOPIC),
        kept.iter().map(|p| (*p, own.clone())).collect()
    );
    let acked = producer.acked();
    wait_until(Duration::from_secs(30), "2000 acked after the pull", || {
        producer.acked() >= acked + 2000
    })
    .expect("producing after the pull");
    let reports = producer.stop().expect("producer stopped");
    let (code, _) = cluster
        .produce_raw(NODE, TOPIC, 2, -1, 10_000, &[b"after the pull"])
        .expect("produce to node 1");
    assert_eq!(code, 0, "node 1 still serves partition 2");

    // Nothing acked was lost, doubled or reordered, across the move and the lost disk.
    let mut content =
        read_topic(&cluster.bootstrap(), TOPIC, Duration::from_secs(60)).expect("read");
    for (p, records) in content.iter_mut() {
        let prefill: Vec<_> = records.drain(..PREFILL.min(records.len())).collect();
        assert_eq!(prefill.len(), PREFILL, "partition {p}");
        for (i, (offset, v)) in prefill.iter().enumerate() {
            assert_eq!((*offset, v.as_slice()), (i as i64, value.as_slice()));
        }
        if *p == 2 {
            // The raw record produced above is the last one.
            let last = records.pop().expect("records");
            assert_eq!(last.1, b"after the pull");
        }
    }
    let report = verify(&reports, &content);
    println!(
        "{} acked, {} failed, {} read",
        report.acked, report.failed, report.read
    );
    report.check().expect("nothing lost or duplicated");
    assert_eq!(report.failed, 0);
    assert!(cluster.live_ids().contains(&NODE), "node 1 exited");
    assert!(cluster.accepts(NODE));
}
