//! Broker configuration: Kafka's property names, read from a `server.properties`-style file and
//! `--override` pairs, validated up front so a bad value is refused with the key named.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use gregor_metadata::configs::{topic_config, ConfigDef, ConfigKind};
use gregor_metadata::TOPIC_CONFIGS;
use gregor_storage::compression::BrokerCompression;
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

const BOOL: ConfigKind = ConfigKind::Choice(&["true", "false"]);

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
    broker("log.dirs", "./gregor-data", ConfigKind::Text),
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
        "connections.max.idle.ms",
        "600000",
        ConfigKind::Long { min: 1 },
    ),
    broker(
        "max.incremental.fetch.session.cache.slots",
        "1000",
        ConfigKind::Int { min: 0 },
    ),
];

fn definition(name: &str) -> Option<ConfigDef> {
    BROKER_CONFIGS
        .iter()
        .copied()
        .find(|d| d.name == name)
        .or_else(|| {
            TOPIC_CONFIGS
                .iter()
                .find(|d| d.broker_synonym == name)
                .map(|d| broker(d.broker_synonym, d.default, d.kind))
        })
}

/// Every broker config name with its default, for DescribeConfigs of a broker.
pub fn broker_config_names() -> impl Iterator<Item = ConfigDef> {
    BROKER_CONFIGS.iter().copied().chain(
        TOPIC_CONFIGS
            .iter()
            .map(|d| broker(d.broker_synonym, d.default, d.kind)),
    )
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
}

fn parse_listener(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let first = value
        .split(',')
        .map(str::trim)
        .find(|l| !l.starts_with("CONTROLLER"))
        .unwrap_or_default();
    let bad = || {
        ConfigError(format!(
            "Invalid value {value} for configuration {key}: expected PLAINTEXT://host:port"
        ))
    };
    let rest = first.strip_prefix("PLAINTEXT://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
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
        };
        config.node_id = config.get("node.id").parse().expect("validated");
        let (host, port) = parse_listener("listeners", &config.get("listeners"))?;
        let bind_host = if host.is_empty() { "0.0.0.0" } else { &host };
        config.listener = format!("{bind_host}:{port}")
            .parse()
            .or_else(|_| format!("[{bind_host}]:{port}").parse())
            .map_err(|_| {
                ConfigError(format!(
                    "Invalid value {host} for configuration listeners: not an IP address"
                ))
            })?;
        let advertised = config.get("advertised.listeners");
        (config.advertised_host, config.advertised_port) = if advertised.is_empty() {
            (
                if host.is_empty() {
                    "127.0.0.1".to_string()
                } else {
                    host
                },
                port,
            )
        } else {
            parse_listener("advertised.listeners", &advertised)?
        };
        config.log_dirs = config
            .get("log.dirs")
            .split(',')
            .map(|d| PathBuf::from(d.trim()))
            .collect();
        Ok(config)
    }

    /// Parses a `server.properties` file's text: `key=value` lines, `#`/`!` comments.
    pub fn parse_properties(text: &str) -> Vec<(String, String)> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter_map(|l| {
                let (k, v) = l.split_once(['=', ':'])?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect()
    }

    /// The value of a broker config: explicit, else its default. Unknown names give "".
    pub fn get(&self, name: &str) -> String {
        self.explicit
            .get(name)
            .cloned()
            .or_else(|| self.derived(name))
            .or_else(|| definition(name).map(|d| d.default.to_string()))
            .unwrap_or_default()
    }

    /// Whether a broker config was set explicitly (or derived from one that was).
    pub fn is_explicit(&self, name: &str) -> bool {
        self.explicit.contains_key(name) || self.derived(name).is_some()
    }

    /// Kafka's older spellings: `log.retention.hours/minutes`, `log.roll.hours`.
    fn derived(&self, name: &str) -> Option<String> {
        let scaled = |key: &str, factor: i64| {
            let v: i64 = self.explicit.get(key)?.parse().ok()?;
            Some(if v < 0 { v } else { v * factor }.to_string())
        };
        match name {
            "log.retention.ms" => scaled("log.retention.minutes", 60_000)
                .or_else(|| scaled("log.retention.hours", 3_600_000)),
            "log.roll.ms" => scaled("log.roll.hours", 3_600_000),
            _ => None,
        }
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).trim().parse().unwrap_or_default()
    }

    /// The effective value of a topic config: the topic's override, else the broker's synonym.
    pub fn topic_value(&self, name: &str, overrides: Option<&BTreeMap<String, String>>) -> String {
        overrides
            .and_then(|o| o.get(name).cloned())
            .or_else(|| topic_config(name).map(|d| self.get(d.broker_synonym)))
            .unwrap_or_default()
    }

    /// The storage settings of a topic.
    pub fn log_config(&self, overrides: Option<&BTreeMap<String, String>>) -> LogConfig {
        let num = |name: &str| -> i64 {
            self.topic_value(name, overrides)
                .trim()
                .parse()
                .unwrap_or_default()
        };
        // Retention deletes only where the cleanup policy includes "delete": a compacted-only
        // topic (like __consumer_offsets) keeps every segment.
        let deletes = self
            .topic_value("cleanup.policy", overrides)
            .split(',')
            .any(|p| p.trim() == "delete");
        let retention = |name: &str| if deletes { num(name) } else { -1 };
        LogConfig {
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
        let log = config.log_config(None);
        assert_eq!(log.retention_ms, 604_800_000);
        assert_eq!(log.max_message_bytes, 1_048_588);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = BrokerConfig::from_pairs(pairs(&[("num.partitions", "many")])).unwrap_err();
        assert!(err.0.contains("num.partitions"), "{err}");
        let err = BrokerConfig::from_pairs(pairs(&[("listeners", "http://x")])).unwrap_err();
        assert!(err.0.contains("listeners"), "{err}");
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
        let log = config.log_config(Some(&topic));
        assert_eq!(log.retention_ms, 3_600_000);
        assert_eq!(log.retention_bytes, 10);
        assert_eq!(log.max_message_bytes, 5000);
        assert_eq!(config.listener.port(), 0);
        let compacted: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact".to_string())].into();
        assert_eq!(config.log_config(Some(&compacted)).retention_ms, -1);
    }
}
