//! The plan stage of a Cluster reconcile, pure functions of the spec and the observation:
//! what to do about zones that left `spec.zones`, the scale step's admin work, and the desired
//! objects with the decisions that go with them (voters, configuration hash, claim templates,
//! strategy migrations). The apply stage carries the plan out in a fixed order.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;

use crate::cluster::build::{configmap, monitoring, pdb, rbac, services};
use crate::cluster::identity::{self, ClusterRef};
use crate::cluster::observe::Observed;
use crate::cluster::quorum::Controllers;
use crate::cluster::reconfigure::QuorumOutcome;
use crate::cluster::{config, quorum, storage, tls, zones};
use crate::names;

/// What to do about StatefulSets whose zone left its position in `spec.zones` (see `zones`).
pub fn zones(c: &ClusterRef<'_>, observed: &Observed) -> zones::ZoneCheck {
    zones::check(c.spec, &existing_zone_sets(c, &observed.zone_sets.items))
}

/// What the scale step must do, from the spec and the brokers each zone has.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalePlan {
    /// No broker leaves: each zone gets its desired size.
    Resize(Vec<i32>),
    /// Brokers leave: partitions move off them first (admin calls), and until none is left
    /// there, and none of them is a controller voter any more, the zones keep their brokers.
    Drain(Drain),
}

/// A scale-down's brokers and racks.
#[derive(Clone, Debug, PartialEq)]
pub struct Drain {
    /// Each zone's desired size.
    pub desired: Vec<i32>,
    /// Each zone's size while partitions move: the larger of desired and current.
    pub held: Vec<i32>,
    /// Node ids of the leaving brokers.
    pub leaving: Vec<i32>,
    /// Node ids of the brokers that stay.
    pub remaining: Vec<i32>,
    /// Each broker's rack (zone).
    pub racks: BTreeMap<i32, String>,
    /// The controller voters the spec wants (none of them leaves).
    pub voters: Vec<i32>,
    /// Leaving brokers that are still controller voters: the quorum step removes them first.
    pub leaving_voters: Vec<i32>,
}

/// Plans the scale step from `current`, the brokers each zone has, and the `quorum` step: a
/// zone grows at once (new controllers join the quorum as observers and are promoted one at a
/// time); it shrinks only once no partition has a replica on its leaving brokers and none of
/// them is a voter any more.
pub fn scale(c: &ClusterRef<'_>, current: &[Option<i32>], quorum: &QuorumOutcome) -> ScalePlan {
    let desired = quorum::desired_zone_sizes(c.spec);
    let mut leaving = Vec::new();
    let mut remaining = Vec::new();
    let mut racks = BTreeMap::new();
    for (i, zone) in c.spec.zones.iter().enumerate() {
        let start = identity::ordinal_start(i);
        let have = current.get(i).copied().flatten().unwrap_or(0);
        for k in 0..have.max(desired[i]) {
            racks.insert(start + k, zone.clone());
            if k < desired[i] {
                remaining.push(start + k);
            } else {
                leaving.push(start + k);
            }
        }
    }
    if leaving.is_empty() {
        return ScalePlan::Resize(desired);
    }
    let held: Vec<i32> = desired
        .iter()
        .zip(current)
        .map(|(d, c)| (*d).max(c.unwrap_or(0)))
        .collect();
    let now = quorum.voters_now();
    let leaving_voters = leaving
        .iter()
        .filter(|id| now.contains(id))
        .copied()
        .collect();
    ScalePlan::Drain(Drain {
        desired,
        held,
        leaving,
        remaining,
        racks,
        voters: quorum.desired.clone(),
        leaving_voters,
    })
}

/// The desired objects of a Cluster and the decisions that go with them, once the scale step
/// has decided each zone's size. The StatefulSets are built at apply time, from these and
/// what applying the Services and certificates returned (external addresses, certificate
/// generations).
pub struct Plan {
    /// Brokers each zone's StatefulSet gets.
    pub replicas: Vec<i32>,
    /// Node ids of those brokers.
    pub held: Vec<i32>,
    /// The controller voters as the quorum reported them (the seeds when it was not asked):
    /// the roll restarts them last.
    pub voters: Vec<i32>,
    /// The nodes with the controller role: the seed voters and the joining ones.
    pub controllers: Controllers,
    /// Why voters must not restart now (a voter change under way), if they must not.
    pub hold_voters: Option<String>,
    /// Hash of `server.properties`, which rolls the brokers when it changes.
    pub config_hash: String,
    /// The brokers' ServiceAccount.
    pub service_account: ServiceAccount,
    /// `server.properties`.
    pub config_map: ConfigMap,
    /// The headless Service.
    pub headless: Service,
    /// The bootstrap Services.
    pub bootstrap: Vec<Service>,
    /// The per-broker Services of external listeners.
    pub per_broker: Vec<Service>,
    /// Whether the brokers need certificates (mutual TLS replication or TLS listeners).
    pub broker_certificates: bool,
    /// StatefulSets to switch to `OnDelete` before their new template lands, so that it cannot
    /// roll every zone at once.
    pub migrate: Vec<String>,
    /// Each zone's claim template and the StatefulSet to recreate for a new one.
    pub templates: storage::TemplatePlan,
    /// The PodDisruptionBudget.
    pub pdb: PodDisruptionBudget,
    /// The ServiceMonitor, when asked for.
    pub service_monitor: Option<DynamicObject>,
}

/// Plans the objects of Cluster `c` for zone sizes `replicas` (the scale step's decision) and
/// the `quorum` step's controllers: `controller.quorum.voters` names the seed voters only.
pub fn plan(
    c: &ClusterRef<'_>,
    observed: &Observed,
    replicas: Vec<i32>,
    quorum: &QuorumOutcome,
) -> Plan {
    let seeds = &quorum.seeds;
    let properties = config::server_properties(c.name, c.namespace, c.spec, seeds, c.replication);
    Plan {
        held: identity::held_node_ids(&replicas),
        config_hash: config::config_hash(&properties),
        service_account: rbac::service_account(c),
        config_map: configmap::config_map(c, seeds),
        headless: services::headless_service(c),
        bootstrap: services::bootstrap_services(c),
        per_broker: services::broker_services(c, &replicas),
        broker_certificates: tls::needs_certificates(c.spec, c.replication),
        migrate: observed.migrate.clone(),
        templates: storage::plan_templates(&observed.zone_states, &c.spec.storage),
        pdb: pdb::pod_disruption_budget(c),
        service_monitor: monitoring::service_monitor(c),
        voters: quorum.voters_now(),
        controllers: quorum.controllers(),
        hold_voters: quorum
            .changing()
            .then(|| quorum.step.map(|s| s.to_string()).unwrap_or_default()),
        replicas,
    }
}

/// The zone StatefulSets of `c` among `listed`: named `<cluster>-z<index>` and owned by this
/// Cluster (without its uid none can be proven ours).
pub fn existing_zone_sets(
    c: &ClusterRef<'_>,
    listed: &[StatefulSet],
) -> Vec<zones::ExistingZoneSet> {
    let Some(owner) = &c.owner else {
        return Vec::new();
    };
    listed
        .iter()
        .filter(|s| {
            s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == owner.uid)
        })
        .filter_map(|s| {
            let name = s.metadata.name.clone()?;
            let index = zones::index_of(c.name, &name)?;
            let zone = s
                .spec
                .selector
                .match_labels
                .as_ref()
                .and_then(|l| l.get(names::ZONE_LABEL).cloned());
            let wanted = s.spec.replicas.unwrap_or(0);
            let have = s.status.as_ref().map_or(0, |s| s.replicas);
            Some(zones::ExistingZoneSet {
                name,
                index,
                zone,
                brokers: wanted.max(have),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::{cref, spec};

    /// The quorum step's outcome for seeds `seeds`, wanted voters `desired` and the voters as
    /// described (`None`: not described).
    fn quorum(seeds: &[i32], desired: &[i32], voters: Option<&[i32]>) -> QuorumOutcome {
        QuorumOutcome {
            seeds: seeds.to_vec(),
            desired: desired.to_vec(),
            voters: voters.map(<[i32]>::to_vec),
            ..QuorumOutcome::default()
        }
    }

    #[test]
    fn a_scale_down_drains_the_last_brokers_of_each_zone_and_holds_the_zones() {
        let s = spec(3, &["a", "b", "c"]);
        let q = quorum(&[0, 1000, 2000], &[0, 1000, 2000], None);
        let ScalePlan::Drain(drain) = scale(&cref(&s), &[Some(2), Some(2), Some(1)], &q) else {
            panic!("a scale-down drains");
        };
        assert_eq!(drain.desired, [1, 1, 1]);
        assert_eq!(drain.held, [2, 2, 1]);
        assert_eq!(drain.leaving, [1, 1001]);
        assert_eq!(drain.remaining, [0, 1000, 2000]);
        assert_eq!(drain.racks[&1001], "b");
        assert_eq!(drain.voters, [0, 1000, 2000]);
        assert!(drain.leaving_voters.is_empty());
    }

    #[test]
    fn growing_or_creating_is_a_resize() {
        let s = spec(5, &["a", "b", "c"]);
        let q = quorum(&[0, 1000, 2000], &[0, 1000, 2000, 1, 1001], None);
        assert_eq!(
            scale(&cref(&s), &[Some(1), Some(1), Some(1)], &q),
            ScalePlan::Resize(vec![2, 2, 1])
        );
        assert_eq!(
            scale(&cref(&s), &[None, None, None], &q),
            ScalePlan::Resize(vec![2, 2, 1])
        );
        // One broker to three: the quorum grows rather than refusing the scale.
        let s = spec(3, &["a", "b", "c"]);
        let q = quorum(&[0], &[0, 1000, 2000], Some(&[0]));
        assert_eq!(
            scale(&cref(&s), &[Some(1), Some(0), Some(0)], &q),
            ScalePlan::Resize(vec![1, 1, 1])
        );
    }

    #[test]
    fn leaving_voters_are_named_for_the_quorum_step_to_remove_first() {
        // Three brokers to one: 1000 and 2000 leave, and are still voters as described.
        let s = spec(1, &["a", "b", "c"]);
        let q = quorum(&[0, 1000, 2000], &[0], Some(&[0, 1000, 2000]));
        let ScalePlan::Drain(drain) = scale(&cref(&s), &[Some(1), Some(1), Some(1)], &q) else {
            panic!("a scale-down drains");
        };
        assert_eq!(drain.leaving, [1000, 2000]);
        assert_eq!(drain.leaving_voters, [1000, 2000]);
        assert_eq!(drain.voters, [0], "the wanted voters stay");
        // Once removed from the voter set, only the partitions hold them.
        let q = quorum(&[0, 1000, 2000], &[0], Some(&[0]));
        let ScalePlan::Drain(drain) = scale(&cref(&s), &[Some(1), Some(1), Some(1)], &q) else {
            panic!("a scale-down drains");
        };
        assert!(drain.leaving_voters.is_empty());
    }

    #[test]
    fn the_objects_follow_the_zone_sizes_decided() {
        let s = spec(5, &["a", "b", "c"]);
        let c = cref(&s);
        let observed = Observed {
            zone_sets: kube::api::ObjectList {
                types: Default::default(),
                metadata: Default::default(),
                items: Vec::new(),
            },
            pods: Vec::new(),
            live: BTreeMap::new(),
            zone_states: vec![storage::ZoneState::Absent; 3],
            current: vec![None; 3],
            ready: 0,
            migrate: Vec::new(),
            replication: identity::Replication::MutualTls,
            pod_failures: Vec::new(),
        };
        // Held at 2-2-1 while partitions move off brokers 1 and 1001.
        let q = quorum(
            &[0, 1000, 2000],
            &[0, 1000, 2000, 1, 1001],
            Some(&[0, 1000, 2000, 1]),
        );
        let plan = plan(&c, &observed, vec![2, 2, 1], &q);
        assert_eq!(plan.held, [0, 1, 1000, 1001, 2000]);
        assert_eq!(plan.voters, [0, 1000, 2000, 1]);
        assert_eq!(plan.controllers.seeds, [0, 1000, 2000]);
        assert_eq!(plan.controllers.joining, [1, 1001]);
        // The shared file names the seeds only.
        let properties = &plan.config_map.data.as_ref().expect("data")["server.properties"];
        assert!(
            properties.contains(
                "\ncontroller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093,\
                 1000@kafka-z1-1000.kafka-brokers.ns.svc:9093,\
                 2000@kafka-z2-2000.kafka-brokers.ns.svc:9093\n"
            ),
            "{properties}"
        );
        assert!(plan.broker_certificates, "mutual TLS replication");
        assert_eq!(plan.templates.templates.len(), 3);
        assert!(plan.service_monitor.is_none());
    }
}
