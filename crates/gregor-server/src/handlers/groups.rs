//! Consumer group APIs: thin adapters from requests to the group coordinator's runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use gregor_protocol::kafka::messages::*;

use crate::broker::Broker;
use crate::groups::Catalog;

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
        .call(broker, |c, now, reply| {
            c.join_group(now, version, client_id, &host, request, reply)
        })
        .await
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    version: i16,
    request: SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    broker
        .groups
        .call(broker, |c, now, reply| {
            c.sync_group(now, version, request, reply)
        })
        .await
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    version: i16,
    request: HeartbeatRequest,
) -> Option<HeartbeatResponse> {
    broker
        .groups
        .call(broker, |c, now, reply| {
            c.heartbeat(now, version, request, reply)
        })
        .await
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    version: i16,
    request: LeaveGroupRequest,
) -> Option<LeaveGroupResponse> {
    broker
        .groups
        .call(broker, |c, now, reply| {
            c.leave_group(now, version, request, reply)
        })
        .await
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    version: i16,
    request: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    broker
        .groups
        .call(broker, |c, now, reply| {
            c.offset_commit(now, version, request, reply)
        })
        .await
}

pub fn offset_fetch(
    broker: &Arc<Broker>,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    broker.groups.with(|c| c.offset_fetch(version, request))
}

pub fn describe_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    broker.groups.read(|c| c.describe_groups(version, request))
}

pub fn list_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    broker.groups.read(|c| c.list_groups(version, request))
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    broker
        .groups
        .call(broker, |c, now, reply| {
            c.delete_groups(now, version, request, reply)
        })
        .await
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    version: i16,
    request: OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    broker
        .groups
        .call(broker, |c, now, reply| {
            c.offset_delete(now, version, request, reply)
        })
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
    broker
        .groups
        .call(broker, |c, now, reply| {
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

pub fn consumer_group_describe(
    broker: &Arc<Broker>,
    version: i16,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = broker.metadata.image();
    broker
        .groups
        .read(|c| c.consumer_group_describe(version, request, &Catalog(&image)))
}
