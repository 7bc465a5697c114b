//! Resolves a `ClusterReference` (of a Topic or User) to the bootstrap address the admin
//! client connects to, and to its TLS settings: a Cluster named by `cluster.name` is reached on
//! its replication listener, with the operator's client certificate when it replicates over
//! mutual TLS. [`deletion`] decides what a Topic or User being deleted still owes that cluster.

pub mod deletion;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use strait_crds::ClusterReference;

use crate::admin::{AdminError, TlsConfig, tls_config};
use crate::cluster::certs;
use crate::cluster::identity::admin_bootstrap;
use crate::conditions::Cond;
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::names;

/// The admin client for `reference` in `namespace` at `bootstrap` (see [`bootstrap`]). For a
/// Cluster named by `cluster.name`: TLS with the operator's client certificate and the CA in
/// `<cluster>-operator-certs`, which the Cluster controller writes for every Cluster
/// replicating over mutual TLS before its brokers exist; without that Secret (a Cluster still
/// replicating in plaintext) plaintext, as for `bootstrapServers`.
pub async fn admin<F: AdminFactory>(
    ctx: &Context<F>,
    reference: &ClusterReference,
    namespace: &str,
    bootstrap: &str,
) -> Result<F::Admin, Error> {
    let tls = match &reference.name {
        Some(cluster) => operator_tls(ctx, cluster, namespace).await?,
        None => None,
    };
    Ok(ctx.admins.admin(bootstrap, tls.as_ref()))
}

/// The operator's TLS settings for Cluster `cluster`, `None` when it has no operator
/// certificates Secret.
async fn operator_tls<F: AdminFactory>(
    ctx: &Context<F>,
    cluster: &str,
    namespace: &str,
) -> Result<Option<TlsConfig>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let name = names::operator_certs(cluster);
    let Some(secret) = api.get_opt(&name).await? else {
        return Ok(None);
    };
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .ok_or_else(|| Error::Secret {
                secret: name.clone(),
                problem: format!("has no UTF-8 key {key}"),
            })
    };
    let ca = text(certs::CA_CERT_KEY)?;
    let keystore = text(certs::OPERATOR_KEYSTORE_KEY)?;
    Ok(Some(tls_config(&ca, &keystore)?))
}

/// The bootstrap address, or why there is none. SASL credentials for external clusters are not
/// yet supported by the admin client, which is reported rather than ignored.
pub fn bootstrap(reference: &ClusterReference, namespace: &str) -> Result<String, String> {
    if reference.authentication.is_some() {
        return Err("cluster.authentication is not supported yet: the operator's admin client speaks plaintext only".to_owned());
    }
    match (&reference.name, &reference.bootstrap_servers) {
        (Some(name), None) => Ok(admin_bootstrap(name, namespace)),
        (None, Some(servers)) => Ok(servers.clone()),
        _ => Err("set exactly one of cluster.name and cluster.bootstrapServers".to_owned()),
    }
}

/// Kafka's `INVALID_CONFIG`.
const INVALID_CONFIG: i16 = 40;

/// `Ready=False` and `Reconciling=True` for a pass that failed with `error` talking to the
/// cluster (it is retried with backoff): the reason names the kind of failure, the message is
/// the cluster's error.
pub fn failed(error: &Error) -> [Cond; 2] {
    let reason = match error {
        Error::Admin(AdminError::Connect { .. }) => "ClusterUnreachable",
        // The broker refused a config (Kafka's rules, e.g. tiered-storage retention); its
        // reason is in the message.
        Error::Admin(AdminError::Kafka {
            code: INVALID_CONFIG,
            ..
        }) => "InvalidConfig",
        Error::Admin(_) => "AdminCallFailed",
        Error::Secret { .. } => "SecretInvalid",
        Error::Kube(_) => "KubernetesApiFailed",
        _ => "ReconcileFailed",
    };
    [
        Cond::new("Ready", false, reason, error.to_string()),
        Cond::new(
            "Reconciling",
            true,
            "RetryingAfterError",
            format!("retrying after: {error}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_their_kind_and_keep_the_message() {
        let unreachable = Error::Admin(AdminError::Connect {
            address: "kafka-bootstrap.ns.svc:9091".into(),
            reason: "connection refused".into(),
        });
        let [ready, reconciling] = failed(&unreachable);
        assert_eq!((ready.status, ready.reason), (false, "ClusterUnreachable"));
        assert!(
            ready.message.contains("connection refused"),
            "{}",
            ready.message
        );
        assert_eq!(
            (reconciling.kind, reconciling.status),
            ("Reconciling", true)
        );
        let closed = Error::Admin(AdminError::Io("peer closed connection".into()));
        assert_eq!(failed(&closed)[0].reason, "AdminCallFailed");
        let refused = Error::Admin(AdminError::Kafka {
            operation: "CreateTopics".into(),
            resource: "orders".into(),
            code: 40,
            message: Some(
                "Invalid value 2000 for configuration local.retention.ms: Value must not be \
                 more than retention.ms property value: 1000"
                    .into(),
            ),
        });
        let [ready, _] = failed(&refused);
        assert_eq!(ready.reason, "InvalidConfig");
        assert!(
            ready
                .message
                .contains("Value must not be more than retention.ms"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn named_clusters_use_their_bootstrap_service() {
        let r = ClusterReference {
            name: Some("kafka".into()),
            ..ClusterReference::default()
        };
        assert_eq!(
            bootstrap(&r, "ns").as_deref(),
            Ok("kafka-bootstrap.ns.svc:9091")
        );
        let r = ClusterReference {
            bootstrap_servers: Some("a:9092,b:9092".into()),
            ..ClusterReference::default()
        };
        assert_eq!(bootstrap(&r, "ns").as_deref(), Ok("a:9092,b:9092"));
        assert!(bootstrap(&ClusterReference::default(), "ns").is_err());
    }
}
