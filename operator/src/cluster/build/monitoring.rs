//! The optional prometheus-operator ServiceMonitor, a dynamic object since its CRD may not be
//! installed.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use crate::cluster::identity::ClusterRef;
use crate::names;

/// The prometheus-operator ServiceMonitor kind.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ))
}

/// ServiceMonitor scraping every broker through the headless Service, when asked for.
pub fn service_monitor(c: &ClusterRef) -> Option<DynamicObject> {
    let metrics = c.spec.metrics.as_ref().filter(|m| m.enabled)?;
    let sm = metrics.service_monitor.as_ref().filter(|s| s.enabled)?;
    let mut meta = c.meta(c.name.to_owned());
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.extend(sm.labels.clone());
    meta.labels = Some(labels);
    let mut endpoint = serde_json::json!({"port": "metrics", "path": "/metrics"});
    if let Some(interval) = &sm.interval {
        endpoint["interval"] = serde_json::Value::String(interval.clone());
    }
    let mut obj = DynamicObject::new(c.name, &service_monitor_resource()).within(c.namespace);
    obj.metadata = meta;
    obj.data = serde_json::json!({
        "spec": {
            "selector": {"matchLabels": names::labels(c.name)},
            "endpoints": [endpoint],
        }
    });
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::{cref, spec};
    use std::collections::BTreeMap;
    use strait_crds::cluster::{Metrics, ServiceMonitorSpec};

    #[test]
    fn service_monitor_only_when_enabled() {
        let mut s = spec(3, &["a"]);
        assert!(service_monitor(&cref(&s)).is_none());
        s.metrics = Some(Metrics {
            enabled: true,
            port: None,
            service_monitor: Some(ServiceMonitorSpec {
                enabled: true,
                interval: Some("15s".into()),
                labels: BTreeMap::from([("release".into(), "prom".into())]),
            }),
        });
        let sm = service_monitor(&cref(&s)).expect("service monitor");
        assert_eq!(
            sm.types.as_ref().map(|t| t.kind.as_str()),
            Some("ServiceMonitor")
        );
        assert_eq!(sm.data["spec"]["endpoints"][0]["interval"], "15s");
        assert_eq!(sm.metadata.labels.expect("labels")["release"], "prom");
    }
}
