//! DescribeLogDirs: each of `log.dirs` with the partitions it holds (size, offset lag) and those
//! being copied into it (future replicas), its file system's total and usable bytes, or
//! KAFKA_STORAGE_ERROR when it is offline. The metadata log is not a partition and is not listed,
//! as in Kafka. AlterReplicaLogDirs starts moving partitions between log dirs.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use gregor_protocol::kafka::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use gregor_protocol::kafka::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use gregor_protocol::kafka::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

pub fn describe_log_dirs(
    broker: &Broker,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // None: every partition.
    let wanted: Option<HashSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p)))
            .collect()
    });
    let results = broker
        .replicas
        .log_dir_reports()
        .into_iter()
        .map(|dir| {
            let result = DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(&dir.path.to_string_lossy()))
                .with_total_bytes(dir.total_bytes)
                .with_usable_bytes(dir.usable_bytes);
            if !dir.online {
                return result.with_error_code(ResponseError::KafkaStorageError.code());
            }
            let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for p in dir.partitions {
                let key = (p.topic.clone(), p.index);
                if wanted.as_ref().is_some_and(|w| !w.contains(&key)) {
                    continue;
                }
                topics.entry(key.0).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(i64::try_from(p.size_bytes()).unwrap_or(i64::MAX))
                        .with_offset_lag(p.offset_lag())
                        .with_is_future_key(false),
                );
            }
            for f in dir.futures {
                let key = (f.topic.clone(), f.index);
                if wanted.as_ref().is_some_and(|w| !w.contains(&key)) {
                    continue;
                }
                // How far the copy is behind the log it copies.
                let source_end = broker
                    .replicas
                    .get(&f.topic, f.index)
                    .map_or(0, |p| p.with_log(|log| log.log_end_offset()));
                let copied_end = f.end_offset.load(Ordering::Relaxed);
                let copied = f.bytes.load(Ordering::Relaxed);
                topics.entry(key.0).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(f.index)
                        .with_partition_size(i64::try_from(copied).unwrap_or(i64::MAX))
                        .with_offset_lag((source_end - copied_end).max(0))
                        .with_is_future_key(true),
                );
            }
            result.with_topics(
                topics
                    .into_iter()
                    .map(|(name, mut partitions)| {
                        partitions.sort_by_key(|p| p.partition_index);
                        DescribeLogDirsTopic::default()
                            .with_name(TopicName(str_bytes(&name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

pub fn alter_replica_log_dirs(
    broker: &Broker,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let mut results: BTreeMap<String, Vec<AlterReplicaLogDirPartitionResult>> = BTreeMap::new();
    for dir in &request.dirs {
        for topic in &dir.topics {
            for &index in &topic.partitions {
                let code = broker
                    .replicas
                    .alter_log_dir(topic.name.as_str(), index, Path::new(dir.path.as_str()))
                    .err()
                    .unwrap_or(0);
                results.entry(topic.name.to_string()).or_default().push(
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(
        results
            .into_iter()
            .map(|(name, partitions)| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
