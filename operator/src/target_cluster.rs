//! Resolves a `ClusterReference` (of a Topic or User) to the bootstrap address the admin
//! client connects to.

use strait_crds::ClusterReference;

use crate::cluster::controller::admin_bootstrap;

/// The bootstrap address, or why there is none. SASL credentials for external clusters are not
/// yet supported by the admin client, which is reported rather than ignored.
pub fn bootstrap(reference: &ClusterReference, namespace: &str) -> Result<String, String> {
    if reference.authentication.is_some() {
        return Err("cluster.authentication is not supported yet: the operator's admin client speaks plaintext only".to_owned());
    }
    match (&reference.name, &reference.bootstrap_servers) {
        (Some(name), None) => Ok(admin_bootstrap(name, namespace)),
        (None, Some(servers)) => Ok(servers.clone()),
        _ => Err("set exactly one of cluster.name and cluster.bootstrapServers".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_clusters_use_their_bootstrap_service() {
        let r = ClusterReference {
            name: Some("kafka".into()),
            ..ClusterReference::default()
        };
        assert_eq!(
            bootstrap(&r, "ns").as_deref(),
            Ok("kafka-bootstrap.ns.svc:9091")
        );
        let r = ClusterReference {
            bootstrap_servers: Some("a:9092,b:9092".into()),
            ..ClusterReference::default()
        };
        assert_eq!(bootstrap(&r, "ns").as_deref(), Ok("a:9092,b:9092"));
        assert!(bootstrap(&ClusterReference::default(), "ns").is_err());
    }
}
