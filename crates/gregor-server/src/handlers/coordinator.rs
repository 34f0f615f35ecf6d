//! FindCoordinator: this broker coordinates every group and transactional id (single node),
//! creating `__consumer_offsets` or `__transaction_state` on first use.

use std::sync::Arc;

use gregor_protocol::kafka::messages::find_coordinator_response::Coordinator;
use gregor_protocol::kafka::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (node id, host, port) of the coordinator, or an error code with its message.
async fn locate(broker: &Broker, key_type: i8) -> Result<(i32, String, i32), (i16, String)> {
    let created = match key_type {
        GROUP => broker
            .groups
            .ensure_topic(broker)
            .await
            .map_err(|e| e.to_string()),
        TRANSACTION => broker
            .txns
            .ensure_topic(broker)
            .await
            .map_err(|e| e.to_string()),
        other => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("Unknown coordinator type {other}"),
            ))
        }
    };
    if let Err(e) = created {
        tracing::error!(error = %e, "cannot create an internal topic");
        return Err((ResponseError::CoordinatorNotAvailable.code(), e));
    }
    let image = broker.metadata.image();
    match image.brokers.get(&broker.node_id) {
        Some(me) => Ok((me.node_id, me.host.clone(), me.port as i32)),
        None => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "this broker is not registered".into(),
        )),
    }
}

async fn coordinator(broker: &Broker, key: StrBytes, key_type: i8) -> Coordinator {
    let entry = Coordinator::default().with_key(key);
    match locate(broker, key_type).await {
        Ok((node, host, port)) => entry
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(&host))
            .with_port(port)
            .with_error_message(None),
        Err((code, message)) => entry
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message))),
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            coordinators.push(coordinator(broker, key, request.key_type).await);
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let one = coordinator(broker, request.key, request.key_type).await;
    FindCoordinatorResponse::default()
        .with_error_code(one.error_code)
        .with_error_message(one.error_message)
        .with_node_id(one.node_id)
        .with_host(one.host)
        .with_port(one.port)
}
