//! `gregor topics`: create, list, describe, alter and delete topics, like kafka-topics.sh.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use rdkafka::admin::{
    AdminClient, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::common::{admin, admin_opts, block_on, emit, metadata, out, request_error};
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor topics --create --topic orders --partitions 6 --config retention.ms=86400000
  gregor topics --create --topic orders --if-not-exists
  gregor topics --list
  gregor topics --describe --topic orders
  gregor topics --alter --topic orders --partitions 12
  gregor topics --delete --topic orders --if-exists
  gregor topics --bootstrap-server broker1:9092 --command-config client.properties --list";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["create", "list", "describe", "alter", "delete"])))]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Create a topic.
    #[arg(long)]
    pub create: bool,
    /// List topic names, one per line.
    #[arg(long)]
    pub list: bool,
    /// Describe one topic (--topic) or all of them.
    #[arg(long)]
    pub describe: bool,
    /// Increase the partition count of a topic (--partitions).
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// The topic to act on; for --describe and --delete also a regular expression that matches
    /// whole names (as kafka-topics.sh reads it).
    #[arg(long)]
    pub topic: Option<String>,
    /// Partition count (create: the broker's num.partitions if omitted; alter: the new count).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor (create: the broker's default if omitted).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// --create: explicit replicas per partition, partitions separated by commas and broker ids
    /// by colons (`1:2,2:3` is two partitions of two replicas); replaces --partitions and
    /// --replication-factor.
    #[arg(long, value_name = "ASSIGNMENT", conflicts_with_all = ["partitions", "replication_factor"])]
    pub replica_assignment: Option<String>,
    /// A topic config override for --create, KEY=VALUE; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// --create: succeed if the topic already exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// --delete, --alter: succeed if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// --list, --describe: include internal (`__`-prefixed) topics.
    #[arg(long)]
    pub include_internal: bool,
    /// --describe: only topics with config overrides.
    #[arg(long)]
    pub topics_with_overrides: bool,
    /// --describe: only partitions whose ISR is smaller than their replica set.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// --describe: only partitions without a leader.
    #[arg(long)]
    pub unavailable_partitions: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let admin = admin(&args.client)?;
    let timeout = args.client.timeout();
    if args.create {
        create(&admin, &args, timeout)
    } else if args.list {
        let md = metadata(&admin, &args.client)?;
        let mut names: Vec<&str> = md
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|n| args.include_internal || !n.starts_with("__"))
            .collect();
        names.sort_unstable();
        let mut buf = String::new();
        for n in names {
            out!(buf, "{n}");
        }
        emit(&buf)
    } else if args.describe {
        describe(&admin, &args)
    } else if args.alter {
        let topic = required_topic(&args)?;
        let Some(n) = args.partitions else {
            bail!("--alter needs --partitions (the new partition count)");
        };
        if n < 1 {
            bail!("--partitions must be at least 1");
        }
        metadata(&admin, &args.client)?;
        let res = block_on(admin.create_partitions(
            &[NewPartitions::new(topic, n as usize)],
            &admin_opts(timeout),
        ))
        .map_err(|e| request_error(e, &args.client))?;
        match res.into_iter().next() {
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) if args.if_exists => {}
            Some(Err((_, code))) => bail!("cannot alter topic {topic}: {code}"),
            _ => {}
        }
        println!("Altered topic {topic}: {n} partitions.");
        Ok(())
    } else {
        let pattern = required_topic(&args)?;
        let md = metadata(&admin, &args.client)?;
        let mut names: Vec<&str> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && selects(pattern, t.name(), args.include_internal))
            .map(|t| t.name())
            .collect();
        if names.is_empty() {
            if args.if_exists {
                return Ok(());
            }
            // Asked by exact name: let the broker answer (UnknownTopicOrPartition).
            names.push(pattern);
        }
        let res = block_on(admin.delete_topics(&names, &admin_opts(timeout)))
            .map_err(|e| request_error(e, &args.client))?;
        for outcome in res {
            match outcome {
                Ok(topic) => println!("Deleted topic {topic}."),
                Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {}
                Err((topic, code)) => bail!("cannot delete topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}

/// Whether `--topic pattern` selects `name`: the exact name, or (as kafka-topics.sh reads
/// `--topic`) a regular expression matching the whole name; internal topics only by exact name
/// unless `--include-internal`.
fn selects(pattern: &str, name: &str, include_internal: bool) -> bool {
    name == pattern
        || ((include_internal || !name.starts_with("__"))
            && regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(name)))
}

fn required_topic(args: &Args) -> anyhow::Result<&str> {
    args.topic.as_deref().context("--topic is required")
}

fn create(
    admin: &AdminClient<DefaultClientContext>,
    args: &Args,
    timeout: Duration,
) -> anyhow::Result<()> {
    let topic = required_topic(args)?;
    let mut configs = Vec::with_capacity(args.config.len());
    for c in &args.config {
        let (k, v) = c
            .split_once('=')
            .with_context(|| format!("--config {c}: expected KEY=VALUE"))?;
        configs.push((k.trim(), v.trim()));
    }
    let assignment = args
        .replica_assignment
        .as_deref()
        .map(parse_assignment)
        .transpose()?;
    let replicas: Vec<&[i32]> = assignment.iter().flatten().map(Vec::as_slice).collect();
    let mut new = match &assignment {
        Some(partitions) => NewTopic::new(
            topic,
            partitions.len() as i32,
            TopicReplication::Variable(&replicas),
        ),
        None => NewTopic::new(
            topic,
            args.partitions.unwrap_or(-1),
            TopicReplication::Fixed(args.replication_factor.unwrap_or(-1)),
        ),
    };
    for (k, v) in &configs {
        new = new.set(k, v);
    }
    metadata(admin, &args.client)?;
    let res = block_on(admin.create_topics(&[new], &admin_opts(timeout)))
        .map_err(|e| request_error(e, &args.client))?;
    match res.into_iter().next() {
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if args.if_not_exists => Ok(()),
        Some(Err((_, code))) => bail!("cannot create topic {topic}: {code}"),
        _ => {
            println!("Created topic {topic}.");
            Ok(())
        }
    }
}

/// `1:2,2:3` → [[1, 2], [2, 3]] (kafka-topics.sh's --replica-assignment).
fn parse_assignment(text: &str) -> anyhow::Result<Vec<Vec<i32>>> {
    text.split(',')
        .map(|partition| {
            partition
                .split(':')
                .map(|id| id.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!("--replica-assignment {text}: expected broker ids like 1:2,2:3")
                })
        })
        .collect()
}

fn describe(admin: &AdminClient<DefaultClientContext>, args: &Args) -> anyhow::Result<()> {
    let md = metadata(admin, &args.client)?;
    let mut topics: Vec<_> = match &args.topic {
        Some(pattern) => {
            let matching: Vec<_> = md
                .topics()
                .iter()
                .filter(|t| {
                    t.error().is_none() && selects(pattern, t.name(), args.include_internal)
                })
                .collect();
            if matching.is_empty() {
                bail!("topic {pattern} does not exist");
            }
            matching
        }
        None => md
            .topics()
            .iter()
            .filter(|t| args.include_internal || !t.name().starts_with("__"))
            .filter(|t| t.error().is_none())
            .collect(),
    };
    topics.sort_by_key(|t| t.name());
    let mut buf = String::new();
    let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
    // Best effort: the TopicId comes from DescribeTopics (not in rdkafka's safe API).
    let ids =
        super::librdkafka::topic_ids(admin, &names, args.client.timeout()).unwrap_or_default();
    let configs = topic_overrides(admin, &names, args.client.timeout())?;
    // With a partition filter, only the matching partitions are listed (as kafka-topics.sh does).
    let partition_filter = args.under_replicated_partitions || args.unavailable_partitions;
    for t in topics {
        let cfg = configs.get(t.name()).map(String::as_str).unwrap_or("");
        if args.topics_with_overrides && cfg.is_empty() {
            continue;
        }
        let rf = t
            .partitions()
            .iter()
            .map(|p| p.replicas().len())
            .max()
            .unwrap_or(0);
        let id = ids.get(t.name()).map(String::as_str).unwrap_or("-");
        if !partition_filter {
            out!(
                buf,
                "Topic: {}\tTopicId: {id}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {cfg}",
                t.name(),
                t.partitions().len()
            );
        }
        let mut parts: Vec<_> = t
            .partitions()
            .iter()
            .filter(|p| {
                !partition_filter
                    || (args.under_replicated_partitions && p.isr().len() < p.replicas().len())
                    || (args.unavailable_partitions && p.leader() < 0)
            })
            .collect();
        parts.sort_by_key(|p| p.id());
        for p in parts {
            out!(
                buf,
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                t.name(),
                p.id(),
                if p.leader() < 0 {
                    "none".to_string()
                } else {
                    p.leader().to_string()
                },
                join(p.replicas()),
                join(p.isr())
            );
        }
    }
    emit(&buf)
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// `k=v,k2=v2` of each topic's configs whose source is not the default.
fn topic_overrides(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, String>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let specs: Vec<ResourceSpecifier> = names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let res = block_on(admin.describe_configs(&specs, &admin_opts(timeout)))
        .context("cannot describe topic configs")?;
    let mut out = BTreeMap::new();
    for (name, r) in names.iter().zip(res) {
        let Ok(r) = r else { continue };
        let mut entries: Vec<String> = r
            .entries
            .iter()
            .filter(|e| e.source != ConfigSource::Default && e.source != ConfigSource::Unknown)
            .map(|e| {
                let v = if e.is_sensitive {
                    "(sensitive)"
                } else {
                    e.value.as_deref().unwrap_or("null")
                };
                format!("{}={v}", e.name)
            })
            .collect();
        entries.sort();
        out.insert(name.to_string(), entries.join(","));
    }
    Ok(out)
}
