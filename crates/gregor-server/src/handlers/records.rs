//! DeleteRecords: advances a partition's low watermark (log start offset), deleting the segments
//! entirely below it. On one node the high watermark is the log end, so there is nothing to wait
//! for and `timeout_ms` is not used.

use std::sync::Arc;

use gregor_metadata::MetadataImage;
use gregor_protocol::kafka::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use gregor_protocol::kafka::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use gregor_protocol::kafka::ResponseError;

use crate::broker::Broker;

/// The offset DeleteRecords reads as "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

fn delete_before(
    broker: &Broker,
    image: &MetadataImage,
    topic: &str,
    index: i32,
    offset: i64,
) -> Result<i64, i16> {
    let partition = broker
        .replicas
        .get(topic, index)
        .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    // Kafka refuses to delete records of a topic whose cleanup policy lacks "delete".
    let policy = broker
        .config
        .topic_value("cleanup.policy", image.topic_configs(topic));
    if !policy.split(',').any(|p| p.trim() == "delete") {
        return Err(ResponseError::PolicyViolation.code());
    }
    partition.with_log_mut(|log| {
        let high_watermark = partition.high_watermark();
        let target = if offset == HIGH_WATERMARK {
            high_watermark
        } else {
            offset
        };
        if target < 0 || target > high_watermark {
            return Err(ResponseError::OffsetOutOfRange.code());
        }
        log.delete_records_before(target).map_err(|e| {
            tracing::error!(topic, partition = index, error = %e, "delete records failed");
            e.error_code()
        })
    })
}

pub fn delete_records(
    broker: &Arc<Broker>,
    _version: i16,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = broker.metadata.image();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match delete_before(broker, &image, name, p.partition_index, p.offset) {
                        Ok(low_watermark) => {
                            tracing::info!(
                                topic = name,
                                partition = p.partition_index,
                                low_watermark,
                                "deleted records"
                            );
                            result.with_low_watermark(low_watermark)
                        }
                        Err(code) => result.with_low_watermark(-1).with_error_code(code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
