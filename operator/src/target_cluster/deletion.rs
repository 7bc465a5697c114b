//! What a Topic or User being deleted still owes its cluster: a pure decision
//! ([`deletion_decision`]) from the deletion policy and what became of the cluster, and the step
//! that carries it out ([`finish`]). The finalizer goes at once when there is nothing left to
//! clean, after the cleanup otherwise, and at the latest [`CLEANUP_WAIT`] after the deletion
//! while the cluster cannot be reached, so that deleting a namespace never hangs for good.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use strait_crds::{Cluster, ClusterReference, DeletionPolicy};

use crate::apply::{event, patch_status};
use crate::conditions::{Cond, merge};
use crate::context::{AdminFactory, Context};
use crate::error::Error;

/// How long after its deletionTimestamp a Topic or User retries the cleanup of a cluster that
/// does not answer before its finalizer is released anyway, leaving what it made behind.
pub const CLEANUP_WAIT: Duration = Duration::from_secs(300);

/// What became of the cluster a reference names, as far as a deletion is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// The reference names no cluster (an invalid spec): nothing was made through it.
    Unresolved,
    /// The named Cluster resource does not exist (deleted, or never existed).
    Gone,
    /// The named Cluster resource is being deleted: its brokers and their data go with it.
    Deleting,
    /// The named Cluster exists, or the reference is `bootstrapServers`: an external cluster,
    /// whose fate the operator cannot see.
    Present,
}

/// Why a finalizer is released without cleaning up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// `deletionPolicy: retain`.
    Retained,
    /// The cluster reference never resolved.
    Unresolved,
    /// The Cluster resource is gone.
    ClusterGone,
    /// The Cluster resource is being deleted.
    ClusterDeleting,
}

impl Release {
    /// The Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Release::Retained => "Retained",
            Release::Unresolved => "NothingToClean",
            Release::ClusterGone => "ClusterGone",
            Release::ClusterDeleting => "ClusterDeleting",
        }
    }

    /// The Event message about `what` (e.g. `topic orders`).
    pub fn message(self, what: &str) -> String {
        match self {
            Release::Retained => format!("deletionPolicy retain: {what} is left in the cluster"),
            Release::Unresolved => {
                format!("the cluster reference never resolved: nothing to remove for {what}")
            }
            Release::ClusterGone => format!("the Cluster is gone, and {what} with it"),
            Release::ClusterDeleting => {
                format!("the Cluster is being deleted, and {what} with it")
            }
        }
    }
}

/// What to do for a Topic or User being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Release the finalizer now, without an admin call.
    Release(Release),
    /// Clean up; should that fail, keep the finalizer and retry until `until`.
    Clean {
        /// When the wait for the cluster ends.
        until: Timestamp,
    },
    /// Clean up once more; should that fail, release the finalizer anyway: the wait is over.
    LastAttempt,
}

/// The decision for an object deleted at `deleted_at` whose cluster is in state `cluster`.
pub fn deletion_decision(
    policy: DeletionPolicy,
    cluster: ClusterState,
    deleted_at: Option<Timestamp>,
    now: Timestamp,
) -> Deletion {
    if policy == DeletionPolicy::Retain {
        return Deletion::Release(Release::Retained);
    }
    match cluster {
        ClusterState::Unresolved => Deletion::Release(Release::Unresolved),
        ClusterState::Gone => Deletion::Release(Release::ClusterGone),
        ClusterState::Deleting => Deletion::Release(Release::ClusterDeleting),
        ClusterState::Present => {
            // Objects being cleaned up always carry a deletionTimestamp; `now` only guards.
            let until = deleted_at
                .unwrap_or(now)
                .checked_add(CLEANUP_WAIT)
                .unwrap_or(Timestamp::MAX);
            if now < until {
                Deletion::Clean { until }
            } else {
                Deletion::LastAttempt
            }
        }
    }
}

/// The state of the cluster a resolved `reference` names from `namespace`.
pub async fn observe<F: AdminFactory>(
    ctx: &Context<F>,
    reference: &ClusterReference,
    namespace: &str,
) -> Result<ClusterState, Error> {
    let Some(name) = &reference.name else {
        return Ok(ClusterState::Present);
    };
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(match clusters.get_opt(name).await? {
        None => ClusterState::Gone,
        Some(c) if c.metadata.deletion_timestamp.is_some() => ClusterState::Deleting,
        Some(_) => ClusterState::Present,
    })
}

/// A Topic or User being deleted.
pub struct Deleting<'a, K> {
    /// The object.
    pub obj: &'a K,
    /// Its cluster.
    pub reference: &'a ClusterReference,
    /// Its `deletionPolicy`.
    pub policy: DeletionPolicy,
    /// Its current conditions (transition times are kept).
    pub conditions: &'a [Condition],
    /// What the cleanup removes, for conditions and Events (e.g. `topic orders`).
    pub what: String,
}

/// Carries out [`deletion_decision`] for `deleting`, with `clean` removing what it made from
/// the cluster through an admin client. `Ok` releases the finalizer; while the cluster fails
/// within the wait, the status says until when (`WaitingForCluster`) and the error is returned,
/// so the finalizer stays and the cleanup is retried.
pub async fn finish<K, F, C, Fut>(
    ctx: &Context<F>,
    deleting: Deleting<'_, K>,
    clean: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    F: AdminFactory,
    C: FnOnce(F::Admin) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let Deleting {
        obj,
        reference,
        policy,
        conditions,
        what,
    } = deleting;
    let namespace = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let resolved = super::bootstrap(reference, &namespace);
    let cluster = match &resolved {
        Ok(_) => observe(ctx, reference, &namespace).await?,
        Err(_) => ClusterState::Unresolved,
    };
    let deleted_at = obj.meta().deletion_timestamp.as_ref().map(|t| t.0);
    let until = match deletion_decision(policy, cluster, deleted_at, Timestamp::now()) {
        Deletion::Release(why) => {
            event(&ctx.recorder, obj, false, why.reason(), why.message(&what)).await;
            return Ok(Action::await_change());
        }
        Deletion::Clean { until } => Some(until),
        Deletion::LastAttempt => None,
    };
    // deletion_decision releases every reference that never resolved.
    let Ok(bootstrap) = resolved else {
        return Ok(Action::await_change());
    };
    let attempt =
        async { clean(super::admin(ctx, reference, &namespace, &bootstrap).await?).await };
    let error = match attempt.await {
        Ok(()) => {
            let note = format!("removed {what} from the cluster");
            event(&ctx.recorder, obj, false, "Deleted", note).await;
            return Ok(Action::await_change());
        }
        Err(e) => e,
    };
    let Some(until) = until else {
        let note = format!(
            "{what} is left in the cluster: its removal still failed {} minutes after the deletion ({error})",
            CLEANUP_WAIT.as_secs() / 60
        );
        event(&ctx.recorder, obj, true, "LeftInCluster", note).await;
        return Ok(Action::await_change());
    };
    let message = format!(
        "cannot remove {what}: {error}; retrying until {until}, then the finalizer is released and {what} is left in the cluster"
    );
    let generation = obj.meta().generation;
    let status = serde_json::json!({
        "observedGeneration": generation,
        "conditions": merge(
            conditions,
            &[
                Cond::new("Ready", false, "WaitingForCluster", message.clone()),
                Cond::new("Reconciling", true, "Deleting", format!("removing {what}")),
            ],
            generation,
            Timestamp::now(),
        ),
    });
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    patch_status(&api, &obj.name_any(), status).await?;
    event(&ctx.recorder, obj, true, "WaitingForCluster", message).await;
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("timestamp")
    }

    #[test]
    fn nothing_to_clean_releases_at_once() {
        let delete = DeletionPolicy::Delete;
        for (cluster, why) in [
            (ClusterState::Unresolved, Release::Unresolved),
            (ClusterState::Gone, Release::ClusterGone),
            (ClusterState::Deleting, Release::ClusterDeleting),
        ] {
            assert_eq!(
                deletion_decision(delete, cluster, Some(at(0)), at(1)),
                Deletion::Release(why)
            );
        }
        // Retained: no admin call even with the cluster there.
        assert_eq!(
            deletion_decision(
                DeletionPolicy::Retain,
                ClusterState::Present,
                Some(at(0)),
                at(1)
            ),
            Deletion::Release(Release::Retained)
        );
    }

    #[test]
    fn a_present_cluster_is_cleaned_within_a_bounded_wait() {
        let wait = i64::try_from(CLEANUP_WAIT.as_secs()).expect("wait");
        let decide = |now| {
            deletion_decision(
                DeletionPolicy::Delete,
                ClusterState::Present,
                Some(at(0)),
                now,
            )
        };
        assert_eq!(decide(at(1)), Deletion::Clean { until: at(wait) });
        assert_eq!(decide(at(wait - 1)), Deletion::Clean { until: at(wait) });
        assert_eq!(decide(at(wait)), Deletion::LastAttempt);
        assert_eq!(decide(at(wait * 10)), Deletion::LastAttempt);
    }

    #[test]
    fn release_messages_say_what_stays_or_goes() {
        assert!(
            Release::Retained
                .message("topic orders")
                .contains("topic orders is left in the cluster")
        );
        assert_eq!(Release::ClusterGone.reason(), "ClusterGone");
    }
}
