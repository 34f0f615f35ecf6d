//! The partition leader's side of transaction tooling (kafka-transactions.sh): DescribeProducers
//! reports the producer state of partitions, so a hanging transaction (one with a start offset
//! that no coordinator will end) can be found; WriteTxnMarkers writes commit or abort markers as
//! the coordinator would, which is how an operator aborts such a transaction.

use gregor_protocol::kafka::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use gregor_protocol::kafka::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use gregor_protocol::kafka::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use gregor_protocol::kafka::ResponseError;
use gregor_txn::Markers;

use super::str_bytes;
use crate::broker::Broker;
use crate::delayed::{replicated, Written, COORDINATOR_WRITE_TIMEOUT};

pub fn describe_producers(
    broker: &Broker,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request.topics.into_iter().map(|topic| {
        let partitions: Vec<_> = topic
            .partition_indexes
            .iter()
            .map(|&index| {
                let response = PartitionResponse::default().with_partition_index(index);
                match broker.replicas.lookup(topic.name.as_str(), index) {
                    Ok(partition) => response.with_active_producers(
                        partition
                            .with_log(|log| log.active_producers())
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(i32::from(p.epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    // gregor's single coordinator never moves: markers carry no epoch.
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(p.current_txn_start_offset)
                            })
                            .collect(),
                    ),
                    Err(code) => response.with_error_code(code).with_error_message(
                        ResponseError::try_from_code(code).map(|e| str_bytes(&e.to_string())),
                    ),
                }
            })
            .collect();
        TopicResponse::default()
            .with_name(topic.name)
            .with_partitions(partitions)
    });
    DescribeProducersResponse::default().with_topics(topics.collect())
}

pub async fn write_txn_markers(
    broker: &Broker,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut results = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let markers = Markers {
            transactional_id: String::new(),
            producer_id: marker.producer_id.0,
            producer_epoch: marker.producer_epoch,
            commit: marker.transaction_result,
            partitions: marker
                .topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.to_string(), p)))
                .collect(),
        };
        let (mut codes, written) = broker.txns.write_markers(&markers);
        // Answered once the markers written are on every in-sync replica (Kafka appends
        // them with acks=-1): the coordinator completes the transaction on this answer.
        let deadline = tokio::time::Instant::now() + COORDINATOR_WRITE_TIMEOUT;
        replicated(&written, deadline).await;
        let mut written = written.iter();
        for code in codes.iter_mut().filter(|c| **c == 0) {
            *code = match written.next().map(Written::replicated) {
                Some(Some(true)) | None => 0,
                Some(Some(false)) => ResponseError::NotLeaderOrFollower.code(),
                Some(None) => ResponseError::RequestTimedOut.code(),
            };
        }
        let mut codes = codes.into_iter();
        let topics = marker.topics.into_iter().map(|t| {
            let partitions = t.partition_indexes.iter().map(|&p| {
                WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(p)
                    .with_error_code(codes.next().unwrap_or_default())
            });
            WritableTxnMarkerTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions.collect())
        });
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics.collect()),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::kafka::messages::describe_producers_request::TopicRequest;
    use gregor_protocol::kafka::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use gregor_protocol::kafka::messages::TopicName;
    use gregor_storage::records::encode_transactional_batch;

    use super::*;
    use crate::services::now_ms;

    fn marker(producer: (i64, i16), partitions: Vec<i32>) -> WriteTxnMarkersRequest {
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_transaction_result(false)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_indexes(partitions)])])
    }

    fn codes(response: &WriteTxnMarkersResponse) -> Vec<i16> {
        response.markers[0].topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect()
    }

    #[tokio::test]
    async fn an_open_transaction_is_described_and_ended_by_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let broker = super::super::test_broker(dir.path(), &[]).await;
        let partition = broker.replicas.get("t", 0).unwrap();
        // A transactional batch written straight to the log: no coordinator knows it.
        let batch = encode_transactional_batch(&[(None, None)], now_ms(), 7, 3);
        partition.append(&batch, now_ms()).unwrap();
        let describe =
            DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_indexes(vec![0, 5])]);
        let described = describe_producers(&broker, describe.clone());
        let [open, unknown] = &described.topics[0].partitions[..] else {
            panic!("two partitions");
        };
        let p = &open.active_producers[0];
        assert_eq!(
            (
                p.producer_id.0,
                p.producer_epoch,
                p.current_txn_start_offset
            ),
            (7, 3, 0)
        );
        assert_eq!(
            unknown.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(partition.last_stable_offset(), 0);

        // A marker of an older epoch is refused; an unknown partition is named; the right one ends it.
        let stale = write_txn_markers(&broker, marker((7, 2), vec![0])).await;
        assert_eq!(codes(&stale), [ResponseError::InvalidProducerEpoch.code()]);
        let written = write_txn_markers(&broker, marker((7, 3), vec![0, 5])).await;
        assert_eq!(
            codes(&written),
            [0, ResponseError::UnknownTopicOrPartition.code()]
        );
        assert_eq!(
            partition.last_stable_offset(),
            2,
            "the record and its abort marker"
        );
        let described = describe_producers(&broker, describe);
        let p = &described.topics[0].partitions[0].active_producers[0];
        assert_eq!(p.current_txn_start_offset, -1);
    }
}
