//! Authorization of one request (Kafka's `AuthHelper`): the connection's principal and host
//! checked against the ACLs of the metadata image as the request is handled, when an authorizer
//! is configured; without one everything is allowed. One image per request, so a request that
//! checks many topics sees one set of ACLs.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use strait_cluster::acl::{self, AuthorizerSettings, CLUSTER_NAME, resource};
use strait_cluster::image::Image;

pub use strait_cluster::acl::op;

use super::RequestContext;
use crate::broker::Broker;
use crate::errors::ApiError;

pub struct Authz<'a> {
    checks: Option<(Arc<Image>, &'a AuthorizerSettings)>,
    principal: &'a str,
    host: &'a str,
}

impl<'a> Authz<'a> {
    pub fn new(broker: &'a Broker, ctx: &'a RequestContext) -> Self {
        Authz {
            checks: broker
                .authorizer
                .as_ref()
                .map(|settings| (broker.node().image(), settings)),
            principal: &ctx.principal,
            host: ctx.client_host.trim_start_matches('/'),
        }
    }

    pub fn allows(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        match &self.checks {
            None => true,
            Some((image, settings)) => acl::authorize(
                image.acls.values(),
                settings,
                self.principal,
                self.host,
                operation,
                resource_type,
                name,
            ),
        }
    }

    pub fn topic(&self, operation: i8, name: &str) -> bool {
        self.allows(operation, resource::TOPIC, name)
    }

    pub fn group(&self, operation: i8, name: &str) -> bool {
        self.allows(operation, resource::GROUP, name)
    }

    pub fn cluster(&self, operation: i8) -> bool {
        self.allows(operation, resource::CLUSTER, CLUSTER_NAME)
    }

    /// Kafka's `authorized_operations` bit field for a resource: bit n set when operation n is
    /// allowed, over the operations that apply to that resource type.
    pub fn operations(&self, resource_type: i8, name: &str) -> i32 {
        let applicable: &[i8] = match resource_type {
            resource::TOPIC => &[
                op::READ,
                op::WRITE,
                op::CREATE,
                op::DELETE,
                op::ALTER,
                op::DESCRIBE,
                op::DESCRIBE_CONFIGS,
                op::ALTER_CONFIGS,
            ],
            resource::GROUP => &[op::READ, op::DELETE, op::DESCRIBE],
            resource::CLUSTER => &[
                op::CREATE,
                op::ALTER,
                op::DESCRIBE,
                op::CLUSTER_ACTION,
                op::DESCRIBE_CONFIGS,
                op::ALTER_CONFIGS,
                op::IDEMPOTENT_WRITE,
                op::CREATE_TOKENS,
                op::DESCRIBE_TOKENS,
            ],
            _ => &[],
        };
        applicable
            .iter()
            .filter(|o| self.allows(**o, resource_type, name))
            .fold(0, |bits, o| bits | (1 << o))
    }
}

pub fn topic_denied(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::TopicAuthorizationFailed,
        format!("not authorized to access topic {name}"),
    )
}

pub fn group_denied(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::GroupAuthorizationFailed,
        format!("not authorized to access group {name}"),
    )
}

pub fn cluster_denied() -> ApiError {
    ApiError::new(
        ResponseError::ClusterAuthorizationFailed,
        "not authorized for this cluster operation",
    )
}
