//! Produce: batches are validated and appended as received (the storage layer assigns offsets in
//! place); `acks=all` completes through the delayed-operation path once the high watermark
//! passes the batch (every in-sync replica has it), refused before the append while the ISR is
//! smaller than `min.insync.replicas`; `acks=0` gets no response. The first transactional batch of a transaction in a
//! partition is verified with the transaction coordinator first (KIP-890).

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::MetadataImage;
use gregor_protocol::kafka::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use gregor_protocol::kafka::messages::{BrokerId, ProduceRequest, ProduceResponse};
use tokio::time::Instant;

use gregor_storage::{batch, AppendResult, StorageError};
use gregor_txn::errors;

use super::leaders::Leaders;
use super::str_bytes;
use crate::broker::Broker;
use crate::delayed::{replicated, Written};
use crate::partitions::Partition;
use crate::services::now_ms;

fn failed(index: i32, error: i16, message: &str) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(str_bytes(message)))
}

/// Why a partition's records were refused: the error, its message, and the records that caused
/// it when only some did (KIP-467).
struct Refused {
    code: i16,
    message: String,
    records: Vec<BatchIndexAndErrorMessage>,
}

impl Refused {
    fn new(code: i16, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
            records: Vec::new(),
        }
    }
}

impl From<StorageError> for Refused {
    fn from(e: StorageError) -> Refused {
        let records = e
            .record_errors()
            .iter()
            .map(|r| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(r.batch_index)
                    .with_batch_index_error_message(Some(str_bytes(&r.message)))
            })
            .collect();
        Refused {
            code: e.error_code(),
            message: e.to_string(),
            records,
        }
    }
}

/// How long a produce of transaction version 2 retries adding its partition while the
/// transaction is being ended (Kafka's add.partitions.to.txn.retry.backoff.max.ms), and how
/// long it waits between tries (.backoff.ms).
const ADD_RETRY_MAX: Duration = Duration::from_millis(100);
const ADD_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// Appends the records, admitting a transaction's first batch in this partition first
/// (KIP-890): a client of transaction version 2 (Produce v12+) leaves adding the partition to
/// the transaction to us; an older one must have added it, which is verified. Either way no
/// transaction is opened here that no marker would end (a hanging transaction).
async fn append(
    broker: &Broker,
    version: i16,
    transactional_id: Option<&str>,
    partition: &Partition,
    records: &[u8],
    now: i64,
) -> Result<AppendResult, Refused> {
    let Some(producer) = batch::transactional_producer(records) else {
        return Ok(partition.append(records, now)?);
    };
    // Its transaction is open here already (the log checks the epoch).
    if let Some(appended) = partition.append_to_open_transaction(producer.0, records, now) {
        return Ok(appended?);
    }
    let key = (partition.topic.clone(), partition.index);
    let add = version >= 12;
    let guard = partition.verification_guard(producer.0);
    let started = Instant::now();
    let transactional_id = transactional_id.unwrap_or_default();
    let code = loop {
        let code = broker
            .txns
            .verify_or_add(transactional_id, producer, &key, add)
            .await;
        // The transaction is being ended (its markers are written): the producer's next
        // transaction starts in a moment, as Kafka retries rather than fail the batch.
        if add && code == errors::CONCURRENT_TRANSACTIONS && started.elapsed() < ADD_RETRY_MAX {
            tokio::time::sleep(ADD_RETRY_BACKOFF).await;
            continue;
        }
        break code;
    };
    if code != errors::NONE {
        return Err(refused_by_coordinator(code, version));
    }
    match partition.append_verified(producer.0, guard, records, now) {
        Some(appended) => Ok(appended?),
        // A marker ended the transaction while the batch was being verified.
        None => Err(refused_by_coordinator(errors::INVALID_TXN_STATE, version)),
    }
}

/// The produce error for a coordinator's refusal, as Kafka's partition leader answers it to a
/// client of this Produce version.
fn refused_by_coordinator(code: i16, version: i16) -> Refused {
    let unverified = |code: i16| {
        Refused::new(
            ResponseError::NotEnoughReplicas.code(),
            format!(
                "Unable to verify the partition has been added to the transaction. \
                 Underlying error: {}",
                ResponseError::try_from_code(code)
                    .map(|e| format!("{e:?}"))
                    .unwrap_or_else(|| code.to_string())
            ),
        )
    };
    match code {
        errors::PRODUCER_FENCED => Refused::new(
            errors::INVALID_PRODUCER_EPOCH,
            "The producer has been fenced by a newer instance",
        ),
        // Clients before Produce v11 know no TRANSACTION_ABORTABLE.
        errors::TRANSACTION_ABORTABLE | errors::INVALID_TXN_STATE if version < 11 => Refused::new(
            errors::INVALID_TXN_STATE,
            "Partition was not added to the transaction",
        ),
        errors::TRANSACTION_ABORTABLE => Refused::new(
            errors::TRANSACTION_ABORTABLE,
            "Partition was not added to the transaction",
        ),
        // Retriable errors older clients may not retry: NOT_ENOUGH_REPLICAS makes them retry
        // without a metadata refresh (Kafka does the same).
        errors::CONCURRENT_TRANSACTIONS if version < 12 => unverified(code),
        errors::COORDINATOR_NOT_AVAILABLE | errors::NOT_COORDINATOR => unverified(code),
        code => Refused::new(code, "The transaction coordinator refused the batch"),
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.to_string());
    let image = broker.metadata.image();
    let now = now_ms();
    // (topic response index, partition response index, the append), for acks=all.
    let mut pending: Vec<(usize, usize, Written)> = Vec::new();
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
                (-1, Ok(partition), Some(_)) if partition.is_under_min_isr() => failed(
                    data.index,
                    ResponseError::NotEnoughReplicas.code(),
                    "The in-sync replicas are fewer than min.insync.replicas",
                ),
                (-1..=1, Ok(partition), Some(records)) => match append(
                    broker,
                    version,
                    transactional_id.as_deref(),
                    &partition,
                    &records,
                    now,
                )
                .await
                {
                    Ok(appended) => {
                        if acks == -1 {
                            let written = Written {
                                partition: partition.clone(),
                                leader_epoch: appended.leader_epoch,
                                end: appended.last_offset + 1,
                            };
                            pending.push((t, i, written));
                        }
                        PartitionProduceResponse::default()
                            .with_index(data.index)
                            .with_base_offset(appended.base_offset)
                            .with_log_append_time_ms(appended.log_append_time)
                            .with_log_start_offset(appended.log_start_offset)
                            .with_error_message(None)
                    }
                    Err(refused) => {
                        tracing::debug!(topic = %partition.topic, partition = data.index, error = %refused.message, "produce refused");
                        failed(data.index, refused.code, &refused.message)
                            .with_record_errors(refused.records)
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
    for (t, i, written) in pending {
        replicated(std::slice::from_ref(&written), deadline).await;
        let p = &written.partition;
        let failure = match written.replicated() {
            Some(false) => Some((
                ResponseError::NotLeaderOrFollower,
                "leadership changed before the records were replicated",
            )),
            None => Some((
                ResponseError::RequestTimedOut,
                "timed out waiting for replication",
            )),
            Some(true) if p.is_under_min_isr() => Some((
                ResponseError::NotEnoughReplicasAfterAppend,
                "The records were written to fewer in-sync replicas than min.insync.replicas",
            )),
            Some(true) => None,
        };
        if let Some((error, message)) = failure {
            let response = &mut responses[t].partition_responses[i];
            *response = failed(response.index, error.code(), message);
        }
    }
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let refused_here = |t: &TopicProduceResponse| {
        let mut partitions = t.partition_responses.iter();
        partitions.any(|p| p.error_code == not_leader)
    };
    let mut response = ProduceResponse::default().with_responses(responses);
    if version >= 10 && response.responses.iter().any(refused_here) {
        name_leaders(&broker.metadata.image(), &mut response);
    }
    Some(response)
}

/// KIP-951: partitions refused NOT_LEADER_OR_FOLLOWER name their current leader.
fn name_leaders(image: &MetadataImage, response: &mut ProduceResponse) {
    let mut leaders = Leaders::new(image);
    for topic in &mut response.responses {
        let name = match image.topic_by_id(&topic.topic_id) {
            Some(t) => t.name.clone(),
            None => topic.name.to_string(),
        };
        for p in &mut topic.partition_responses {
            if p.error_code != ResponseError::NotLeaderOrFollower.code() {
                continue;
            }
            if let Some((leader, epoch)) = leaders.of(&name, p.index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
        }
    }
    response.node_endpoints = leaders
        .endpoints()
        .into_iter()
        .map(|(id, host, port, rack)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(&host))
                .with_port(port)
                .with_rack(rack.as_deref().map(str_bytes))
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use gregor_protocol::kafka::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use gregor_protocol::kafka::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use gregor_protocol::kafka::messages::{
        AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProducerId, TopicName,
        TransactionalId,
    };
    use gregor_storage::records::{encode_batch, encode_transactional_batch};

    use super::super::transactions;
    use super::*;

    fn txn_batch((pid, epoch): (i64, i16)) -> Bytes {
        encode_transactional_batch(
            &[(None, Some(Bytes::from_static(b"v")))],
            now_ms(),
            pid,
            epoch,
        )
    }

    async fn produce(broker: &Arc<Broker>, txn: &str, records: Bytes) -> i16 {
        produce_at(broker, 9, Some(txn), records).await.error_code
    }

    async fn produce_to_t(
        broker: &Arc<Broker>,
        txn: Option<&str>,
        records: Bytes,
    ) -> PartitionProduceResponse {
        produce_at(broker, 9, txn, records).await
    }

    async fn produce_at(
        broker: &Arc<Broker>,
        version: i16,
        txn: Option<&str>,
        records: Bytes,
    ) -> PartitionProduceResponse {
        let data = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records));
        let request = ProduceRequest::default()
            .with_transactional_id(txn.map(|t| TransactionalId(str_bytes(t))))
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_data(vec![data])]);
        let mut response = handle(broker, version, request).await.unwrap();
        response.responses[0].partition_responses.remove(0)
    }

    #[tokio::test]
    async fn records_that_fail_a_batch_are_named_in_the_response() {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            super::super::test_broker(dir.path(), &[("log.cleanup.policy", "compact")]).await;
        let entries: Vec<_> = (0..6)
            .map(|i| {
                let key = (i % 3 != 0).then(|| Bytes::from(format!("k{i}")));
                (key, Some(Bytes::from_static(b"v")))
            })
            .collect();
        let refused = produce_to_t(&broker, None, encode_batch(&entries, now_ms())).await;
        assert_eq!(refused.error_code, ResponseError::InvalidRecord.code());
        let named: Vec<_> = refused
            .record_errors
            .iter()
            .map(|e| {
                let message = e.batch_index_error_message.as_deref().unwrap_or_default();
                assert!(
                    message.contains("without key in topic partition t-0"),
                    "{message}"
                );
                e.batch_index
            })
            .collect();
        assert_eq!(named, vec![0, 3]);
        let message = refused.error_message.as_deref().unwrap_or_default();
        assert!(message.contains("2 record errors"), "{message}");
        assert_eq!(broker.replicas.get("t", 0).unwrap().high_watermark(), 0);
    }

    #[tokio::test]
    async fn transactional_batches_need_their_partition_in_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = [("transaction.state.log.num.partitions", "1")];
        let broker = super::super::test_broker(dir.path(), &overrides).await;
        let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let r = transactions::init_producer_id(&broker, 4, "tx", &init).await;
        let producer = (r.producer_id.0, r.producer_epoch);
        let log_end = || broker.replicas.get("t", 0).unwrap().high_watermark();

        // Not added to the transaction: refused, nothing written.
        assert_eq!(
            produce(&broker, "tx", txn_batch(producer)).await,
            errors::INVALID_TXN_STATE
        );
        assert_eq!(log_end(), 0);
        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes("tx")))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(vec![0])]);
        transactions::add_partitions_to_txn(&broker, 3, add).await;
        assert_eq!(
            produce(&broker, "tx", txn_batch(producer)).await,
            errors::NONE
        );
        // A stale epoch and an unknown transactional id are refused too.
        let stale = (producer.0, producer.1 - 1);
        assert_eq!(
            produce(&broker, "tx", txn_batch(stale)).await,
            errors::INVALID_PRODUCER_EPOCH
        );
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(true);
        assert_eq!(
            transactions::end_txn(&broker, 3, end).await.error_code,
            errors::NONE
        );
        // A late batch after the commit would open a transaction no marker ends.
        assert_eq!(
            produce(&broker, "tx", txn_batch(producer)).await,
            errors::INVALID_TXN_STATE
        );
        assert_eq!(
            produce(&broker, "other", txn_batch(producer)).await,
            errors::INVALID_PRODUCER_ID_MAPPING
        );
        let partition = broker.replicas.get("t", 0).unwrap();
        assert_eq!(
            partition.last_stable_offset(),
            partition.high_watermark(),
            "nothing hangs"
        );
        assert_eq!(log_end(), 2, "one record and its commit marker");
    }

    /// A client of transaction version 2 never sends AddPartitionsToTxn: its Produce v12 adds the
    /// partition, its EndTxn v5 bumps the epoch, and the log then fences a late batch of the
    /// finished transaction by that epoch alone. Older Produce versions are verified and get
    /// the error their version knows.
    #[tokio::test]
    async fn transaction_version_2_adds_partitions_and_bumps_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = [("transaction.state.log.num.partitions", "1")];
        let broker = super::super::test_broker(dir.path(), &overrides).await;
        let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let r = transactions::init_producer_id(&broker, 5, "tx", &init).await;
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        let partition = broker.replicas.get("t", 0).unwrap();
        let end = async |epoch: i16, commit: bool| {
            let request = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(str_bytes("tx")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit);
            let r = transactions::end_txn(&broker, 5, request).await;
            (r.error_code, r.producer_id.0, r.producer_epoch)
        };

        // Versions that cannot add the partition are refused, each with the code it knows.
        let v11 = produce_at(&broker, 11, Some("tx"), txn_batch((pid, epoch))).await;
        assert_eq!(v11.error_code, errors::TRANSACTION_ABORTABLE);
        let v10 = produce_at(&broker, 10, Some("tx"), txn_batch((pid, epoch))).await;
        assert_eq!(v10.error_code, errors::INVALID_TXN_STATE);
        assert_eq!(partition.high_watermark(), 0);

        let v12 = produce_at(&broker, 12, Some("tx"), txn_batch((pid, epoch))).await;
        assert_eq!(v12.error_code, errors::NONE);
        let described = broker.txns.peek(|c| c.describe("tx")).unwrap();
        assert_eq!(described.partitions, vec![("t".to_string(), 0)]);
        assert_eq!(described.state, gregor_txn::TxnState::Ongoing);
        assert_eq!(end(epoch, true).await, (errors::NONE, pid, epoch + 1));
        assert_eq!(partition.last_stable_offset(), 2, "record and marker");

        // A late batch of the committed transaction: fenced by the coordinator, and by the log
        // itself (the marker carried the new epoch) even without asking it.
        let late = produce_at(&broker, 12, Some("tx"), txn_batch((pid, epoch))).await;
        assert_eq!(late.error_code, errors::INVALID_PRODUCER_EPOCH);
        let direct = partition.append(&txn_batch((pid, epoch)), now_ms());
        assert_eq!(
            direct.map(|_| ()).map_err(|e| e.error_code()),
            Err(errors::INVALID_PRODUCER_EPOCH)
        );

        // The next transaction runs on the new epoch; a retried EndTxn gets the same answer.
        let next = produce_at(&broker, 12, Some("tx"), txn_batch((pid, epoch + 1))).await;
        assert_eq!(next.error_code, errors::NONE);
        assert_eq!(end(epoch + 1, false).await, (errors::NONE, pid, epoch + 2));
        assert_eq!(end(epoch + 1, false).await, (errors::NONE, pid, epoch + 2));
        assert_eq!(end(epoch + 2, true).await.0, errors::INVALID_TXN_STATE);
        assert_eq!(partition.last_stable_offset(), partition.high_watermark());
        assert_eq!(partition.high_watermark(), 4, "two records, two markers");
    }

    /// While a transaction's markers are being written, a version 2 produce retries adding its
    /// partition for add.partitions.to.txn.retry.backoff.max.ms, then answers
    /// CONCURRENT_TRANSACTIONS; older versions, which may not retry that error, get
    /// NOT_ENOUGH_REPLICAS at once.
    #[tokio::test]
    async fn a_transaction_being_ended_holds_back_its_next_batches() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = [("transaction.state.log.num.partitions", "1")];
        let broker = super::super::test_broker(dir.path(), &overrides).await;
        let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let r = transactions::init_producer_id(&broker, 5, "tx", &init).await;
        let producer = (r.producer_id.0, r.producer_epoch);
        // The transaction is being committed and its markers are not written yet.
        let ending = broker.txns.decide("tx", |c, _| {
            let mut m = c.snapshot("tx").expect("initialised");
            m.state = gregor_txn::TxnState::PrepareCommit;
            c.restore("tx", Some(m));
            gregor_txn::Decision {
                records: Vec::new(),
                markers: None,
                response: (),
            }
        });
        ending.await.unwrap();

        let started = Instant::now();
        let v12 = produce_at(&broker, 12, Some("tx"), txn_batch(producer)).await;
        assert_eq!(v12.error_code, errors::CONCURRENT_TRANSACTIONS);
        assert!(started.elapsed() >= ADD_RETRY_MAX, "it retried first");
        let v11 = produce_at(&broker, 11, Some("tx"), txn_batch(producer)).await;
        assert_eq!(v11.error_code, ResponseError::NotEnoughReplicas.code());
        let message = v11.error_message.as_deref().unwrap_or_default();
        assert!(message.contains("ConcurrentTransactions"), "{message}");
        assert_eq!(broker.replicas.get("t", 0).unwrap().high_watermark(), 0);
    }
}
