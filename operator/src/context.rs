//! What every reconcile shares: the Kubernetes client, metrics, the event recorder and the
//! factory of Kafka admin clients (a fake in tests).

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::admin::{KafkaAdmin, WireAdmin};
use crate::metrics::Metrics;

/// Makes admin clients for a bootstrap address.
pub trait AdminFactory: Send + Sync + 'static {
    /// The client type.
    type Admin: KafkaAdmin;
    /// A client for `bootstrap` (`host:port,...`).
    fn admin(&self, bootstrap: &str) -> Self::Admin;
}

/// Real clients over the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireAdminFactory;

impl AdminFactory for WireAdminFactory {
    type Admin = WireAdmin;
    fn admin(&self, bootstrap: &str) -> WireAdmin {
        WireAdmin::new(bootstrap)
    }
}

/// Shared state of the controllers.
pub struct Context<F: AdminFactory> {
    /// Kubernetes client.
    pub client: Client,
    /// Operator metrics.
    pub metrics: Metrics,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Admin clients.
    pub admins: F,
}

impl<F: AdminFactory> Context<F> {
    /// A context for `client`.
    pub fn new(client: Client, metrics: Metrics, admins: F) -> Arc<Self> {
        let reporter = Reporter {
            controller: crate::names::MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            admins,
        })
    }
}
