//! Broker configuration: Kafka's property names, read from a `server.properties`-style file and
//! `--override` pairs, validated up front so a bad value is refused with the key named.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use gregor_metadata::configs::{
    is_dynamic_broker_config, topic_config, ConfigDef, ConfigKind, BOOL,
    REPLICATION_THROTTLE_RATES, SCALED_SYNONYMS,
};
use gregor_metadata::{ConfigLayers, GroupConfigBounds, TOPIC_CONFIGS};

use crate::listeners::Cluster;
use crate::replication::read_replica::RACK_AWARE_SELECTOR;
use gregor_storage::compression::{BrokerCompression, CompressionLevels};
use gregor_storage::{LogConfig, TimestampType};

/// A config that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

const fn broker(name: &'static str, default: &'static str, kind: ConfigKind) -> ConfigDef {
    ConfigDef {
        name,
        broker_synonym: name,
        default,
        kind,
    }
}

// Kafka's ConfigSource values (DescribeConfigs, CreateTopics).
pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const STATIC_BROKER_CONFIG: i8 = 4;
pub const DEFAULT_CONFIG: i8 = 5;
pub const GROUP_CONFIG: i8 = 8;
/// A client metrics subscription's config (KIP-714).
pub const CLIENT_METRICS_CONFIG: i8 = 7;

/// Broker configs beyond the topic defaults (whose broker synonyms are accepted too).
const BROKER_CONFIGS: &[ConfigDef] = &[
    broker("node.id", "1", ConfigKind::Int { min: 0 }),
    broker(
        "process.roles",
        "broker,controller",
        ConfigKind::ChoiceList(&["broker", "controller"]),
    ),
    broker("listeners", "PLAINTEXT://127.0.0.1:9092", ConfigKind::Text),
    broker("advertised.listeners", "", ConfigKind::Text),
    broker("listener.security.protocol.map", "", ConfigKind::Text),
    broker("controller.listener.names", "CONTROLLER", ConfigKind::Text),
    broker("inter.broker.listener.name", "", ConfigKind::Text),
    broker("controller.quorum.voters", "", ConfigKind::Text),
    broker("controller.quorum.bootstrap.servers", "", ConfigKind::Text),
    broker("broker.rack", "", ConfigKind::Text),
    broker(
        "replica.selector.class",
        "",
        ConfigKind::Class(&[RACK_AWARE_SELECTOR]),
    ),
    broker("log.dirs", "./gregor-data", ConfigKind::Text),
    broker(
        "controller.quorum.election.timeout.ms",
        "1000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "broker.session.timeout.ms",
        "9000",
        ConfigKind::Int { min: 1 },
    ),
    broker("auto.leader.rebalance.enable", "true", BOOL),
    broker(
        "metadata.log.max.record.bytes.between.snapshots",
        "20971520",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "metadata.log.max.snapshot.interval.ms",
        "3600000",
        ConfigKind::Int { min: 0 },
    ),
    broker(
        "leader.imbalance.check.interval.seconds",
        "300",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "broker.heartbeat.interval.ms",
        "2000",
        ConfigKind::Int { min: 1 },
    ),
    broker("num.partitions", "1", ConfigKind::Int { min: 1 }),
    broker(
        "default.replication.factor",
        "1",
        ConfigKind::Int { min: 1 },
    ),
    broker("auto.create.topics.enable", "true", BOOL),
    broker(
        "socket.request.max.bytes",
        "104857600",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "log.retention.check.interval.ms",
        "300000",
        ConfigKind::Long { min: 1 },
    ),
    // gregor's own: segment files unused this long (up to twice) are closed.
    broker(
        "log.segment.file.idle.ms",
        "60000",
        ConfigKind::Long { min: 1 },
    ),
    broker(
        "log.flush.scheduler.interval.ms",
        "9223372036854775807",
        ConfigKind::Long { min: 1 },
    ),
    broker("log.retention.hours", "168", ConfigKind::Int { min: -1 }),
    broker("log.retention.minutes", "", ConfigKind::Int { min: -1 }),
    broker("log.roll.hours", "168", ConfigKind::Int { min: 1 }),
    broker("fetch.max.bytes", "57671680", ConfigKind::Int { min: 0 }),
    broker(
        "group.min.session.timeout.ms",
        "6000",
        ConfigKind::Int { min: 0 },
    ),
    broker(
        "group.max.session.timeout.ms",
        "1800000",
        ConfigKind::Int { min: 0 },
    ),
    broker(
        "group.initial.rebalance.delay.ms",
        "3000",
        ConfigKind::Int { min: 0 },
    ),
    broker("group.max.size", "2147483647", ConfigKind::Int { min: 1 }),
    broker(
        "group.consumer.session.timeout.ms",
        "45000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "group.consumer.heartbeat.interval.ms",
        "5000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "group.consumer.min.session.timeout.ms",
        "45000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "group.consumer.max.session.timeout.ms",
        "60000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "group.consumer.min.heartbeat.interval.ms",
        "5000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "group.consumer.max.heartbeat.interval.ms",
        "15000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "offsets.retention.minutes",
        "10080",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "offsets.topic.num.partitions",
        "50",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "offsets.topic.replication.factor",
        "3",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "offsets.topic.segment.bytes",
        "104857600",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "transaction.state.log.num.partitions",
        "50",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "transaction.state.log.replication.factor",
        "3",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "transaction.state.log.segment.bytes",
        "104857600",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "transaction.max.timeout.ms",
        "900000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "transactional.id.expiration.ms",
        "604800000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "producer.id.expiration.ms",
        "86400000",
        ConfigKind::Int { min: 1 },
    ),
    // KIP-714: the largest (compressed) metrics payload a client may push.
    broker("telemetry.max.bytes", "1048576", ConfigKind::Int { min: 1 }),
    broker("log.cleaner.enable", "true", BOOL),
    broker(
        "log.cleaner.dedupe.buffer.size",
        "134217728",
        ConfigKind::Long { min: 1 << 20 },
    ),
    broker(
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
        ConfigKind::Text,
    ),
    broker(
        "log.cleaner.backoff.ms",
        "15000",
        ConfigKind::Long { min: 1 },
    ),
    broker(
        "connections.max.idle.ms",
        "600000",
        ConfigKind::Long { min: 1 },
    ),
    // -1: a quarter of the machine's memory, at most 1 GiB (Kafka's -1 is unbounded).
    broker(
        "queued.max.request.bytes",
        "-1",
        ConfigKind::Long { min: -1 },
    ),
    broker("max.connections", "2147483647", ConfigKind::Int { min: 0 }),
    broker(
        "max.connections.per.ip",
        "2147483647",
        ConfigKind::Int { min: 0 },
    ),
    broker("max.connections.per.ip.overrides", "", ConfigKind::Text),
    broker("request.timeout.ms", "30000", ConfigKind::Int { min: 1 }),
    broker(
        "max.incremental.fetch.session.cache.slots",
        "1000",
        ConfigKind::Int { min: 0 },
    ),
    // Replication: a follower that has not caught up for this long leaves the ISR.
    broker(
        "replica.lag.time.max.ms",
        "30000",
        ConfigKind::Long { min: 1 },
    ),
    broker(
        "replica.fetch.max.bytes",
        "1048576",
        ConfigKind::Int { min: 0 },
    ),
    broker(
        "replica.fetch.response.max.bytes",
        "10485760",
        ConfigKind::Int { min: 0 },
    ),
    broker(
        "replica.fetch.wait.max.ms",
        "500",
        ConfigKind::Int { min: 0 },
    ),
    broker("replica.fetch.min.bytes", "1", ConfigKind::Int { min: 1 }),
    broker(
        "replica.fetch.backoff.ms",
        "1000",
        ConfigKind::Int { min: 0 },
    ),
    broker(
        "replica.socket.timeout.ms",
        "30000",
        ConfigKind::Int { min: 1 },
    ),
    broker(
        "replica.high.watermark.checkpoint.interval.ms",
        "5000",
        ConfigKind::Long { min: 1 },
    ),
];

fn definition(name: &str) -> Option<ConfigDef> {
    broker_config_names().find(|d| d.name == name)
}

/// Every broker config name with its default, for DescribeConfigs of a broker.
pub fn broker_config_names() -> impl Iterator<Item = ConfigDef> {
    let synonyms = TOPIC_CONFIGS
        .iter()
        .filter(|d| !d.broker_synonym.is_empty())
        .map(|d| broker(d.broker_synonym, d.default, d.kind));
    BROKER_CONFIGS
        .iter()
        .copied()
        .chain(synonyms)
        .chain(REPLICATION_THROTTLE_RATES.iter().copied())
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The values set explicitly (file, then overrides).
    explicit: BTreeMap<String, String>,
    pub node_id: i32,
    pub listener: SocketAddr,
    /// Host and port advertised in Metadata; port 0 means the port actually bound.
    pub advertised_host: String,
    pub advertised_port: u16,
    pub log_dirs: Vec<PathBuf>,
    /// Roles, listeners and the controller quorum's voters.
    pub cluster: Cluster,
}

impl BrokerConfig {
    /// Builds the config from `key=value` pairs in order (later ones win).
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(
        pairs: I,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut explicit = BTreeMap::new();
        for (key, value) in pairs {
            let key = if key == "log.dir" {
                "log.dirs".to_string()
            } else {
                key
            };
            match definition(&key) {
                Some(def) if def.kind != ConfigKind::Text => {
                    def.validate(&value).map_err(ConfigError)?
                }
                Some(_) => {}
                None => tracing::warn!(key, "ignoring unknown config"),
            }
            explicit.insert(key, value);
        }
        let mut config = BrokerConfig {
            explicit,
            node_id: 1,
            listener: "127.0.0.1:9092".parse().expect("valid address"),
            advertised_host: String::new(),
            advertised_port: 0,
            log_dirs: vec![],
            cluster: Cluster::default(),
        };
        config.node_id = config.get("node.id").parse().expect("validated");
        config.cluster = Cluster::from_configs(config.node_id, |key| config.get(key))?;
        // A controller only has no client listener: `listener` is never bound then.
        if let Some(client) = config.cluster.client.clone() {
            config.listener = client.bind;
            (config.advertised_host, config.advertised_port) =
                (client.advertised_host, client.advertised_port);
        }
        crate::network::parse_overrides(&config.get("max.connections.per.ip.overrides"))?;
        config.log_dirs = config
            .get("log.dirs")
            .split(',')
            .map(|d| PathBuf::from(d.trim()))
            .collect();
        // Kafka refuses group.consumer.* defaults outside their own bounds at start-up. The
        // check speaks of group configs (`consumer.*`); here they are the broker's `group.consumer.*`.
        config
            .group_config_bounds()
            .check(&BTreeMap::new())
            .map_err(|why| {
                ConfigError(format!(
                    "group.{}",
                    why.replace(" than consumer.", " than group.consumer.")
                ))
            })?;
        Ok(config)
    }

    /// The defaults and bounds of group configs: the `group.consumer.*` broker configs.
    pub fn group_config_bounds(&self) -> GroupConfigBounds {
        let get = |name: &str| self.get_i64(name) as i32;
        GroupConfigBounds {
            session_timeout_ms: get("group.consumer.session.timeout.ms"),
            min_session_timeout_ms: get("group.consumer.min.session.timeout.ms"),
            max_session_timeout_ms: get("group.consumer.max.session.timeout.ms"),
            heartbeat_interval_ms: get("group.consumer.heartbeat.interval.ms"),
            min_heartbeat_interval_ms: get("group.consumer.min.heartbeat.interval.ms"),
            max_heartbeat_interval_ms: get("group.consumer.max.heartbeat.interval.ms"),
        }
    }

    /// The static value of a broker config (file and overrides), else its default. Unknown names
    /// give "". Dynamic broker configs are not looked at: see [`BrokerConfig::broker_value`].
    pub fn get(&self, name: &str) -> String {
        self.broker_value(name, ConfigLayers::default())
    }

    /// Whether a broker config was set statically (or derived from one that was).
    pub fn is_explicit(&self, name: &str) -> bool {
        self.broker_source(name, ConfigLayers::default()).is_some()
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).trim().parse().unwrap_or_default()
    }

    /// A boolean config: `true` in any case, as Kafka reads it (validation took any case too).
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).trim().eq_ignore_ascii_case("true")
    }

    /// Where a broker config is set, highest precedence first: this node's dynamic configs, the
    /// cluster default, the static config. `(name, raw value, source)`.
    pub fn broker_layers<'a>(
        &'a self,
        name: &str,
        layers: ConfigLayers<'a>,
    ) -> Vec<(String, String, i8)> {
        let mut found = Vec::new();
        let candidates = [
            (layers.broker(Some(self.node_id)), DYNAMIC_BROKER_CONFIG),
            (layers.broker(None), DYNAMIC_DEFAULT_BROKER_CONFIG),
            (Some(&self.explicit), STATIC_BROKER_CONFIG),
        ];
        for (layer, source) in candidates {
            let Some(layer) = layer else { continue };
            if let Some(v) = layer.get(name) {
                found.push((name.to_string(), v.clone(), source));
            }
            for (_, alias, _) in SCALED_SYNONYMS.iter().filter(|(t, _, _)| *t == name) {
                if let Some(v) = layer.get(*alias) {
                    found.push((alias.to_string(), v.clone(), source));
                }
            }
        }
        found
    }

    /// The effective value of a broker config and where it comes from; `None`: the default. As
    /// in Kafka, the layers are merged before older spellings are read, so `log.retention.ms`
    /// anywhere beats `log.retention.hours` anywhere.
    pub fn broker_source(&self, name: &str, layers: ConfigLayers) -> Option<(String, i8)> {
        let candidates = [
            (layers.broker(Some(self.node_id)), DYNAMIC_BROKER_CONFIG),
            (layers.broker(None), DYNAMIC_DEFAULT_BROKER_CONFIG),
            (Some(&self.explicit), STATIC_BROKER_CONFIG),
        ];
        let lookup = |key: &str| {
            candidates
                .iter()
                .find_map(|(layer, source)| Some((layer.as_ref()?.get(key)?.clone(), *source)))
        };
        if let Some(found) = lookup(name) {
            return Some(found);
        }
        SCALED_SYNONYMS
            .iter()
            .filter(|(target, _, _)| *target == name)
            .find_map(|(_, alias, factor)| {
                let (v, source) = lookup(alias)?;
                let v: i64 = v.trim().parse().ok()?;
                Some((if v < 0 { v } else { v * factor }.to_string(), source))
            })
    }

    /// The effective value of a broker config with the dynamic layers of `layers`.
    pub fn broker_value(&self, name: &str, layers: ConfigLayers) -> String {
        self.broker_source(name, layers)
            .map(|(v, _)| v)
            .or_else(|| definition(name).map(|d| d.default.to_string()))
            .unwrap_or_default()
    }

    /// Whether a broker config can be changed at run time (else DescribeConfigs says read-only).
    pub fn is_dynamic(name: &str) -> bool {
        is_dynamic_broker_config(name)
    }

    /// The effective value of a topic config: the topic's override, else the broker's synonym
    /// (dynamic per node, dynamic cluster default, static), else the default.
    pub fn topic_value(&self, name: &str, layers: ConfigLayers) -> String {
        layers
            .topic
            .and_then(|o| o.get(name).cloned())
            .or_else(|| topic_config(name).map(|d| self.broker_value(d.broker_synonym, layers)))
            .unwrap_or_default()
    }

    /// The storage settings of a topic.
    pub fn log_config(&self, layers: ConfigLayers) -> LogConfig {
        let overrides = layers;
        let num = |name: &str| -> i64 {
            self.topic_value(name, overrides)
                .trim()
                .parse()
                .unwrap_or_default()
        };
        let num_or = |name: &str, default: i64| -> i64 {
            self.topic_value(name, overrides)
                .trim()
                .parse()
                .unwrap_or(default)
        };
        // Retention deletes only where the cleanup policy includes "delete": a compacted-only
        // topic (like __consumer_offsets) keeps every segment.
        let deletes = self
            .topic_value("cleanup.policy", overrides)
            .split(',')
            .any(|p| p.trim() == "delete");
        let retention = |name: &str| if deletes { num(name) } else { -1 };
        let compact = self
            .topic_value("cleanup.policy", overrides)
            .split(',')
            .any(|p| p.trim() == "compact");
        LogConfig {
            compact,
            delete_retention_ms: num("delete.retention.ms"),
            min_compaction_lag_ms: num("min.compaction.lag.ms"),
            max_compaction_lag_ms: num("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: self
                .topic_value("min.cleanable.dirty.ratio", overrides)
                .trim()
                .parse()
                .unwrap_or(0.5),
            segment_bytes: num("segment.bytes") as u64,
            segment_ms: num("segment.ms"),
            retention_ms: retention("retention.ms"),
            retention_bytes: retention("retention.bytes"),
            max_message_bytes: num("max.message.bytes") as usize,
            timestamp_type: if self.topic_value("message.timestamp.type", overrides)
                == "LogAppendTime"
            {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            index_interval_bytes: num("index.interval.bytes") as usize,
            segment_index_bytes: num("segment.index.bytes") as usize,
            flush_messages: num("flush.messages"),
            flush_ms: num("flush.ms"),
            compression: BrokerCompression::parse(&self.topic_value("compression.type", overrides))
                .unwrap_or_default(),
            compression_levels: CompressionLevels {
                gzip: num("compression.gzip.level") as i32,
                lz4: num("compression.lz4.level") as u32,
                zstd: num("compression.zstd.level") as i32,
            },
            timestamp_before_max_ms: num_or("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: num_or("message.timestamp.after.max.ms", 3_600_000),
            file_delete_delay_ms: num_or("file.delete.delay.ms", 60_000),
            segment_jitter_ms: num("segment.jitter.ms"),
            preallocate: self
                .topic_value("preallocate", overrides)
                .trim()
                .eq_ignore_ascii_case("true"),
            producer_id_expiration_ms: self.get_i64("producer.id.expiration.ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_serve_a_single_node() {
        let config = BrokerConfig::from_pairs(vec![]).unwrap();
        assert_eq!(config.listener.to_string(), "127.0.0.1:9092");
        assert_eq!(config.log_dirs, vec![PathBuf::from("./gregor-data")]);
        assert_eq!(config.get("num.partitions"), "1");
        let log = config.log_config(ConfigLayers::default());
        assert_eq!(log.retention_ms, 604_800_000);
        assert_eq!(log.max_message_bytes, 1_048_588);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = BrokerConfig::from_pairs(pairs(&[("num.partitions", "many")])).unwrap_err();
        assert!(err.0.contains("num.partitions"), "{err}");
        let err = BrokerConfig::from_pairs(pairs(&[("listeners", "http://x")])).unwrap_err();
        assert!(err.0.contains("listeners"), "{err}");
        let err = BrokerConfig::from_pairs(pairs(&[("group.consumer.session.timeout.ms", "6000")]))
            .unwrap_err();
        assert_eq!(
            err.0,
            "group.consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"
        );
        let ok = BrokerConfig::from_pairs(pairs(&[
            ("group.consumer.session.timeout.ms", "6000"),
            ("group.consumer.min.session.timeout.ms", "6000"),
        ]))
        .unwrap();
        assert_eq!(ok.group_config_bounds().session_timeout_ms, 6000);
        // A replica selector gregor does not implement is refused; Kafka's rack-aware one and
        // none are fine.
        let err = BrokerConfig::from_pairs(pairs(&[("replica.selector.class", "com.x.Mine")]))
            .unwrap_err();
        assert_eq!(
            err.0,
            "Invalid value com.x.Mine for configuration replica.selector.class: Class com.x.Mine \
             could not be found (gregor implements: \
             org.apache.kafka.common.replica.RackAwareReplicaSelector)"
        );
        for class in ["", RACK_AWARE_SELECTOR] {
            BrokerConfig::from_pairs(pairs(&[("replica.selector.class", class)])).unwrap();
        }
    }

    #[test]
    fn overrides_and_synonyms() {
        let config = BrokerConfig::from_pairs(pairs(&[
            ("log.retention.hours", "1"),
            ("message.max.bytes", "5000"),
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ]))
        .unwrap();
        let topic: BTreeMap<String, String> =
            [("retention.bytes".to_string(), "10".to_string())].into();
        let log = config.log_config(ConfigLayers::topic_only(Some(&topic)));
        assert_eq!(log.retention_ms, 3_600_000);
        assert_eq!(log.retention_bytes, 10);
        assert_eq!(log.max_message_bytes, 5000);
        assert_eq!(config.listener.port(), 0);
        let compacted: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact".to_string())].into();
        assert_eq!(
            config
                .log_config(ConfigLayers::topic_only(Some(&compacted)))
                .retention_ms,
            -1
        );
    }

    #[test]
    fn timestamp_bounds_delete_delay_jitter_and_preallocate() {
        let config =
            BrokerConfig::from_pairs(pairs(&[("log.segment.delete.delay.ms", "5")])).unwrap();
        let log = config.log_config(ConfigLayers::default());
        assert_eq!(log.timestamp_before_max_ms, i64::MAX);
        assert_eq!(log.timestamp_after_max_ms, 3_600_000);
        assert_eq!(log.file_delete_delay_ms, 5);
        assert_eq!(log.segment_jitter_ms, 0);
        assert!(!log.preallocate);
        let topic: BTreeMap<String, String> = [
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.after.max.ms", "2000"),
            ("file.delete.delay.ms", "0"),
            ("segment.jitter.ms", "300"),
            ("preallocate", "TRUE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let log = config.log_config(ConfigLayers::topic_only(Some(&topic)));
        assert_eq!(log.timestamp_before_max_ms, 1000);
        assert_eq!(log.timestamp_after_max_ms, 2000);
        assert_eq!(log.file_delete_delay_ms, 0);
        assert_eq!(log.segment_jitter_ms, 300);
        assert!(log.preallocate);
    }

    #[test]
    fn dynamic_layers_take_precedence() {
        use gregor_metadata::{ConfigResource, MetadataImage, MetadataRecord};
        let config = BrokerConfig::from_pairs(pairs(&[("log.retention.hours", "1")])).unwrap();
        let mut image = MetadataImage::default();
        let set = |image: &mut MetadataImage, resource: ConfigResource, name: &str, v: &str| {
            image.apply(&MetadataRecord::Config {
                resource,
                name: name.into(),
                value: Some(v.into()),
            })
        };
        let source = |image: &MetadataImage| {
            config.broker_source("log.retention.ms", image.topic_configs("t"))
        };
        assert_eq!(
            source(&image),
            Some(("3600000".into(), STATIC_BROKER_CONFIG))
        );
        set(
            &mut image,
            ConfigResource::Broker(None),
            "log.retention.ms",
            "5000",
        );
        assert_eq!(
            source(&image),
            Some(("5000".into(), DYNAMIC_DEFAULT_BROKER_CONFIG))
        );
        // log.retention.ms in any layer beats the older spellings in any layer, as in Kafka.
        set(
            &mut image,
            ConfigResource::Broker(Some(1)),
            "log.retention.minutes",
            "2",
        );
        assert_eq!(
            source(&image),
            Some(("5000".into(), DYNAMIC_DEFAULT_BROKER_CONFIG))
        );
        set(
            &mut image,
            ConfigResource::Broker(Some(1)),
            "log.retention.ms",
            "7000",
        );
        assert_eq!(source(&image), Some(("7000".into(), DYNAMIC_BROKER_CONFIG)));
        // Another node's dynamic config does not apply here.
        set(
            &mut image,
            ConfigResource::Broker(Some(2)),
            "log.segment.bytes",
            "1000",
        );
        assert_eq!(
            config.log_config(image.topic_configs("t")).segment_bytes,
            1_073_741_824
        );
        assert_eq!(
            config.log_config(image.topic_configs("t")).retention_ms,
            7000
        );
        set(
            &mut image,
            ConfigResource::Topic("t".into()),
            "retention.ms",
            "9",
        );
        assert_eq!(config.log_config(image.topic_configs("t")).retention_ms, 9);
        assert_eq!(
            config.log_config(image.topic_configs("u")).retention_ms,
            7000
        );
        // The static view is unchanged.
        assert_eq!(config.get("log.retention.ms"), "3600000");
        assert_eq!(
            config.broker_layers("log.retention.ms", image.broker_configs()),
            vec![
                (
                    "log.retention.ms".to_string(),
                    "7000".to_string(),
                    DYNAMIC_BROKER_CONFIG
                ),
                (
                    "log.retention.minutes".to_string(),
                    "2".to_string(),
                    DYNAMIC_BROKER_CONFIG
                ),
                (
                    "log.retention.ms".to_string(),
                    "5000".to_string(),
                    DYNAMIC_DEFAULT_BROKER_CONFIG
                ),
                (
                    "log.retention.hours".to_string(),
                    "1".to_string(),
                    STATIC_BROKER_CONFIG
                ),
            ]
        );
    }
}
