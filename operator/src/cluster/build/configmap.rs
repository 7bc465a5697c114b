//! The ConfigMap with the brokers' `server.properties` (rendered by `config`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::cluster::config;
use crate::cluster::identity::ClusterRef;
use crate::names;

/// The ConfigMap holding `server.properties`, naming `voters` as the controller quorum.
pub fn config_map(c: &ClusterRef, voters: &[i32]) -> ConfigMap {
    ConfigMap {
        metadata: c.meta(names::config_map(c.name)),
        data: Some(BTreeMap::from([(
            "server.properties".to_owned(),
            config::server_properties(c.name, c.namespace, c.spec, voters, c.replication),
        )])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::build::rbac::service_account;
    use crate::cluster::identity::tests::{cref, spec};

    #[test]
    fn config_map_and_service_account() {
        let s = spec(3, &["a"]);
        let cm = config_map(&cref(&s), &[0, 1, 2]);
        let props = &cm.data.expect("data")["server.properties"];
        assert!(props.contains("listeners="));
        assert!(props.contains("controller.quorum.voters=0@kafka-z0-0.kafka-brokers.ns.svc:9093,"));
        assert_eq!(
            service_account(&cref(&s)).automount_service_account_token,
            Some(false)
        );
    }
}
