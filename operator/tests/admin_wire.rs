//! The wire admin client against a real Strait broker process (the e2e harness starts it on a
//! free 127.0.0.1 port): create, describe, grow, configure and delete a topic, and the Topic
//! plan computed from what the broker reports; and partition reassignment against a two-node
//! cluster; and the active controller (DescribeQuorum) of a three-voter cluster; and KIP-853
//! voter changes (AddRaftVoter, RemoveRaftVoter) made as the operator's voter planner asks.

use std::collections::BTreeMap;

use strait_crds::{ClusterReference, DeletionPolicy, TopicSpec};
use strait_e2e::Broker;
use strait_operator::admin::{AdminError, KafkaAdmin, Quorum, WireAdmin};
use strait_operator::cluster::voters::{VoterStep, next_step};
use strait_operator::topic::plan::plan;

#[tokio::test(flavor = "multi_thread")]
async fn topic_lifecycle_over_the_wire() {
    let broker = tokio::task::spawn_blocking(|| Broker::start(&[]))
        .await
        .unwrap_or_else(|e| panic!("join: {e}"))
        .unwrap_or_else(|e| panic!("start broker: {e}"));
    let admin = WireAdmin::new(&broker.bootstrap());

    assert_eq!(admin.describe_topic("orders").await.ok(), Some(None));
    let config = BTreeMap::from([("retention.ms".to_owned(), "3600000".to_owned())]);
    admin
        .create_topic("orders", 2, 1, &config)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let described = admin
        .describe_topic("orders")
        .await
        .unwrap_or_else(|e| panic!("describe: {e}"))
        .unwrap_or_else(|| panic!("topic missing after create"));
    assert_eq!(described.partitions.len(), 2);
    assert_eq!(described.replication_factor(), 1);
    assert_eq!(
        described.config.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert_ne!(described.topic_id, uuid::Uuid::nil().to_string());

    // Creating it again is Kafka's TOPIC_ALREADY_EXISTS.
    let again = admin.create_topic("orders", 2, 1, &config).await;
    assert!(
        matches!(again, Err(AdminError::Kafka { code: 36, .. })),
        "{again:?}"
    );

    // A spec with more partitions and another config: the plan grows and reconfigures.
    let spec = TopicSpec {
        cluster: ClusterReference {
            bootstrap_servers: Some(broker.bootstrap()),
            ..ClusterReference::default()
        },
        topic_name: None,
        partitions: 4,
        replicas: 1,
        config: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
        deletion_policy: DeletionPolicy::Delete,
    };
    let p = plan(&spec, Some(&described));
    assert_eq!(p.grow_partitions, Some(4));
    admin
        .create_partitions("orders", 4)
        .await
        .unwrap_or_else(|e| panic!("create partitions: {e}"));
    admin
        .alter_topic_config("orders", &p.config_changes)
        .await
        .unwrap_or_else(|e| panic!("alter config: {e}"));
    let after = admin
        .describe_topic("orders")
        .await
        .unwrap_or_else(|e| panic!("describe: {e}"))
        .unwrap_or_else(|| panic!("topic missing"));
    assert_eq!(after.partitions.len(), 4);
    assert_eq!(
        after.config.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert!(
        !after.config.contains_key("retention.ms"),
        "{:?}",
        after.config
    );
    assert_eq!(plan(&spec, Some(&after)), Default::default());

    let all = admin
        .all_partitions()
        .await
        .unwrap_or_else(|e| panic!("metadata: {e}"));
    assert_eq!(all.keys().filter(|(t, _)| t == "orders").count(), 4);

    admin
        .delete_topic("orders")
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    admin
        .delete_topic("orders")
        .await
        .unwrap_or_else(|e| panic!("delete absent: {e}"));
    // Deletion may complete asynchronously: poll with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let described = admin.describe_topic("orders").await;
        if matches!(described, Ok(None)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topic still described: {described:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(broker);
}

/// Reassignment over the wire against a real two-node Strait cluster: nothing listed at rest,
/// a move issued with AlterPartitionReassignments, then listed by ListPartitionReassignments
/// until it completes with the new replica in place.
#[tokio::test(flavor = "multi_thread")]
async fn reassignments_are_issued_and_listed_over_the_wire() {
    use strait_e2e::cluster::{Cluster, ClusterSpec, NodeSpec, fast_overrides};
    let spec = ClusterSpec {
        nodes: vec![NodeSpec::combined(1, "a"), NodeSpec::broker(2, "b")],
        overrides: fast_overrides(),
        ..ClusterSpec::default()
    };
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = Cluster::start(spec)?;
        cluster.wait_all_ready(std::time::Duration::from_secs(30))?;
        Ok::<_, strait_e2e::error::HarnessError>(cluster)
    })
    .await
    .unwrap_or_else(|e| panic!("join: {e}"))
    .unwrap_or_else(|e| panic!("start cluster: {e}"));
    let admin = WireAdmin::new(&cluster.bootstrap());
    assert_eq!(
        admin
            .ongoing_reassignments()
            .await
            .unwrap_or_else(|e| panic!("list: {e}")),
        BTreeMap::new()
    );
    admin
        .create_topic("moving", 1, 1, &BTreeMap::new())
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let key = ("moving".to_owned(), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let placed = loop {
        let all = admin.all_partitions().await;
        if let Some(replicas) = all.as_ref().ok().and_then(|a| a.get(&key)).cloned()
            && !replicas.is_empty()
        {
            break replicas;
        }
        assert!(std::time::Instant::now() < deadline, "not placed: {all:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let target = if placed == [1] { 2 } else { 1 };
    admin
        .reassign_partitions(&BTreeMap::from([(key.clone(), vec![target])]))
        .await
        .unwrap_or_else(|e| panic!("reassign: {e}"));
    // While it runs the move is listed with the target among its replicas; once done the list
    // is empty and the partition lives on the target.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ongoing = admin
            .ongoing_reassignments()
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        if let Some(moving) = ongoing.get(&key) {
            assert!(moving.replicas.contains(&target), "{moving:?}");
            assert_eq!(moving.target(), [target], "{moving:?}");
        } else if admin
            .all_partitions()
            .await
            .ok()
            .and_then(|a| a.get(&key).cloned())
            == Some(vec![target])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "move not done: {ongoing:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap_or_else(|e| panic!("join: {e}"));
}

/// The active controller over the wire against a real three-voter Strait cluster: ApiVersions
/// lists DescribeQuorum, which names the quorum leader; once that node is killed, another voter
/// is named.
#[tokio::test(flavor = "multi_thread")]
async fn active_controller_is_the_quorum_leader_over_the_wire() {
    use strait_e2e::cluster::{Cluster, ClusterSpec};
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"]))?;
        cluster.wait_all_ready(std::time::Duration::from_secs(30))?;
        Ok::<_, strait_e2e::error::HarnessError>(cluster)
    })
    .await
    .unwrap_or_else(|e| panic!("join: {e}"))
    .unwrap_or_else(|e| panic!("start cluster: {e}"));
    let leader = WireAdmin::new(&cluster.bootstrap())
        .active_controller()
        .await
        .unwrap_or_else(|e| panic!("active controller: {e}"))
        .unwrap_or_else(|| panic!("no active controller named"));
    assert!((1..=3).contains(&leader), "{leader}");
    let id = u32::try_from(leader).unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.kill(id).map(|()| cluster)
    })
    .await
    .unwrap_or_else(|e| panic!("join: {e}"))
    .unwrap_or_else(|e| panic!("kill {id}: {e}"));
    let admin = WireAdmin::new(&cluster.live_bootstrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = admin.active_controller().await;
        if let Ok(Some(new)) = now
            && new != leader
        {
            assert!((1..=3).contains(&new), "{new}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new leader after killing {leader}: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap_or_else(|e| panic!("join: {e}"));
}

/// Runs the operator's voter planner against a real cluster until it has nothing left to do:
/// each pass describes the quorum, asks `next_step` for `desired`, and sends what it says (a
/// refused change, such as one sent while another commits, is asked again next pass). Returns
/// the steps sent and the final quorum.
async fn drive_voters(
    admin: &WireAdmin,
    desired: &[i32],
    endpoints: &BTreeMap<i32, (String, u16)>,
) -> (Vec<VoterStep>, Quorum) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut sent = Vec::new();
    let mut last = None;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "voters {desired:?} not reached; sent {sent:?}, last {last:?}"
        );
        let quorum = match admin.describe_quorum().await {
            Ok(Some(q)) => q,
            other => {
                last = Some(format!("{other:?}"));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let step = next_step(desired, &quorum, &BTreeMap::new());
        last = Some(format!("{step:?} for {quorum:?}"));
        let result = match step {
            VoterStep::Nothing => return (sent, quorum),
            VoterStep::Wait(_) => Ok(()),
            VoterStep::Add { id, directory_id } => {
                let (host, port) = &endpoints[&id];
                admin.add_raft_voter(id, directory_id, (host, *port)).await
            }
            VoterStep::Remove { id, directory_id } => {
                admin.remove_raft_voter(id, directory_id).await
            }
            VoterStep::RemoveReplaced { .. } => panic!("no disk was lost: {step:?}"),
        };
        match result {
            Ok(()) if !matches!(step, VoterStep::Wait(_)) => sent.push(step),
            Ok(()) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(e) => {
                last = Some(format!("{step:?}: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// A one-voter cluster whose two new controllers joined as observers (bootstrap servers only)
/// grows to three voters one AddRaftVoter at a time, in the planner's order and with the
/// directory ids from DescribeQuorum v2, then gives one voter up again with RemoveRaftVoter.
#[tokio::test(flavor = "multi_thread")]
async fn voter_changes_follow_the_planner_over_the_wire() {
    use strait_e2e::cluster::{Cluster, ClusterSpec, NodeSpec, fast_overrides};
    let spec = ClusterSpec {
        nodes: vec![NodeSpec::combined(1, "a")],
        overrides: fast_overrides(),
        ..ClusterSpec::default()
    };
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = Cluster::start(spec)?;
        cluster.wait_all_ready(std::time::Duration::from_secs(30))?;
        for (id, rack) in [(2, "b"), (3, "c")] {
            cluster.add_node(NodeSpec::joining_controller(id, rack))?;
        }
        Ok::<_, strait_e2e::error::HarnessError>(cluster)
    })
    .await
    .unwrap_or_else(|e| panic!("join: {e}"))
    .unwrap_or_else(|e| panic!("start cluster: {e}"));
    let endpoints: BTreeMap<i32, (String, u16)> = cluster
        .nodes()
        .iter()
        .map(|n| {
            let host = n.addr().unwrap_or_else(|e| panic!("{e}")).ip().to_string();
            let port = n
                .controller_port()
                .unwrap_or_else(|| panic!("no CONTROLLER"));
            (n.spec().id as i32, (host, port))
        })
        .collect();
    let dirs: BTreeMap<i32, uuid::Uuid> = (1..=3)
        .map(|id| {
            let dir = cluster
                .directory_id(id)
                .unwrap_or_else(|e| panic!("directory id of {id}: {e}"));
            (id as i32, dir)
        })
        .collect();
    let admin = WireAdmin::new(&cluster.bootstrap());

    let (sent, grown) = drive_voters(&admin, &[1, 2, 3], &endpoints).await;
    assert_eq!(
        sent,
        [
            VoterStep::Add {
                id: 2,
                directory_id: dirs[&2]
            },
            VoterStep::Add {
                id: 3,
                directory_id: dirs[&3]
            },
        ]
    );
    let mut voters: Vec<(i32, uuid::Uuid)> = grown
        .voters
        .iter()
        .map(|v| (v.id, v.directory_id))
        .collect();
    voters.sort();
    assert_eq!(
        voters,
        dirs.clone().into_iter().collect::<Vec<_>>(),
        "{grown:?}"
    );

    // Back to two: the one not wanted is removed and stays an observer.
    let (sent, shrunk) = drive_voters(&admin, &[1, 2], &endpoints).await;
    assert_eq!(
        sent,
        [VoterStep::Remove {
            id: 3,
            directory_id: dirs[&3]
        }]
    );
    assert!(shrunk.voter(3).is_none(), "{shrunk:?}");
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap_or_else(|e| panic!("join: {e}"));
}
