//! The admin client of a Cluster and what its answers say about reachability: every admin call
//! of a pass goes into the `AdminReach` that `Ready` needs (serving means the operator's own
//! calls are answered), whichever step made it.

use crate::admin::{AdminError, TlsConfig};
use crate::cluster::identity::{ClusterRef, admin_bootstrap};
use crate::context::{AdminFactory, Context};

/// The admin client of Cluster `c` (its replication listener, over TLS with `tls`).
pub(crate) fn admin_of<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
    tls: Option<&TlsConfig>,
) -> F::Admin {
    ctx.admins.admin(&admin_bootstrap(c.name, c.namespace), tls)
}

/// The result of an admin call as reachability: a Kafka error code is an answer.
pub(crate) fn answered<T>(result: &Result<T, AdminError>) -> Result<(), &AdminError> {
    match result {
        Ok(_) | Err(AdminError::Kafka { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
