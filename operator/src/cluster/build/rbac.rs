//! The brokers' ServiceAccount: they need no API access, so it is the whole of their RBAC.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::cluster::identity::ClusterRef;
use crate::names;

/// ServiceAccount of the brokers; they need no API access, so no Role is bound and no token
/// is mounted.
pub fn service_account(c: &ClusterRef) -> ServiceAccount {
    ServiceAccount {
        metadata: c.meta(names::service_account(c.name)),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
