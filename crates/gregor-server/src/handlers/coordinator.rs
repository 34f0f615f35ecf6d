//! FindCoordinator. There is no group or transaction coordinator yet (issue 3 and the transactions
//! issue), so every key is answered ResponseError::CoordinatorNotAvailable.code(), which clients treat as "retry later".
//! The API is advertised all the same because librdkafka enables LZ4 only for brokers that list
//! FindCoordinator (its feature table ties LZ4 to that API's presence).

use gregor_protocol::kafka::messages::find_coordinator_response::Coordinator;
use gregor_protocol::kafka::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;

const MESSAGE: &str =
    "The coordinator is not available: gregor has no group or transaction coordinator yet";

pub fn handle(version: i16, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let response = FindCoordinatorResponse::default();
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                    .with_error_message(Some(str_bytes(MESSAGE)))
            })
            .collect();
        response.with_coordinators(coordinators)
    } else {
        response
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_error_message(Some(str_bytes(MESSAGE)))
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
    }
}
