//! Client metrics subscriptions (KIP-714): `CLIENT_METRICS` config resources, each naming the
//! metrics (prefixes, or `*`) that clients matching its selectors should push, and how often.
//! Validation follows Kafka's `ClientMetricsConfigs`; which subscription a client gets is a pure
//! function of the image and the client's attributes.

use std::collections::{BTreeMap, BTreeSet};

use proto_kafka::ResponseError;
use regex::Regex;

use crate::configs::{ConfigDef, ConfigKind};
use crate::controller::ControllerError;
use crate::image::MetadataImage;
use crate::records::ConfigResource;

pub const METRICS: &str = "metrics";
pub const INTERVAL_MS: &str = "interval.ms";
pub const MATCH: &str = "match";
/// The push interval of a subscription that sets none, and of a client that matches none.
pub const DEFAULT_INTERVAL_MS: i32 = 300_000;
const MIN_INTERVAL_MS: i32 = 100;
const MAX_INTERVAL_MS: i32 = 3_600_000;

pub const CLIENT_METRICS_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: METRICS,
        broker_synonym: "",
        default: "",
        kind: ConfigKind::Text,
    },
    ConfigDef {
        name: INTERVAL_MS,
        broker_synonym: "",
        default: "300000",
        kind: ConfigKind::Text,
    },
    ConfigDef {
        name: MATCH,
        broker_synonym: "",
        default: "",
        kind: ConfigKind::Text,
    },
];

/// The client attributes a `match` entry may select on.
pub const SELECTORS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A `match` entry as (selector, full-match pattern), or why it is not one.
fn selector(entry: &str) -> Result<(&str, Regex), ControllerError> {
    let illegal = || ControllerError {
        code: ResponseError::InvalidConfig.code(),
        message: format!("Illegal client matching pattern: {entry}"),
    };
    let (key, pattern) = entry.split_once('=').ok_or_else(illegal)?;
    let (key, pattern) = (key.trim(), pattern.trim());
    if !SELECTORS.contains(&key) || pattern.is_empty() || pattern.contains('=') {
        return Err(illegal());
    }
    let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|_| illegal())?;
    Ok((key, regex))
}

/// Checks a subscription's configs as Kafka does (unknown names are refused earlier).
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    if let Some(interval) = configs.get(INTERVAL_MS) {
        let ok = interval
            .trim()
            .parse::<i32>()
            .is_ok_and(|v| (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&v));
        if !ok {
            return Err(ControllerError {
                code: ResponseError::InvalidRequest.code(),
                message: format!(
                    "Invalid value {interval} for interval.ms, interval must be between \
                     {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS} (1 hour)"
                ),
            });
        }
    }
    for entry in configs
        .get(MATCH)
        .map(String::as_str)
        .map(list)
        .into_iter()
        .flatten()
    {
        selector(entry)?;
    }
    Ok(())
}

/// What KIP-714 knows of a client when it asks for its subscription.
pub struct ClientAttributes<'a> {
    pub client_instance_id: &'a str,
    pub client_id: &'a str,
    pub client_software_name: Option<&'a str>,
    pub client_software_version: Option<&'a str>,
    pub client_source_address: &'a str,
    pub client_source_port: &'a str,
}

impl ClientAttributes<'_> {
    fn get(&self, selector: &str) -> Option<&str> {
        match selector {
            "client_instance_id" => Some(self.client_instance_id),
            "client_id" => Some(self.client_id),
            "client_software_name" => self.client_software_name,
            "client_software_version" => self.client_software_version,
            "client_source_address" => Some(self.client_source_address),
            "client_source_port" => Some(self.client_source_port),
            _ => None,
        }
    }
}

/// The metrics a client is asked to push and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Metric name prefixes, sorted; `["*"]` for all metrics; empty for none.
    pub metrics: Vec<String>,
    pub interval_ms: i32,
}

/// The union of the subscriptions whose every selector fully matches the client (an empty `match`
/// matches every client), at the shortest of their intervals.
pub fn subscription_for(image: &MetadataImage, client: &ClientAttributes) -> Subscription {
    let mut metrics = BTreeSet::new();
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    for (resource, configs) in &image.configs {
        if !matches!(resource, ConfigResource::ClientMetrics(_)) {
            continue;
        }
        let selected = configs
            .get(MATCH)
            .map(String::as_str)
            .map(list)
            .into_iter()
            .flatten()
            .all(|entry| {
                selector(entry).is_ok_and(|(key, regex)| {
                    client.get(key).is_some_and(|value| regex.is_match(value))
                })
            });
        if !selected {
            continue;
        }
        metrics.extend(
            configs
                .get(METRICS)
                .map(String::as_str)
                .map(list)
                .into_iter()
                .flatten()
                .map(str::to_string),
        );
        let interval = configs
            .get(INTERVAL_MS)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_INTERVAL_MS);
        interval_ms = interval_ms.min(interval);
    }
    let metrics = if metrics.contains("*") {
        vec!["*".to_string()]
    } else {
        metrics.into_iter().collect()
    };
    Subscription {
        metrics,
        interval_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MetadataRecord;

    fn image(subscriptions: &[(&str, &[(&str, &str)])]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (name, configs) in subscriptions {
            for (key, value) in *configs {
                image.apply(&MetadataRecord::Config {
                    resource: ConfigResource::ClientMetrics(name.to_string()),
                    name: key.to_string(),
                    value: Some(value.to_string()),
                });
            }
        }
        image
    }

    fn client<'a>(client_id: &'a str, software: &'a str) -> ClientAttributes<'a> {
        ClientAttributes {
            client_instance_id: "id",
            client_id,
            client_software_name: Some(software),
            client_software_version: Some("2.12.1"),
            client_source_address: "127.0.0.1",
            client_source_port: "5000",
        }
    }

    #[test]
    fn a_client_gets_the_union_of_the_subscriptions_it_matches() {
        let image = image(&[
            (
                "producers",
                &[
                    ("metrics", "org.apache.kafka.producer."),
                    ("interval.ms", "1000"),
                    ("match", "client_id=app-.*"),
                ],
            ),
            (
                "rdkafka",
                &[
                    (
                        "metrics",
                        "org.apache.kafka.consumer., org.apache.kafka.producer.",
                    ),
                    ("match", "client_software_name=librdkafka, client_id=app-1"),
                ],
            ),
            ("nobody", &[("metrics", "*"), ("match", "client_id=other")]),
        ]);
        let both = subscription_for(&image, &client("app-1", "librdkafka"));
        assert_eq!(
            both.metrics,
            ["org.apache.kafka.consumer.", "org.apache.kafka.producer."]
        );
        assert_eq!(both.interval_ms, 1000);
        // A selector matches the whole value, and every selector must match.
        let none = subscription_for(&image, &client("xapp-1", "librdkafka"));
        assert_eq!(
            none,
            Subscription {
                metrics: vec![],
                interval_ms: DEFAULT_INTERVAL_MS
            }
        );
        let all = image_with_all();
        assert_eq!(subscription_for(&all, &client("x", "y")).metrics, ["*"]);
    }

    fn image_with_all() -> MetadataImage {
        image(&[("all", &[("metrics", "*")]), ("some", &[("metrics", "a.")])])
    }

    #[test]
    fn bad_selectors_and_intervals_are_refused_as_kafka_does() {
        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        validate(&configs(&[
            ("match", "client_id=a.*, client_source_port=5000"),
            ("interval.ms", "100"),
        ]))
        .unwrap();
        for bad in [
            "client_id",
            "client_id=",
            "host=x",
            "client_id=a=b",
            "client_id=(unclosed",
        ] {
            let e = validate(&configs(&[("match", bad)])).unwrap_err();
            assert_eq!(e.code, ResponseError::InvalidConfig.code(), "{bad}");
            assert_eq!(e.message, format!("Illegal client matching pattern: {bad}"));
        }
        for bad in ["99", "3600001", "soon"] {
            let e = validate(&configs(&[("interval.ms", bad)])).unwrap_err();
            assert_eq!(e.code, ResponseError::InvalidRequest.code(), "{bad}");
        }
    }
}
