//! MirrorMaker 2's replication policies: how a source topic is named on the target
//! (`DefaultReplicationPolicy`: `<source>.<topic>`; `IdentityReplicationPolicy`: unchanged), how
//! a remote topic's source and upstream name are recovered, which topics are internal, and the
//! cycle check that keeps a topic from being mirrored back to the cluster it came from.

/// MM2's heartbeats topic name.
pub const HEARTBEATS_TOPIC: &str = "heartbeats";

/// Which of MM2's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Default,
    Identity,
}

/// A replication policy with its separator (`replication.policy.separator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPolicy {
    kind: PolicyKind,
    separator: String,
}

impl ReplicationPolicy {
    pub fn new(kind: PolicyKind, separator: &str) -> Self {
        ReplicationPolicy {
            kind,
            separator: separator.to_owned(),
        }
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The name on the target of `topic` from cluster `source` (MM2's `formatRemoteTopic`).
    /// The identity policy still prefixes heartbeats topics, as MM2 does, so that heartbeats
    /// of several sources do not collide.
    pub fn format_remote_topic(&self, source: &str, topic: &str) -> String {
        match self.kind {
            PolicyKind::Identity if !looks_like_heartbeat(topic) => topic.to_owned(),
            _ => format!("{source}{}{topic}", self.separator),
        }
    }

    /// The source cluster alias a remote topic came from (MM2's `topicSource`), `None` for a
    /// topic that is not remote.
    pub fn topic_source<'a>(&self, topic: &'a str) -> Option<&'a str> {
        if self.kind == PolicyKind::Identity && !looks_like_heartbeat(topic) {
            return None;
        }
        // Java's String.split: trailing empty parts dropped; fewer than two parts means none.
        let mut parts: Vec<&str> = topic.split(self.separator.as_str()).collect();
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        if parts.len() < 2 {
            None
        } else {
            Some(parts[0])
        }
    }

    /// The topic's name on the cluster it came from (MM2's `upstreamTopic`).
    pub fn upstream_topic(&self, topic: &str) -> Option<String> {
        if self.kind == PolicyKind::Identity && !looks_like_heartbeat(topic) {
            return Some(topic.to_owned());
        }
        let source = self.topic_source(topic)?;
        Some(topic[source.len() + self.separator.len()..].to_owned())
    }

    /// MM2's `isInternalTopic`: Kafka's own (`__*`, `.*`), Connect's and MM2's (`*.internal`,
    /// `*-internal`) topics are never mirrored.
    pub fn is_internal_topic(&self, topic: &str) -> bool {
        topic.starts_with("__")
            || topic.starts_with('.')
            || topic.ends_with(".internal")
            || topic.ends_with("-internal")
    }

    /// MM2's `isHeartbeatsTopic`: `heartbeats` or a remote copy of it.
    pub fn is_heartbeats_topic(&self, topic: &str) -> bool {
        topic == HEARTBEATS_TOPIC
            || self
                .upstream_topic(topic)
                .is_some_and(|u| u != topic && self.is_heartbeats_topic(&u))
    }

    /// Whether `topic` on the source came from `target` (directly or through other clusters):
    /// mirroring it would send records back where they came from (MM2's `isCycle`).
    pub fn is_cycle(&self, topic: &str, target: &str) -> bool {
        let Some(source) = self.topic_source(topic) else {
            return false;
        };
        if source == target {
            return true;
        }
        match self.upstream_topic(topic) {
            // The identity policy names upstream topics as they are: no further hop to follow.
            Some(upstream) if upstream != topic => self.is_cycle(&upstream, target),
            _ => false,
        }
    }

    /// MM2's `MirrorSourceConnector.shouldReplicateTopic`: selected (or a heartbeats topic),
    /// not internal, not a cycle back to `target`.
    pub fn should_replicate(
        &self,
        topic: &str,
        target: &str,
        selected: impl Fn(&str) -> bool,
    ) -> bool {
        (selected(topic) || self.is_heartbeats_topic(topic))
            && !self.is_internal_topic(topic)
            && !self.is_cycle(topic, target)
    }
}

fn looks_like_heartbeat(topic: &str) -> bool {
    topic.ends_with(HEARTBEATS_TOPIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> ReplicationPolicy {
        ReplicationPolicy::new(PolicyKind::Default, ".")
    }

    fn identity() -> ReplicationPolicy {
        ReplicationPolicy::new(PolicyKind::Identity, ".")
    }

    #[test]
    fn default_policy_names() {
        let p = default();
        assert_eq!(p.format_remote_topic("us-west", "orders"), "us-west.orders");
        assert_eq!(p.topic_source("us-west.orders"), Some("us-west"));
        assert_eq!(p.topic_source("orders"), None);
        assert_eq!(
            p.topic_source("orders."),
            None,
            "Java drops trailing empty parts"
        );
        assert_eq!(
            p.upstream_topic("us-west.orders").as_deref(),
            Some("orders")
        );
        assert_eq!(p.upstream_topic("a.b.orders").as_deref(), Some("b.orders"));
        assert_eq!(p.upstream_topic("orders"), None);
        let custom = ReplicationPolicy::new(PolicyKind::Default, "__");
        assert_eq!(custom.format_remote_topic("A", "t.x"), "A__t.x");
        assert_eq!(custom.topic_source("A__t.x"), Some("A"));
        assert_eq!(custom.upstream_topic("A__t.x").as_deref(), Some("t.x"));
    }

    #[test]
    fn identity_policy_names() {
        let p = identity();
        assert_eq!(p.format_remote_topic("A", "orders"), "orders");
        assert_eq!(p.topic_source("A.orders"), None);
        assert_eq!(p.upstream_topic("A.orders").as_deref(), Some("A.orders"));
        // Heartbeats keep MM2's prefix even under the identity policy.
        assert_eq!(p.format_remote_topic("A", "heartbeats"), "A.heartbeats");
        assert_eq!(p.topic_source("A.heartbeats"), Some("A"));
        assert_eq!(
            p.upstream_topic("A.heartbeats").as_deref(),
            Some("heartbeats")
        );
    }

    #[test]
    fn cycles_are_detected() {
        let p = default();
        assert!(!p.is_cycle("orders", "B"));
        assert!(p.is_cycle("B.orders", "B"), "came from the target");
        assert!(!p.is_cycle("C.orders", "B"));
        assert!(
            p.is_cycle("C.B.orders", "B"),
            "came from the target through C"
        );
        assert!(
            !identity().is_cycle("B.orders", "B"),
            "identity cannot tell"
        );
        assert!(identity().is_cycle("B.heartbeats", "B"));
    }

    #[test]
    fn internal_and_heartbeat_topics() {
        let p = default();
        for t in [
            "__consumer_offsets",
            ".hidden",
            "mm2-offset-syncs.B.internal",
            "A.checkpoints.internal",
            "connect-offsets-internal",
        ] {
            assert!(p.is_internal_topic(t), "{t}");
        }
        assert!(!p.is_internal_topic("orders"));
        assert!(p.is_heartbeats_topic("heartbeats"));
        assert!(p.is_heartbeats_topic("C.heartbeats"));
        assert!(!p.is_heartbeats_topic("myheartbeats"));
        // Heartbeats are mirrored even when the topic filter does not select them.
        assert!(p.should_replicate("heartbeats", "B", |_| false));
        assert!(p.should_replicate("C.heartbeats", "B", |_| false));
        assert!(!p.should_replicate("B.heartbeats", "B", |_| true));
        assert!(!p.should_replicate("x.internal", "B", |_| true));
        assert!(p.should_replicate("orders", "B", |_| true));
        assert!(!p.should_replicate("orders", "B", |_| false));
    }
}
