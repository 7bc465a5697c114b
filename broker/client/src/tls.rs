//! Client TLS settings (rustls on aws-lc-rs, the one crypto provider of every Strait binary):
//! the CA certificates trusted, whether the server's certificate must name the host dialled,
//! the client certificate shown when the server asks for one, and the TLS versions offered.
//! Built once; every connection made with a [`ClientTls`] shares it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SupportedProtocolVersion};
use tokio_rustls::TlsConnector;

/// The part of the TLS settings an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPart {
    /// The CA certificates trusted.
    CaCertificate,
    /// The client certificate chain (or the key not fitting it).
    ClientCertificate,
    /// The client's private key.
    ClientKey,
    /// The TLS versions offered.
    ProtocolVersions,
}

impl std::fmt::Display for TlsPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsPart::CaCertificate => "CA certificate",
            TlsPart::ClientCertificate => "client certificate",
            TlsPart::ClientKey => "client key",
            TlsPart::ProtocolVersions => "protocol versions",
        })
    }
}

/// TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A part is missing (no certificate in the PEM given).
    #[error("no {0}")]
    Missing(TlsPart),
    /// A part does not parse or does not fit.
    #[error("{part}: {detail}")]
    Invalid {
        /// The part.
        part: TlsPart,
        /// What rustls said.
        detail: String,
    },
}

impl TlsError {
    /// The part of the settings at fault.
    pub fn part(&self) -> TlsPart {
        match self {
            TlsError::Missing(part) | TlsError::Invalid { part, .. } => *part,
        }
    }
}

fn invalid(part: TlsPart) -> impl Fn(&dyn std::fmt::Display) -> TlsError {
    move |e| TlsError::Invalid {
        part,
        detail: e.to_string(),
    }
}

/// The crypto provider every Strait TLS stack uses (aws-lc-rs), given explicitly so a build
/// never depends on which rustls features other crates enable.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What a [`ClientTls`] is built from.
#[derive(Debug)]
pub struct TlsOptions {
    /// The CA certificates trusted; a server's chain must lead to one of them.
    pub roots: Arc<RootCertStore>,
    /// Whether the server's certificate must name the host dialled (Kafka's
    /// `ssl.endpoint.identification.algorithm=https`, the default).
    pub check_host: bool,
    /// Certificate chain (leaf first) and key shown when the server asks for a client
    /// certificate; `None` shows none.
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// TLS versions offered; empty offers rustls's defaults (1.2 and 1.3).
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

/// Client TLS settings, cheap to clone.
#[derive(Clone)]
pub struct ClientTls(Arc<ClientConfig>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// From a rustls configuration made elsewhere.
    pub fn new(config: Arc<ClientConfig>) -> Self {
        ClientTls(config)
    }

    /// Builds the configuration `options` describe.
    pub fn build(options: TlsOptions) -> Result<Self, TlsError> {
        let provider = provider();
        let versions = if options.versions.is_empty() {
            rustls::DEFAULT_VERSIONS.to_vec()
        } else {
            options.versions
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| invalid(TlsPart::ProtocolVersions)(&e))?;
        let builder = if options.check_host {
            builder.with_root_certificates(options.roots)
        } else {
            let webpki = WebPkiServerVerifier::builder_with_provider(options.roots, provider)
                .build()
                .map_err(|e| invalid(TlsPart::CaCertificate)(&e))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
        };
        let config = match options.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(TlsPart::ClientCertificate)(&e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls(Arc::new(config)))
    }

    /// Trusting only the CA certificates in `ca_pem`, host names checked, TLS 1.2 and 1.3,
    /// showing the key and chain of `keystore_pem` (a PEM key store: the unencrypted key and
    /// the chain, leaf first) when given.
    pub fn from_pem(ca_pem: &str, keystore_pem: Option<&str>) -> Result<Self, TlsError> {
        let roots = Arc::new(roots_from_pem(ca_pem.as_bytes())?);
        let identity = keystore_pem
            .map(|pem| identity_from_pem(pem.as_bytes()))
            .transpose()?;
        ClientTls::build(TlsOptions {
            roots,
            check_host: true,
            identity,
            versions: Vec::new(),
        })
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.0
    }

    /// A connector for `tokio-rustls`.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.0.clone())
    }
}

/// The CA certificates of a PEM text (at least one).
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| invalid(TlsPart::CaCertificate)(&e))?;
        roots
            .add(cert)
            .map_err(|e| invalid(TlsPart::CaCertificate)(&e))?;
    }
    if roots.is_empty() {
        return Err(TlsError::Missing(TlsPart::CaCertificate));
    }
    Ok(roots)
}

/// The certificate chain and private key of a PEM key store.
pub fn identity_from_pem(
    pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(TlsPart::ClientCertificate)(&e))?;
    if chain.is_empty() {
        return Err(TlsError::Missing(TlsPart::ClientCertificate));
    }
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| invalid(TlsPart::ClientKey)(&e))?;
    Ok((chain, key))
}

/// Host names unchecked: the server's chain must verify against the trusted CAs, but its
/// certificate need not name the host dialled (Kafka's empty
/// `ssl.endpoint.identification.algorithm`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// A CA, a server certificate for `localhost` and a client certificate, all PEM.
    pub(crate) struct Pki {
        pub ca: String,
        pub server: String,
        pub server_key: String,
        pub client_keystore: String,
    }

    pub(crate) fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, "app");
        let client = client.signed_by(&client_key, &issuer).unwrap();
        Pki {
            ca: ca_cert.pem(),
            server: server.pem(),
            server_key: server_key.serialize_pem(),
            client_keystore: format!("{}{}", client_key.serialize_pem(), client.pem()),
        }
    }

    #[test]
    fn pem_settings_load_or_name_the_part_at_fault() {
        let pki = pki();
        ClientTls::from_pem(&pki.ca, Some(&pki.client_keystore)).unwrap();
        ClientTls::from_pem(&pki.ca, None).unwrap();
        let e = ClientTls::from_pem("", None).unwrap_err();
        assert_eq!(e.part(), TlsPart::CaCertificate);
        assert_eq!(e.to_string(), "no CA certificate");
        // A key store without a key, or without a certificate.
        let e = ClientTls::from_pem(&pki.ca, Some(&pki.server)).unwrap_err();
        assert_eq!(e.part(), TlsPart::ClientKey);
        let e = ClientTls::from_pem(&pki.ca, Some(&pki.server_key)).unwrap_err();
        assert_eq!(e.part(), TlsPart::ClientCertificate);
        // The key of another certificate.
        let mismatched = format!("{}{}", pki.server_key, pki.client_keystore);
        let e = ClientTls::from_pem(&pki.ca, Some(&mismatched))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.part(), TlsPart::ClientCertificate);
    }
}
