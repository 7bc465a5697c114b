//! The certificate steps of a Cluster reconcile: the cluster CA (created once, never replaced),
//! the operator's client certificate and the brokers' certificates, (re)issued as `tls`
//! decides. Each reads the Secret it rewrites right before writing it, since what is stored
//! there (a CA, a certificate's names and expiry) is the input of the decision.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::admin::{self, TlsConfig};
use crate::apply::{apply, post_params};
use crate::cluster::build;
use crate::cluster::certs::Ca;
use crate::cluster::identity::ClusterRef;
use crate::cluster::{certs, quorum, tls};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::names;

/// The cluster CA and the admin client's TLS settings (its client certificate, trusting only
/// the cluster CA), when the brokers replicate over mutual TLS; none for plaintext replication.
#[derive(Default)]
pub struct Credentials {
    /// The cluster CA.
    pub ca: Option<Ca>,
    /// The admin client's TLS settings.
    pub admin_tls: Option<TlsConfig>,
}

/// Ensures the CA and the operator's client certificate of Cluster `c` when its brokers
/// replicate over mutual TLS: the operator needs them before it talks to the brokers.
pub async fn ensure_credentials<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
) -> Result<Credentials, Error> {
    if !c.replication.replication_tls() {
        return Ok(Credentials::default());
    }
    let ca = ensure_ca(c, ctx).await?;
    let admin_tls = ensure_operator_certificate(c, &ca, ctx).await?;
    Ok(Credentials {
        ca: Some(ca),
        admin_tls: Some(admin_tls),
    })
}

/// The cluster CA: creates the CA Secret when missing (an existing one is only read) and
/// applies the CA certificate Secret for clients.
pub(crate) async fn ensure_ca<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
) -> Result<certs::Ca, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let now = SystemTime::now();
    let ca_name = names::cluster_ca(c.name);
    let ca = match api.get_opt(&ca_name).await? {
        Some(secret) => certs::Ca {
            cert_pem: secret_text(&secret, &ca_name, certs::CA_CERT_KEY)?,
            key_pem: secret_text(&secret, &ca_name, certs::CA_KEY_KEY)?,
        },
        None => {
            let ca = certs::generate_ca(c.name, c.namespace, now)?;
            // Create, never apply: should another writer have made one meanwhile, this fails
            // (and the next reconcile reads theirs) rather than replacing a CA in use.
            api.create(
                &post_params(),
                &build::certificates::cluster_ca_secret(c, &ca),
            )
            .await?;
            tracing::info!(cluster = c.name, secret = ca_name, "created the cluster CA");
            ca
        }
    };
    apply(
        &ctx.client,
        &build::certificates::cluster_ca_cert_secret(c, &ca),
    )
    .await?;
    Ok(ca)
}

/// The clients CA of Cluster `c` (it signs `tls` Users' certificates; `tls` listeners trust
/// it): creates the clients CA Secret when missing (an existing one is only read) and applies
/// the Secret with its certificate alone, which brokers mount.
pub async fn ensure_clients_ca<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ctx: &Context<F>,
) -> Result<certs::Ca, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let ca_name = names::clients_ca(c.name);
    let ca = match api.get_opt(&ca_name).await? {
        Some(secret) => certs::Ca {
            cert_pem: secret_text(&secret, &ca_name, certs::CA_CERT_KEY)?,
            key_pem: secret_text(&secret, &ca_name, certs::CA_KEY_KEY)?,
        },
        None => {
            let ca = certs::generate_clients_ca(c.name, c.namespace, SystemTime::now())?;
            // Create, never apply, as for the cluster CA: a CA in use is never replaced.
            api.create(
                &post_params(),
                &build::certificates::clients_ca_secret(c, &ca),
            )
            .await?;
            tracing::info!(cluster = c.name, secret = ca_name, "created the clients CA");
            ca
        }
    };
    apply(
        &ctx.client,
        &build::certificates::clients_ca_cert_secret(c, &ca),
    )
    .await?;
    Ok(ca)
}

/// The operator's client certificate for the replication listener of `c`, kept in the
/// operator certificates Secret: issued when missing, unreadable, signed by another CA or
/// expiring (the rules of the brokers' certificates, with no names). Returns the admin
/// client's TLS settings: that certificate, trusting only the cluster CA.
pub(crate) async fn ensure_operator_certificate<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ca: &certs::Ca,
    ctx: &Context<F>,
) -> Result<TlsConfig, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let now = SystemTime::now();
    let signer = certs::Signer::new(ca)?;
    let name = names::operator_certs(c.name);
    let stored = api
        .get_opt(&name)
        .await?
        .and_then(|s| secret_text(&s, &name, certs::OPERATOR_KEYSTORE_KEY).ok());
    let existing = stored.as_deref().map(|pem| signer.inspect(pem));
    let keystore =
        match tls::reissue_reason(existing.as_ref(), &tls::Sans::new(), certs::unix_secs(now)) {
            None => stored.unwrap_or_default(),
            Some(reason) => {
                tracing::info!(
                    cluster = c.name,
                    ?reason,
                    "issuing the operator's client certificate"
                );
                let keystore = signer.issue_operator(now)?;
                apply(
                    &ctx.client,
                    &build::certificates::operator_certs_secret(c, ca, keystore.clone()),
                )
                .await?;
                keystore
            }
        };
    Ok(admin::tls_config(&ca.cert_pem, &keystore)?)
}

/// The brokers' certificates (brokers `node_ids`, the StatefulSets' as applied): issues the
/// certificates [`tls::plan`] asks for into the broker certificates Secret, with the CA
/// certificate as the brokers' truststore. Returns each zone's certificate generation for the
/// pod templates.
pub(crate) async fn ensure_broker_certificates<F: AdminFactory>(
    c: &ClusterRef<'_>,
    ca: &certs::Ca,
    node_ids: &[i32],
    known: &tls::KnownAddresses<'_>,
    ctx: &Context<F>,
) -> Result<BTreeMap<usize, u64>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), c.namespace);
    let now = SystemTime::now();
    let signer = certs::Signer::new(ca)?;
    let stored = api.get_opt(&names::broker_certs(c.name)).await?;
    let previous: BTreeMap<String, String> = stored
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    let existing = node_ids
        .iter()
        .filter_map(|id| {
            let pod = names::pod(c.name, quorum::zone_of(*id), *id);
            let inspected = previous
                .get(&tls::keystore_key(&pod))
                .map(|pem| signer.inspect(pem))?;
            Some((pod, inspected))
        })
        .collect();
    let desired = node_ids
        .iter()
        .map(|id| (*id, tls::broker_sans(c, *id, known)))
        .collect();
    let plan = tls::plan(
        c.name,
        &desired,
        &existing,
        tls::has_nodeport_tls(c.spec),
        certs::unix_secs(now),
    );
    let mut keystores = BTreeMap::new();
    for id in node_ids {
        let pod = names::pod(c.name, quorum::zone_of(*id), *id);
        let key = tls::keystore_key(&pod);
        let pem = match plan.issue.get(&pod) {
            Some((sans, reason)) => {
                tracing::info!(
                    cluster = c.name,
                    pod,
                    ?reason,
                    "issuing a broker certificate"
                );
                signer.issue(&certs::broker_common_name(c.name), sans, now)?
            }
            None => previous.get(&key).cloned().unwrap_or_default(),
        };
        keystores.insert(key, pem);
    }
    let annotations = stored
        .as_ref()
        .and_then(|s| s.metadata.annotations.clone())
        .unwrap_or_default();
    let generations = tls::next_generations(&tls::generations(&annotations), &plan.replaced_zones);
    apply(
        &ctx.client,
        &build::certificates::broker_certs_secret(c, ca, keystores, &generations),
    )
    .await?;
    Ok(generations)
}

/// The UTF-8 text under `key` in `secret` (named `name`).
fn secret_text(secret: &Secret, name: &str, key: &str) -> Result<String, Error> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| Error::Secret {
            secret: name.to_owned(),
            problem: format!("has no key {key}"),
        })?;
    String::from_utf8(bytes.0.clone()).map_err(|_| Error::Secret {
        secret: name.to_owned(),
        problem: format!("key {key} is not UTF-8"),
    })
}
