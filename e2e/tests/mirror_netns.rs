//! `strait-mirror` (MM2 mode) between two three-node Strait clusters through network cuts, in a
//! network-namespace lab of seven nodes: the source cluster on nodes 1-3, the target cluster on
//! nodes 4-6 and the mirror inside node 7's namespace, the test's producer and readers in the
//! clients' namespace (which reaches every node throughout). Records are written to four
//! partitions of `A:orders` in chunks. A quarter into one chunk the source cluster is cut off
//! the target and the mirror, for longer than the mirror's request timeouts; while cut, the
//! source takes the rest of that chunk and one more and the target must stand still. After the
//! heal the same is done, briefly, to the target side (cut off the mirror only). At the end every
//! source record is on `B:A.orders` in the same partition and order; duplicates are counted and
//! reported.
//!
//! The lab itself is checked first: a cut between two groups separates exactly those groups.
//! Needs `target/release/strait-mirror` and `strait-broker`, and root for the namespaces
//! (`STRAIT_SKIP_NETNS=1` skips where namespaces cannot be made).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_e2e::cluster::{Cluster, ClusterSpec, NodeSpec, READY_TIMEOUT, fast_overrides};
use strait_e2e::mirror::{self, MirrorProcess, assert_copied_in_order};
use strait_e2e::netns::{self, NetLab};
use strait_e2e::{
    TestMessage, produce_all, producer_config, read_partition, wait_for, wait_until, watermarks,
};

const SOURCE: [u32; 3] = [1, 2, 3];
const TARGET: [u32; 3] = [4, 5, 6];
const MIRROR_NODE: u32 = 7;
const PARTITIONS: i32 = 4;
const CHUNKS: usize = 8;
const PER_CHUNK: usize = 10_000;
/// The source cut outlasts the mirror's Fetch timeout (its 0.5 s long poll + 30 s), its
/// Heartbeat timeout (30 s) and its group session (10 s): the mirror's requests to the source
/// time out, it drops those connections, and it must reconnect and rejoin its group after the
/// heal.
const SOURCE_CUT: Duration = Duration::from_secs(33);
/// Shorter than the mirror's Produce timeout (40 s): its connections to the target carry on.
const TARGET_CUT: Duration = Duration::from_secs(5);
/// Time for batches the mirror had already fetched (or that were already on the wire) to land
/// before the target is sampled as standing still.
const SETTLE: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn lab_cuts_two_groups_apart_only() {
    if !netns::required().unwrap_or_else(|reason| panic!("{reason}")) {
        return;
    }
    let lab = NetLab::create(&[1, 2, 3, 4, 5]).expect("create the lab");
    // A listener in each of nodes 1 (left group), 3 (right group) and 5 (neither).
    let listen = |id: u32| {
        lab.run_in_node(id, || TcpListener::bind((NetLab::addr(id), 0)))
            .expect("enter the node")
            .expect("bind")
    };
    let (l1, l3, l5) = (listen(1), listen(3), listen(5));
    let (n1, n3, n5) = (
        l1.local_addr().expect("address"),
        l3.local_addr().expect("address"),
        l5.local_addr().expect("address"),
    );
    let crossing = [(1, n3), (2, n3), (3, n1), (4, n1)];
    for (from, to) in crossing {
        assert!(lab.reachable(Some(from), to), "{from} reaches {to} before");
    }

    lab.cut_between(&[1, 2], &[3, 4])
        .expect("cut {1,2} | {3,4}");
    for (from, to) in crossing {
        assert!(!lab.reachable(Some(from), to), "{from} is cut off {to}");
    }
    // Inside each group, to the node in neither group and from the clients: still up.
    assert!(lab.reachable(Some(2), n1), "2 reaches 1 (same group)");
    assert!(lab.reachable(Some(4), n3), "4 reaches 3 (same group)");
    assert!(lab.reachable(Some(5), n1), "5 reaches 1 (no group)");
    assert!(lab.reachable(Some(5), n3), "5 reaches 3 (no group)");
    assert!(lab.reachable(Some(1), n5), "1 reaches 5 (no group)");
    assert!(lab.reachable(None, n1), "clients reach 1");
    assert!(lab.reachable(None, n3), "clients reach 3");
    assert!(
        lab.cut_between(&[1], &[1, 2]).is_err(),
        "a node on both sides is refused"
    );
    assert!(
        lab.cut_between(&[1], &[9]).is_err(),
        "an unknown node is refused"
    );

    lab.heal_between(&[1, 2], &[3, 4]).expect("heal");
    wait_until(
        Duration::from_secs(10),
        "the groups to reach each other",
        || {
            crossing
                .iter()
                .all(|&(from, to)| lab.reachable(Some(from), to))
        },
    )
    .expect("healed");
}

fn message(n: usize) -> TestMessage {
    let p = (n % PARTITIONS as usize) as i32;
    TestMessage {
        key: Some(format!("k{n}").into_bytes()),
        value: Some(format!("record {n:07} {}", "x".repeat(n % 64)).into_bytes()),
        headers: Vec::new(),
        partition: Some(p),
        timestamp: None,
    }
}

fn produce_chunk(bootstrap: &str, chunk: usize) {
    produce_range(bootstrap, chunk * PER_CHUNK..(chunk + 1) * PER_CHUNK);
}

/// Writes records `range` (acks=all, idempotent) and waits until all are acknowledged.
fn produce_range(bootstrap: &str, range: std::ops::Range<usize>) {
    let messages: Vec<TestMessage> = range.map(message).collect();
    let config = producer_config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .clone();
    let deliveries = produce_all(&config, "orders", &messages, WAIT).expect("produce");
    for d in deliveries {
        d.result.expect("delivered");
    }
}

/// Every partition's high watermark, or `None` when one could not be read.
fn high_watermarks(bootstrap: &str, topic: &str) -> Option<Vec<i64>> {
    (0..PARTITIONS)
        .map(|p| watermarks(bootstrap, topic, p).ok().map(|(_, high)| high))
        .collect()
}

fn sampled(bootstrap: &str, topic: &str) -> Vec<i64> {
    wait_for(WAIT, &format!("high watermarks of {topic}"), || {
        high_watermarks(bootstrap, topic)
    })
    .expect("watermarks")
}

/// Waits until the target copied through to the source's end; how long it took.
fn wait_caught_up(source: &str, target: &str, mirror: &MirrorProcess) -> Duration {
    let start = Instant::now();
    mirror::wait_caught_up(
        (source, "orders"),
        (target, "A.orders"),
        PARTITIONS,
        mirror,
        WAIT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    start.elapsed()
}

/// The mirror's log lines added since byte `from`, and the log's length now.
fn new_log_lines(mirror: &MirrorProcess, from: usize) -> (Vec<String>, usize) {
    let log = mirror.log();
    let lines = log
        .get(from..)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, log.len())
}

/// Prints what the mirror logged around a cut: every line but the once-a-second failed topic
/// syncs, which are counted.
fn print_log(lines: &[String]) {
    let syncs = lines
        .iter()
        .filter(|l| l.contains("topic sync failed"))
        .count();
    println!("  ({syncs} failed topic syncs)");
    for line in lines
        .iter()
        .filter(|l| !l.contains("topic sync failed"))
        .take(40)
    {
        println!("  {line}");
    }
}

fn cluster_spec(ids: &[u32], racks: &[&str]) -> ClusterSpec {
    ClusterSpec {
        nodes: ids
            .iter()
            .zip(racks)
            .map(|(&id, rack)| NodeSpec::combined(id, rack))
            .collect(),
        overrides: fast_overrides(),
        ..ClusterSpec::default()
    }
}

#[test]
fn mm2_mode_recovers_from_network_cuts_between_clusters() {
    if !netns::required().unwrap_or_else(|reason| panic!("{reason}")) {
        return;
    }
    let lab = Arc::new(NetLab::create(&[1, 2, 3, 4, 5, 6, 7]).expect("network namespaces"));
    let inner = lab.clone();
    lab.run_in_clients(move || cuts_scenario(inner))
        .expect("enter the client namespace");
}

/// Writes chunk `first` and, a quarter of the way into it (the mirror copying), cuts `left` off
/// `right` for `hold`; writes chunk `first + 1` while cut; asserts the target stood still while
/// the source grew; heals.
fn cut_and_check(
    lab: &NetLab,
    (left, right): (&[u32], &[u32]),
    hold: Duration,
    (source, target): (&str, &str),
    first: usize,
    mirror: &MirrorProcess,
) {
    let (cut_at, source_at_cut, target_at_cut) = std::thread::scope(|scope| {
        let (quarter_tx, quarter_rx) = std::sync::mpsc::channel();
        // The writer thread is in the clients' namespace too: threads inherit it.
        let writer = scope.spawn(move || {
            let (begin, end) = (first * PER_CHUNK, (first + 1) * PER_CHUNK);
            let quarter = begin + PER_CHUNK / 4;
            produce_range(source, begin..quarter);
            let _ = quarter_tx.send(());
            produce_range(source, quarter..end);
        });
        // A writer that failed drops the sender; its panic is resumed at the join below.
        let _ = quarter_rx.recv();
        let cut_at = Instant::now();
        lab.cut_between(left, right).expect("cut");
        let source_at_cut: i64 = sampled(source, "orders").iter().sum();
        let target_at_cut: i64 = sampled(target, "A.orders").iter().sum();
        if let Err(panic) = writer.join() {
            std::panic::resume_unwind(panic);
        }
        (cut_at, source_at_cut, target_at_cut)
    });
    produce_chunk(source, first + 1);
    std::thread::sleep(SETTLE.saturating_sub(cut_at.elapsed()));
    let frozen = sampled(target, "A.orders");
    std::thread::sleep(hold.saturating_sub(cut_at.elapsed()));
    let still = sampled(target, "A.orders");
    let source_after: i64 = sampled(source, "orders").iter().sum();
    lab.heal_between(left, right).expect("heal");
    println!(
        "cut {left:?} | {right:?} for {:.1?}: source {source_at_cut} at the cut, {source_after} at the heal; target {target_at_cut} at the cut, {} -> {} while cut",
        cut_at.elapsed(),
        frozen.iter().sum::<i64>(),
        still.iter().sum::<i64>()
    );
    let log = || {
        let log = mirror.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    assert!(
        source_after - source_at_cut >= PER_CHUNK as i64,
        "the source took at least a chunk while cut"
    );
    // The chunk written after the cut was on the source before `frozen` was sampled, so a
    // mirror that still reached both sides would have copied it by `still`. (Sums of target
    // offsets are not compared with the source's: re-copied records count there too.)
    assert_eq!(
        frozen,
        still,
        "the target stood still while cut; mirror log:\n{}",
        log()
    );
}

fn cuts_scenario(lab: Arc<NetLab>) {
    let started = Instant::now();
    let mut a = Cluster::start_in_lab(cluster_spec(&SOURCE, &["a1", "a2", "a3"]), lab.clone())
        .expect("cluster A");
    let mut b = Cluster::start_in_lab(cluster_spec(&TARGET, &["b1", "b2", "b3"]), lab.clone())
        .expect("cluster B");
    a.wait_all_ready(READY_TIMEOUT).expect("A ready");
    b.wait_all_ready(READY_TIMEOUT).expect("B ready");
    a.create_topic("orders", PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .expect("create orders");
    let (source, target) = (a.bootstrap(), b.bootstrap());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("mm2.properties");
    std::fs::write(
        &config,
        format!(
            "clusters = A, B\n\
             A.bootstrap.servers = {source}\n\
             B.bootstrap.servers = {target}\n\
             A->B.enabled = true\n\
             A->B.topics = orders\n\
             replication.factor = 3\n\
             refresh.topics.interval.seconds = 1\n\
             emit.checkpoints.interval.seconds = 5\n"
        ),
    )
    .expect("write config");
    let stderr = dir.path().join("mirror.log");
    let mut mirror = MirrorProcess::start_in(&lab.exec_prefix(MIRROR_NODE), &config, None, &stderr)
        .expect("start the mirror in node 7");
    let mut log_seen = 0;
    println!("clusters and mirror started in {:.1?}", started.elapsed());

    let mut chunk = 0;
    while chunk < CHUNKS {
        let cut = match chunk {
            // The source cluster cut off the target cluster and the mirror, mid-copy. The
            // mirror's requests to the source (its Fetches or its group Heartbeat, whichever
            // comes first) must time out rather than hang on the dead connections.
            1 => Some((
                &SOURCE[..],
                &[4, 5, 6, MIRROR_NODE][..],
                SOURCE_CUT,
                Some("error=A: "),
            )),
            // The target cluster cut off the mirror (the source still reaches it), mid-copy:
            // shorter than the mirror's Produce timeout, so its connections carry on after the
            // heal.
            4 => Some((&TARGET[..], &[MIRROR_NODE][..], TARGET_CUT, None)),
            _ => None,
        };
        let Some((left, right, hold, timed_out)) = cut else {
            produce_chunk(&source, chunk);
            chunk += 1;
            if chunk == 1 {
                // The mirror is up and has made `A.orders` on the target before anything is cut.
                wait_caught_up(&source, &target, &mirror);
            }
            continue;
        };
        cut_and_check(
            &lab,
            (left, right),
            hold,
            (&source, &target),
            chunk,
            &mirror,
        );
        chunk += 2;
        let took = wait_caught_up(&source, &target, &mirror);
        let (lines, seen) = new_log_lines(&mirror, log_seen);
        log_seen = seen;
        println!("caught up {took:.1?} after the heal; the mirror logged meanwhile:");
        print_log(&lines);
        if let Some(request) = timed_out {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(request) && l.contains("timed out")),
                "the mirror logged no request ({request}) timing out during the cut"
            );
        }
    }

    let source_marks = sampled(&source, "orders");
    assert_eq!(
        source_marks.iter().sum::<i64>(),
        (CHUNKS * PER_CHUNK) as i64,
        "the idempotent producer wrote each record once"
    );
    wait_caught_up(&source, &target, &mirror);

    let mut duplicates = 0usize;
    for p in 0..PARTITIONS {
        let sent = read_partition(&source, "orders", p, WAIT).expect("read A");
        let copied = read_partition(&target, "A.orders", p, WAIT).expect("read B");
        duplicates += assert_copied_in_order(p, &sent, &copied);
    }
    let total: i64 = source_marks.iter().sum();
    println!(
        "mirrored {total} records through a source cut and a target cut in {:.1?}; {duplicates} duplicates",
        started.elapsed()
    );
    assert!(mirror.is_running(), "mirror exited:\n{}", mirror.log());
}
