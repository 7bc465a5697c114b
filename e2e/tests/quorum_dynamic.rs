//! Dynamic controller quorum (KIP-853) on real broker processes: a one-voter cluster grows to
//! three voters through AddRaftVoter (the new controllers start with
//! `controller.quorum.bootstrap.servers` alone and join as observers), survives the SIGKILL of
//! the original leader with consistent metadata, keeps its voter set across a restart of the
//! seed node (whose `controller.quorum.voters` still names only itself), refuses a second change
//! while one runs, and shrinks again with RemoveRaftVoter (the removed voter stays an observer);
//! DescribeQuorum v2 shows each step with the nodes' directory ids. A voter whose disk was lost
//! is replaced: refused as the old voter, removed by its old directory id, added back. A seed
//! voter whose disk was lost does not seed a second quorum when it knows the other controllers.

use std::collections::BTreeSet;
use std::time::Duration;

use strait_e2e::cluster::{Cluster, ClusterSpec, NodeSpec, READY_TIMEOUT};
use strait_e2e::{free_port, wait_until};

const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Kafka's error codes.
const REQUEST_TIMED_OUT: i16 = 7;
const DUPLICATE_VOTER: i16 = 126;
const VOTER_NOT_FOUND: i16 = 127;

fn ids(set: impl IntoIterator<Item = i32>) -> BTreeSet<i32> {
    set.into_iter().collect()
}

/// Waits until DescribeQuorum through `via` shows exactly `voters` as the voter set, and returns
/// that view.
fn wait_voters(cluster: &Cluster, via: u32, voters: &[i32]) -> strait_e2e::cluster::QuorumView {
    let wanted = ids(voters.iter().copied());
    let mut last = None;
    wait_until(
        STEP_TIMEOUT,
        &format!("voters {wanted:?} via {via}"),
        || {
            last = cluster.quorum(via).ok();
            last.as_ref()
                .is_some_and(|q| q.leader >= 0 && ids(q.voters.keys().copied()) == wanted)
        },
    )
    .unwrap_or_else(|e| {
        let error = cluster.quorum(via).err();
        let tails: Vec<String> = cluster
            .nodes()
            .iter()
            .map(|n| {
                // Raft's own lines say why no leader emerged.
                let raft: Vec<String> = n
                    .stderr()
                    .lines()
                    .filter(|l| l.contains("openraft") || l.contains("quorum"))
                    .map(|l| l.chars().take(400).collect())
                    .collect();
                let last = &raft[raft.len().saturating_sub(25)..];
                format!("node {}:\n{}", n.spec().id, last.join("\n"))
            })
            .collect();
        panic!(
            "{e}; last seen {last:#?}; now {error:?}\n{}",
            tails.join("\n")
        )
    });
    last.expect("a view")
}

/// Waits until nodes `a` and `b` describe `topics` identically (and without errors).
fn wait_consistent(cluster: &Cluster, a: u32, b: u32, topics: &[&str]) {
    let mut last = None;
    wait_until(
        STEP_TIMEOUT,
        &format!("nodes {a} and {b} to agree on {topics:?}"),
        || {
            let (Ok(x), Ok(y)) = (
                cluster.metadata_from(a, Some(topics)),
                cluster.metadata_from(b, Some(topics)),
            ) else {
                return false;
            };
            let agree = x.topics == y.topics
                && topics.iter().all(|t| {
                    x.topics
                        .get(*t)
                        .is_some_and(|(code, parts)| *code == 0 && !parts.is_empty())
                });
            last = Some((x.topics, y.topics));
            agree
        },
    )
    .unwrap_or_else(|e| panic!("{e}; last seen {last:#?}"));
}

#[test]
fn the_quorum_grows_fails_over_and_shrinks() {
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a"])).expect("one-node cluster");
    let first = wait_voters(&cluster, 1, &[1]);
    let dir1 = cluster.directory_id(1).expect("directory id of node 1");
    assert_eq!(first.directory_ids.get(&1), Some(&dir1), "{first:#?}");
    cluster
        .create_topic("before", 1, 1, &[])
        .expect("topic on the single node");

    // Two controllers that know only the bootstrap server join as observers.
    for (id, rack) in [(2, "b"), (3, "c")] {
        cluster
            .add_node(NodeSpec::joining_controller(id, rack))
            .unwrap_or_else(|e| panic!("node {id} joins: {e}"));
    }
    let (dir2, dir3) = (
        cluster.directory_id(2).expect("dir 2"),
        cluster.directory_id(3).expect("dir 3"),
    );
    let mut seen = None;
    wait_until(STEP_TIMEOUT, "nodes 2 and 3 as observers", || {
        seen = cluster.quorum(1).ok();
        seen.as_ref().is_some_and(|q| {
            q.observers.contains(&2)
                && q.observers.contains(&3)
                && q.directory_ids.get(&2) == Some(&dir2)
                && q.directory_ids.get(&3) == Some(&dir3)
        })
    })
    .unwrap_or_else(|e| panic!("{e}; last seen {seen:#?}"));

    // Promote them, through different nodes (any broker forwards to the Raft leader).
    assert_eq!(
        cluster
            .add_raft_voter(2, 2, dir2)
            .expect("AddRaftVoter 2")
            .0,
        0
    );
    assert_eq!(
        cluster
            .add_raft_voter(3, 3, dir3)
            .expect("AddRaftVoter 3")
            .0,
        0
    );
    let grown = wait_voters(&cluster, 3, &[1, 2, 3]);
    for (id, dir) in [(1, dir1), (2, dir2), (3, dir3)] {
        assert_eq!(grown.directory_ids.get(&id), Some(&dir), "{grown:#?}");
        assert!(grown.endpoints.contains_key(&id), "{grown:#?}");
    }
    assert!(!grown.observers.contains(&2) && !grown.observers.contains(&3));
    let (code, _) = cluster
        .add_raft_voter(1, 2, dir2)
        .expect("AddRaftVoter again");
    assert_eq!(code, DUPLICATE_VOTER);
    cluster
        .create_topic("middle", 3, 3, &[])
        .expect("RF=3 topic on the grown cluster");

    // The original leader dies: the two new voters elect a leader between them.
    assert_eq!(grown.leader, 1, "the seed voter still leads: {grown:#?}");
    cluster.kill(1).expect("SIGKILL node 1");
    let mut elected = None;
    wait_until(STEP_TIMEOUT, "a leader among nodes 2 and 3", || {
        elected = cluster
            .quorum(2)
            .ok()
            .filter(|q| q.leader == 2 || q.leader == 3);
        elected.is_some()
    })
    .unwrap_or_else(|e| panic!("{e}; last seen {elected:#?}"));
    assert!(elected.expect("view").epoch > grown.epoch);
    cluster
        .create_topic("after", 2, 2, &[])
        .expect("topic created after the failover");
    wait_consistent(&cluster, 2, 3, &["before", "middle", "after"]);

    // The seed node restarts with `controller.quorum.voters` naming only itself: the voter set
    // comes from the log.
    cluster.restart(1).expect("restart node 1");
    cluster.wait_ready(1, READY_TIMEOUT).expect("node 1 ready");
    let restarted = wait_voters(&cluster, 1, &[1, 2, 3]);
    assert_eq!(restarted.directory_ids.get(&1), Some(&dir1));
    wait_consistent(&cluster, 1, 2, &["before", "middle", "after"]);

    // One change at a time: a voter that cannot catch up (nobody listens on its port) holds the
    // change while a second one is refused.
    let ghost_dir = uuid::Uuid::from_u128(0x5eed);
    let ghost_port = free_port().expect("free port");
    let (code, message) = std::thread::scope(|scope| {
        let slow = scope
            .spawn(|| cluster.add_raft_voter_at(1, 9, ghost_dir, ("127.0.0.1", ghost_port), 5_000));
        let mut during = None;
        wait_until(STEP_TIMEOUT, "node 9 to be an observer", || {
            during = cluster.quorum(2).ok();
            during.as_ref().is_some_and(|q| q.observers.contains(&9))
        })
        .unwrap_or_else(|e| panic!("{e}; last seen {during:#?}"));
        let (second, _) = cluster
            .remove_raft_voter(2, 3, dir3)
            .expect("RemoveRaftVoter during a change");
        assert_eq!(
            second, REQUEST_TIMED_OUT,
            "a concurrent change must be refused"
        );
        slow.join()
            .expect("AddRaftVoter thread")
            .expect("AddRaftVoter 9")
    });
    assert_eq!(code, REQUEST_TIMED_OUT, "{message:?}");
    let view = wait_voters(&cluster, 2, &[1, 2, 3]);
    assert!(view.observers.contains(&9), "{view:#?}");
    // The stuck observer is removed again.
    assert_eq!(
        cluster
            .remove_raft_voter(1, 9, ghost_dir)
            .expect("remove 9")
            .0,
        0
    );

    // Shrink: a wrong directory id is refused, the right one removes the voter. The removed
    // voter is a follower (node 1 stays, and whichever of 2 and 3 leads).
    let leader = cluster.quorum(1).expect("DescribeQuorum").leader;
    let (gone, gone_dir, keep) = if leader == 3 {
        (2, dir2, 3)
    } else {
        (3, dir3, 2)
    };
    let wrong = uuid::Uuid::from_u128(0xbad);
    assert_eq!(
        cluster
            .remove_raft_voter(keep, gone, wrong)
            .expect("remove with wrong dir")
            .0,
        VOTER_NOT_FOUND
    );
    assert_eq!(
        cluster
            .remove_raft_voter(keep, gone, gone_dir)
            .expect("remove a voter")
            .0,
        0
    );
    let shrunk = wait_voters(&cluster, 1, &[1, keep as i32]);
    // The removed node still runs: it follows the log as an observer, as in Kafka.
    assert!(shrunk.observers.contains(&(gone as i32)), "{shrunk:#?}");
    assert_eq!(
        shrunk.directory_ids.get(&(gone as i32)),
        Some(&gone_dir),
        "{shrunk:#?}"
    );
    assert!(!shrunk.observers.contains(&9), "{shrunk:#?}");
    wait_voters(&cluster, keep, &[1, keep as i32]);
    cluster
        .create_topic("final", 1, 2, &[])
        .expect("topic after the shrink");
    wait_consistent(&cluster, 1, keep, &["middle", "after", "final"]);
}

/// Replaces voter `id` whose disk was lost (DescribeQuorum through `via` shows its old entry
/// with `old_dir` and the node as an observer under a new directory id): RemoveRaftVoter of the
/// old entry, then AddRaftVoter of the new one; returns the new directory id.
fn replace_lost_voter(cluster: &Cluster, via: u32, id: u32, old_dir: uuid::Uuid) -> uuid::Uuid {
    let node = id as i32;
    assert_eq!(
        cluster
            .remove_raft_voter(via, id, old_dir)
            .expect("remove the old entry")
            .0,
        0
    );
    let mut seen = None;
    wait_until(
        STEP_TIMEOUT,
        &format!("node {id} as an observer with its new disk"),
        || {
            seen = cluster.quorum(via).ok();
            seen.as_ref().is_some_and(|q| {
                !q.voters.contains_key(&node)
                    && q.observers.contains(&node)
                    && q.directory_ids.get(&node).is_some_and(|d| *d != old_dir)
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}; last seen {seen:#?}"));
    let new_dir = seen.expect("view").directory_ids[&node];
    // REQUEST_TIMED_OUT (7) while the node's own join is still being committed: retriable.
    let mut code = None;
    wait_until(
        STEP_TIMEOUT,
        &format!("AddRaftVoter of node {id}'s new disk"),
        || {
            code = cluster.add_raft_voter(via, id, new_dir).ok().map(|r| r.0);
            code == Some(0)
        },
    )
    .unwrap_or_else(|e| panic!("{e}; last error code {code:?}"));
    new_dir
}

/// A voter's disk is lost: the node comes back empty, with a new directory id. It must not act as
/// the old voter (its requests to join and the leader's Raft RPCs are refused); once the old
/// voter is removed it joins as an observer and is added back under its new directory id.
#[test]
fn a_voter_whose_disk_was_lost_is_replaced() {
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a"])).expect("one-node cluster");
    for (id, rack) in [(2, "b"), (3, "c")] {
        cluster
            .add_node(NodeSpec::joining_controller(id, rack))
            .unwrap_or_else(|e| panic!("node {id} joins: {e}"));
        let dir = cluster.directory_id(id).expect("directory id");
        let mut last = None;
        wait_until(STEP_TIMEOUT, &format!("AddRaftVoter {id}"), || {
            // The observer may need a moment to be recorded: retry until accepted.
            last = cluster.add_raft_voter(1, id, dir).ok();
            last.as_ref().is_some_and(|(code, _)| *code == 0)
        })
        .unwrap_or_else(|e| panic!("{e}; last answer {last:?}"));
    }
    wait_voters(&cluster, 1, &[1, 2, 3]);
    cluster
        .create_topic("kept", 3, 2, &[])
        .expect("topic before the loss");
    let old_dir = cluster.directory_id(3).expect("old dir");

    cluster.kill(3).expect("SIGKILL node 3");
    let data = cluster.node(3).expect("node 3").log_dir().to_path_buf();
    std::fs::remove_dir_all(&data).expect("wipe node 3's disk");
    cluster.restart(3).expect("start node 3 on an empty disk");

    // The new disk is not taken for the old voter: the node says why, the entry stays.
    wait_until(
        STEP_TIMEOUT,
        "node 3 to be refused as the old voter",
        || {
            cluster
                .node(3)
                .is_ok_and(|n| n.stderr().contains("a replaced disk?"))
        },
    )
    .unwrap_or_else(|e| {
        let tail = cluster.node(3).map(|n| n.stderr_tail()).unwrap_or_default();
        panic!("{e}: {tail}")
    });
    wait_voters(&cluster, 1, &[1, 2, 3]);
    // DescribeQuorum lists the node on its new disk as an observer beside the old voter, so an
    // operator (and Strait's) sees which voter to replace and by which directory id.
    let mut refused = None;
    wait_until(
        STEP_TIMEOUT,
        "node 3's new disk listed as an observer beside the old voter",
        || {
            refused = cluster.quorum(1).ok();
            refused.as_ref().is_some_and(|q| {
                q.voters.contains_key(&3)
                    && q.observers.contains(&3)
                    && q.directory_ids.get(&3).is_some_and(|d| *d != old_dir)
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}; last seen {refused:#?}"));

    // Remove the old voter by its old directory id (as DescribeQuorum shows it); the node joins
    // as an observer under its new one and is added back with it.
    let new_dir = replace_lost_voter(&cluster, 2, 3, old_dir);
    let healed = wait_voters(&cluster, 3, &[1, 2, 3]);
    assert_eq!(healed.directory_ids.get(&3), Some(&new_dir), "{healed:#?}");
    cluster.wait_ready(3, READY_TIMEOUT).expect("node 3 ready");
    // The node wrote the directory id the quorum knows it by into its meta.properties.
    assert_eq!(cluster.directory_id(3).expect("dir 3"), new_dir);
    wait_consistent(&cluster, 1, 3, &["kept"]);

    // Now the seed voter loses its disk. Its `controller.quorum.voters` still names only itself:
    // seeding its empty log would elect it alone, a second quorum beside {1, 2, 3}. Told the
    // other controllers as well (as the operator renders a grown quorum), it joins instead and
    // is replaced like any voter.
    let seed_dir = cluster.directory_id(1).expect("seed's dir");
    cluster.kill(1).expect("SIGKILL the seed");
    let data = cluster.node(1).expect("node 1").log_dir().to_path_buf();
    std::fs::remove_dir_all(&data).expect("wipe the seed's disk");
    cluster
        .tell_all_controllers(1)
        .expect("bootstrap servers for node 1");
    cluster.restart(1).expect("start the seed on an empty disk");
    wait_until(STEP_TIMEOUT, "the seed to withhold seeding", || {
        cluster
            .node(1)
            .is_ok_and(|n| n.stderr().contains("instead of seeding a second one"))
    })
    .unwrap_or_else(|e| {
        let tail = cluster.node(1).map(|n| n.stderr_tail()).unwrap_or_default();
        panic!("{e}: {tail}")
    });
    let mut listed = None;
    wait_until(
        STEP_TIMEOUT,
        "the seed's new disk listed as an observer of the one quorum",
        || {
            listed = cluster.quorum(2).ok();
            listed.as_ref().is_some_and(|q| {
                (q.leader == 2 || q.leader == 3)
                    && ids(q.voters.keys().copied()) == ids([1, 2, 3])
                    && q.observers.contains(&1)
                    && q.directory_ids.get(&1).is_some_and(|d| *d != seed_dir)
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}; last seen {listed:#?}"));
    // (Node 1 serves no Kafka requests yet: it has no metadata until it is a member again.)
    let seed_new_dir = replace_lost_voter(&cluster, 2, 1, seed_dir);
    let healed = wait_voters(&cluster, 2, &[1, 2, 3]);
    assert_eq!(
        healed.directory_ids.get(&1),
        Some(&seed_new_dir),
        "{healed:#?}"
    );
    cluster.wait_ready(1, READY_TIMEOUT).expect("node 1 ready");
    // Through node 1 DescribeQuorum reaches the one quorum's leader.
    let via_seed = wait_voters(&cluster, 1, &[1, 2, 3]);
    assert_eq!(via_seed.leader, healed.leader, "{via_seed:#?}");
    wait_consistent(&cluster, 1, 2, &["kept"]);
}
