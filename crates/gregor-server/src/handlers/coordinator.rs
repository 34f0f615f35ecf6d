//! FindCoordinator: the coordinator of a group or transactional id is the leader of the
//! partition of `__consumer_offsets` or `__transaction_state` where the id lives (Kafka's
//! placement); the topic is created on first use.

use std::sync::Arc;

use gregor_protocol::kafka::messages::find_coordinator_response::Coordinator;
use gregor_protocol::kafka::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::coordinators::internal_topics::{self, coordinator_of, OFFSETS, TRANSACTIONS};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (node id, host, port) of the coordinator, or an error code with its message.
async fn locate(
    broker: &Broker,
    key: &str,
    key_type: i8,
) -> Result<(i32, String, i32), (i16, String)> {
    let topic = match key_type {
        GROUP => &OFFSETS,
        TRANSACTION => &TRANSACTIONS,
        other => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("Unknown coordinator type {other}"),
            ))
        }
    };
    if let Err(e) = internal_topics::ensure(broker, topic).await {
        tracing::error!(error = %e, "cannot create an internal topic");
        return Err((ResponseError::CoordinatorNotAvailable.code(), e));
    }
    let image = broker.metadata.image();
    let unavailable = |why: String| (ResponseError::CoordinatorNotAvailable.code(), why);
    let node = coordinator_of(&image, topic, key).ok_or_else(|| {
        unavailable(format!(
            "the {} partition of {key} has no leader",
            topic.name
        ))
    })?;
    match image.brokers.get(&node) {
        Some(leader) => Ok((leader.node_id, leader.host.clone(), leader.port as i32)),
        None => Err(unavailable(format!("broker {node} is not registered"))),
    }
}

async fn coordinator(broker: &Broker, key: StrBytes, key_type: i8) -> Coordinator {
    let located = locate(broker, &key, key_type).await;
    let entry = Coordinator::default().with_key(key);
    match located {
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
