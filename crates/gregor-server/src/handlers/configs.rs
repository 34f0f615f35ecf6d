//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, brokers and groups.
//!
//! A topic config's effective value comes from, in order: the topic's override, this broker's
//! dynamic config, the cluster-wide dynamic default, the static config (file, `--override`), the
//! default. A group config's comes from the group's override, else the broker's `group.consumer.*`
//! value. All dynamic configs are metadata records; changes are controller decisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use gregor_metadata::client_metrics::CLIENT_METRICS_CONFIGS;
use gregor_metadata::configs::{ConfigDef, ConfigKind};
use gregor_metadata::controller::{
    ConfigChange, ConfigOp, ControllerError, RESOURCE_BROKER, RESOURCE_CLIENT_METRICS,
    RESOURCE_GROUP, RESOURCE_TOPIC,
};
use gregor_metadata::{
    ConfigLayers, ConfigResource, ControllerReply, ControllerRequest, MetadataImage, GROUP_CONFIGS,
    TOPIC_CONFIGS,
};
use gregor_protocol::kafka::messages::alter_configs_response::AlterConfigsResourceResponse;
use gregor_protocol::kafka::messages::create_topics_response::CreatableTopicConfigs;
use gregor_protocol::kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use gregor_protocol::kafka::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use gregor_protocol::kafka::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use gregor_protocol::kafka::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::config::{
    broker_config_names, BrokerConfig, CLIENT_METRICS_CONFIG, DEFAULT_CONFIG,
    DYNAMIC_DEFAULT_BROKER_CONFIG, DYNAMIC_TOPIC_CONFIG, GROUP_CONFIG,
};

fn config_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Int { .. } | ConfigKind::IntRange { .. } => 3,
        ConfigKind::Long { .. } => 5,
        ConfigKind::Double { .. } => 6,
        ConfigKind::ChoiceList(_) | ConfigKind::ThrottledReplicas => 7,
        ConfigKind::Choice(["true", "false"]) => 1,
        ConfigKind::Choice(_) | ConfigKind::Text => 2,
        ConfigKind::Class(_) => 8,
    }
}

/// One config as described: its effective value and source, whether it can be altered, and
/// `(name, value, source)` synonyms from highest precedence down (the default last).
pub(crate) struct Described {
    pub name: &'static str,
    pub kind: ConfigKind,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    pub synonyms: Vec<(String, String, i8)>,
}

/// Every topic config of a topic with `layers` (its overrides and the dynamic broker configs).
pub(crate) fn describe_topic(config: &BrokerConfig, layers: ConfigLayers) -> Vec<Described> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = layers.topic.and_then(|o| o.get(def.name)) {
                synonyms.push((def.name.to_string(), v.clone(), DYNAMIC_TOPIC_CONFIG));
            }
            // A topic config without a broker synonym has only its own default.
            let synonym = Some(def.broker_synonym).filter(|s| !s.is_empty());
            if let Some(synonym) = synonym {
                synonyms.extend(config.broker_layers(synonym, layers));
                synonyms.push((synonym.to_string(), def.default.to_string(), DEFAULT_CONFIG));
            }
            let (value, source) = match layers.topic.and_then(|o| o.get(def.name)) {
                Some(v) => (v.clone(), DYNAMIC_TOPIC_CONFIG),
                None => synonym
                    .and_then(|s| config.broker_source(s, layers))
                    .unwrap_or_else(|| (def.default.to_string(), DEFAULT_CONFIG)),
            };
            Described {
                name: def.name,
                kind: def.kind,
                value,
                source,
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

fn describe_broker(config: &BrokerConfig, def: &ConfigDef, layers: ConfigLayers) -> Described {
    let mut synonyms = config.broker_layers(def.name, layers);
    synonyms.push((
        def.name.to_string(),
        def.default.to_string(),
        DEFAULT_CONFIG,
    ));
    let (value, source) = config
        .broker_source(def.name, layers)
        .unwrap_or_else(|| (def.default.to_string(), DEFAULT_CONFIG));
    Described {
        name: def.name,
        kind: def.kind,
        value,
        source,
        read_only: !BrokerConfig::is_dynamic(def.name),
        synonyms,
    }
}

/// Every group config of a group with `overrides`. As in Kafka, a config the group does not
/// override reports the broker's value as DEFAULT_CONFIG.
fn describe_group(
    config: &BrokerConfig,
    overrides: Option<&BTreeMap<String, String>>,
) -> Vec<Described> {
    GROUP_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = match overrides.and_then(|o| o.get(def.name)) {
                Some(v) => (v.clone(), GROUP_CONFIG),
                None => (config.get(def.broker_synonym), DEFAULT_CONFIG),
            };
            Described {
                name: def.name,
                kind: def.kind,
                synonyms: vec![(def.name.to_string(), value.clone(), source)],
                value,
                source,
                read_only: false,
            }
        })
        .collect()
}

/// The configs a client metrics subscription sets (none if it does not exist), as Kafka lists
/// them.
fn describe_client_metrics(configs: Option<&BTreeMap<String, String>>) -> Vec<Described> {
    CLIENT_METRICS_CONFIGS
        .iter()
        .filter_map(|def| {
            let value = configs?.get(def.name)?.clone();
            Some(Described {
                name: def.name,
                kind: def.kind,
                synonyms: vec![(def.name.to_string(), value.clone(), CLIENT_METRICS_CONFIG)],
                value,
                source: CLIENT_METRICS_CONFIG,
                read_only: false,
            })
        })
        .collect()
}

fn entry(described: Described, include_synonyms: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(described.name))
        .with_value(Some(str_bytes(&described.value)))
        .with_config_source(described.source)
        .with_read_only(described.read_only)
        .with_config_type(config_type(described.kind))
        .with_documentation(None)
        .with_synonyms(if include_synonyms {
            described
                .synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(&name))
                        .with_value(Some(str_bytes(&value)))
                        .with_source(source)
                })
                .collect()
        } else {
            vec![]
        })
}

/// The configs of a created topic, as CreateTopics v5+ returns them.
pub(crate) fn created_topic_configs(
    broker: &Broker,
    image: &MetadataImage,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    describe_topic(
        &broker.config,
        image.broker_configs().with_topic(Some(overrides)),
    )
    .into_iter()
    .map(|d| {
        CreatableTopicConfigs::default()
            .with_name(str_bytes(d.name))
            .with_value(Some(str_bytes(&d.value)))
            .with_read_only(d.read_only)
            .with_config_source(d.source)
            .with_is_sensitive(false)
    })
    .collect()
}

pub fn describe_configs(
    broker: &Arc<Broker>,
    _version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = broker.metadata.image();
    let config = &broker.config;
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.as_str();
            let wanted = |d: &Described| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == d.name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_message(None);
            let described: Vec<Described> = match resource.resource_type {
                RESOURCE_TOPIC => {
                    if !image.topics.contains_key(name) {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Topic '{name}' does not exist"
                            ))));
                    }
                    describe_topic(config, image.topic_configs(name))
                }
                // The cluster-wide default resource lists only the dynamic defaults set, as Kafka.
                RESOURCE_BROKER if name.is_empty() => image
                    .broker_configs()
                    .broker(None)
                    .into_iter()
                    .flatten()
                    .filter_map(|(key, value)| {
                        let def = broker_config_names().find(|d| d.name == key)?;
                        Some(Described {
                            name: def.name,
                            kind: def.kind,
                            value: value.clone(),
                            source: DYNAMIC_DEFAULT_BROKER_CONFIG,
                            read_only: false,
                            synonyms: vec![(
                                key.clone(),
                                value.clone(),
                                DYNAMIC_DEFAULT_BROKER_CONFIG,
                            )],
                        })
                    })
                    .collect(),
                RESOURCE_GROUP if name.is_empty() => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes("Group name must not be empty")));
                }
                RESOURCE_GROUP => describe_group(
                    config,
                    image.configs.get(&ConfigResource::Group(name.to_string())),
                ),
                RESOURCE_CLIENT_METRICS => describe_client_metrics(
                    image
                        .configs
                        .get(&ConfigResource::ClientMetrics(name.to_string())),
                ),
                RESOURCE_BROKER => {
                    if name != broker.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(str_bytes(&format!(
                                "Unexpected broker id, expected {} but received {name}",
                                broker.node_id
                            ))));
                    }
                    broker_config_names()
                        .map(|def| describe_broker(config, &def, image.broker_configs()))
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
            result.with_configs(
                described
                    .into_iter()
                    .filter(wanted)
                    .map(|d| entry(d, request.include_synonyms))
                    .collect(),
            )
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Asks the controller for a config change of one resource (only checked when `validate_only`).
async fn change_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    request: ControllerRequest,
) -> Result<(), ControllerError> {
    let reply = broker.controller.call(request, validate_only).await?;
    if let ControllerReply::Done { changed } = reply {
        if !validate_only && changed > 0 {
            tracing::info!(resource_type, resource = name, changed, "altered configs");
        }
    }
    Ok(())
}

fn error_parts(outcome: Result<(), ControllerError>) -> (i16, Option<String>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(e.message)),
    }
}

pub async fn alter_configs(
    broker: &Arc<Broker>,
    _version: i16,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        let configs: Vec<(String, Option<String>)> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let name = r.resource_name.as_str();
        let decision = ControllerRequest::AlterConfigs {
            resource_type: r.resource_type,
            name: name.to_string(),
            configs,
            group_bounds: broker.config.group_config_bounds(),
        };
        let outcome = change_resource(
            broker,
            r.resource_type,
            name,
            request.validate_only,
            decision,
        )
        .await;
        let (code, message) = error_parts(outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message.as_deref().map(str_bytes)),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    _version: i16,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        let changes: Result<Vec<ConfigChange>, ControllerError> = r
            .configs
            .iter()
            .map(|c| {
                let op =
                    ConfigOp::from_code(c.config_operation).ok_or_else(|| ControllerError {
                        code: ResponseError::InvalidRequest.code(),
                        message: format!(
                            "Unknown config operation {} for {}",
                            c.config_operation, c.name
                        ),
                    })?;
                Ok(ConfigChange {
                    name: c.name.to_string(),
                    op,
                    value: c.value.as_ref().map(|v| v.to_string()),
                })
            })
            .collect();
        let name = r.resource_name.as_str();
        let outcome = match changes {
            Ok(changes) => {
                let decision = ControllerRequest::IncrementalAlterConfigs {
                    resource_type: r.resource_type,
                    name: name.to_string(),
                    changes,
                    group_bounds: broker.config.group_config_bounds(),
                };
                change_resource(
                    broker,
                    r.resource_type,
                    name,
                    request.validate_only,
                    decision,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let (code, message) = error_parts(outcome);
        responses.push(
            IncrementalResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message.as_deref().map(str_bytes)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
