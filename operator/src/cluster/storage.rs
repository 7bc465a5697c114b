//! Storage changes the way Kubernetes allows them, as pure decisions: existing claims grow in
//! place (a PVC patch, where the StorageClass allows expansion) and never shrink; a zone
//! StatefulSet's `volumeClaimTemplates` is immutable, so a template that must change (a larger
//! size for new brokers, another StorageClass) is never applied in place: the StatefulSet is
//! deleted orphaning its pods and recreated with the new template, one zone at a time. What
//! cannot be done is reported in the `StorageChangeBlocked` condition.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use strait_crds::cluster::Storage;

use crate::cluster::identity::ordinal_start;
use crate::cluster::roll::BrokerPod;
use crate::cluster::validate::parse_quantity;
use crate::conditions::Cond;
use crate::names;

/// The data claim template of a zone StatefulSet: what `volumeClaimTemplates` fixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimTemplate {
    /// `resources.requests.storage`.
    pub size: String,
    /// `storageClassName` (`None`: the cluster default).
    pub class: Option<String>,
}

impl ClaimTemplate {
    /// The template `spec.storage` asks for.
    pub fn wanted(storage: &Storage) -> Self {
        ClaimTemplate {
            size: storage.size.clone(),
            class: storage.storage_class.clone(),
        }
    }

    /// The data template of an existing StatefulSet; `None` when it has none.
    pub fn of(sts: &StatefulSet) -> Option<Self> {
        let claim = sts
            .spec
            .volume_claim_templates
            .as_ref()?
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(names::DATA_VOLUME))?;
        Some(ClaimTemplate {
            size: size_of(claim)?,
            class: claim.spec.as_ref()?.storage_class_name.clone(),
        })
    }

    /// Same size (as quantities: `10Gi` is `10240Mi`) and class.
    fn same_as(&self, other: &ClaimTemplate) -> bool {
        self.class == other.class && same_size(&self.size, &other.size)
    }
}

/// `sts` (as built from the spec) with `template` as its data claim template.
pub fn set_template(sts: &mut StatefulSet, template: &ClaimTemplate) {
    let claims = sts.spec.volume_claim_templates.iter_mut().flatten();
    for claim in claims.filter(|t| t.metadata.name.as_deref() == Some(names::DATA_VOLUME)) {
        let spec = claim.spec.get_or_insert_with(Default::default);
        spec.storage_class_name = template.class.clone();
        spec.resources
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default)
            .insert("storage".to_owned(), Quantity(template.size.clone()));
    }
}

fn same_size(a: &str, b: &str) -> bool {
    a == b || matches!((parse_quantity(a), parse_quantity(b)), (Some(x), Some(y)) if x == y)
}

/// `spec.resources.requests.storage` of a claim.
fn size_of(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// A zone StatefulSet as the storage step sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneState {
    /// Not there (a new zone, or deleted for recreation and not yet recreated).
    Absent,
    /// Being deleted.
    Terminating,
    /// There, with its data claim template (`None`: it has none).
    Live(Option<ClaimTemplate>),
}

/// Something about storage that cannot be done (as asked, or at all).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// The size went down: claims and templates keep theirs.
    Shrink {
        /// The size in use.
        from: String,
        /// `spec.storage.size`.
        to: String,
    },
    /// The claims' StorageClass does not allow expansion (read from the StorageClass, or the
    /// API server's refusal of the patch).
    ExpansionNotSupported {
        /// The claim.
        claim: String,
        /// Why.
        reason: String,
    },
    /// Growing a claim failed otherwise.
    ResizeFailed {
        /// The claim.
        claim: String,
        /// The error.
        error: String,
    },
    /// Existing claims keep their StorageClass; new brokers get the new one.
    ClassKept {
        /// The claim.
        claim: String,
        /// Its class.
        class: String,
        /// `spec.storage.storageClass`.
        wanted: String,
    },
}

impl Problem {
    fn reason(&self) -> &'static str {
        match self {
            Problem::Shrink { .. } => "StorageShrinkRefused",
            Problem::ExpansionNotSupported { .. } => "ExpansionNotSupported",
            Problem::ResizeFailed { .. } => "ResizeFailed",
            Problem::ClassKept { .. } => "StorageClassKept",
        }
    }
}

/// The storage step's decision for the zone StatefulSets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplatePlan {
    /// The claim template to apply, per zone: the wanted one, except that a StatefulSet keeps
    /// its own until its turn to be recreated, and a shrink is never applied.
    pub templates: Vec<ClaimTemplate>,
    /// The zone whose StatefulSet is deleted now, orphaning its pods, to be recreated with its
    /// new template by the next reconcile.
    pub recreate: Option<usize>,
    /// Zones whose template must change after that one, or that are being recreated.
    pub pending: Vec<usize>,
    /// Shrinks refused.
    pub problems: Vec<Problem>,
}

/// Decides the claim template of each zone (`zones[i]` is zone `i`'s StatefulSet): a new one
/// gets `storage`'s; an existing one whose template differs in size (grown) or class is
/// recreated, one zone at a time and only while every zone's StatefulSet is there (so that
/// at most one zone's brokers are without a StatefulSet, and never the last that shows how
/// the cluster replicates); a smaller size is refused and the existing size kept.
pub fn plan_templates(zones: &[ZoneState], storage: &Storage) -> TemplatePlan {
    let wanted = ClaimTemplate::wanted(storage);
    let all_live = zones.iter().all(|z| matches!(z, ZoneState::Live(_)));
    let mut plan = TemplatePlan {
        templates: Vec::new(),
        recreate: None,
        pending: Vec::new(),
        problems: Vec::new(),
    };
    for (i, zone) in zones.iter().enumerate() {
        let template = match zone {
            ZoneState::Absent => wanted.clone(),
            ZoneState::Terminating => {
                plan.pending.push(i);
                wanted.clone()
            }
            ZoneState::Live(None) => {
                // Made without a data template (not by this operator): recreate it like any
                // other template change rather than apply one in place.
                needs_change(&mut plan, i, all_live);
                wanted.clone()
            }
            ZoneState::Live(Some(existing)) => {
                let mut target = wanted.clone();
                match (parse_quantity(&existing.size), parse_quantity(&wanted.size)) {
                    (Some(have), Some(want)) if want < have => {
                        plan.problems.push(Problem::Shrink {
                            from: existing.size.clone(),
                            to: wanted.size.clone(),
                        });
                        target.size = existing.size.clone();
                    }
                    (Some(have), Some(want)) if want == have => target.size = existing.size.clone(),
                    (Some(_), Some(_)) => {}
                    // Not comparable: keep what runs.
                    _ => target.size = existing.size.clone(),
                }
                if target.same_as(existing) {
                    existing.clone()
                } else if needs_change(&mut plan, i, all_live) {
                    target
                } else {
                    existing.clone()
                }
            }
        };
        plan.templates.push(template);
    }
    plan.problems.sort();
    plan.problems.dedup();
    plan
}

/// Zone `i`'s template must change: it is recreated now when it is the first and every zone is
/// there (`true`), else it waits its turn (`false`).
fn needs_change(plan: &mut TemplatePlan, i: usize, all_live: bool) -> bool {
    if all_live && plan.recreate.is_none() {
        plan.recreate = Some(i);
        true
    } else {
        plan.pending.push(i);
        false
    }
}

/// A message for `Reconciling` while zone StatefulSets are recreated for a new claim template:
/// the one deleted now and those waiting their turn (or their deletion to finish).
pub fn recreation_message(cluster: &str, plan: &TemplatePlan) -> Option<String> {
    let name = |i: &usize| names::statefulset(cluster, *i);
    let pending: Vec<String> = plan.pending.iter().map(name).collect();
    let mut parts = Vec::new();
    if let Some(i) = &plan.recreate {
        parts.push(format!(
            "StatefulSet {} deleted (its pods keep running) to be recreated with the new volume \
             claim template",
            name(i)
        ));
    }
    if !pending.is_empty() {
        parts.push(format!(
            "to be recreated in turn for the new volume claim template: {}",
            pending.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The brokers of a zone whose StatefulSet is not there (being recreated), from its pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Orphans {
    /// Brokers the zone has: up to its highest ordinal among the pods (`None`: no pod).
    pub brokers: Option<i32>,
    /// Pods Ready and not terminating.
    pub ready: i32,
}

/// The orphaned brokers of zone `zone` among `pods`: the StatefulSet recreated for them must
/// hold every one (one made with fewer, or none, would delete the others' pods).
pub fn orphaned_brokers(pods: &[BrokerPod], zone: usize) -> Orphans {
    let start = ordinal_start(zone);
    let in_zone = || pods.iter().filter(|p| p.zone == zone);
    Orphans {
        brokers: in_zone().map(|p| p.node_id - start + 1).max(),
        ready: i32::try_from(in_zone().filter(|p| p.ready && !p.terminating).count())
            .unwrap_or(i32::MAX),
    }
}

/// The claims to grow and what cannot be done about the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimPlan {
    /// Claims to patch to `spec.storage.size`.
    pub grow: Vec<String>,
    /// Claims that must keep their size or class.
    pub problems: Vec<Problem>,
}

/// The StorageClasses of the claims in `claims` that `storage` would grow (those to look up).
pub fn classes_to_check(claims: &[PersistentVolumeClaim], storage: &Storage) -> BTreeSet<String> {
    claims
        .iter()
        .filter(|c| grows(c, storage))
        .filter_map(|c| c.spec.as_ref()?.storage_class_name.clone())
        .collect()
}

fn grows(claim: &PersistentVolumeClaim, storage: &Storage) -> bool {
    size_of(claim).is_some_and(|have| {
        matches!((parse_quantity(&have), parse_quantity(&storage.size)), (Some(h), Some(w)) if w > h)
    })
}

/// Plans the claims (`claims`, listed by the cluster's labels): each smaller than
/// `spec.storage.size` grows, unless `expandable` (StorageClass name → its
/// `allowVolumeExpansion`, for the classes that could be read) says its class cannot; a larger
/// one is a refused shrink; one of another class than `spec.storage.storageClass` keeps it.
pub fn plan_claims(
    claims: &[PersistentVolumeClaim],
    storage: &Storage,
    expandable: &BTreeMap<String, bool>,
) -> ClaimPlan {
    let mut plan = ClaimPlan::default();
    for claim in claims {
        let Some(name) = claim.metadata.name.clone() else {
            continue;
        };
        let Some(have) = size_of(claim) else {
            continue;
        };
        let class = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone());
        if let (Some(wanted), Some(class)) = (&storage.storage_class, &class)
            && wanted != class
        {
            plan.problems.push(Problem::ClassKept {
                claim: name.clone(),
                class: class.clone(),
                wanted: wanted.clone(),
            });
        }
        match (parse_quantity(&have), parse_quantity(&storage.size)) {
            (Some(h), Some(w)) if w > h => {
                match class
                    .as_ref()
                    .and_then(|c| expandable.get(c).map(|e| (c, *e)))
                {
                    Some((class, false)) => plan.problems.push(Problem::ExpansionNotSupported {
                        claim: name,
                        reason: format!("StorageClass {class} does not allow volume expansion"),
                    }),
                    _ => plan.grow.push(name),
                }
            }
            (Some(h), Some(w)) if w < h => plan.problems.push(Problem::Shrink {
                from: have,
                to: storage.size.clone(),
            }),
            _ => {}
        }
    }
    plan.grow.sort();
    plan.problems.sort();
    plan.problems.dedup();
    plan
}

/// The problem a refused or failed claim patch is: the API server answers 403 (admission:
/// "only dynamically provisioned pvc can be resized and the storageclass that provisions the
/// pvc must support resize") or 422 (an unbound claim) when the claim cannot grow.
pub fn patch_problem(claim: &str, code: Option<u16>, message: String) -> Problem {
    match code {
        Some(403 | 422) => Problem::ExpansionNotSupported {
            claim: claim.to_owned(),
            reason: message,
        },
        _ => Problem::ResizeFailed {
            claim: claim.to_owned(),
            error: message,
        },
    }
}

/// The `StorageChangeBlocked` condition: True with the first problem's reason and every
/// problem's message, else False (`Resized` naming the claims grown this pass, or
/// `NotBlocked`).
pub fn condition(problems: &[Problem], grown: &[String], storage: &Storage) -> Cond {
    let mut problems = problems.to_vec();
    problems.sort();
    problems.dedup();
    let Some(first) = problems.first() else {
        return if grown.is_empty() {
            Cond::new("StorageChangeBlocked", false, "NotBlocked", "")
        } else {
            Cond::new(
                "StorageChangeBlocked",
                false,
                "Resized",
                format!("claims {} grow to {}", grown.join(", "), storage.size),
            )
        };
    };
    let mut messages = Vec::new();
    let mut kept: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    let mut unexpandable: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &problems {
        match p {
            Problem::Shrink { from, to } => messages.push(format!(
                "storage cannot shrink from {from} to {to}: claims and StatefulSets keep {from}"
            )),
            Problem::ExpansionNotSupported { claim, reason } => {
                unexpandable.entry(reason).or_default().push(claim);
            }
            Problem::ResizeFailed { claim, error } => {
                messages.push(format!("cannot grow claim {claim}: {error}"));
            }
            Problem::ClassKept {
                claim,
                class,
                wanted,
            } => kept.entry((class, wanted)).or_default().push(claim),
        }
    }
    for (reason, claims) in unexpandable {
        messages.push(format!(
            "claims {} cannot grow to {}: {reason}",
            claims.join(", "),
            storage.size
        ));
    }
    for ((class, wanted), claims) in kept {
        messages.push(format!(
            "existing claims {} keep StorageClass {class} (a claim's class cannot change); new \
             brokers get {wanted}",
            claims.join(", ")
        ));
    }
    Cond::new(
        "StorageChangeBlocked",
        true,
        first.reason(),
        messages.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn storage(size: &str, class: Option<&str>) -> Storage {
        Storage {
            size: size.into(),
            storage_class: class.map(Into::into),
            delete_claim: false,
        }
    }

    fn live(size: &str, class: Option<&str>) -> ZoneState {
        ZoneState::Live(Some(ClaimTemplate {
            size: size.into(),
            class: class.map(Into::into),
        }))
    }

    fn claim(name: &str, size: &str, class: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(Into::into),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }
    }

    #[test]
    fn unchanged_templates_are_applied_as_they_are() {
        let plan = plan_templates(
            &[live("10Gi", None), live("10240Mi", None), ZoneState::Absent],
            &storage("10Gi", None),
        );
        assert_eq!(plan.recreate, None);
        assert!(plan.pending.is_empty() && plan.problems.is_empty());
        // The equal quantity is kept as written: nothing for the API server to compare.
        assert_eq!(plan.templates[1].size, "10240Mi");
        assert_eq!(plan.templates[2].size, "10Gi");
    }

    #[test]
    fn a_grown_size_recreates_one_zone_at_a_time() {
        let zones = [live("10Gi", None), live("10Gi", None), live("10Gi", None)];
        let plan = plan_templates(&zones, &storage("20Gi", None));
        assert_eq!(plan.recreate, Some(0));
        assert_eq!(plan.pending, [1, 2]);
        assert_eq!(plan.templates[0].size, "20Gi");
        // The others keep their template until their turn: nothing refused by the server.
        assert_eq!(plan.templates[1].size, "10Gi");
        // Next pass: zone 0 was recreated; zone 1's turn.
        let zones = [live("20Gi", None), live("10Gi", None), live("10Gi", None)];
        let plan = plan_templates(&zones, &storage("20Gi", None));
        assert_eq!(plan.recreate, Some(1));
        // Zone 0 being deleted or not yet recreated: nobody else goes meanwhile.
        for gone in [ZoneState::Terminating, ZoneState::Absent] {
            let zones = [gone.clone(), live("10Gi", None), live("10Gi", None)];
            let plan = plan_templates(&zones, &storage("20Gi", None));
            assert_eq!(plan.recreate, None, "{gone:?}");
            assert_eq!(plan.templates[0].size, "20Gi");
            assert_eq!(plan.templates[1].size, "10Gi");
        }
    }

    #[test]
    fn a_new_storage_class_recreates_and_a_smaller_size_is_refused() {
        let plan = plan_templates(
            &[live("10Gi", Some("slow"))],
            &storage("10Gi", Some("fast")),
        );
        assert_eq!(plan.recreate, Some(0));
        assert_eq!(plan.templates[0].class.as_deref(), Some("fast"));

        let plan = plan_templates(
            &[live("10Gi", None), live("10Gi", None)],
            &storage("5Gi", None),
        );
        assert_eq!(plan.recreate, None);
        assert_eq!(
            plan.templates[0].size, "10Gi",
            "the shrink is never applied"
        );
        assert_eq!(
            plan.problems,
            [Problem::Shrink {
                from: "10Gi".into(),
                to: "5Gi".into()
            }]
        );
        // A shrink with a class change: the class still changes, at the size in use.
        let plan = plan_templates(&[live("10Gi", Some("a"))], &storage("5Gi", Some("b")));
        assert_eq!(plan.recreate, Some(0));
        assert_eq!(plan.templates[0].size, "10Gi");
    }

    #[test]
    fn claims_grow_unless_their_class_cannot_expand() {
        let claims = [
            claim("data-kafka-z0-0", "10Gi", Some("fast")),
            claim("data-kafka-z1-1000", "10Gi", Some("fixed")),
            claim("data-kafka-z2-2000", "10Gi", None),
            claim("data-kafka-z2-2001", "20Gi", Some("fast")),
        ];
        let wanted = storage("20Gi", None);
        assert_eq!(
            classes_to_check(&claims, &wanted),
            BTreeSet::from(["fast".to_owned(), "fixed".to_owned()])
        );
        let expandable = BTreeMap::from([("fast".to_owned(), true), ("fixed".to_owned(), false)]);
        let plan = plan_claims(&claims, &wanted, &expandable);
        assert_eq!(plan.grow, ["data-kafka-z0-0", "data-kafka-z2-2000"]);
        assert_eq!(
            plan.problems,
            [Problem::ExpansionNotSupported {
                claim: "data-kafka-z1-1000".into(),
                reason: "StorageClass fixed does not allow volume expansion".into()
            }]
        );
        let cond = condition(&plan.problems, &plan.grow, &wanted);
        assert!(cond.status);
        assert_eq!(cond.reason, "ExpansionNotSupported");
        assert_eq!(
            cond.message,
            "claims data-kafka-z1-1000 cannot grow to 20Gi: StorageClass fixed does not allow \
             volume expansion"
        );
    }

    #[test]
    fn shrinks_and_class_changes_are_reported_not_applied() {
        let claims = [
            claim("data-kafka-z0-0", "10Gi", Some("slow")),
            claim("data-kafka-z1-1000", "10Gi", Some("slow")),
        ];
        let wanted = storage("5Gi", Some("fast"));
        let plan = plan_claims(&claims, &wanted, &BTreeMap::new());
        assert!(plan.grow.is_empty());
        let cond = condition(&plan.problems, &plan.grow, &wanted);
        assert_eq!(cond.reason, "StorageShrinkRefused");
        assert_eq!(
            cond.message,
            "storage cannot shrink from 10Gi to 5Gi: claims and StatefulSets keep 10Gi; existing \
             claims data-kafka-z0-0, data-kafka-z1-1000 keep StorageClass slow (a claim's class \
             cannot change); new brokers get fast"
        );
        // The class alone.
        let wanted = storage("10Gi", Some("fast"));
        let plan = plan_claims(&claims, &wanted, &BTreeMap::new());
        assert_eq!(
            condition(&plan.problems, &plan.grow, &wanted).reason,
            "StorageClassKept"
        );
    }

    fn pod(zone: usize, node_id: i32, ready: bool) -> BrokerPod {
        BrokerPod {
            name: names::pod("kafka", zone, node_id),
            node_id,
            zone,
            ready,
            terminating: false,
            revision: None,
        }
    }

    #[test]
    fn orphaned_pods_count_up_to_the_highest_ordinal() {
        let pods = [
            pod(0, 0, true),
            pod(1, 1000, true),
            pod(1, 1002, false),
            pod(2, 2000, true),
        ];
        assert_eq!(
            orphaned_brokers(&pods, 1),
            Orphans {
                brokers: Some(3),
                ready: 1
            }
        );
        assert_eq!(orphaned_brokers(&pods, 3), Orphans::default());
        let plan = plan_templates(
            &[
                live("10Gi", None),
                ZoneState::Terminating,
                live("10Gi", None),
            ],
            &storage("20Gi", None),
        );
        assert_eq!(
            recreation_message("kafka", &plan).as_deref(),
            Some(
                "to be recreated in turn for the new volume claim template: kafka-z0, kafka-z1, \
                 kafka-z2"
            )
        );
    }

    #[test]
    fn refused_patches_and_quiet_passes() {
        assert!(matches!(
            patch_problem("c", Some(403), "forbidden".into()),
            Problem::ExpansionNotSupported { .. }
        ));
        assert!(matches!(
            patch_problem("c", Some(500), "boom".into()),
            Problem::ResizeFailed { .. }
        ));
        let wanted = storage("20Gi", None);
        let quiet = condition(&[], &[], &wanted);
        assert_eq!((quiet.status, quiet.reason), (false, "NotBlocked"));
        let grown = condition(&[], &["data-kafka-z0-0".into()], &wanted);
        assert_eq!(grown.reason, "Resized");
        assert_eq!(grown.message, "claims data-kafka-z0-0 grow to 20Gi");
    }
}
