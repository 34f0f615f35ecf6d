//! `gregor cluster`: cluster id, controller, brokers and the API versions each broker supports.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use gregor_protocol::ApiKey;

use super::common::{admin, emit, metadata, out, table};
use super::librdkafka as ffi;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor cluster
  gregor cluster --bootstrap-server broker1:9092 --output json
  gregor cluster --no-api-versions

API versions are asked of each broker over a plain TCP connection (ApiVersions v0); with
security.protocol other than PLAINTEXT they are skipped.";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

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
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("no address for {host}"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {host}:{port}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // Request header v1: api key 18, version 0, correlation id 1, client id; empty body.
    let client = b"gregor-cluster";
    let mut req = vec![];
    req.extend_from_slice(&18i16.to_be_bytes());
    req.extend_from_slice(&0i16.to_be_bytes());
    req.extend_from_slice(&1i32.to_be_bytes());
    req.extend_from_slice(&(client.len() as i16).to_be_bytes());
    req.extend_from_slice(client);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend(req);
    s.write_all(&frame)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).context("no ApiVersions response")?;
    let size = i32::from_be_bytes(size);
    if !(10..=1_000_000).contains(&size) {
        bail!("bad ApiVersions response size {size}");
    }
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body)?;
    let i16_at = |p: usize| i16::from_be_bytes([body[p], body[p + 1]]);
    // correlation id (4), error code (2), array length (4), then 6 bytes per API.
    let error = i16_at(4);
    if error != 0 {
        bail!("ApiVersions error code {error}");
    }
    let n = i32::from_be_bytes([body[6], body[7], body[8], body[9]]);
    if n < 0 || 10 + n as usize * 6 > body.len() {
        bail!("malformed ApiVersions response");
    }
    let mut apis: Vec<(i16, i16, i16)> = (0..n as usize)
        .map(|i| {
            let p = 10 + i * 6;
            (i16_at(p), i16_at(p + 2), i16_at(p + 4))
        })
        .collect();
    apis.sort_unstable();
    Ok(apis)
}
