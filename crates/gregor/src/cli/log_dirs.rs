//! `gregor log-dirs --describe`: each broker's log directories with the partitions they hold,
//! like kafka-log-dirs.sh. librdkafka has no DescribeLogDirs call, so it goes over plain TCP
//! (PLAINTEXT listeners only) to each broker the cluster metadata names.

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use gregor_protocol::kafka::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::ApiKey;
use serde_json::json;

use super::common::{admin, emit, metadata, table, Output};
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor log-dirs --describe
  gregor log-dirs --describe --topic-list orders,payments --broker-list 1
  gregor log-dirs --describe --output json      # kafka-log-dirs.sh's JSON

Log directories are asked of each broker over a plain TCP connection (librdkafka has no call for
them): PLAINTEXT listeners only.";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Describe the log directories (the only action).
    #[arg(long, required = true)]
    pub describe: bool,
    /// Only these topics (comma-separated); default: all.
    #[arg(long, value_name = "TOPICS", value_delimiter = ',')]
    pub topic_list: Vec<String>,
    /// Only these brokers (comma-separated ids); default: all.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub broker_list: Vec<i32>,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let admin = admin(&args.client)?;
    let md = metadata(&admin, &args.client)?;
    let mut brokers: Vec<_> = md
        .brokers()
        .iter()
        .filter(|b| args.broker_list.is_empty() || args.broker_list.contains(&b.id()))
        .collect();
    brokers.sort_by_key(|b| b.id());
    if let Some(missing) = args
        .broker_list
        .iter()
        .find(|id| !brokers.iter().any(|b| b.id() == **id))
    {
        bail!("broker {missing} is not in the cluster");
    }
    let mut answers = Vec::new();
    for broker in brokers {
        let described: DescribeLogDirsResponse = wire::call(
            (broker.host(), broker.port() as u16),
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default().with_topics(None),
            args.client.timeout(),
        )
        .with_context(|| format!("broker {}", broker.id()))?;
        if described.error_code != 0 {
            bail!(
                "broker {} answered {}",
                broker.id(),
                error_name(described.error_code)
            );
        }
        answers.push((broker.id(), described));
    }
    let shown =
        |topic: &str| args.topic_list.is_empty() || args.topic_list.iter().any(|t| t == topic);
    // (broker, log dir, error, [(partition, size, offset lag, future)], total, usable)
    let mut dirs = Vec::new();
    for (broker, answer) in answers {
        for dir in answer.results {
            let mut partitions: Vec<(String, i64, i64, bool)> = dir
                .topics
                .iter()
                .filter(|t| shown(t.name.as_str()))
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        (
                            format!("{}-{}", t.name.as_str(), p.partition_index),
                            p.partition_size,
                            p.offset_lag,
                            p.is_future_key,
                        )
                    })
                })
                .collect();
            partitions.sort();
            let error = (dir.error_code != 0).then(|| error_name(dir.error_code));
            dirs.push((
                broker,
                dir.log_dir.to_string(),
                error,
                partitions,
                dir.total_bytes,
                dir.usable_bytes,
            ));
        }
    }
    match args.output {
        Output::Json => {
            let mut by_broker: Vec<(i32, Vec<serde_json::Value>)> = Vec::new();
            for (broker, dir, error, partitions, total, usable) in &dirs {
                let value = json!({
                    "logDir": dir,
                    "error": error,
                    "totalBytes": total,
                    "usableBytes": usable,
                    "partitions": partitions.iter().map(|(p, size, lag, future)| json!({
                        "partition": p, "size": size, "offsetLag": lag, "isFuture": future,
                    })).collect::<Vec<_>>(),
                });
                match by_broker.last_mut() {
                    Some((b, list)) if b == broker => list.push(value),
                    _ => by_broker.push((*broker, vec![value])),
                }
            }
            let brokers: Vec<_> = by_broker
                .into_iter()
                .map(|(broker, log_dirs)| json!({"broker": broker, "logDirs": log_dirs}))
                .collect();
            emit(&format!("{}\n", json!({"version": 1, "brokers": brokers})))
        }
        Output::Table => {
            let mut rows = Vec::new();
            for (broker, dir, error, partitions, _total, usable) in &dirs {
                let head = |partition: String, size: String, lag: String, future: String| {
                    vec![
                        broker.to_string(),
                        dir.clone(),
                        error.clone().unwrap_or_else(|| "-".into()),
                        human(*usable),
                        partition,
                        size,
                        lag,
                        future,
                    ]
                };
                if partitions.is_empty() {
                    rows.push(head("-".into(), "-".into(), "-".into(), "-".into()));
                }
                for (p, size, lag, future) in partitions {
                    rows.push(head(
                        p.clone(),
                        size.to_string(),
                        lag.to_string(),
                        future.to_string(),
                    ));
                }
            }
            emit(&table(
                &[
                    "BROKER",
                    "LOG-DIR",
                    "ERROR",
                    "FREE",
                    "PARTITION",
                    "SIZE",
                    "OFFSET-LAG",
                    "FUTURE",
                ],
                &rows,
            ))
        }
    }
}

fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"))
}

/// Bytes in binary units for the table (-1: unknown).
fn human(bytes: i64) -> String {
    if bytes < 0 {
        return "-".into();
    }
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}
