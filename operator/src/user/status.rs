//! The User's status as a pure function of the previous status and how the pass went: the
//! conditions `Ready` and `Reconciling`, `observedGeneration`, the user and Secret names.

use k8s_openapi::jiff::Timestamp;
use kafka_protocol::messages::ApiKey;
use strait_crds::UserStatus;

use crate::conditions::{Cond, merge};
use crate::error::Error;
use crate::target_cluster;

/// How one pass went.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    /// The spec names no usable cluster: why.
    Invalid(&'a str),
    /// Credentials, ACLs and quotas match the spec; the Secret holding the password, if any.
    Synced {
        /// Name of the password Secret.
        secret: Option<&'a str>,
    },
    /// The cluster lacks these APIs (at the versions the operator sends); nothing was called.
    Unsupported(&'a [(ApiKey, i16)]),
    /// The User has ACLs but the cluster enforces none (why); nothing was changed.
    AuthorizationNotEnabled(&'a str),
    /// Talking to the cluster failed; the pass is retried.
    Failed(&'a Error),
}

/// Why a cluster lacking `missing` cannot hold the User (condition and Event message).
pub fn unsupported(missing: &[(ApiKey, i16)]) -> String {
    let apis = missing
        .iter()
        .map(|(key, version)| format!("{key:?} v{version}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "the cluster does not serve the Kafka APIs this User needs ({apis}); nothing was changed in the cluster, and its ApiVersions are checked again every 5 minutes"
    )
}

/// The status to write after `pass` over user `name`.
pub fn status(
    previous: &UserStatus,
    generation: Option<i64>,
    name: &str,
    pass: Pass<'_>,
    now: Timestamp,
) -> UserStatus {
    let conditions: Vec<Cond> = match pass {
        Pass::Invalid(problem) => vec![
            Cond::new("Ready", false, "InvalidSpec", problem),
            Cond::new(
                "Reconciling",
                false,
                "InvalidSpec",
                "waiting for a spec change",
            ),
        ],
        Pass::Unsupported(missing) => vec![
            Cond::new("Ready", false, "UnsupportedByCluster", unsupported(missing)),
            Cond::new(
                "Reconciling",
                false,
                "UnsupportedByCluster",
                "waiting for the cluster to serve the APIs",
            ),
        ],
        Pass::AuthorizationNotEnabled(why) => vec![
            Cond::new("Ready", false, "AuthorizationNotEnabled", why),
            Cond::new(
                "Reconciling",
                false,
                "AuthorizationNotEnabled",
                "waiting for the cluster to enforce ACLs (checked again every 5 minutes) or \
                 for a spec change",
            ),
        ],
        Pass::Failed(error) => target_cluster::failed(error).into(),
        Pass::Synced { .. } => vec![
            Cond::new(
                "Ready",
                true,
                "UserReady",
                format!("user {name} matches the spec"),
            ),
            Cond::new(
                "Reconciling",
                false,
                "Reconciled",
                format!("user {name} was reconciled"),
            ),
        ],
    };
    let base = UserStatus {
        conditions: merge(&previous.conditions, &conditions, generation, now),
        observed_generation: generation,
        username: Some(name.to_owned()),
        ..previous.clone()
    };
    match pass {
        Pass::Synced { secret } => UserStatus {
            secret: secret.map(str::to_owned),
            ..base
        },
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::AdminError;

    fn t0() -> Timestamp {
        Timestamp::from_second(1_000).expect("t0")
    }

    fn kind<'a>(s: &'a UserStatus, kind: &str) -> (&'a str, &'a str) {
        s.conditions
            .iter()
            .find(|c| c.type_ == kind)
            .map_or(("", ""), |c| (c.status.as_str(), c.reason.as_str()))
    }

    #[test]
    fn a_synced_pass_is_ready_with_its_secret() {
        let s = status(
            &UserStatus::default(),
            Some(2),
            "app",
            Pass::Synced {
                secret: Some("app"),
            },
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("True", "UserReady"));
        assert_eq!(kind(&s, "Reconciling"), ("False", "Reconciled"));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.secret.as_deref(), Some("app"));
    }

    #[test]
    fn missing_apis_are_named() {
        let missing = [
            (ApiKey::AlterUserScramCredentials, 0),
            (ApiKey::CreateAcls, 3),
        ];
        let s = status(
            &UserStatus::default(),
            Some(1),
            "app",
            Pass::Unsupported(&missing),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("False", "UnsupportedByCluster"));
        let message = &s.conditions[0].message;
        assert!(
            message.contains("AlterUserScramCredentials v0, CreateAcls v3"),
            "{message}"
        );
    }

    #[test]
    fn acls_without_authorization_are_not_ready_and_keep_the_secret() {
        let previous = UserStatus {
            secret: Some("app".into()),
            ..UserStatus::default()
        };
        let why = crate::user::plan::authorization_not_enabled(Some("kafka"));
        let s = status(
            &previous,
            Some(2),
            "app",
            Pass::AuthorizationNotEnabled(&why),
            t0(),
        );
        assert_eq!(kind(&s, "Ready"), ("False", "AuthorizationNotEnabled"));
        assert_eq!(
            kind(&s, "Reconciling"),
            ("False", "AuthorizationNotEnabled")
        );
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready");
        assert!(
            ready.is_some_and(|c| c
                .message
                .contains("Cluster kafka has no `spec.authorization`")),
            "{ready:?}"
        );
        assert_eq!(s.secret.as_deref(), Some("app"));
    }

    #[test]
    fn a_failed_pass_keeps_the_secret_and_names_the_failure() {
        let previous = UserStatus {
            secret: Some("app".into()),
            ..UserStatus::default()
        };
        let error = Error::Admin(AdminError::Io("peer closed connection".into()));
        let s = status(&previous, Some(3), "app", Pass::Failed(&error), t0());
        assert_eq!(kind(&s, "Ready"), ("False", "AdminCallFailed"));
        assert_eq!(kind(&s, "Reconciling"), ("True", "RetryingAfterError"));
        assert_eq!(s.secret.as_deref(), Some("app"));
        assert_eq!(s.observed_generation, Some(3));
    }
}
