//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers, as the admin
//! clients' `describeCluster` expects.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::authz::{Authz, cluster_denied, op};
use super::{RequestContext, metadata, str_bytes};
use crate::broker::Broker;
use strait_cluster::acl::{CLUSTER_NAME, resource};

const ENDPOINT_TYPE_BROKER: i8 = 1;
/// "Authorized operations" value meaning "not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn describe(
    broker: &Arc<Broker>,
    req: DescribeClusterRequest,
    ctx: &RequestContext,
) -> DescribeClusterResponse {
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    let authz = Authz::new(broker, ctx);
    if !authz.cluster(op::DESCRIBE) {
        let e = cluster_denied();
        return resp
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.message)))
            .with_controller_id(BrokerId(-1));
    }
    let resp = if req.include_cluster_authorized_operations {
        resp.with_cluster_authorized_operations(authz.operations(resource::CLUSTER, CLUSTER_NAME))
    } else {
        resp
    };
    if ctx.api_version >= 1 && req.endpoint_type != ENDPOINT_TYPE_BROKER {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "This broker only describes broker endpoints",
            )))
            .with_controller_id(BrokerId(-1));
    }
    let brokers = metadata::live_brokers(&broker.node().image(), &ctx.listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    resp.with_controller_id(BrokerId(broker.node().controller_id_for_clients()))
        .with_brokers(brokers)
}
