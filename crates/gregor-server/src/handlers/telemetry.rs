//! Client telemetry (KIP-714) and ListConfigResources: thin adapters to `crate::telemetry` and the
//! metadata image.

use gregor_metadata::client_metrics::ClientAttributes;
use gregor_metadata::controller::{RESOURCE_CLIENT_METRICS, RESOURCE_GROUP, RESOURCE_TOPIC};
use gregor_metadata::ConfigResource;
use gregor_protocol::kafka::messages::list_config_resources_response::ConfigResource as Listed;
use gregor_protocol::kafka::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
    ListConfigResourcesRequest, ListConfigResourcesResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};
use gregor_protocol::kafka::ResponseError;

use super::{str_bytes, Client};
use crate::broker::Broker;
use crate::services::now_ms;
use crate::telemetry::{Caller, ACCEPTED_COMPRESSION};

/// The client's attributes (its instance id is the telemetry runtime's to fill in).
fn caller<'a>(
    client_id: &'a str,
    client: &'a Client,
    (address, port): &'a (String, String),
) -> Caller<'a> {
    Caller {
        attributes: ClientAttributes {
            client_instance_id: "",
            client_id,
            client_software_name: client.software.as_ref().map(|(name, _)| name.as_str()),
            client_software_version: client.software.as_ref().map(|(_, v)| v.as_str()),
            client_source_address: address,
            client_source_port: port,
        },
    }
}

fn source(client: &Client) -> (String, String) {
    (client.peer.ip().to_string(), client.peer.port().to_string())
}

pub fn get_subscriptions(
    broker: &Broker,
    client_id: &str,
    client: &Client,
    request: GetTelemetrySubscriptionsRequest,
) -> GetTelemetrySubscriptionsResponse {
    let source = source(client);
    let granted = broker.telemetry.get_subscriptions(
        &broker.metadata.image(),
        request.client_instance_id,
        &caller(client_id, client, &source),
        now_ms(),
    );
    match granted {
        Ok(g) => GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(g.client_instance_id)
            .with_subscription_id(g.subscription_id)
            .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
            .with_push_interval_ms(g.subscription.interval_ms)
            .with_telemetry_max_bytes(
                i32::try_from(broker.telemetry.max_bytes()).unwrap_or(i32::MAX),
            )
            .with_delta_temporality(true)
            .with_requested_metrics(
                g.subscription
                    .metrics
                    .iter()
                    .map(|m| str_bytes(m))
                    .collect(),
            ),
        Err(code) => GetTelemetrySubscriptionsResponse::default().with_error_code(code),
    }
}

pub fn push(
    broker: &Broker,
    client_id: &str,
    client: &Client,
    request: PushTelemetryRequest,
) -> PushTelemetryResponse {
    let source = source(client);
    let pushed = broker.telemetry.push(
        &broker.metadata.image(),
        &caller(client_id, client, &source),
        &request,
        now_ms(),
    );
    PushTelemetryResponse::default().with_error_code(pushed.err().unwrap_or(0))
}

/// ListConfigResources (formerly ListClientMetricsResources): v0 lists the client metrics
/// subscriptions; v1 the resources of the types asked for (none asked: all gregor has configs
/// for: topics, groups with configs, client metrics subscriptions).
pub fn list_config_resources(
    broker: &Broker,
    version: i16,
    request: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let supported = [RESOURCE_TOPIC, RESOURCE_GROUP, RESOURCE_CLIENT_METRICS];
    let types: Vec<i8> = if version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if request.resource_types.is_empty() {
        supported.to_vec()
    } else {
        request.resource_types
    };
    if types.iter().any(|t| !supported.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let image = broker.metadata.image();
    let listed = |name: &str, resource_type: i8| {
        Listed::default()
            .with_resource_name(str_bytes(name))
            .with_resource_type(resource_type)
    };
    let mut resources = Vec::new();
    if types.contains(&RESOURCE_TOPIC) {
        resources.extend(image.topics.keys().map(|t| listed(t, RESOURCE_TOPIC)));
    }
    for resource in image.configs.keys() {
        match resource {
            ConfigResource::Group(g) if types.contains(&RESOURCE_GROUP) => {
                resources.push(listed(g, RESOURCE_GROUP))
            }
            ConfigResource::ClientMetrics(s) if types.contains(&RESOURCE_CLIENT_METRICS) => {
                resources.push(listed(s, RESOURCE_CLIENT_METRICS))
            }
            _ => {}
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}
