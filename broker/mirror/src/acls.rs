//! Topic ACL sync of one flow (MM2's `sync.topic.acls.*`, `MirrorSourceConnector.syncTopicAcls`):
//! at flow start and every `sync.topic.acls.interval.seconds`, the source's literal topic ACLs
//! on topics the flow mirrors are created on the target under the remote topic names. As in
//! MM2, ALLOW WRITE is never copied (only the mirror writes remote topics), ALLOW ALL becomes
//! ALLOW READ, everything else (DENY included) is copied as is, and nothing is ever deleted on
//! the target. A source without an authorizer stops the sync for the flow (logged once).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::FlowConfig;
use crate::copy::FlowContext;
use crate::wire::{TopicAcl, WireError, acl, code};

/// The binding the target gets for source binding `binding`, or `None` when MM2 does not copy
/// it: not a literal pattern, a topic the flow does not mirror, or ALLOW WRITE.
pub fn target_binding(flow: &FlowConfig, binding: &TopicAcl) -> Option<TopicAcl> {
    if binding.pattern_type != acl::PATTERN_LITERAL {
        return None;
    }
    if !flow.mirrors_topic(&binding.topic) {
        return None;
    }
    let allow = binding.permission == acl::PERMISSION_ALLOW;
    if allow && binding.operation == acl::OPERATION_WRITE {
        return None;
    }
    let operation = if allow && binding.operation == acl::OPERATION_ALL {
        acl::OPERATION_READ
    } else {
        binding.operation
    };
    Some(TopicAcl {
        topic: flow
            .policy
            .format_remote_topic(&flow.source, &binding.topic),
        pattern_type: acl::PATTERN_LITERAL,
        principal: binding.principal.clone(),
        host: binding.host.clone(),
        operation,
        permission: binding.permission,
    })
}

/// The target bindings of all of `bindings`, deduplicated (ALLOW ALL and ALLOW READ of the
/// same principal map to one).
pub fn target_bindings(flow: &FlowConfig, bindings: &[TopicAcl]) -> BTreeSet<TopicAcl> {
    bindings
        .iter()
        .filter_map(|b| target_binding(flow, b))
        .collect()
}

/// Which side of the flow a failed call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

/// What the sync does after a failed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The source has no authorizer: there are no ACLs to copy, now or later.
    Stop,
    /// Anything else (no permission, a broker down): try again next interval.
    Retry,
}

/// MM2 gives up on a source answering SECURITY_DISABLED; every other failure is retried.
pub fn after_error(side: Side, code: Option<i16>) -> Next {
    if side == Side::Source && code == Some(code::SECURITY_DISABLED) {
        Next::Stop
    } else {
        Next::Retry
    }
}

/// A failed pass: the side and the error.
#[derive(Debug)]
pub struct PassError {
    pub side: Side,
    pub error: WireError,
}

/// One pass: DescribeAcls on the source, CreateAcls on the target for the mapped bindings not
/// created yet. `created` holds the target bindings known to exist (accepted earlier and still
/// wanted); returns how many were newly accepted. Bindings the target refused are left out of
/// `created`, so they are sent again next pass, and the first refusal is returned.
pub async fn sync_once(
    flow: &FlowContext,
    created: &mut BTreeSet<TopicAcl>,
) -> Result<usize, PassError> {
    let source = flow.source.topic_acls().await.map_err(|error| PassError {
        side: Side::Source,
        error,
    })?;
    let wanted = target_bindings(&flow.config, &source);
    // A binding removed on the source is forgotten (never deleted on the target), so that it
    // is created again should it come back.
    created.retain(|b| wanted.contains(b));
    let missing: Vec<TopicAcl> = wanted.difference(created).cloned().collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let results = flow
        .target
        .create_topic_acls(&missing)
        .await
        .map_err(|error| PassError {
            side: Side::Target,
            error,
        })?;
    let mut accepted = 0;
    let mut first_error = None;
    for (binding, result) in missing.into_iter().zip(results) {
        match result {
            Ok(()) => {
                tracing::info!(flow = %flow.config.name(), topic = %binding.topic, principal = %binding.principal, host = %binding.host, operation = binding.operation, permission = binding.permission, "topic ACL created on the target");
                created.insert(binding);
                accepted += 1;
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(PassError {
            side: Side::Target,
            error,
        }),
        None => Ok(accepted),
    }
}

/// The ACL sync task of a flow, until shutdown or until the source turns out to have no
/// authorizer. Only the process leading the flow (member 0 of the mirror group) syncs.
pub async fn run(flow: Arc<FlowContext>) {
    let config = &flow.config;
    let name = config.name();
    let labels = [config.source.as_str(), config.target.as_str()];
    let mut shutdown = flow.shutdown.clone();
    let mut share = flow.share.clone();
    let mut created = BTreeSet::new();
    // Both series exist from the start at 0, so that rates, dashboards and the alert see the
    // flow before its first binding or error.
    flow.metrics.acl_bindings_created.with_label_values(&labels);
    flow.metrics.acl_sync_errors.with_label_values(&labels);
    loop {
        let leads = share.borrow_and_update().is_some_and(|s| s.index == 0);
        if !leads {
            // Another process (or none, while the group rebalances) syncs; on becoming the
            // leader this one starts from nothing known.
            created.clear();
            tokio::select! {
                changed = share.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            continue;
        }
        match sync_once(&flow, &mut created).await {
            Ok(accepted) => {
                if accepted > 0 {
                    flow.metrics
                        .acl_bindings_created
                        .with_label_values(&labels)
                        .inc_by(u64::try_from(accepted).unwrap_or(u64::MAX));
                }
            }
            Err(PassError { side, error }) => match after_error(side, error.code()) {
                Next::Stop => {
                    tracing::info!(flow = %name, error = %error, "no ACL authorizer on the source cluster: topic ACL sync stopped for this flow (set sync.topic.acls.enabled=false to skip it)");
                    return;
                }
                Next::Retry => {
                    flow.metrics
                        .acl_sync_errors
                        .with_label_values(&labels)
                        .inc();
                    tracing::warn!(flow = %name, side = ?side, error = %error, "topic ACL sync failed; retrying next interval");
                }
            },
        }
        tokio::select! {
            _ = tokio::time::sleep(config.sync_topic_acls_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MirrorConfig;

    fn flow(extra: &str) -> FlowConfig {
        MirrorConfig::parse(&format!(
            "clusters=A,B\nA.bootstrap.servers=x:1\nB.bootstrap.servers=y:1\nA->B.enabled=true\ntopics=orders.*, payments\ntopics.exclude=orders-secret\n{extra}"
        ))
        .unwrap()
        .flows
        .remove(0)
    }

    fn binding(topic: &str, pattern: i8, operation: i8, permission: i8) -> TopicAcl {
        TopicAcl {
            topic: topic.to_owned(),
            pattern_type: pattern,
            principal: "User:alice".to_owned(),
            host: "10.0.0.1".to_owned(),
            operation,
            permission,
        }
    }

    use acl::{
        OPERATION_ALL as ALL, OPERATION_DESCRIBE as DESCRIBE, OPERATION_READ as READ,
        OPERATION_WRITE as WRITE, PATTERN_LITERAL as LITERAL, PATTERN_PREFIXED as PREFIXED,
        PERMISSION_ALLOW as ALLOW, PERMISSION_DENY as DENY,
    };

    #[test]
    fn mapping_follows_mm2() {
        let f = flow("");
        let map = |b: TopicAcl| target_binding(&f, &b);
        // Copied as is, under the remote name, same principal and host.
        assert_eq!(
            map(binding("orders", LITERAL, READ, ALLOW)),
            Some(binding("A.orders", LITERAL, READ, ALLOW))
        );
        assert_eq!(
            map(binding("payments", LITERAL, DESCRIBE, ALLOW)),
            Some(binding("A.payments", LITERAL, DESCRIBE, ALLOW))
        );
        // ALLOW WRITE never: only the mirror writes remote topics. DENY WRITE is kept.
        assert_eq!(map(binding("orders", LITERAL, WRITE, ALLOW)), None);
        assert_eq!(
            map(binding("orders", LITERAL, WRITE, DENY)),
            Some(binding("A.orders", LITERAL, WRITE, DENY))
        );
        // ALLOW ALL becomes ALLOW READ; DENY ALL stays DENY ALL.
        assert_eq!(
            map(binding("orders", LITERAL, ALL, ALLOW)),
            Some(binding("A.orders", LITERAL, READ, ALLOW))
        );
        assert_eq!(
            map(binding("orders", LITERAL, ALL, DENY)),
            Some(binding("A.orders", LITERAL, ALL, DENY))
        );
        assert_eq!(
            map(binding("orders", LITERAL, READ, DENY)),
            Some(binding("A.orders", LITERAL, READ, DENY))
        );
        // Only literal patterns, only mirrored topics.
        assert_eq!(map(binding("orders", PREFIXED, READ, ALLOW)), None);
        assert_eq!(map(binding("orders-secret", LITERAL, READ, ALLOW)), None);
        assert_eq!(map(binding("other", LITERAL, READ, ALLOW)), None);
        assert_eq!(
            map(binding("__consumer_offsets", LITERAL, READ, ALLOW)),
            None
        );
        // A topic that came from the target is a cycle: never sent back.
        assert_eq!(map(binding("B.orders", LITERAL, READ, ALLOW)), None);
    }

    #[test]
    fn mapping_under_other_policies() {
        let identity = flow("replication.policy.class=IdentityReplicationPolicy\n");
        assert_eq!(
            target_binding(&identity, &binding("orders", LITERAL, ALL, ALLOW)),
            Some(binding("orders", LITERAL, READ, ALLOW))
        );
        let separator = flow("replication.policy.separator=_\n");
        assert_eq!(
            target_binding(&separator, &binding("orders", LITERAL, READ, ALLOW)),
            Some(binding("A_orders", LITERAL, READ, ALLOW))
        );
        let linked = flow("mirror.mode=linked\n");
        assert_eq!(
            target_binding(&linked, &binding("orders", LITERAL, READ, ALLOW)),
            Some(binding("A.orders", LITERAL, READ, ALLOW))
        );
    }

    #[test]
    fn all_and_read_collapse() {
        let f = flow("");
        let set = target_bindings(
            &f,
            &[
                binding("orders", LITERAL, ALL, ALLOW),
                binding("orders", LITERAL, READ, ALLOW),
                binding("orders", LITERAL, WRITE, ALLOW),
                binding("orders", PREFIXED, READ, ALLOW),
            ],
        );
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec![binding("A.orders", LITERAL, READ, ALLOW)]
        );
    }

    #[test]
    fn only_a_source_without_authorizer_stops() {
        assert_eq!(
            after_error(Side::Source, Some(code::SECURITY_DISABLED)),
            Next::Stop
        );
        assert_eq!(
            after_error(Side::Target, Some(code::SECURITY_DISABLED)),
            Next::Retry
        );
        assert_eq!(
            after_error(Side::Source, Some(code::CLUSTER_AUTHORIZATION_FAILED)),
            Next::Retry
        );
        assert_eq!(
            after_error(Side::Target, Some(code::CLUSTER_AUTHORIZATION_FAILED)),
            Next::Retry
        );
        assert_eq!(after_error(Side::Source, None), Next::Retry);
    }

    #[test]
    fn keys_and_validation() {
        let f = flow("");
        assert!(f.sync_topic_acls_enabled);
        assert_eq!(
            f.sync_topic_acls_interval,
            std::time::Duration::from_secs(600)
        );
        let f = flow("sync.topic.acls.enabled=false\nA->B.sync.topic.acls.interval.seconds=5\n");
        assert!(!f.sync_topic_acls_enabled);
        assert_eq!(
            f.sync_topic_acls_interval,
            std::time::Duration::from_secs(5)
        );
        let f = flow("sync.topic.acls.enabled=false\nA->B.sync.topic.acls.enabled=true\n");
        assert!(f.sync_topic_acls_enabled, "the flow's own key wins");
        let base =
            "clusters=A,B\nA.bootstrap.servers=x:1\nB.bootstrap.servers=y:1\nA->B.enabled=true\n";
        for (line, key) in [
            ("sync.topic.acls.enabled=yes", "sync.topic.acls.enabled"),
            (
                "A->B.sync.topic.acls.interval.seconds=0",
                "A->B.sync.topic.acls.interval.seconds",
            ),
            (
                "sync.topic.acls.interval.seconds=-3",
                "sync.topic.acls.interval.seconds",
            ),
            (
                "sync.topic.acls.interval.seconds=soon",
                "sync.topic.acls.interval.seconds",
            ),
        ] {
            let error = MirrorConfig::parse(&format!("{base}{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{line}: {error}");
        }
        let config = MirrorConfig::parse(&format!(
            "{base}sync.topic.acls.enabled=true\nA->B.sync.topic.acls.interval.seconds=5\n"
        ))
        .unwrap();
        assert!(config.unknown_keys.is_empty(), "{:?}", config.unknown_keys);
    }
}
