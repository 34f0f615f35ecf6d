//! `gregor topics`: create, list, describe, alter and delete topics, like kafka-topics.sh.
//!
//! This file also holds the admin helpers that `configs` and `cluster` share (`admin`, `ffi`,
//! `print_table`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use super::ClientArgs;

/// `writeln!` into a `String`, which cannot fail.
macro_rules! out {
    ($buf:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($buf, $($arg)*);
    }};
}
pub(crate) use out;

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
    /// The topic to act on.
    #[arg(long)]
    pub topic: Option<String>,
    /// Partition count (create: the broker's num.partitions if omitted; alter: the new count).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor (create: the broker's default if omitted).
    #[arg(long)]
    pub replication_factor: Option<i32>,
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
        let topic = required_topic(&args)?;
        metadata(&admin, &args.client)?;
        let res = block_on(admin.delete_topics(&[topic], &admin_opts(timeout)))
            .map_err(|e| request_error(e, &args.client))?;
        match res.into_iter().next() {
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) if args.if_exists => Ok(()),
            Some(Err((_, code))) => bail!("cannot delete topic {topic}: {code}"),
            _ => {
                println!("Deleted topic {topic}.");
                Ok(())
            }
        }
    }
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
    let rf = args.replication_factor.unwrap_or(-1);
    let mut new = NewTopic::new(
        topic,
        args.partitions.unwrap_or(-1),
        TopicReplication::Fixed(rf),
    );
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

fn describe(admin: &AdminClient<DefaultClientContext>, args: &Args) -> anyhow::Result<()> {
    let md = metadata(admin, &args.client)?;
    let mut topics: Vec<_> = match &args.topic {
        Some(name) => {
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .filter(|t| t.error().is_none())
                .with_context(|| format!("topic {name} does not exist"))?;
            vec![t]
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
    for t in topics {
        let rf = t
            .partitions()
            .iter()
            .map(|p| p.replicas().len())
            .max()
            .unwrap_or(0);
        let id = ids.get(t.name()).map(String::as_str).unwrap_or("-");
        let cfg = configs.get(t.name()).map(String::as_str).unwrap_or("");
        out!(
            buf,
            "Topic: {}\tTopicId: {id}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {cfg}",
            t.name(),
            t.partitions().len()
        );
        let mut parts: Vec<_> = t.partitions().iter().collect();
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

// ----- shared helpers for the admin tools -----

/// An AdminClient for `client`: quiet librdkafka logging (errors become our one-line error) and
/// no topic auto-creation from metadata requests, unless the user set them.
pub(crate) fn admin(client: &ClientArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    let mut config = client.client_config()?;
    if config.get("log_level").is_none() {
        config.set("log_level", "0");
    }
    if config.get("allow.auto.create.topics").is_none() {
        config.set("allow.auto.create.topics", "false");
    }
    config.create().context("cannot create the admin client")
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

pub(crate) fn admin_opts(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout))
}

/// Metadata of every topic; also the reachability check with a readable error.
pub(crate) fn metadata(
    admin: &AdminClient<DefaultClientContext>,
    client: &ClientArgs,
) -> anyhow::Result<Metadata> {
    admin
        .inner()
        .fetch_metadata(None, client.timeout())
        .map_err(|e| unreachable(e, client))
}

fn unreachable(e: KafkaError, client: &ClientArgs) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach the cluster at {} within {}s ({e})",
        client.bootstrap_server,
        client.timeout_secs
    )
}

pub(crate) fn request_error(e: KafkaError, client: &ClientArgs) -> anyhow::Error {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::OperationTimedOut) | Some(RDKafkaErrorCode::RequestTimedOut) => {
            unreachable(e, client)
        }
        _ => anyhow::anyhow!("{e}"),
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `rows` under `headers` with left-aligned columns separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut buf = String::new();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        out!(buf, "{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    buf
}
