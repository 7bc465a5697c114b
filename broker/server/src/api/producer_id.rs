//! InitProducerId for idempotent producers: hands out a fresh producer id with epoch 0 from a
//! durably reserved block. Transactional ids need the transaction coordinator, which is not
//! built yet, and are refused.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::warn;

use super::RequestContext;
use crate::broker::Broker;

pub async fn init(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
    _ctx: &RequestContext,
) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        warn!("InitProducerId with a transactional id refused: transactions are not supported yet");
        return failed(ResponseError::UnsupportedVersion);
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
