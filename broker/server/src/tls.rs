//! TLS for SSL listeners: a rustls acceptor built from a listener's [`SslSettings`] (PEM key
//! store, optional PEM trust store for client certificates, enabled TLS versions), and the
//! matching connector for reaching other brokers on an SSL inter-broker listener. Everything is
//! read and checked once, when the listener is bound, so a wrong path, a key that does not match
//! its certificate or an empty trust store stops the broker with a message naming the listener
//! and file instead of failing every handshake later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use strait_client::ClientTls;
use strait_client::tls::{TlsOptions, TlsPart};
use strait_config::{ClientAuth, KeySource, SslSettings, TlsVersion, TrustSource};
use tokio_rustls::TlsAcceptor;

#[derive(thiserror::Error, Debug)]
pub enum TlsError {
    #[error("listener {listener}: cannot read {path}: {source}")]
    Read {
        listener: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listener {listener}: {what} holds no {expected} in PEM form")]
    Missing {
        listener: String,
        what: String,
        expected: &'static str,
    },
    #[error("listener {listener}: {what}: {detail}")]
    Invalid {
        listener: String,
        what: String,
        detail: String,
    },
}

/// Builds the acceptor for one SSL listener.
pub fn acceptor(listener: &str, settings: &SslSettings) -> Result<TlsAcceptor, TlsError> {
    let invalid = |what: &str, detail: String| TlsError::Invalid {
        listener: listener.to_string(),
        what: what.to_string(),
        detail,
    };
    // An explicit provider, not the process default: the binary must not depend on which
    // crypto features other crates happen to enable.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (chain, key, key_what) = load_key(listener, &settings.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(settings))
        .map_err(|e| invalid("ssl.enabled.protocols", e.to_string()))?;
    let builder = match (&settings.trust, settings.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(trust), auth) => {
            let roots = load_roots(listener, trust)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| invalid("truststore", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // `with_single_cert` checks that the key belongs to the leaf certificate.
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&key_what, e.to_string()))?;
    // Kafka clients do not negotiate ALPN; the protocol is fixed by the port.
    config.alpn_protocols.clear();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS client for connections to other brokers' SSL inter-broker listener (Kafka uses that
/// listener's settings on both sides): it trusts the listener's truststore, shows the listener's
/// certificate in case the peer asks for one, and checks the peer's host name unless
/// `ssl.endpoint.identification.algorithm` is empty.
pub fn connector(listener: &str, settings: &SslSettings) -> Result<ClientTls, TlsError> {
    let trust = settings.trust.as_ref().ok_or_else(|| TlsError::Missing {
        listener: listener.to_string(),
        what: "the truststore".to_string(),
        expected: "CA certificate to verify other brokers with",
    })?;
    let roots = load_roots(listener, trust)?;
    let (chain, key, key_what) = load_key(listener, &settings.key)?;
    ClientTls::build(TlsOptions {
        roots,
        check_host: settings.verify_hostname,
        identity: Some((chain, key)),
        versions: versions(settings),
    })
    .map_err(|e| TlsError::Invalid {
        listener: listener.to_string(),
        what: match e.part() {
            TlsPart::ProtocolVersions => "ssl.enabled.protocols".to_string(),
            TlsPart::CaCertificate => "truststore".to_string(),
            TlsPart::ClientCertificate | TlsPart::ClientKey => key_what,
        },
        detail: match e {
            strait_client::TlsError::Invalid { detail, .. } => detail,
            missing => missing.to_string(),
        },
    })
}

/// The PEM text of a listener's key store (key and chain) and trust store, for TLS stacks that
/// take PEM (the quorum's gRPC). Both are checked first by building the acceptor and connector
/// from them, so what is handed on is known to load.
pub fn pem_material(
    listener: &str,
    settings: &SslSettings,
) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    acceptor(listener, settings)?;
    connector(listener, settings)?;
    let identity = match &settings.key {
        KeySource::File(path) => read(listener, path)?,
        KeySource::Inline {
            certificate_chain,
            key,
        } => format!("{key}\n{certificate_chain}").into_bytes(),
    };
    let ca = match &settings.trust {
        Some(TrustSource::File(path)) => read(listener, path)?,
        Some(TrustSource::Inline(pem)) => pem.clone().into_bytes(),
        None => {
            return Err(TlsError::Missing {
                listener: listener.to_string(),
                what: "the truststore".to_string(),
                expected: "CA certificate",
            });
        }
    };
    Ok((identity, ca))
}

fn versions(settings: &SslSettings) -> Vec<&'static rustls::SupportedProtocolVersion> {
    settings
        .protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

type KeyPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

/// The certificate chain and private key of a key store, and how to name it in errors.
fn load_key(listener: &str, source: &KeySource) -> Result<KeyPair, TlsError> {
    let (chain_pem, key_pem, what) = match source {
        KeySource::File(path) => {
            let pem = read(listener, path)?;
            (pem.clone(), pem, path.display().to_string())
        }
        KeySource::Inline {
            certificate_chain,
            key,
        } => (
            certificate_chain.as_bytes().to_vec(),
            key.as_bytes().to_vec(),
            "ssl.keystore.certificate.chain / ssl.keystore.key".to_string(),
        ),
    };
    let chain = certificates(listener, &what, &chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            listener: listener.to_string(),
            what: what.clone(),
            expected: "unencrypted private key",
        },
        other => TlsError::Invalid {
            listener: listener.to_string(),
            what: what.clone(),
            detail: format!("bad private key: {other}"),
        },
    })?;
    Ok((chain, key, what))
}

fn load_roots(listener: &str, source: &TrustSource) -> Result<Arc<RootCertStore>, TlsError> {
    let (pem, what) = match source {
        TrustSource::File(path) => (read(listener, path)?, path.display().to_string()),
        TrustSource::Inline(pem) => (
            pem.as_bytes().to_vec(),
            "ssl.truststore.certificates".to_string(),
        ),
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(listener, &what, &pem)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            listener: listener.to_string(),
            what: what.clone(),
            detail: format!("unusable CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(roots))
}

fn certificates(
    listener: &str,
    what: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            listener: listener.to_string(),
            what: what.to_string(),
            detail: format!("bad certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            listener: listener.to_string(),
            what: what.to_string(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn read(listener: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        listener: listener.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair as RcKeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    struct Pki {
        ca_pem: String,
        leaf_pem: String,
        leaf_key_pem: String,
        client_pem: String,
        client_key_pem: String,
    }

    fn pki() -> Pki {
        let ca_key = RcKeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = RcKeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let client_key = RcKeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, "app");
        let client = client.signed_by(&client_key, &issuer).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            client_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    fn settings(pki: &Pki, auth: ClientAuth) -> SslSettings {
        SslSettings {
            key: KeySource::Inline {
                certificate_chain: pki.leaf_pem.clone(),
                key: pki.leaf_key_pem.clone(),
            },
            trust: (auth != ClientAuth::None).then(|| TrustSource::Inline(pki.ca_pem.clone())),
            client_auth: auth,
            protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            verify_hostname: true,
        }
    }

    /// One echo round trip over a real loopback TLS connection.
    async fn round_trip(
        acceptor: TlsAcceptor,
        pki: &Pki,
        client_cert: bool,
    ) -> Result<Vec<u8>, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            tls.write_all(&buf).await?;
            tls.flush().await?;
            Ok::<_, std::io::Error>(())
        });
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if client_cert {
            builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(pki.client_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).unwrap(),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"hello").await?;
        tls.flush().await?;
        let mut buf = vec![0u8; 5];
        let read = tls.read_exact(&mut buf).await;
        let served = server.await.unwrap();
        read?;
        served?;
        Ok(buf)
    }

    #[tokio::test]
    async fn serves_tls_and_enforces_client_certificates() {
        let pki = pki();
        let plain = acceptor("EXTERNAL", &settings(&pki, ClientAuth::None)).unwrap();
        assert_eq!(round_trip(plain, &pki, false).await.unwrap(), b"hello");

        let required = acceptor("EXTERNAL", &settings(&pki, ClientAuth::Required)).unwrap();
        assert!(
            round_trip(required.clone(), &pki, false).await.is_err(),
            "a client without a certificate is refused"
        );
        assert_eq!(round_trip(required, &pki, true).await.unwrap(), b"hello");

        let requested = acceptor("EXTERNAL", &settings(&pki, ClientAuth::Requested)).unwrap();
        assert_eq!(round_trip(requested, &pki, false).await.unwrap(), b"hello");
    }

    /// Connects with `connector()` to an acceptor serving the "localhost" certificate, dialling
    /// the peer as `host`.
    async fn peer_handshake(pki: &Pki, client: &SslSettings, host: &str) -> std::io::Result<()> {
        let acceptor = acceptor("REPLICATION", &settings(pki, ClientAuth::Required)).unwrap();
        let connector = connector("REPLICATION", client).unwrap().connector();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await?;
            tls.write_all(b"ok").await?;
            tls.flush().await
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
        let result = async {
            let mut tls = connector.connect(name, tcp).await?;
            let mut buf = [0u8; 2];
            tls.read_exact(&mut buf).await?;
            Ok(())
        }
        .await;
        let _ = server.await;
        result
    }

    #[tokio::test]
    async fn brokers_verify_each_other_and_check_host_names_unless_told_not_to() {
        let pki = pki();
        // Brokers show their own certificate to a peer that requires one.
        let strict = settings(&pki, ClientAuth::Required);
        peer_handshake(&pki, &strict, "localhost").await.unwrap();
        assert!(
            peer_handshake(&pki, &strict, "127.0.0.1").await.is_err(),
            "the certificate does not name 127.0.0.1"
        );
        let chain_only = SslSettings {
            verify_hostname: false,
            ..strict.clone()
        };
        peer_handshake(&pki, &chain_only, "127.0.0.1")
            .await
            .unwrap();
        // A peer whose certificate does not chain to the truststore is refused either way.
        let stranger = other_ca();
        let untrusting = SslSettings {
            trust: Some(TrustSource::Inline(stranger)),
            ..chain_only
        };
        assert!(
            peer_handshake(&pki, &untrusting, "localhost")
                .await
                .is_err()
        );
    }

    fn other_ca() -> String {
        let key = RcKeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn bad_stores_name_the_listener_and_file() {
        let pki = pki();
        let missing = SslSettings {
            key: KeySource::File("/nonexistent/keystore.pem".into()),
            ..settings(&pki, ClientAuth::None)
        };
        let e = acceptor("EXTERNAL", &missing).err().unwrap().to_string();
        assert!(
            e.contains("EXTERNAL") && e.contains("/nonexistent/keystore.pem"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        let cert_only = dir.path().join("cert-only.pem");
        std::fs::write(&cert_only, &pki.leaf_pem).unwrap();
        let no_key = SslSettings {
            key: KeySource::File(cert_only),
            ..settings(&pki, ClientAuth::None)
        };
        let e = acceptor("EXTERNAL", &no_key).err().unwrap().to_string();
        assert!(e.contains("no unencrypted private key"), "{e}");

        // The key of another certificate.
        let wrong_key = SslSettings {
            key: KeySource::Inline {
                certificate_chain: pki.leaf_pem.clone(),
                key: pki.client_key_pem.clone(),
            },
            ..settings(&pki, ClientAuth::None)
        };
        assert!(acceptor("EXTERNAL", &wrong_key).is_err());

        // A key store file with key and chain together is what the operator mounts.
        let together = dir.path().join("keystore.pem");
        std::fs::write(&together, format!("{}{}", pki.leaf_key_pem, pki.leaf_pem)).unwrap();
        let file = SslSettings {
            key: KeySource::File(together),
            ..settings(&pki, ClientAuth::None)
        };
        acceptor("EXTERNAL", &file).unwrap();
    }
}
