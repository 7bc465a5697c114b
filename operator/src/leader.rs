//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several operator
//! replicas reconciles: acquire when the lease is free or expired, renew while held, and report
//! loss so the process can stop.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

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

/// A Lease-based elector.
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
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
        } else {
            self.api.create(&PostParams::default(), &lease).await
        };
        match result {
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
}
