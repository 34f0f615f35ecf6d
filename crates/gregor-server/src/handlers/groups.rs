//! Consumer group APIs: thin adapters from requests to the group coordinator's runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use gregor_metadata::{features, MetadataImage};
use gregor_protocol::kafka::messages::consumer_group_describe_response::DescribedGroup;
use gregor_protocol::kafka::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use gregor_protocol::kafka::messages::*;
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::coordinators::groups::Catalog;

pub async fn join_group(
    broker: &Arc<Broker>,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
    request: JoinGroupRequest,
) -> Option<JoinGroupResponse> {
    let host = format!("/{}", peer.ip());
    broker
        .groups
        .call(|c, now, reply| c.join_group(now, version, client_id, &host, request, reply))
        .await
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    version: i16,
    request: SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    broker
        .groups
        .call(|c, now, reply| c.sync_group(now, version, request, reply))
        .await
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    version: i16,
    request: HeartbeatRequest,
) -> Option<HeartbeatResponse> {
    broker
        .groups
        .call(|c, now, reply| c.heartbeat(now, version, request, reply))
        .await
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    version: i16,
    request: LeaveGroupRequest,
) -> Option<LeaveGroupResponse> {
    broker
        .groups
        .call(|c, now, reply| c.leave_group(now, version, request, reply))
        .await
}

/// Partitions of topics that do not exist are refused here with UNKNOWN_TOPIC_OR_PARTITION, as
/// Kafka's request handler does; the coordinator sees only the rest.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    version: i16,
    mut request: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    let image = broker.metadata.image();
    let mut unknown: Vec<(TopicName, Vec<i32>)> = Vec::new();
    for topic in &mut request.topics {
        let count = image
            .topics
            .get(topic.name.0.as_str())
            .map_or(0, |t| t.partitions.len() as i32);
        let (known, missing): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| (0..count).contains(&p.partition_index));
        topic.partitions = known;
        if !missing.is_empty() {
            unknown.push((
                topic.name.clone(),
                missing.iter().map(|p| p.partition_index).collect(),
            ));
        }
    }
    request.topics.retain(|t| !t.partitions.is_empty());
    let mut response = broker
        .groups
        .call(|c, now, reply| c.offset_commit(now, version, request, reply))
        .await?;
    for (name, partitions) in unknown {
        let refused = partitions.into_iter().map(|index| {
            OffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        });
        match response.topics.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.partitions.extend(refused),
            None => response.topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(refused.collect()),
            ),
        }
    }
    Some(response)
}

pub async fn offset_fetch(
    broker: &Arc<Broker>,
    version: i16,
    request: OffsetFetchRequest,
) -> Option<OffsetFetchResponse> {
    broker
        .groups
        .read(|c| c.offset_fetch(version, request))
        .await
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeGroupsRequest,
) -> Option<DescribeGroupsResponse> {
    broker
        .groups
        .read(|c| c.describe_groups(version, request))
        .await
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: ListGroupsRequest,
) -> Option<ListGroupsResponse> {
    broker
        .groups
        .read(|c| c.list_groups(version, request))
        .await
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    broker
        .groups
        .call(|c, now, reply| c.delete_groups(now, version, request, reply))
        .await
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    version: i16,
    request: OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    broker
        .groups
        .call(|c, now, reply| c.offset_delete(now, version, request, reply))
        .await
}

pub async fn consumer_group_heartbeat(
    broker: &Arc<Broker>,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
    request: ConsumerGroupHeartbeatRequest,
) -> Option<ConsumerGroupHeartbeatResponse> {
    let host = format!("/{}", peer.ip());
    let image = broker.metadata.image();
    if !consumer_protocol_enabled(&image) {
        return Some(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::UnsupportedVersion.code())
                .with_error_message(Some(str_bytes(CONSUMER_PROTOCOL_DISABLED))),
        );
    }
    broker
        .groups
        .call(|c, now, reply| {
            c.consumer_group_heartbeat_from(
                now,
                version,
                client_id,
                &host,
                request,
                &Catalog(&image),
                reply,
            )
        })
        .await
}

pub async fn consumer_group_describe(
    broker: &Arc<Broker>,
    version: i16,
    request: ConsumerGroupDescribeRequest,
) -> Option<ConsumerGroupDescribeResponse> {
    let image = broker.metadata.image();
    if !consumer_protocol_enabled(&image) {
        let groups = request.group_ids.into_iter().map(|id| {
            DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(ResponseError::UnsupportedVersion.code())
                .with_error_message(Some(str_bytes(CONSUMER_PROTOCOL_DISABLED)))
        });
        return Some(ConsumerGroupDescribeResponse::default().with_groups(groups.collect()));
    }
    broker
        .groups
        .read(|c| c.consumer_group_describe(version, request, &Catalog(&image)))
        .await
}

const CONSUMER_PROTOCOL_DISABLED: &str =
    "The consumer group protocol (KIP-848) is disabled: group.version is 0";

/// The KIP-848 consumer protocol is served while the finalized `group.version` is at least 1,
/// as in Kafka; ApiVersions leaves its APIs out otherwise.
pub fn consumer_protocol_enabled(image: &MetadataImage) -> bool {
    image.feature_level(features::GROUP_VERSION) >= 1
}

#[cfg(test)]
mod tests {
    use gregor_protocol::kafka::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use gregor_protocol::kafka::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use gregor_protocol::kafka::messages::{GroupId, OffsetFetchRequest};

    use super::*;
    use crate::handlers::str_bytes;

    fn commit(offset: i64, metadata_len: usize) -> OffsetCommitRequest {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(str_bytes(&"m".repeat(metadata_len))));
        OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(vec![partition])])
    }

    async fn committed(broker: &Arc<Broker>) -> i64 {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_indexes(vec![0])]));
        let fetched = offset_fetch(broker, 7, request).await.unwrap();
        fetched.topics[0].partitions[0].committed_offset
    }

    /// A commit clearly larger than the offsets topic's max.message.bytes is refused with
    /// INVALID_COMMIT_OFFSET_SIZE. One that passes that check but still cannot be appended gets
    /// no answer, and the coordinator forgets it: memory is reloaded from the log instead of
    /// serving an offset that was never stored.
    #[tokio::test]
    async fn a_commit_that_cannot_be_stored_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = [
            ("offsets.topic.num.partitions", "1"),
            ("message.max.bytes", "2000"),
        ];
        let broker = super::super::test_broker(dir.path(), &overrides).await;
        assert!(offset_commit(&broker, 8, commit(5, 10)).await.is_some());
        assert_eq!(committed(&broker).await, 5);
        let refused = offset_commit(&broker, 8, commit(6, 3000)).await.unwrap();
        assert_eq!(refused.topics[0].partitions[0].error_code, 28);
        assert_eq!(committed(&broker).await, 5);
        // 1950 bytes of metadata pass the check; with the record's other fields and the batch
        // header the append exceeds 2000 bytes.
        assert!(offset_commit(&broker, 8, commit(6, 1950)).await.is_none());
        assert_eq!(
            committed(&broker).await,
            5,
            "the unstored commit was forgotten"
        );
        assert!(offset_commit(&broker, 8, commit(7, 10)).await.is_some());
        assert_eq!(committed(&broker).await, 7);
    }
}
