//! Names and labels of the objects the operator creates for a Cluster, in one place so that
//! builders, controllers and tests agree.

use std::collections::BTreeMap;

/// Label with the owning Cluster's name.
pub const CLUSTER_LABEL: &str = "strait.dev/cluster";
/// Label with the broker's zone.
pub const ZONE_LABEL: &str = "strait.dev/zone";
/// Label marking broker pods.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Label on the Services of an external listener (its bootstrap and per-broker Services) with
/// the listener's name, so that those of a removed listener can be found.
pub const LISTENER_LABEL: &str = "strait.dev/listener";
/// Label on a per-broker Service with the broker's node id.
pub const NODE_ID_LABEL: &str = "strait.dev/node-id";
/// Label the operator puts on every object it creates (`app.kubernetes.io/managed-by`).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Name of the brokers' data volume claim template (claims are `data-<pod>`).
pub const DATA_VOLUME: &str = "data";
/// Pod-template annotation with the hash of the rendered configuration.
pub const CONFIG_HASH_ANNOTATION: &str = "strait.dev/config-hash";
/// Pod-template annotation with the generation of the zone's broker certificates (raised when
/// a running broker's certificate is replaced, so that the brokers restart onto it).
pub const CERT_GENERATION_ANNOTATION: &str = "strait.dev/certificate-generation";
/// Field manager for server-side apply.
pub const MANAGER: &str = "strait-operator";
/// Mount path of the data volume.
pub const DATA_DIR: &str = "/var/lib/strait";
/// Mount path of the configuration.
pub const CONFIG_DIR: &str = "/etc/strait";
/// Mount path of the brokers' certificates (`<pod>.pem` each); not under [`CONFIG_DIR`], a
/// read-only ConfigMap volume in which no mount point can be made.
pub const TLS_DIR: &str = "/etc/strait-tls";
/// Where brokers mount the clients CA certificate (`ca.crt`), the truststore of listeners with
/// `tls` authentication.
pub const CLIENTS_CA_DIR: &str = "/etc/strait-clients-ca";
/// Where brokers mount the JSON Web Key Set of an `oauth` listener.
pub const OAUTH_DIR: &str = "/etc/strait-oauth";
/// File name of the mounted JSON Web Key Set.
pub const JWKS_FILE: &str = "jwks.json";

/// Labels selecting every broker pod of a cluster.
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "strait".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        (COMPONENT_LABEL.to_owned(), "broker".to_owned()),
        (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
    ])
}

/// Labels on every object of a cluster.
pub fn labels(cluster: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(cluster);
    l.insert(MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned());
    l
}

/// Labels of an external listener's Services: [`labels`] plus the listener and, for a
/// per-broker Service, the node id.
pub fn listener_service_labels(
    cluster: &str,
    listener: &str,
    node_id: Option<i32>,
) -> BTreeMap<String, String> {
    let mut l = labels(cluster);
    l.insert(LISTENER_LABEL.to_owned(), listener.to_owned());
    if let Some(id) = node_id {
        l.insert(NODE_ID_LABEL.to_owned(), id.to_string());
    }
    l
}

/// Label selector of the Services of a cluster's external listeners (bootstrap and per-broker):
/// this cluster's, created by the operator, carrying a listener.
pub fn listener_services_selector(cluster: &str) -> String {
    format!("{CLUSTER_LABEL}={cluster},{MANAGED_BY_LABEL}={MANAGER},{LISTENER_LABEL}")
}

/// `key=value,...` of the selector labels (the scale subresource's selector).
pub fn selector_string(cluster: &str) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// ConfigMap with `server.properties`.
pub fn config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// Headless Service giving each broker a stable DNS name.
pub fn headless_service(cluster: &str) -> String {
    format!("{cluster}-brokers")
}

/// Bootstrap Service of a listener (`<cluster>-bootstrap` for internal listeners).
pub fn bootstrap_service(cluster: &str, listener: Option<&str>) -> String {
    match listener {
        None => format!("{cluster}-bootstrap"),
        Some(l) => format!("{cluster}-{l}-bootstrap"),
    }
}

/// Per-broker Service of an external listener.
pub fn broker_service(cluster: &str, listener: &str, node_id: i32) -> String {
    format!("{cluster}-{listener}-{node_id}")
}

/// StatefulSet of the zone at `index` in `spec.zones`.
pub fn statefulset(cluster: &str, zone_index: usize) -> String {
    format!("{cluster}-z{zone_index}")
}

/// Pod name of a broker (StatefulSet name plus ordinal, which is the node id).
pub fn pod(cluster: &str, zone_index: usize, node_id: i32) -> String {
    format!("{}-{node_id}", statefulset(cluster, zone_index))
}

/// PersistentVolumeClaim of a broker's data volume, as the StatefulSet controller names it.
pub fn claim(cluster: &str, zone_index: usize, node_id: i32) -> String {
    format!("{DATA_VOLUME}-{}", pod(cluster, zone_index, node_id))
}

/// ServiceAccount of the broker pods.
pub fn service_account(cluster: &str) -> String {
    format!("{cluster}-broker")
}

/// Secret with the cluster CA's certificate and private key (`ca.crt`, `ca.key`).
pub fn cluster_ca(cluster: &str) -> String {
    format!("{cluster}-cluster-ca")
}

/// Secret with only the cluster CA's certificate (`ca.crt`), for clients to mount and trust.
pub fn cluster_ca_cert(cluster: &str) -> String {
    format!("{cluster}-cluster-ca-cert")
}

/// Secret with the clients CA's certificate and private key (`ca.crt`, `ca.key`): it signs
/// `tls` Users' certificates.
pub fn clients_ca(cluster: &str) -> String {
    format!("{cluster}-clients-ca")
}

/// Secret with only the clients CA's certificate (`ca.crt`): the truststore of listeners with
/// `tls` authentication.
pub fn clients_ca_cert(cluster: &str) -> String {
    format!("{cluster}-clients-ca-cert")
}

/// Secret with every broker's key and certificate chain, `<pod>.pem` each.
pub fn broker_certs(cluster: &str) -> String {
    format!("{cluster}-broker-certs")
}

/// The Secret with the operator's client certificate for a Cluster's replication listener.
pub fn operator_certs(cluster: &str) -> String {
    format!("{cluster}-operator-certs")
}
