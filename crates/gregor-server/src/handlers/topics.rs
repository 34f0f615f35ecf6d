//! CreateTopics, DeleteTopics and CreatePartitions: requests to the controller, answered once
//! committed to the metadata log; the partition logs follow from the change (metadata loader).

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;

use gregor_metadata::controller::{ControllerError, NewTopic};
use gregor_metadata::{ControllerReply, ControllerRequest, MetadataImage};
use gregor_protocol::kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use gregor_protocol::kafka::messages::create_topics_request::CreatableTopic;
use gregor_protocol::kafka::messages::create_topics_response::CreatableTopicResult;
use gregor_protocol::kafka::messages::delete_topics_response::DeletableTopicResult;
use gregor_protocol::kafka::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Broker;

/// Auto-creation from Metadata; a topic created meanwhile by someone else is fine.
pub async fn create_with_defaults(broker: &Broker, name: &str) -> Result<(), i16> {
    let topic = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: vec![],
        configs: vec![],
    };
    match broker.create_topic(topic, false).await {
        Ok(_) => {
            tracing::info!(topic = name, "auto-created topic");
            Ok(())
        }
        Err(e) if e.code == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Err(e) => Err(e.code),
    }
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    // Checked here: duplicates within the request and assignments; the rest is the controller's,
    // one decision for all the request's topics (one metadata log entry, not one per topic).
    let mut seen = std::collections::HashSet::new();
    let mut outcomes: Vec<Option<Result<Uuid, ControllerError>>> = Vec::new();
    let mut wanted = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = t.name.0.as_str();
        let mut assignments: Vec<_> = t.assignments.iter().collect();
        assignments.sort_by_key(|a| a.partition_index);
        let topic = NewTopic {
            name: name.to_string(),
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
        let refused = if !seen.insert(name) {
            Some(ControllerError {
                code: ResponseError::InvalidRequest.code(),
                message: format!("Duplicate topic name {name} in the request"),
            })
        } else if assignments
            .iter()
            .enumerate()
            .any(|(i, a)| a.partition_index != i as i32)
        {
            Some(ControllerError {
                code: ResponseError::InvalidReplicaAssignment.code(),
                message: "Partitions in the assignment must be consecutive from 0".into(),
            })
        } else {
            None
        };
        match refused {
            Some(e) => outcomes.push(Some(Err(e))),
            None => {
                outcomes.push(None);
                wanted.push((topic.clone(), Uuid::new_v4()));
            }
        }
        topics.push(topic);
    }
    let ids: Vec<Uuid> = wanted.iter().map(|(_, id)| *id).collect();
    let call = ControllerRequest::CreateTopics {
        topics: wanted,
        defaults: broker.topic_defaults(),
    };
    let decided: Vec<Result<(), ControllerError>> = if ids.is_empty() {
        Vec::new()
    } else {
        match broker.controller.call(call, request.validate_only).await {
            Ok(ControllerReply::Created(each)) => each,
            Ok(other) => vec![Err(unexpected(other)); ids.len()],
            Err(e) => vec![Err(e); ids.len()],
        }
    };
    let mut decided = decided.into_iter().zip(ids);
    let image = broker.metadata.image();
    let results = request
        .topics
        .iter()
        .zip(topics)
        .zip(outcomes)
        .map(|((t, topic), outcome)| {
            let outcome = outcome.unwrap_or_else(|| match decided.next() {
                Some((result, id)) => result.map(|()| id),
                None => Err(unexpected("fewer answers than topics")),
            });
            created_topic_result(
                broker,
                &image,
                version,
                request.validate_only,
                t,
                &topic,
                outcome,
            )
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn unexpected(what: impl std::fmt::Debug) -> ControllerError {
    tracing::error!(?what, "unexpected answer to CreateTopics");
    ControllerError {
        code: ResponseError::UnknownServerError.code(),
        message: "the controller's answer did not match the request".into(),
    }
}

/// One topic's result in a CreateTopics response.
fn created_topic_result(
    broker: &Broker,
    image: &MetadataImage,
    version: i16,
    validate_only: bool,
    t: &CreatableTopic,
    topic: &NewTopic,
    outcome: Result<Uuid, ControllerError>,
) -> CreatableTopicResult {
    let name = topic.name.as_str();
    let mut result = CreatableTopicResult::default()
        .with_name(t.name.clone())
        .with_error_message(None);
    match outcome {
        Ok(id) => {
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
                    broker, image, &overrides,
                )));
            }
            result = result
                .with_topic_id(if validate_only { Uuid::nil() } else { id })
                .with_num_partitions(partitions)
                .with_replication_factor(factor);
            if !validate_only {
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
    result
}

pub async fn delete_topics(
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
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let image = broker.metadata.image();
        let name = name.or_else(|| image.topic_by_id(&id).map(|t| t.name.clone()));
        let outcome = match &name {
            Some(name) => {
                let request = ControllerRequest::DeleteTopic { name: name.clone() };
                broker.controller.call(request, false).await.map(drop)
            }
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
        responses.push(match outcome {
            Ok(()) => {
                tracing::info!(topic = name.as_deref().unwrap_or_default(), "deleted topic");
                result.with_error_message(None)
            }
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(str_bytes(&e.message))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let assignments: Vec<Vec<i32>> = t
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        let decision = ControllerRequest::CreatePartitions {
            name: t.name.0.to_string(),
            count: t.count,
            assignments,
        };
        let outcome = broker
            .controller
            .call(decision, request.validate_only)
            .await;
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(_) => result.with_error_message(None),
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(str_bytes(&e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
