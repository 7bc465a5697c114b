//! The User controller: finalizer; the password Secret (generated, or referenced); the SCRAM
//! credential, ACLs and quotas through the Kafka admin API; status. Cleanup removes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use strait_crds::user::Quotas;
use strait_crds::{User, UserStatus};

use crate::admin::KafkaAdmin;
use crate::apply::{apply, event, patch_status};
use crate::conditions::{Cond, merge};
use crate::context::{AdminFactory, Context};
use crate::error::Error;
use crate::target_cluster;
use crate::user::plan::{acl_diff, desired_acls, generate_password, principal, scram_credential};

/// Finalizer that removes credentials and ACLs before the resource goes.
pub const FINALIZER: &str = "strait.dev/user";
/// Key of the password in a generated Secret.
pub const PASSWORD_KEY: &str = "password";
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one User.
pub async fn reconcile<F: AdminFactory>(
    user: Arc<User>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let namespace = user
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, user, |event| async {
        match event {
            Finalizer::Apply(u) => apply_user(&u, &api, &ctx).await,
            Finalizer::Cleanup(u) => cleanup(&u, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(e.to_string()));
    ctx.metrics.reconciled("User", start.elapsed());
    if let Err(e) = &result {
        ctx.metrics.failed("User", e.metric_label());
    }
    result
}

/// Kafka quota keys and values of `quotas` (all four keys, `None` to remove).
pub fn quota_ops(quotas: Option<&Quotas>) -> BTreeMap<String, Option<f64>> {
    let q = quotas.cloned().unwrap_or_default();
    // Byte rates are far below 2^53, so f64 holds them exactly.
    #[allow(clippy::cast_precision_loss)]
    let as_f64 = |v: Option<i64>| v.map(|v| v as f64);
    BTreeMap::from([
        (
            "producer_byte_rate".to_owned(),
            as_f64(q.producer_byte_rate),
        ),
        (
            "consumer_byte_rate".to_owned(),
            as_f64(q.consumer_byte_rate),
        ),
        (
            "request_percentage".to_owned(),
            q.request_percentage.map(f64::from),
        ),
        (
            "controller_mutation_rate".to_owned(),
            q.controller_mutation_rate,
        ),
    ])
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
    let generation = user.metadata.generation;
    let bootstrap = match target_cluster::bootstrap(&user.spec.cluster, &namespace) {
        Ok(b) => b,
        Err(problem) => {
            let status = UserStatus {
                conditions: merge(
                    &previous.conditions,
                    &[Cond::new("Ready", false, "InvalidSpec", problem)],
                    generation,
                    Timestamp::now(),
                ),
                observed_generation: generation,
                ..previous
            };
            patch_status(api, &name, status).await?;
            return Ok(Action::await_change());
        }
    };
    let admin = target_cluster::admin(ctx, &user.spec.cluster, &namespace, &bootstrap).await?;
    let mut secret = None;
    if user.spec.authentication.is_some() {
        let (secret_name, pw) = password(user, ctx, &namespace).await?;
        let credential = scram_credential(&name, &pw).map_err(|e| Error::Secret {
            secret: secret_name.clone(),
            problem: e.to_string(),
        })?;
        admin.upsert_scram(&credential).await?;
        secret = Some(secret_name);
    } else {
        admin.delete_scram(&name).await?;
    }
    let desired = desired_acls(&name, &user.spec);
    let current = admin.describe_acls_of(&principal(&name)).await?;
    let (create, delete) = acl_diff(&current, &desired);
    admin.create_acls(&create).await?;
    admin.delete_acls(&delete).await?;
    admin
        .alter_user_quotas(&name, &quota_ops(user.spec.quotas.as_ref()))
        .await?;
    if !create.is_empty() || !delete.is_empty() {
        event(
            &ctx.recorder,
            user,
            false,
            "AclsUpdated",
            format!("{} ACLs added, {} removed", create.len(), delete.len()),
        )
        .await;
    }
    let status = UserStatus {
        conditions: merge(
            &previous.conditions,
            &[Cond::new(
                "Ready",
                true,
                "UserReady",
                format!("user {name} matches the spec"),
            )],
            generation,
            Timestamp::now(),
        ),
        observed_generation: generation,
        username: Some(name.clone()),
        secret,
    };
    patch_status(api, &name, status).await?;
    Ok(Action::requeue(RESYNC))
}

async fn cleanup<F: AdminFactory>(user: &User, ctx: &Context<F>) -> Result<Action, Error> {
    let namespace = user
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let Ok(bootstrap) = target_cluster::bootstrap(&user.spec.cluster, &namespace) else {
        return Ok(Action::await_change());
    };
    let name = user.name_any();
    let admin = target_cluster::admin(ctx, &user.spec.cluster, &namespace, &bootstrap).await?;
    admin.delete_scram(&name).await?;
    let current = admin.describe_acls_of(&principal(&name)).await?;
    admin.delete_acls(&current).await?;
    admin.alter_user_quotas(&name, &quota_ops(None)).await?;
    Ok(Action::await_change())
}

/// Backoff after a failed reconcile.
pub fn error_policy<F: AdminFactory>(
    _user: Arc<User>,
    error: &Error,
    _ctx: Arc<Context<F>>,
) -> Action {
    tracing::warn!(%error, "user reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_map_to_kafka_keys_and_unset_ones_are_removed() {
        let q = Quotas {
            producer_byte_rate: Some(1024),
            request_percentage: Some(50),
            ..Quotas::default()
        };
        let ops = quota_ops(Some(&q));
        assert_eq!(ops["producer_byte_rate"], Some(1024.0));
        assert_eq!(ops["request_percentage"], Some(50.0));
        assert_eq!(ops["consumer_byte_rate"], None);
        assert!(quota_ops(None).values().all(Option::is_none));
    }
}
