//! DescribeQuorum (KIP-595, KIP-853): the metadata quorum as its leader sees it, for
//! `kafka-metadata-quorum.sh` and `gregor metadata-quorum`. Any node answers: the question goes
//! to the active controller like any controller request.

use std::sync::Arc;

use gregor_metadata::{ControllerReply, ControllerRequest, QuorumDescription, ReplicaProgress};
use gregor_protocol::kafka::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use gregor_protocol::kafka::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

/// The metadata log, the one partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica(progress: &ReplicaProgress) -> ReplicaState {
    // The leader does not track fetch times: -1 is Kafka's "unknown".
    ReplicaState::default()
        .with_replica_id(BrokerId(progress.node_id))
        .with_log_end_offset(progress.log_end_offset)
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1)
}

fn partition(index: i32, quorum: &QuorumDescription) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(quorum.leader_id))
        .with_leader_epoch(quorum.leader_epoch)
        .with_high_watermark(quorum.high_watermark)
        .with_current_voters(quorum.voters.iter().map(replica).collect())
        .with_observers(quorum.observers.iter().map(replica).collect())
}

pub async fn describe_quorum(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let quorum = match broker
        .controller
        .call(ControllerRequest::DescribeQuorum, false)
        .await
    {
        Ok(ControllerReply::Quorum(quorum)) => quorum,
        Ok(other) => {
            tracing::error!(?other, "unexpected answer to DescribeQuorum");
            return DescribeQuorumResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code());
        }
        Err(e) => {
            // Error messages and the nodes' listeners came with v2.
            let message = (version >= 2).then(|| str_bytes(&e.message));
            return DescribeQuorumResponse::default()
                .with_error_code(e.code)
                .with_error_message(message);
        }
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let known = topic.topic_name.as_str() == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .iter()
                .map(|p| match (known, p.partition_index) {
                    (true, 0) => partition(0, &quorum),
                    (_, index) => PartitionData::default()
                        .with_partition_index(index)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(topic.topic_name.0))
                .with_partitions(partitions)
        })
        .collect();
    // A single node's quorum talks on no listener of its own; its clients' is named then.
    if version < 2 {
        return DescribeQuorumResponse::default().with_topics(topics);
    }
    let listener = match &broker.config.cluster.controller_listener {
        Some(controller) => controller.name.clone(),
        None => "PLAINTEXT".to_string(),
    };
    let nodes = quorum
        .voters
        .iter()
        .chain(&quorum.observers)
        .map(|v| {
            Node::default()
                .with_node_id(BrokerId(v.node_id))
                .with_listeners(vec![Listener::default()
                    .with_name(str_bytes(&listener))
                    .with_host(str_bytes(&v.host))
                    .with_port(v.port)])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}
