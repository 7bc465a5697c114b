//! Voters as separate processes killed with SIGKILL: the quorum keeps committing without the
//! killed leader, and the killed voter restarted on its directory rejoins with its data. The
//! voters are this test binary re-run in "voter" mode (the ignored `voter_process` test).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strait_cluster::controller::ControllerSettings;
use strait_cluster::image::Image;
use strait_cluster::quorum::{
    ControllerClient, MetadataFollower, Quorum, QuorumConfig, QuorumError, QuorumTls,
};
use strait_cluster::record::MetadataRecord;
use strait_cluster::rpc::{ControllerError, ControllerRequest};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(30);
/// A voter process exits on its own after this long, whatever happens to the test.
const VOTER_LIFETIME: Duration = Duration::from_secs(90);

fn voters_to_env(voters: &BTreeMap<i32, String>) -> String {
    voters
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn voters_from_env(value: &str) -> BTreeMap<i32, String> {
    value
        .split(',')
        .filter_map(|pair| {
            let (id, addr) = pair.split_once('=')?;
            Some((id.parse().ok()?, addr.to_string()))
        })
        .collect()
}

/// Voter mode: runs one voter that, while it leads, keeps allocating producer ids (one record
/// per entry), so the image grows as long as the quorum commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by `killed_voters_rejoin_with_their_data` as a child process"]
async fn voter_process() {
    let (Ok(id), Ok(voters), Ok(dir)) = (
        std::env::var("STRAIT_QUORUM_NODE"),
        std::env::var("STRAIT_QUORUM_VOTERS"),
        std::env::var("STRAIT_QUORUM_DIR"),
    ) else {
        return;
    };
    let node_id: i32 = id.parse().expect("node id");
    let voters = voters_from_env(&voters);
    let bind: SocketAddr = voters[&node_id].parse().expect("voter address");
    let quorum = Quorum::start(QuorumConfig {
        node_id,
        voters,
        bootstrap: Vec::new(),
        directory_id: uuid::Uuid::from_u128(node_id as u128),
        bind,
        dir: dir.into(),
        settings: ControllerSettings {
            session_timeout: Duration::from_secs(9),
            unclean_leader_election: false,
            auto_leader_rebalance: false,
            imbalance_check_interval: Duration::from_secs(300),
            producer_id_block: 1000,
            cluster_id: "quorum-test".into(),
            bootstrap_scram: Vec::new(),
        },
        snapshot_every: 20,
        tls: QuorumTls::default(),
    })
    .await
    .expect("voter starts");
    let image = quorum.image();
    let started = Instant::now();
    while started.elapsed() < VOTER_LIFETIME {
        if quorum.leader() == Some(node_id) {
            let next = image.borrow().next_producer_id;
            let record = MetadataRecord::AllocateProducerIds {
                broker: node_id,
                first: next,
                count: 1,
            };
            match quorum.propose(vec![record]).await {
                Ok(_) | Err(QuorumError::NotLeader { .. } | QuorumError::Unavailable(_)) => {}
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    quorum.shutdown().await;
}

/// A voter child process, SIGKILLed when dropped.
struct Voter(Child);

impl Drop for Voter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_voter(id: i32, voters: &BTreeMap<i32, String>, root: &Path) -> Voter {
    let exe = std::env::current_exe().expect("test binary path");
    let child = Command::new(exe)
        .args(["voter_process", "--exact", "--ignored", "--nocapture"])
        .env("STRAIT_QUORUM_NODE", id.to_string())
        .env("STRAIT_QUORUM_VOTERS", voters_to_env(voters))
        .env("STRAIT_QUORUM_DIR", root.join(format!("controller-{id}")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a voter process");
    Voter(child)
}

async fn wait_image(
    what: &str,
    image: &watch::Receiver<Arc<Image>>,
    check: impl Fn(&Image) -> bool,
) -> Arc<Image> {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = image.borrow().clone();
        if check(&current) {
            return current;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The voter that answers controller requests.
async fn find_leader(voters: &BTreeMap<i32, String>) -> i32 {
    let client = ControllerClient::new(voters.clone(), QuorumTls::default());
    let answer = client
        .call(
            ControllerRequest::ListReassignments { partitions: None },
            WAIT,
        )
        .await;
    assert!(
        !matches!(
            answer,
            Err(ControllerError::NotController { .. } | ControllerError::Unavailable(_))
        ),
        "no active controller: {answer:?}"
    );
    client.believed_leader().expect("a leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_voters_rejoin_with_their_data() {
    let root = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect()
    };
    let voters: BTreeMap<i32, String> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| (i as i32 + 1, format!("127.0.0.1:{port}")))
        .collect();
    let mut processes: BTreeMap<i32, Voter> = voters
        .keys()
        .map(|id| (*id, spawn_voter(*id, &voters, root.path())))
        .collect();

    let (image, follower) = MetadataFollower::start(voters.clone(), QuorumTls::default());
    wait_image("the first commits", &image, |i| i.next_producer_id >= 50).await;

    // SIGKILL the leader: the others elect a new one and keep committing.
    let leader = find_leader(&voters).await;
    let killed = processes.remove(&leader).expect("leader process");
    drop(killed);
    let at_kill = image.borrow().next_producer_id;
    wait_image("commits after the kill", &image, |i| {
        i.next_producer_id >= at_kill + 50
    })
    .await;
    assert_ne!(find_leader(&voters).await, leader);

    // The killed voter restarts on its directory and serves the quorum's data again.
    processes.insert(leader, spawn_voter(leader, &voters, root.path()));
    let target = image.borrow().clone();
    let (restarted, restarted_follower) = MetadataFollower::start(
        BTreeMap::from([(leader, voters[&leader].clone())]),
        QuorumTls::default(),
    );
    let seen = wait_image("the restarted voter's image", &restarted, |i| {
        i.offset >= target.offset
    })
    .await;
    assert!(seen.next_producer_id >= target.next_producer_id);
    assert!(
        root.path()
            .join(format!("controller-{leader}/snapshot"))
            .is_file()
    );

    restarted_follower.stop().await;
    follower.stop().await;
    drop(processes);
}
