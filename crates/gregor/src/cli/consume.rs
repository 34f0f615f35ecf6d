//! `gregor consume`: the console consumer (like kafka-console-consumer.sh and `kcat -C`).
//!
//! Without `--group` it assigns partitions directly (no group join, nothing committed); with
//! `--group` it subscribes and commits the offsets of the records it printed.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args as ClapArgs;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::ClientArgs;

#[derive(ClapArgs, Debug)]
#[command(after_help = "Examples:
  gregor consume --topic events --from-beginning
  gregor consume --topic events --from-beginning --max-messages 10 --format '%k=%s@%o\\n'
  gregor consume --topic events --partition 0 --offset 42 --timeout 5000
  gregor consume --topic events --group billing --from-beginning
  gregor consume --topic events --from-beginning --output json --timeout 2000

Format tokens (kcat -f): %t topic, %p partition, %o offset, %k key, %s value, %K key length,
%S value length, %T timestamp (ms, -1 if none), %h headers (k=v,k2=v2), %% a percent sign;
escapes \\n \\t \\r \\\\ \\0. A null key or value prints as nothing (length -1).")]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset when there is no committed offset (the default is latest).
    #[arg(long)]
    pub from_beginning: bool,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start in --partition: an offset, earliest or latest.
    #[arg(long, value_name = "N|earliest|latest", requires = "partition")]
    pub offset: Option<String>,
    /// Join this consumer group (subscribe) and commit the offsets of printed records.
    #[arg(long)]
    pub group: Option<String>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no record arrived for this many milliseconds (default: wait forever).
    #[arg(long, visible_alias = "timeout-ms", value_name = "MS")]
    pub timeout: Option<u64>,
    /// read_committed skips aborted transactions and waits at the last stable offset.
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_committed", "read_uncommitted"])]
    pub isolation_level: String,
    /// Output template (kcat -f style; see below).
    #[arg(long, default_value = "%s\\n", conflicts_with = "output")]
    pub format: String,
    /// json: one JSON object per line (topic, partition, offset, timestamp, key, value, headers).
    #[arg(long, value_parser = ["json"])]
    pub output: Option<String>,
    /// A consumer property, KEY=VALUE (librdkafka names; same as -X); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub consumer_property: Vec<String>,
}

/// The partitions of `topic`, from a Metadata request; fails with a one-line error when the
/// cluster is unreachable or the topic does not exist.
pub(crate) fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<i32>> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unreachable_error(e, timeout))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("topic {topic} is not in the metadata response"))?;
    if let Some(e) = t.error() {
        let code = e;
        if code == rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
            bail!("topic {topic} does not exist");
        }
        bail!(
            "topic {topic}: {}",
            rdkafka::error::RDKafkaErrorCode::from(code)
        );
    }
    let mut parts: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    parts.sort_unstable();
    Ok(parts)
}

/// A client context that drops librdkafka's "global error" callbacks (connection refused, all
/// brokers down, ...): the tools report failures themselves, once.
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, _: KafkaError, _: &str) {}
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// A flag set by SIGINT or SIGTERM, so Ctrl-C ends the loop and the group's final commit still
/// runs, as with kafka-console-consumer. The handlers are installed before this returns.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        set.store(true, Ordering::Relaxed);
    });
    Ok(flag)
}

/// A clearer message for the usual "cannot reach the cluster" case.
pub(crate) fn unreachable_error(e: KafkaError, timeout: Duration) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("timed out") || text.contains("TimedOut") || text.contains("transport") {
        anyhow::anyhow!(
            "cannot reach the cluster within {}s ({text})",
            timeout.as_secs()
        )
    } else {
        anyhow::anyhow!(text)
    }
}

enum Piece {
    Lit(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    KeyLen,
    ValueLen,
    Timestamp,
    Headers,
}

fn parse_format(f: &str) -> anyhow::Result<Vec<Piece>> {
    let bytes = super::produce::unescape(f);
    let mut out = vec![];
    let mut lit = vec![];
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            lit.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(&c) = bytes.get(i + 1) else {
            bail!("--format ends with a lone %");
        };
        i += 2;
        let piece = match c {
            b'%' => {
                lit.push(b'%');
                continue;
            }
            b't' => Piece::Topic,
            b'p' => Piece::Partition,
            b'o' => Piece::Offset,
            b'k' => Piece::Key,
            b's' => Piece::Value,
            b'K' => Piece::KeyLen,
            b'S' => Piece::ValueLen,
            b'T' => Piece::Timestamp,
            b'h' => Piece::Headers,
            other => bail!("--format: unknown token %{}", other as char),
        };
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(piece);
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

fn timestamp_ms(m: &BorrowedMessage<'_>) -> Option<i64> {
    m.timestamp().to_millis()
}

fn write_formatted(
    out: &mut impl Write,
    pieces: &[Piece],
    m: &BorrowedMessage<'_>,
) -> io::Result<()> {
    let len = |b: Option<&[u8]>| b.map_or(-1, |b| b.len() as i64);
    for p in pieces {
        match p {
            Piece::Lit(b) => out.write_all(b)?,
            Piece::Topic => out.write_all(m.topic().as_bytes())?,
            Piece::Partition => write!(out, "{}", m.partition())?,
            Piece::Offset => write!(out, "{}", m.offset())?,
            Piece::Key => out.write_all(m.key().unwrap_or_default())?,
            Piece::Value => out.write_all(m.payload().unwrap_or_default())?,
            Piece::KeyLen => write!(out, "{}", len(m.key()))?,
            Piece::ValueLen => write!(out, "{}", len(m.payload()))?,
            Piece::Timestamp => write!(out, "{}", timestamp_ms(m).unwrap_or(-1))?,
            Piece::Headers => {
                if let Some(hs) = m.headers() {
                    for (i, h) in hs.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(h.key.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(h.value.unwrap_or_default())?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_json(out: &mut impl Write, m: &BorrowedMessage<'_>) -> io::Result<()> {
    let text = |b: Option<&[u8]>| match b {
        Some(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        None => serde_json::Value::Null,
    };
    let headers: Vec<serde_json::Value> = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| serde_json::json!({"key": h.key, "value": text(h.value)}))
                .collect()
        })
        .unwrap_or_default();
    let v = serde_json::json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": timestamp_ms(m),
        "key": text(m.key()),
        "value": text(m.payload()),
        "headers": headers,
    });
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")
}

fn start_offset(args: &Args) -> anyhow::Result<Offset> {
    Ok(match args.offset.as_deref() {
        None if args.from_beginning => Offset::Beginning,
        None => Offset::End,
        Some("earliest") | Some("beginning") => Offset::Beginning,
        Some("latest") | Some("end") => Offset::End,
        Some(n) => {
            let n: i64 = n.parse().ok().filter(|n| *n >= 0).with_context(|| {
                format!("--offset {n}: expected a non-negative number, earliest or latest")
            })?;
            Offset::Offset(n)
        }
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let pieces = parse_format(&args.format)?;
    let json = args.output.is_some();
    if args.group.is_some() && (args.offset.is_some() || args.partition.is_some()) {
        bail!("--partition and --offset cannot be used with --group");
    }
    let start = start_offset(&args)?;
    let timeout = args.client.timeout();
    let mut config = args.client.client_config()?;
    config
        .set("isolation.level", &args.isolation_level)
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        );
    if let Some(g) = &args.group {
        config
            .set("group.id", g)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false");
    } else {
        // Assign only: librdkafka wants a group id for that, but nothing is ever committed
        // under it, so no group appears on the broker.
        config.set("enable.auto.commit", "false");
        if config.get("group.id").is_none() {
            config.set("group.id", "gregor-console-consumer");
        }
    }
    for pair in &args.consumer_property {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--consumer-property {pair}: expected KEY=VALUE"))?;
        config.set(k.trim(), v.trim());
    }
    let consumer: BaseConsumer<Quiet> = config
        .create_with_context(Quiet)
        .context("cannot create the consumer")?;
    let partitions = topic_partitions(consumer.client(), &args.topic, timeout)?;
    if args.group.is_some() {
        consumer
            .subscribe(&[&args.topic])
            .context("cannot subscribe")?;
    } else {
        let mut tpl = TopicPartitionList::new();
        match args.partition {
            Some(p) if !partitions.contains(&p) => {
                bail!("topic {} has no partition {p}", args.topic)
            }
            Some(p) => {
                tpl.add_partition_offset(&args.topic, p, start)?;
            }
            None => {
                for p in &partitions {
                    tpl.add_partition_offset(&args.topic, *p, start)?;
                }
            }
        }
        consumer.assign(&tpl).context("cannot assign partitions")?;
    }

    let idle = args.timeout.map(Duration::from_millis);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut last = Instant::now();
    let started = Instant::now();
    let mut assigned = args.group.is_none();
    let interrupted = stop_on_signal()?;
    let result: anyhow::Result<()> = loop {
        if args.max_messages.is_some_and(|max| count >= max) || interrupted.load(Ordering::Relaxed)
        {
            break Ok(());
        }
        // In a group, the idle clock starts once partitions are assigned (joining takes a
        // while), or after --timeout-secs if none ever are.
        if !assigned {
            assigned =
                consumer.assignment().is_ok_and(|a| a.count() > 0) || started.elapsed() >= timeout;
            if assigned {
                last = Instant::now();
            }
        }
        if assigned && idle.is_some_and(|idle| last.elapsed() >= idle) {
            break Ok(());
        }
        let wait = match idle {
            Some(idle) => idle
                .saturating_sub(last.elapsed())
                .min(Duration::from_millis(200)),
            None => Duration::from_millis(200),
        };
        match consumer.poll(wait) {
            None => {
                if let Err(e) = out.flush() {
                    break Err(e.into());
                }
            }
            Some(Err(e)) => break Err(anyhow::anyhow!("consume failed: {e}")),
            Some(Ok(m)) => {
                last = Instant::now();
                let written = if json {
                    write_json(&mut out, &m)
                } else {
                    write_formatted(&mut out, &pieces, &m)
                };
                if let Err(e) = written {
                    break Err(e.into());
                }
                count += 1;
                if args.group.is_some() {
                    if let Err(e) = consumer.store_offset_from_message(&m) {
                        break Err(anyhow::anyhow!("cannot store offset: {e}"));
                    }
                }
            }
        }
    };
    let flushed = out.flush();
    if args.group.is_some() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing was consumed, so nothing to commit.
            Err(KafkaError::ConsumerCommit(rdkafka::error::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => eprintln!("gregor consume: cannot commit offsets: {e}"),
        }
        consumer.unsubscribe();
    }
    eprintln!("Processed a total of {count} messages");
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        Err(e) => Err(e),
        Ok(()) => match flushed {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(Into::into),
        },
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
