//! The transactional APIs: InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit, DescribeTransactions and ListTransactions. The
//! decisions are the transaction coordinator's (`gregor-txn`); this maps Kafka messages to and
//! from it, and checks what only the broker knows (which partitions exist).

use std::sync::Arc;

use gregor_group::errors::INVALID_GROUP_ID;
use gregor_protocol::kafka::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use gregor_protocol::kafka::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use gregor_protocol::kafka::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use gregor_protocol::kafka::messages::list_transactions_response::TransactionState as ListedState;
use gregor_protocol::kafka::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use gregor_protocol::kafka::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use gregor_protocol::kafka::ResponseError;
use gregor_txn::{errors, ProducerResult, TxnCoordinator, TxnState, TxnVersion};

use super::str_bytes;
use crate::broker::Broker;
use crate::coordinators::internal_topics::{partition_for, OFFSETS};
use crate::coordinators::transactions::cluster_version;

/// Clients older than the version that introduced PRODUCER_FENCED know it as
/// INVALID_PRODUCER_EPOCH (Kafka maps it the same way).
fn for_version(error: i16, version: i16, fenced_since: i16) -> i16 {
    if error == errors::PRODUCER_FENCED && version < fenced_since {
        errors::INVALID_PRODUCER_EPOCH
    } else {
        error
    }
}

/// The coordinator could not persist its decision: the client retries elsewhere or later.
fn unavailable(e: impl std::fmt::Display) -> i16 {
    tracing::error!(error = %e, "transaction coordinator failure");
    ResponseError::CoordinatorNotAvailable.code()
}

/// A producer id for the coordinator, when it needs one (a new transactional id, or an id whose
/// epochs are used up), from the block `init_producer_id` made sure has one. Another request
/// may have taken the last id meanwhile: the client retries.
fn allocate_producer_id(broker: &Broker) -> Result<i64, i16> {
    broker
        .producer_ids
        .try_next()
        .ok_or_else(|| unavailable("the producer id block ran out"))
}

/// The transaction version a client speaks, known from the version of its request: EndTxn v5+,
/// AddPartitionsToTxn v4+, Produce v12+ and TxnOffsetCommit v5+ come from clients (or brokers)
/// of transaction version 2 (KIP-890 part 2).
fn client_txn_version(api_version: i16, first_of_version_2: i16) -> TxnVersion {
    if api_version >= first_of_version_2 {
        TxnVersion::V2
    } else {
        TxnVersion::V0
    }
}

pub async fn init_producer_id(
    broker: &Arc<Broker>,
    version: i16,
    transactional_id: &str,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = |r: ProducerResult| {
        InitProducerIdResponse::default()
            .with_error_code(for_version(r.error, version, 4))
            .with_producer_id(ProducerId(r.producer_id))
            .with_producer_epoch(r.producer_epoch)
    };
    if let Err(e) = broker.txns.ensure_topic().await {
        return response(ProducerResult::error(unavailable(e)));
    }
    if let Err(e) = broker
        .producer_ids
        .ensure_available(&broker.controller)
        .await
    {
        return response(ProducerResult::error(unavailable(e)));
    }
    let expected = (version >= 3 && request.producer_id.0 >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    let cluster = cluster_version(&broker.metadata.image());
    let result = broker
        .txns
        .decide(transactional_id, |c, now| {
            c.init_producer_id(
                transactional_id,
                request.transaction_timeout_ms,
                expected,
                cluster,
                now,
                &mut || allocate_producer_id(broker),
            )
        })
        .await;
    response(result.unwrap_or_else(|e| ProducerResult::error(unavailable(e))))
}

/// AddPartitionsToTxn. v0-3 come from clients, with one transaction; v4+ from brokers (KIP-890),
/// with a batch of transactions, each either to add (as a client of transaction version 2
/// leaves it to the partition leader) or only to verify. Unknown partitions fail their
/// transaction: they get UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED.
pub async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    version: i16,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let producer = (
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
        );
        let results = add_to_txn(
            broker,
            version,
            &request.v3_and_below_transactional_id,
            producer,
            false,
            &request.v3_and_below_topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for t in &request.transactions {
        let producer = (t.producer_id.0, t.producer_epoch);
        let topics = add_to_txn(
            broker,
            version,
            &t.transactional_id,
            producer,
            t.verify_only,
            &t.topics,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// One transaction of an AddPartitionsToTxn: its partitions added (one error code for all) or,
/// with `verify_only`, each checked (TRANSACTION_ABORTABLE where not in the transaction).
async fn add_to_txn(
    broker: &Arc<Broker>,
    version: i16,
    transactional_id: &str,
    producer: (i64, i16),
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    // Partitions may be led by any broker: unknown means unknown to the cluster.
    let image = broker.metadata.image();
    let unknown = |(topic, p): &(String, i32)| {
        image
            .topics
            .get(topic.as_str())
            .is_none_or(|t| !t.partitions.contains_key(p))
    };
    let any_unknown = wanted.iter().any(unknown);
    let verified: Vec<i16> = if !any_unknown && verify_only {
        let verify = |c: &TxnCoordinator| {
            let verify = |partition| c.verify(transactional_id, producer, partition);
            wanted.iter().map(verify).collect()
        };
        let not_available = vec![errors::COORDINATOR_NOT_AVAILABLE; wanted.len()];
        broker.txns.read(verify).await.unwrap_or(not_available)
    } else {
        Vec::new()
    };
    let added = if !any_unknown && !verify_only {
        let decided = broker
            .txns
            .decide(transactional_id, |c, now| {
                let client = client_txn_version(version, 4);
                c.add_partitions(transactional_id, producer, &wanted, client, now)
            })
            .await;
        Some(decided.unwrap_or_else(unavailable))
    } else {
        None
    };
    let position = |partition: &(String, i32)| wanted.iter().position(|p| p == partition);
    let code_of = |partition: (String, i32)| match added {
        Some(code) => for_version(code, version, 2),
        None if any_unknown && unknown(&partition) => ResponseError::UnknownTopicOrPartition.code(),
        None if any_unknown => ResponseError::OperationNotAttempted.code(),
        None => position(&partition).map_or(errors::COORDINATOR_NOT_AVAILABLE, |i| verified[i]),
    };
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code_of((t.name.to_string(), *p)))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// AddOffsetsToTxn: the group's partition of `__consumer_offsets` joins the transaction.
pub async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    version: i16,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let code = match broker.groups.ensure_topic().await {
        Err(e) => unavailable(e),
        Ok(partitions) => {
            let partition = (
                OFFSETS.name.to_string(),
                partition_for(&request.group_id, partitions),
            );
            broker
                .txns
                .decide(&request.transactional_id, |c, now| {
                    c.add_partitions(
                        &request.transactional_id,
                        (request.producer_id.0, request.producer_epoch),
                        &[partition],
                        TxnVersion::V0,
                        now,
                    )
                })
                .await
                .unwrap_or_else(unavailable)
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(for_version(code, version, 2))
}

/// EndTxn. From v5 (transaction version 2) the epoch is bumped and the answer carries the
/// producer id and epoch to carry on with.
pub async fn end_txn(broker: &Arc<Broker>, version: i16, request: EndTxnRequest) -> EndTxnResponse {
    let producer = (request.producer_id.0, request.producer_epoch);
    let result = broker
        .txns
        .decide(&request.transactional_id, |c, now| {
            c.end_txn(
                &request.transactional_id,
                producer,
                request.committed,
                client_txn_version(version, 5),
                now,
                &mut || allocate_producer_id(broker),
            )
        })
        .await
        .unwrap_or_else(|e| ProducerResult::error(unavailable(e)));
    EndTxnResponse::default()
        .with_error_code(for_version(result.error, version, 2))
        .with_producer_id(ProducerId(result.producer_id))
        .with_producer_epoch(result.producer_epoch)
}

/// TxnOffsetCommit: the group's partition of `__consumer_offsets` must be part of the
/// producer's ongoing transaction (added by AddOffsetsToTxn, or here for a client of
/// transaction version 2, v5+); the offsets are then pending in the group coordinator until
/// the transaction's marker.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    version: i16,
    request: TxnOffsetCommitRequest,
) -> Option<TxnOffsetCommitResponse> {
    let producer = (request.producer_id.0, request.producer_epoch);
    let refusal = if request.group_id.is_empty() {
        Some(INVALID_GROUP_ID)
    } else {
        match broker.groups.ensure_topic().await {
            Err(e) => Some(unavailable(e)),
            Ok(partitions) => {
                let partition = (
                    OFFSETS.name.to_string(),
                    partition_for(&request.group_id, partitions),
                );
                let add = client_txn_version(version, 5).bumps_epoch();
                let code = broker
                    .txns
                    .verify_or_add(&request.transactional_id, producer, &partition, add)
                    .await;
                (code != errors::NONE).then_some(code)
            }
        }
    };
    if let Some(code) = refusal {
        let code = match code {
            // As Kafka's log answers a write of a stale epoch.
            errors::PRODUCER_FENCED => errors::INVALID_PRODUCER_EPOCH,
            errors::TRANSACTION_ABORTABLE if version < 4 => errors::INVALID_TXN_STATE,
            code => code,
        };
        return Some(txn_offset_error(&request, code));
    }
    broker
        .groups
        .call_in(Some(producer), |c, now, reply| {
            c.txn_offset_commit(now, request, reply)
        })
        .await
}

fn txn_offset_error(request: &TxnOffsetCommitRequest, code: i16) -> TxnOffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub async fn describe_transactions(
    broker: &Arc<Broker>,
    request: DescribeTransactionsRequest,
) -> Option<DescribeTransactionsResponse> {
    let ids = &request.transactional_ids;
    let described: Vec<_> = broker
        .txns
        .read(|c| {
            ids.iter()
                .map(|id| (c.coordinates(id), c.describe(id)))
                .collect()
        })
        .await?;
    let states = ids
        .iter()
        .zip(described)
        .map(|(id, (coordinated, described))| {
            let state = DescribedState::default().with_transactional_id(id.clone());
            match described {
                None => state
                    .with_error_code(if coordinated {
                        errors::TRANSACTIONAL_ID_NOT_FOUND
                    } else {
                        errors::NOT_COORDINATOR
                    })
                    .with_transaction_state(str_bytes(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
                Some(d) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in d.partitions {
                        match topics.last_mut() {
                            Some(t) if t.topic.as_str() == topic => t.partitions.push(partition),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(&topic)))
                                    .with_partitions(vec![partition]),
                            ),
                        }
                    }
                    state
                        .with_transaction_state(str_bytes(d.state.name()))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    Some(DescribeTransactionsResponse::default().with_transaction_states(states))
}

/// Kafka's state names, which ListTransactions filters by.
const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub async fn list_transactions(
    broker: &Arc<Broker>,
    version: i16,
    request: ListTransactionsRequest,
) -> Option<ListTransactionsResponse> {
    let filters: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let listed = broker
        .txns
        .read(|c| c.list(&filters, &producers, duration, crate::services::now_ms()))
        .await?;
    let listed = listed.into_iter().map(|d| {
        ListedState::default()
            .with_transactional_id(TransactionalId(str_bytes(&d.transactional_id)))
            .with_producer_id(ProducerId(d.producer_id))
            .with_transaction_state(str_bytes(d.state.name()))
    });
    Some(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed.collect()),
    )
}

#[cfg(test)]
mod tests {
    use gregor_protocol::kafka::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;

    use super::*;

    fn add(producer: (i64, i16), partitions: Vec<i32>) -> AddPartitionsToTxnRequest {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes("tx")))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(partitions)])
    }

    fn state(broker: &Arc<Broker>) -> String {
        broker
            .txns
            .peek(|c| c.describe("tx"))
            .map(|d| d.state.name().to_string())
            .unwrap_or_default()
    }

    /// A decision whose `__transaction_state` record cannot be appended (here: larger than
    /// message.max.bytes, from the many partitions it lists) answers COORDINATOR_NOT_AVAILABLE
    /// and leaves the coordinator as the log has it; a smaller one then goes through.
    #[tokio::test]
    async fn a_decision_that_cannot_be_stored_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = [
            ("num.partitions", "200"),
            ("message.max.bytes", "1500"),
            ("transaction.state.log.num.partitions", "1"),
        ];
        let broker = crate::handlers::test_broker(dir.path(), &overrides).await;
        let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let r = init_producer_id(&broker, 4, "tx", &init).await;
        assert_eq!(r.error_code, errors::NONE);
        let producer = (r.producer_id.0, r.producer_epoch);

        let too_many = add_partitions_to_txn(&broker, 3, add(producer, (0..200).collect())).await;
        let codes: Vec<i16> = too_many.results_by_topic_v3_and_below[0]
            .results_by_partition
            .iter()
            .map(|p| p.partition_error_code)
            .collect();
        assert!(codes
            .iter()
            .all(|&c| c == ResponseError::CoordinatorNotAvailable.code()));
        assert_eq!(
            state(&broker),
            "Empty",
            "the unstored Ongoing state was undone"
        );

        let one = add_partitions_to_txn(&broker, 3, add(producer, vec![7])).await;
        assert_eq!(
            one.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            errors::NONE
        );
        let described = broker.txns.peek(|c| c.describe("tx")).unwrap();
        assert_eq!(described.state.name(), "Ongoing");
        assert_eq!(described.partitions, vec![("t".to_string(), 7)]);
    }

    /// AddPartitionsToTxn v4+, the brokers' form: a batch of transactions, each added or only
    /// verified, each answered on its own.
    #[tokio::test]
    async fn batched_add_partitions_adds_or_verifies_each_transaction() {
        use gregor_protocol::kafka::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
        let dir = tempfile::tempdir().unwrap();
        let overrides = [
            ("num.partitions", "3"),
            ("transaction.state.log.num.partitions", "1"),
        ];
        let broker = crate::handlers::test_broker(dir.path(), &overrides).await;
        let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let r = init_producer_id(&broker, 5, "tx", &init).await;
        let producer = (r.producer_id.0, r.producer_epoch);
        let txn = |id: &str, producer: (i64, i16), verify_only: bool, partitions: Vec<i32>| {
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_verify_only(verify_only)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(partitions)])
        };
        let codes =
            async |transactions: Vec<AddPartitionsToTxnTransaction>| -> Vec<(String, Vec<i16>)> {
                let request = AddPartitionsToTxnRequest::default().with_transactions(transactions);
                let response = add_partitions_to_txn(&broker, 5, request).await;
                assert_eq!(response.error_code, errors::NONE);
                response
                    .results_by_transaction
                    .iter()
                    .map(|t| {
                        let codes = t.topic_results[0]
                            .results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                            .collect();
                        (t.transactional_id.to_string(), codes)
                    })
                    .collect()
            };
        let fenced = (producer.0, producer.1 + 1);
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let not_attempted = ResponseError::OperationNotAttempted.code();
        assert_eq!(
            codes(vec![
                txn("tx", producer, false, vec![0, 1]),
                txn("other", producer, false, vec![0]),
                txn("tx", fenced, true, vec![0]),
                txn("tx", producer, false, vec![2, 9]),
            ])
            .await,
            vec![
                ("tx".to_string(), vec![errors::NONE, errors::NONE]),
                (
                    "other".to_string(),
                    vec![errors::INVALID_PRODUCER_ID_MAPPING]
                ),
                ("tx".to_string(), vec![errors::PRODUCER_FENCED]),
                ("tx".to_string(), vec![not_attempted, unknown]),
            ]
        );
        let added = broker.txns.peek(|c| c.describe("tx")).unwrap();
        assert_eq!(added.state, TxnState::Ongoing);
        assert_eq!(
            added.partitions,
            vec![("t".to_string(), 0), ("t".to_string(), 1)]
        );
        // Verification alone adds nothing.
        assert_eq!(
            codes(vec![txn("tx", producer, true, vec![1, 2])]).await,
            vec![(
                "tx".to_string(),
                vec![errors::NONE, errors::TRANSACTION_ABORTABLE]
            )]
        );
        assert_eq!(
            broker
                .txns
                .peek(|c| c.describe("tx"))
                .unwrap()
                .partitions
                .len(),
            2
        );
    }

    /// TxnOffsetCommit needs the group's `__consumer_offsets` partition in the transaction: a
    /// classic client added it (AddOffsetsToTxn), refused otherwise with the code its version
    /// knows; v5 (transaction version 2) adds it itself.
    #[tokio::test]
    async fn txn_offset_commit_needs_or_adds_the_offsets_partition() {
        use gregor_protocol::kafka::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        use gregor_protocol::kafka::messages::GroupId;
        let dir = tempfile::tempdir().unwrap();
        let overrides = [
            ("transaction.state.log.num.partitions", "1"),
            ("offsets.topic.num.partitions", "1"),
        ];
        let broker = crate::handlers::test_broker(dir.path(), &overrides).await;
        let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let r = init_producer_id(&broker, 5, "tx", &init).await;
        let producer = (r.producer_id.0, r.producer_epoch);
        let commit = |version: i16, (id, epoch): (i64, i16)| {
            let request = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(str_bytes("tx")))
                .with_group_id(GroupId(str_bytes("g")))
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch)
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5)])]);
            let broker = broker.clone();
            async move {
                let response = txn_offset_commit(&broker, version, request).await.unwrap();
                response.topics[0].partitions[0].error_code
            }
        };
        assert_eq!(commit(3, producer).await, errors::INVALID_TXN_STATE);
        assert_eq!(commit(4, producer).await, errors::TRANSACTION_ABORTABLE);
        let stale = (producer.0, producer.1 - 1);
        assert_eq!(commit(5, stale).await, errors::INVALID_PRODUCER_EPOCH);
        assert_eq!(state(&broker), "Empty", "nothing added so far");

        assert_eq!(commit(5, producer).await, errors::NONE);
        let described = broker.txns.peek(|c| c.describe("tx")).unwrap();
        assert_eq!(described.partitions, vec![(OFFSETS.name.to_string(), 0)]);
        // Now in the transaction, the classic versions pass too.
        assert_eq!(commit(3, producer).await, errors::NONE);
    }
}
