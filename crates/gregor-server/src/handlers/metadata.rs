//! Metadata: brokers, topics and partition leadership from the image; auto-creates topics that
//! clients ask for when `auto.create.topics.enable` allows it.

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;

use gregor_metadata::controller::validate_topic_name;
use gregor_metadata::{MetadataImage, TopicImage};
use gregor_protocol::kafka::messages::metadata_request::MetadataRequestTopic;
use gregor_protocol::kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use gregor_protocol::kafka::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use gregor_protocol::kafka::protocol::StrBytes;

use super::{str_bytes, topics};
use crate::broker::Broker;

/// Kafka's value for "authorized operations were not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        // Clients are sent only to brokers the controller has not fenced, as in Kafka.
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect()
}

/// A topic's partitions; one whose log is offline here shows no leader, as Kafka shows a partition
/// whose leader's log dir failed, and one without a leader (its broker is fenced) says so:
/// LEADER_NOT_AVAILABLE, with the fenced replicas offline.
fn describe(broker: &Broker, image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
            let described = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr));
            if broker.replicas.is_offline(&topic.name, index) {
                described
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1))
                    .with_offline_replicas(vec![BrokerId(broker.node_id)])
            } else if p.leader < 0 {
                let fenced = p
                    .replicas
                    .iter()
                    .filter(|b| image.brokers.get(b).is_none_or(|r| r.fenced))
                    .map(|&b| BrokerId(b))
                    .collect();
                described
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_offline_replicas(fenced)
            } else {
                described
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn topic_error(name: Option<StrBytes>, id: uuid::Uuid, error: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(TopicName))
        .with_topic_id(id)
        .with_error_code(error)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// One wanted topic: described, refused, or (if allowed) created and then described. `image`
/// becomes the newest after a creation.
async fn describe_wanted(
    broker: &Broker,
    image: &mut Arc<MetadataImage>,
    t: MetadataRequestTopic,
    may_create: bool,
) -> MetadataResponseTopic {
    let Some(name) = t.name.map(|n| n.0) else {
        return match image.topic_by_id(&t.topic_id) {
            Some(topic) => describe(broker, image, topic),
            None => topic_error(None, t.topic_id, ResponseError::UnknownTopicId.code()),
        };
    };
    if let Some(topic) = image.topics.get(name.as_str()) {
        return describe(broker, image, topic);
    }
    if validate_topic_name(&name).is_err() {
        return topic_error(
            Some(name),
            uuid::Uuid::nil(),
            ResponseError::InvalidTopicException.code(),
        );
    }
    if !may_create {
        return topic_error(
            Some(name),
            uuid::Uuid::nil(),
            ResponseError::UnknownTopicOrPartition.code(),
        );
    }
    match topics::create_with_defaults(broker, &name).await {
        Ok(()) => {
            *image = broker.metadata.image();
            image
                .topics
                .get(name.as_str())
                .map(|t| describe(broker, image, t))
                .unwrap_or_else(|| {
                    topic_error(
                        Some(name),
                        uuid::Uuid::nil(),
                        ResponseError::UnknownTopicOrPartition.code(),
                    )
                })
        }
        Err(error) => topic_error(Some(name), uuid::Uuid::nil(), error),
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    // Before v4 every request may auto-create; since v4 the client says.
    let may_create = (version < 4 || request.allow_auto_topic_creation)
        && broker.config.get_bool("auto.create.topics.enable");
    let mut image = broker.metadata.image();
    let topics = match request.topics {
        // v0 sends an empty list for "all topics"; later versions send null.
        None => image
            .topics
            .values()
            .map(|t| describe(broker, &image, t))
            .collect(),
        Some(wanted) if wanted.is_empty() && version == 0 => image
            .topics
            .values()
            .map(|t| describe(broker, &image, t))
            .collect(),
        Some(wanted) => {
            let mut described = Vec::with_capacity(wanted.len());
            for t in wanted {
                described.push(describe_wanted(broker, &mut image, t, may_create).await);
            }
            described
        }
    };
    MetadataResponse::default()
        .with_brokers(brokers(&image))
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        // As a KRaft broker does (KIP-590): clients send admin requests to a live broker, which
        // forwards them to the active controller; this broker is live.
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
