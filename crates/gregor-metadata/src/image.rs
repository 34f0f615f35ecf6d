//! The in-memory metadata image: the state the metadata log's records build.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use crate::records::{ConfigResource, MetadataRecord};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Fenced by the controller (no heartbeat): leads nothing, left out of Metadata.
    #[serde(default)]
    pub fenced: bool,
    /// The offset of the batch that last fenced it: a heartbeat that has applied that far
    /// unfences it. A fixed mark, not the log's end, so that a broker is let back while the
    /// metadata log keeps growing (Kafka's mark is the broker's registration).
    #[serde(default)]
    pub fenced_at: i64,
}

impl BrokerRegistration {
    /// Whether `other` names the same broker at the same place (fencing aside).
    pub fn same_endpoint(&self, other: &BrokerRegistration) -> bool {
        (self.node_id, &self.host, self.port, &self.rack)
            == (other.node_id, &other.host, other.port, &other.rack)
    }
}

/// A partition's replicas and leadership, as its newest `Partition` record states them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// The assignment; during a reassignment, the target replicas then those being removed.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Counts the partition's changes (Kafka's partition epoch): a leader's AlterPartition
    /// names the one it saw, so a proposal made on a stale state is refused.
    #[serde(default)]
    pub partition_epoch: i32,
    /// A reassignment's replicas that are new to the partition (`reassignment.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// A reassignment's replicas that leave once every target replica is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
    /// KIP-966's eligible leader replicas: replicas that left an ISR below
    /// `min.insync.replicas`, when the high watermark stopped, so they hold every committed
    /// record and may lead once the ISR is empty (`partition_change.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
    /// The leader before the ISR emptied (Kafka's LastKnownElr), for an operator choosing an
    /// unclean election.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<i32>,
}

impl PartitionImage {
    /// A partition as created: leader and partition epochs 0, no reassignment.
    pub fn new(replicas: Vec<i32>, isr: Vec<i32>, leader: i32) -> PartitionImage {
        PartitionImage {
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }
    }

    /// The record that states this partition as it is (a snapshot's).
    pub fn record(&self, topic_id: Uuid, partition: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            state: self.clone(),
        }
    }

    /// Whether a reassignment of the partition is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The record that gives this partition `leader` and `isr`: a new partition epoch, and a
    /// new leader epoch if the leader changes (an ISR change alone keeps the leader's epoch, as
    /// in KRaft, so that the leader's fetchers and producers are not fenced by it).
    pub fn change(
        &self,
        topic_id: Uuid,
        partition: i32,
        leader: i32,
        isr: Vec<i32>,
    ) -> MetadataRecord {
        let leader_epoch = self.leader_epoch + i32::from(leader != self.leader);
        MetadataRecord::Partition {
            topic_id,
            partition,
            state: PartitionImage {
                isr,
                leader,
                leader_epoch,
                partition_epoch: self.partition_epoch + 1,
                ..self.clone()
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

impl TopicImage {
    /// Internal topics (`__consumer_offsets`, `__transaction_state`) are flagged in Metadata.
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
    }
}

/// The dynamic config layers of an image that a topic's or broker's effective config is built
/// from, highest precedence first: topic overrides, this node's dynamic broker configs, the
/// cluster-wide dynamic default. `Default` is no dynamic config at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigLayers<'a> {
    pub topic: Option<&'a BTreeMap<String, String>>,
    dynamic: Option<&'a BTreeMap<ConfigResource, BTreeMap<String, String>>>,
}

impl<'a> ConfigLayers<'a> {
    /// Only topic overrides (tests, and topics not yet in an image).
    pub fn topic_only(topic: Option<&'a BTreeMap<String, String>>) -> ConfigLayers<'a> {
        ConfigLayers {
            topic,
            dynamic: None,
        }
    }

    /// The same broker layers with other topic overrides (a CreateTopics being validated).
    pub fn with_topic(self, topic: Option<&'a BTreeMap<String, String>>) -> ConfigLayers<'a> {
        ConfigLayers { topic, ..self }
    }

    /// The dynamic configs of one broker (`Some(node)`) or of the cluster default (`None`).
    pub fn broker(&self, node: Option<i32>) -> Option<&'a BTreeMap<String, String>> {
        self.dynamic?.get(&ConfigResource::Broker(node))
    }
}

/// The cluster as of `offset` in the metadata log. Cheap to clone for the few writers; readers
/// share it behind an `Arc`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names: HashMap<Uuid, String>,
    /// Ids of deleted topics: their directories, where a crash left any, are provably dead.
    pub removed_topics: HashSet<Uuid>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    pub next_producer_id: i64,
    /// Finalized feature levels (none at level 0).
    pub features: BTreeMap<String, i16>,
    /// The metadata log offset of the last record applied (-1: none); the finalized features'
    /// epoch, as Kafka reports it.
    pub offset: i64,
}

impl MetadataImage {
    /// An image of an empty metadata log.
    pub fn empty() -> MetadataImage {
        MetadataImage {
            offset: -1,
            ..MetadataImage::default()
        }
    }

    /// A feature's finalized level; 0 if it has none.
    pub fn feature_level(&self, name: &str) -> i16 {
        self.features.get(name).copied().unwrap_or(0)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    /// The overrides set on a topic, if any.
    pub fn topic_overrides(&self, topic: &str) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&ConfigResource::Topic(topic.to_string()))
    }

    /// Everything that decides a topic's effective configs: its overrides and the dynamic broker
    /// configs (per node and cluster default). The broker adds its static config and defaults.
    pub fn topic_configs(&self, topic: &str) -> ConfigLayers<'_> {
        ConfigLayers {
            topic: self.topic_overrides(topic),
            dynamic: Some(&self.configs),
        }
    }

    /// The dynamic broker configs, without a topic.
    pub fn broker_configs(&self) -> ConfigLayers<'_> {
        ConfigLayers {
            topic: None,
            dynamic: Some(&self.configs),
        }
    }

    /// The groups with configs, and their configs.
    pub fn group_configs(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, String>)> {
        self.configs
            .iter()
            .filter_map(|(resource, configs)| match resource {
                ConfigResource::Group(group) => Some((group.as_str(), configs)),
                _ => None,
            })
    }

    /// Records that rebuild this image (all but its offset) from an empty one: what a metadata
    /// snapshot holds.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if !self.cluster_id.is_empty() {
            records.push(MetadataRecord::Cluster {
                cluster_id: self.cluster_id.clone(),
            });
        }
        records.extend(
            self.features
                .iter()
                .map(|(name, &level)| MetadataRecord::FeatureLevel {
                    name: name.clone(),
                    level,
                }),
        );
        for b in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker {
                node_id: b.node_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
            });
            if b.fenced {
                records.push(MetadataRecord::FenceBroker { node_id: b.node_id });
            }
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                topic_id: topic.id,
            });
            records.extend(
                topic
                    .partitions
                    .iter()
                    .map(|(&partition, p)| p.record(topic.id, partition)),
            );
        }
        for (resource, configs) in &self.configs {
            records.extend(configs.iter().map(|(name, value)| MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            }));
        }
        if self.next_producer_id != 0 {
            records.push(MetadataRecord::ProducerIds {
                node_id: -1,
                next_block_start: self.next_producer_id,
            });
        }
        // A removed topic's id is remembered (its leftover directories are provably dead).
        let mut removed: Vec<_> = self.removed_topics.iter().copied().collect();
        removed.sort_unstable();
        records.extend(
            removed
                .into_iter()
                .map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
        );
        records
    }

    /// The brokers new replicas may be placed on: registered and not fenced, by node id.
    pub fn unfenced_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.node_id)
            .collect()
    }

    /// Applies one record. Records come from the controller, which validated them against the
    /// image they were decided on; a record naming something that no longer exists is ignored.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Cluster { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack,
            } => {
                // A new endpoint does not unfence: only the controller does, on a heartbeat.
                let (fenced, fenced_at) = self
                    .brokers
                    .get(node_id)
                    .map_or((false, 0), |b| (b.fenced, b.fenced_at));
                self.brokers.insert(
                    *node_id,
                    BrokerRegistration {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced,
                        fenced_at,
                    },
                );
            }
            MetadataRecord::UnregisterBroker { node_id } => {
                self.brokers.remove(node_id);
            }
            MetadataRecord::FenceBroker { node_id } | MetadataRecord::UnfenceBroker { node_id } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                    if broker.fenced {
                        broker.fenced_at = self.offset;
                    }
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            } => {
                let Some(name) = self.topic_names.get(topic_id) else {
                    return;
                };
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.partitions.insert(*partition, state.clone());
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(value) => {
                        configs.insert(name.clone(), value.clone());
                    }
                    None => {
                        configs.remove(name);
                    }
                }
                if configs.is_empty() {
                    self.configs.remove(resource);
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                self.removed_topics.insert(*topic_id);
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                    self.configs.remove(&ConfigResource::Topic(name));
                }
            }
            MetadataRecord::ProducerIds {
                next_block_start, ..
            } => self.next_producer_id = *next_block_start,
            MetadataRecord::FeatureLevel { name, level } => {
                if *level > 0 {
                    self.features.insert(name.clone(), *level);
                } else {
                    self.features.remove(name);
                }
            }
        }
    }
}
