//! DescribeConfigs for topics and brokers: every known config with its value, source and synonyms.

use gregor_protocol::kafka::ResponseError;
use std::sync::Arc;

use gregor_metadata::configs::{ConfigDef, ConfigKind};
use gregor_metadata::TOPIC_CONFIGS;
use gregor_protocol::kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use gregor_protocol::kafka::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::config::broker_config_names;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

// Kafka's ConfigSource values.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn config_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Int { .. } => 3,
        ConfigKind::Long { .. } => 5,
        ConfigKind::ChoiceList(_) => 7,
        ConfigKind::Choice(["true", "false"]) => 1,
        ConfigKind::Choice(_) | ConfigKind::Text => 2,
    }
}

/// One config entry; `synonyms` are `(name, value, source)` from highest precedence down, the
/// first being the effective one.
fn entry(
    def: &ConfigDef,
    synonyms: Vec<(&str, String, i8)>,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let (_, value, source) = synonyms[0].clone();
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(def.name))
        .with_value(Some(str_bytes(&value)))
        .with_config_source(source)
        .with_config_type(config_type(def.kind))
        .with_documentation(None)
        .with_synonyms(if include_synonyms {
            synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(&value)))
                        .with_source(source)
                })
                .collect()
        } else {
            vec![]
        })
}

fn broker_synonyms<'a>(broker: &Broker, def: &'a ConfigDef) -> Vec<(&'a str, String, i8)> {
    let mut synonyms = Vec::new();
    if broker.config.is_explicit(def.broker_synonym) {
        synonyms.push((
            def.broker_synonym,
            broker.config.get(def.broker_synonym),
            STATIC_BROKER_CONFIG,
        ));
    }
    synonyms.push((def.broker_synonym, def.default.to_string(), DEFAULT_CONFIG));
    synonyms
}

pub fn describe_configs(
    broker: &Arc<Broker>,
    _version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = broker.metadata.image();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.as_str();
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_message(None);
            let configs = match resource.resource_type {
                TOPIC => {
                    if !image.topics.contains_key(name) {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Topic '{name}' does not exist"
                            ))));
                    }
                    let overrides = image.topic_configs(name);
                    TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(d.name))
                        .map(|def| {
                            let mut synonyms = Vec::new();
                            if let Some(v) = overrides.and_then(|o| o.get(def.name)) {
                                synonyms.push((def.name, v.clone(), DYNAMIC_TOPIC_CONFIG));
                            }
                            synonyms.extend(broker_synonyms(broker, def));
                            entry(def, synonyms, request.include_synonyms)
                        })
                        .collect()
                }
                BROKER => {
                    if !name.is_empty() && name != broker.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Unexpected broker id, expected {} but received {name}",
                                broker.node_id
                            ))));
                    }
                    broker_config_names()
                        .filter(|d| wanted(d.name))
                        .map(|def| {
                            entry(
                                &def,
                                broker_synonyms(broker, &def),
                                request.include_synonyms,
                            )
                        })
                        .collect()
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(&format!(
                            "Unsupported resource type {other}"
                        ))));
                }
            };
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
