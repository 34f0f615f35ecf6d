//! Controller decisions: pure functions from the current image and a request to the records that
//! carry it out, or the Kafka error that refuses it. They read no clock and do no I/O.

use proto_kafka::ResponseError;
use std::collections::BTreeSet;

use uuid::Uuid;

use crate::configs::topic_config;
use crate::image::MetadataImage;
use crate::records::{ConfigResource, MetadataRecord};

/// A refusal with Kafka's error code and a message for the client.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct ControllerError {
    pub code: i16,
    pub message: String,
}

fn refuse<T>(code: i16, message: impl Into<String>) -> Result<T, ControllerError> {
    Err(ControllerError {
        code,
        message: message.into(),
    })
}

/// Kafka's topic name rules: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return refuse(
            ResponseError::InvalidTopicException.code(),
            "Topic name is illegal, it can't be empty",
        );
    }
    if name == "." || name == ".." {
        return refuse(
            ResponseError::InvalidTopicException.code(),
            "Topic name cannot be \".\" or \"..\"",
        );
    }
    if name.len() > 249 {
        return refuse(
            ResponseError::InvalidTopicException.code(),
            format!(
                "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
            ),
        );
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return refuse(
            ResponseError::InvalidTopicException.code(),
            format!("Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"),
        );
    }
    Ok(())
}

/// What a CreateTopics entry asks for; `-1` means the broker default.
pub struct NewTopic<'a> {
    pub name: &'a str,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica assignment by partition index, if given.
    pub assignments: Vec<Vec<i32>>,
    pub configs: Vec<(String, Option<String>)>,
}

/// Broker defaults a topic creation falls back on.
pub struct TopicDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
}

pub fn validate_topic_configs(configs: &[(String, Option<String>)]) -> Result<(), ControllerError> {
    for (name, value) in configs {
        let Some(def) = topic_config(name) else {
            return refuse(
                ResponseError::InvalidConfig.code(),
                format!("Unknown topic config name: {name}"),
            );
        };
        let Some(value) = value else {
            return refuse(
                ResponseError::InvalidConfig.code(),
                format!("Null value not supported for topic configs: {name}"),
            );
        };
        def.validate(value)
            .or_else(|message| refuse(ResponseError::InvalidConfig.code(), message))?;
    }
    Ok(())
}

fn place_replicas(brokers: &[i32], partition: i32, replication_factor: usize) -> Vec<i32> {
    (0..replication_factor)
        .map(|r| brokers[(partition as usize + r) % brokers.len()])
        .collect()
}

fn partition_records(topic_id: Uuid, first: i32, replicas: Vec<Vec<i32>>) -> Vec<MetadataRecord> {
    replicas
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| MetadataRecord::Partition {
            topic_id,
            partition: first + i as i32,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
        })
        .collect()
}

fn check_assignment(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
) -> Result<usize, ControllerError> {
    let width = assignments[0].len();
    for replicas in assignments {
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if replicas.is_empty() || replicas.len() != width || distinct.len() != replicas.len() {
            return refuse(
                ResponseError::InvalidReplicaAssignment.code(),
                "Replica assignments must be non-empty, of equal size and without duplicates",
            );
        }
        if let Some(unknown) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
            return refuse(
                ResponseError::InvalidReplicaAssignment.code(),
                format!("Replica assignment names unknown broker {unknown}"),
            );
        }
    }
    Ok(width)
}

/// Decides a topic creation.
pub fn create_topic(
    image: &MetadataImage,
    request: &NewTopic,
    defaults: &TopicDefaults,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    validate_topic_name(request.name)?;
    if image.topics.contains_key(request.name) {
        return refuse(
            ResponseError::TopicAlreadyExists.code(),
            format!("Topic '{}' already exists.", request.name),
        );
    }
    let collides = |n: &str| n.replace('.', "_") == request.name.replace('.', "_");
    if let Some(other) = image.topics.keys().find(|n| collides(n)) {
        return refuse(
            ResponseError::InvalidTopicException.code(),
            format!(
                "Topic '{}' collides with existing topic: {other}",
                request.name
            ),
        );
    }
    validate_topic_configs(&request.configs)?;
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    let replicas = if request.assignments.is_empty() {
        let partitions = match request.num_partitions {
            -1 => defaults.num_partitions,
            n if n <= 0 => {
                return refuse(
                    ResponseError::InvalidPartitions.code(),
                    "Number of partitions was set to an invalid non-positive value.",
                )
            }
            n => n,
        };
        let factor = match request.replication_factor {
            -1 => defaults.replication_factor,
            n if n <= 0 => {
                return refuse(
                    ResponseError::InvalidReplicationFactor.code(),
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                )
            }
            n => n,
        };
        if factor as usize > brokers.len() {
            return refuse(
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                    "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only {} broker(s) are registered.",
                    brokers.len()
                ),
            );
        }
        (0..partitions)
            .map(|p| place_replicas(&brokers, p, factor as usize))
            .collect()
    } else {
        if request.num_partitions != -1 || request.replication_factor != -1 {
            return refuse(
                ResponseError::InvalidRequest.code(),
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            );
        }
        check_assignment(image, &request.assignments)?;
        request.assignments.clone()
    };
    let mut records = vec![MetadataRecord::Topic {
        name: request.name.to_string(),
        topic_id,
    }];
    records.extend(partition_records(topic_id, 0, replicas));
    records.extend(
        request
            .configs
            .iter()
            .map(|(name, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(request.name.to_string()),
                name: name.clone(),
                value: value.clone(),
            }),
    );
    Ok(records)
}

pub fn delete_topic(
    image: &MetadataImage,
    name: &str,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match image.topics.get(name) {
        Some(topic) => Ok(vec![MetadataRecord::RemoveTopic { topic_id: topic.id }]),
        None => refuse(
            ResponseError::UnknownTopicOrPartition.code(),
            "This server does not host this topic-partition.",
        ),
    }
}

/// Decides growing a topic to `count` partitions.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Vec<Vec<i32>>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let Some(topic) = image.topics.get(name) else {
        return refuse(
            ResponseError::UnknownTopicOrPartition.code(),
            format!("The topic '{name}' does not exist."),
        );
    };
    let current = topic.partitions.len() as i32;
    if count <= current {
        return refuse(
            ResponseError::InvalidPartitions.code(),
            format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
        );
    }
    let factor = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len());
    let replicas = if assignments.is_empty() {
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        if factor > brokers.len() {
            return refuse(
                ResponseError::InvalidReplicationFactor.code(),
                "Not enough live brokers for the topic's replication factor",
            );
        }
        (current..count)
            .map(|p| place_replicas(&brokers, p, factor))
            .collect()
    } else {
        if assignments.len() as i32 != count - current {
            return refuse(
                ResponseError::InvalidReplicaAssignment.code(),
                format!(
                    "Increasing the number of partitions by {} but {} assignments provided.",
                    count - current,
                    assignments.len()
                ),
            );
        }
        if check_assignment(image, &assignments)? != factor {
            return refuse(
                ResponseError::InvalidReplicaAssignment.code(),
                "Inconsistent replication factor between partitions",
            );
        }
        assignments
    };
    Ok(partition_records(topic.id, current, replicas))
}

/// Producer ids are handed out by blocks recorded in the log, so none repeats after a restart.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    node_id: i32,
    block: i64,
) -> (i64, MetadataRecord) {
    let start = image.next_producer_id;
    (
        start,
        MetadataRecord::ProducerIds {
            node_id,
            next_block_start: start + block,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with_broker() -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        });
        image
    }

    fn new_topic(name: &str, partitions: i32, factor: i16) -> NewTopic<'_> {
        NewTopic {
            name,
            num_partitions: partitions,
            replication_factor: factor,
            assignments: vec![],
            configs: vec![],
        }
    }

    const DEFAULTS: TopicDefaults = TopicDefaults {
        num_partitions: 1,
        replication_factor: 1,
    };

    #[test]
    fn creates_and_refuses_topics_with_kafka_codes() {
        let mut image = image_with_broker();
        let records = create_topic(
            &image,
            &new_topic("orders", 3, -1),
            &DEFAULTS,
            Uuid::new_v4(),
        )
        .unwrap();
        for r in &records {
            image.apply(r);
        }
        assert_eq!(image.topics["orders"].partitions.len(), 3);
        let code = |t: NewTopic| {
            create_topic(&image, &t, &DEFAULTS, Uuid::new_v4())
                .unwrap_err()
                .code
        };
        assert_eq!(
            code(new_topic("orders", 1, 1)),
            ResponseError::TopicAlreadyExists.code()
        );
        assert_eq!(
            code(new_topic("", 1, 1)),
            ResponseError::InvalidTopicException.code()
        );
        assert_eq!(
            code(new_topic("..", 1, 1)),
            ResponseError::InvalidTopicException.code()
        );
        assert_eq!(
            code(new_topic("a/b", 1, 1)),
            ResponseError::InvalidTopicException.code()
        );
        assert_eq!(
            code(new_topic(&"x".repeat(250), 1, 1)),
            ResponseError::InvalidTopicException.code()
        );
        assert_eq!(
            code(new_topic("p", 0, 1)),
            ResponseError::InvalidPartitions.code()
        );
        assert_eq!(
            code(new_topic("p", 1, 3)),
            ResponseError::InvalidReplicationFactor.code()
        );
        let mut bad_config = new_topic("p", 1, 1);
        bad_config.configs = vec![("retention.ms".into(), Some("x".into()))];
        assert_eq!(code(bad_config), ResponseError::InvalidConfig.code());
    }

    #[test]
    fn grows_partitions_and_deletes() {
        let mut image = image_with_broker();
        for r in create_topic(&image, &new_topic("t", 2, 1), &DEFAULTS, Uuid::new_v4()).unwrap() {
            image.apply(&r);
        }
        assert_eq!(
            create_partitions(&image, "t", 2, vec![]).unwrap_err().code,
            ResponseError::InvalidPartitions.code()
        );
        for r in create_partitions(&image, "t", 5, vec![]).unwrap() {
            image.apply(&r);
        }
        assert_eq!(image.topics["t"].partitions.len(), 5);
        for r in delete_topic(&image, "t").unwrap() {
            image.apply(&r);
        }
        assert!(image.topics.is_empty() && image.topic_names.is_empty());
        assert_eq!(
            delete_topic(&image, "t").unwrap_err().code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
