//! What every reconcile shares: the Kubernetes client, metrics, the event recorder and the
//! factory of Kafka admin clients (a fake in tests).

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::admin::{KafkaAdmin, TlsConfig, WireAdmin};
use crate::metrics::Metrics;

/// Makes admin clients for a bootstrap address.
pub trait AdminFactory: Send + Sync + 'static {
    /// The client type.
    type Admin: KafkaAdmin;
    /// A client for `bootstrap` (`host:port,...`), over TLS with `tls`.
    fn admin(&self, bootstrap: &str, tls: Option<&TlsConfig>) -> Self::Admin;
}

/// Real clients over the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireAdminFactory;

impl AdminFactory for WireAdminFactory {
    type Admin = WireAdmin;
    fn admin(&self, bootstrap: &str, tls: Option<&TlsConfig>) -> WireAdmin {
        WireAdmin::with_tls(bootstrap, tls.cloned())
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
