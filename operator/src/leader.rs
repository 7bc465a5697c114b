//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several operator
//! replicas reconciles: acquire when the lease is free or expired, renew while held, report loss
//! so the process can stop, and release it on shutdown so that another replica takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::Api;

use crate::apply::post_params;
use crate::error::Error;

/// How long a lease lasts without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);

/// Whether `me` may take or keep the lease described by `spec` at `now`.
pub fn may_hold(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == me => true,
        Some(_) => {
            let seconds = spec
                .lease_duration_seconds
                .map_or(LEASE_DURATION.as_secs() as i64, i64::from);
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            renewed.is_none_or(|t| t.0 + SignedDuration::from_secs(seconds) < now)
        }
    }
}

/// The lease spec after `me` takes or renews it.
pub fn held_by(previous: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseSpec {
    let same_holder = previous.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: i32::try_from(LEASE_DURATION.as_secs()).ok(),
        acquire_time: if same_holder {
            previous.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// The lease spec after its holder lets it go: no holder and a one-second duration (as
/// client-go's `ReleaseOnCancel` writes it), so any candidate may take it at once, whichever of
/// the two fields it checks; the transition count is kept.
pub fn released(previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: previous.and_then(|s| s.lease_transitions),
        ..LeaseSpec::default()
    }
}

/// A Lease-based elector.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
}

impl Elector {
    /// Elects on Lease `name` in `namespace` as `me` (the pod name).
    pub fn new(client: Client, namespace: &str, name: &str, me: &str) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            me: me.to_owned(),
        }
    }

    /// One attempt to take or renew the lease; `Ok(true)` when held afterwards. A write that
    /// loses a race (409) means someone else holds it.
    pub async fn try_hold(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.name).await?;
        let spec = existing.as_ref().and_then(|l| l.spec.as_ref());
        if !may_hold(spec, &self.me, now) {
            return Ok(false);
        }
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: existing
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(held_by(spec, &self.me, now)),
        };
        let result = if existing.is_some() {
            self.api.replace(&self.name, &post_params(), &lease).await
        } else {
            self.api.create(&post_params(), &lease).await
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Lets the lease go on shutdown, only while `me` still holds it (the replace carries the
    /// read resourceVersion, so a takeover in between wins). `Ok(true)` when released.
    pub async fn release(&self) -> Result<bool, Error> {
        let Some(existing) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = existing.spec.as_ref();
        if spec.and_then(|s| s.holder_identity.as_deref()) != Some(self.me.as_str()) {
            return Ok(false);
        }
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: existing.metadata.resource_version.clone(),
                ..ObjectMeta::default()
            },
            spec: Some(released(spec, Timestamp::now())),
        };
        match self.api.replace(&self.name, &post_params(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("time")
    }

    #[test]
    fn free_own_or_expired_leases_may_be_held() {
        assert!(may_hold(None, "a", t(100)));
        let held = held_by(None, "b", t(100));
        assert!(!may_hold(Some(&held), "a", t(110)));
        assert!(may_hold(Some(&held), "b", t(110)));
        assert!(may_hold(Some(&held), "a", t(116)));
    }

    #[test]
    fn renewals_keep_acquire_time_and_takeovers_count_transitions() {
        let first = held_by(None, "a", t(100));
        assert_eq!(first.lease_transitions, Some(1));
        let renewed = held_by(Some(&first), "a", t(105));
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(t(105))));
        assert_eq!(renewed.lease_transitions, Some(1));
        let taken = held_by(Some(&renewed), "b", t(130));
        assert_eq!(taken.lease_transitions, Some(2));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(130))));
    }

    #[test]
    fn a_released_lease_is_free_at_once_for_anyone() {
        let held = held_by(None, "a", t(100));
        let free = released(Some(&held), t(101));
        assert_eq!(free.holder_identity, None);
        assert_eq!(free.lease_transitions, held.lease_transitions);
        // Another candidate may take it immediately, not only after LEASE_DURATION.
        assert!(may_hold(Some(&free), "b", t(101)));
        // A candidate that ignores an empty holder still sees it expired within a second.
        let named = LeaseSpec {
            holder_identity: Some("a".into()),
            ..free.clone()
        };
        assert!(may_hold(Some(&named), "b", t(103)));
        let taken = held_by(Some(&free), "b", t(101));
        assert_eq!(taken.lease_transitions, Some(2));
    }
}
