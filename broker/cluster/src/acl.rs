//! ACLs as Kafka's StandardAuthorizer keeps and applies them: bindings (resource pattern and
//! access control entry, in Kafka's wire codes) stored in the metadata image, filters for
//! DescribeAcls/DeleteAcls, and the authorization decision. Pure: the broker asks with a
//! principal, host, operation and resource; the image answers.
//!
//! The decision follows Kafka: super users are allowed everything; a DENY that matches (same or
//! ALL operation) wins; an ALLOW matches the operation, ALL, or implies it (READ, WRITE, DELETE
//! and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS); with no ACL at all on the
//! resource, `allow.everyone.if.no.acl.found` decides.

use serde::{Deserialize, Serialize};

/// Kafka's `ResourceType` codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's `PatternType` codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclOperation` codes.
pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const CREATE_TOKENS: i8 = 13;
    pub const DESCRIBE_TOKENS: i8 = 14;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name, principal and host.
pub const WILDCARD: &str = "*";
/// Kafka's wildcard principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// One ACL binding (Kafka's AccessControlEntryRecord without its id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Why Kafka would refuse to create this binding (`INVALID_REQUEST`), if it would.
    pub fn invalid(&self) -> Option<String> {
        let concrete_types = [
            resource::TOPIC,
            resource::GROUP,
            resource::CLUSTER,
            resource::TRANSACTIONAL_ID,
            resource::DELEGATION_TOKEN,
            resource::USER,
        ];
        if !concrete_types.contains(&self.resource_type) {
            return Some(format!("invalid resource type {}", self.resource_type));
        }
        if ![pattern::LITERAL, pattern::PREFIXED].contains(&self.pattern_type) {
            return Some(format!(
                "invalid pattern type {} (LITERAL or PREFIXED)",
                self.pattern_type
            ));
        }
        if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&self.operation) {
            return Some(format!("invalid operation {}", self.operation));
        }
        if ![permission::ALLOW, permission::DENY].contains(&self.permission) {
            return Some(format!("invalid permission type {}", self.permission));
        }
        if self.resource_name.is_empty() {
            return Some("resource name must not be empty".into());
        }
        if self.resource_type == resource::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Some(format!(
                "the cluster resource is named {CLUSTER_NAME}, not {}",
                self.resource_name
            ));
        }
        if !self.principal.contains(':') || self.principal.ends_with(':') {
            return Some(format!(
                "principal {:?} is not <type>:<name> (e.g. User:alice)",
                self.principal
            ));
        }
        if self.host.is_empty() {
            return Some("host must not be empty (use * for any)".into());
        }
        None
    }

    fn matches_resource(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                pattern::LITERAL => self.resource_name == name || self.resource_name == WILDCARD,
                pattern::PREFIXED => name.starts_with(&self.resource_name),
                _ => false,
            }
    }

    fn matches_caller(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// A DescribeAcls/DeleteAcls filter: `None` strings and ANY codes match everything; pattern
/// MATCH matches the bindings that would apply to the named resource (literal, wildcard,
/// prefixes of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let code = |want: i8, any: i8, got: i8| want == any || want == got;
        if !code(self.resource_type, resource::ANY, b.resource_type)
            || !code(self.operation, op::ANY, b.operation)
            || !code(self.permission, permission::ANY, b.permission)
        {
            return false;
        }
        if self.principal.as_ref().is_some_and(|p| *p != b.principal)
            || self.host.as_ref().is_some_and(|h| *h != b.host)
        {
            return false;
        }
        match (self.pattern_type, &self.resource_name) {
            (pattern::ANY, None) => true,
            (pattern::ANY, Some(name)) => b.resource_name == *name,
            (pattern::MATCH, None) => true,
            (pattern::MATCH, Some(name)) => match b.pattern_type {
                pattern::LITERAL => b.resource_name == *name || b.resource_name == WILDCARD,
                pattern::PREFIXED => name.starts_with(&b.resource_name),
                _ => false,
            },
            (p, name) => b.pattern_type == p && name.as_ref().is_none_or(|n| *n == b.resource_name),
        }
    }

    /// Why Kafka would refuse this filter, if it would.
    pub fn invalid(&self) -> Option<String> {
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return Some(format!("invalid pattern type {}", self.pattern_type));
        }
        if !(resource::ANY..=resource::USER).contains(&self.resource_type) {
            return Some(format!("invalid resource type {}", self.resource_type));
        }
        if !(op::ANY..=op::DESCRIBE_TOKENS).contains(&self.operation) {
            return Some(format!("invalid operation {}", self.operation));
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission) {
            return Some(format!("invalid permission type {}", self.permission));
        }
        None
    }
}

/// `authorizer.class.name` settings the decision needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizerSettings {
    /// `super.users`, as `User:<name>` principals.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// Operations an ALLOW of `granted` also grants (Kafka's implied operations).
fn grants(granted: i8, wanted: i8) -> bool {
    granted == op::ALL
        || granted == wanted
        || (wanted == op::DESCRIBE
            && [op::READ, op::WRITE, op::DELETE, op::ALTER].contains(&granted))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// Whether `principal` from `host` may do `operation` on the resource.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    settings: &AuthorizerSettings,
    principal: &str,
    host: &str,
    operation: i8,
    resource_type: i8,
    resource_name: &str,
) -> bool {
    if settings.super_users.iter().any(|s| s == principal) {
        return true;
    }
    let mut any_on_resource = false;
    let mut allowed = false;
    for b in acls {
        if !b.matches_resource(resource_type, resource_name) {
            continue;
        }
        any_on_resource = true;
        if !b.matches_caller(principal, host) {
            continue;
        }
        if b.permission == permission::DENY && (b.operation == op::ALL || b.operation == operation)
        {
            return false;
        }
        if b.permission == permission::ALLOW && grants(b.operation, operation) {
            allowed = true;
        }
    }
    allowed || (!any_on_resource && settings.allow_if_no_acl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(rt: i8, name: &str, pt: i8, principal: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: perm,
        }
    }

    fn allowed(acls: &[AclBinding], s: &AuthorizerSettings, who: &str, o: i8, t: &str) -> bool {
        authorize(acls, s, who, "10.0.0.1", o, resource::TOPIC, t)
    }

    #[test]
    fn prefixed_allow_deny_wins_and_implied_describe() {
        let s = AuthorizerSettings::default();
        let acls = vec![
            binding(
                resource::TOPIC,
                "orders-",
                pattern::PREFIXED,
                "User:alice",
                op::WRITE,
                permission::ALLOW,
            ),
            binding(
                resource::TOPIC,
                "orders-secret",
                pattern::LITERAL,
                "User:alice",
                op::ALL,
                permission::DENY,
            ),
        ];
        assert!(allowed(&acls, &s, "User:alice", op::WRITE, "orders-eu"));
        assert!(
            allowed(&acls, &s, "User:alice", op::DESCRIBE, "orders-eu"),
            "WRITE implies DESCRIBE"
        );
        assert!(!allowed(&acls, &s, "User:alice", op::READ, "orders-eu"));
        assert!(!allowed(&acls, &s, "User:alice", op::WRITE, "payments"));
        assert!(
            !allowed(&acls, &s, "User:alice", op::WRITE, "orders-secret"),
            "DENY wins"
        );
        assert!(!allowed(&acls, &s, "User:bob", op::WRITE, "orders-eu"));
    }

    #[test]
    fn super_users_wildcards_hosts_and_the_no_acl_default() {
        let acls = vec![
            binding(
                resource::TOPIC,
                "*",
                pattern::LITERAL,
                "User:*",
                op::READ,
                permission::ALLOW,
            ),
            AclBinding {
                host: "10.0.0.9".into(),
                ..binding(
                    resource::TOPIC,
                    "logs",
                    pattern::LITERAL,
                    "User:eve",
                    op::READ,
                    permission::DENY,
                )
            },
        ];
        let s = AuthorizerSettings {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        assert!(allowed(&acls, &s, "User:anyone", op::READ, "logs"));
        assert!(
            allowed(&acls, &s, "User:eve", op::READ, "logs"),
            "the DENY is for another host"
        );
        assert!(!authorize(
            &acls,
            &s,
            "User:eve",
            "10.0.0.9",
            op::READ,
            resource::TOPIC,
            "logs"
        ));
        assert!(allowed(&acls, &s, "User:admin", op::ALTER, "logs"));
        // No ACL on a group: the default decides.
        assert!(!authorize(
            &acls,
            &s,
            "User:x",
            "h",
            op::READ,
            resource::GROUP,
            "g"
        ));
        let open = AuthorizerSettings {
            allow_if_no_acl: true,
            ..s.clone()
        };
        assert!(authorize(
            &acls,
            &open,
            "User:x",
            "h",
            op::READ,
            resource::GROUP,
            "g"
        ));
        // ... but not when the resource has ACLs for someone else.
        assert!(!allowed(&acls, &open, "User:x", op::WRITE, "logs"));
        // ALTER_CONFIGS implies DESCRIBE_CONFIGS, not the reverse.
        let configs = vec![binding(
            resource::CLUSTER,
            CLUSTER_NAME,
            pattern::LITERAL,
            "User:ops",
            op::ALTER_CONFIGS,
            permission::ALLOW,
        )];
        let c = |o| {
            authorize(
                &configs,
                &s,
                "User:ops",
                "h",
                o,
                resource::CLUSTER,
                CLUSTER_NAME,
            )
        };
        assert!(c(op::DESCRIBE_CONFIGS) && c(op::ALTER_CONFIGS) && !c(op::ALTER));
    }

    #[test]
    fn filters_match_like_kafka() {
        let lit = binding(
            resource::TOPIC,
            "orders",
            pattern::LITERAL,
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        let pre = binding(
            resource::TOPIC,
            "ord",
            pattern::PREFIXED,
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        let wild = binding(
            resource::TOPIC,
            "*",
            pattern::LITERAL,
            "User:a",
            op::READ,
            permission::ALLOW,
        );
        let any = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        assert!([&lit, &pre, &wild].iter().all(|b| any.matches(b)));
        let matching = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: pattern::MATCH,
            ..any.clone()
        };
        assert!([&lit, &pre, &wild].iter().all(|b| matching.matches(b)));
        let literal = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: pattern::LITERAL,
            ..any.clone()
        };
        assert!(literal.matches(&lit) && !literal.matches(&pre) && !literal.matches(&wild));
        let by_user = AclFilter {
            principal: Some("User:b".into()),
            ..any
        };
        assert!(!by_user.matches(&lit));
        assert!(lit.invalid().is_none());
        assert!(
            AclBinding {
                pattern_type: pattern::MATCH,
                ..lit.clone()
            }
            .invalid()
            .is_some()
        );
        assert!(
            AclBinding {
                principal: "alice".into(),
                ..lit
            }
            .invalid()
            .is_some()
        );
    }
}
