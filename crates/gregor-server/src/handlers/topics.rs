//! CreateTopics, DeleteTopics and CreatePartitions: controller decisions committed to the metadata
//! log; the partition logs follow from the new image.

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;

use gregor_metadata::controller::{
    create_partitions as decide_partitions, create_topic, delete_topic, ControllerError, NewTopic,
    TopicDefaults,
};
use gregor_protocol::kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use gregor_protocol::kafka::messages::create_topics_response::CreatableTopicResult;
use gregor_protocol::kafka::messages::delete_topics_response::DeletableTopicResult;
use gregor_protocol::kafka::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Broker;

fn defaults(broker: &Broker) -> TopicDefaults {
    TopicDefaults {
        num_partitions: broker.config.get_i64("num.partitions") as i32,
        replication_factor: broker.config.get_i64("default.replication.factor") as i16,
    }
}

pub(crate) fn storage_failure(e: impl std::fmt::Display) -> ControllerError {
    tracing::error!(error = %e, "metadata log append failed");
    ControllerError {
        code: ResponseError::KafkaStorageError.code(),
        message: format!("metadata log append failed: {e}"),
    }
}

/// Decides (and, unless `validate_only`, commits) one topic creation; returns the topic id.
pub(crate) fn commit_topic_creation(
    broker: &Broker,
    topic: &NewTopic,
    validate_only: bool,
) -> Result<Uuid, ControllerError> {
    let defaults = defaults(broker);
    let id = Uuid::new_v4();
    broker
        .decide(|image| {
            let records = create_topic(image, topic, &defaults, id)?;
            Ok((if validate_only { vec![] } else { records }, id))
        })
        .map_err(storage_failure)?
}

/// Auto-creation from Metadata; a topic created meanwhile by someone else is fine.
pub fn create_with_defaults(broker: &Broker, name: &str) -> Result<(), i16> {
    let topic = NewTopic {
        name,
        num_partitions: -1,
        replication_factor: -1,
        assignments: vec![],
        configs: vec![],
    };
    match commit_topic_creation(broker, &topic, false) {
        Ok(_) => {
            tracing::info!(topic = name, "auto-created topic");
            Ok(())
        }
        Err(e) if e.code == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Err(e) => Err(e.code),
    }
}

pub fn create_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in &request.topics {
        let name = t.name.0.as_str();
        let mut assignments: Vec<_> = t.assignments.iter().collect();
        assignments.sort_by_key(|a| a.partition_index);
        let topic = NewTopic {
            name,
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        };
        let outcome = if !seen.insert(name) {
            Err(ControllerError {
                code: ResponseError::InvalidRequest.code(),
                message: format!("Duplicate topic name {name} in the request"),
            })
        } else if assignments
            .iter()
            .enumerate()
            .any(|(i, a)| a.partition_index != i as i32)
        {
            Err(ControllerError {
                code: ResponseError::InvalidReplicaAssignment.code(),
                message: "Partitions in the assignment must be consecutive from 0".into(),
            })
        } else {
            commit_topic_creation(broker, &topic, request.validate_only)
        };
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_error_message(None);
        match outcome {
            Ok(id) => {
                let image = broker.metadata.image();
                let created = image.topics.get(name);
                let partitions = created.map_or_else(
                    || {
                        topic
                            .assignments
                            .len()
                            .max(t.num_partitions.max(0) as usize) as i32
                    },
                    |c| c.partitions.len() as i32,
                );
                let factor = created
                    .and_then(|c| c.partitions.values().next())
                    .map_or(t.replication_factor, |p| p.replicas.len() as i16);
                if version >= 5 {
                    let overrides = topic
                        .configs
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                        .collect();
                    result = result.with_configs(Some(super::configs::created_topic_configs(
                        broker, &image, &overrides,
                    )));
                }
                result = result
                    .with_topic_id(if request.validate_only {
                        Uuid::nil()
                    } else {
                        id
                    })
                    .with_num_partitions(partitions)
                    .with_replication_factor(factor);
                if !request.validate_only {
                    tracing::info!(topic = name, partitions, "created topic");
                }
            }
            Err(e) => {
                result = result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
        }
        if version < 5 {
            result = result.with_configs(None);
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub fn delete_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6+ names topics (or ids) in `topics`; older versions in `topic_names`.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let image = broker.metadata.image();
            let name = name.or_else(|| image.topic_by_id(&id).map(|t| t.name.clone()));
            let outcome = match &name {
                Some(name) => broker
                    .decide(|image| delete_topic(image, name).map(|records| (records, ())))
                    .map_err(storage_failure)
                    .and_then(|r| r),
                None => Err(ControllerError {
                    code: ResponseError::UnknownTopicId.code(),
                    message: "This server does not host this topic ID.".into(),
                }),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.as_deref().map(|n| TopicName(str_bytes(n))))
                .with_topic_id(
                    image
                        .topics
                        .get(name.as_deref().unwrap_or_default())
                        .map_or(id, |t| t.id),
                );
            match outcome {
                Ok(()) => {
                    tracing::info!(topic = name.as_deref().unwrap_or_default(), "deleted topic");
                    result.with_error_message(None)
                }
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .iter()
        .map(|t| {
            let assignments: Vec<Vec<i32>> = t
                .assignments
                .iter()
                .flatten()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            let outcome = broker
                .decide(|image| {
                    let records =
                        decide_partitions(image, t.name.0.as_str(), t.count, assignments)?;
                    Ok((
                        if request.validate_only {
                            vec![]
                        } else {
                            records
                        },
                        (),
                    ))
                })
                .map_err(storage_failure)
                .and_then(|r| r);
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => result.with_error_message(None),
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
