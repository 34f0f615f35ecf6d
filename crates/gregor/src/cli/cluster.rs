//! `gregor cluster`: cluster id, controller, brokers and the API versions each broker supports.

use std::time::Duration;

use anyhow::bail;
use clap::Args as ClapArgs;
use gregor_protocol::kafka::messages::{ApiVersionsRequest, ApiVersionsResponse};
use gregor_protocol::ApiKey;

use super::common::{admin, emit, metadata, out, table, Output};
use super::librdkafka as ffi;
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor cluster
  gregor cluster --bootstrap-server broker1:9092 --output json
  gregor cluster --no-api-versions

API versions are asked of each broker over a plain TCP connection (ApiVersions v0); with
security.protocol other than PLAINTEXT they are skipped.";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// Do not ask each broker for its API versions.
    #[arg(long)]
    pub no_api_versions: bool,
}

struct Broker {
    id: i32,
    host: String,
    port: u16,
    rack: Option<String>,
    apis: Result<Vec<(i16, i16, i16)>, String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let admin = admin(&args.client)?;
    let md = metadata(&admin, &args.client)?;
    let timeout = args.client.timeout();
    let (cluster_id, controller, mut brokers) = match ffi::describe_cluster(&admin, timeout) {
        Ok(d) => (
            d.cluster_id,
            d.controller,
            d.nodes
                .into_iter()
                .map(|n| (n.id, n.host, n.port, n.rack))
                .collect::<Vec<_>>(),
        ),
        // Brokers without DescribeCluster: fall back to Metadata.
        Err(_) => {
            let controller = unsafe {
                rdkafka::bindings::rd_kafka_controllerid(
                    admin.inner().native_ptr(),
                    timeout.as_millis().min(i32::MAX as u128) as i32,
                )
            };
            (
                admin.inner().fetch_cluster_id(timeout),
                (controller >= 0).then_some(controller),
                md.brokers()
                    .iter()
                    .map(|b| (b.id(), b.host().to_string(), b.port() as u16, None))
                    .collect(),
            )
        }
    };
    brokers.sort_by_key(|b| b.0);
    let config = args.client.client_config()?;
    let plaintext = config
        .get("security.protocol")
        .is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
    let brokers: Vec<Broker> = brokers
        .into_iter()
        .map(|(id, host, port, rack)| {
            let apis = if args.no_api_versions {
                Ok(vec![])
            } else if !plaintext {
                Err("skipped: not a PLAINTEXT listener".to_string())
            } else {
                api_versions(&host, port, timeout).map_err(|e| format!("{e:#}"))
            };
            Broker {
                id,
                host,
                port,
                rack,
                apis,
            }
        })
        .collect();

    match args.output {
        Output::Json => {
            let list: Vec<serde_json::Value> = brokers
                .iter()
                .map(|b| {
                    let mut v = serde_json::json!({
                        "id": b.id, "host": b.host, "port": b.port, "rack": b.rack,
                    });
                    match &b.apis {
                        Ok(apis) if !args.no_api_versions => {
                            v["api_versions"] = apis
                                .iter()
                                .map(|&(key, min, max)| {
                                    serde_json::json!({
                                        "api": api_name(key), "key": key, "min": min, "max": max,
                                    })
                                })
                                .collect();
                        }
                        Ok(_) => {}
                        Err(e) => v["api_versions_error"] = e.clone().into(),
                    }
                    v
                })
                .collect();
            let json = serde_json::json!({
                "cluster_id": cluster_id,
                "controller": controller,
                "brokers": list,
            });
            emit(&format!("{json}\n"))?;
        }
        Output::Table => {
            let mut buf = String::new();
            out!(buf, "Cluster ID: {}", cluster_id.as_deref().unwrap_or("-"));
            out!(
                buf,
                "Controller: {}",
                controller.map_or("-".to_string(), |c| c.to_string())
            );
            buf.push('\n');
            let rows: Vec<Vec<String>> = brokers
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        format!("{}:{}", b.host, b.port),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            buf.push_str(&table(&["ID", "HOST:PORT", "RACK"], &rows));
            if !args.no_api_versions {
                for b in &brokers {
                    buf.push('\n');
                    out!(buf, "Broker {} ({}:{}) API versions:", b.id, b.host, b.port);
                    match &b.apis {
                        Ok(apis) => {
                            let rows: Vec<Vec<String>> = apis
                                .iter()
                                .map(|&(key, min, max)| {
                                    vec![
                                        api_name(key),
                                        key.to_string(),
                                        min.to_string(),
                                        max.to_string(),
                                    ]
                                })
                                .collect();
                            buf.push_str(&table(&["API", "KEY", "MIN", "MAX"], &rows));
                        }
                        Err(e) => out!(buf, "  unavailable: {e}"),
                    }
                }
            }
            emit(&buf)?;
        }
    }
    Ok(())
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|()| format!("Unknown({key})"), |k| format!("{k:?}"))
}

/// ApiVersions v0 over a fresh TCP connection: `(api key, min, max)` sorted by key.
fn api_versions(host: &str, port: u16, timeout: Duration) -> anyhow::Result<Vec<(i16, i16, i16)>> {
    let response: ApiVersionsResponse = wire::call(
        (host, port),
        ApiKey::ApiVersions,
        0,
        &ApiVersionsRequest::default(),
        timeout,
    )?;
    if response.error_code != 0 {
        bail!("ApiVersions error code {}", response.error_code);
    }
    let mut apis: Vec<(i16, i16, i16)> = response
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.min_version, a.max_version))
        .collect();
    apis.sort_unstable();
    Ok(apis)
}
