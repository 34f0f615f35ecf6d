//! Controller decisions: pure functions from the current image and a request to the records that
//! carry it out, or the Kafka error that refuses it. They read no clock and do no I/O.

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::client_metrics::{self, CLIENT_METRICS_CONFIGS};
use crate::configs::{
    dynamic_broker_config, group_config, topic_config, ConfigDef, ConfigKind, GroupConfigBounds,
};
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::partition_change::clear_elr;
use crate::records::{ConfigResource, MetadataRecord};

/// A refusal with Kafka's error code and a message for the client.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica assignment by partition index, if given.
    pub assignments: Vec<Vec<i32>>,
    pub configs: Vec<(String, Option<String>)>,
}

/// Broker defaults a topic creation falls back on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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
    let set: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|(n, v)| Some((n.clone(), v.clone()?)))
        .collect();
    check_topic_config_combination(&set)
}

/// Kafka's `LogConfig.validateValues`: settings that are valid alone but not together. Unset
/// values count as their defaults.
fn check_topic_config_combination(
    configs: &BTreeMap<String, String>,
) -> Result<(), ControllerError> {
    let long = |name: &str| -> i64 {
        configs
            .get(name)
            .map(String::as_str)
            .or_else(|| topic_config(name).map(|d| d.default))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_default()
    };
    let (min_lag, max_lag) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"));
    if min_lag > max_lag {
        return refuse(
            ResponseError::InvalidConfig.code(),
            format!("conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"),
        );
    }
    Ok(())
}

/// Kafka's resource types in the config APIs.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;
pub const RESOURCE_CLIENT_METRICS: i8 = 16;

/// An IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType`, by wire code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

/// One change of an IncrementalAlterConfigs resource.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
    pub value: Option<String>,
}

/// The resource a config request names: an existing topic, a registered broker (by id), the
/// cluster-wide broker default (empty name), or a group (which need not exist yet, as in Kafka).
pub fn config_resource(
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
) -> Result<ConfigResource, ControllerError> {
    match resource_type {
        RESOURCE_TOPIC => {
            if image.topics.contains_key(name) {
                Ok(ConfigResource::Topic(name.to_string()))
            } else {
                refuse(
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("The topic '{name}' does not exist."),
                )
            }
        }
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigResource::Broker(None)),
        RESOURCE_BROKER => match name.trim().parse::<i32>() {
            Ok(id) if image.brokers.contains_key(&id) => Ok(ConfigResource::Broker(Some(id))),
            Ok(id) => refuse(
                ResponseError::InvalidRequest.code(),
                format!("Broker {id} is not registered"),
            ),
            Err(_) => refuse(
                ResponseError::InvalidRequest.code(),
                format!("Unable to parse broker name as an integer: {name}"),
            ),
        },
        RESOURCE_GROUP if name.is_empty() => refuse(
            ResponseError::InvalidRequest.code(),
            "Group name must not be empty",
        ),
        RESOURCE_GROUP => Ok(ConfigResource::Group(name.to_string())),
        RESOURCE_CLIENT_METRICS if name.is_empty() => refuse(
            ResponseError::InvalidRequest.code(),
            "Subscription name can't be empty",
        ),
        RESOURCE_CLIENT_METRICS => Ok(ConfigResource::ClientMetrics(name.to_string())),
        other => refuse(
            ResponseError::InvalidRequest.code(),
            format!("Unsupported resource type {other}"),
        ),
    }
}

/// The definition a config of `resource` is validated against. Broker configs that Kafka does
/// not allow to change at run time are refused, as Kafka's `DynamicBrokerConfig` refuses them.
fn alterable_config(resource: &ConfigResource, name: &str) -> Result<ConfigDef, ControllerError> {
    match resource {
        ConfigResource::Topic(_) => topic_config(name).copied().map_or_else(
            || {
                refuse(
                    ResponseError::InvalidConfig.code(),
                    format!("Unknown topic config name: {name}"),
                )
            },
            Ok,
        ),
        ConfigResource::Broker(_) => dynamic_broker_config(name).map_or_else(
            || {
                refuse(
                    ResponseError::InvalidConfig.code(),
                    format!("Cannot update these configs dynamically: Set({name})"),
                )
            },
            Ok,
        ),
        ConfigResource::Group(_) => group_config(name).copied().map_or_else(
            || {
                refuse(
                    ResponseError::InvalidConfig.code(),
                    format!("Unknown group config name: {name}"),
                )
            },
            Ok,
        ),
        ConfigResource::ClientMetrics(_) => CLIENT_METRICS_CONFIGS
            .iter()
            .find(|d| d.name == name)
            .copied()
            .map_or_else(
                || {
                    refuse(
                        ResponseError::InvalidRequest.code(),
                        format!("Unknown client metrics configuration: {name}"),
                    )
                },
                Ok,
            ),
    }
}

fn check_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ControllerError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return refuse(
                ResponseError::InvalidRequest.code(),
                format!("Error due to duplicate config keys: {name}"),
            );
        }
    }
    Ok(())
}

fn validate_value(def: &ConfigDef, value: &str) -> Result<(), ControllerError> {
    def.validate(value)
        .or_else(|message| refuse(ResponseError::InvalidConfig.code(), message))
}

/// The records that turn `old` into `new` for one resource.
fn config_diff(
    resource: &ConfigResource,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| (k, None));
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| (k, Some(v.clone())));
    removed
        .chain(changed)
        .map(|(name, value)| MetadataRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value,
        })
        .collect()
}

fn checked_diff(
    image: &MetadataImage,
    resource: &ConfigResource,
    new: &BTreeMap<String, String>,
    group_bounds: &GroupConfigBounds,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match resource {
        ConfigResource::Topic(_) => check_topic_config_combination(new)?,
        ConfigResource::Group(_) => group_bounds
            .check(new)
            .or_else(|message| refuse(ResponseError::InvalidConfig.code(), message))?,
        ConfigResource::ClientMetrics(_) => client_metrics::validate(new)?,
        ConfigResource::Broker(_) => {}
    }
    let old = image.configs.get(resource).cloned().unwrap_or_default();
    let mut records = config_diff(resource, &old, new);
    let min_isr_changed = records
        .iter()
        .any(|r| matches!(r, MetadataRecord::Config { name, .. } if name == "min.insync.replicas"));
    let topics: Vec<&TopicImage> = match resource {
        _ if !min_isr_changed => Vec::new(),
        ConfigResource::Topic(name) => image.topics.get(name).into_iter().collect(),
        ConfigResource::Broker(_) => image.topics.values().collect(),
        _ => Vec::new(),
    };
    records.extend(topics.into_iter().flat_map(clear_elr));
    Ok(records)
}

/// AlterConfigs: the given configs replace every dynamic config of the resource. Group configs
/// are checked against the broker's `group_bounds`.
pub fn alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    configs: &[(String, Option<String>)],
    group_bounds: &GroupConfigBounds,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_duplicates(configs.iter().map(|(n, _)| n.as_str()))?;
    let mut new = BTreeMap::new();
    for (name, value) in configs {
        let def = alterable_config(resource, name)?;
        let Some(value) = value else {
            return refuse(
                ResponseError::InvalidRequest.code(),
                format!("Null value not supported for : {name}"),
            );
        };
        validate_value(&def, value)?;
        new.insert(name.clone(), value.clone());
    }
    checked_diff(image, resource, &new, group_bounds)
}

/// The items of a list config (`compact,delete`).
fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(String::from)
        .collect()
}

/// IncrementalAlterConfigs: SET and DELETE one config each; APPEND and SUBTRACT add or remove
/// items of a list config, starting from the resource's current value, else the config's default.
pub fn incremental_alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    changes: &[ConfigChange],
    group_bounds: &GroupConfigBounds,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_duplicates(changes.iter().map(|c| c.name.as_str()))?;
    let mut new = image.configs.get(resource).cloned().unwrap_or_default();
    for change in changes {
        let name = &change.name;
        let def = alterable_config(resource, name)?;
        if change.op == ConfigOp::Delete {
            new.remove(name);
            continue;
        }
        let Some(value) = &change.value else {
            return refuse(
                ResponseError::InvalidRequest.code(),
                format!("Null value not supported for : {name}"),
            );
        };
        let value = match change.op {
            ConfigOp::Set | ConfigOp::Delete => value.clone(),
            ConfigOp::Append | ConfigOp::Subtract => {
                let op = if change.op == ConfigOp::Append {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                if !matches!(def.kind, ConfigKind::ChoiceList(_)) {
                    return refuse(
                        ResponseError::InvalidConfig.code(),
                        format!("Can't {op} to key {name} because its type is not LIST."),
                    );
                }
                let mut items = list_items(new.get(name).map_or(def.default, String::as_str));
                for item in list_items(value) {
                    if change.op == ConfigOp::Append {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    } else {
                        items.retain(|i| *i != item);
                    }
                }
                items.join(",")
            }
        };
        validate_value(&def, &value)?;
        new.insert(name.clone(), value);
    }
    checked_diff(image, resource, &new, group_bounds)
}

/// Where the replicas of a topic's new partitions go, over the unfenced brokers. The brokers are
/// ordered so that racks (`broker.rack`) alternate: each rack's first broker, then each rack's
/// second, and so on. Partition `p`'s leader is the broker at `start + p` in that order, so the
/// leaders of a topic rotate over every broker, and `start` comes from the topic id, so that
/// topics do not all begin on the same broker. Each further replica is the next broker in the
/// order whose rack the partition does not use yet or, once it uses every rack, the next broker
/// it does not use yet (Kafka's rack-aware assignment, without its shifting of followers).
struct Placement {
    order: Vec<(i32, Option<String>)>,
    start: usize,
}

impl Placement {
    fn new(image: &MetadataImage, topic_id: Uuid) -> Placement {
        let mut by_rack: BTreeMap<Option<String>, Vec<i32>> = BTreeMap::new();
        for broker in image.brokers.values().filter(|b| !b.fenced) {
            by_rack
                .entry(broker.rack.clone())
                .or_default()
                .push(broker.node_id);
        }
        let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
        let order: Vec<(i32, Option<String>)> = (0..deepest)
            .flat_map(|i| {
                by_rack
                    .iter()
                    .filter_map(move |(rack, ids)| ids.get(i).map(|id| (*id, rack.clone())))
            })
            .collect();
        let start = (topic_id.as_u128() % order.len().max(1) as u128) as usize;
        Placement { order, start }
    }

    fn brokers(&self) -> usize {
        self.order.len()
    }

    /// The replicas of partition `partition`, its leader first (`factor` ≤ the brokers).
    fn replicas(&self, partition: i32, factor: usize) -> Vec<i32> {
        let n = self.order.len();
        let first = (self.start + partition as usize) % n;
        let walk = || (1..n).map(move |step| (first + step) % n);
        let mut chosen = vec![first];
        for i in walk() {
            let rack = &self.order[i].1;
            if chosen.len() < factor && chosen.iter().all(|c| self.order[*c].1 != *rack) {
                chosen.push(i);
            }
        }
        for i in walk() {
            if chosen.len() < factor && !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen.into_iter().map(|i| self.order[i].0).collect()
    }
}

/// New partitions: empty logs, so every replica on an unfenced broker is in sync (as in
/// Kafka); the first of them leads. A partition whose replicas are all fenced starts without a
/// leader and with its first replica as the ISR, which takes the lead when unfenced.
fn partition_records(
    image: &MetadataImage,
    topic_id: Uuid,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> Vec<MetadataRecord> {
    let usable = |r: &&i32| image.brokers.get(r).is_some_and(|b| !b.fenced);
    replicas
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| {
            let isr: Vec<i32> = replicas.iter().filter(usable).copied().collect();
            let (isr, leader) = match isr.first() {
                Some(&leader) => (isr, leader),
                None => (vec![replicas[0]], -1),
            };
            PartitionImage::new(replicas, isr, leader).record(topic_id, first + i as i32)
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
    validate_topic_name(&request.name)?;
    if image.topics.contains_key(&request.name) {
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
    let placement = Placement::new(image, topic_id);
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
        if factor as usize > placement.brokers() {
            return refuse(
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                    "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only {} broker(s) are registered.",
                    placement.brokers()
                ),
            );
        }
        (0..partitions)
            .map(|p| placement.replicas(p, factor as usize))
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
    records.extend(partition_records(image, topic_id, 0, replicas));
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
        let placement = Placement::new(image, topic.id);
        if factor > placement.brokers() {
            return refuse(
                ResponseError::InvalidReplicationFactor.code(),
                "Not enough live brokers for the topic's replication factor",
            );
        }
        (current..count)
            .map(|p| placement.replicas(p, factor))
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
    Ok(partition_records(image, topic.id, current, replicas))
}

/// Producer ids are handed out by blocks recorded in the log, so none repeats after a restart.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    node_id: i32,
    block: i64,
    floor: i64,
) -> (i64, MetadataRecord) {
    let start = image.next_producer_id.max(floor);
    (
        start,
        MetadataRecord::ProducerIds {
            node_id,
            next_block_start: start.saturating_add(block),
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn image_with_broker() -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        });
        image
    }

    pub(crate) fn new_topic(name: &str, partitions: i32, factor: i16) -> NewTopic {
        NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: factor,
            assignments: vec![],
            configs: vec![],
        }
    }

    pub(crate) const DEFAULTS: TopicDefaults = TopicDefaults {
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

    fn image_with_topic(name: &str) -> MetadataImage {
        let mut image = image_with_broker();
        for r in create_topic(&image, &new_topic(name, 1, 1), &DEFAULTS, Uuid::new_v4()).unwrap() {
            image.apply(&r);
        }
        image
    }

    fn change(name: &str, op: ConfigOp, value: Option<&str>) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            op,
            value: value.map(String::from),
        }
    }

    fn incremental(
        image: &mut MetadataImage,
        resource: &ConfigResource,
        changes: &[ConfigChange],
    ) -> Result<usize, ControllerError> {
        let records =
            incremental_alter_configs(image, resource, changes, &GroupConfigBounds::default())?;
        for r in &records {
            image.apply(r);
        }
        Ok(records.len())
    }

    #[test]
    fn incremental_set_delete_append_subtract() {
        let mut image = image_with_topic("t");
        let topic = config_resource(&image, RESOURCE_TOPIC, "t").unwrap();
        let configs =
            |image: &MetadataImage| image.topic_overrides("t").cloned().unwrap_or_default();

        incremental(
            &mut image,
            &topic,
            &[change("retention.ms", ConfigOp::Set, Some("1000"))],
        )
        .unwrap();
        assert_eq!(configs(&image)["retention.ms"], "1000");
        // Setting the same value again writes nothing.
        assert_eq!(
            incremental(
                &mut image,
                &topic,
                &[change("retention.ms", ConfigOp::Set, Some("1000"))]
            ),
            Ok(0)
        );

        // APPEND starts from the default ("delete") when the topic has no override.
        incremental(
            &mut image,
            &topic,
            &[change("cleanup.policy", ConfigOp::Append, Some("compact"))],
        )
        .unwrap();
        assert_eq!(configs(&image)["cleanup.policy"], "delete,compact");
        incremental(
            &mut image,
            &topic,
            &[change("cleanup.policy", ConfigOp::Append, Some("compact"))],
        )
        .unwrap();
        assert_eq!(configs(&image)["cleanup.policy"], "delete,compact");
        incremental(
            &mut image,
            &topic,
            &[change("cleanup.policy", ConfigOp::Subtract, Some("delete"))],
        )
        .unwrap();
        assert_eq!(configs(&image)["cleanup.policy"], "compact");
        // Subtracting the last item leaves an empty list, which is not a valid policy.
        let err = incremental(
            &mut image,
            &topic,
            &[change(
                "cleanup.policy",
                ConfigOp::Subtract,
                Some("compact"),
            )],
        )
        .unwrap_err();
        assert_eq!(err.code, ResponseError::InvalidConfig.code());
        assert!(err.message.contains("cleanup.policy"), "{}", err.message);

        // DELETE removes the override; deleting an absent one is fine.
        incremental(
            &mut image,
            &topic,
            &[
                change("retention.ms", ConfigOp::Delete, None),
                change("segment.ms", ConfigOp::Delete, None),
            ],
        )
        .unwrap();
        assert_eq!(configs(&image).get("retention.ms"), None);
        assert_eq!(configs(&image)["cleanup.policy"], "compact");
    }

    #[test]
    fn incremental_refusals() {
        let mut image = image_with_topic("t");
        let topic = config_resource(&image, RESOURCE_TOPIC, "t").unwrap();
        let code = |image: &mut MetadataImage, changes: &[ConfigChange]| {
            incremental(image, &topic, changes).unwrap_err().code
        };
        let invalid_config = ResponseError::InvalidConfig.code();
        let invalid_request = ResponseError::InvalidRequest.code();
        assert_eq!(
            code(
                &mut image,
                &[change("retention.ms", ConfigOp::Set, Some("soon"))]
            ),
            invalid_config
        );
        assert_eq!(
            code(
                &mut image,
                &[change("no.such.config", ConfigOp::Set, Some("1"))]
            ),
            invalid_config
        );
        assert_eq!(
            code(
                &mut image,
                &[change("retention.ms", ConfigOp::Append, Some("1"))]
            ),
            invalid_config
        );
        assert_eq!(
            code(&mut image, &[change("retention.ms", ConfigOp::Set, None)]),
            invalid_request
        );
        assert_eq!(
            code(
                &mut image,
                &[
                    change("retention.ms", ConfigOp::Set, Some("1")),
                    change("retention.ms", ConfigOp::Delete, None)
                ]
            ),
            invalid_request
        );
        assert_eq!(
            code(
                &mut image,
                &[change(
                    "min.cleanable.dirty.ratio",
                    ConfigOp::Set,
                    Some("2")
                )]
            ),
            invalid_config
        );
        assert_eq!(
            code(
                &mut image,
                &[
                    change("min.compaction.lag.ms", ConfigOp::Set, Some("100")),
                    change("max.compaction.lag.ms", ConfigOp::Set, Some("10"))
                ]
            ),
            invalid_config
        );
        // A refused resource changes nothing, even the valid entries before the bad one.
        assert_eq!(
            code(
                &mut image,
                &[
                    change("segment.ms", ConfigOp::Set, Some("100")),
                    change("retention.ms", ConfigOp::Set, Some("x"))
                ]
            ),
            invalid_config
        );
        assert!(image.topic_overrides("t").is_none());
        assert_eq!(
            config_resource(&image, RESOURCE_TOPIC, "missing")
                .unwrap_err()
                .code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(
            config_resource(&image, RESOURCE_BROKER, "7")
                .unwrap_err()
                .code,
            invalid_request
        );
        assert_eq!(
            config_resource(&image, 3, "x").unwrap_err().code,
            invalid_request
        );
    }

    #[test]
    fn broker_configs_dynamic_and_read_only() {
        let mut image = image_with_broker();
        let default = config_resource(&image, RESOURCE_BROKER, "").unwrap();
        assert_eq!(default, ConfigResource::Broker(None));
        let node = config_resource(&image, RESOURCE_BROKER, "1").unwrap();
        assert_eq!(node, ConfigResource::Broker(Some(1)));
        incremental(
            &mut image,
            &default,
            &[change("log.retention.ms", ConfigOp::Set, Some("5000"))],
        )
        .unwrap();
        incremental(
            &mut image,
            &node,
            &[change("message.max.bytes", ConfigOp::Set, Some("2000"))],
        )
        .unwrap();
        assert_eq!(
            image.configs[&ConfigResource::Broker(None)]["log.retention.ms"],
            "5000"
        );
        assert_eq!(
            image.configs[&ConfigResource::Broker(Some(1))]["message.max.bytes"],
            "2000"
        );
        for read_only in ["log.dirs", "node.id", "log.retention.check.interval.ms"] {
            let err = incremental(
                &mut image,
                &node,
                &[change(read_only, ConfigOp::Set, Some("1"))],
            )
            .unwrap_err();
            assert_eq!(err.code, ResponseError::InvalidConfig.code());
            assert!(err.message.contains(read_only), "{}", err.message);
        }
        let err = incremental(
            &mut image,
            &default,
            &[change("log.retention.ms", ConfigOp::Set, Some("-7"))],
        )
        .unwrap_err();
        assert!(err.message.contains("log.retention.ms"), "{}", err.message);
    }

    #[test]
    fn alter_configs_replaces_the_whole_set() {
        let mut image = image_with_topic("t");
        let topic = ConfigResource::Topic("t".into());
        let set = |pairs: &[(&str, &str)]| -> Vec<(String, Option<String>)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect()
        };
        let bounds = GroupConfigBounds::default();
        for r in alter_configs(
            &image,
            &topic,
            &set(&[("retention.ms", "10"), ("segment.ms", "20")]),
            &bounds,
        )
        .unwrap()
        {
            image.apply(&r);
        }
        let records =
            alter_configs(&image, &topic, &set(&[("segment.ms", "30")]), &bounds).unwrap();
        assert_eq!(records.len(), 2);
        for r in &records {
            image.apply(r);
        }
        let configs = image.topic_overrides("t").unwrap();
        assert_eq!(configs.len(), 1);
        assert_eq!(configs["segment.ms"], "30");
        assert_eq!(
            alter_configs(&image, &topic, &[("retention.ms".into(), None)], &bounds)
                .unwrap_err()
                .code,
            ResponseError::InvalidRequest.code()
        );
        for r in alter_configs(&image, &topic, &[], &bounds).unwrap() {
            image.apply(&r);
        }
        assert!(image.topic_overrides("t").is_none());
    }

    #[test]
    fn group_configs_need_no_group_and_respect_the_bounds() {
        let mut image = image_with_broker();
        assert_eq!(
            config_resource(&image, RESOURCE_GROUP, "")
                .unwrap_err()
                .code,
            ResponseError::InvalidRequest.code()
        );
        let group = config_resource(&image, RESOURCE_GROUP, "g").unwrap();
        let set = |name: &str, value: &str| change(name, ConfigOp::Set, Some(value));
        incremental(
            &mut image,
            &group,
            &[set("consumer.session.timeout.ms", "50000")],
        )
        .unwrap();
        let configs: Vec<_> = image.group_configs().collect();
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].0, "g");
        assert_eq!(configs[0].1["consumer.session.timeout.ms"], "50000");
        for bad in [
            set("consumer.session.timeout.ms", "5000"),
            set("consumer.session.timeout.ms", "soon"),
            set("share.session.timeout.ms", "50000"),
            set("retention.ms", "1"),
        ] {
            let err = incremental(&mut image, &group, &[bad]).unwrap_err();
            assert_eq!(err.code, ResponseError::InvalidConfig.code(), "{err}");
        }
        incremental(
            &mut image,
            &group,
            &[change(
                "consumer.session.timeout.ms",
                ConfigOp::Delete,
                None,
            )],
        )
        .unwrap();
        assert_eq!(image.group_configs().count(), 0);
    }

    fn image_with_racks(brokers: &[(i32, Option<&str>)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, rack) in brokers {
            image.apply(&MetadataRecord::RegisterBroker {
                node_id: *id,
                host: "127.0.0.1".into(),
                port: 9092 + *id as u16,
                rack: rack.map(String::from),
            });
        }
        image
    }

    /// Each topic starts its leaders at a broker of its own (from its id), and a topic's
    /// leaders rotate over every broker: many one-partition topics do not all land on one
    /// broker, as they did when every topic began at the first.
    #[test]
    fn leaders_are_spread_within_and_across_topics() {
        let image = image_with_racks(&[(1, None), (2, None), (3, None)]);
        let leaders: Vec<i32> = (0..3u128)
            .map(|id| Placement::new(&image, Uuid::from_u128(id)).replicas(0, 1)[0])
            .collect();
        assert_eq!(leaders, vec![1, 2, 3], "one-partition topics");
        let placement = Placement::new(&image, Uuid::from_u128(1));
        let replicas: Vec<Vec<i32>> = (0..3).map(|p| placement.replicas(p, 2)).collect();
        assert_eq!(replicas, vec![vec![2, 3], vec![3, 1], vec![1, 2]]);
        let mut fenced = image.clone();
        fenced.apply(&MetadataRecord::FenceBroker { node_id: 2 });
        let placement = Placement::new(&fenced, Uuid::from_u128(1));
        assert_eq!(placement.brokers(), 2);
        assert!(
            (0..4).all(|p| !placement.replicas(p, 2).contains(&2)),
            "no fenced broker"
        );
    }

    /// A new partition's replicas are all in sync (its log is empty); fencing the leader's
    /// broker hands the lead to the next and takes the fenced one out of the ISR.
    #[test]
    fn a_new_partition_is_in_sync_on_every_replica() {
        let mut image = image_with_racks(&[(1, None), (2, None)]);
        let records = create_topic(
            &image,
            &new_topic("rf2", 1, 2),
            &DEFAULTS,
            Uuid::from_u128(0),
        )
        .unwrap();
        image.apply_committed(&records, 1);
        let p = &image.topics["rf2"].partitions[&0];
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 2], vec![1, 2], 1)
        );
        let fenced = crate::request::decide(
            &image,
            &crate::ControllerRequest::FenceBroker { node_id: 1 },
            false,
        )
        .unwrap()
        .0;
        image.apply_committed(&fenced, 2);
        let p = &image.topics["rf2"].partitions[&0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (2, vec![2], 1));
    }

    /// With `broker.rack`, a partition's replicas use every rack before any rack twice, and
    /// leaders still rotate over every broker.
    #[test]
    fn replicas_span_racks() {
        let image = image_with_racks(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
        ]);
        let rack = |id: i32| image.brokers[&id].rack.clone();
        let placement = Placement::new(&image, Uuid::from_u128(0));
        let mut leaders = BTreeSet::new();
        for p in 0..5 {
            let two = placement.replicas(p, 2);
            assert_ne!(rack(two[0]), rack(two[1]), "partition {p}: {two:?}");
            let three = placement.replicas(p, 3);
            let racks: BTreeSet<_> = three.iter().map(|id| rack(*id)).collect();
            assert_eq!(racks.len(), 3, "partition {p}: {three:?}");
            let four = placement.replicas(p, 4);
            assert_eq!(
                four.iter().collect::<BTreeSet<_>>().len(),
                4,
                "distinct: {four:?}"
            );
            leaders.insert(two[0]);
        }
        assert_eq!(leaders, BTreeSet::from([1, 2, 3, 4, 5]));
    }
}
