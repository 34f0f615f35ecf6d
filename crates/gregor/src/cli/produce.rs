//! `gregor produce`: the console producer (like kafka-console-producer.sh).
//!
//! One record per input line. With `parse.key=true` (or `--key-separator`) a line is
//! `KEY<sep>VALUE`; with `parse.headers=true` it starts with `h1:v1,h2:v2<TAB>`. Every record that
//! fails is reported on stderr with its line number, and the command then exits non-zero.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args as ClapArgs;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::consume::topic_partitions;
use super::ClientArgs;

#[derive(ClapArgs, Debug)]
#[command(after_help = "Examples:
  echo hello | gregor produce --topic events
  gregor produce --topic events --file records.txt
  printf 'k1:v1\\nk2:v2\\n' | gregor produce --topic events --property parse.key=true --property key.separator=:
  printf 'k1=v1\\n' | gregor produce --topic events --key-separator =
  printf 'h1:a,h2:b\\tk1\\tv1\\n' | gregor produce --topic events --property parse.headers=true --property parse.key=true
  gregor produce --topic events --header source=cli --partition 2 --acks 1 --compression-type zstd
  gregor produce --topic events --file batch.txt --transactional-id loader-1   # all lines or none

Line-reader properties (--property, as in Kafka): parse.key (false), key.separator (TAB),
parse.headers (false), headers.delimiter (TAB), headers.separator (,), headers.key.separator (:),
null.marker (none: a key or value equal to it is sent as null, e.g. a tombstone),
ignore.error (false: a line without its separator is a failed record).")]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A line-reader property, KEY=VALUE (parse.key, key.separator, parse.headers, ...);
    /// repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub reader_property: Vec<String>,
    /// Split each line into KEY<SEP>VALUE at the first SEP (implies parse.key=true).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header added to every record, KEY=VALUE; repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub header: Vec<String>,
    /// Send every record to this partition (default: the partitioner decides).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// Compression codec of the record batches.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression_type: String,
    /// Enable the idempotent producer.
    #[arg(long)]
    pub idempotence: bool,
    /// Produce all lines in one transaction with this transactional id: committed at the end of
    /// the input (within transaction.timeout.ms, 60 s by default), aborted if any line fails.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// A producer property, KEY=VALUE (librdkafka names; same as -X); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub producer_property: Vec<String>,
}

/// How lines become records.
struct LineFormat {
    parse_key: bool,
    key_separator: Vec<u8>,
    parse_headers: bool,
    headers_delimiter: Vec<u8>,
    headers_separator: Vec<u8>,
    header_key_separator: Vec<u8>,
    ignore_error: bool,
    /// A value (or key) equal to this is sent as null (Kafka's `null.marker`, KIP-810).
    null_marker: Option<Vec<u8>>,
}

impl LineFormat {
    fn new(args: &Args) -> anyhow::Result<LineFormat> {
        let mut props = HashMap::new();
        for p in &args.reader_property {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--property {p}: expected KEY=VALUE"))?;
            props.insert(k.trim().to_string(), v.to_string());
        }
        let flag = |name: &str| -> anyhow::Result<bool> {
            match props.get(name).map(|s| s.trim().to_ascii_lowercase()) {
                None => Ok(false),
                Some(v) if v == "true" => Ok(true),
                Some(v) if v == "false" => Ok(false),
                Some(v) => bail!("--property {name}={v}: expected true or false"),
            }
        };
        let text = |name: &str, default: &str| -> Vec<u8> {
            props
                .get(name)
                .map(|s| unescape(s))
                .unwrap_or_else(|| default.as_bytes().to_vec())
        };
        let known = [
            "parse.key",
            "key.separator",
            "parse.headers",
            "headers.delimiter",
            "headers.separator",
            "headers.key.separator",
            "ignore.error",
            "null.marker",
        ];
        if let Some(unknown) = props.keys().find(|k| !known.contains(&k.as_str())) {
            bail!(
                "--property {unknown}: unknown line-reader property (known: {}); client settings go in -X or --producer-property",
                known.join(", ")
            );
        }
        let mut f = LineFormat {
            parse_key: flag("parse.key")?,
            key_separator: text("key.separator", "\t"),
            parse_headers: flag("parse.headers")?,
            headers_delimiter: text("headers.delimiter", "\t"),
            headers_separator: text("headers.separator", ","),
            header_key_separator: text("headers.key.separator", ":"),
            ignore_error: flag("ignore.error")?,
            null_marker: props.get("null.marker").map(|m| unescape(m)),
        };
        if let Some(sep) = &args.key_separator {
            f.parse_key = true;
            f.key_separator = unescape(sep);
        }
        for (name, sep) in [
            ("key.separator", &f.key_separator),
            ("headers.delimiter", &f.headers_delimiter),
            ("headers.separator", &f.headers_separator),
            ("headers.key.separator", &f.header_key_separator),
        ] {
            if sep.is_empty() {
                bail!("{name} must not be empty");
            }
        }
        Ok(f)
    }

    /// (headers, key, value) of one line.
    #[allow(clippy::type_complexity)]
    fn parse<'a>(
        &self,
        line: &'a [u8],
    ) -> Result<(Vec<(String, Option<&'a [u8]>)>, Option<&'a [u8]>, &'a [u8]), String> {
        let mut rest = line;
        let mut headers = vec![];
        if self.parse_headers {
            match split_once(rest, &self.headers_delimiter) {
                Some((h, r)) => {
                    rest = r;
                    if !h.is_empty() {
                        for pair in split_all(h, &self.headers_separator) {
                            let (k, v) = match split_once(pair, &self.header_key_separator) {
                                Some((k, v)) => (k, Some(v)),
                                None if self.ignore_error => (pair, None),
                                None => {
                                    return Err(format!(
                                        "header {:?} has no key separator {:?}",
                                        String::from_utf8_lossy(pair),
                                        String::from_utf8_lossy(&self.header_key_separator)
                                    ))
                                }
                            };
                            headers.push((String::from_utf8_lossy(k).into_owned(), v));
                        }
                    }
                }
                None if self.ignore_error => {}
                None => {
                    return Err(format!(
                        "no headers delimiter {:?} found",
                        String::from_utf8_lossy(&self.headers_delimiter)
                    ))
                }
            }
        }
        if self.parse_key {
            match split_once(rest, &self.key_separator) {
                Some((k, v)) => return Ok((headers, Some(k), v)),
                None if self.ignore_error => return Ok((headers, None, rest)),
                None => {
                    return Err(format!(
                        "no key separator {:?} found",
                        String::from_utf8_lossy(&self.key_separator)
                    ))
                }
            }
        }
        Ok((headers, None, rest))
    }
}

fn split_once<'a>(s: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = s.windows(sep.len()).position(|w| w == sep)?;
    Some((&s[..at], &s[at + sep.len()..]))
}

fn split_all<'a>(mut s: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = vec![];
    while let Some((a, b)) = split_once(s, sep) {
        out.push(a);
        s = b;
    }
    out.push(s);
    out
}

/// `\t`, `\n`, `\r`, `\\` escapes, so separators can be given on a command line.
pub(crate) fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('t') => out.push(b'\t'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                out.push(b'\\');
                let mut buf = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

/// Collects delivery failures, keyed by input line number.
#[derive(Default)]
struct Reports {
    failed: Mutex<Vec<(usize, String)>>,
}

impl ClientContext for Reports {
    // Connection errors are reported per record (or by the metadata check), not as log noise.
    fn error(&self, _: KafkaError, _: &str) {}
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, line: Box<usize>) {
        if let Err((e, _)) = result {
            let msg = format!("line {line}: {e}");
            eprintln!("gregor produce: {msg}");
            self.failed.lock().unwrap().push((*line, msg));
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format = LineFormat::new(&args)?;
    let mut config = args.client.client_config()?;
    config.set("acks", &args.acks);
    config.set("compression.type", &args.compression_type);
    if args.idempotence {
        config.set("enable.idempotence", "true");
    }
    if let Some(id) = &args.transactional_id {
        config.set("transactional.id", id);
    }
    for pair in &args.producer_property {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--producer-property {pair}: expected KEY=VALUE"))?;
        config.set(k.trim(), v.trim());
    }
    let timeout = args.client.timeout();
    if config.get("message.timeout.ms").is_none() {
        config.set("message.timeout.ms", timeout.as_millis().to_string());
    }
    let mut fixed_headers = vec![];
    for h in &args.header {
        let (k, v) = h
            .split_once('=')
            .with_context(|| format!("--header {h}: expected KEY=VALUE"))?;
        fixed_headers.push((k.to_string(), v.to_string()));
    }

    let input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };

    let producer: BaseProducer<Reports> = config
        .create_with_context(Reports::default())
        .context("cannot create the producer")?;
    let partitions = topic_partitions(producer.client(), &args.topic, timeout)?;
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            bail!(
                "topic {} has no partition {p} (it has {})",
                args.topic,
                partitions.len()
            );
        }
    }
    if args.transactional_id.is_some() {
        producer
            .init_transactions(timeout)
            .context("cannot initialize transactions")?;
        producer
            .begin_transaction()
            .context("cannot begin the transaction")?;
    }

    let mut parse_errors = 0usize;
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("cannot read input")?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (headers, key, value) = match format.parse(&line) {
            Ok(parts) => parts,
            Err(e) => {
                eprintln!("gregor produce: line {number}: {e}");
                parse_errors += 1;
                continue;
            }
        };
        let mut owned = OwnedHeaders::new_with_capacity(headers.len() + fixed_headers.len());
        for (k, v) in headers.iter().map(|(k, v)| (k.as_str(), *v)).chain(
            fixed_headers
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_bytes()))),
        ) {
            owned = owned.insert(Header { key: k, value: v });
        }
        let is_null = |part: &[u8]| format.null_marker.as_deref() == Some(part);
        let mut record =
            BaseRecord::<[u8], [u8], Box<usize>>::with_opaque_to(&args.topic, Box::new(number));
        if !is_null(value) {
            record = record.payload(value);
        }
        if let Some(k) = key.filter(|k| !is_null(k)) {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if !headers.is_empty() || !fixed_headers.is_empty() {
            record = record.headers(owned);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    eprintln!("gregor produce: line {number}: {e}");
                    parse_errors += 1;
                    break;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }

    if args.transactional_id.is_some() {
        // All or nothing: a line that could not be sent aborts the whole transaction.
        if parse_errors > 0 {
            // A BaseProducer serves delivery reports only when polled, which abort waits for.
            let _ = producer.flush(timeout);
            producer
                .abort_transaction(timeout)
                .context("cannot abort the transaction")?;
            bail!("{parse_errors} of {number} records failed; the transaction was aborted");
        }
        if let Err(e) = producer.commit_transaction(timeout) {
            // A record that failed on the broker makes the commit fail; end it explicitly.
            let _ = producer.flush(timeout);
            let aborted = producer.abort_transaction(timeout).is_ok();
            bail!(
                "cannot commit the transaction: {e}{}",
                if aborted { "; it was aborted" } else { "" }
            );
        }
    }
    // message.timeout.ms bounds every record, so this returns once each has a report.
    producer
        .flush(timeout + Duration::from_secs(5))
        .context("cannot flush the producer")?;
    let failed = producer.context().failed.lock().unwrap().len() + parse_errors;
    if failed > 0 {
        bail!("{failed} of {number} records failed");
    }
    Ok(())
}
