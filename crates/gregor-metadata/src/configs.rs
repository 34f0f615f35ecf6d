//! Topic-level configs: names, defaults, the broker config each defaults to, and validation.
//! A topic config without an override takes the broker's value of its synonym, else the default.

use serde::{Deserialize, Serialize};
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConfigKind {
    /// A 64-bit integer no smaller than the bound.
    Long { min: i64 },
    /// A 32-bit integer no smaller than the bound.
    Int { min: i32 },
    /// A 32-bit integer in `min..=max`, or exactly `or` (Kafka's "default" sentinel, e.g. -1).
    IntRange { min: i32, max: i32, or: Option<i32> },
    /// A floating-point number in `min..=max`.
    Double { min: f64, max: f64 },
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// A comma-separated, non-empty list drawn from the listed strings.
    ChoiceList(&'static [&'static str]),
    /// Free text (paths, listeners), checked where it is used.
    Text,
    /// A Java class name Kafka would load: unset, or one of those gregor implements.
    Class(&'static [&'static str]),
    /// Replicas a replication throttle applies to: `partition:broker` pairs, or `*` for all.
    ThrottledReplicas,
}

#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    /// The broker config that supplies the default (`log.retention.ms` for `retention.ms`).
    pub broker_synonym: &'static str,
    pub default: &'static str,
    pub kind: ConfigKind,
}

const fn def(
    name: &'static str,
    broker_synonym: &'static str,
    default: &'static str,
    kind: ConfigKind,
) -> ConfigDef {
    ConfigDef {
        name,
        broker_synonym,
        default,
        kind,
    }
}

const MAX: &str = "9223372036854775807";

/// A boolean config: Kafka accepts `true`/`false` (case-insensitively, normalised here to lower).
pub const BOOL: ConfigKind = ConfigKind::Choice(&["true", "false"]);

/// The topic configs gregor knows, with Kafka's defaults.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        "delete",
        ConfigKind::ChoiceList(&["delete", "compact"]),
    ),
    def(
        "compression.gzip.level",
        "compression.gzip.level",
        "-1",
        ConfigKind::IntRange {
            min: 1,
            max: 9,
            or: Some(-1),
        },
    ),
    def(
        "compression.lz4.level",
        "compression.lz4.level",
        "9",
        ConfigKind::IntRange {
            min: 1,
            max: 17,
            or: None,
        },
    ),
    def(
        "compression.zstd.level",
        "compression.zstd.level",
        "3",
        ConfigKind::IntRange {
            min: -131072,
            max: 22,
            or: None,
        },
    ),
    def(
        "compression.type",
        "compression.type",
        "producer",
        ConfigKind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    ),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        ConfigKind::Long { min: 0 },
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        "60000",
        ConfigKind::Long { min: 0 },
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        MAX,
        ConfigKind::Long { min: 1 },
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        MAX,
        ConfigKind::Long { min: 0 },
    ),
    def(
        "follower.replication.throttled.replicas",
        "",
        "",
        ConfigKind::ThrottledReplicas,
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        ConfigKind::Int { min: 0 },
    ),
    // Replicas whose replication is throttled (KIP-73), set by `reassign-partitions --throttle`;
    // topic configs only, without a broker synonym.
    def(
        "leader.replication.throttled.replicas",
        "",
        "",
        ConfigKind::ThrottledReplicas,
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        MAX,
        ConfigKind::Long { min: 1 },
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        "1048588",
        ConfigKind::Int { min: 0 },
    ),
    // Kafka 4.0 lowered the default of the "after" bound from Long.MAX_VALUE to one hour.
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "3600000",
        ConfigKind::Long { min: 0 },
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        MAX,
        ConfigKind::Long { min: 0 },
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        ConfigKind::Choice(&["CreateTime", "LogAppendTime"]),
    ),
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        ConfigKind::Double { min: 0.0, max: 1.0 },
    ),
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        ConfigKind::Long { min: 0 },
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        "1",
        ConfigKind::Int { min: 1 },
    ),
    def("preallocate", "log.preallocate", "false", BOOL),
    def(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        ConfigKind::Long { min: -1 },
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        "604800000",
        ConfigKind::Long { min: -1 },
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        "1073741824",
        ConfigKind::Int { min: 14 },
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        ConfigKind::Int { min: 4 },
    ),
    def(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        "0",
        ConfigKind::Long { min: 0 },
    ),
    def(
        "segment.ms",
        "log.roll.ms",
        "604800000",
        ConfigKind::Long { min: 1 },
    ),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        BOOL,
    ),
];

/// Group configs (Kafka's `GroupConfig`): per-group overrides of the KIP-848 consumer group
/// timings. The broker's `group.consumer.*` configs are their defaults and bounds.
pub const GROUP_CONFIGS: &[ConfigDef] = &[
    def(
        "consumer.heartbeat.interval.ms",
        "group.consumer.heartbeat.interval.ms",
        "5000",
        ConfigKind::Int { min: 1 },
    ),
    def(
        "consumer.session.timeout.ms",
        "group.consumer.session.timeout.ms",
        "45000",
        ConfigKind::Int { min: 1 },
    ),
];

pub fn group_config(name: &str) -> Option<&'static ConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// The broker's defaults and bounds for group configs (its `group.consumer.*` configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfigBounds {
    pub session_timeout_ms: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub min_heartbeat_interval_ms: i32,
    pub max_heartbeat_interval_ms: i32,
}

impl Default for GroupConfigBounds {
    /// Kafka's defaults.
    fn default() -> Self {
        GroupConfigBounds {
            session_timeout_ms: 45_000,
            min_session_timeout_ms: 45_000,
            max_session_timeout_ms: 60_000,
            heartbeat_interval_ms: 5_000,
            min_heartbeat_interval_ms: 5_000,
            max_heartbeat_interval_ms: 15_000,
        }
    }
}

impl GroupConfigBounds {
    /// Checks a group's overrides together with the broker defaults they leave in place, as
    /// Kafka's `GroupConfig.validateValues` does; the error names the config and the bound.
    pub fn check(
        &self,
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), String> {
        let value = |name: &str, default: i32| {
            overrides
                .get(name)
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or(default)
        };
        let heartbeat = value("consumer.heartbeat.interval.ms", self.heartbeat_interval_ms);
        let session = value("consumer.session.timeout.ms", self.session_timeout_ms);
        let checks = [
            (
                heartbeat >= self.min_heartbeat_interval_ms,
                "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms",
            ),
            (
                heartbeat <= self.max_heartbeat_interval_ms,
                "consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms",
            ),
            (
                session >= self.min_session_timeout_ms,
                "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms",
            ),
            (
                session <= self.max_session_timeout_ms,
                "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms",
            ),
            (
                session > heartbeat,
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(why.to_string()),
            None => Ok(()),
        }
    }
}

/// Older broker spellings of a topic default, scaled to the synonym's unit: the broker reads
/// `log.retention.ms`, else `log.retention.minutes`, else `log.retention.hours` (Kafka's order).
pub const SCALED_SYNONYMS: &[(&str, &str, i64)] = &[
    ("log.retention.ms", "log.retention.minutes", 60_000),
    ("log.retention.ms", "log.retention.hours", 3_600_000),
    ("log.roll.ms", "log.roll.hours", 3_600_000),
];

/// Whether a broker config may be changed at run time (per broker or as the cluster default),
/// as Kafka's `DynamicLogConfig` allows: the broker synonyms of the topic configs, with their
/// older spellings. Everything else a broker knows is read-only.
pub fn is_dynamic_broker_config(name: &str) -> bool {
    dynamic_broker_config(name).is_some()
}

/// The replication throttles' rates in bytes a second (KIP-73), dynamic broker configs only.
pub const REPLICATION_THROTTLE_RATES: &[ConfigDef] = &[
    def(
        "leader.replication.throttled.rate",
        "leader.replication.throttled.rate",
        MAX,
        ConfigKind::Long { min: 0 },
    ),
    def(
        "follower.replication.throttled.rate",
        "follower.replication.throttled.rate",
        MAX,
        ConfigKind::Long { min: 0 },
    ),
];

/// The definition of a dynamic broker config (a topic config's synonym has its kind).
pub fn dynamic_broker_config(name: &str) -> Option<ConfigDef> {
    let synonym = TOPIC_CONFIGS
        .iter()
        .filter(|d| !d.broker_synonym.is_empty())
        .find(|d| d.broker_synonym == name);
    if let Some(d) = synonym {
        return Some(def(d.broker_synonym, d.broker_synonym, d.default, d.kind));
    }
    if let Some(d) = REPLICATION_THROTTLE_RATES.iter().find(|d| d.name == name) {
        return Some(*d);
    }
    SCALED_SYNONYMS
        .iter()
        .find(|(_, alias, _)| *alias == name)
        .map(|(_, alias, _)| {
            let default = if *alias == "log.retention.minutes" {
                ""
            } else {
                "168"
            };
            let min = if *alias == "log.roll.hours" { 1 } else { -1 };
            def(alias, alias, default, ConfigKind::Int { min })
        })
}

/// The replicas a `*.replication.throttled.replicas` value names: `None` if malformed, else
/// `Some(None)` for the wildcard and `Some(Some(pairs))` for `partition:broker` pairs (an empty
/// value names none).
#[allow(clippy::type_complexity)]
pub fn throttled_replicas(value: &str) -> Option<Option<Vec<(i32, i32)>>> {
    let value = value.trim();
    if value == "*" {
        return Some(None);
    }
    if value.is_empty() {
        return Some(Some(Vec::new()));
    }
    let pair = |item: &str| {
        let (partition, broker) = item.trim().split_once(':')?;
        Some((partition.trim().parse().ok()?, broker.trim().parse().ok()?))
    };
    value
        .split(',')
        .map(pair)
        .collect::<Option<Vec<_>>>()
        .map(Some)
}

/// Whether a throttled-replicas value names replica `broker` of `partition`.
pub fn throttles(value: &str, partition: i32, broker: i32) -> bool {
    match throttled_replicas(value) {
        Some(None) => true,
        Some(Some(pairs)) => pairs.contains(&(partition, broker)),
        None => false,
    }
}

pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

impl ConfigDef {
    /// Checks a value against the definition; the error names the key, as Kafka's does.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let invalid = |why: &str| {
            Err(format!(
                "Invalid value {value} for configuration {}: {why}",
                self.name
            ))
        };
        match self.kind {
            ConfigKind::Text => Ok(()),
            ConfigKind::Long { min } => match value.trim().parse::<i64>() {
                Ok(v) if v >= min => Ok(()),
                Ok(_) => invalid(&format!("Value must be at least {min}")),
                Err(_) => invalid("Not a number of type LONG"),
            },
            ConfigKind::Int { min } => match value.trim().parse::<i32>() {
                Ok(v) if v >= min => Ok(()),
                Ok(_) => invalid(&format!("Value must be at least {min}")),
                Err(_) => invalid("Not a number of type INT"),
            },
            ConfigKind::IntRange { min, max, or } => match value.trim().parse::<i32>() {
                Ok(v) if (min..=max).contains(&v) || Some(v) == or => Ok(()),
                Ok(_) => invalid(&match or {
                    Some(or) => format!("Value must be in [{min},...,{max}] or {or}"),
                    None => format!("Value must be in [{min},...,{max}]"),
                }),
                Err(_) => invalid("Not a number of type INT"),
            },
            ConfigKind::Double { min, max } => match value.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= min && v <= max => Ok(()),
                Ok(_) => invalid(&format!("Value must be in [{min},...,{max}]")),
                Err(_) => invalid("Not a number of type DOUBLE"),
            },
            ConfigKind::Choice(options) => {
                let boolean = options == ["true", "false"];
                let v = value.trim();
                if options.contains(&v) || (boolean && options.contains(&&*v.to_lowercase())) {
                    Ok(())
                } else {
                    invalid(&format!("String must be one of: {}", options.join(", ")))
                }
            }
            ConfigKind::Class(known) => {
                let v = value.trim();
                if v.is_empty() || known.contains(&v) {
                    Ok(())
                } else {
                    invalid(&format!(
                        "Class {v} could not be found (gregor implements: {})",
                        known.join(", ")
                    ))
                }
            }
            ConfigKind::ThrottledReplicas => match throttled_replicas(value) {
                Some(_) => Ok(()),
                None => invalid("Must be the format [partitionId]:[brokerId],[partitionId]:[brokerId],... or the wildcard '*'"),
            },
            ConfigKind::ChoiceList(options) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                if !items.is_empty() && items.iter().all(|i| options.contains(i)) {
                    Ok(())
                } else {
                    invalid(&format!("List items must be among: {}", options.join(", ")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        for d in TOPIC_CONFIGS {
            d.validate(d.default).unwrap();
            assert!(d.broker_synonym.is_empty() || is_dynamic_broker_config(d.broker_synonym));
        }
        assert!(!is_dynamic_broker_config(""));
        assert!(is_dynamic_broker_config(
            "leader.replication.throttled.rate"
        ));
        let throttled = |v: &str| {
            topic_config("leader.replication.throttled.replicas")
                .unwrap()
                .validate(v)
        };
        for good in ["", "*", "0:1", " 0:1 , 3:2"] {
            assert!(throttled(good).is_ok(), "{good:?}");
        }
        for bad in ["x", "0:", "0:1,", "*,0:1", "1"] {
            assert!(throttled(bad).is_err(), "{bad:?}");
        }
        assert!(throttles("*", 4, 9));
        assert!(throttles("0:1,2:3", 2, 3));
        assert!(!throttles("0:1,2:3", 2, 1));
        assert!(!throttles("", 0, 1));
        let check = |name: &str, value: &str| topic_config(name).unwrap().validate(value);
        assert!(check("min.cleanable.dirty.ratio", "0.1").is_ok());
        let err = check("min.cleanable.dirty.ratio", "1.5").unwrap_err();
        assert!(err.contains("min.cleanable.dirty.ratio"), "{err}");
        assert!(check("min.cleanable.dirty.ratio", "x").is_err());
        assert!(check("compression.gzip.level", "-1").is_ok());
        assert!(check("compression.gzip.level", "0").is_err());
        assert!(check("compression.zstd.level", "-5").is_ok());
        assert!(check("preallocate", "TRUE").is_ok());
        assert!(check("preallocate", "yes").is_err());
        assert!(check("delete.retention.ms", "-1").is_err());
        assert!(is_dynamic_broker_config("log.retention.hours"));
        assert!(!is_dynamic_broker_config("log.dirs"));
        assert!(!is_dynamic_broker_config("log.retention.check.interval.ms"));
        assert_eq!(
            dynamic_broker_config("log.cleaner.min.cleanable.ratio")
                .unwrap()
                .kind,
            ConfigKind::Double { min: 0.0, max: 1.0 }
        );
        let err = topic_config("retention.ms")
            .unwrap()
            .validate("soon")
            .unwrap_err();
        assert!(err.contains("retention.ms"), "{err}");
        assert!(topic_config("cleanup.policy")
            .unwrap()
            .validate("compact,delete")
            .is_ok());
        assert!(topic_config("cleanup.policy")
            .unwrap()
            .validate("forever")
            .is_err());
    }

    #[test]
    fn group_configs_are_checked_against_the_broker_bounds() {
        let bounds = GroupConfigBounds::default();
        let set = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(bounds.check(&set(&[])).is_ok());
        assert!(bounds
            .check(&set(&[("consumer.session.timeout.ms", "50000")]))
            .is_ok());
        let err = bounds
            .check(&set(&[("consumer.session.timeout.ms", "1000")]))
            .unwrap_err();
        assert!(
            err.contains("group.consumer.min.session.timeout.ms"),
            "{err}"
        );
        let err = bounds
            .check(&set(&[("consumer.heartbeat.interval.ms", "16000")]))
            .unwrap_err();
        assert!(
            err.contains("group.consumer.max.heartbeat.interval.ms"),
            "{err}"
        );
        let wide = GroupConfigBounds {
            max_heartbeat_interval_ms: 60_000,
            ..bounds
        };
        let err = wide
            .check(&set(&[("consumer.heartbeat.interval.ms", "45000")]))
            .unwrap_err();
        assert!(
            err.contains("greater than consumer.heartbeat.interval.ms"),
            "{err}"
        );
        assert!(group_config("consumer.session.timeout.ms").is_some());
        assert!(group_config("share.session.timeout.ms").is_none());
    }
}
