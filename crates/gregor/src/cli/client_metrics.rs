//! `gregor client-metrics`: list, describe, alter and delete client metrics subscriptions (KIP-714
//! `CLIENT_METRICS` config resources), like kafka-client-metrics.sh. librdkafka has no call for
//! this resource type or for ListConfigResources, so these go over plain TCP (PLAINTEXT listeners
//! only) to a broker the cluster metadata names.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use gregor_protocol::kafka::messages::describe_configs_request::DescribeConfigsResource;
use gregor_protocol::kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use gregor_protocol::kafka::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListConfigResourcesRequest, ListConfigResourcesResponse,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::ApiKey;

use super::common::{a_broker, emit, out};
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor client-metrics --alter --name producers --metrics org.apache.kafka.producer. --interval 60000 --match client_software_name=librdkafka
  gregor client-metrics --alter --generate-name --metrics '*' --interval 10000
  gregor client-metrics --list
  gregor client-metrics --describe --name producers
  gregor client-metrics --delete --name producers

Clients matching a subscription push the metrics it names every interval; the broker logs what
it receives ('client metrics received'). Subscriptions are reached over a plain TCP connection
(librdkafka has no call for them): PLAINTEXT listeners only.";

/// Kafka's CLIENT_METRICS config resource type.
const CLIENT_METRICS: i8 = 16;
/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "describe", "alter", "delete"])))]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// List the subscriptions' names.
    #[arg(long)]
    pub list: bool,
    /// Show the configs of one subscription (--name) or of all.
    #[arg(long)]
    pub describe: bool,
    /// Create or change a subscription (--name or --generate-name).
    #[arg(long)]
    pub alter: bool,
    /// Remove a subscription (--name).
    #[arg(long, requires = "name")]
    pub delete: bool,
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// With --alter: a new random name.
    #[arg(long, conflicts_with = "name")]
    pub generate_name: bool,
    /// Metric name prefixes, comma-separated; `*` for all.
    #[arg(long, value_name = "PREFIXES")]
    pub metrics: Option<String>,
    /// Push interval in milliseconds (100 to 3600000).
    #[arg(long, value_name = "MS")]
    pub interval: Option<u32>,
    /// Client selectors KEY=REGEX, comma-separated (client_id, client_instance_id,
    /// client_software_name, client_software_version, client_source_address,
    /// client_source_port); all must match.
    #[arg(long = "match", value_name = "SELECTORS")]
    pub selectors: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (host, port) = a_broker(&args.client)?;
    let address = (host.as_str(), port);
    let timeout = args.client.timeout();
    if args.list {
        let mut text = String::new();
        for name in list(address, timeout)? {
            out!(text, "{name}");
        }
        return emit(&text);
    }
    if args.describe {
        let names = match &args.name {
            Some(name) => vec![name.clone()],
            None => list(address, timeout)?,
        };
        let mut text = String::new();
        for name in names {
            out!(text, "Client metrics configs for {name} are:");
            for (key, value) in describe(address, &name, timeout)? {
                out!(text, "  {key}={value}");
            }
        }
        return emit(&text);
    }
    let name = match (&args.name, args.generate_name) {
        (Some(name), _) => name.clone(),
        (None, true) => uuid::Uuid::new_v4().to_string(),
        (None, false) => bail!("--alter needs --name or --generate-name"),
    };
    let changes: Vec<(&str, i8, Option<String>)> = if args.delete {
        ["metrics", "interval.ms", "match"]
            .into_iter()
            .map(|key| (key, DELETE, None))
            .collect()
    } else {
        [
            ("metrics", args.metrics.clone()),
            ("interval.ms", args.interval.map(|i| i.to_string())),
            ("match", args.selectors.clone()),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, SET, Some(v))))
        .collect()
    };
    if changes.is_empty() {
        bail!("give at least one of --metrics, --interval, --match");
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(CLIENT_METRICS)
            .with_resource_name(StrBytes::from_string(name.clone()))
            .with_configs(
                changes
                    .into_iter()
                    .map(|(key, op, value)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_static_str(key))
                            .with_config_operation(op)
                            .with_value(value.map(StrBytes::from_string))
                    })
                    .collect(),
            ),
    ]);
    let response: IncrementalAlterConfigsResponse = wire::call(
        address,
        ApiKey::IncrementalAlterConfigs,
        1,
        &request,
        timeout,
    )?;
    let result = response
        .responses
        .first()
        .context("no result in the answer")?;
    refused(result.error_code, result.error_message.as_deref())?;
    let verb = if args.delete { "Deleted" } else { "Altered" };
    emit(&format!("{verb} client metrics config for {name}.\n"))
}

/// A per-resource error of a config request, with the broker's message (it names the reason, as
/// "Illegal client matching pattern: ...").
fn refused(code: i16, message: Option<&str>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = ResponseError::try_from_code(code).map_or(code.to_string(), |e| format!("{e:?}"));
    bail!("{}", message.unwrap_or(&name))
}

fn list(address: (&str, u16), timeout: Duration) -> anyhow::Result<Vec<String>> {
    let response: ListConfigResourcesResponse = wire::call(
        address,
        ApiKey::ListConfigResources,
        0,
        &ListConfigResourcesRequest::default(),
        timeout,
    )?;
    if response.error_code != 0 {
        bail!("the broker answered error {}", response.error_code);
    }
    let mut names: Vec<String> = response
        .config_resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    names.sort();
    Ok(names)
}

fn describe(
    address: (&str, u16),
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, String)>> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(CLIENT_METRICS)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let response: DescribeConfigsResponse =
        wire::call(address, ApiKey::DescribeConfigs, 4, &request, timeout)?;
    let result = response
        .results
        .first()
        .context("no result in the answer")?;
    refused(result.error_code, result.error_message.as_deref())?;
    Ok(result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_string(),
            )
        })
        .collect())
}
