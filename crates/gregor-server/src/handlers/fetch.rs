//! Fetch: long polling woken by appends (no busy loop), `max.bytes`/per-partition limits with
//! KIP-74's first-batch exception, incremental fetch sessions (KIP-227), and read_committed
//! (isolation level 1): data up to the last stable offset, with the aborted transactions in it.
//! Records are not read: the response carries where they lie in the segment files, and the
//! connection sends them from there (zero-copy, see `gregor_protocol::parts`). A fetch with a
//! replica id comes from a follower: it reads up to the log end rather than the high watermark,
//! reports the follower's progress to the partition (high watermark, ISR), and gets a
//! DivergingEpoch instead of records when its log differs from the leader's. A consumer (v11+)
//! may read from a follower, up to its high watermark, and a leader may send one to a follower
//! in its rack (KIP-392, `replication::read_replica`).

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_protocol::kafka::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use gregor_protocol::kafka::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
};
use gregor_protocol::parts::placeholder;
use gregor_storage::{FileSlice, StorageError};
use tokio::time::Instant;
use uuid::Uuid;

use super::leaders::{Endpoint, Leaders};
use super::str_bytes;
use crate::broker::Broker;
use crate::delayed::wait_until;
use crate::fetch_session::{SessionError, SessionPartition};
use crate::partitions::{FollowerFetch, Partition};
use crate::replication::read_replica::ReplicaSelector;
use crate::services::now_ms;

/// What one partition contributes to a response.
struct PartitionRead {
    error: i16,
    /// A follower's log differs from the leader's after this (epoch, end offset).
    diverging: Option<(i32, i64)>,
    /// KIP-392: the replica the consumer should read this partition from (-1: here).
    preferred_read_replica: i32,
    high_watermark: i64,
    last_stable: i64,
    log_start: i64,
    records: Option<FileSlice>,
    /// read_committed only: (producer id, first offset) of aborted transactions in the data.
    aborted: Vec<AbortedTransaction>,
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
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset,
                last_high_watermark: None,
                last_log_start: None,
            });
        }
    }
    out
}

/// Applies an incremental request to its session: named partitions are added or get their new
/// position, then forgotten ones leave.
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
            for new in requested {
                match session
                    .partitions
                    .iter_mut()
                    .find(|p| p.topic == new.topic && p.partition == new.partition)
                {
                    Some(existing) => {
                        existing.fetch_offset = new.fetch_offset;
                        existing.max_bytes = new.max_bytes;
                        existing.current_leader_epoch = new.current_leader_epoch;
                        existing.last_fetched_epoch = new.last_fetched_epoch;
                        existing.log_start_offset = new.log_start_offset;
                    }
                    None => session.partitions.push(new),
                }
            }
            // As in Kafka, forgetting is applied after the updates.
            session.partitions.retain(|p| {
                !forgotten
                    .iter()
                    .any(|(t, i)| &p.topic == t && p.partition == *i)
            });
            session.partitions.clone()
        })
}

/// Who fetches: a consumer (with its isolation level) or a follower (its broker id, and
/// whether this leader's replication throttle is over its rate).
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    Consumer { read_committed: bool },
    Follower { replica: i32, throttled: bool },
}

fn read_all(
    fetch_set: &[SessionPartition],
    partitions: &[Result<Arc<Partition>, i16>],
    verdicts: &[Verdict],
    max_bytes: usize,
    unknown: i16,
    reader: Reader,
) -> Vec<PartitionRead> {
    let mut remaining = max_bytes;
    let mut collected = 0usize;
    fetch_set
        .iter()
        .zip(partitions)
        .zip(verdicts)
        .map(|((want, partition), verdict)| {
            let partition = match partition {
                Ok(partition) => partition,
                Err(code) => {
                    return PartitionRead {
                        error: if *code == ResponseError::UnknownTopicOrPartition.code() {
                            unknown
                        } else {
                            *code
                        },
                        diverging: None,
                        preferred_read_replica: -1,
                        high_watermark: -1,
                        last_stable: -1,
                        log_start: -1,
                        records: None,
                        aborted: Vec::new(),
                    }
                }
            };
            // A follower whose log diverged gets no records until it has truncated; one that
            // catches up under a throttle over its rate gets none until the rate falls.
            let held_back = match reader {
                Reader::Follower { replica, throttled } => {
                    throttled && partition.leader_throttles(replica)
                }
                Reader::Consumer { .. } => false,
            };
            let limit = match verdict {
                Verdict::Read if !held_back => (want.max_bytes.max(0) as usize).min(remaining),
                Verdict::Read | Verdict::Diverging(..) | Verdict::OutOfRange | Verdict::Elsewhere(_) => 0,
            };
            let read = match reader {
                Reader::Consumer { read_committed } => {
                    partition.read(want.fetch_offset, limit, read_committed)
                }
                Reader::Follower { .. } => partition.read_for_follower(want.fetch_offset, limit),
            };
            let (error, records, aborted) = match read.records {
                _ if *verdict == Verdict::OutOfRange => {
                    (ResponseError::OffsetOutOfRange.code(), None, vec![])
                }
                // KIP-74: only the first non-empty partition may exceed its limit.
                Ok(Some(slice)) if slice.len > limit && collected > 0 => (0, None, vec![]),
                Ok(records) => (0, records, read.aborted),
                Err(StorageError::OffsetOutOfRange { .. }) => {
                    (ResponseError::OffsetOutOfRange.code(), None, vec![])
                }
                Err(e) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "fetch read failed");
                    (e.error_code(), None, vec![])
                }
            };
            let len = records.as_ref().map_or(0, |r| r.len);
            remaining = remaining.saturating_sub(len);
            collected += len;
            PartitionRead {
                error,
                diverging: match verdict {
                    Verdict::Diverging(epoch, end) => Some((*epoch, *end)),
                    _ => None,
                },
                preferred_read_replica: match verdict {
                    Verdict::Elsewhere(replica) => *replica,
                    _ => -1,
                },
                high_watermark: read.high_watermark,
                last_stable: read.last_stable,
                log_start: read.log_start,
                records,
                aborted: aborted
                    .into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A partition's records field: a placeholder for `slice`, which joins `files` (sent from the
/// file), or, for a slice too long to stand in for, its bytes read into the response.
fn records_field(slice: FileSlice, files: &mut Vec<FileSlice>) -> Result<Bytes, StorageError> {
    match placeholder(slice.len) {
        Some(placeholder) => {
            files.push(slice);
            Ok(placeholder)
        }
        None => Ok(Bytes::from(slice.read()?)),
    }
}

/// What a fetch of one partition gets before anything is read.
#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Read,
    /// A follower's log diverged (epoch, end offset).
    Diverging(i32, i64),
    /// A follower's offset is out of this log's range.
    OutOfRange,
    /// A consumer is sent to read from this replica (KIP-392).
    Elsewhere(i32),
}

/// Reports each partition a follower fetches to the partition (its progress, which moves the
/// high watermark and may have the follower join the ISR), before anything is read. A
/// partition whose log diverged or is out of range is marked; one that refuses the follower
/// gets its error.
fn follower_progress(
    broker: &Broker,
    replica_id: i32,
    fetch_set: &[SessionPartition],
    partitions: &mut [Result<Arc<Partition>, i16>],
    verdicts: &mut [Verdict],
) {
    let now = now_ms();
    for ((want, partition), verdict) in fetch_set.iter().zip(partitions).zip(verdicts) {
        let Ok(p) = partition else {
            continue;
        };
        let (epoch, offset, start) = (
            want.current_leader_epoch,
            want.fetch_offset,
            want.log_start_offset,
        );
        match p.follower_fetch(
            replica_id,
            epoch,
            offset,
            start,
            want.last_fetched_epoch,
            now,
        ) {
            FollowerFetch::Accepted(Some(proposal)) => {
                broker.isr_changes.propose(p.clone(), proposal)
            }
            FollowerFetch::Accepted(None) => {}
            FollowerFetch::Diverging(epoch, end) => *verdict = Verdict::Diverging(epoch, end),
            FollowerFetch::OutOfRange => *verdict = Verdict::OutOfRange,
            FollowerFetch::Refused(code) => *partition = Err(code),
        }
    }
}

/// KIP-392: marks each partition this broker leads that the consumer in `client_rack` should
/// read from another replica, as the broker's `replica.selector.class` chooses.
fn preferred_read_replicas(
    broker: &Broker,
    client_rack: &str,
    fetch_set: &[SessionPartition],
    partitions: &[Result<Arc<Partition>, i16>],
    verdicts: &mut [Verdict],
) {
    // Most consumers name no rack: they pay for no config lookup on each fetch.
    if client_rack.is_empty() {
        return;
    }
    let selector = ReplicaSelector::from_config(&broker.config.get("replica.selector.class"));
    if selector == ReplicaSelector::LeaderOnly {
        return;
    }
    let image = broker.metadata.image();
    let rack_of = |id: i32| {
        let broker = image.brokers.get(&id).filter(|b| !b.fenced)?;
        Some(broker.rack.clone())
    };
    for ((want, partition), verdict) in fetch_set.iter().zip(partitions).zip(verdicts) {
        let Ok(p) = partition else {
            continue;
        };
        *verdict =
            match p.preferred_read_replica(selector, client_rack, want.fetch_offset, &rack_of) {
                Some(replica) => Verdict::Elsewhere(replica),
                None => Verdict::Read,
            };
    }
}

/// A response's DivergingEpoch: -1s when the logs agree.
fn diverging_epoch(diverging: Option<(i32, i64)>) -> EpochEndOffset {
    let (epoch, end_offset) = diverging.unwrap_or((-1, -1));
    EpochEndOffset::default()
        .with_epoch(epoch)
        .with_end_offset(end_offset)
}

fn failure(error: i16) -> FetchResponse {
    FetchResponse::default().with_error_code(error)
}

/// A fetch response whose record fields are placeholders for `files`, in the order they are
/// encoded (see `gregor_protocol::parts`).
pub struct FetchReply {
    pub response: FetchResponse,
    pub files: Vec<FileSlice>,
}

impl From<FetchResponse> for FetchReply {
    fn from(response: FetchResponse) -> Self {
        FetchReply {
            response,
            files: Vec::new(),
        }
    }
}

pub async fn handle(broker: &Arc<Broker>, version: i16, request: FetchRequest) -> FetchReply {
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
        (0, _) => return failure(ResponseError::InvalidFetchSessionEpoch.code()).into(),
        _ => match update_session(broker, version, &request, requested) {
            Ok(set) => (set, request.session_id, true),
            Err(SessionError::NotFound) => {
                return failure(ResponseError::FetchSessionIdNotFound.code()).into()
            }
            Err(SessionError::InvalidEpoch) => {
                return failure(ResponseError::InvalidFetchSessionEpoch.code()).into()
            }
        },
    };
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    // KIP-392: from v11 a consumer says which rack it is in, and may read from a follower.
    let client_rack = (replica_id < 0 && version >= 11).then(|| request.rack_id.to_string());
    let mut partitions: Vec<Result<Arc<Partition>, i16>> = fetch_set
        .iter()
        .map(|p| {
            let (topic, index, epoch) = (&p.topic, p.partition, p.current_leader_epoch);
            if client_rack.is_some() {
                broker.replicas.lookup_replica_in_epoch(topic, index, epoch)
            } else {
                broker.replicas.lookup_in_epoch(topic, index, epoch)
            }
        })
        .collect();
    let now = now_ms();
    let reader = if replica_id >= 0 {
        Reader::Follower {
            replica: replica_id,
            throttled: broker.replicas.throttles.leader.exceeded(now),
        }
    } else {
        Reader::Consumer {
            read_committed: request.isolation_level == 1,
        }
    };
    let mut verdicts = vec![Verdict::Read; fetch_set.len()];
    if let Reader::Follower { .. } = reader {
        follower_progress(
            broker,
            replica_id,
            &fetch_set,
            &mut partitions,
            &mut verdicts,
        );
    }
    let live: Vec<Arc<Partition>> = partitions.iter().flatten().cloned().collect();
    let fetch_max = broker.config.get_i64("fetch.max.bytes").max(1) as usize;
    // The request's limit came with v3; gregor serves Fetch from v4.
    let max_bytes = (request.max_bytes.max(0) as usize).min(fetch_max);
    let unknown = if version >= 13 {
        ResponseError::UnknownTopicId.code()
    } else {
        ResponseError::UnknownTopicOrPartition.code()
    };
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut stop = broker.shutdown_signal();
    let reads = loop {
        // As Kafka's delayed fetch, the replica to read from is chosen again after a wait.
        if let Some(rack) = &client_rack {
            preferred_read_replicas(broker, rack, &fetch_set, &partitions, &mut verdicts);
        }
        let reads = read_all(
            &fetch_set,
            &partitions,
            &verdicts,
            max_bytes,
            unknown,
            reader,
        );
        let bytes: usize = reads
            .iter()
            .map(|r| r.records.as_ref().map_or(0, |s| s.len))
            .sum();
        // As Kafka, a partition sent elsewhere is answered at once.
        let errors = reads
            .iter()
            .any(|r| r.error != 0 || r.diverging.is_some() || r.preferred_read_replica >= 0);
        if bytes >= request.min_bytes.max(0) as usize
            || errors
            || Instant::now() >= deadline
            || *stop.borrow_and_update()
        {
            break reads;
        }
        // Consumers wait for the high watermark to move, followers for the log to grow.
        let progress = |p: &Partition| match reader {
            Reader::Consumer { .. } => p.high_watermark(),
            Reader::Follower { .. } => p.log_end_offset(),
        };
        let seen: Vec<i64> = live.iter().map(|p| progress(p)).collect();
        wait_until(&live, deadline, || {
            live.iter().zip(&seen).any(|(p, at)| progress(p) != *at)
        })
        .await;
    };
    if let Reader::Follower { .. } = reader {
        // As Kafka, every byte of a throttled partition counts, to in-sync followers too.
        let throttled: usize = reads
            .iter()
            .zip(&partitions)
            .filter(|(_, p)| p.as_ref().is_ok_and(|p| p.leader_throttled()))
            .map(|(read, _)| read.records.as_ref().map_or(0, |s| s.len))
            .sum();
        broker.replicas.throttles.leader.record(throttled, now_ms());
    }
    let mut sent = Vec::new();
    let mut files = Vec::new();
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let image = broker.metadata.image();
    let mut leaders = Leaders::new(&image);
    for (want, mut read) in fetch_set.iter().zip(reads) {
        let changed = read.error != 0
            || read.records.is_some()
            || read.diverging.is_some()
            || read.preferred_read_replica >= 0
            || want.last_high_watermark != Some(read.high_watermark)
            || want.last_log_start != Some(read.log_start);
        if incremental && !changed {
            continue;
        }
        let records = match read
            .records
            .take()
            .map(|slice| records_field(slice, &mut files))
        {
            None => Bytes::new(),
            Some(Ok(records)) => records,
            Some(Err(e)) => {
                tracing::error!(topic = %want.topic, partition = want.partition, error = %e, "fetch read failed");
                read.error = e.error_code();
                Bytes::new()
            }
        };
        // As Kafka, a partition answered with an error is remembered with high watermark -1,
        // so it is sent again once the error is gone, news or not.
        let high_watermark = if read.error == 0 {
            read.high_watermark
        } else {
            -1
        };
        sent.push((
            want.topic.clone(),
            want.partition,
            high_watermark,
            read.log_start,
        ));
        // KIP-951 (v16+, as Kafka): a client told this broker does not lead learns who does.
        let moved = read.error == ResponseError::NotLeaderOrFollower.code()
            || read.error == ResponseError::FencedLeaderEpoch.code();
        let named = (moved && version >= 16)
            .then(|| leaders.of(&want.topic, want.partition))
            .flatten();
        let current_leader = named.map_or_else(LeaderIdAndEpoch::default, |(leader, epoch)| {
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch)
        });
        let data = PartitionData::default()
            .with_partition_index(want.partition)
            .with_error_code(read.error)
            .with_current_leader(current_leader)
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.last_stable)
            .with_log_start_offset(read.log_start)
            .with_aborted_transactions((request.isolation_level == 1).then_some(read.aborted))
            .with_diverging_epoch(diverging_epoch(read.diverging))
            .with_preferred_read_replica(BrokerId(read.preferred_read_replica))
            .with_records(Some(records));
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
    let node_endpoints = if version >= 16 {
        let endpoint = |(id, host, port, rack): Endpoint| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(&host))
                .with_port(port)
                .with_rack(rack.as_deref().map(str_bytes))
        };
        leaders.endpoints().into_iter().map(endpoint).collect()
    } else {
        Vec::new()
    };
    FetchReply {
        response: FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(responses)
            .with_node_endpoints(node_endpoints),
        files,
    }
}

#[cfg(test)]
mod tests {
    use gregor_protocol::kafka::messages::fetch_request::{
        FetchPartition, FetchTopic, ForgottenTopic,
    };
    use gregor_storage::records::encode_batch;

    use super::*;

    fn batch(value: &str) -> Bytes {
        encode_batch(&[(None, Some(Bytes::from(value.to_string())))], 1)
    }

    async fn broker(dir: &std::path::Path) -> Arc<Broker> {
        super::super::test_broker(dir, &[("num.partitions", "2")]).await
    }

    fn request(session: i32, epoch: i32, offsets: &[(i32, i64)], forget: &[i32]) -> FetchRequest {
        let partitions = offsets
            .iter()
            .map(|&(p, o)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(o)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        let topic = || TopicName(str_bytes("t"));
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(session)
            .with_session_epoch(epoch)
            .with_topics(if offsets.is_empty() {
                vec![]
            } else {
                vec![FetchTopic::default()
                    .with_topic(topic())
                    .with_partitions(partitions)]
            })
            .with_forgotten_topics_data(if forget.is_empty() {
                vec![]
            } else {
                vec![ForgottenTopic::default()
                    .with_topic(topic())
                    .with_partitions(forget.to_vec())]
            })
    }

    /// (partition, high watermark, number of record bytes) of each partition in a response.
    fn partitions(response: &FetchResponse) -> Vec<(i32, i64, usize)> {
        response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| {
                let len = p.records.as_ref().map_or(0, |r| r.len());
                (p.partition_index, p.high_watermark, len)
            })
            .collect()
    }

    #[tokio::test]
    async fn incremental_sessions_send_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        let p0 = broker.replicas.get("t", 0).unwrap();
        let p1 = broker.replicas.get("t", 1).unwrap();
        p0.append(&batch("a"), 0).unwrap();

        // A full fetch with epoch 0 opens a session and reports every partition.
        let full = handle(&broker, 12, request(0, 0, &[(0, 0), (1, 0)], &[]))
            .await
            .response;
        let session = full.session_id;
        assert_ne!(session, 0);
        let got = partitions(&full);
        assert_eq!(got.len(), 2);
        assert!(got[0].0 == 0 && got[0].1 == 1 && got[0].2 > 0);
        assert_eq!(got[1], (1, 0, 0));

        // Nothing new: the incremental response is empty.
        let quiet = handle(&broker, 12, request(session, 1, &[(0, 1)], &[]))
            .await
            .response;
        assert_eq!(quiet.error_code, 0);
        assert!(partitions(&quiet).is_empty());

        // The session remembers partition 1's position; only it has news.
        p1.append(&batch("b"), 0).unwrap();
        let news = handle(&broker, 12, request(session, 2, &[], &[]))
            .await
            .response;
        let got = partitions(&news);
        assert_eq!(got.len(), 1);
        assert!(got[0].0 == 1 && got[0].1 == 1 && got[0].2 > 0);

        // Wrong epochs and unknown sessions get Kafka's top-level errors.
        let stale = handle(&broker, 12, request(session, 2, &[], &[]))
            .await
            .response;
        assert_eq!(
            stale.error_code,
            ResponseError::InvalidFetchSessionEpoch.code()
        );
        let unknown = handle(&broker, 12, request(session + 100, 1, &[], &[]))
            .await
            .response;
        assert_eq!(
            unknown.error_code,
            ResponseError::FetchSessionIdNotFound.code()
        );

        // A forgotten partition is no longer reported, even with news.
        let forgot = handle(&broker, 12, request(session, 3, &[(1, 1)], &[1]))
            .await
            .response;
        assert!(partitions(&forgot).is_empty());
        p1.append(&batch("c"), 0).unwrap();
        let after = handle(&broker, 12, request(session, 4, &[], &[]))
            .await
            .response;
        assert!(partitions(&after).is_empty());

        // Epoch -1 closes the session and answers as a sessionless full fetch.
        let closed = handle(&broker, 12, request(session, -1, &[(0, 0)], &[]))
            .await
            .response;
        assert_eq!(closed.session_id, 0);
        assert_eq!(partitions(&closed).len(), 1);
        let gone = handle(&broker, 12, request(session, 5, &[], &[]))
            .await
            .response;
        assert_eq!(
            gone.error_code,
            ResponseError::FetchSessionIdNotFound.code()
        );
    }

    /// As Kafka, a partition answered with an error is sent again in the session once the
    /// error is gone, though its high watermark did not move.
    #[tokio::test]
    async fn a_partition_is_sent_again_when_its_error_clears() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        broker
            .replicas
            .get("t", 0)
            .unwrap()
            .append(&batch("a"), 0)
            .unwrap();
        let full = handle(&broker, 12, request(0, 0, &[(0, 1)], &[]))
            .await
            .response;
        let session = full.session_id;
        assert_eq!(partitions(&full), vec![(0, 1, 0)]);
        let out_of_range = handle(&broker, 12, request(session, 1, &[(0, 5)], &[]))
            .await
            .response;
        let error = out_of_range.responses[0].partitions[0].error_code;
        assert_eq!(error, ResponseError::OffsetOutOfRange.code());
        let back = handle(&broker, 12, request(session, 2, &[(0, 1)], &[]))
            .await
            .response;
        assert_eq!(
            partitions(&back),
            vec![(0, 1, 0)],
            "sent again, error cleared"
        );
        assert_eq!(back.responses[0].partitions[0].error_code, 0);
        let quiet = handle(&broker, 12, request(session, 3, &[], &[]))
            .await
            .response;
        assert!(partitions(&quiet).is_empty());
    }

    #[test]
    fn records_are_sent_from_the_file_unless_too_long_to_stand_in_for() {
        use gregor_protocol::parts::MAX_PLACEHOLDER;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: reading it costs no disk.
        file.set_len(MAX_PLACEHOLDER as u64 + 4096).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let slice = |len| FileSlice {
            file: file.clone(),
            position: 7,
            len,
            end_offset: 0,
        };
        let mut files = Vec::new();
        let small = records_field(slice(100), &mut files).unwrap();
        assert_eq!(small.len(), 100);
        assert_eq!(files.len(), 1, "sent from the file");
        let large = records_field(slice(MAX_PLACEHOLDER + 1), &mut files).unwrap();
        assert_eq!(large.len(), MAX_PLACEHOLDER + 1);
        assert_eq!(files.len(), 1, "read into the response");
        // A file shorter than its slice is a read error, not a short field.
        assert!(records_field(slice(MAX_PLACEHOLDER + 4096), &mut files).is_err());
    }

    #[tokio::test]
    async fn long_poll_is_woken_by_an_append() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        let p0 = broker.replicas.get("t", 0).unwrap();
        let waiting = {
            let broker = broker.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let response = handle(
                    &broker,
                    12,
                    request(0, -1, &[(0, 0)], &[]).with_max_wait_ms(30_000),
                )
                .await
                .response;
                (started.elapsed(), response)
            })
        };
        // The fetch must be parked before the append for the test to mean anything.
        let deadline = Instant::now() + Duration::from_secs(10);
        while p0.waiter_count() == 0 {
            assert!(Instant::now() < deadline, "the fetch never waited");
            tokio::task::yield_now().await;
        }
        p0.append(&batch("wake"), 0).unwrap();
        let (elapsed, response) = waiting.await.unwrap();
        assert!(
            elapsed < Duration::from_secs(30),
            "woken by the deadline, not the append"
        );
        assert!(partitions(&response)[0].2 > 0);
        assert_eq!(
            p0.waiter_count(),
            0,
            "the finished fetch left no waiter behind"
        );
    }

    /// Mutation survivors of `update_session`: a session's update and forgetting touch only the
    /// partition they name, not every partition of its topic.
    #[tokio::test]
    async fn sessions_update_and_forget_one_partition_of_a_topic() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        let p0 = broker.replicas.get("t", 0).unwrap();
        let p1 = broker.replicas.get("t", 1).unwrap();
        p0.append(&batch("a"), 0).unwrap();
        p0.append(&batch("b"), 0).unwrap();
        p1.append(&batch("c"), 0).unwrap();
        let full = handle(&broker, 12, request(0, 0, &[(0, 0), (1, 0)], &[]))
            .await
            .response;
        let session = full.session_id;
        let both = partitions(&full);
        let whole_p0 = both[0].2;

        // Partition 1 moves on; partition 0 stays at offset 0 and still has both batches.
        let moved = handle(&broker, 12, request(session, 1, &[(1, 1)], &[]))
            .await
            .response;
        assert_eq!(partitions(&moved), vec![(0, 2, whole_p0)]);

        // Forgetting partition 1 keeps partition 0, which reports its news.
        p0.append(&batch("d"), 0).unwrap();
        let kept = handle(&broker, 12, request(session, 2, &[(0, 2)], &[1]))
            .await
            .response;
        let got = partitions(&kept);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0, got[0].1), (0, 3));
        assert!(got[0].2 > 0);
    }

    /// KIP-74: the response's byte limit may be exceeded only by the first partition that has
    /// records; a later partition whose first batch does not fit is left out (fetched next time).
    #[tokio::test]
    async fn only_the_first_partition_with_records_may_exceed_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        let big = "x".repeat(600);
        for p in 0..2 {
            broker
                .replicas
                .get("t", p)
                .unwrap()
                .append(&batch(&big), 0)
                .unwrap();
        }
        let one_batch = partitions(
            &handle(&broker, 12, request(0, -1, &[(0, 0)], &[]))
                .await
                .response,
        )[0]
        .2;
        assert!(one_batch > 600);
        let fetch = |order: &[(i32, i64)], max: i32| {
            handle(&broker, 12, request(0, -1, order, &[]).with_max_bytes(max))
        };
        // Room for one batch: the first partition's is sent, the second's is not.
        let got = partitions(
            &fetch(&[(0, 0), (1, 0)], one_batch as i32 + 100)
                .await
                .response,
        );
        assert_eq!(got, vec![(0, 1, one_batch), (1, 1, 0)]);
        // Less than one batch: the first still gets it whole; in the other order, partition 1.
        let got = partitions(&fetch(&[(1, 0), (0, 0)], 10).await.response);
        assert_eq!(got, vec![(1, 1, one_batch), (0, 1, 0)]);
        // Both fit: both are sent.
        let got = partitions(
            &fetch(&[(0, 0), (1, 0)], 2 * one_batch as i32)
                .await
                .response,
        );
        assert_eq!(got, vec![(0, 1, one_batch), (1, 1, one_batch)]);
    }

    /// A partition that cannot be read says why, with -1 offsets; an unknown topic is
    /// UNKNOWN_TOPIC_OR_PARTITION by name and UNKNOWN_TOPIC_ID by id (v13).
    #[tokio::test]
    async fn unknown_partitions_and_topic_ids_answer_errors_with_no_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        let no_offsets = |p: &gregor_protocol::kafka::messages::fetch_response::PartitionData| {
            (p.high_watermark, p.last_stable_offset, p.log_start_offset)
        };
        let by_name = handle(&broker, 12, request(0, -1, &[(7, 0)], &[]))
            .await
            .response;
        let p = &by_name.responses[0].partitions[0];
        assert_eq!(p.error_code, ResponseError::UnknownTopicOrPartition.code());
        assert_eq!(no_offsets(p), (-1, -1, -1));

        let unknown_id = uuid::Uuid::new_v4();
        let mut by_id = request(0, -1, &[(0, 0)], &[]);
        by_id.topics[0].topic = TopicName(str_bytes(""));
        by_id.topics[0].topic_id = unknown_id;
        let answer = handle(&broker, 13, by_id).await.response;
        let p = &answer.responses[0].partitions[0];
        assert_eq!(p.error_code, ResponseError::UnknownTopicId.code());
        assert_eq!(no_offsets(p), (-1, -1, -1));
        assert_eq!(answer.responses[0].topic_id, unknown_id);
    }

    /// Mutation survivors of `handle`: a session id of 0 with an epoch above 0 is an invalid
    /// epoch (not an unknown session), and an incremental fetch reports a partition whose log
    /// start moved (DeleteRecords) even with no new records.
    #[tokio::test]
    async fn sessionless_epochs_and_moved_log_starts() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path()).await;
        let epoch_without_session = handle(&broker, 12, request(0, 1, &[(0, 0)], &[]))
            .await
            .response;
        assert_eq!(
            epoch_without_session.error_code,
            ResponseError::InvalidFetchSessionEpoch.code()
        );

        let p0 = broker.replicas.get("t", 0).unwrap();
        p0.append(&batch("a"), 0).unwrap();
        p0.append(&batch("b"), 0).unwrap();
        let full = handle(&broker, 12, request(0, 0, &[(0, 2), (1, 0)], &[]))
            .await
            .response;
        let session = full.session_id;
        p0.with_log_mut(|log| log.delete_records_before(1)).unwrap();
        let moved = handle(&broker, 12, request(session, 1, &[], &[]))
            .await
            .response;
        let reported: Vec<(i32, i64)> = moved
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.partition_index, p.log_start_offset))
            .collect();
        assert_eq!(
            reported,
            vec![(0, 1)],
            "only the partition whose log start moved"
        );
    }
}
