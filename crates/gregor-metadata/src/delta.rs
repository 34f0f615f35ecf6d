//! What committed records changed. The metadata loader hands this to the publishers (the log
//! manager, the coordinators), so that their work follows the size of a change, not the size of
//! the cluster: a new partition opens one log, it does not revisit every topic.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::{ConfigResource, MetadataRecord};

/// A deleted topic as it was: enough to find what it left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct RemovedTopic {
    pub id: Uuid,
    pub name: String,
    pub partitions: Vec<i32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetadataDelta {
    pub removed_topics: Vec<RemovedTopic>,
    /// Partitions created or changed (replicas, ISR, leader, epoch), by topic id and index.
    pub changed_partitions: BTreeSet<(Uuid, i32)>,
    /// Resources whose dynamic configs changed.
    pub changed_configs: BTreeSet<ConfigResource>,
    /// Brokers that registered or changed their registration.
    pub changed_brokers: BTreeSet<i32>,
    pub features_changed: bool,
}

impl MetadataDelta {
    /// All of `image` as if it had just been created: what a node publishes when it starts, so
    /// that starting and following changes are one code path.
    pub fn everything(image: &MetadataImage) -> MetadataDelta {
        MetadataDelta {
            removed_topics: Vec::new(),
            changed_partitions: image
                .topics
                .values()
                .flat_map(|t| t.partitions.keys().map(|&p| (t.id, p)))
                .collect(),
            changed_configs: image.configs.keys().cloned().collect(),
            changed_brokers: image.brokers.keys().copied().collect(),
            features_changed: !image.features.is_empty(),
        }
    }

    /// What differs from `old` to `new`: what a node publishes when it replaces its image
    /// with a snapshot from the leader.
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> MetadataDelta {
        let removed_topics = old
            .topics
            .values()
            .filter(|t| new.topic_by_id(&t.id).is_none())
            .map(|t| RemovedTopic {
                id: t.id,
                name: t.name.clone(),
                partitions: t.partitions.keys().copied().collect(),
            })
            .collect();
        let changed_partitions = new
            .topics
            .values()
            .flat_map(|t| {
                let before = old.topic_by_id(&t.id);
                t.partitions
                    .iter()
                    .filter(move |(index, p)| {
                        before.and_then(|b| b.partitions.get(index)) != Some(p)
                    })
                    .map(move |(&index, _)| (t.id, index))
            })
            .collect();
        let resources: BTreeSet<&ConfigResource> =
            old.configs.keys().chain(new.configs.keys()).collect();
        MetadataDelta {
            removed_topics,
            changed_partitions,
            changed_configs: resources
                .into_iter()
                .filter(|r| old.configs.get(*r) != new.configs.get(*r))
                .cloned()
                .collect(),
            changed_brokers: new
                .brokers
                .iter()
                .filter(|(id, b)| old.brokers.get(id) != Some(b))
                .map(|(&id, _)| id)
                .collect(),
            features_changed: old.features != new.features,
        }
    }

    /// Whether the dynamic broker configs (cluster default or node `node_id`'s) changed: they
    /// are a layer of every topic's config.
    pub fn broker_configs_changed(&self, node_id: i32) -> bool {
        self.changed_configs.iter().any(|r| {
            matches!(r, ConfigResource::Broker(None)) || *r == ConfigResource::Broker(Some(node_id))
        })
    }

    /// Whether anything about topics changed: created, grown, deleted, or reassigned.
    pub fn topics_changed(&self) -> bool {
        !self.removed_topics.is_empty() || !self.changed_partitions.is_empty()
    }

    /// Whether some group's configs changed.
    pub fn group_configs_changed(&self) -> bool {
        self.changed_configs
            .iter()
            .any(|r| matches!(r, ConfigResource::Group(_)))
    }

    /// Notes what `record`, about to be applied to `image`, changes.
    fn note(&mut self, image: &MetadataImage, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker { node_id, .. }
            | MetadataRecord::FenceBroker { node_id }
            | MetadataRecord::UnfenceBroker { node_id }
            | MetadataRecord::UnregisterBroker { node_id } => {
                self.changed_brokers.insert(*node_id);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                ..
            } if image.topic_names.contains_key(topic_id) => {
                self.changed_partitions.insert((*topic_id, *partition));
            }
            MetadataRecord::Config { resource, .. } => {
                self.changed_configs.insert(resource.clone());
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(topic) = image.topic_by_id(topic_id) {
                    self.changed_partitions.retain(|(id, _)| id != topic_id);
                    self.changed_configs
                        .remove(&ConfigResource::Topic(topic.name.clone()));
                    self.removed_topics.push(RemovedTopic {
                        id: *topic_id,
                        name: topic.name.clone(),
                        partitions: topic.partitions.keys().copied().collect(),
                    });
                }
            }
            MetadataRecord::FeatureLevel { .. } => self.features_changed = true,
            MetadataRecord::Cluster { .. }
            | MetadataRecord::Topic { .. }
            | MetadataRecord::Partition { .. }
            | MetadataRecord::ProducerIds { .. } => {}
        }
    }
}

impl MetadataImage {
    /// Applies committed records and says what they changed. `last_offset` is the metadata log
    /// offset of the last one.
    pub fn apply_committed(
        &mut self,
        records: &[MetadataRecord],
        last_offset: i64,
    ) -> MetadataDelta {
        let mut delta = MetadataDelta::default();
        // The records see the offset of their own batch.
        self.offset = last_offset;
        for record in records {
            delta.note(self, record);
            self.apply(record);
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PartitionImage;

    fn topic(name: &str, id: Uuid, partitions: i32) -> Vec<MetadataRecord> {
        let mut records = vec![MetadataRecord::Topic {
            name: name.into(),
            topic_id: id,
        }];
        records.extend(
            (0..partitions)
                .map(|partition| PartitionImage::new(vec![1], vec![1], 1).record(id, partition)),
        );
        records
    }

    #[test]
    fn a_delta_names_only_what_changed() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut image = MetadataImage::empty();
        let first = image.apply_committed(&topic("a", a, 2), 2);
        assert_eq!(first.changed_partitions, BTreeSet::from([(a, 0), (a, 1)]));
        assert_eq!(image.offset, 2);

        let mut records = topic("b", b, 1);
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic("a".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        });
        let second = image.apply_committed(&records, 5);
        assert_eq!(second.changed_partitions, BTreeSet::from([(b, 0)]));
        assert_eq!(
            second.changed_configs,
            BTreeSet::from([ConfigResource::Topic("a".into())])
        );
        assert!(!second.broker_configs_changed(1));
        assert!(second.topics_changed());

        let removed = image.apply_committed(&[MetadataRecord::RemoveTopic { topic_id: a }], 6);
        let gone = RemovedTopic {
            id: a,
            name: "a".into(),
            partitions: vec![0, 1],
        };
        assert_eq!(removed.removed_topics, vec![gone]);
        assert!(removed.changed_partitions.is_empty());
        assert!(!image.topics.contains_key("a"));
    }

    #[test]
    fn a_topic_created_and_deleted_in_one_batch_leaves_only_the_deletion() {
        let a = Uuid::new_v4();
        let mut records = topic("a", a, 3);
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic("a".into()),
            name: "retention.ms".into(),
            value: Some("1".into()),
        });
        records.push(MetadataRecord::RemoveTopic { topic_id: a });
        let delta = MetadataImage::empty().apply_committed(&records, 4);
        assert!(delta.changed_partitions.is_empty());
        assert!(delta.changed_configs.is_empty());
        assert_eq!(delta.removed_topics.len(), 1);
        assert_eq!(delta.removed_topics[0].partitions, vec![0, 1, 2]);
    }

    #[test]
    fn broker_configs_and_groups_and_features_are_flagged() {
        let mut image = MetadataImage::empty();
        let config = |resource| MetadataRecord::Config {
            resource,
            name: "x".into(),
            value: Some("1".into()),
        };
        let delta = image.apply_committed(&[config(ConfigResource::Broker(None))], 0);
        assert!(delta.broker_configs_changed(1));
        let delta = image.apply_committed(&[config(ConfigResource::Broker(Some(2)))], 1);
        assert!(!delta.broker_configs_changed(1));
        assert!(delta.broker_configs_changed(2));
        let delta = image.apply_committed(&[config(ConfigResource::Group("g".into()))], 2);
        assert!(delta.group_configs_changed());
        assert!(!delta.topics_changed());
        let delta = image.apply_committed(
            &[MetadataRecord::FeatureLevel {
                name: "group.version".into(),
                level: 1,
            }],
            3,
        );
        assert!(delta.features_changed);
        assert_eq!(MetadataDelta::everything(&image).changed_configs.len(), 3);
    }

    #[test]
    fn everything_lists_every_partition_and_broker() {
        let a = Uuid::new_v4();
        let mut image = MetadataImage::empty();
        let mut records = topic("a", a, 3);
        records.push(MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "h".into(),
            port: 1,
            rack: None,
        });
        let applied = image.apply_committed(&records, 3);
        assert_eq!(MetadataDelta::everything(&image), applied);
    }

    #[test]
    fn an_image_rebuilds_from_its_records() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut image = MetadataImage::empty();
        let mut records = vec![
            MetadataRecord::Cluster {
                cluster_id: "c".into(),
            },
            MetadataRecord::RegisterBroker {
                node_id: 1,
                host: "h".into(),
                port: 9,
                rack: Some("r".into()),
            },
            MetadataRecord::FeatureLevel {
                name: "group.version".into(),
                level: 1,
            },
            MetadataRecord::ProducerIds {
                node_id: 1,
                next_block_start: 2000,
            },
        ];
        records.extend(topic("a", a, 2));
        records.extend(topic("b", b, 1));
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Topic("a".into()),
            name: "retention.ms".into(),
            value: Some("5".into()),
        });
        records.push(MetadataRecord::Config {
            resource: ConfigResource::Broker(None),
            name: "log.retention.ms".into(),
            value: Some("6".into()),
        });
        records.push(MetadataRecord::RemoveTopic { topic_id: b });
        image.apply_committed(&records, 20);
        let mut rebuilt = MetadataImage::empty();
        rebuilt.apply_committed(&image.to_records(), 20);
        assert_eq!(rebuilt, image);
        assert!(rebuilt.removed_topics.contains(&b));
    }

    #[test]
    fn between_two_images_is_what_changed() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut old = MetadataImage::empty();
        let mut records = topic("a", a, 2);
        records.extend(topic("b", b, 1));
        old.apply_committed(&records, 3);
        let mut new = old.clone();
        let mut changes = vec![MetadataRecord::RemoveTopic { topic_id: b }];
        changes.extend(topic("c", c, 1));
        let led_again = PartitionImage {
            leader_epoch: 1,
            partition_epoch: 1,
            ..PartitionImage::new(vec![1], vec![1], 1)
        };
        changes.push(led_again.record(a, 1));
        changes.push(MetadataRecord::Config {
            resource: ConfigResource::Topic("a".into()),
            name: "retention.ms".into(),
            value: Some("1".into()),
        });
        let applied = new.apply_committed(&changes, 9);
        let between = MetadataDelta::between(&old, &new);
        assert_eq!(between.changed_partitions, BTreeSet::from([(a, 1), (c, 0)]));
        assert_eq!(between.removed_topics.len(), 1);
        assert_eq!(between.removed_topics[0].id, b);
        assert_eq!(between, applied);
    }
}
