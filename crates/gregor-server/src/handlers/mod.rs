//! Request handlers, one module per API family. Each turns a decoded request into its response;
//! `handle` dispatches and encodes.

pub mod api_versions;
mod cluster;
mod configs;
mod coordinator;
mod elections;
mod features;
mod fetch;
mod groups;
mod leaders;
mod list_offsets;
mod log_dirs;
mod metadata;
mod produce;
mod producer_id;
mod producers;
mod quorum;
mod reassignments;
mod records;
mod telemetry;
pub(crate) mod topics;
mod transactions;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gregor_protocol::kafka::protocol::Encodable;
use gregor_protocol::parts::Part;
use gregor_protocol::{encode_response, encode_response_parts, ApiKey, Request, RequestKind};
use gregor_storage::FileSlice;

use crate::broker::Broker;

/// What the connection does after a request.
pub enum Reply {
    Send(Bytes),
    /// A response whose records are sent from segment files (a fetch's).
    SendParts(Vec<ResponsePart>),
    /// No response is due (acks=0 produce).
    Nothing,
    /// The response cannot be encoded at this version: a bug, reported by closing the connection
    /// rather than leaving the client waiting.
    Close,
}

/// A piece of a response: bytes, or record batches sent from a segment file.
pub enum ResponsePart {
    Bytes(Bytes),
    File(FileSlice),
}

/// Encodes a fetch response, its placeholders becoming the file slices they stand for.
fn encode_fetch(api: ApiKey, version: i16, correlation_id: i32, reply: fetch::FetchReply) -> Reply {
    if reply.files.is_empty() {
        return encode(api, version, correlation_id, &reply.response);
    }
    let parts = match encode_response_parts(api, version, correlation_id, &reply.response) {
        Ok(parts) => parts,
        Err(e) => {
            tracing::error!(?api, version, error = %e, "cannot encode response");
            return Reply::Close;
        }
    };
    // Every placeholder must stand for its file: one encoded as bytes would send zeros.
    let mismatch = || {
        tracing::error!("a fetch response's placeholders do not match its files");
        Reply::Close
    };
    let mut files = reply.files.into_iter();
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        out.push(match part {
            Part::Bytes(bytes) => ResponsePart::Bytes(bytes),
            Part::Placeholder(len) => match files.next() {
                Some(file) if file.len == len => ResponsePart::File(file),
                _ => return mismatch(),
            },
        });
    }
    if files.next().is_some() {
        return mismatch();
    }
    Reply::SendParts(out)
}

fn encode<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, response: &R) -> Reply {
    match encode_response(api, version, correlation_id, response) {
        Ok(bytes) => Reply::Send(bytes),
        Err(e) => {
            tracing::error!(?api, version, error = %e, "cannot encode response");
            Reply::Close
        }
    }
}

/// Who is on the other end of a connection: its address, and the client software it named in
/// ApiVersions (KIP-511), which client metrics subscriptions may select on.
pub struct Client {
    pub peer: SocketAddr,
    pub software: Option<(String, String)>,
}

/// Answers one request.
pub async fn handle(broker: &Arc<Broker>, request: Request, client: &mut Client) -> Reply {
    let peer = client.peer;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api = request.api_key;
    macro_rules! respond {
        ($response:expr) => {
            encode(api, version, correlation_id, &$response)
        };
    }
    // For responses that may never come (their records could not be appended).
    macro_rules! respond_later {
        ($response:expr) => {
            match $response.await {
                Some(response) => respond!(response),
                None => Reply::Close,
            }
        };
    }
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map_or("", |c| c.as_str())
        .to_string();
    match request.body {
        RequestKind::ApiVersions(r) => {
            if version >= 3 {
                client.software = Some((
                    r.client_software_name.to_string(),
                    r.client_software_version.to_string(),
                ));
            }
            respond!(api_versions::handle(&broker.metadata.image()))
        }
        RequestKind::GetTelemetrySubscriptions(r) => {
            respond!(telemetry::get_subscriptions(broker, &client_id, client, r))
        }
        RequestKind::PushTelemetry(r) => {
            respond!(telemetry::push(broker, &client_id, client, r))
        }
        RequestKind::ListConfigResources(r) => {
            respond!(telemetry::list_config_resources(broker, version, r))
        }
        RequestKind::Metadata(r) => respond!(metadata::handle(broker, version, r).await),
        RequestKind::Produce(r) => match produce::handle(broker, version, r).await {
            Some(response) => respond!(response),
            None => Reply::Nothing,
        },
        RequestKind::Fetch(r) => encode_fetch(
            api,
            version,
            correlation_id,
            fetch::handle(broker, version, r).await,
        ),
        RequestKind::FindCoordinator(r) => respond!(coordinator::handle(broker, version, r).await),
        RequestKind::JoinGroup(r) => {
            respond_later!(groups::join_group(broker, version, &client_id, peer, r))
        }
        RequestKind::SyncGroup(r) => respond_later!(groups::sync_group(broker, version, r)),
        RequestKind::Heartbeat(r) => respond_later!(groups::heartbeat(broker, version, r)),
        RequestKind::LeaveGroup(r) => respond_later!(groups::leave_group(broker, version, r)),
        RequestKind::OffsetCommit(r) => respond_later!(groups::offset_commit(broker, version, r)),
        RequestKind::OffsetFetch(r) => respond_later!(groups::offset_fetch(broker, version, r)),
        RequestKind::DescribeGroups(r) => {
            respond_later!(groups::describe_groups(broker, version, r))
        }
        RequestKind::ListGroups(r) => respond_later!(groups::list_groups(broker, version, r)),
        RequestKind::DeleteGroups(r) => respond_later!(groups::delete_groups(broker, version, r)),
        RequestKind::OffsetDelete(r) => respond_later!(groups::offset_delete(broker, version, r)),
        RequestKind::ConsumerGroupHeartbeat(r) => respond_later!(groups::consumer_group_heartbeat(
            broker, version, &client_id, peer, r
        )),
        RequestKind::ConsumerGroupDescribe(r) => {
            respond_later!(groups::consumer_group_describe(broker, version, r))
        }
        RequestKind::ListOffsets(r) => respond!(list_offsets::handle(broker, version, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            respond!(list_offsets::offset_for_leader_epoch(broker, r))
        }
        RequestKind::CreateTopics(r) => respond!(topics::create_topics(broker, version, r).await),
        RequestKind::DeleteTopics(r) => respond!(topics::delete_topics(broker, version, r).await),
        RequestKind::CreatePartitions(r) => respond!(topics::create_partitions(broker, r).await),
        RequestKind::InitProducerId(r) => respond!(producer_id::handle(broker, version, r).await),
        RequestKind::AddPartitionsToTxn(r) => {
            respond!(transactions::add_partitions_to_txn(broker, version, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            respond!(transactions::add_offsets_to_txn(broker, version, r).await)
        }
        RequestKind::EndTxn(r) => respond!(transactions::end_txn(broker, version, r).await),
        RequestKind::TxnOffsetCommit(r) => {
            respond_later!(transactions::txn_offset_commit(broker, version, r))
        }
        RequestKind::DescribeTransactions(r) => {
            respond_later!(transactions::describe_transactions(broker, r))
        }
        RequestKind::ListTransactions(r) => {
            respond_later!(transactions::list_transactions(broker, version, r))
        }
        RequestKind::DescribeCluster(r) => respond!(cluster::describe_cluster(broker, version, r)),
        RequestKind::UnregisterBroker(r) => respond!(cluster::unregister_broker(broker, r).await),
        RequestKind::ElectLeaders(r) => {
            respond!(elections::elect_leaders(broker, version, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => {
            respond!(reassignments::alter_partition_reassignments(broker, r).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            respond!(reassignments::list_partition_reassignments(broker, r))
        }
        RequestKind::DescribeConfigs(r) => respond!(configs::describe_configs(broker, version, r)),
        RequestKind::AlterConfigs(r) => respond!(configs::alter_configs(broker, version, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            respond!(configs::incremental_alter_configs(broker, version, r).await)
        }
        RequestKind::DeleteRecords(r) => respond!(records::delete_records(broker, version, r)),
        RequestKind::DescribeLogDirs(r) => respond!(log_dirs::describe_log_dirs(broker, r)),
        RequestKind::AlterReplicaLogDirs(r) => {
            respond!(log_dirs::alter_replica_log_dirs(broker, r))
        }
        RequestKind::DescribeProducers(r) => respond!(producers::describe_producers(broker, r)),
        RequestKind::WriteTxnMarkers(r) => respond!(producers::write_txn_markers(broker, r).await),
        RequestKind::DescribeQuorum(r) => {
            respond!(quorum::describe_quorum(broker, version, r).await)
        }
        RequestKind::AddRaftVoter(r) => respond!(quorum::add_raft_voter(broker, r).await),
        RequestKind::RemoveRaftVoter(r) => respond!(quorum::remove_raft_voter(broker, r).await),
        RequestKind::UpdateFeatures(r) => {
            respond!(features::update_features(broker, version, r).await)
        }
        _ => {
            // `versions::decodable` admits only the APIs above.
            tracing::error!(?api, "no handler for an advertised API");
            Reply::Close
        }
    }
}

pub(crate) use gregor_protocol::str_bytes;

/// Handler tests: a broker with its data in `dir`, on a free port, with `overrides`, hosting a
/// topic "t" (num.partitions, default 1).
#[cfg(test)]
pub(crate) async fn test_broker(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Arc<Broker> {
    let pairs = [
        ("log.dirs", dir.to_str().expect("a UTF-8 path")),
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
    ];
    let config = crate::config::BrokerConfig::from_pairs(
        pairs
            .iter()
            .chain(overrides)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .expect("a valid test config");
    let broker = Broker::start(config).await.expect("broker starts").broker;
    topics::create_with_defaults(&broker, "t")
        .await
        .expect("topic t");
    broker
}
