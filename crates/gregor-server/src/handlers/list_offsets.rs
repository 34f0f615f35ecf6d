//! ListOffsets: earliest, latest (the last stable offset for read_committed), by timestamp and
//! max timestamp. OffsetForLeaderEpoch: where a leader epoch's records end (KIP-101/320).

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;

use gregor_protocol::kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use gregor_protocol::kafka::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use gregor_protocol::kafka::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use crate::broker::Broker;
use crate::partitions::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// `(offset, timestamp, leader epoch)` for one query, or an error code. The epoch is the
/// leader's own for the latest offset, else the one that wrote the offset found (as Kafka: a
/// consumer that resets its position there can check it later with OffsetForLeaderEpoch), -1
/// for none.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64, i32), i16> {
    let (offset, found_timestamp) = found(partition, timestamp, read_committed)?;
    let epoch = match timestamp {
        LATEST => partition.leader_epoch(),
        _ if offset < 0 => -1,
        _ => partition
            .with_log(|log| log.epoch_for_offset(offset))
            .unwrap_or(-1),
    };
    Ok((offset, found_timestamp, epoch))
}

/// `(offset, timestamp)` for one query, or an error code.
fn found(partition: &Partition, timestamp: i64, read_committed: bool) -> Result<(i64, i64), i16> {
    let storage = |e: gregor_storage::StorageError| e.error_code();
    match timestamp {
        LATEST if read_committed => Ok((partition.last_stable_offset(), -1)),
        LATEST => Ok((partition.high_watermark(), -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((partition.log_start_offset(), -1)),
        // Nothing is tiered: Kafka answers "none" as offset -1.
        LATEST_TIERED => Ok((-1, -1)),
        MAX_TIMESTAMP => Ok(fetchable(
            partition
                .with_log(|log| log.max_timestamp())
                .map_err(storage)?,
            partition,
            read_committed,
        )),
        ts if ts >= 0 => Ok(fetchable(
            partition
                .with_log(|log| log.offset_for_timestamp(ts))
                .map_err(storage)?,
            partition,
            read_committed,
        )),
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}

/// A timestamp lookup's answer only if a consumer of that isolation level may fetch it: below
/// the high watermark, or for read_committed below the last stable offset (as Kafka).
fn fetchable(found: Option<(i64, i64)>, partition: &Partition, read_committed: bool) -> (i64, i64) {
    let bound = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    found
        .filter(|(offset, _)| *offset < bound)
        .unwrap_or((-1, -1))
}

pub fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let name = topic.name.0.as_str();
                    let partition = match broker.replicas.lookup_in_epoch(
                        name,
                        p.partition_index,
                        p.current_leader_epoch,
                    ) {
                        Ok(partition) => partition,
                        Err(code) => {
                            return response
                                .with_error_code(code)
                                .with_offset(-1)
                                .with_timestamp(-1)
                        }
                    };
                    match lookup(&partition, p.timestamp, read_committed) {
                        Ok((offset, timestamp, epoch)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(error) => response
                            .with_error_code(error)
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch (v2-4): for each partition this broker leads, the largest leader epoch
/// not above the one asked for that wrote to the log and where its records end (the log end
/// for the current epoch), from the log's leader-epoch cache; -1 and -1 when the log knows no
/// such epoch. A consumer (KIP-320) uses it after a leader change to find whether the records
/// before its position are still in the log. The leader epoch the client knows is checked as
/// in Fetch.
pub fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let name = topic.topic.0.as_str();
                    match broker
                        .replicas
                        .lookup_in_epoch(name, p.partition, p.current_leader_epoch)
                    {
                        Ok(partition) => {
                            let leader_epoch = partition.leader_epoch();
                            let (epoch, end) = partition.with_log(|log| {
                                log.end_offset_for_epoch(p.leader_epoch, leader_epoch)
                            });
                            answer.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Err(code) => answer.with_error_code(code),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
