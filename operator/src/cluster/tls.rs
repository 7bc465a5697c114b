//! Which certificates the brokers of a Cluster need, for mutual TLS on the replication listener
//! and for its TLS listeners, as pure decisions; keys and signatures are made in
//! `certs`.
//!
//! How a Cluster replicates ([`Replication`]) is decided from its StatefulSets
//! ([`replication_of`]): a Cluster whose brokers an earlier operator version started (their pod
//! templates lack [`REPLICATION_ANNOTATION`]) keeps plaintext replication, since switching the
//! inter-broker listener's protocol in one roll would split the cluster; every other Cluster
//! replicates over mutual TLS.
//!
//! Each broker gets one certificate, signed by the cluster CA, whose subject alternative names
//! cover every name a peer or client may reach it by on the replication listener or any TLS
//! listener (one certificate serves them all): its pod's DNS names behind the headless Service
//! (which brokers advertise on REPLICATION and dial each other by); the internal bootstrap
//! Service (the operator's admin client dials REPLICATION through it); each TLS listener's bootstrap Service
//! (a bootstrap connection lands on any broker); for external listeners its per-broker Service's
//! in-cluster names (advertised until the external address is known) and, once known, the
//! external addresses: its own load balancer's and the bootstrap load balancer's ingress host
//! name or IP, and for `nodeport` listeners the IPs of the nodes running broker pods (a client
//! reaches the bootstrap NodePort through any of them).
//!
//! A certificate is (re)issued when missing, unreadable, not signed by the current CA, within
//! [`RENEW_BEFORE_SECS`] of expiry, or when its names differ from those wanted: an address that
//! becomes known later (a load balancer's ingress, a new node) is added at the reconcile that
//! sees it. Node IPs only accumulate while a TLS `nodeport` listener exists (the IP SANs of the
//! current certificate are kept): a broker that restarts is briefly on no node, and dropping its
//! node's IP then would reissue, and restart, every broker on each roll.
//!
//! Replacing the certificate of a broker (not issuing a new broker's first one) raises its
//! zone's certificate generation, which the zone's pod template carries, so the zone's brokers
//! restart onto it through the usual one-at-a-time roll.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use strait_crds::ClusterSpec;
use strait_crds::cluster::{Listener, ListenerType};

use crate::cluster::external::{self, ExternalAddress, ExternalAddresses};
use crate::cluster::identity::ClusterRef;
use crate::cluster::quorum::zone_of;
use crate::names;

/// A broker certificate is renewed once it expires within this many seconds (30 days).
pub const RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;
/// Validity of a broker certificate (one year).
pub const BROKER_VALIDITY_SECS: i64 = 365 * 24 * 3600;
/// Validity of the operator's client certificate (90 days; renewed [`RENEW_BEFORE_SECS`] before
/// it ends, so it is replaced about every two months).
pub const OPERATOR_VALIDITY_SECS: i64 = 90 * 24 * 3600;
/// Validity of a `tls` User's certificate (Strimzi's default, renewed
/// [`RENEW_BEFORE_SECS`] before it ends).
pub const USER_VALIDITY_SECS: i64 = 365 * 24 * 3600;
/// Validity of the cluster CA (five years).
pub const CA_VALIDITY_SECS: i64 = 5 * 365 * 24 * 3600;
/// The cluster DNS domain the long Service names use.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Prefix of the broker certificates Secret's annotations with each zone's generation.
pub const GENERATION_ANNOTATION_PREFIX: &str = "strait.dev/certificate-generation-z";

/// One subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    /// A DNS name (lower case).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl San {
    /// A host as a SAN: an IP address when it parses as one, else a DNS name.
    pub fn host(host: &str) -> San {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_or_else(|_| San::Dns(host.to_ascii_lowercase()), San::Ip)
    }
}

/// The names of one certificate.
pub type Sans = BTreeSet<San>;

/// Pod template annotation of the brokers of a Cluster replicating over mutual TLS.
pub const REPLICATION_ANNOTATION: &str = "strait.dev/replication";
/// Its value.
pub const REPLICATION_MUTUAL_TLS: &str = "mutual-tls";
/// Key of the CA certificate in the broker certificates Secret (the brokers' truststore).
pub const TRUSTSTORE_KEY: &str = "ca.crt";

pub use crate::cluster::identity::Replication;

/// Pod template annotation of the brokers of a Cluster whose CONTROLLER listener (the metadata
/// quorum) uses mutual TLS.
pub const CONTROLLER_ANNOTATION: &str = "strait.dev/controller";

/// How the brokers made from a pod template (or a pod) with `annotations` replicate and reach
/// the quorum: without [`REPLICATION_ANNOTATION`] plaintext (an earlier operator version),
/// without [`CONTROLLER_ANNOTATION`] mutual TLS replication but a plaintext quorum (a version
/// before TLS controllers), else mutual TLS for both.
pub fn replication_marked(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Replication {
    let marked = |key: &str| {
        annotations.and_then(|a| a.get(key)).map(String::as_str) == Some(REPLICATION_MUTUAL_TLS)
    };
    if !marked(REPLICATION_ANNOTATION) {
        Replication::Plaintext
    } else if !marked(CONTROLLER_ANNOTATION) {
        Replication::MutualTlsPlaintextQuorum
    } else {
        Replication::MutualTls
    }
}

/// The weaker of two: a Cluster whose zones differ keeps what its oldest brokers speak.
pub fn weakest(a: Replication, b: Replication) -> Replication {
    let rank = |r| match r {
        Replication::Plaintext => 0,
        Replication::MutualTlsPlaintextQuorum => 1,
        Replication::MutualTls => 2,
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// How a Cluster replicates, from its zones' StatefulSets as they exist: the weakest of their
/// templates' markings (see [`replication_marked`]); mutual TLS for both listeners when there
/// is none (a new Cluster). The mode is sticky: nothing here ever upgrades a running Cluster.
pub fn replication_of<'a>(existing: impl IntoIterator<Item = &'a StatefulSet>) -> Replication {
    existing
        .into_iter()
        .map(|sts| {
            replication_marked(
                sts.spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.as_ref()),
            )
        })
        .fold(Replication::MutualTls, weakest)
}

/// How a broker pod replicates, from its annotations (see [`replication_marked`]): what tells
/// for a zone while its StatefulSet is being recreated (see `storage`) and so cannot.
pub fn pod_replication(pod: &Pod) -> Replication {
    replication_marked(pod.metadata.annotations.as_ref())
}

/// The Cluster's TLS listeners.
pub fn tls_listeners(spec: &ClusterSpec) -> impl Iterator<Item = &Listener> {
    spec.listeners.iter().filter(|l| l.tls)
}

/// Whether any listener serves TLS (then the brokers need certificates).
pub fn has_tls(spec: &ClusterSpec) -> bool {
    tls_listeners(spec).next().is_some()
}

/// Whether the brokers need certificates: for mutual TLS replication or a TLS listener.
pub fn needs_certificates(spec: &ClusterSpec, replication: Replication) -> bool {
    replication.replication_tls() || has_tls(spec)
}

/// Whether a `nodeport` listener serves TLS (then node IPs are in the certificates).
pub fn has_nodeport_tls(spec: &ClusterSpec) -> bool {
    tls_listeners(spec).any(|l| l.kind == ListenerType::Nodeport)
}

/// What the reconcile knows about addresses outside the cluster.
#[derive(Clone, Copy, Debug)]
pub struct KnownAddresses<'a> {
    /// The brokers' external addresses (from their per-broker Services).
    pub external: &'a ExternalAddresses,
    /// The bootstrap Services as applied, by name.
    pub bootstrap: &'a BTreeMap<String, Service>,
    /// IPs of the nodes running broker pods.
    pub host_ips: &'a BTreeSet<String>,
}

/// A Service's DNS names from inside the cluster: short, namespaced, `.svc` and fully qualified.
fn service_names(sans: &mut Sans, service: &str, namespace: &str) {
    for name in [
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{CLUSTER_DOMAIN}"),
    ] {
        sans.insert(San::Dns(name));
    }
}

/// The names broker `node_id`'s certificate must hold (empty when it needs none).
pub fn broker_sans(c: &ClusterRef, node_id: i32, known: &KnownAddresses) -> Sans {
    let mut sans = Sans::new();
    if !needs_certificates(c.spec, c.replication) {
        return sans;
    }
    let pod = names::pod(c.name, zone_of(node_id), node_id);
    let headless = names::headless_service(c.name);
    sans.insert(San::Dns(format!("{pod}.{headless}.{}.svc", c.namespace)));
    sans.insert(San::Dns(format!(
        "{pod}.{headless}.{}.svc.{CLUSTER_DOMAIN}",
        c.namespace
    )));
    if c.replication.replication_tls() {
        service_names(
            &mut sans,
            &names::bootstrap_service(c.name, None),
            c.namespace,
        );
    }
    for l in tls_listeners(c.spec) {
        if l.kind == ListenerType::Internal {
            service_names(
                &mut sans,
                &names::bootstrap_service(c.name, None),
                c.namespace,
            );
            continue;
        }
        let bootstrap = names::bootstrap_service(c.name, Some(&l.name));
        service_names(&mut sans, &bootstrap, c.namespace);
        service_names(
            &mut sans,
            &names::broker_service(c.name, &l.name, node_id),
            c.namespace,
        );
        if let Some(ExternalAddress::Host(host, _)) = known.external.get(&l.name, node_id) {
            sans.insert(San::host(host));
        }
        if let Some(ExternalAddress::Host(host, _)) = known
            .bootstrap
            .get(&bootstrap)
            .and_then(|svc| external::service_address(l, svc))
        {
            sans.insert(San::host(&host));
        }
        if l.kind == ListenerType::Nodeport {
            sans.extend(
                known
                    .host_ips
                    .iter()
                    .filter_map(|ip| ip.parse::<IpAddr>().ok().map(San::Ip)),
            );
        }
    }
    sans
}

/// What a stored broker certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The entry holds no parsable key and certificate chain.
    Unreadable,
    /// A certificate with these properties.
    Issued {
        /// Its subject alternative names.
        sans: Sans,
        /// End of validity, Unix seconds.
        not_after: i64,
        /// Its signature verifies with the current CA's key.
        by_current_ca: bool,
    },
}

/// Why a certificate is (re)issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The broker has none yet.
    New,
    /// The stored one cannot be read.
    Unreadable,
    /// Another CA signed it (the CA was replaced).
    OtherCa,
    /// It expires within [`RENEW_BEFORE_SECS`].
    Expiring,
    /// Its names differ from those wanted.
    NamesChanged,
}

/// Why the certificate `existing` (`None`: there is none) must be replaced by one for `wanted`
/// at `now` (Unix seconds); `None` when it is fine.
pub fn reissue_reason(existing: Option<&Existing>, wanted: &Sans, now: i64) -> Option<Reason> {
    match existing {
        None => Some(Reason::New),
        Some(Existing::Unreadable) => Some(Reason::Unreadable),
        Some(Existing::Issued {
            sans,
            not_after,
            by_current_ca,
        }) => {
            if !by_current_ca {
                Some(Reason::OtherCa)
            } else if *not_after - now < RENEW_BEFORE_SECS {
                Some(Reason::Expiring)
            } else if sans != wanted {
                Some(Reason::NamesChanged)
            } else {
                None
            }
        }
    }
}

/// What to issue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertPlan {
    /// Pod name → the names its new certificate gets and why, for each certificate to issue.
    pub issue: BTreeMap<String, (Sans, Reason)>,
    /// Zones in which a certificate is replaced (not issued for the first time): their brokers
    /// restart onto the new ones.
    pub replaced_zones: BTreeSet<usize>,
}

/// Decides which brokers of `desired` (node id → wanted names) get a new certificate, given the
/// stored ones by pod name. With `keep_ips` (a TLS `nodeport` listener) the IP names of a
/// current certificate are kept (see the module docs).
pub fn plan(
    cluster: &str,
    desired: &BTreeMap<i32, Sans>,
    existing: &BTreeMap<String, Existing>,
    keep_ips: bool,
    now: i64,
) -> CertPlan {
    let mut out = CertPlan::default();
    for (id, wanted) in desired {
        let pod = names::pod(cluster, zone_of(*id), *id);
        let current = existing.get(&pod);
        let mut wanted = wanted.clone();
        if keep_ips
            && let Some(Existing::Issued {
                sans,
                by_current_ca: true,
                ..
            }) = current
        {
            wanted.extend(sans.iter().filter(|s| matches!(s, San::Ip(_))).cloned());
        }
        if let Some(reason) = reissue_reason(current, &wanted, now) {
            if reason != Reason::New {
                out.replaced_zones.insert(zone_of(*id));
            }
            out.issue.insert(pod, (wanted, reason));
        }
    }
    out
}

/// The zones' certificate generations recorded in the broker certificates Secret's annotations.
pub fn generations(annotations: &BTreeMap<String, String>) -> BTreeMap<usize, u64> {
    annotations
        .iter()
        .filter_map(|(k, v)| {
            let zone = k.strip_prefix(GENERATION_ANNOTATION_PREFIX)?.parse().ok()?;
            Some((zone, v.parse().ok()?))
        })
        .collect()
}

/// `previous` with the generation of each zone in `replaced` raised by one.
pub fn next_generations(
    previous: &BTreeMap<usize, u64>,
    replaced: &BTreeSet<usize>,
) -> BTreeMap<usize, u64> {
    let mut out = previous.clone();
    for zone in replaced {
        *out.entry(*zone).or_insert(0) += 1;
    }
    out
}

/// The annotations recording `generations` (see [`generations`]).
pub fn generation_annotations(generations: &BTreeMap<usize, u64>) -> BTreeMap<String, String> {
    generations
        .iter()
        .map(|(zone, g)| {
            (
                format!("{GENERATION_ANNOTATION_PREFIX}{zone}"),
                g.to_string(),
            )
        })
        .collect()
}

/// The key of a broker's entry in the broker certificates Secret (the file name in the pod).
pub fn keystore_key(pod: &str) -> String {
    format!("{pod}.pem")
}

/// Kafka's per-listener config prefix of a listener (`listener.name.<name>.`, lower case).
pub fn listener_prefix(listener: &str) -> String {
    format!("listener.name.{}.", listener.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::{cref, spec};
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use strait_crds::cluster::Listener;

    fn dns(name: &str) -> San {
        San::Dns(name.to_owned())
    }

    fn ip(ip: &str) -> San {
        San::Ip(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}")))
    }

    fn nothing_known<T>(f: impl FnOnce(&KnownAddresses) -> T) -> T {
        let external = ExternalAddresses::default();
        let bootstrap = BTreeMap::new();
        let host_ips = BTreeSet::new();
        f(&KnownAddresses {
            external: &external,
            bootstrap: &bootstrap,
            host_ips: &host_ips,
        })
    }

    fn with(s: &mut ClusterSpec, name: &str, port: i32, kind: ListenerType, tls: bool) {
        s.listeners.push(Listener {
            name: name.into(),
            port,
            kind,
            tls,
            authentication: None,
        });
    }

    fn plaintext_replication(spec: &ClusterSpec) -> ClusterRef<'_> {
        ClusterRef {
            replication: Replication::Plaintext,
            ..cref(spec)
        }
    }

    #[test]
    fn pods_say_how_their_brokers_replicate_and_reach_the_quorum() {
        let mut pod = Pod::default();
        assert_eq!(pod_replication(&pod), Replication::Plaintext);
        let mut annotations = BTreeMap::from([(
            REPLICATION_ANNOTATION.to_owned(),
            REPLICATION_MUTUAL_TLS.to_owned(),
        )]);
        pod.metadata.annotations = Some(annotations.clone());
        assert_eq!(pod_replication(&pod), Replication::MutualTlsPlaintextQuorum);
        annotations.insert(
            CONTROLLER_ANNOTATION.to_owned(),
            REPLICATION_MUTUAL_TLS.to_owned(),
        );
        pod.metadata.annotations = Some(annotations);
        assert_eq!(pod_replication(&pod), Replication::MutualTls);
        // Mixed zones keep what the oldest speak.
        assert_eq!(
            weakest(
                Replication::MutualTls,
                Replication::MutualTlsPlaintextQuorum
            ),
            Replication::MutualTlsPlaintextQuorum
        );
        assert_eq!(
            weakest(Replication::Plaintext, Replication::MutualTls),
            Replication::Plaintext
        );
    }

    #[test]
    fn plaintext_replication_and_no_tls_listener_no_names() {
        let s = spec(3, &["a", "b"]);
        assert!(!has_tls(&s));
        assert!(!needs_certificates(&s, Replication::Plaintext));
        assert!(nothing_known(|k| broker_sans(&plaintext_replication(&s), 1000, k)).is_empty());
    }

    #[test]
    fn mutual_tls_replication_covers_the_pod_and_the_admin_bootstrap_name() {
        // Brokers dial each other by the pod names they advertise on REPLICATION; the
        // operator's admin client dials the internal bootstrap Service.
        let s = spec(3, &["a", "b"]);
        assert!(needs_certificates(&s, Replication::MutualTls));
        let sans = nothing_known(|k| broker_sans(&cref(&s), 1000, k));
        assert_eq!(sans, pod_and_bootstrap_names_of_broker_1000());
        // The advertised REPLICATION host of every broker is in its certificate.
        for id in [0, 1, 1000] {
            let advertised = crate::cluster::config::advertised_listeners(
                "kafka",
                "ns",
                &s,
                &ExternalAddresses::default(),
                Some(id),
            )
            .replace("${HOSTNAME}", &names::pod("kafka", zone_of(id), id));
            let host = advertised
                .strip_prefix("REPLICATION://")
                .and_then(|a| a.split(':').next())
                .unwrap_or_default()
                .to_owned();
            let sans = nothing_known(|k| broker_sans(&cref(&s), id, k));
            assert!(sans.contains(&San::Dns(host.clone())), "{host}");
        }
    }

    #[test]
    fn internal_tls_listener_covers_the_pod_and_the_bootstrap_service() {
        let mut s = spec(3, &["a", "b"]);
        s.listeners[0].tls = true;
        let sans = nothing_known(|k| broker_sans(&cref(&s), 1000, k));
        assert_eq!(sans, pod_and_bootstrap_names_of_broker_1000());
    }

    /// Broker 1000's pod names and the internal bootstrap Service in all its forms.
    fn pod_and_bootstrap_names_of_broker_1000() -> Sans {
        [
            "kafka-z1-1000.kafka-brokers.ns.svc",
            "kafka-z1-1000.kafka-brokers.ns.svc.cluster.local",
            "kafka-bootstrap",
            "kafka-bootstrap.ns",
            "kafka-bootstrap.ns.svc",
            "kafka-bootstrap.ns.svc.cluster.local",
        ]
        .into_iter()
        .map(dns)
        .collect()
    }

    fn lb_service(host: Option<&str>, ip_addr: Option<&str>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("ext".into()),
                    port: 9094,
                    node_port: Some(31500),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        hostname: host.map(str::to_owned),
                        ip: ip_addr.map(str::to_owned),
                        ..LoadBalancerIngress::default()
                    }]),
                }),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn loadbalancer_tls_listener_adds_service_names_then_known_ingresses() {
        let mut s = spec(3, &["a"]);
        with(&mut s, "ext", 9094, ListenerType::Loadbalancer, true);
        // The plaintext internal listener adds nothing of its own (here with plaintext
        // replication, which adds nothing either).
        let pending = nothing_known(|k| broker_sans(&plaintext_replication(&s), 1, k));
        assert!(pending.contains(&dns("kafka-ext-1.ns.svc")));
        assert!(pending.contains(&dns("kafka-ext-bootstrap.ns.svc.cluster.local")));
        assert!(pending.contains(&dns("kafka-z0-1.kafka-brokers.ns.svc")));
        assert!(!pending.contains(&dns("kafka-bootstrap.ns.svc")));
        assert!(!pending.iter().any(|s| matches!(s, San::Ip(_))));
        assert_eq!(pending.len(), 10);

        let external = ExternalAddresses {
            known: BTreeMap::from([
                (
                    ("ext".to_owned(), 1),
                    ExternalAddress::Host("B1.example.com".into(), 9094),
                ),
                (
                    ("ext".to_owned(), 2),
                    ExternalAddress::Host("203.0.113.2".into(), 9094),
                ),
            ]),
            pending: Vec::new(),
        };
        let bootstrap = BTreeMap::from([(
            "kafka-ext-bootstrap".to_owned(),
            lb_service(None, Some("2001:db8::1")),
        )]);
        let host_ips = BTreeSet::from(["10.0.0.1".to_owned()]);
        let known = KnownAddresses {
            external: &external,
            bootstrap: &bootstrap,
            host_ips: &host_ips,
        };
        let b1 = broker_sans(&plaintext_replication(&s), 1, &known);
        assert_eq!(
            b1.difference(&pending).cloned().collect::<Vec<_>>(),
            [dns("b1.example.com"), ip("2001:db8::1")]
        );
        let b2 = broker_sans(&plaintext_replication(&s), 2, &known);
        assert!(b2.contains(&ip("203.0.113.2")));
        assert!(!b2.contains(&dns("b1.example.com")));
        // Node IPs matter to nodeport listeners only.
        assert!(!b2.contains(&ip("10.0.0.1")));
    }

    #[test]
    fn nodeport_tls_listener_adds_every_broker_node() {
        let mut s = spec(3, &["a"]);
        with(&mut s, "np", 9095, ListenerType::Nodeport, true);
        with(&mut s, "lb", 9096, ListenerType::Loadbalancer, false);
        let external = ExternalAddresses {
            known: BTreeMap::from([
                (("np".to_owned(), 0), ExternalAddress::NodePort(31000)),
                (
                    ("lb".to_owned(), 0),
                    ExternalAddress::Host("lb0.example.com".into(), 9096),
                ),
            ]),
            pending: Vec::new(),
        };
        let bootstrap = BTreeMap::new();
        let host_ips = BTreeSet::from(["10.0.0.1".to_owned(), "fd00::2".to_owned()]);
        let known = KnownAddresses {
            external: &external,
            bootstrap: &bootstrap,
            host_ips: &host_ips,
        };
        let sans = broker_sans(&cref(&s), 0, &known);
        assert!(sans.contains(&ip("10.0.0.1")));
        assert!(sans.contains(&ip("fd00::2")));
        assert!(sans.contains(&dns("kafka-np-0.ns.svc")));
        // The plaintext load balancer listener is not the certificate's business.
        assert!(!sans.contains(&dns("lb0.example.com")));
        assert!(!sans.contains(&dns("kafka-lb-0.ns.svc")));
        assert!(has_nodeport_tls(&s));
    }

    fn issued(sans: &Sans, not_after: i64, by_current_ca: bool) -> Existing {
        Existing::Issued {
            sans: sans.clone(),
            not_after,
            by_current_ca,
        }
    }

    #[test]
    fn reissue_when_missing_unreadable_foreign_expiring_or_renamed() {
        let now = 1_000_000_000;
        let year = now + BROKER_VALIDITY_SECS;
        let names: Sans = [dns("a")].into();
        let other: Sans = [dns("a"), dns("b")].into();
        assert_eq!(reissue_reason(None, &names, now), Some(Reason::New));
        assert_eq!(
            reissue_reason(Some(&Existing::Unreadable), &names, now),
            Some(Reason::Unreadable)
        );
        assert_eq!(
            reissue_reason(Some(&issued(&names, year, false)), &names, now),
            Some(Reason::OtherCa)
        );
        assert_eq!(
            reissue_reason(Some(&issued(&names, year, true)), &names, now),
            None
        );
        assert_eq!(
            reissue_reason(Some(&issued(&names, year, true)), &other, now),
            Some(Reason::NamesChanged)
        );
        // 31 days left: kept; 29 days left: renewed.
        let day = 24 * 3600;
        assert_eq!(
            reissue_reason(Some(&issued(&names, now + 31 * day, true)), &names, now),
            None
        );
        assert_eq!(
            reissue_reason(Some(&issued(&names, now + 29 * day, true)), &names, now),
            Some(Reason::Expiring)
        );
    }

    #[test]
    fn plan_raises_the_generation_only_where_running_certificates_change() {
        let now = 1_000_000_000;
        let year = now + BROKER_VALIDITY_SECS;
        let a: Sans = [dns("a")].into();
        let desired = BTreeMap::from([(0, a.clone()), (1, a.clone()), (1000, a.clone())]);
        // Broker 1 is new (scale-up), broker 1000's names changed, broker 0 is current.
        let existing = BTreeMap::from([
            ("kafka-z0-0".to_owned(), issued(&a, year, true)),
            (
                "kafka-z1-1000".to_owned(),
                issued(&[dns("b")].into(), year, true),
            ),
            ("kafka-z0-7".to_owned(), issued(&a, year, true)),
        ]);
        let p = plan("kafka", &desired, &existing, false, now);
        assert_eq!(
            p.issue,
            BTreeMap::from([
                ("kafka-z0-1".to_owned(), (a.clone(), Reason::New)),
                (
                    "kafka-z1-1000".to_owned(),
                    (a.clone(), Reason::NamesChanged)
                ),
            ])
        );
        assert_eq!(p.replaced_zones, BTreeSet::from([1]));
        let g = next_generations(&BTreeMap::from([(0, 3)]), &p.replaced_zones);
        assert_eq!(g, BTreeMap::from([(0, 3), (1, 1)]));
        let ann = generation_annotations(&g);
        assert_eq!(
            ann.get("strait.dev/certificate-generation-z1")
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(generations(&ann), g);
    }

    #[test]
    fn plan_keeps_node_ips_while_a_nodeport_listener_serves_tls() {
        let now = 1_000_000_000;
        let year = now + BROKER_VALIDITY_SECS;
        let with_ip: Sans = [dns("a"), ip("10.0.0.1")].into();
        let without: Sans = [dns("a")].into();
        let desired = BTreeMap::from([(0, without.clone())]);
        let existing = BTreeMap::from([("kafka-z0-0".to_owned(), issued(&with_ip, year, true))]);
        // The node briefly unknown (the pod restarting): nothing reissued.
        assert_eq!(
            plan("kafka", &desired, &existing, true, now),
            CertPlan::default()
        );
        // A new node: reissued with both.
        let more = BTreeMap::from([(0, [dns("a"), ip("10.0.0.2")].into())]);
        let p = plan("kafka", &more, &existing, true, now);
        assert_eq!(
            p.issue["kafka-z0-0"].0,
            [dns("a"), ip("10.0.0.1"), ip("10.0.0.2")].into()
        );
        // Without a TLS nodeport listener, stale IPs go.
        let p = plan("kafka", &desired, &existing, false, now);
        assert_eq!(p.issue["kafka-z0-0"], (without, Reason::NamesChanged));
    }

    #[test]
    fn hosts_become_ip_or_dns_names() {
        assert_eq!(San::host("10.1.2.3"), ip("10.1.2.3"));
        assert_eq!(San::host("[fd00::1]"), ip("fd00::1"));
        assert_eq!(San::host("LB.Example.com"), dns("lb.example.com"));
        assert_eq!(listener_prefix("TLS"), "listener.name.tls.");
        assert_eq!(keystore_key("kafka-z0-0"), "kafka-z0-0.pem");
    }
}
