//! DescribeCluster: the unfenced brokers, and from v2 (KIP-1073) the fenced ones too when the
//! request asks (`include_fenced_brokers`), each marked. UnregisterBroker: a broker gone for
//! good leaves the cluster (kafka-cluster.sh unregister, `gregor cluster unregister`).

use std::sync::Arc;

use gregor_metadata::ControllerRequest;
use gregor_protocol::kafka::messages::describe_cluster_response::DescribeClusterBroker;
use gregor_protocol::kafka::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};

use super::str_bytes;
use crate::broker::Broker;

pub fn describe_cluster(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let image = broker.metadata.image();
    let brokers = image
        .brokers
        .values()
        // Clients are sent only to brokers the controller has not fenced, as in Kafka.
        .filter(|b| !b.fenced || (version >= 2 && request.include_fenced_brokers))
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.as_deref().map(str_bytes))
                .with_is_fenced(b.fenced)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_error_message(None)
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}

/// UnregisterBroker: the controller fences the broker, then forgets its registration.
pub async fn unregister_broker(
    broker: &Arc<Broker>,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let unregister = ControllerRequest::UnregisterBroker {
        node_id: request.broker_id.0,
    };
    match broker.controller.call(unregister, false).await {
        Ok(_) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.code)
            .with_error_message(Some(str_bytes(&e.message))),
    }
}
