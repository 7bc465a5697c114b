//! How the quorum's gRPC connections are made: plaintext, or TLS when the controller listener is
//! SSL. Every outgoing quorum connection (Raft RPCs between voters, brokers' controller calls
//! and metadata fetches) comes from [`QuorumTls::client`], and the server takes
//! [`QuorumTls::server_config`], so one value decides for the whole node. The PEM material is
//! checked by the caller (the broker loads it with the same code as its Kafka listeners) before
//! it gets here.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use super::proto::{MAX_MESSAGE_BYTES, QuorumClient};

/// Plaintext by default.
#[derive(Clone, Default)]
pub struct QuorumTls {
    material: Option<Arc<Material>>,
}

struct Material {
    identity: Identity,
    ca: Certificate,
    /// Server side: refuse peers without a certificate from `ca` (Kafka's
    /// `ssl.client.auth=required`); otherwise ask for one but accept none.
    require_client_certificate: bool,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.material.is_some() {
            "QuorumTls(tls)"
        } else {
            "QuorumTls(plaintext)"
        })
    }
}

impl QuorumTls {
    /// TLS with this node's key and certificate chain (`identity_pem`, one PEM holding both)
    /// and the CAs peers' certificates must chain to. Host names are always checked.
    pub fn new(identity_pem: &[u8], ca_pem: &[u8], require_client_certificate: bool) -> QuorumTls {
        QuorumTls {
            material: Some(Arc::new(Material {
                identity: Identity::from_pem(identity_pem, identity_pem),
                ca: Certificate::from_pem(ca_pem),
                require_client_certificate,
            })),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.material.is_some()
    }

    /// A lazily connecting client for the voter at `addr` (`host:port`; the host is the name
    /// checked against its certificate).
    pub fn client(&self, addr: &str) -> Result<QuorumClient<Channel>, tonic::transport::Error> {
        let scheme = if self.is_tls() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        if let Some(m) = &self.material {
            let host = addr
                .rsplit_once(':')
                .map_or(addr, |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']');
            endpoint = endpoint.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(m.ca.clone())
                    .identity(m.identity.clone())
                    .domain_name(host),
            )?;
        }
        Ok(QuorumClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// The server's TLS settings, `None` for plaintext.
    pub fn server_config(&self) -> Option<ServerTlsConfig> {
        self.material.as_ref().map(|m| {
            ServerTlsConfig::new()
                .identity(m.identity.clone())
                .client_ca_root(m.ca.clone())
                .client_auth_optional(!m.require_client_certificate)
        })
    }
}
