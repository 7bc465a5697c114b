//! The metadata quorum end to end: voters on 127.0.0.1 talking real gRPC, with leader failover,
//! restarts from disk, snapshots with log purging, the controller client and the metadata
//! follower. Every wait is a condition polled against a deadline.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_cluster::controller::{Controller, ControllerSettings};
use strait_cluster::image::Image;
use strait_cluster::quorum::{
    ControllerClient, MetadataFollower, Quorum, QuorumConfig, QuorumError, QuorumTls,
};
use strait_cluster::record::MetadataRecord;
use strait_cluster::rpc::{ControllerError, ControllerRequest};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn free_ports(n: usize) -> Vec<u16> {
    // Hold every listener until all ports are chosen so none is handed out twice.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

fn settings() -> ControllerSettings {
    ControllerSettings {
        session_timeout: Duration::from_secs(9),
        unclean_leader_election: false,
        auto_leader_rebalance: false,
        imbalance_check_interval: Duration::from_secs(300),
        producer_id_block: 1000,
        cluster_id: "quorum-test".into(),
        bootstrap_scram: Vec::new(),
    }
}

/// Polls `check` every 20 ms until it gives a value; panics after `timeout`.
async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records that change the image visibly and that the controller's periodic work leaves alone.
fn records(i: usize) -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::CreateTopic {
            name: format!("topic-{i}"),
            id: Uuid::new_v4(),
            configs: BTreeMap::from([("retention.ms".to_string(), i.to_string())]),
            partitions: vec![],
        },
        MetadataRecord::AllocateProducerIds {
            broker: 1,
            first: i as i64 * 10,
            count: 10,
        },
    ]
}

struct Cluster {
    voters: BTreeMap<i32, String>,
    root: tempfile::TempDir,
    snapshot_every: u64,
    nodes: BTreeMap<i32, Quorum>,
}

impl Cluster {
    /// Starts `n` voters concurrently (each initialises the cluster at the same time).
    async fn start(n: usize, snapshot_every: u64) -> Cluster {
        let voters: BTreeMap<i32, String> = free_ports(n)
            .into_iter()
            .enumerate()
            .map(|(i, port)| (i as i32 + 1, format!("127.0.0.1:{port}")))
            .collect();
        let mut cluster = Cluster {
            voters,
            root: tempfile::tempdir().expect("temp dir"),
            snapshot_every,
            nodes: BTreeMap::new(),
        };
        let ids: Vec<i32> = cluster.voters.keys().copied().collect();
        cluster.start_nodes(&ids).await;
        cluster
    }

    fn config(&self, id: i32) -> QuorumConfig {
        let bind: SocketAddr = self.voters[&id].parse().expect("voter address");
        QuorumConfig {
            node_id: id,
            voters: self.voters.clone(),
            bootstrap: Vec::new(),
            directory_id: uuid::Uuid::from_u128(id as u128),
            bind,
            dir: self.root.path().join(format!("controller-{id}")),
            settings: settings(),
            snapshot_every: self.snapshot_every,
            tls: QuorumTls::default(),
        }
    }

    async fn start_nodes(&mut self, ids: &[i32]) {
        let starting: Vec<_> = ids
            .iter()
            .map(|id| (*id, tokio::spawn(Quorum::start(self.config(*id)))))
            .collect();
        for (id, task) in starting {
            let quorum = task.await.expect("start task").expect("voter starts");
            self.nodes.insert(id, quorum);
        }
    }

    async fn stop(&mut self, id: i32) {
        let node = self.nodes.remove(&id).expect("running voter");
        node.shutdown().await;
    }

    /// The leader every running voter agrees on.
    async fn leader(&self) -> i32 {
        wait_for("an agreed leader", WAIT, || {
            let leaders: Vec<Option<i32>> = self.nodes.values().map(Quorum::leader).collect();
            let first = leaders[0]?;
            (self.nodes.contains_key(&first) && leaders.iter().all(|l| *l == Some(first)))
                .then_some(first)
        })
        .await
    }

    /// Waits until every running voter holds the same image, at `offset` or later.
    async fn converged(&self, offset: u64) -> Arc<Image> {
        wait_for("images to converge", WAIT, || {
            let images: Vec<Arc<Image>> = self
                .nodes
                .values()
                .map(|q| q.image().borrow().clone())
                .collect();
            let first = images[0].clone();
            (first.offset >= offset && images.iter().all(|i| **i == *first)).then_some(first)
        })
        .await
    }

    /// Proposes `records(i)` for each `i` on the leader; returns the last applied index.
    async fn propose_all(&self, range: std::ops::Range<usize>) -> u64 {
        let leader = self.leader().await;
        let mut last = 0;
        for i in range {
            last = self.nodes[&leader]
                .propose(records(i))
                .await
                .expect("the leader commits");
        }
        last
    }

    fn dir(&self, id: i32) -> std::path::PathBuf {
        self.config(id).dir
    }
}

async fn shutdown_all(cluster: &mut Cluster) {
    let ids: Vec<i32> = cluster.nodes.keys().copied().collect();
    for id in ids {
        cluster.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_replicate_fail_over_and_catch_up_after_restart() {
    let mut cluster = Cluster::start(3, 1000).await;
    let leader = cluster.leader().await;

    // Followers refuse proposals and name the leader.
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");
    match cluster.nodes[&follower].propose(records(0)).await {
        Err(QuorumError::NotLeader { leader: hint }) => assert_eq!(hint, Some(leader)),
        other => panic!("a follower accepted a proposal: {other:?}"),
    }

    let index = cluster.propose_all(0..5).await;
    let image = cluster.converged(index).await;
    assert_eq!(image.topics.len(), 5);
    assert_eq!(image.next_producer_id, 50);
    assert_eq!(
        image
            .topic("topic-3")
            .map(|t| t.configs["retention.ms"].as_str()),
        Some("3")
    );

    // The leader goes away: the others elect a new one within a couple of election timeouts.
    cluster.stop(leader).await;
    let stopped_at = Instant::now();
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "electing a new leader took {:?}",
        stopped_at.elapsed()
    );
    let index = cluster.propose_all(5..10).await;
    let image = cluster.converged(index).await;
    assert_eq!(image.topics.len(), 10);

    // The old leader restarts from its directory and catches up.
    cluster.start_nodes(&[leader]).await;
    let image = cluster.converged(index).await;
    assert_eq!(image.topics.len(), 10);
    assert_eq!(image.next_producer_id, 100);
    let index = cluster.propose_all(10..11).await;
    cluster.converged(index).await;
    shutdown_all(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_restore_after_restarts() {
    let mut cluster = Cluster::start(3, 10).await;
    let index = cluster.propose_all(0..30).await;
    cluster.converged(index).await;

    // Every voter snapshots and purges its log up to the snapshot.
    wait_for("snapshots and purges on every voter", WAIT, || {
        cluster
            .nodes
            .values()
            .all(|q| {
                let m = q.metrics().borrow().clone();
                let snapshot = m.snapshot.map_or(0, |id| id.index);
                let purged = m.purged.map_or(0, |id| id.index);
                snapshot >= 20 && purged >= 10 && purged <= snapshot
            })
            .then_some(())
    })
    .await;
    for id in cluster.voters.keys() {
        assert!(cluster.dir(*id).join("snapshot").is_file());
    }

    // A follower misses entries the leader then purges: it must be sent the snapshot.
    let leader = cluster.leader().await;
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");
    let follower_last = cluster.nodes[&follower]
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);
    cluster.stop(follower).await;
    let index = cluster.propose_all(30..60).await;
    wait_for(
        "the leader to purge past the stopped follower",
        WAIT,
        || {
            let purged = cluster.nodes[&leader].metrics().borrow().purged?;
            (purged.index > follower_last).then_some(())
        },
    )
    .await;
    cluster.start_nodes(&[follower]).await;
    let image = cluster.converged(index).await;
    assert_eq!(image.topics.len(), 60);
    let installed = cluster.nodes[&follower]
        .metrics()
        .borrow()
        .snapshot
        .map_or(0, |id| id.index);
    assert!(
        installed > follower_last,
        "the follower did not get the leader's snapshot"
    );

    // The whole quorum stops; each voter restores its image from its snapshot and log before
    // any leader exists.
    let before = cluster.converged(index).await;
    shutdown_all(&mut cluster).await;
    let ids: Vec<i32> = cluster.voters.keys().copied().collect();
    cluster.start_nodes(&ids).await;
    for (id, node) in &cluster.nodes {
        let restored = node.image().borrow().clone();
        assert_eq!(*restored, *before, "voter {id} did not restore its image");
    }
    let index = cluster.propose_all(60..61).await;
    let image = cluster.converged(index).await;
    assert_eq!(image.topics.len(), 61);
    shutdown_all(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_reach_the_controller_and_follow_the_image() {
    let mut cluster = Cluster::start(3, 1000).await;
    let leader = cluster.leader().await;

    // A client whose first voter is down finds the leader through the others.
    let dead = free_ports(1)[0];
    let mut voters = cluster.voters.clone();
    voters.insert(0, format!("127.0.0.1:{dead}"));
    let client = ControllerClient::new(voters, QuorumTls::default());
    // The answer is the leader's controller's decision, the same a local controller makes on
    // the same image; when it decides records they are committed before the answer.
    let request = ControllerRequest::RegisterBroker {
        id: 42,
        incarnation: Uuid::new_v4(),
        rack: Some("zone-a".into()),
        endpoints: vec![],
    };
    let before = cluster.nodes[&leader].image().borrow().clone();
    let mut local = Controller::new(settings());
    local.activate(&before, Instant::now());
    let expected = local
        .handle(&before, request.clone(), Instant::now())
        .map(|d| (d.response, d.records.is_empty()));
    let answer = client.call(request.clone(), Duration::from_secs(10)).await;
    assert!(
        !matches!(
            answer,
            Err(ControllerError::NotController { .. } | ControllerError::Unavailable(_))
        ),
        "the request did not reach the active controller: {answer:?}"
    );
    assert_eq!(answer, expected.clone().map(|(response, _)| response));
    if let Ok((_, false)) = expected {
        let image = cluster.nodes[&leader].image().borrow().clone();
        assert!(
            image.offset > before.offset,
            "the decision's records were not applied"
        );
        assert_eq!(
            image
                .brokers
                .get(&42)
                .and_then(|b| b.rack.clone())
                .as_deref(),
            Some("zone-a")
        );
        cluster.converged(image.offset).await;
    }
    assert_eq!(client.believed_leader(), Some(leader));
    // Voters that are not the controller answer so, naming the leader.
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");
    let direct = ControllerClient::new(
        BTreeMap::from([(follower, cluster.voters[&follower].clone())]),
        QuorumTls::default(),
    );
    match direct
        .call(request.clone(), Duration::from_millis(500))
        .await
    {
        Err(ControllerError::Unavailable(_)) => {}
        other => panic!("a follower answered a controller request: {other:?}"),
    }

    // No voter reachable: Unavailable, within the deadline.
    let nowhere = ControllerClient::new(
        BTreeMap::from([(9, format!("127.0.0.1:{dead}"))]),
        QuorumTls::default(),
    );
    let started = Instant::now();
    let answer = nowhere.call(request, Duration::from_millis(700)).await;
    assert!(
        matches!(answer, Err(ControllerError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // A broker-only node's image follows the quorum, also across a leader change.
    let (image, follower_handle) =
        MetadataFollower::start(cluster.voters.clone(), QuorumTls::default());
    let index = cluster.propose_all(0..3).await;
    let expected = cluster.converged(index).await;
    wait_for("the follower's image", WAIT, || {
        (**image.borrow() == *expected).then_some(())
    })
    .await;
    cluster.stop(leader).await;
    let index = cluster.propose_all(3..6).await;
    let expected = cluster.converged(index).await;
    wait_for("the follower's image after failover", WAIT, || {
        let current = image.borrow().clone();
        (current.offset >= expected.offset && current.topics == expected.topics).then_some(())
    })
    .await;
    follower_handle.stop().await;
    shutdown_all(&mut cluster).await;
}
