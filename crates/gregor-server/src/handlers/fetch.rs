//! Fetch: long polling woken by appends (no busy loop), `max.bytes`/per-partition limits with
//! KIP-74's first-batch exception, and incremental fetch sessions (KIP-227).

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_protocol::kafka::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use gregor_protocol::kafka::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use gregor_storage::StorageError;
use tokio::time::Instant;
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Broker;
use crate::delayed::wait_until;
use crate::fetch_session::{SessionError, SessionPartition};
use crate::partitions::Partition;

/// What one partition contributes to a response.
struct PartitionRead {
    error: i16,
    high_watermark: i64,
    log_start: i64,
    records: Bytes,
}

fn requested_partitions(
    broker: &Broker,
    version: i16,
    request: &FetchRequest,
) -> Vec<SessionPartition> {
    let image = broker.metadata.image();
    let mut out = Vec::new();
    for topic in &request.topics {
        let (name, topic_id) = if version >= 13 {
            (
                image
                    .topic_by_id(&topic.topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                topic.topic_id,
            )
        } else {
            let name = topic.topic.0.to_string();
            let id = image.topics.get(&name).map_or(Uuid::nil(), |t| t.id);
            (name, id)
        };
        for p in &topic.partitions {
            out.push(SessionPartition {
                topic: name.clone(),
                topic_id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                last_high_watermark: None,
                last_log_start: None,
            });
        }
    }
    out
}

/// Applies an incremental request to its session: forgotten partitions leave, named ones are
/// added or get their new position.
fn update_session(
    broker: &Broker,
    version: i16,
    request: &FetchRequest,
    requested: Vec<SessionPartition>,
) -> Result<Vec<SessionPartition>, SessionError> {
    let image = broker.metadata.image();
    let forgotten: Vec<(String, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let name = if version >= 13 {
                image
                    .topic_by_id(&t.topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            } else {
                t.topic.0.to_string()
            };
            t.partitions.iter().map(move |&p| (name.clone(), p))
        })
        .collect();
    broker
        .fetch_sessions
        .update(request.session_id, request.session_epoch, |session| {
            session.partitions.retain(|p| {
                !forgotten
                    .iter()
                    .any(|(t, i)| &p.topic == t && p.partition == *i)
            });
            for new in requested {
                match session
                    .partitions
                    .iter_mut()
                    .find(|p| p.topic == new.topic && p.partition == new.partition)
                {
                    Some(existing) => {
                        existing.fetch_offset = new.fetch_offset;
                        existing.max_bytes = new.max_bytes;
                    }
                    None => session.partitions.push(new),
                }
            }
            session.partitions.clone()
        })
}

fn read_all(
    fetch_set: &[SessionPartition],
    partitions: &[Option<Arc<Partition>>],
    max_bytes: usize,
    unknown: i16,
) -> Vec<PartitionRead> {
    let mut remaining = max_bytes;
    let mut collected = 0usize;
    fetch_set
        .iter()
        .zip(partitions)
        .map(|(want, partition)| {
            let Some(partition) = partition else {
                return PartitionRead {
                    error: unknown,
                    high_watermark: -1,
                    log_start: -1,
                    records: Bytes::new(),
                };
            };
            let limit = (want.max_bytes.max(0) as usize).min(remaining);
            let result = if limit == 0 {
                Ok(Bytes::new())
            } else {
                partition.read(want.fetch_offset, limit)
            };
            let (error, records) = match result {
                // KIP-74: only the first non-empty partition may exceed its limit.
                Ok(records) if records.len() > limit && collected > 0 => (0, Bytes::new()),
                Ok(records) => (0, records),
                Err(StorageError::OffsetOutOfRange { .. }) => (ResponseError::OffsetOutOfRange.code(), Bytes::new()),
                Err(e) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "fetch read failed");
                    (e.error_code(), Bytes::new())
                }
            };
            remaining = remaining.saturating_sub(records.len());
            collected += records.len();
            PartitionRead {
                error,
                high_watermark: partition.high_watermark(),
                log_start: partition.log_start_offset(),
                records,
            }
        })
        .collect()
}

fn failure(error: i16) -> FetchResponse {
    FetchResponse::default().with_error_code(error)
}

pub async fn handle(broker: &Arc<Broker>, version: i16, request: FetchRequest) -> FetchResponse {
    let requested = requested_partitions(broker, version, &request);
    let (fetch_set, session_id, incremental) = match (request.session_id, request.session_epoch) {
        (id, -1) => {
            if id != 0 {
                broker.fetch_sessions.remove(id);
            }
            (requested, 0, false)
        }
        (0, 0) => {
            let id = broker.fetch_sessions.create(requested.clone()).unwrap_or(0);
            (requested, id, false)
        }
        (0, _) => return failure(ResponseError::InvalidFetchSessionEpoch.code()),
        _ => match update_session(broker, version, &request, requested) {
            Ok(set) => (set, request.session_id, true),
            Err(SessionError::NotFound) => {
                return failure(ResponseError::FetchSessionIdNotFound.code())
            }
            Err(SessionError::InvalidEpoch) => {
                return failure(ResponseError::InvalidFetchSessionEpoch.code())
            }
        },
    };
    let partitions: Vec<Option<Arc<Partition>>> = fetch_set
        .iter()
        .map(|p| broker.replicas.get(&p.topic, p.partition))
        .collect();
    let live: Vec<Arc<Partition>> = partitions.iter().flatten().cloned().collect();
    let fetch_max = broker.config.get_i64("fetch.max.bytes").max(1) as usize;
    let max_bytes = if version >= 3 {
        (request.max_bytes.max(0) as usize).min(fetch_max)
    } else {
        fetch_max
    };
    let unknown = if version >= 13 {
        ResponseError::UnknownTopicId.code()
    } else {
        ResponseError::UnknownTopicOrPartition.code()
    };
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut stop = broker.shutdown_signal();
    let reads = loop {
        let reads = read_all(&fetch_set, &partitions, max_bytes, unknown);
        let bytes: usize = reads.iter().map(|r| r.records.len()).sum();
        let errors = reads.iter().any(|r| r.error != 0);
        if bytes >= request.min_bytes.max(0) as usize
            || errors
            || Instant::now() >= deadline
            || *stop.borrow_and_update()
        {
            break reads;
        }
        let seen: Vec<i64> = live.iter().map(|p| p.high_watermark()).collect();
        wait_until(&live, deadline, || {
            live.iter()
                .zip(&seen)
                .any(|(p, hw)| p.high_watermark() != *hw)
        })
        .await;
    };
    let mut sent = Vec::new();
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    for (want, read) in fetch_set.iter().zip(reads) {
        let changed = read.error != 0
            || !read.records.is_empty()
            || want.last_high_watermark != Some(read.high_watermark)
            || want.last_log_start != Some(read.log_start);
        if incremental && !changed {
            continue;
        }
        sent.push((
            want.topic.clone(),
            want.partition,
            read.high_watermark,
            read.log_start,
        ));
        let data = PartitionData::default()
            .with_partition_index(want.partition)
            .with_error_code(read.error)
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.high_watermark)
            .with_log_start_offset(read.log_start)
            .with_aborted_transactions((request.isolation_level == 1).then(Vec::new))
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(read.records));
        match responses.last_mut() {
            Some(last) if last.topic_id == want.topic_id && last.topic.0.as_str() == want.topic => {
                last.partitions.push(data)
            }
            _ => responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(str_bytes(&want.topic)))
                    .with_topic_id(want.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    if session_id != 0 {
        broker.fetch_sessions.remember(session_id, &sent);
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
}
