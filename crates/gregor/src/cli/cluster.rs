//! `gregor cluster`: cluster id, controller, brokers (fenced ones too) and the API versions each
//! broker supports, and the metadata quorum's leader, voters and observers.

use std::time::Duration;

use anyhow::bail;
use clap::{Args as ClapArgs, Subcommand};
use gregor_protocol::kafka::messages::{
    describe_quorum_response, ApiVersionsRequest, ApiVersionsResponse, BrokerId,
    DescribeClusterRequest, DescribeClusterResponse, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use gregor_protocol::ApiKey;

use super::common::{admin, emit, metadata, out, table, Output};
use super::librdkafka as ffi;
use super::metadata_quorum;
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor cluster
  gregor cluster --bootstrap-server broker1:9092 --output json
  gregor cluster --no-api-versions
  gregor cluster unregister --id 3

API versions are asked of each broker over a plain TCP connection (ApiVersions v0), fenced
brokers (DescribeCluster v2) and the quorum (DescribeQuorum) of the first bootstrap server;
with security.protocol other than PLAINTEXT they are skipped.";

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
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Unregisters a broker gone for good (like kafka-cluster.sh unregister): the controller
    /// fences it, moving the leadership of its partitions, and forgets its registration.
    Unregister {
        /// The broker's node id.
        #[arg(long)]
        id: i32,
    },
}

/// UnregisterBroker v0 sent to the first bootstrap server.
fn unregister(client: &ClientArgs, id: i32) -> anyhow::Result<()> {
    let (host, port) = metadata_quorum::first_bootstrap(client)?;
    let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
    let response: UnregisterBrokerResponse = wire::call(
        (&host, port),
        ApiKey::UnregisterBroker,
        0,
        &request,
        client.timeout(),
    )?;
    if response.error_code != 0 {
        bail!(
            "UnregisterBroker failed with error {}: {}",
            response.error_code,
            response.error_message.as_deref().unwrap_or("")
        );
    }
    println!("Broker {id} is unregistered.");
    Ok(())
}

struct Broker {
    id: i32,
    host: String,
    port: u16,
    rack: Option<String>,
    /// Registered, but fenced by the controller (no heartbeat): no leader of anything.
    fenced: bool,
    apis: Result<Vec<(i16, i16, i16)>, String>,
}

/// The metadata quorum: its leader, voters and observers.
struct Quorum {
    leader: i32,
    voters: Vec<i32>,
    observers: Vec<i32>,
}

/// A broker as the cluster lists it: id, host, port, rack.
type Listed = (i32, String, u16, Option<String>);

/// The fenced brokers (DescribeCluster v2, fenced brokers included).
fn fenced_brokers(host: &str, port: u16, timeout: Duration) -> anyhow::Result<Vec<Listed>> {
    let request = DescribeClusterRequest::default().with_include_fenced_brokers(true);
    let response: DescribeClusterResponse =
        wire::call((host, port), ApiKey::DescribeCluster, 2, &request, timeout)?;
    if response.error_code != 0 {
        bail!("DescribeCluster error code {}", response.error_code);
    }
    Ok(response
        .brokers
        .iter()
        .filter(|b| b.is_fenced)
        .map(|b| {
            let rack = b.rack.as_ref().map(|r| r.to_string());
            (b.broker_id.0, b.host.to_string(), b.port as u16, rack)
        })
        .collect())
}

fn quorum(host: &str, port: u16, timeout: Duration) -> anyhow::Result<Quorum> {
    let (_, partition) = metadata_quorum::describe_quorum(host, port, timeout)?;
    let ids = |replicas: &[describe_quorum_response::ReplicaState]| {
        replicas.iter().map(|r| r.replica_id.0).collect()
    };
    Ok(Quorum {
        leader: partition.leader_id.0,
        voters: ids(&partition.current_voters),
        observers: ids(&partition.observers),
    })
}

fn ids_text(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Command::Unregister { id }) = args.command {
        return unregister(&args.client, id);
    }
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
    let config = args.client.client_config()?;
    let plaintext = config
        .get("security.protocol")
        .is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
    let (mut fenced, quorum) = if plaintext {
        let (host, port) = metadata_quorum::first_bootstrap(&args.client)?;
        (
            fenced_brokers(&host, port, timeout).unwrap_or_default(),
            quorum(&host, port, timeout).ok(),
        )
    } else {
        (vec![], None)
    };
    fenced.retain(|f| brokers.iter().all(|b| b.0 != f.0));
    let fenced_ids: Vec<i32> = fenced.iter().map(|f| f.0).collect();
    brokers.extend(fenced);
    brokers.sort_by_key(|b| b.0);
    let brokers: Vec<Broker> = brokers
        .into_iter()
        .map(|(id, host, port, rack)| {
            let fenced = fenced_ids.contains(&id);
            let apis = if args.no_api_versions {
                Ok(vec![])
            } else if fenced {
                Err("skipped: fenced".to_string())
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
                fenced,
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
                        "fenced": b.fenced,
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
            let quorum = quorum.map(|q| {
                serde_json::json!({
                    "leader": q.leader, "voters": q.voters, "observers": q.observers,
                })
            });
            let json = serde_json::json!({
                "cluster_id": cluster_id,
                "controller": controller,
                "brokers": list,
                "quorum": quorum,
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
            if let Some(q) = &quorum {
                out!(
                    buf,
                    "Metadata quorum: leader {}, voters {}, observers {}",
                    q.leader,
                    ids_text(&q.voters),
                    ids_text(&q.observers)
                );
            }
            buf.push('\n');
            let rows: Vec<Vec<String>> = brokers
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        format!("{}:{}", b.host, b.port),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                        if b.fenced { "yes" } else { "no" }.into(),
                    ]
                })
                .collect();
            buf.push_str(&table(&["ID", "HOST:PORT", "RACK", "FENCED"], &rows));
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
