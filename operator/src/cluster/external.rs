//! Addresses of the brokers on external (`nodeport`, `loadbalancer`) listeners, as pure
//! functions of the Services the API server returned.
//!
//! A broker advertises, per external listener, where a client outside the cluster reaches it
//! through its own Service: for NodePort the node the pod runs on (`$HOST_IP`, the downward
//! API's `status.hostIP`, substituted at start) and that Service's allocated `nodePort`; for
//! LoadBalancer the load balancer's ingress host name (else IP) and the listener port. Until a
//! Service has its address (no ingress yet, or no nodePort), the broker advertises the Service's
//! in-cluster name instead and the Cluster reports `ExternalAddressesPending`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use strait_crds::cluster::{Listener, ListenerType};

use crate::cluster::identity::ClusterRef;
use crate::cluster::quorum::zone_of;
use crate::names;

/// Shell expansion of the pod's node IP (bracketed when IPv6) in the start command.
pub const HOST_IP: &str = "${HOST_IP}";

/// Where one broker is reached on one external listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalAddress {
    /// The pod's node (`$HOST_IP`) and this NodePort.
    NodePort(i32),
    /// A load balancer's ingress host name or IP, and the listener port.
    Host(String, i32),
}

impl ExternalAddress {
    /// `host:port` for `advertised.listeners` (IPv6 in brackets; `${HOST_IP}` for NodePort).
    pub fn render(&self) -> String {
        match self {
            ExternalAddress::NodePort(port) => format!("{HOST_IP}:{port}"),
            ExternalAddress::Host(host, port) => host_port(host, *port),
        }
    }
}

/// `host:port`, IPv6 literals in brackets (Kafka's listener format).
fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The external addresses of a Cluster's brokers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalAddresses {
    /// (Cluster listener name, node id) → address, for the addresses known.
    pub known: BTreeMap<(String, i32), ExternalAddress>,
    /// Names of the per-broker Services whose address is not known yet.
    pub pending: Vec<String>,
}

impl ExternalAddresses {
    /// The known address of broker `node_id` on `listener`.
    pub fn get(&self, listener: &str, node_id: i32) -> Option<&ExternalAddress> {
        self.known.get(&(listener.to_owned(), node_id))
    }

    /// Node ids with at least one known address, ascending.
    pub fn node_ids(&self) -> BTreeSet<i32> {
        self.known.keys().map(|(_, id)| *id).collect()
    }

    /// Only the brokers of the zone at `index` (what that zone's pod template needs: another
    /// zone's addresses changing must not change it).
    pub fn in_zone(&self, index: usize) -> ExternalAddresses {
        ExternalAddresses {
            known: self
                .known
                .iter()
                .filter(|((_, id), _)| zone_of(*id) == index)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pending: Vec::new(),
        }
    }
}

/// The Service port of `listener` (by name, else the only port).
fn service_port<'a>(
    listener: &Listener,
    svc: &'a Service,
) -> Option<&'a k8s_openapi::api::core::v1::ServicePort> {
    let ports = svc.spec.as_ref()?.ports.as_ref()?;
    ports
        .iter()
        .find(|p| p.name.as_deref() == Some(listener.name.as_str()))
        .or_else(|| (ports.len() == 1).then(|| &ports[0]))
}

/// The first ingress host name, else IP, of a LoadBalancer Service.
fn ingress_host(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| {
            i.hostname
                .clone()
                .filter(|h| !h.is_empty())
                .or_else(|| i.ip.clone().filter(|ip| !ip.is_empty()))
        })
}

/// The address a broker advertises on `listener` given its Service as the API server returned
/// it; `None` while unknown (internal listeners never have one).
pub fn service_address(listener: &Listener, svc: &Service) -> Option<ExternalAddress> {
    match listener.kind {
        ListenerType::Internal => None,
        ListenerType::Nodeport => service_port(listener, svc)?
            .node_port
            .filter(|p| *p > 0)
            .map(ExternalAddress::NodePort),
        ListenerType::Loadbalancer => {
            ingress_host(svc).map(|host| ExternalAddress::Host(host, listener.port))
        }
    }
}

/// The addresses of brokers `node_ids` on every external listener, from their per-broker
/// Services keyed by name ([`names::broker_service`]); a missing Service counts as pending.
pub fn addresses(
    c: &ClusterRef,
    node_ids: &[i32],
    services: &BTreeMap<String, Service>,
) -> ExternalAddresses {
    let mut out = ExternalAddresses::default();
    for l in c
        .spec
        .listeners
        .iter()
        .filter(|l| l.kind != ListenerType::Internal)
    {
        for id in node_ids {
            let name = names::broker_service(c.name, &l.name, *id);
            match services.get(&name).and_then(|s| service_address(l, s)) {
                Some(address) => {
                    out.known.insert((l.name.clone(), *id), address);
                }
                None => out.pending.push(name),
            }
        }
    }
    out
}

/// Bootstrap addresses of an external listener for status, from its bootstrap Service: the
/// load balancer's `host:port`, or for NodePort the node of every broker pod (`host_ips`) with
/// the bootstrap Service's nodePort. `None` while unknown.
pub fn bootstrap_servers(
    listener: &Listener,
    bootstrap: Option<&Service>,
    host_ips: &BTreeSet<String>,
) -> Option<String> {
    let svc = bootstrap?;
    match listener.kind {
        ListenerType::Internal => None,
        ListenerType::Loadbalancer => ingress_host(svc).map(|h| host_port(&h, listener.port)),
        ListenerType::Nodeport => {
            let port = service_port(listener, svc)?.node_port.filter(|p| *p > 0)?;
            (!host_ips.is_empty()).then(|| {
                host_ips
                    .iter()
                    .map(|ip| host_port(ip, port))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::spec;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use strait_crds::ClusterSpec;

    fn listener(name: &str, port: i32, kind: ListenerType) -> Listener {
        Listener {
            name: name.into(),
            port,
            kind,
            tls: false,
            authentication: None,
        }
    }

    fn svc(
        port_name: &str,
        node_port: Option<i32>,
        ingress: &[(Option<&str>, Option<&str>)],
    ) -> Service {
        Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some(port_name.into()),
                    port: 9094,
                    node_port,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: (!ingress.is_empty()).then(|| {
                        ingress
                            .iter()
                            .map(|(ip, host)| LoadBalancerIngress {
                                ip: ip.map(str::to_owned),
                                hostname: host.map(str::to_owned),
                                ..LoadBalancerIngress::default()
                            })
                            .collect()
                    }),
                }),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn load_balancer_ingress_host_name_wins_over_ip() {
        let lb = listener("ext", 9094, ListenerType::Loadbalancer);
        assert_eq!(
            service_address(&lb, &svc("ext", Some(31000), &[(Some("1.2.3.4"), None)])),
            Some(ExternalAddress::Host("1.2.3.4".into(), 9094))
        );
        assert_eq!(
            service_address(
                &lb,
                &svc("ext", None, &[(Some("1.2.3.4"), Some("b0.example.com"))])
            ),
            Some(ExternalAddress::Host("b0.example.com".into(), 9094))
        );
        // No ingress yet: unknown, even though the LoadBalancer has a nodePort.
        assert_eq!(service_address(&lb, &svc("ext", Some(31000), &[])), None);
        assert_eq!(
            ExternalAddress::Host("fd00::1".into(), 9094).render(),
            "[fd00::1]:9094"
        );
    }

    #[test]
    fn node_port_is_the_allocated_one_on_the_pods_node() {
        let np = listener("ext", 9094, ListenerType::Nodeport);
        let address = service_address(&np, &svc("ext", Some(31001), &[]));
        assert_eq!(address, Some(ExternalAddress::NodePort(31001)));
        assert_eq!(
            address.map(|a| a.render()).as_deref(),
            Some("${HOST_IP}:31001")
        );
        assert_eq!(service_address(&np, &svc("ext", None, &[])), None);
        assert_eq!(service_address(&np, &svc("ext", Some(0), &[])), None);
        let internal = listener("plain", 9092, ListenerType::Internal);
        assert_eq!(
            service_address(&internal, &svc("plain", Some(1), &[])),
            None
        );
    }

    fn two_external(s: &mut ClusterSpec) {
        s.listeners
            .push(listener("ext", 9094, ListenerType::Loadbalancer));
        s.listeners
            .push(listener("np", 9095, ListenerType::Nodeport));
    }

    #[test]
    fn addresses_per_broker_and_listener_with_pending_services() {
        let mut s = spec(3, &["a", "b"]);
        two_external(&mut s);
        let c = ClusterRef {
            name: "kafka",
            namespace: "ns",
            owner: None,
            spec: &s,
            replication: crate::cluster::tls::Replication::MutualTls,
        };
        let services = BTreeMap::from([
            (
                "kafka-ext-0".to_owned(),
                svc("ext", Some(30000), &[(Some("10.0.0.1"), None)]),
            ),
            ("kafka-ext-1".to_owned(), svc("ext", Some(30001), &[])),
            ("kafka-np-0".to_owned(), svc("np", Some(31000), &[])),
            ("kafka-np-1".to_owned(), svc("np", Some(31001), &[])),
            ("kafka-np-1000".to_owned(), svc("np", Some(31002), &[])),
        ]);
        let a = addresses(&c, &[0, 1, 1000], &services);
        assert_eq!(
            a.get("ext", 0),
            Some(&ExternalAddress::Host("10.0.0.1".into(), 9094))
        );
        assert_eq!(a.get("np", 1000), Some(&ExternalAddress::NodePort(31002)));
        assert_eq!(a.get("plain", 0), None);
        assert_eq!(a.pending, ["kafka-ext-1", "kafka-ext-1000"]);
        assert_eq!(a.node_ids(), BTreeSet::from([0, 1, 1000]));
        let zone1 = a.in_zone(1);
        assert_eq!(zone1.node_ids(), BTreeSet::from([1000]));
        assert_eq!(zone1.known.len(), 1);
        // Internal listeners only: nothing to know.
        let internal = spec(3, &["a"]);
        let c = ClusterRef {
            spec: &internal,
            ..c
        };
        assert_eq!(
            addresses(&c, &[0, 1, 2], &services),
            ExternalAddresses::default()
        );
    }

    #[test]
    fn bootstrap_servers_once_known() {
        let lb = listener("ext", 9094, ListenerType::Loadbalancer);
        let ips = BTreeSet::from(["10.1.0.2".to_owned(), "10.1.0.1".to_owned()]);
        assert_eq!(
            bootstrap_servers(
                &lb,
                Some(&svc("ext", None, &[(None, Some("k.example.com"))])),
                &ips
            )
            .as_deref(),
            Some("k.example.com:9094")
        );
        assert_eq!(
            bootstrap_servers(&lb, Some(&svc("ext", None, &[])), &ips),
            None
        );
        assert_eq!(bootstrap_servers(&lb, None, &ips), None);
        let np = listener("np", 9095, ListenerType::Nodeport);
        assert_eq!(
            bootstrap_servers(&np, Some(&svc("np", Some(32000), &[])), &ips).as_deref(),
            Some("10.1.0.1:32000,10.1.0.2:32000")
        );
        assert_eq!(
            bootstrap_servers(&np, Some(&svc("np", Some(32000), &[])), &BTreeSet::new()),
            None
        );
        assert_eq!(
            bootstrap_servers(&np, Some(&svc("np", None, &[])), &ips),
            None
        );
    }
}
