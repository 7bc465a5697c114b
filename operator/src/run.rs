//! Wires the controllers together: one kube-rs `Controller` per kind and watched namespace,
//! running until the shutdown signal.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use strait_crds::{Cluster, Mirror, Topic, User};
use tokio::sync::watch;

use crate::context::{AdminFactory, Context};
use crate::reconcile::error_policy;
use crate::{cluster, mirror, topic, user};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The controllers of one namespace (`None`: all namespaces), each stopping on `shutdown`.
pub fn controllers<F: AdminFactory>(
    ctx: Arc<Context<F>>,
    namespace: Option<&str>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<BoxFuture<'static, ()>> {
    let shutdown = || stopped(shutdown.clone());
    let client = ctx.client.clone();
    let cfg = watcher::Config::default;
    let clusters = Controller::new(api::<Cluster>(&client, namespace), cfg())
        .owns(api::<StatefulSet>(&client, namespace), cfg())
        .owns(api::<Service>(&client, namespace), cfg())
        .owns(api::<ConfigMap>(&client, namespace), cfg())
        // The cluster CA and certificate Secrets: one deleted or changed is made right at once.
        .owns(api::<Secret>(&client, namespace), cfg())
        .graceful_shutdown_on(shutdown())
        .run(cluster::controller::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log("Cluster", r.err()) });
    let topics = Controller::new(api::<Topic>(&client, namespace), cfg())
        .graceful_shutdown_on(shutdown())
        .run(topic::controller::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log("Topic", r.err()) });
    let users = Controller::new(api::<User>(&client, namespace), cfg())
        .owns(api::<Secret>(&client, namespace), cfg())
        .graceful_shutdown_on(shutdown())
        .run(user::controller::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log("User", r.err()) });
    let mirrors = Controller::new(api::<Mirror>(&client, namespace), cfg())
        .owns(api::<Deployment>(&client, namespace), cfg())
        .owns(api::<ConfigMap>(&client, namespace), cfg())
        // A linked Mirror's failover Job: its end is reported at once.
        .owns(api::<Job>(&client, namespace), cfg())
        .graceful_shutdown_on(shutdown())
        .run(mirror::controller::reconcile, error_policy, ctx)
        .for_each(|r| async move { log("Mirror", r.err()) });
    vec![
        Box::pin(clusters),
        Box::pin(topics),
        Box::pin(users),
        Box::pin(mirrors),
    ]
}

/// Resolves once `rx` reads true (or its sender is gone).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn log(kind: &str, error: Option<impl std::fmt::Display>) {
    if let Some(e) = error {
        tracing::debug!(kind, error = %e, "controller event");
    }
}
