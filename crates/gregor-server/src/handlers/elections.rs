//! ElectLeaders (kafka-leader-election.sh, `gregor leader-election`): a preferred or unclean
//! election of the named partitions (or of all), decided by the active controller
//! (`gregor_metadata::elections`) and answered per partition once committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gregor_metadata::elections::{ElectionType, TopicElections};
use gregor_metadata::{ControllerError, ControllerReply, ControllerRequest};
use gregor_protocol::kafka::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use gregor_protocol::kafka::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

pub async fn elect_leaders(
    broker: &Arc<Broker>,
    version: i16,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let requested = request.topic_partitions.as_ref().map(|topics| {
        let mut by_topic: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for t in topics {
            by_topic
                .entry(t.topic.to_string())
                .or_default()
                .extend(&t.partitions);
        }
        by_topic
    });
    let Some(election) = ElectionType::from_code(request.election_type) else {
        let refused = ControllerError {
            code: ResponseError::InvalidRequest.code(),
            message: format!("unknown election type {}", request.election_type),
        };
        return failed(version, requested, refused);
    };
    let call = ControllerRequest::ElectLeaders {
        election,
        partitions: requested.clone(),
    };
    match broker.controller.call(call, false).await {
        Ok(ControllerReply::Elections(elections)) => {
            if election == ElectionType::Unclean {
                log_unclean(&elections);
            }
            response(elections)
        }
        Ok(other) => failed(
            version,
            requested,
            ControllerError {
                code: ResponseError::UnknownServerError.code(),
                message: format!("unexpected controller reply {other:?}"),
            },
        ),
        Err(e) => failed(version, requested, e),
    }
}

/// An unclean election may lose what only the old in-sync replicas had: worth a line each
/// (on the broker that took the request).
fn log_unclean(elections: &[TopicElections]) {
    for topic in elections {
        for (partition, _) in topic.partitions.iter().filter(|(_, e)| e.is_none()) {
            tracing::warn!(topic = %topic.topic, partition, "leader elected by an unclean election: if it was not in sync, the records only the previous in-sync replicas held are lost");
        }
    }
}

fn response(elections: Vec<TopicElections>) -> ElectLeadersResponse {
    let results = elections
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|(partition, outcome)| partition_result(partition, outcome.as_ref()))
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(&topic.topic)))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

fn partition_result(partition: i32, refused: Option<&ControllerError>) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(refused.map_or(0, |e| e.code))
        .with_error_message(refused.map(|e| str_bytes(&e.message)))
}

/// The whole request failed (no controller, a bad election type): the error for the request
/// (v1+) and for each partition it named.
fn failed(
    version: i16,
    requested: Option<BTreeMap<String, BTreeSet<i32>>>,
    refused: ControllerError,
) -> ElectLeadersResponse {
    let elections = requested
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partitions)| TopicElections {
            topic,
            partitions: partitions
                .into_iter()
                .map(|p| (p, Some(refused.clone())))
                .collect(),
        })
        .collect();
    let top = if version >= 1 { refused.code } else { 0 };
    response(elections).with_error_code(top)
}
