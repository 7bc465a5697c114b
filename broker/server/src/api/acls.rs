//! CreateAcls, DescribeAcls and DeleteAcls (v1–3): ACL bindings in the metadata log, decided by
//! the controller and read from the image. Creating or deleting needs ALTER on the cluster,
//! describing DESCRIBE, as in Kafka; without an authorizer they are refused with
//! SECURITY_DISABLED, as Kafka does. Answers wait until the change is in this broker's image, so
//! the next request here is checked against it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use strait_cluster::acl::{AclBinding, AclFilter};
use strait_cluster::rpc::{ControllerRequest, ControllerResponse};

use super::authz::{Authz, cluster_denied, op};
use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::errors::ApiError;

const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn create(
    broker: &Arc<Broker>,
    req: CreateAclsRequest,
    ctx: &RequestContext,
) -> CreateAclsResponse {
    let answer = |outcome: Result<(), ApiError>| match outcome {
        Ok(()) => AclCreationResult::default().with_error_message(None),
        Err(e) => AclCreationResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message))),
    };
    let refusal = security_disabled(broker)
        .or_else(|| (!Authz::new(broker, ctx).cluster(op::ALTER)).then(cluster_denied));
    if let Some(e) = refusal {
        let results = req
            .creations
            .iter()
            .map(|_| answer(Err(e.clone())))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let bindings: Vec<AclBinding> = req
        .creations
        .into_iter()
        .map(|c| AclBinding {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    let count = bindings.len();
    let node = broker.node();
    let results: Vec<Result<(), ApiError>> = match node
        .call(ControllerRequest::CreateAcls {
            bindings: bindings.clone(),
        })
        .await
    {
        Ok(ControllerResponse::CreateAcls(results)) => {
            let created: Vec<&AclBinding> = bindings
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(b, _)| b)
                .collect();
            node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                created.iter().all(|b| image.acls.values().any(|a| a == *b))
            })
            .await;
            results
                .into_iter()
                .map(|r| r.map_err(|e| ApiError::from(&e)))
                .collect()
        }
        Ok(other) => vec![Err(ApiError::unexpected_answer(&other)); count],
        Err(e) => vec![Err(ApiError::from(&e)); count],
    };
    CreateAclsResponse::default().with_results(results.into_iter().map(answer).collect())
}

/// Kafka answers the ACL APIs with SECURITY_DISABLED when no authorizer is configured: ACLs
/// stored there would look enforced and not be.
fn security_disabled(broker: &Broker) -> Option<ApiError> {
    broker.authorizer.is_none().then(|| {
        ApiError::new(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured on the broker",
        )
    })
}

fn filter_of(
    resource_type: i8,
    resource_name: Option<&kafka_protocol::protocol::StrBytes>,
    pattern_type: i8,
    principal: Option<&kafka_protocol::protocol::StrBytes>,
    host: Option<&kafka_protocol::protocol::StrBytes>,
    operation: i8,
    permission: i8,
) -> AclFilter {
    AclFilter {
        resource_type,
        resource_name: resource_name.map(|s| s.to_string()),
        pattern_type,
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation,
        permission,
    }
}

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeAclsRequest,
    ctx: &RequestContext,
) -> DescribeAclsResponse {
    let error = |e: ApiError| {
        DescribeAclsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)))
    };
    if let Some(e) = security_disabled(broker) {
        return error(e);
    }
    if !Authz::new(broker, ctx).cluster(op::DESCRIBE) {
        return error(cluster_denied());
    }
    let filter = filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    if let Some(why) = filter.invalid() {
        return error(ApiError::new(ResponseError::InvalidRequest, why));
    }
    let image = broker.node().image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in image.acls.values().filter(|b| filter.matches(b)) {
        by_resource
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(b.principal.as_str()))
                    .with_host(str_bytes(b.host.as_str()))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(resources)
}

pub async fn delete(
    broker: &Arc<Broker>,
    req: DeleteAclsRequest,
    ctx: &RequestContext,
) -> DeleteAclsResponse {
    let failed = |e: &ApiError| {
        DeleteAclsFilterResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message.clone())))
    };
    let refusal = security_disabled(broker)
        .or_else(|| (!Authz::new(broker, ctx).cluster(op::ALTER)).then(cluster_denied));
    if let Some(e) = refusal {
        let results = req.filters.iter().map(|_| failed(&e)).collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let count = filters.len();
    let node = broker.node();
    let results = match node.call(ControllerRequest::DeleteAcls { filters }).await {
        Ok(ControllerResponse::DeleteAcls(results)) => {
            let removed: Vec<AclBinding> = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flatten()
                .cloned()
                .collect();
            node.wait_for_image(PROPAGATION_TIMEOUT, |image| {
                removed.iter().all(|b| !image.acls.values().any(|a| a == b))
            })
            .await;
            results
                .into_iter()
                .map(|r| match r {
                    Ok(matched) => DeleteAclsFilterResult::default()
                        .with_error_message(None)
                        .with_matching_acls(
                            matched
                                .into_iter()
                                .map(|b| {
                                    DeleteAclsMatchingAcl::default()
                                        .with_resource_type(b.resource_type)
                                        .with_resource_name(str_bytes(b.resource_name))
                                        .with_pattern_type(b.pattern_type)
                                        .with_principal(str_bytes(b.principal))
                                        .with_host(str_bytes(b.host))
                                        .with_operation(b.operation)
                                        .with_permission_type(b.permission)
                                })
                                .collect(),
                        ),
                    Err(e) => failed(&ApiError::from(&e)),
                })
                .collect()
        }
        Ok(other) => vec![failed(&ApiError::unexpected_answer(&other)); count],
        Err(e) => vec![failed(&ApiError::from(&e)); count],
    };
    DeleteAclsResponse::default().with_filter_results(results)
}
