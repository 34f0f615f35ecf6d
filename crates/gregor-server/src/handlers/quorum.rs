//! DescribeQuorum (KIP-595, KIP-853): the metadata quorum as its leader sees it, for
//! `kafka-metadata-quorum.sh` and `gregor metadata-quorum`; AddRaftVoter and RemoveRaftVoter
//! (KIP-853): controllers join and leave the voters at runtime. Any node answers: the request
//! goes to the active controller like any controller request.

use std::sync::Arc;

use gregor_metadata::{
    ControllerReply, ControllerRequest, QuorumDescription, ReplicaProgress, VoterChange,
};
use gregor_protocol::kafka::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use gregor_protocol::kafka::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, BrokerId, DescribeQuorumRequest,
    DescribeQuorumResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse, TopicName,
};
use gregor_protocol::kafka::protocol::StrBytes;
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
    let listener = controller_listener_name(broker);
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

/// The name of the listener the quorum talks on: the controller listener's, or on a single
/// node, which has none, its clients' (PLAINTEXT).
fn controller_listener_name(broker: &Broker) -> String {
    broker
        .config
        .cluster
        .controller_listener
        .as_ref()
        .map_or_else(|| "PLAINTEXT".to_string(), |l| l.name.clone())
}

/// Has the active controller carry out `change`: the error code and message to answer.
async fn change_voters(
    broker: &Broker,
    cluster_id: Option<&StrBytes>,
    change: Result<VoterChange, String>,
) -> (i16, Option<StrBytes>) {
    let ours = broker.metadata.image().cluster_id.clone();
    // Null (or empty) asks for no check.
    if let Some(theirs) = cluster_id.filter(|id| !id.is_empty() && id.as_str() != ours) {
        let message = format!("cluster id {theirs} is not this cluster's ({ours})");
        return (
            ResponseError::InconsistentClusterId.code(),
            Some(str_bytes(&message)),
        );
    }
    let change = match change {
        Ok(change) => change,
        Err(why) => return (ResponseError::InvalidRequest.code(), Some(str_bytes(&why))),
    };
    match broker
        .controller
        .call(ControllerRequest::ChangeVoters(change), false)
        .await
    {
        Ok(_) => (0, None),
        Err(e) => (e.code, Some(str_bytes(&e.message))),
    }
}

/// AddRaftVoter: the controller reached on the request's listener of the controller listener's
/// name copies the metadata log, then votes.
pub async fn add_raft_voter(
    broker: &Arc<Broker>,
    request: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let name = controller_listener_name(broker);
    let change = request
        .listeners
        .iter()
        .find(|l| l.name.eq_ignore_ascii_case(&name))
        .map(|l| VoterChange::Add {
            node_id: request.voter_id,
            host: l.host.to_string(),
            port: l.port,
        })
        .ok_or_else(|| format!("the voter has no listener named {name}"));
    let (code, message) = change_voters(broker, request.cluster_id.as_ref(), change).await;
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

/// RemoveRaftVoter: the voter stops voting (it goes on copying the log as an observer).
pub async fn remove_raft_voter(
    broker: &Arc<Broker>,
    request: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let change = Ok(VoterChange::Remove {
        node_id: request.voter_id,
    });
    let (code, message) = change_voters(broker, request.cluster_id.as_ref(), change).await;
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}
