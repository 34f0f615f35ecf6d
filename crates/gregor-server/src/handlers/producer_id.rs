//! InitProducerId: idempotent producers get an id here; transactional ids go to the transaction
//! coordinator (handlers/transactions.rs).

use std::sync::Arc;

use gregor_protocol::kafka::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(id) = &request.transactional_id {
        return super::transactions::init_producer_id(broker, version, id, &request).await;
    }
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // KIP-360: a producer that knows its id asks for the next epoch; a new id once the epoch is spent.
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match broker.next_producer_id().await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            response.with_error_code(e.code)
        }
    }
}
