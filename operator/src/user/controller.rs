//! The User controller: finalizer; a User with ACLs whose cluster enforces none (a Cluster
//! without `spec.authorization`, or a cluster answering the ACL APIs with `SECURITY_DISABLED`)
//! is refused with `AuthorizationNotEnabled`, as Strimzi's User operator refuses one, and
//! nothing is changed; the cluster's ApiVersions (a User whose spec needs APIs the cluster lacks
//! is refused with `UnsupportedByCluster`, and nothing is called); the password Secret
//! (generated, or referenced); the SCRAM credential, ACLs (hand-made changes to the user's
//! bindings are undone) and quotas through the Kafka admin API; status on every pass, also when
//! the cluster fails. Deletion goes through [`deletion::finish`] and removes only what the
//! cluster's APIs could have set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kafka_protocol::messages::ApiKey;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use strait_crds::{Cluster, User};

use crate::admin::{AdminError, KafkaAdmin, SECURITY_DISABLED};
use crate::apply::{apply, event, patch_status};
use crate::cluster::identity::ClusterRef;
use crate::cluster::{certs, issue, tls};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::finalizer::{Event as Finalizer, finalizer};
use crate::names;
use crate::reconcile::instrumented;
use crate::target_cluster::{self, deletion};
use crate::user::plan::{
    TLS_USERNAME_MAX, UserSteps, acl_diff, asks_acls, authorization_not_enabled, desired_acls,
    generate_password, is_scram, is_tls, quota_ops, scram_credential, user_principal, user_steps,
    username,
};
use crate::user::status::{Pass, status, unsupported};

/// Finalizer that removes credentials and ACLs before the resource goes.
pub const FINALIZER: &str = "strait.dev/user";
/// Key of the password in a generated Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of a `tls` User's certificate in its Secret (Strimzi's name).
pub const USER_CERT_KEY: &str = "user.crt";
/// Key of a `tls` User's private key (PKCS#8 PEM) in its Secret (Strimzi's name).
pub const USER_KEY_KEY: &str = "user.key";
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one User.
pub async fn reconcile<F: AdminFactory>(
    user: Arc<User>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let pass = reconcile_pass(user.clone(), &ctx);
    instrumented(user.as_ref(), &ctx, pass).await
}

/// One pass: the finalizer first, then the sync or the cleanup.
async fn reconcile_pass<F: AdminFactory>(
    user: Arc<User>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let namespace = user
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, user, |event| async {
        match event {
            Finalizer::Apply(u) => apply_user(&u, &api, ctx).await,
            Finalizer::Cleanup(u) => cleanup(&u, ctx).await,
        }
    })
    .await
}

async fn password(
    user: &User,
    ctx: &Context<impl AdminFactory>,
    namespace: &str,
) -> Result<(String, String), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let reference = user
        .spec
        .authentication
        .as_ref()
        .and_then(|a| a.password.as_ref())
        .map(|p| p.value_from.secret_key_ref.clone());
    let (secret_name, key) = match &reference {
        Some(r) => (r.name.clone(), r.key.clone()),
        None => (user.name_any(), PASSWORD_KEY.to_owned()),
    };
    let existing = secrets.get_opt(&secret_name).await?;
    let stored = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(&key))
        .map(|b| String::from_utf8(b.0.clone()));
    match (stored, reference) {
        (Some(Ok(p)), _) => Ok((secret_name, p)),
        (Some(Err(_)), _) => Err(Error::Secret {
            secret: secret_name,
            problem: format!("key {key} is not UTF-8"),
        }),
        (None, Some(_)) => Err(Error::Secret {
            secret: secret_name,
            problem: format!("has no key {key}"),
        }),
        (None, None) => {
            let generated = generate_password().map_err(|e| Error::Secret {
                secret: secret_name.clone(),
                problem: e.to_string(),
            })?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name.clone()),
                    namespace: Some(namespace.to_owned()),
                    owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
                    labels: Some(BTreeMap::from([(
                        "strait.dev/user".to_owned(),
                        user.name_any(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([
                    (key, ByteString(generated.clone().into_bytes())),
                    (
                        "sasl.jaas.config".to_owned(),
                        ByteString(jaas(&user.name_any(), &generated).into_bytes()),
                    ),
                ])),
                type_: Some("Opaque".to_owned()),
                ..Secret::default()
            };
            apply(&ctx.client, &secret).await?;
            Ok((secret_name, generated))
        }
    }
}

fn jaas(user: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";"
    )
}

/// The client certificate of `tls` User `user` of Cluster `cluster`, in the Secret named like
/// the user (`user.crt`, `user.key`, `ca.crt`): issued by the Cluster's clients CA (created
/// when missing) when the Secret has none, an unreadable one, one from another CA, or one
/// expiring within [`tls::RENEW_BEFORE_SECS`]; the Secret is owned by the User, so it goes with
/// it. Returns the Secret's name.
async fn certificate<F: AdminFactory>(
    user: &User,
    ctx: &Context<F>,
    namespace: &str,
    cluster: &Cluster,
) -> Result<String, Error> {
    let c = ClusterRef::of(cluster).ok_or(Error::MissingField("Cluster metadata.name"))?;
    let ca = issue::ensure_clients_ca(&c, ctx).await?;
    let signer = certs::Signer::new(&ca)?;
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let stored = secrets.get_opt(&name).await?;
    let text = |key: &str| {
        stored
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let now = std::time::SystemTime::now();
    let current = match (text(USER_KEY_KEY), text(USER_CERT_KEY)) {
        (Some(key), Some(cert)) => Some((key, cert)),
        _ => None,
    };
    let existing = current
        .as_ref()
        .map(|(key, cert)| signer.inspect(&format!("{key}{cert}")));
    let reason = tls::reissue_reason(existing.as_ref(), &tls::Sans::new(), certs::unix_secs(now));
    let (key, cert) = match (reason, current) {
        (None, Some(current)) => {
            if text(certs::CA_CERT_KEY).as_deref() == Some(ca.cert_pem.as_str()) {
                return Ok(name);
            }
            current
        }
        (reason, _) => {
            tracing::info!(
                user = name,
                ?reason,
                "issuing the user's client certificate"
            );
            let issued = signer.issue_user(&name, now)?;
            event(
                &ctx.recorder,
                user,
                false,
                "CertificateIssued",
                format!(
                    "client certificate CN={name} issued by the clients CA of {}",
                    c.name
                ),
            )
            .await;
            issued
        }
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            labels: Some(BTreeMap::from([
                ("strait.dev/user".to_owned(), name.clone()),
                (names::CLUSTER_LABEL.to_owned(), c.name.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (USER_CERT_KEY.to_owned(), ByteString(cert.into_bytes())),
            (USER_KEY_KEY.to_owned(), ByteString(key.into_bytes())),
            (
                certs::CA_CERT_KEY.to_owned(),
                ByteString(ca.cert_pem.clone().into_bytes()),
            ),
        ])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    apply(&ctx.client, &secret).await?;
    Ok(name)
}

/// What a pass that reached the cluster did.
enum Synced {
    /// Everything set; the password Secret, if any.
    Done { secret: Option<String> },
    /// Refused: the cluster lacks these APIs.
    Unsupported(Vec<(ApiKey, i16)>),
    /// Refused: the User has ACLs, the cluster enforces none (why).
    AuthorizationNotEnabled(String),
    /// Refused: the spec cannot be served (why).
    Invalid(String),
}

/// One pass: resolve the cluster, sync the user, write the status whatever happened.
async fn apply_user<F: AdminFactory>(
    user: &User,
    api: &Api<User>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let name = user.name_any();
    let namespace = user
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let previous = user.status.clone().unwrap_or_default();
    let write = |pass| {
        let mut s = status(
            &previous,
            user.metadata.generation,
            &name,
            pass,
            Timestamp::now(),
        );
        // The name the brokers see (`CN=<name>` for a certificate user).
        s.username = Some(username(&name, &user.spec));
        patch_status(api, &name, s)
    };
    let bootstrap = match target_cluster::bootstrap(&user.spec.cluster, &namespace) {
        Ok(b) => b,
        Err(problem) => {
            write(Pass::Invalid(&problem)).await?;
            return Ok(Action::await_change());
        }
    };
    match sync(user, ctx, &namespace, &bootstrap).await {
        Ok(Synced::Done { secret }) => {
            write(Pass::Synced {
                secret: secret.as_deref(),
            })
            .await?;
            Ok(Action::requeue(RESYNC))
        }
        Ok(Synced::Invalid(problem)) => {
            event(&ctx.recorder, user, true, "InvalidSpec", problem.clone()).await;
            write(Pass::Invalid(&problem)).await?;
            Ok(Action::await_change())
        }
        Ok(Synced::AuthorizationNotEnabled(why)) => {
            event(
                &ctx.recorder,
                user,
                true,
                "AuthorizationNotEnabled",
                why.clone(),
            )
            .await;
            write(Pass::AuthorizationNotEnabled(&why)).await?;
            // The Cluster may get `authorization`: looked at again at the next resync.
            Ok(Action::requeue(RESYNC))
        }
        Ok(Synced::Unsupported(missing)) => {
            let note = unsupported(&missing);
            event(&ctx.recorder, user, true, "UnsupportedByCluster", note).await;
            write(Pass::Unsupported(&missing)).await?;
            // The cluster may serve the APIs after an upgrade: asked again at the next resync.
            Ok(Action::requeue(RESYNC))
        }
        Err(error) => {
            let [ready, _] = target_cluster::failed(&error);
            event(&ctx.recorder, user, true, ready.reason, ready.message).await;
            write(Pass::Failed(&error)).await?;
            Err(error)
        }
    }
}

/// Whether Cluster `name` in `namespace` has `spec.authorization`; `true` when there is no such
/// Cluster (the admin client then reports the cluster as unreachable).
async fn cluster_authorizes<F: AdminFactory>(
    ctx: &Context<F>,
    name: &str,
    namespace: &str,
) -> Result<bool, Error> {
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(clusters
        .get_opt(name)
        .await?
        .is_none_or(|c| c.spec.authorization.is_some()))
}

/// Kafka's answer to the ACL APIs of a broker without an authorizer.
fn security_disabled(error: &AdminError) -> bool {
    matches!(error, AdminError::Kafka { code, .. } if *code == SECURITY_DISABLED)
}

/// Sets the credential, ACLs and quotas the spec asks for, once the cluster's ApiVersions show
/// it serves them and, for ACLs, that it enforces them; a step the spec does not use is skipped
/// where the cluster lacks its API.
async fn sync<F: AdminFactory>(
    user: &User,
    ctx: &Context<F>,
    namespace: &str,
    bootstrap: &str,
) -> Result<Synced, Error> {
    let name = user.name_any();
    // A certificate user's Cluster, whose clients CA signs its certificate.
    let tls_cluster = if is_tls(&user.spec) {
        if name.chars().count() > TLS_USERNAME_MAX {
            return Ok(Synced::Invalid(format!(
                "a tls User's name is its certificate's common name, at most {TLS_USERNAME_MAX} characters"
            )));
        }
        let Some(cluster) = &user.spec.cluster.name else {
            return Ok(Synced::Invalid(
                "tls authentication needs cluster.name: the certificate is signed by that Cluster's clients CA".to_owned(),
            ));
        };
        let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
        match clusters.get_opt(cluster).await? {
            Some(c) => Some(c),
            None => {
                return Ok(Synced::Invalid(format!(
                    "Cluster {cluster} does not exist: its clients CA signs the certificate"
                )));
            }
        }
    } else {
        None
    };
    let acls_asked = asks_acls(&user.spec);
    if acls_asked
        && let Some(cluster) = &user.spec.cluster.name
        && !cluster_authorizes(ctx, cluster, namespace).await?
    {
        return Ok(Synced::AuthorizationNotEnabled(authorization_not_enabled(
            Some(cluster),
        )));
    }
    let admin = target_cluster::admin(ctx, &user.spec.cluster, namespace, bootstrap).await?;
    let steps = match user_steps(&user.spec, &admin.supported_apis().await?) {
        Ok(steps) => steps,
        Err(missing) => return Ok(Synced::Unsupported(missing)),
    };
    // The user's bindings as the cluster holds them, read before anything is changed: a cluster
    // without an authorizer (Kafka answers SECURITY_DISABLED) holds none and refuses a User with
    // ACLs before its credential is set.
    let current_acls = if steps.acls {
        match admin
            .describe_acls_of(&user_principal(&name, &user.spec))
            .await
        {
            Ok(current) => Some(current),
            Err(e) if security_disabled(&e) && acls_asked => {
                return Ok(Synced::AuthorizationNotEnabled(authorization_not_enabled(
                    None,
                )));
            }
            Err(e) if security_disabled(&e) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let mut secret = None;
    if let Some(cluster) = &tls_cluster {
        secret = Some(certificate(user, ctx, namespace, cluster).await?);
        // No SCRAM credential for a certificate user (one set while it was a SCRAM user goes).
        if steps.scram {
            admin.delete_scram(&name).await?;
        }
    } else if is_scram(&user.spec) {
        let (secret_name, pw) = password(user, ctx, namespace).await?;
        let credential = scram_credential(&name, &pw).map_err(|e| Error::Secret {
            secret: secret_name.clone(),
            problem: e.to_string(),
        })?;
        admin.upsert_scram(&credential).await?;
        secret = Some(secret_name);
    } else if steps.scram {
        admin.delete_scram(&name).await?;
    }
    if let Some(current) = current_acls {
        let desired = desired_acls(&name, &user.spec);
        let (create, delete) = acl_diff(&current, &desired);
        admin.create_acls(&create).await?;
        admin.delete_acls(&delete).await?;
        if !create.is_empty() || !delete.is_empty() {
            let note = format!("{} ACLs added, {} removed", create.len(), delete.len());
            event(&ctx.recorder, user, false, "AclsUpdated", note).await;
        }
    }
    if steps.quotas {
        admin
            .alter_user_quotas(&name, &quota_ops(user.spec.quotas.as_ref()))
            .await?;
    }
    Ok(Synced::Done { secret })
}

/// Removes the credential, ACLs and quotas unless retained or gone with the Cluster (see
/// [`deletion`]); only through APIs the cluster serves, as nothing was set through others.
async fn cleanup<F: AdminFactory>(user: &User, ctx: &Context<F>) -> Result<Action, Error> {
    let name = user.name_any();
    let acl_principal = user_principal(&name, &user.spec);
    let deleting = deletion::Deleting {
        obj: user,
        reference: &user.spec.cluster,
        policy: user.spec.deletion_policy,
        conditions: user.status.as_ref().map_or(&[], |s| &s.conditions),
        what: format!("the SCRAM credential, ACLs and quotas of user {name}"),
    };
    deletion::finish(ctx, deleting, |admin| async move {
        let steps = UserSteps::supported(&admin.supported_apis().await?);
        if steps.scram {
            admin.delete_scram(&name).await?;
        }
        if steps.acls {
            match admin.describe_acls_of(&acl_principal).await {
                Ok(current) => admin.delete_acls(&current).await?,
                // No authorizer, no bindings.
                Err(e) if security_disabled(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if steps.quotas {
            admin.alter_user_quotas(&name, &quota_ops(None)).await?;
        }
        Ok(())
    })
    .await
}
