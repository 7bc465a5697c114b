//! The Services: the headless one for per-broker DNS names, the bootstrap ones per listener
//! type, and per-broker ones for `nodeport`/`loadbalancer` listeners.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use strait_crds::cluster::{ListenerType, REPLICATION_PORT};

use crate::cluster::identity::{ClusterRef, held_node_ids};
use crate::cluster::quorum::{CONTROLLER_PORT, zone_of};
use crate::names;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// Headless Service: stable per-broker DNS names, published before brokers are ready so that
/// brokers can find each other while starting; it carries the controller quorum's port too.
pub fn headless_service(c: &ClusterRef) -> Service {
    let mut ports = vec![
        port("replication", REPLICATION_PORT),
        port("controller", CONTROLLER_PORT),
        port("metrics", c.spec.metrics_port()),
    ];
    ports.extend(c.spec.listeners.iter().map(|l| port(&l.name, l.port)));
    Service {
        metadata: c.meta(names::headless_service(c.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(c.name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap Services: one ClusterIP Service for the replication port and the internal
/// listeners, and one per external listener of its type (NodePort or LoadBalancer).
pub fn bootstrap_services(c: &ClusterRef) -> Vec<Service> {
    let mut internal = vec![port("replication", REPLICATION_PORT)];
    internal.extend(
        c.spec
            .listeners
            .iter()
            .filter(|l| l.kind == ListenerType::Internal)
            .map(|l| port(&l.name, l.port)),
    );
    let mut out = vec![Service {
        metadata: c.meta(names::bootstrap_service(c.name, None)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::selector_labels(c.name)),
            ports: Some(internal),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }];
    for l in c
        .spec
        .listeners
        .iter()
        .filter(|l| l.kind != ListenerType::Internal)
    {
        out.push(Service {
            metadata: c.meta_labelled(
                names::bootstrap_service(c.name, Some(&l.name)),
                names::listener_service_labels(c.name, &l.name, None),
            ),
            spec: Some(ServiceSpec {
                type_: Some(service_type(l.kind).to_owned()),
                selector: Some(names::selector_labels(c.name)),
                ports: Some(vec![port(&l.name, l.port)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        });
    }
    out
}

fn service_type(kind: ListenerType) -> &'static str {
    match kind {
        ListenerType::Internal => "ClusterIP",
        ListenerType::Nodeport => "NodePort",
        ListenerType::Loadbalancer => "LoadBalancer",
    }
}

/// Per-broker Services of the external listeners: one per listener and broker of the
/// StatefulSets (`replicas[i]` brokers in zone `i`, so brokers held while partitions move off
/// them keep theirs).
pub fn broker_services(c: &ClusterRef, replicas: &[i32]) -> Vec<Service> {
    let mut out = Vec::new();
    for l in c
        .spec
        .listeners
        .iter()
        .filter(|l| l.kind != ListenerType::Internal)
    {
        for node_id in held_node_ids(replicas) {
            let mut selector = names::selector_labels(c.name);
            selector.insert(
                "statefulset.kubernetes.io/pod-name".to_owned(),
                names::pod(c.name, zone_of(node_id), node_id),
            );
            out.push(Service {
                metadata: c.meta_labelled(
                    names::broker_service(c.name, &l.name, node_id),
                    names::listener_service_labels(c.name, &l.name, Some(node_id)),
                ),
                spec: Some(ServiceSpec {
                    type_: Some(service_type(l.kind).to_owned()),
                    selector: Some(selector),
                    ports: Some(vec![port(&l.name, l.port)]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::{cref, spec};
    use strait_crds::cluster::Listener;

    #[test]
    fn services_per_listener_type() {
        let mut s = spec(3, &["a", "b"]);
        s.listeners.push(Listener {
            name: "ext".into(),
            port: 9094,
            kind: ListenerType::Loadbalancer,
            tls: true,
            authentication: None,
        });
        let c = cref(&s);
        let headless = headless_service(&c);
        let hs = headless.spec.as_ref().expect("spec");
        assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
        assert_eq!(hs.publish_not_ready_addresses, Some(true));
        let boot = bootstrap_services(&c);
        let names: Vec<_> = boot
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(names, ["kafka-bootstrap", "kafka-ext-bootstrap"]);
        assert_eq!(
            boot[1].spec.as_ref().and_then(|s| s.type_.as_deref()),
            Some("LoadBalancer")
        );
        let internal_ports: Vec<i32> = boot[0]
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(internal_ports, [9091, 9092]);
        let per_broker = broker_services(&c, &[2, 1]);
        let names: Vec<_> = per_broker
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(names, ["kafka-ext-0", "kafka-ext-1", "kafka-ext-1000"]);
        let sel = per_broker[2]
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .expect("selector");
        assert_eq!(
            sel.get("statefulset.kubernetes.io/pod-name")
                .map(String::as_str),
            Some("kafka-z1-1000")
        );
        // Labels that let the operator find them again, exactly, to delete them once unused.
        let label = |svc: &Service, key: &str| {
            svc.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key).cloned())
        };
        assert_eq!(
            label(&per_broker[2], names::LISTENER_LABEL).as_deref(),
            Some("ext")
        );
        assert_eq!(
            label(&per_broker[2], names::NODE_ID_LABEL).as_deref(),
            Some("1000")
        );
        assert_eq!(
            label(&boot[1], names::LISTENER_LABEL).as_deref(),
            Some("ext")
        );
        assert_eq!(label(&boot[1], names::NODE_ID_LABEL), None);
        assert_eq!(label(&boot[0], names::LISTENER_LABEL), None);
        assert_eq!(label(&headless, names::LISTENER_LABEL), None);
        assert!(broker_services(&cref(&spec(3, &["a"])), &[3]).is_empty());
        // Brokers held while partitions move off them keep their Service.
        let held: Vec<_> = broker_services(&c, &[3, 1])
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(
            held,
            [
                "kafka-ext-0",
                "kafka-ext-1",
                "kafka-ext-2",
                "kafka-ext-1000"
            ]
        );
    }
}
