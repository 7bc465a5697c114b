//! The certificate Secrets: the cluster CA (private, and its public certificate for clients),
//! the brokers' keystores and the operator's client keystore, from keys made in `certs`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use crate::cluster::certs::{self, Ca};
use crate::cluster::identity::ClusterRef;
use crate::cluster::tls;
use crate::names;

fn secret_object(c: &ClusterRef, name: String, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: c.meta(name),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// The cluster CA Secret: certificate and private key. Created once, then only read.
pub fn cluster_ca_secret(c: &ClusterRef, ca: &Ca) -> Secret {
    secret_object(
        c,
        names::cluster_ca(c.name),
        BTreeMap::from([
            (certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone()),
            (certs::CA_KEY_KEY.to_owned(), ca.key_pem.clone()),
        ]),
    )
}

/// The Secret with only the CA certificate, for clients to trust.
pub fn cluster_ca_cert_secret(c: &ClusterRef, ca: &Ca) -> Secret {
    secret_object(
        c,
        names::cluster_ca_cert(c.name),
        BTreeMap::from([(certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone())]),
    )
}

/// The clients CA Secret: certificate and private key. Created once, then only read.
pub fn clients_ca_secret(c: &ClusterRef, ca: &Ca) -> Secret {
    secret_object(
        c,
        names::clients_ca(c.name),
        BTreeMap::from([
            (certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone()),
            (certs::CA_KEY_KEY.to_owned(), ca.key_pem.clone()),
        ]),
    )
}

/// The Secret with only the clients CA certificate: the truststore of `tls` listeners.
pub fn clients_ca_cert_secret(c: &ClusterRef, ca: &Ca) -> Secret {
    secret_object(
        c,
        names::clients_ca_cert(c.name),
        BTreeMap::from([(certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone())]),
    )
}

/// The broker certificates Secret: `keystores` by key (`<pod>.pem`) and the CA certificate
/// (`ca.crt`, the brokers' truststore), annotated with each zone's certificate generation. One
/// Secret for all brokers because a zone's pods share one pod template, so they can only mount
/// the same Secret.
pub fn broker_certs_secret(
    c: &ClusterRef,
    ca: &Ca,
    mut keystores: BTreeMap<String, String>,
    generations: &BTreeMap<usize, u64>,
) -> Secret {
    keystores.insert(tls::TRUSTSTORE_KEY.to_owned(), ca.cert_pem.clone());
    let mut secret = secret_object(c, names::broker_certs(c.name), keystores);
    secret.metadata.annotations = Some(tls::generation_annotations(generations));
    secret
}

/// The operator's own Secret for a Cluster: its client keystore (`operator.pem`: key,
/// certificate, CA certificate) for the replication listener's mutual TLS, and the CA
/// certificate to trust (`ca.crt`).
pub fn operator_certs_secret(c: &ClusterRef, ca: &Ca, keystore: String) -> Secret {
    secret_object(
        c,
        names::operator_certs(c.name),
        BTreeMap::from([
            (certs::OPERATOR_KEYSTORE_KEY.to_owned(), keystore),
            (certs::CA_CERT_KEY.to_owned(), ca.cert_pem.clone()),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::{cref, spec};

    #[test]
    fn certificate_secrets() {
        let s = spec(3, &["a"]);
        let ca = Ca {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let full = cluster_ca_secret(&cref(&s), &ca);
        assert_eq!(full.metadata.name.as_deref(), Some("kafka-cluster-ca"));
        let keys: Vec<&String> = full.data.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ca.crt", "ca.key"]);
        let public = cluster_ca_cert_secret(&cref(&s), &ca);
        assert_eq!(
            public.metadata.name.as_deref(),
            Some("kafka-cluster-ca-cert")
        );
        assert_eq!(
            public.data,
            Some(BTreeMap::from([(
                "ca.crt".to_owned(),
                ByteString(b"CERT".to_vec())
            )]))
        );
        let brokers = broker_certs_secret(
            &cref(&s),
            &ca,
            BTreeMap::from([("kafka-z0-0.pem".to_owned(), "PEM".to_owned())]),
            &BTreeMap::from([(0, 2)]),
        );
        assert_eq!(brokers.metadata.name.as_deref(), Some("kafka-broker-certs"));
        // Each broker's keystore, and the CA certificate as the brokers' truststore.
        assert_eq!(
            brokers.data,
            Some(BTreeMap::from([
                ("ca.crt".to_owned(), ByteString(b"CERT".to_vec())),
                ("kafka-z0-0.pem".to_owned(), ByteString(b"PEM".to_vec())),
            ]))
        );
        let operator = operator_certs_secret(&cref(&s), &ca, "KEYSTORE".into());
        assert_eq!(
            operator.metadata.name.as_deref(),
            Some("kafka-operator-certs")
        );
        assert_eq!(
            operator.data,
            Some(BTreeMap::from([
                ("ca.crt".to_owned(), ByteString(b"CERT".to_vec())),
                ("operator.pem".to_owned(), ByteString(b"KEYSTORE".to_vec())),
            ]))
        );
        assert!(operator.metadata.owner_references.is_some() == cref(&s).owner.is_some());
        assert_eq!(
            brokers
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("strait.dev/certificate-generation-z0"))
                .map(String::as_str),
            Some("2")
        );
    }
}
