//! AlterPartitionReassignments (45) and ListPartitionReassignments (46), as
//! kafka-reassign-partitions.sh and `gregor reassign-partitions` send them: new target replicas
//! per partition (or a cancel), decided by the active controller
//! (`gregor_metadata::reassignment`) and answered per partition once committed; the list is
//! answered from this broker's image, which holds every change it forwarded.

use std::sync::Arc;

use gregor_metadata::reassignment::{self, ReassignmentOutcomes, TopicReassignments};
use gregor_metadata::{ControllerError, ControllerReply, ControllerRequest};
use gregor_protocol::kafka::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use gregor_protocol::kafka::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use gregor_protocol::kafka::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

pub async fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let topics: Vec<TopicReassignments> = request
        .topics
        .iter()
        .map(|t| TopicReassignments {
            topic: t.name.to_string(),
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                    (p.partition_index, target)
                })
                .collect(),
        })
        .collect();
    let allow_rf_change = request.allow_replication_factor_change;
    let call = ControllerRequest::AlterPartitionReassignments {
        topics: topics.clone(),
        allow_rf_change,
    };
    let (outcomes, top) = match broker.controller.call(call, false).await {
        Ok(ControllerReply::Reassignments(outcomes)) => (outcomes, None),
        Ok(other) => {
            let unexpected = ControllerError {
                code: ResponseError::UnknownServerError.code(),
                message: format!("unexpected controller reply {other:?}"),
            };
            (failed(&topics, &unexpected), Some(unexpected))
        }
        Err(e) => (failed(&topics, &e), Some(e)),
    };
    let responses = outcomes
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, outcome)| {
                    let refused = outcome.err();
                    ReassignablePartitionResponse::default()
                        .with_partition_index(index)
                        .with_error_code(refused.as_ref().map_or(0, |e| e.code))
                        .with_error_message(refused.map(|e| str_bytes(&e.message)))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(TopicName(str_bytes(&topic)))
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_error_code(top.as_ref().map_or(0, |e| e.code))
        .with_error_message(top.map(|e| str_bytes(&e.message)))
        .with_responses(responses)
}

/// The whole request failed (no controller): every partition it named gets the error too.
fn failed(topics: &[TopicReassignments], refused: &ControllerError) -> ReassignmentOutcomes {
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|(p, _)| (*p, Err(refused.clone())))
                .collect();
            (t.topic.clone(), partitions)
        })
        .collect()
}

pub fn list_partition_reassignments(
    broker: &Arc<Broker>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.metadata.image();
    let requested: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let ids = |r: &[i32]| r.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let topics = reassignment::ongoing(&image, requested.as_deref())
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, meta)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(index)
                        .with_replicas(ids(&meta.replicas))
                        .with_adding_replicas(ids(&meta.adding_replicas))
                        .with_removing_replicas(ids(&meta.removing_replicas))
                })
                .collect();
            OngoingTopicReassignment::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(partitions)
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
