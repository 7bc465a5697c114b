//! The PodDisruptionBudget that keeps voluntary disruptions (drains, evictions of the rolling
//! restart) to one broker at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cluster::identity::ClusterRef;
use crate::names;

/// PodDisruptionBudget: at most one broker down at a time, across zones.
pub fn pod_disruption_budget(c: &ClusterRef) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: c.meta(c.name.to_owned()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(c.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::{cref, spec};

    #[test]
    fn pdb_allows_one_broker_down() {
        let s = spec(3, &["a"]);
        let pdb = pod_disruption_budget(&cref(&s));
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some(names::selector_labels("kafka"))
        );
    }
}
