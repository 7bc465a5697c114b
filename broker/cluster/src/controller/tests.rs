//! Controller decisions driven through a simulated log: every decision's records are applied to
//! the image (one log entry per decision) before the next call, as the quorum does.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Controller, ControllerSettings, UNCLEAN_LEADER_ELECTION};
use crate::image::{Image, NO_LEADER, PartitionState};
use crate::record::MetadataRecord;
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse, NewTopic};

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(300);

fn settings() -> ControllerSettings {
    ControllerSettings {
        session_timeout: SESSION,
        unclean_leader_election: false,
        auto_leader_rebalance: true,
        imbalance_check_interval: REBALANCE,
        producer_id_block: 1000,
        cluster_id: "test-cluster".into(),
        bootstrap_scram: Vec::new(),
    }
}

struct Cluster {
    image: Image,
    ctl: Controller,
    now: Instant,
    epochs: HashMap<i32, i64>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with(settings())
    }

    fn with(settings: ControllerSettings) -> Cluster {
        let now = Instant::now();
        // A metadata log whose cluster id is written, as after the first controller's first tick.
        let image = Image {
            cluster_id: Some("test-cluster".into()),
            ..Image::default()
        };
        let mut ctl = Controller::new(settings);
        ctl.activate(&image, now);
        Cluster {
            image,
            ctl,
            now,
            epochs: HashMap::new(),
        }
    }

    fn apply(&mut self, records: &[MetadataRecord]) {
        if records.is_empty() {
            return;
        }
        let offset = self.image.offset + 1;
        for r in records {
            self.image.apply(offset, r);
        }
    }

    fn call(&mut self, request: ControllerRequest) -> Result<ControllerResponse, ControllerError> {
        let decision = self.ctl.handle(&self.image, request, self.now)?;
        self.apply(&decision.records);
        Ok(decision.response)
    }

    /// Like `call`, also returning the records.
    fn decide(&mut self, request: ControllerRequest) -> (Vec<MetadataRecord>, ControllerResponse) {
        let decision = self.ctl.handle(&self.image, request, self.now).unwrap();
        self.apply(&decision.records);
        (decision.records, decision.response)
    }

    fn tick(&mut self) -> Vec<MetadataRecord> {
        let records = self.ctl.tick(&self.image, self.now);
        self.apply(&records);
        records
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn register(&mut self, id: i32, rack: Option<&str>) -> i64 {
        let response = self
            .call(ControllerRequest::RegisterBroker {
                id,
                incarnation: Uuid::new_v4(),
                rack: rack.map(str::to_string),
                endpoints: vec![],
            })
            .unwrap();
        let ControllerResponse::Registered { epoch } = response else {
            panic!("unexpected {response:?}");
        };
        self.epochs.insert(id, epoch);
        epoch
    }

    fn heartbeat_with(&mut self, id: i32, want_shutdown: bool) -> (bool, bool) {
        let response = self
            .call(ControllerRequest::Heartbeat {
                id,
                epoch: self.epochs[&id],
                metadata_offset: self.image.offset,
                want_shutdown,
                offline_partitions: vec![],
            })
            .unwrap();
        let ControllerResponse::Heartbeat {
            fenced,
            should_shutdown,
            ..
        } = response
        else {
            panic!("unexpected {response:?}");
        };
        (fenced, should_shutdown)
    }

    fn heartbeat(&mut self, id: i32) -> bool {
        self.heartbeat_with(id, false).0
    }

    fn start(&mut self, ids: &[i32]) {
        for id in ids {
            self.register(*id, None);
            assert!(!self.heartbeat(*id));
        }
    }

    fn create(&mut self, name: &str, assignments: Vec<Vec<i32>>) -> PartitionState {
        let response = self
            .call(ControllerRequest::CreateTopics {
                topics: vec![NewTopic {
                    name: name.into(),
                    partitions: -1,
                    replication_factor: -1,
                    assignments: Some(assignments),
                    configs: BTreeMap::new(),
                }],
                validate_only: false,
            })
            .unwrap();
        let ControllerResponse::CreateTopics(results) = response else {
            panic!("unexpected {response:?}");
        };
        results[0].as_ref().unwrap().partitions[0].clone()
    }

    fn part(&self, topic: &str, partition: i32) -> PartitionState {
        self.image.partition(topic, partition).unwrap().clone()
    }

    /// Lets every broker but `silent` heartbeat across a full session, then ticks.
    fn expire(&mut self, silent: &[i32]) -> Vec<MetadataRecord> {
        self.advance(SESSION / 2);
        self.beat_all_but(silent);
        self.advance(SESSION / 2 + Duration::from_millis(1));
        self.beat_all_but(silent);
        self.tick()
    }

    fn beat_all_but(&mut self, silent: &[i32]) {
        let ids: Vec<i32> = self.image.brokers.keys().copied().collect();
        for id in ids {
            if !silent.contains(&id) && !self.image.brokers[&id].fenced {
                self.heartbeat(id);
            }
        }
    }

    fn alter_isr(&mut self, topic: &str, isr: Vec<i32>) -> Result<PartitionState, ControllerError> {
        let p = self.part(topic, 0);
        let response = self.call(ControllerRequest::AlterPartition {
            broker: p.leader,
            broker_epoch: self.epochs[&p.leader],
            topic: topic.into(),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        })?;
        let ControllerResponse::AlterPartition(state) = response else {
            panic!("unexpected {response:?}");
        };
        Ok(state)
    }
}

fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

#[test]
fn registration_then_caught_up_heartbeat_unfences() {
    let mut c = Cluster::new();
    c.call(ControllerRequest::RegisterBroker {
        id: 9,
        incarnation: Uuid::new_v4(),
        rack: None,
        endpoints: vec![],
    })
    .unwrap();
    let epoch = c.register(1, Some("a"));
    assert_eq!(
        epoch, c.image.offset as i64,
        "the epoch is the registration's log index"
    );
    assert!(c.image.brokers[&1].fenced);
    // Not caught up with its own registration yet: stays fenced.
    let lagging = c
        .call(ControllerRequest::Heartbeat {
            id: 1,
            epoch,
            metadata_offset: epoch as u64 - 1,
            want_shutdown: false,
            offline_partitions: vec![],
        })
        .unwrap();
    assert!(matches!(
        lagging,
        ControllerResponse::Heartbeat {
            fenced: true,
            should_shutdown: false,
            ..
        }
    ));
    let (records, response) = c.decide(ControllerRequest::Heartbeat {
        id: 1,
        epoch,
        metadata_offset: epoch as u64,
        want_shutdown: false,
        offline_partitions: vec![],
    });
    assert_eq!(
        records,
        vec![MetadataRecord::UnfenceBroker { id: 1, epoch }]
    );
    assert!(matches!(
        response,
        ControllerResponse::Heartbeat {
            fenced: false,
            should_shutdown: false,
            ..
        }
    ));
    // Later heartbeats write nothing.
    let (records, _) = c.decide(ControllerRequest::Heartbeat {
        id: 1,
        epoch,
        metadata_offset: c.image.offset,
        want_shutdown: false,
        offline_partitions: vec![],
    });
    assert!(records.is_empty());
    // A second registration gets a larger epoch; the old one is stale from then on.
    let second = c.register(1, Some("a"));
    assert!(second > epoch);
    let stale = c.call(ControllerRequest::Heartbeat {
        id: 1,
        epoch,
        metadata_offset: 100,
        want_shutdown: false,
        offline_partitions: vec![],
    });
    assert_eq!(
        stale,
        Err(ControllerError::StaleBrokerEpoch { id: 1, epoch })
    );
    let unknown = c.call(ControllerRequest::Heartbeat {
        id: 7,
        epoch: 1,
        metadata_offset: 100,
        want_shutdown: false,
        offline_partitions: vec![],
    });
    assert!(matches!(
        unknown,
        Err(ControllerError::StaleBrokerEpoch { id: 7, .. })
    ));
}

#[test]
fn session_timeout_fences_and_elects_from_the_isr() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    let p = c.create("t", vec![vec![1, 2, 3]]);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
    // Within the session nothing happens.
    c.advance(SESSION / 2);
    c.beat_all_but(&[1]);
    assert!(c.tick().is_empty());
    let records = c.expire(&[1]);
    let epoch = c.epochs[&1];
    assert_eq!(records[0], MetadataRecord::FenceBroker { id: 1, epoch });
    assert!(c.image.brokers[&1].fenced);
    let p = c.part("t", 0);
    assert_eq!(p.leader, 2);
    assert_eq!(p.isr, vec![2, 3]);
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
    // Fenced brokers are not fenced again.
    c.advance(SESSION * 2);
    c.beat_all_but(&[1]);
    assert!(c.tick().is_empty());
}

#[test]
fn a_follower_that_dies_only_leaves_the_isr() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    c.expire(&[3]);
    let p = c.part("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
}

#[test]
fn without_a_live_isr_member_the_partition_has_no_leader_until_one_returns() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    c.expire(&[2]);
    assert_eq!(c.part("t", 0).isr, vec![1]);
    c.expire(&[1, 2]);
    let p = c.part("t", 0);
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr, vec![1], "the last in-sync replica stays known");
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
    // Broker 2 returns but was not in sync: no clean leader.
    c.register(2, None);
    assert!(!c.heartbeat(2));
    c.tick();
    assert_eq!(c.part("t", 0).leader, NO_LEADER);
    // Broker 1 returns: it is the last ISR member and leads again as soon as it is unfenced.
    c.register(1, None);
    assert!(!c.heartbeat(1));
    let p = c.part("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    assert_eq!(p.leader_epoch, 2);
}

#[test]
fn both_isr_members_dying_at_once_leave_one_in_the_isr() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    c.expire(&[3]);
    let records = c.expire(&[1, 2, 3]);
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, MetadataRecord::ChangePartition { .. }))
            .count(),
        1,
        "one change for the partition: {records:?}"
    );
    let p = c.part("t", 0);
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr.len(), 1);
}

#[test]
fn unclean_election_by_topic_config_or_request() {
    // Topic override on: the out-of-sync replica takes over at once, alone in the ISR.
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    c.call(ControllerRequest::SetTopicConfigs {
        topic: "t".into(),
        configs: BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string())]),
    })
    .unwrap();
    c.expire(&[2]);
    c.register(2, None);
    c.heartbeat(2);
    assert_eq!(c.part("t", 0).isr, vec![1]);
    c.expire(&[1]);
    let p = c.part("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));

    // Default off: the partition stays leaderless until an unclean election is requested.
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    c.expire(&[2]);
    c.register(2, None);
    c.heartbeat(2);
    c.expire(&[1]);
    assert_eq!(c.part("t", 0).leader, NO_LEADER);
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: false,
            partitions: Some(vec![("t".into(), 0)]),
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(("t".into(), 0), Ok(()))])
    );
    let p = c.part("t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    // Now it has a leader: nothing to do.
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: false,
            partitions: Some(vec![("t".into(), 0), ("nope".into(), 0)]),
        })
        .unwrap();
    let ControllerResponse::ElectLeaders(results) = response else {
        panic!()
    };
    assert_eq!(results[0].1, Err(ControllerError::ElectionNotNeeded));
    assert!(matches!(
        results[1].1,
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
}

#[test]
fn unclean_election_without_any_live_replica_is_refused() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1]]);
    c.expire(&[1]);
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: false,
            partitions: Some(vec![("t".into(), 0)]),
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(
            ("t".into(), 0),
            Err(ControllerError::EligibleLeadersNotAvailable)
        )])
    );
}

#[test]
fn alter_partition_checks_epochs_and_eligibility() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3, 4]);
    c.create("t", vec![vec![1, 2, 3]]);
    let base = ControllerRequest::AlterPartition {
        broker: 1,
        broker_epoch: c.epochs[&1],
        topic: "t".into(),
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        isr: vec![1, 2],
    };
    let with = |f: &dyn Fn(&mut ControllerRequest)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let stale = with(&|r| {
        if let ControllerRequest::AlterPartition { broker_epoch, .. } = r {
            *broker_epoch -= 1;
        }
    });
    assert!(matches!(
        c.call(stale),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    let not_leader = ControllerRequest::AlterPartition {
        broker: 2,
        broker_epoch: c.epochs[&2],
        topic: "t".into(),
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        isr: vec![1, 2],
    };
    assert!(matches!(
        c.call(not_leader),
        Err(ControllerError::FencedLeaderEpoch(_))
    ));
    let old_leader_epoch = with(&|r| {
        if let ControllerRequest::AlterPartition { leader_epoch, .. } = r {
            *leader_epoch = 1;
        }
    });
    assert!(matches!(
        c.call(old_leader_epoch),
        Err(ControllerError::FencedLeaderEpoch(_))
    ));
    let old_partition_epoch = with(&|r| {
        if let ControllerRequest::AlterPartition {
            partition_epoch, ..
        } = r
        {
            *partition_epoch = 3;
        }
    });
    assert!(matches!(
        c.call(old_partition_epoch),
        Err(ControllerError::InvalidUpdateVersion(_))
    ));
    let unknown = with(&|r| {
        if let ControllerRequest::AlterPartition { partition, .. } = r {
            *partition = 5;
        }
    });
    assert!(matches!(
        c.call(unknown),
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        c.alter_isr("t", vec![2, 3]),
        Err(ControllerError::InvalidRequest(_))
    ));
    assert!(matches!(
        c.alter_isr("t", vec![1, 4]),
        Err(ControllerError::InvalidRequest(_))
    ));
    // Shrink: only the partition epoch moves.
    let shrunk = c.alter_isr("t", vec![1, 2]).unwrap();
    assert_eq!(shrunk.isr, vec![1, 2]);
    assert_eq!((shrunk.leader_epoch, shrunk.partition_epoch), (0, 1));
    assert_eq!(c.part("t", 0), shrunk);
    // The same request again is now based on a stale partition epoch.
    assert!(matches!(
        c.call(base.clone()),
        Err(ControllerError::InvalidUpdateVersion(_))
    ));
    // A fenced broker cannot join.
    c.expire(&[3]);
    assert!(matches!(
        c.alter_isr("t", vec![1, 2, 3]),
        Err(ControllerError::IneligibleReplica(_))
    ));
    // Back and caught up: it can.
    c.register(3, None);
    c.heartbeat(3);
    let grown = c.alter_isr("t", vec![1, 2, 3]).unwrap();
    assert_eq!(
        (grown.isr.clone(), grown.partition_epoch),
        (vec![1, 2, 3], 2)
    );
    // A broker in controlled shutdown cannot join either.
    c.alter_isr("t", vec![1, 2]).unwrap();
    c.heartbeat_with(3, true);
    assert!(matches!(
        c.alter_isr("t", vec![1, 2, 3]),
        Err(ControllerError::IneligibleReplica(_))
    ));
}

#[test]
fn controlled_shutdown_moves_leadership_then_lets_the_broker_go() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("a", vec![vec![1, 2, 3]]);
    c.create("b", vec![vec![2, 1, 3]]);
    c.create("solo", vec![vec![1]]);
    let (fenced, done) = c.heartbeat_with(1, true);
    assert!(!fenced);
    assert!(!done, "leadership was moved in this step");
    assert!(c.image.brokers[&1].in_controlled_shutdown);
    let a = c.part("a", 0);
    assert_eq!(
        (a.leader, a.isr.clone(), a.leader_epoch),
        (2, vec![2, 3], 1)
    );
    let b = c.part("b", 0);
    assert_eq!(
        (b.leader, b.isr.clone(), b.leader_epoch),
        (2, vec![2, 3], 0)
    );
    // Nobody else can lead "solo": it stays with broker 1 until it goes.
    assert_eq!(c.part("solo", 0).leader, 1);
    // A shutting-down broker is not unfenced/reset by a plain heartbeat and cannot regain
    // leadership through the preferred election.
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: true,
            partitions: Some(vec![("a".into(), 0)]),
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(
            ("a".into(), 0),
            Err(ControllerError::PreferredLeaderNotAvailable)
        )])
    );
    let (fenced, done) = c.heartbeat_with(1, false);
    assert!(fenced, "a broker told to shut down is fenced");
    assert!(done, "nothing left to hand over");
    assert!(c.image.brokers[&1].fenced);
    let solo = c.part("solo", 0);
    assert_eq!((solo.leader, solo.isr.clone()), (NO_LEADER, vec![1]));
    // Repeated heartbeats keep saying so.
    assert_eq!(c.heartbeat_with(1, true), (true, true));
}

#[test]
fn controlled_shutdown_of_a_follower_finishes_at_once() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("a", vec![vec![1, 2, 3]]);
    assert_eq!(c.heartbeat_with(3, true), (true, true));
    let a = c.part("a", 0);
    assert_eq!((a.leader, a.isr.clone()), (1, vec![1, 2]));
}

#[test]
fn preferred_election_and_auto_rebalance() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    c.create("u", vec![vec![1, 3, 2]]);
    c.expire(&[1]);
    assert_eq!(c.part("t", 0).leader, 2);
    assert_eq!(c.part("u", 0).leader, 3);
    c.register(1, None);
    c.heartbeat(1);
    // Not in the ISR yet.
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: true,
            partitions: Some(vec![("t".into(), 0)]),
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(
            ("t".into(), 0),
            Err(ControllerError::PreferredLeaderNotAvailable)
        )])
    );
    c.alter_isr("t", vec![2, 3, 1]).unwrap();
    c.alter_isr("u", vec![3, 2, 1]).unwrap();
    let before = c.part("t", 0);
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: true,
            partitions: Some(vec![("t".into(), 0)]),
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(("t".into(), 0), Ok(()))])
    );
    let after = c.part("t", 0);
    assert_eq!(after.leader, 1);
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: true,
            partitions: Some(vec![("t".into(), 0)]),
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(
            ("t".into(), 0),
            Err(ControllerError::ElectionNotNeeded)
        )])
    );
    // "u" is left for the periodic rebalance, which waits for its interval.
    assert!(c.tick().is_empty());
    c.advance(REBALANCE);
    c.beat_all_but(&[]);
    let records = c.tick();
    assert_eq!(records.len(), 1);
    assert_eq!(c.part("u", 0).leader, 1);
}

#[test]
fn electing_preferred_leaders_for_all_partitions_reports_only_the_needed_ones() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    c.create("u", vec![vec![2, 1]]);
    c.heartbeat_with(2, true);
    c.register(2, None);
    c.heartbeat(2);
    c.alter_isr("u", vec![1, 2]).unwrap();
    assert_eq!(c.part("u", 0).leader, 1);
    let response = c
        .call(ControllerRequest::ElectLeaders {
            preferred: true,
            partitions: None,
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::ElectLeaders(vec![(("u".into(), 0), Ok(()))])
    );
    assert_eq!(c.part("u", 0).leader, 2);
}

#[test]
fn auto_rebalance_can_be_disabled() {
    let mut s = settings();
    s.auto_leader_rebalance = false;
    let mut c = Cluster::with(s);
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    c.expire(&[1]);
    c.register(1, None);
    c.heartbeat(1);
    c.alter_isr("t", vec![2, 1]).unwrap();
    c.advance(REBALANCE * 2);
    c.beat_all_but(&[]);
    assert!(c.tick().is_empty());
    assert_eq!(c.part("t", 0).leader, 2);
}

#[test]
fn reassignment_adds_then_completes_when_the_new_replicas_are_in_sync() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3, 4, 5]);
    c.create("t", vec![vec![1, 2, 3]]);
    let response = c
        .call(ControllerRequest::AlterReassignments {
            changes: vec![("t".into(), 0, Some(vec![4, 5, 2]))],
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::AlterReassignments(vec![(("t".into(), 0), Ok(()))])
    );
    let p = c.part("t", 0);
    assert_eq!(p.replicas, vec![4, 5, 2, 1, 3]);
    assert_eq!(p.adding, vec![4, 5]);
    assert_eq!(p.removing, vec![1, 3]);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
    assert_eq!(
        c.call(ControllerRequest::ListReassignments { partitions: None })
            .unwrap(),
        ControllerResponse::Reassignments(vec![(
            "t".into(),
            0,
            vec![4, 5, 2, 1, 3],
            vec![4, 5],
            vec![1, 3]
        )])
    );
    // One new replica catches up: not done yet.
    let p = c.alter_isr("t", vec![1, 2, 3, 4]).unwrap();
    assert!(p.is_reassigning());
    // The last one: done in the same decision, leader 1 hands over to the new ISR.
    let p = c.alter_isr("t", vec![1, 2, 3, 4, 5]).unwrap();
    assert!(!p.is_reassigning());
    assert_eq!(p.replicas, vec![4, 5, 2]);
    assert_eq!(p.isr, vec![2, 4, 5]);
    assert_eq!(p.leader, 4);
    assert_eq!(p.leader_epoch, 1);
    assert_eq!(p.partition_epoch, 4);
    assert_eq!(
        c.call(ControllerRequest::ListReassignments { partitions: None })
            .unwrap(),
        ControllerResponse::Reassignments(vec![])
    );
}

#[test]
fn reassignment_with_nothing_to_add_completes_immediately() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    let (records, _) = c.decide(ControllerRequest::AlterReassignments {
        changes: vec![("t".into(), 0, Some(vec![3, 2]))],
    });
    assert_eq!(records.len(), 2, "start and completion: {records:?}");
    let p = c.part("t", 0);
    assert_eq!(p.replicas, vec![3, 2]);
    assert_eq!(p.isr, vec![2, 3]);
    assert_eq!(
        p.leader, 3,
        "the leaving leader hands over in replica order"
    );
    assert!(!p.is_reassigning());
    // The same target again changes nothing.
    let (records, _) = c.decide(ControllerRequest::AlterReassignments {
        changes: vec![("t".into(), 0, Some(vec![3, 2]))],
    });
    assert!(records.is_empty());
}

#[test]
fn reassignment_completes_from_tick_and_can_be_cancelled() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2]]);
    c.create("u", vec![vec![1, 2]]);
    c.call(ControllerRequest::AlterReassignments {
        changes: vec![
            ("t".into(), 0, Some(vec![2, 3])),
            ("u".into(), 0, Some(vec![1, 3])),
        ],
    })
    .unwrap();
    // Cancel "u": back to the original replicas.
    let response = c
        .call(ControllerRequest::AlterReassignments {
            changes: vec![("u".into(), 0, None), ("u".into(), 0, None)],
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::AlterReassignments(vec![
            (("u".into(), 0), Ok(())),
            (
                ("u".into(), 0),
                Err(ControllerError::NoReassignmentInProgress)
            ),
        ])
    );
    let u = c.part("u", 0);
    assert_eq!(u.replicas, vec![1, 2]);
    assert!(!u.is_reassigning());
    // Broker 3 joins "t"'s ISR; a tick finishes the reassignment even without AlterPartition.
    let mut staged = c.part("t", 0);
    staged.isr = vec![1, 2, 3];
    staged.partition_epoch += 1;
    c.image.apply(
        c.image.offset + 1,
        &MetadataRecord::ChangePartition {
            topic: "t".into(),
            partition: 0,
            state: staged,
        },
    );
    c.tick();
    let t = c.part("t", 0);
    assert_eq!(
        (t.replicas.clone(), t.isr.clone(), t.leader),
        (vec![2, 3], vec![2, 3], 2)
    );
    assert!(!t.is_reassigning());
}

#[test]
fn reassignment_targets_are_validated() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    let response = c
        .call(ControllerRequest::AlterReassignments {
            changes: vec![
                ("t".into(), 0, Some(vec![])),
                ("t".into(), 0, Some(vec![1, 1])),
                ("t".into(), 0, Some(vec![1, 9])),
                ("x".into(), 0, Some(vec![1])),
            ],
        })
        .unwrap();
    let ControllerResponse::AlterReassignments(results) = response else {
        panic!()
    };
    for r in &results[..3] {
        assert!(matches!(
            r.1,
            Err(ControllerError::InvalidReplicaAssignment(_))
        ));
    }
    assert!(matches!(
        results[3].1,
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
}

#[test]
fn create_topics_places_replicas_and_reports_errors_per_topic() {
    let mut c = Cluster::new();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        c.register(id, Some(rack));
        c.heartbeat(id);
    }
    c.create("existing", vec![vec![1]]);
    let (records, response) = c.decide(ControllerRequest::CreateTopics {
        topics: vec![
            new_topic("orders", 6, 3),
            new_topic("orders", 1, 1),
            new_topic("existing", 1, 1),
            new_topic("big", 1, 7),
            new_topic("zero", 0, 1),
            new_topic("norf", 1, 0),
            NewTopic {
                assignments: Some(vec![vec![1, 9]]),
                ..new_topic("manual", -1, -1)
            },
        ],
        validate_only: false,
    });
    let ControllerResponse::CreateTopics(results) = response else {
        panic!()
    };
    assert_eq!(records.len(), 1);
    let orders = results[0].as_ref().unwrap();
    assert_eq!(orders.partitions.len(), 6);
    let rack = |b: i32| c.image.brokers[&b].rack.clone().unwrap();
    for p in &orders.partitions {
        let racks: std::collections::BTreeSet<String> =
            p.replicas.iter().map(|b| rack(*b)).collect();
        assert_eq!(racks.len(), 3, "{p:?}");
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
    }
    assert_eq!(c.image.topic("orders").unwrap().id, orders.id);
    assert!(matches!(
        results[1],
        Err(ControllerError::InvalidRequest(_))
    ));
    assert!(matches!(results[2], Err(ControllerError::TopicExists(_))));
    assert!(matches!(
        results[3],
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    assert!(matches!(
        results[4],
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert!(matches!(
        results[5],
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    assert!(matches!(
        results[6],
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
}

#[test]
fn create_topics_counts_only_active_brokers_and_skips_dead_replicas() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.expire(&[3]);
    let response = c
        .call(ControllerRequest::CreateTopics {
            topics: vec![
                new_topic("three", 1, 3),
                NewTopic {
                    assignments: Some(vec![vec![3, 1], vec![2, 3]]),
                    ..new_topic("manual", -1, -1)
                },
                NewTopic {
                    assignments: Some(vec![vec![3]]),
                    ..new_topic("dead", -1, -1)
                },
            ],
            validate_only: false,
        })
        .unwrap();
    let ControllerResponse::CreateTopics(results) = response else {
        panic!()
    };
    assert!(matches!(
        results[0],
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    let manual = results[1].as_ref().unwrap();
    assert_eq!(
        (
            manual.partitions[0].leader,
            manual.partitions[0].isr.clone()
        ),
        (1, vec![1])
    );
    assert_eq!(
        (
            manual.partitions[1].leader,
            manual.partitions[1].isr.clone()
        ),
        (2, vec![2])
    );
    assert_eq!(manual.partitions[0].replicas, vec![3, 1]);
    assert!(matches!(
        results[2],
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
}

#[test]
fn validate_only_writes_nothing() {
    let mut c = Cluster::new();
    c.start(&[1]);
    let (records, response) = c.decide(ControllerRequest::CreateTopics {
        topics: vec![new_topic("t", 2, 1)],
        validate_only: true,
    });
    assert!(records.is_empty());
    let ControllerResponse::CreateTopics(results) = response else {
        panic!()
    };
    assert_eq!(results[0].as_ref().unwrap().partitions.len(), 2);
    assert!(c.image.topics.is_empty());
}

#[test]
fn delete_topics_and_configs() {
    let mut c = Cluster::new();
    c.start(&[1]);
    c.create("t", vec![vec![1]]);
    let id = c.image.topic("t").unwrap().id;
    let response = c
        .call(ControllerRequest::DeleteTopics {
            names: vec!["t".into(), "t".into(), "nope".into()],
        })
        .unwrap();
    let ControllerResponse::DeleteTopics(results) = response else {
        panic!()
    };
    assert_eq!(results[0], Ok(id));
    assert!(matches!(
        results[1],
        Err(ControllerError::InvalidRequest(_))
    ));
    assert!(matches!(
        results[2],
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    assert!(c.image.topics.is_empty());
    assert!(matches!(
        c.call(ControllerRequest::SetTopicConfigs {
            topic: "t".into(),
            configs: BTreeMap::new()
        }),
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
}

#[test]
fn create_partitions_continues_the_topic() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    let huge = c.call(ControllerRequest::CreateTopics {
        topics: vec![new_topic("huge", super::MAX_PARTITIONS_PER_TOPIC + 1, 1)],
        validate_only: false,
    });
    assert!(
        matches!(huge, Ok(ControllerResponse::CreateTopics(ref r)) if matches!(r[0], Err(ControllerError::InvalidPartitions(_)))),
        "{huge:?}"
    );
    c.call(ControllerRequest::CreateTopics {
        topics: vec![new_topic("t", 2, 2)],
        validate_only: false,
    })
    .unwrap();
    let grow =
        |count: i32, assignments: Option<Vec<Vec<i32>>>| ControllerRequest::CreatePartitions {
            topic: "t".into(),
            count,
            assignments,
            validate_only: false,
        };
    assert!(matches!(
        c.call(grow(1, None)),
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert!(matches!(
        c.call(grow(2, None)),
        Err(ControllerError::InvalidPartitions(_))
    ));
    // Billions of partitions would exhaust the controller's memory: refused, nothing staged.
    assert!(matches!(
        c.call(grow(i32::MAX, None)),
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert!(matches!(
        c.call(grow(super::MAX_PARTITIONS_PER_TOPIC + 1, None)),
        Err(ControllerError::InvalidPartitions(_))
    ));
    assert!(matches!(
        c.call(ControllerRequest::CreatePartitions {
            topic: "x".into(),
            count: 3,
            assignments: None,
            validate_only: false
        }),
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(
        c.call(grow(3, Some(vec![vec![1]]))),
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(
        c.call(grow(4, Some(vec![vec![1, 2]]))),
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    let (records, _) = c.decide(ControllerRequest::CreatePartitions {
        topic: "t".into(),
        count: 3,
        assignments: None,
        validate_only: true,
    });
    assert!(records.is_empty());
    assert_eq!(c.call(grow(4, None)), Ok(ControllerResponse::Done));
    let t = c.image.topic("t").unwrap();
    assert_eq!(t.partitions.len(), 4);
    for p in &t.partitions {
        assert_eq!(p.replicas.len(), 2);
        assert_ne!(p.replicas[0], p.replicas[1]);
    }
    // The new partitions continue the placement the topic started with.
    let all = crate::placement::assign_replicas(
        &[(1, None), (2, None), (3, None)],
        4,
        2,
        0,
        crate::placement::topic_seed("t"),
    )
    .unwrap();
    let replicas: Vec<Vec<i32>> = t.partitions.iter().map(|p| p.replicas.clone()).collect();
    assert_eq!(replicas, all);
    assert_eq!(
        c.call(grow(5, Some(vec![vec![3, 1]]))),
        Ok(ControllerResponse::Done)
    );
    assert_eq!(c.part("t", 4).replicas, vec![3, 1]);
}

#[test]
fn producer_id_blocks_are_consecutive() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    let alloc = |broker: i32, broker_epoch: i64| ControllerRequest::AllocateProducerIds {
        broker,
        broker_epoch,
    };
    let first = c.call(alloc(1, c.epochs[&1])).unwrap();
    let second = c.call(alloc(2, c.epochs[&2])).unwrap();
    assert_eq!(
        first,
        ControllerResponse::ProducerIds {
            first: 0,
            count: 1000
        }
    );
    assert_eq!(
        second,
        ControllerResponse::ProducerIds {
            first: 1000,
            count: 1000
        }
    );
    assert_eq!(c.image.next_producer_id, 2000);
    assert!(matches!(
        c.call(alloc(1, c.epochs[&1] + 100)),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
}

#[test]
fn a_restarted_leader_loses_its_old_leaderships_at_registration() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    let (records, _) = c.decide(ControllerRequest::RegisterBroker {
        id: 1,
        incarnation: Uuid::new_v4(),
        rack: None,
        endpoints: vec![],
    });
    assert!(matches!(records[0], MetadataRecord::RegisterBroker(_)));
    let p = c.part("t", 0);
    assert_eq!(
        (p.leader, p.isr.clone(), p.leader_epoch),
        (2, vec![2, 3], 1)
    );
}

#[test]
fn a_new_controller_gives_every_broker_a_full_session() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    // Long silence under the old controller, then a failover.
    c.advance(SESSION * 3);
    let mut ctl = Controller::new(settings());
    ctl.activate(&c.image, c.now);
    c.ctl = ctl;
    c.advance(SESSION - Duration::from_millis(1));
    c.heartbeat(2);
    assert!(c.tick().is_empty());
    c.advance(Duration::from_millis(2));
    let records = c.tick();
    assert_eq!(
        records[0],
        MetadataRecord::FenceBroker {
            id: 1,
            epoch: c.epochs[&1]
        }
    );
    assert_eq!(c.part("t", 0).leader, 2);
}

#[test]
fn a_reassignment_waits_for_a_target_replica_that_can_lead() {
    let mut c = Cluster::new();
    c.start(&[1, 2]);
    c.create("t", vec![vec![1, 2]]);
    let mut state = c.part("t", 0);
    state.replicas = vec![2, 1];
    state.removing = vec![1];
    state.partition_epoch += 1;
    let epoch2 = c.epochs[&2];
    c.apply(&[
        MetadataRecord::BeginControlledShutdown {
            id: 2,
            epoch: epoch2,
        },
        MetadataRecord::ChangePartition {
            topic: "t".into(),
            partition: 0,
            state,
        },
    ]);
    assert!(c.tick().is_empty(), "broker 2 cannot take over yet");
    c.apply(&[MetadataRecord::UnfenceBroker {
        id: 2,
        epoch: epoch2,
    }]);
    c.tick();
    let p = c.part("t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2], vec![2], 2)
    );
    assert!(!p.is_reassigning());
}

#[test]
fn the_first_tick_writes_the_cluster_id_once_and_first_wins() {
    let now = Instant::now();
    let mut image = Image::default();
    let mut ctl = Controller::new(settings());
    ctl.activate(&image, now);
    let records = ctl.tick(&image, now);
    assert_eq!(
        records,
        vec![MetadataRecord::SetClusterId {
            id: "test-cluster".into()
        }]
    );
    image.apply(1, &records[0]);
    assert_eq!(image.cluster_id.as_deref(), Some("test-cluster"));
    // Another controller's candidate (a racing or later one) never replaces it.
    image.apply(2, &MetadataRecord::SetClusterId { id: "other".into() });
    assert_eq!(image.cluster_id.as_deref(), Some("test-cluster"));
    assert!(ctl.tick(&image, now).is_empty());
}

#[test]
fn alter_partitions_decides_each_change_and_commits_them_together() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3], vec![1, 3, 2], vec![2, 1, 3]]);
    let change = |partition: i32, leader_epoch: i32, isr: Vec<i32>| crate::rpc::IsrChange {
        topic: "t".into(),
        partition,
        leader_epoch,
        partition_epoch: 0,
        isr,
    };
    let (records, response) = c.decide(ControllerRequest::AlterPartitions {
        broker: 1,
        broker_epoch: c.epochs[&1],
        changes: vec![
            change(0, 0, vec![1, 2]),
            // Broker 1 does not lead partition 2: refused alone, the others still go through.
            change(2, 0, vec![2, 1]),
            change(1, 0, vec![1, 3]),
            change(9, 0, vec![1]),
        ],
    });
    let ControllerResponse::AlterPartitions(results) = response else {
        panic!("unexpected {response:?}");
    };
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().expect("accepted").isr, vec![1, 2]);
    assert!(matches!(
        results[1],
        Err(ControllerError::FencedLeaderEpoch(_))
    ));
    assert_eq!(results[2].as_ref().expect("accepted").isr, vec![1, 3]);
    assert!(matches!(
        results[3],
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    // One decision, one log entry, holding both accepted changes.
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(c.part("t", 0).isr, vec![1, 2]);
    assert_eq!(c.part("t", 1).isr, vec![1, 3]);
    assert_eq!(c.part("t", 2).isr, vec![2, 1, 3]);
    // A stale broker epoch refuses every change.
    let (_, response) = c.decide(ControllerRequest::AlterPartitions {
        broker: 1,
        broker_epoch: c.epochs[&1] - 1,
        changes: vec![change(0, 0, vec![1, 2, 3])],
    });
    let ControllerResponse::AlterPartitions(results) = response else {
        panic!("unexpected {response:?}");
    };
    assert!(matches!(
        results[0],
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
}

fn scram(seed: u8) -> crate::image::StoredScram {
    crate::image::StoredScram {
        salt: vec![seed; 16],
        stored_key: vec![seed; 32],
        server_key: vec![seed.wrapping_add(1); 32],
        iterations: 4096,
    }
}

#[test]
fn scram_credentials_are_upserted_and_deleted_per_user() {
    let mut c = Cluster::new();
    let response = c
        .call(ControllerRequest::AlterScramCredentials {
            deletions: vec![],
            upsertions: vec![("alice".into(), 1, scram(1)), ("bob".into(), 2, scram(2))],
        })
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::AlterScramCredentials(vec![
            ("alice".into(), Ok(())),
            ("bob".into(), Ok(())),
        ])
    );
    assert_eq!(c.image.scram["alice"][&1], scram(1));
    // Replacing, and deleting what does not exist: that user's whole part is refused.
    let response = c
        .call(ControllerRequest::AlterScramCredentials {
            deletions: vec![("bob".into(), 1), ("alice".into(), 1)],
            upsertions: vec![("bob".into(), 2, scram(9))],
        })
        .unwrap();
    let ControllerResponse::AlterScramCredentials(results) = response else {
        panic!("wrong response");
    };
    assert_eq!(results[0].0, "bob");
    assert_eq!(results[0].1.as_ref().unwrap_err().code(), 91);
    assert_eq!(results[1], ("alice".into(), Ok(())));
    assert_eq!(
        c.image.scram["bob"][&2],
        scram(2),
        "bob's upsert was refused with his deletion"
    );
    assert!(
        !c.image.scram.contains_key("alice"),
        "a user without credentials is gone"
    );
}

#[test]
fn add_scram_credentials_come_with_a_new_log_only() {
    let mut with = settings();
    with.bootstrap_scram = vec![("admin".into(), 2, scram(5))];
    // A new log: the first tick writes the cluster id and the credentials together.
    let mut ctl = Controller::new(with.clone());
    let mut image = Image::default();
    let now = Instant::now();
    ctl.activate(&image, now);
    let records = ctl.tick(&image, now);
    assert!(matches!(records[0], MetadataRecord::SetClusterId { .. }));
    for r in &records {
        image.apply(1, r);
    }
    assert_eq!(image.scram["admin"][&2], scram(5));
    // A log that already has its cluster id: nothing is added.
    let mut c = Cluster::with(with);
    c.now += Duration::from_millis(100);
    let records = c.ctl.tick(&c.image, c.now);
    assert!(
        !records
            .iter()
            .any(|r| matches!(r, MetadataRecord::SetScramCredential { .. })),
        "{records:?}"
    );
}

#[test]
fn acls_are_created_once_and_deleted_by_filter() {
    use crate::acl::{AclBinding, AclFilter, op, pattern, permission, resource};
    let binding = |name: &str| AclBinding {
        resource_type: resource::TOPIC,
        resource_name: name.into(),
        pattern_type: pattern::PREFIXED,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op::WRITE,
        permission: permission::ALLOW,
    };
    let mut c = Cluster::new();
    let invalid = AclBinding {
        pattern_type: pattern::MATCH,
        ..binding("x")
    };
    let response = c
        .call(ControllerRequest::CreateAcls {
            bindings: vec![
                binding("orders-"),
                binding("orders-"),
                invalid,
                binding("logs-"),
            ],
        })
        .unwrap();
    let ControllerResponse::CreateAcls(results) = response else {
        panic!("wrong response");
    };
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
    assert_eq!(results[2].as_ref().unwrap_err().code(), 42);
    assert_eq!(c.image.acls.len(), 2, "the duplicate is one binding");
    // Creating it again is a success without a new record.
    let (records, _) = c.decide(ControllerRequest::CreateAcls {
        bindings: vec![binding("orders-")],
    });
    assert!(records.is_empty());
    let filter = AclFilter {
        resource_type: resource::TOPIC,
        resource_name: Some("orders-".into()),
        pattern_type: pattern::PREFIXED,
        principal: None,
        host: None,
        operation: op::ANY,
        permission: permission::ANY,
    };
    let response = c
        .call(ControllerRequest::DeleteAcls {
            filters: vec![filter.clone(), filter],
        })
        .unwrap();
    let ControllerResponse::DeleteAcls(results) = response else {
        panic!("wrong response");
    };
    assert_eq!(results[0].as_ref().unwrap(), &vec![binding("orders-")]);
    assert_eq!(c.image.acls.len(), 1);
    assert_eq!(c.image.acls.values().next().unwrap(), &binding("logs-"));
}

#[test]
fn offline_replicas_leave_isr_and_leadership() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    c.create("u", vec![vec![2, 1]]);
    c.create("solo", vec![vec![1]]);
    let offline = vec![
        ("t".to_string(), 0),
        ("u".to_string(), 0),
        ("solo".to_string(), 0),
    ];
    let request = |c: &Cluster| ControllerRequest::Heartbeat {
        id: 1,
        epoch: c.epochs[&1],
        metadata_offset: c.image.offset,
        want_shutdown: false,
        offline_partitions: offline.clone(),
    };
    let (records, _) = c.decide(request(&c));
    // The broker's offline set, then the three partitions.
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(matches!(
        &records[0],
        MetadataRecord::BrokerReplicasOffline { id: 1, partitions, .. } if partitions.len() == 3
    ));
    // Metadata lists replica 1 of those partitions as offline, the others not.
    let t_state = c.part("t", 0);
    assert_eq!(c.image.offline_replicas("t", 0, &t_state), vec![1]);
    let solo_state = c.part("solo", 0);
    assert_eq!(c.image.offline_replicas("solo", 0, &solo_state), vec![1]);
    c.create("fine", vec![vec![1, 2]]);
    let fine = c.part("fine", 0);
    assert!(c.image.offline_replicas("fine", 0, &fine).is_empty());
    // The leader's replica is gone: leadership moves within the ISR, which it leaves.
    let t = c.part("t", 0);
    assert_eq!(
        (t.leader, t.isr.clone(), t.leader_epoch),
        (2, vec![2, 3], 1)
    );
    // A follower's replica leaves the ISR only.
    let u = c.part("u", 0);
    assert_eq!((u.leader, u.isr.clone(), u.leader_epoch), (2, vec![2], 0));
    // The only replica: the partition has no leader (offline), as in Kafka.
    let solo = c.part("solo", 0);
    assert_eq!((solo.leader, solo.isr.clone()), (NO_LEADER, vec![1]));
    // Reported again on the next heartbeat: nothing more to change.
    let (records, _) = c.decide(request(&c));
    assert!(records.is_empty(), "{records:?}");
    assert!(
        !c.image.brokers[&1].fenced,
        "the broker itself stays in the cluster"
    );
    // The dir is back (a restart with it healthy reports none): no replica is offline any more.
    let (records, _) = c.decide(ControllerRequest::Heartbeat {
        id: 1,
        epoch: c.epochs[&1],
        metadata_offset: c.image.offset,
        want_shutdown: false,
        offline_partitions: vec![],
    });
    assert_eq!(records.len(), 1, "{records:?}");
    let t_state = c.part("t", 0);
    assert!(c.image.offline_replicas("t", 0, &t_state).is_empty());
}

#[test]
fn raise_leader_epoch_only_for_the_current_leader_and_only_upwards() {
    let mut c = Cluster::new();
    c.start(&[1, 2, 3]);
    c.create("t", vec![vec![1, 2, 3]]);
    let raise = |broker: i32, broker_epoch: i64, leader_epoch: i32, at_least: i32| {
        ControllerRequest::RaiseLeaderEpoch {
            broker,
            broker_epoch,
            topic: "t".into(),
            partition: 0,
            leader_epoch,
            at_least,
        }
    };
    let before = c.part("t", 0);
    assert_eq!(before.leader, 1);
    // A follower, or the leader at a stale epoch, is fenced.
    assert!(matches!(
        c.call(raise(2, c.epochs[&2], before.leader_epoch, 9)),
        Err(ControllerError::FencedLeaderEpoch(_))
    ));
    assert!(matches!(
        c.call(raise(1, c.epochs[&1], before.leader_epoch + 1, 9)),
        Err(ControllerError::FencedLeaderEpoch(_))
    ));
    assert!(matches!(
        c.call(raise(1, c.epochs[&1] - 1, before.leader_epoch, 9)),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    assert_eq!(c.part("t", 0), before);
    c.call(raise(1, c.epochs[&1], before.leader_epoch, 9))
        .unwrap();
    let after = c.part("t", 0);
    assert_eq!(
        (after.leader, after.leader_epoch, after.partition_epoch),
        (1, 9, before.partition_epoch + 1)
    );
    assert_eq!((after.replicas, after.isr), (before.replicas, before.isr));
    // Never downwards: already at or above, nothing is written.
    let (records, response) = c.decide(raise(1, c.epochs[&1], 9, 4));
    assert_eq!(response, ControllerResponse::Done);
    assert!(records.is_empty());
    assert_eq!(c.part("t", 0).leader_epoch, 9);
}

#[test]
fn reserved_producer_ids_are_never_handed_out() {
    let mut c = Cluster::new();
    c.start(&[1]);
    let reserve = |below: i64, c: &Cluster| ControllerRequest::ReserveProducerIds {
        broker: 1,
        broker_epoch: c.epochs[&1],
        below,
    };
    let (records, _) = c.decide(reserve(5000, &c));
    assert_eq!(
        records,
        vec![MetadataRecord::ReserveProducerIds { below: 5000 }]
    );
    assert_eq!(c.image.producer_ids_reserved_below, 5000);
    // Lower or equal reservations change nothing.
    let (records, response) = c.decide(reserve(3000, &c));
    assert_eq!((records, response), (vec![], ControllerResponse::Done));
    let ControllerResponse::ProducerIds { first, .. } = c
        .call(ControllerRequest::AllocateProducerIds {
            broker: 1,
            broker_epoch: c.epochs[&1],
        })
        .unwrap()
    else {
        panic!("no producer ids");
    };
    assert!(
        first >= 5000,
        "block from {first} overlaps the reserved ids"
    );
    assert!(matches!(
        c.call(ControllerRequest::ReserveProducerIds {
            broker: 1,
            broker_epoch: c.epochs[&1] - 1,
            below: 9000,
        }),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
}
