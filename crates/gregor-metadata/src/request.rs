//! Controller requests as values. A broker that needs a metadata change hands one of these to the
//! active controller, which decides it on the newest image and answers once the records carrying
//! it are committed. Unlike a closure, a value can be queued, logged and sent to a controller on
//! another node, as the Kafka request it stands for (CreateTopics, AllocateProducerIds,
//! BrokerRegistration, ...).

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::configs::GroupConfigBounds;
use crate::controller::{
    allocate_producer_ids, alter_configs, config_resource, create_partitions, create_topic,
    delete_topic, incremental_alter_configs, ConfigChange, ControllerError, NewTopic,
    TopicDefaults,
};
use crate::features::{bootstrap_records, update_features, FeatureUpdate};
use crate::image::{BrokerRegistration, MetadataImage};
use crate::records::MetadataRecord;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// CreateTopics, one topic; `topic_id` is chosen by the caller so a retry is recognisable.
    CreateTopic {
        topic: NewTopic,
        defaults: TopicDefaults,
        topic_id: Uuid,
    },
    DeleteTopic {
        name: String,
    },
    /// CreatePartitions: grow `name` to `count` partitions.
    CreatePartitions {
        name: String,
        count: i32,
        assignments: Vec<Vec<i32>>,
    },
    /// AlterConfigs of one resource: the given configs replace its dynamic ones.
    AlterConfigs {
        resource_type: i8,
        name: String,
        configs: Vec<(String, Option<String>)>,
        group_bounds: GroupConfigBounds,
    },
    /// IncrementalAlterConfigs of one resource.
    IncrementalAlterConfigs {
        resource_type: i8,
        name: String,
        changes: Vec<ConfigChange>,
        group_bounds: GroupConfigBounds,
    },
    UpdateFeatures {
        updates: Vec<FeatureUpdate>,
    },
    /// A block of `block` producer ids for `node_id`, none below `floor`.
    AllocateProducerIds {
        node_id: i32,
        block: i64,
        floor: i64,
    },
    /// A broker's endpoint; nothing is written when the registration is the recorded one.
    RegisterBroker(BrokerRegistration),
    /// A node's start: a new metadata log takes `cluster_id` and the bootstrap feature levels
    /// (features never set are set); a log of another cluster refuses it.
    Format {
        cluster_id: String,
    },
}

/// What the controller answers to a request it carried out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ControllerReply {
    /// Done (or, when validating only, acceptable); `changed` counts the records it took (0:
    /// nothing to change).
    Done { changed: usize },
    /// The first id of the allocated block.
    ProducerIds { start: i64 },
}

/// Decides `request` on `image`: the records that carry it out (none when `validate_only`) and
/// the reply, or the Kafka error that refuses it. Pure, like the decisions it dispatches to.
pub fn decide(
    image: &MetadataImage,
    request: &ControllerRequest,
    validate_only: bool,
) -> Result<(Vec<MetadataRecord>, ControllerReply), ControllerError> {
    let records = match request {
        ControllerRequest::CreateTopic {
            topic,
            defaults,
            topic_id,
        } => create_topic(image, topic, defaults, *topic_id)?,
        ControllerRequest::DeleteTopic { name } => delete_topic(image, name)?,
        ControllerRequest::CreatePartitions {
            name,
            count,
            assignments,
        } => create_partitions(image, name, *count, assignments.clone())?,
        ControllerRequest::AlterConfigs {
            resource_type,
            name,
            configs,
            group_bounds,
        } => {
            let resource = config_resource(image, *resource_type, name)?;
            alter_configs(image, &resource, configs, group_bounds)?
        }
        ControllerRequest::IncrementalAlterConfigs {
            resource_type,
            name,
            changes,
            group_bounds,
        } => {
            let resource = config_resource(image, *resource_type, name)?;
            incremental_alter_configs(image, &resource, changes, group_bounds)?
        }
        ControllerRequest::UpdateFeatures { updates } => {
            update_features(image, updates, validate_only)?
        }
        ControllerRequest::AllocateProducerIds {
            node_id,
            block,
            floor,
        } => {
            let (start, record) = allocate_producer_ids(image, *node_id, *block, *floor);
            let records = if validate_only { vec![] } else { vec![record] };
            return Ok((records, ControllerReply::ProducerIds { start }));
        }
        ControllerRequest::RegisterBroker(registration) => {
            if image.brokers.get(&registration.node_id) == Some(registration) {
                vec![]
            } else {
                vec![MetadataRecord::RegisterBroker {
                    node_id: registration.node_id,
                    host: registration.host.clone(),
                    port: registration.port,
                    rack: registration.rack.clone(),
                }]
            }
        }
        ControllerRequest::Format { cluster_id } => {
            let mut records = Vec::new();
            if image.cluster_id.is_empty() {
                records.push(MetadataRecord::Cluster {
                    cluster_id: cluster_id.clone(),
                });
            } else if image.cluster_id != *cluster_id {
                return Err(ControllerError {
                    code: ResponseError::InconsistentClusterId.code(),
                    message: format!(
                        "the metadata log is of cluster {}, not {cluster_id}",
                        image.cluster_id
                    ),
                });
            }
            records.extend(bootstrap_records(image));
            records
        }
    };
    let changed = records.len();
    let records = if validate_only { vec![] } else { records };
    Ok((records, ControllerReply::Done { changed }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::{image_with_broker as image, new_topic, DEFAULTS};

    fn create(name: &str) -> ControllerRequest {
        ControllerRequest::CreateTopic {
            topic: new_topic(name, 2, -1),
            defaults: DEFAULTS,
            topic_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn validating_only_writes_nothing_but_answers_the_same() {
        let image = image();
        let (records, reply) = decide(&image, &create("t"), false).unwrap();
        assert_eq!(records.len(), 3, "a topic and two partitions");
        assert_eq!(reply, ControllerReply::Done { changed: 3 });
        let (records, reply) = decide(&image, &create("t"), true).unwrap();
        assert!(records.is_empty());
        assert_eq!(reply, ControllerReply::Done { changed: 3 });
        let refused = decide(&image, &create("bad name!"), true).unwrap_err();
        assert_eq!(refused.code, 17, "INVALID_TOPIC_EXCEPTION");
    }

    #[test]
    fn a_known_registration_writes_nothing() {
        let image = image();
        let same = ControllerRequest::RegisterBroker(image.brokers[&1].clone());
        assert_eq!(decide(&image, &same, false).unwrap().0, vec![]);
        let mut moved = image.brokers[&1].clone();
        moved.port = 9093;
        let (records, _) =
            decide(&image, &ControllerRequest::RegisterBroker(moved), false).unwrap();
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn producer_id_blocks_start_at_the_floor_or_after_the_last() {
        let mut image = image();
        let allocate = |floor| ControllerRequest::AllocateProducerIds {
            node_id: 1,
            block: 1000,
            floor,
        };
        let (records, reply) = decide(&image, &allocate(0), false).unwrap();
        assert_eq!(reply, ControllerReply::ProducerIds { start: 0 });
        image.apply(&records[0]);
        let (_, reply) = decide(&image, &allocate(0), false).unwrap();
        assert_eq!(reply, ControllerReply::ProducerIds { start: 1000 });
        let (_, reply) = decide(&image, &allocate(5000), false).unwrap();
        assert_eq!(reply, ControllerReply::ProducerIds { start: 5000 });
    }

    #[test]
    fn format_sets_the_cluster_once_and_refuses_another() {
        let mut image = image();
        let format = |id: &str| ControllerRequest::Format {
            cluster_id: id.into(),
        };
        let (records, _) = decide(&image, &format("abc"), false).unwrap();
        assert!(records.len() > 1, "the cluster id and the feature levels");
        for record in &records {
            image.apply(record);
        }
        assert_eq!(image.cluster_id, "abc");
        assert_eq!(decide(&image, &format("abc"), false).unwrap().0, vec![]);
        let refused = decide(&image, &format("xyz"), false).unwrap_err();
        assert_eq!(refused.code, 104, "INCONSISTENT_CLUSTER_ID");
    }
}
