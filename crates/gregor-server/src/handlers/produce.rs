//! Produce: batches are validated and appended as received (the storage layer assigns offsets in
//! place); `acks=all` completes through the same delayed-operation path that will wait for
//! followers; `acks=0` gets no response.

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use gregor_protocol::kafka::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use gregor_protocol::kafka::messages::{ProduceRequest, ProduceResponse};
use tokio::time::Instant;

use super::str_bytes;
use crate::broker::{now_ms, Broker};
use crate::delayed::wait_until;
use crate::partitions::Partition;

fn failed(index: i32, error: i16, message: &str) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(str_bytes(message)))
}

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let image = broker.metadata.image();
    let now = now_ms();
    // (topic response index, partition response index, partition, offset the HW must reach)
    let mut pending: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = if version >= 13 {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.0.to_string())
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (i, data) in topic.partition_data.into_iter().enumerate() {
            let partition = match name.as_deref() {
                Some(n) => broker.replicas.lookup(n, data.index).map_err(|code| {
                    if code == ResponseError::UnknownTopicOrPartition.code() {
                        unknown
                    } else {
                        code
                    }
                }),
                None => Err(unknown),
            };
            let internal = name
                .as_deref()
                .and_then(|n| image.topics.get(n))
                .is_some_and(|t| t.is_internal());
            let response = match (acks, partition, data.records) {
                (-1..=1, Ok(_), _) if internal => failed(
                    data.index,
                    ResponseError::InvalidTopicException.code(),
                    "Cannot append to internal topic",
                ),
                (-1..=1, Err(code), _) => failed(
                    data.index,
                    code,
                    if code == unknown {
                        "This server does not host this topic-partition."
                    } else {
                        "The partition's log directory is offline."
                    },
                ),
                (-1..=1, Ok(_), None) => failed(
                    data.index,
                    ResponseError::CorruptMessage.code(),
                    "no records",
                ),
                (-1..=1, Ok(partition), Some(records)) => match partition.append(&records, now) {
                    Ok(appended) => {
                        if acks == -1 {
                            pending.push((t, i, partition.clone(), appended.last_offset + 1));
                        }
                        PartitionProduceResponse::default()
                            .with_index(data.index)
                            .with_base_offset(appended.base_offset)
                            .with_log_append_time_ms(appended.log_append_time)
                            .with_log_start_offset(appended.log_start_offset)
                            .with_error_message(None)
                    }
                    Err(e) => {
                        tracing::debug!(topic = %partition.topic, partition = data.index, error = %e, "produce refused");
                        failed(data.index, e.error_code(), &e.to_string())
                    }
                },
                _ => failed(
                    data.index,
                    ResponseError::InvalidRequiredAcks.code(),
                    "acks must be -1, 0 or 1",
                ),
            };
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return None;
    }
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    for (t, i, partition, target) in pending {
        let committed = wait_until(std::slice::from_ref(&partition), deadline, || {
            partition.high_watermark() >= target
        })
        .await;
        if !committed {
            let index = responses[t].partition_responses[i].index;
            responses[t].partition_responses[i] = failed(
                index,
                ResponseError::RequestTimedOut.code(),
                "timed out waiting for replication",
            );
        }
    }
    Some(ProduceResponse::default().with_responses(responses))
}
