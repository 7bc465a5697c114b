//! InitProducerId: an idempotent producer gets a fresh producer id with epoch 0 from a durably
//! reserved block; a transactional one goes to the transaction coordinator (`transactions`),
//! which bumps the epoch of its transactional id and fences the previous producer.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::warn;

use strait_cluster::acl::resource;

use super::RequestContext;
use super::authz::{Authz, op};
use crate::broker::Broker;

pub async fn init(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
    ctx: &RequestContext,
) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let authz = Authz::new(broker, ctx);
    match &req.transactional_id {
        Some(id) if !authz.allows(op::WRITE, resource::TRANSACTIONAL_ID, id.as_str()) => {
            return failed(ResponseError::TransactionalIdAuthorizationFailed);
        }
        Some(_) => {}
        // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or (KIP-679) WRITE on some
        // topic. Kafka asks whether any ACL could allow WRITE on any topic; here an existing topic
        // must be writable.
        None if !authz.cluster(op::IDEMPOTENT_WRITE)
            && !broker
                .node()
                .image()
                .topics
                .keys()
                .any(|t| authz.topic(op::WRITE, t)) =>
        {
            return failed(ResponseError::ClusterAuthorizationFailed);
        }
        None => {}
    }
    if let Some(id) = &req.transactional_id {
        // KIP-360: a producer that had an id sends it back (-1 otherwise).
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        return match super::transactions::init_transactional(
            broker,
            id.as_str(),
            req.transaction_timeout_ms,
            expected,
            ctx.api_version,
        )
        .await
        {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => failed(e),
        };
    }
    match broker.next_producer_id().await {
        // A non-transactional producer (first start or KIP-360 epoch bump after an error) always
        // gets a new id: its old sequence state cannot be trusted.
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "cannot allocate a producer id");
            failed(ResponseError::CoordinatorNotAvailable)
        }
    }
}
