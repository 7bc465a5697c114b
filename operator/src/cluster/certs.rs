//! Keys and certificates of a Cluster (rcgen on aws-lc-rs, the crypto provider kube's rustls
//! uses too): the self-signed cluster CA, broker certificates it signs, and reading back what a
//! stored broker certificate says ([`tls::Existing`]) for the pure reissue decision in
//! [`crate::cluster::tls`]. Key generation draws on the system's randomness, so this is the one
//! part of the Cluster controller that is not a pure function of its inputs.
//!
//! Keys are ECDSA P-256, written as unencrypted PKCS#8 (`PRIVATE KEY`), which the broker reads
//! from a PEM keystore (`ssl.keystore.type=PEM`). A broker's keystore is its key, then its
//! certificate, then the CA certificate (the chain, leaf first).

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use crate::cluster::tls::{self, Existing, San, Sans};

/// Key of the CA certificate in the CA Secrets.
pub const CA_CERT_KEY: &str = "ca.crt";
/// Key of the CA private key in the CA Secret.
pub const CA_KEY_KEY: &str = "ca.key";
/// Key of the operator's keystore (key, certificate, CA certificate) in its Secret.
pub const OPERATOR_KEYSTORE_KEY: &str = "operator.pem";
/// Common name of the operator's client certificate.
pub const OPERATOR_COMMON_NAME: &str = "strait-operator";
/// Organization of every certificate the operator issues.
const ORGANIZATION: &str = "strait.dev";

/// Kafka's principal of a certificate [`subject`] `O=strait.dev, CN=<cn>`: the RFC 2253 name
/// Kafka's default SSL principal builder (and Strait's broker, under the default
/// `ssl.principal.mapping.rules=DEFAULT`) gives, the RDNs in reverse order of their encoding, so
/// most specific first. The common names the operator uses (`strait-operator`,
/// `<cluster>-broker`) have no character RFC 2253 escapes.
pub fn principal(common_name: &str) -> String {
    format!("User:CN={},O={ORGANIZATION}", common_name_of(common_name))
}

/// The common name as a certificate holds it (at most 64 characters).
fn common_name_of(common_name: &str) -> String {
    common_name.chars().take(64).collect()
}

/// Common name of the brokers' certificates: one for all brokers of a Cluster, so that one
/// principal (in `super.users`) covers every broker, present and future, as with Strimzi.
pub fn broker_common_name(cluster: &str) -> String {
    format!("{cluster}-broker")
}

/// Certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Generating or signing failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored CA or certificate is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

/// The cluster CA: its certificate and private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ca {
    /// The self-signed CA certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// The validity window starting at `now`: from an hour before (clocks of clients differ) for
/// `secs` seconds.
fn validity(params: &mut CertificateParams, now: SystemTime, secs: i64) {
    let now = OffsetDateTime::from(now);
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(secs);
}

/// The distinguished name of the `what` CA (`cluster`, `clients`) of Cluster
/// `namespace/cluster`.
fn ca_name(cluster: &str, namespace: &str, what: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    // At most 64 characters: namespace and name are each at most 63 (DNS labels).
    let cn: String = format!("{namespace}/{cluster} {what} CA")
        .chars()
        .take(64)
        .collect();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A new self-signed CA for Cluster `namespace/cluster`, valid [`tls::CA_VALIDITY_SECS`].
pub fn generate_ca(cluster: &str, namespace: &str, now: SystemTime) -> Result<Ca, CertError> {
    generate_named_ca(cluster, namespace, "cluster", now)
}

/// A new self-signed clients CA for Cluster `namespace/cluster` (it signs the certificates of
/// `tls` Users, which listeners with `tls` authentication trust), valid
/// [`tls::CA_VALIDITY_SECS`].
pub fn generate_clients_ca(
    cluster: &str,
    namespace: &str,
    now: SystemTime,
) -> Result<Ca, CertError> {
    generate_named_ca(cluster, namespace, "clients", now)
}

fn generate_named_ca(
    cluster: &str,
    namespace: &str,
    what: &str,
    now: SystemTime,
) -> Result<Ca, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_name(cluster, namespace, what);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, now, tls::CA_VALIDITY_SECS);
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The subject `O=strait.dev, CN=<common_name>` (at most 64 characters).
fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name_of(common_name));
    dn
}

/// The first certificate in a PEM buffer, DER.
fn first_certificate(pem: &str) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CertError::Invalid(format!("cannot parse certificate: {e}")))
}

/// Signs broker certificates with the cluster CA.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_der: Vec<u8>,
}

impl Signer {
    /// The signer of `ca`; an error when its certificate or key cannot be read or do not match.
    pub fn new(ca: &Ca) -> Result<Signer, CertError> {
        let key = KeyPair::from_pem(&ca.key_pem)
            .map_err(|e| CertError::Invalid(format!("CA key: {e}")))?;
        let ca_der = first_certificate(&ca.cert_pem)
            .ok_or_else(|| CertError::Invalid("CA certificate: no CERTIFICATE block".into()))?;
        let cert = parse(&ca_der)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(CertError::Invalid(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der.as_slice().into(), key)
            .map_err(|e| CertError::Invalid(format!("CA certificate: {e}")))?;
        Ok(Signer {
            issuer,
            ca_pem: ca.cert_pem.clone(),
            ca_der,
        })
    }

    /// A new key and certificate for a broker, subject `O=strait.dev, CN=<common_name>`, with
    /// names `sans`, valid [`tls::BROKER_VALIDITY_SECS`] from `now`, for server and client
    /// authentication (brokers present it to each other on the replication listener): the PEM
    /// keystore (key, certificate, CA certificate).
    pub fn issue(
        &self,
        common_name: &str,
        sans: &Sans,
        now: SystemTime,
    ) -> Result<String, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s {
                San::Dns(name) => Ok(SanType::DnsName(name.clone().try_into()?)),
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // Client auth too: brokers show it to each other for inter-broker mutual TLS.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params, now, tls::BROKER_VALIDITY_SECS);
        self.sign(params, &key)
    }

    /// A new client-only key and certificate for the operator's admin client (subject
    /// `O=strait.dev, CN=strait-operator`, no names), valid [`tls::OPERATOR_VALIDITY_SECS`]
    /// from `now`: the PEM keystore (key, certificate, CA certificate).
    pub fn issue_operator(&self, now: SystemTime) -> Result<String, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(OPERATOR_COMMON_NAME);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, now, tls::OPERATOR_VALIDITY_SECS);
        self.sign(params, &key)
    }

    /// A new client-only key and certificate for `tls` User `user` (subject `CN=<user>` alone,
    /// so that the broker's principal is `User:CN=<user>`, as with Strimzi), valid
    /// [`tls::USER_VALIDITY_SECS`] from `now`: the key and the certificate, PEM. `user` must
    /// fit a common name (64 characters).
    pub fn issue_user(&self, user: &str, now: SystemTime) -> Result<(String, String), CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, now, tls::USER_VALIDITY_SECS);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((key.serialize_pem(), cert.pem()))
    }

    /// Signs `params` for `key`: the keystore (key, leaf, CA certificate).
    fn sign(&self, mut params: CertificateParams, key: &KeyPair) -> Result<String, CertError> {
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(key, &self.issuer)?;
        Ok(format!(
            "{}{}{}",
            key.serialize_pem(),
            cert.pem(),
            self.ca_pem()
        ))
    }

    /// The CA certificate, PEM, ending with a line break.
    pub fn ca_pem(&self) -> String {
        let mut ca = self.ca_pem.clone();
        if !ca.ends_with('\n') {
            ca.push('\n');
        }
        ca
    }

    /// What the stored keystore `pem` holds: its leaf certificate's names, expiry and whether
    /// this CA signed it; [`Existing::Unreadable`] without a private key or a parsable leaf.
    pub fn inspect(&self, pem: &str) -> Existing {
        let has_key = Pem::iter_from_buffer(pem.as_bytes())
            .filter_map(Result::ok)
            .any(|p| p.label.ends_with("PRIVATE KEY"));
        let Some(der) = first_certificate(pem).filter(|_| has_key) else {
            return Existing::Unreadable;
        };
        let (Ok(leaf), Ok(ca)) = (parse(&der), parse(&self.ca_der)) else {
            return Existing::Unreadable;
        };
        let Some(sans) = sans_of(&leaf) else {
            return Existing::Unreadable;
        };
        Existing::Issued {
            sans,
            not_after: leaf.validity().not_after.timestamp(),
            by_current_ca: leaf.verify_signature(Some(ca.public_key())).is_ok(),
        }
    }
}

/// The DNS and IP subject alternative names of a certificate; `None` when malformed.
fn sans_of(cert: &X509Certificate<'_>) -> Option<Sans> {
    let mut sans = Sans::new();
    let Some(ext) = cert.subject_alternative_name().ok()? else {
        return Some(sans);
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(dns) => {
                sans.insert(San::Dns(dns.to_ascii_lowercase()));
            }
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                    16 => std::net::IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                    _ => return None,
                };
                sans.insert(San::Ip(ip));
            }
            _ => {}
        }
    }
    Some(sans)
}

/// Seconds since the Unix epoch of `t` (0 before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .try_into()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    fn sans() -> Sans {
        [
            San::Dns("kafka-z0-0.kafka-brokers.ns.svc".into()),
            San::Dns("kafka-bootstrap.ns.svc".into()),
            San::Ip("10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))),
        ]
        .into()
    }

    fn certs_of(pem: &str) -> Vec<CertificateDer<'static>> {
        Pem::iter_from_buffer(pem.as_bytes())
            .filter_map(Result::ok)
            .filter(|p| p.label == "CERTIFICATE")
            .map(|p| CertificateDer::from(p.contents))
            .collect()
    }

    /// A rustls verifier trusting only `ca`, as a client given `ca.crt` would.
    fn verifier(ca: &Ca) -> Arc<WebPkiServerVerifier> {
        let mut roots = RootCertStore::empty();
        for c in certs_of(&ca.cert_pem) {
            roots.add(c).unwrap_or_else(|e| panic!("root: {e}"));
        }
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap_or_else(|e| panic!("verifier: {e}"))
    }

    fn verify(ca: &Ca, keystore: &str, name: &str) -> Result<(), rustls::Error> {
        let chain = certs_of(keystore);
        let server = ServerName::try_from(name.to_owned()).unwrap_or_else(|e| panic!("{e}"));
        verifier(ca)
            .verify_server_cert(&chain[0], &chain[1..], &server, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn broker_certificates_chain_to_the_ca_for_their_names_only() {
        let now = SystemTime::now();
        let ca = generate_ca("kafka", "ns", now).unwrap_or_else(|e| panic!("ca: {e}"));
        assert!(ca.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
        let keystore = signer
            .issue("kafka-z0-0", &sans(), now)
            .unwrap_or_else(|e| panic!("issue: {e}"));
        // Key first, then the chain, leaf first.
        let labels: Vec<String> = Pem::iter_from_buffer(keystore.as_bytes())
            .filter_map(Result::ok)
            .map(|p| p.label)
            .collect();
        assert_eq!(labels, ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]);
        assert!(verify(&ca, &keystore, "kafka-z0-0.kafka-brokers.ns.svc").is_ok());
        assert!(verify(&ca, &keystore, "kafka-bootstrap.ns.svc").is_ok());
        assert!(verify(&ca, &keystore, "10.0.0.1").is_ok());
        assert!(verify(&ca, &keystore, "kafka-z0-1.kafka-brokers.ns.svc").is_err());
        assert!(verify(&ca, &keystore, "10.0.0.2").is_err());
        // Another cluster's CA does not vouch for it.
        let other = generate_ca("kafka", "ns", now).unwrap_or_else(|e| panic!("ca: {e}"));
        assert!(verify(&other, &keystore, "kafka-bootstrap.ns.svc").is_err());

        match signer.inspect(&keystore) {
            Existing::Issued {
                sans: read,
                not_after,
                by_current_ca,
            } => {
                assert_eq!(read, sans());
                assert!(by_current_ca);
                let left = not_after - unix_secs(now);
                assert!(
                    (tls::BROKER_VALIDITY_SECS - 60..=tls::BROKER_VALIDITY_SECS).contains(&left),
                    "{left}"
                );
            }
            Existing::Unreadable => panic!("unreadable"),
        }
        let other_signer = Signer::new(&other).unwrap_or_else(|e| panic!("signer: {e}"));
        assert!(matches!(
            other_signer.inspect(&keystore),
            Existing::Issued {
                by_current_ca: false,
                ..
            }
        ));
        assert_eq!(signer.inspect("garbage"), Existing::Unreadable);
        // A certificate without its key is no keystore.
        let no_key = keystore
            .split_once("-----END PRIVATE KEY-----\n")
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default();
        assert_eq!(signer.inspect(&no_key), Existing::Unreadable);
    }

    #[test]
    fn user_certificates_name_the_user_alone_and_chain_to_the_clients_ca() {
        let now = SystemTime::now();
        let ca = generate_clients_ca("kafka", "ns", now).unwrap_or_else(|e| panic!("ca: {e}"));
        let ca_der = first_certificate(&ca.cert_pem).unwrap_or_default();
        let parsed_ca = parse(&ca_der).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parsed_ca.subject().to_string(),
            "O=strait.dev, CN=ns/kafka clients CA"
        );
        let signer = Signer::new(&ca).unwrap_or_else(|e| panic!("signer: {e}"));
        let (key, cert) = signer
            .issue_user("alice", now)
            .unwrap_or_else(|e| panic!("issue: {e}"));
        let der = first_certificate(&cert).unwrap_or_default();
        let leaf = parse(&der).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(leaf.subject().to_string(), "CN=alice");
        match signer.inspect(&format!("{key}{cert}")) {
            Existing::Issued {
                sans,
                not_after,
                by_current_ca,
            } => {
                assert!(sans.is_empty());
                assert!(by_current_ca);
                let left = not_after - unix_secs(now);
                assert!(
                    (tls::USER_VALIDITY_SECS - 60..=tls::USER_VALIDITY_SECS).contains(&left),
                    "{left}"
                );
            }
            Existing::Unreadable => panic!("unreadable"),
        }
        let cluster_ca = generate_ca("kafka", "ns", now).unwrap_or_else(|e| panic!("ca: {e}"));
        let other = Signer::new(&cluster_ca).unwrap_or_else(|e| panic!("signer: {e}"));
        assert!(matches!(
            other.inspect(&format!("{key}{cert}")),
            Existing::Issued {
                by_current_ca: false,
                ..
            }
        ));
    }

    #[test]
    fn a_ca_is_reloaded_from_its_pem_and_refused_with_a_foreign_key() {
        let now = SystemTime::now();
        let ca = generate_ca("kafka", "ns", now).unwrap_or_else(|e| panic!("ca: {e}"));
        let other = generate_ca("kafka", "ns", now).unwrap_or_else(|e| panic!("ca: {e}"));
        let mixed = Ca {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        assert!(Signer::new(&mixed).is_err());
        assert!(
            Signer::new(&Ca {
                cert_pem: "nope".into(),
                key_pem: ca.key_pem.clone()
            })
            .is_err()
        );
        let ca_cert = first_certificate(&ca.cert_pem).unwrap_or_default();
        let parsed = parse(&ca_cert).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.is_ca());
        let left = parsed.validity().not_after.timestamp() - unix_secs(now);
        assert!(left > tls::CA_VALIDITY_SECS - 60, "{left}");
    }
}
