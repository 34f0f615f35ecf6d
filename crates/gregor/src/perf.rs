//! `gregor perf produce` and `gregor perf consume`: load generators in the manner of Kafka's
//! `kafka-producer-perf-test.sh` and `kafka-consumer-perf-test.sh`, built on librdkafka (rdkafka).
//!
//! The producer measures per-record latency from `send` to the delivery report into an HDR
//! histogram; the consumer assigns every partition of the topic from the beginning (no consumer
//! group is needed) and measures how fast it reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[derive(Subcommand)]
pub enum PerfCommand {
    /// Produce records as fast as allowed and report throughput and latency
    /// (like kafka-producer-perf-test.sh).
    #[command(
        after_help = "Examples:\n  gregor perf produce --topic t --num-records 1000000 --record-size 1024 --throughput -1 --producer-props acks=1 linger.ms=5\n  gregor perf produce --topic t --num-records 1000000 --record-size 1024 --throughput -1 --transactional-id perf-tx --transaction-duration-ms 100"
    )]
    Produce(ProduceArgs),
    /// Read records of every partition from the beginning and report throughput
    /// (like kafka-consumer-perf-test.sh).
    #[command(after_help = "Example:\n  gregor perf consume --topic t --messages 1000000")]
    Consume(ConsumeArgs),
    /// End-to-end latency: produce one record, wait until a consumer reads it, repeat
    /// (like Kafka's EndToEndLatency tool).
    #[command(
        after_help = "Example:\n  gregor perf e2e --topic latency --num-records 10000 --record-size 100 --acks 1"
    )]
    E2e(E2eArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Args)]
pub struct ProduceArgs {
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_server: String,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    num_records: u64,
    /// Bytes of value per record (no key).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per second; -1 means unlimited.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    throughput: f64,
    /// librdkafka producer properties, KEY=VALUE; repeatable or space separated.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    producer_props: Vec<String>,
    /// Produce in transactions with this transactional id.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// Commit the transaction this often (with --transactional-id).
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    transaction_duration_ms: u64,
    /// Seconds between progress lines (on stderr).
    #[arg(long, default_value_t = 5)]
    reporting_interval: u64,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Args)]
pub struct ConsumeArgs {
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_server: String,
    #[arg(long)]
    topic: String,
    /// Stop after this many records.
    #[arg(long)]
    messages: u64,
    /// librdkafka consumer properties, KEY=VALUE; repeatable or space separated.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    consumer_props: Vec<String>,
    /// Give up when no record arrives for this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Seconds between progress lines (on stderr).
    #[arg(long, default_value_t = 5)]
    reporting_interval: u64,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Args)]
pub struct E2eArgs {
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_server: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 10_000)]
    num_records: u64,
    /// Bytes of value per record.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// librdkafka producer properties, KEY=VALUE.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    producer_props: Vec<String>,
    /// librdkafka consumer properties, KEY=VALUE.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    consumer_props: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

pub fn run(command: PerfCommand) -> anyhow::Result<()> {
    match command {
        PerfCommand::Produce(args) => produce(args),
        PerfCommand::Consume(args) => consume(args),
        PerfCommand::E2e(args) => e2e(args),
    }
}

fn apply_props(config: &mut ClientConfig, props: &[String]) -> anyhow::Result<()> {
    for item in props {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("property {item}: expected KEY=VALUE"))?;
        config.set(k.trim(), v.trim());
    }
    Ok(())
}

const MB: f64 = 1024.0 * 1024.0;

/// How long the producer waits for room when librdkafka's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);

/// Progress lines on stderr: on a terminal one live line rewritten in place, when piped plain
/// lines (one per interval).
struct Progress {
    live: bool,
    shown: AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            live: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            shown: AtomicBool::new(false),
        }
    }

    fn update(&self, line: &str) {
        if self.live {
            eprint!("\r\x1b[2K{line}");
            self.shown.store(true, Ordering::Relaxed);
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends a live line so the final result starts on its own line.
    fn finish(&self) {
        if self.shown.swap(false, Ordering::Relaxed) {
            eprintln!();
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs .. 1 h, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// produce

struct Stats {
    total: Histogram<u64>,
    window: Histogram<u64>,
    window_bytes: u64,
    acked: u64,
    acked_bytes: u64,
    errors: u64,
    last_error: Option<String>,
}

struct PerfProducerContext {
    start: Instant,
    stats: Mutex<Stats>,
}

impl ClientContext for PerfProducerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("producer error: {error}: {reason}");
    }
}

impl ProducerContext for PerfProducerContext {
    /// Nanoseconds since `start` at which the record was handed to librdkafka.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        let now = self.start.elapsed().as_nanos() as u64;
        let latency_us = (now.saturating_sub(sent_at as u64) / 1000).max(1);
        let mut stats = self.stats.lock().unwrap();
        match result {
            Ok(msg) => {
                let bytes = (msg.payload_len() + msg.key().map_or(0, |k| k.len())) as u64;
                stats.total.saturating_record(latency_us);
                stats.window.saturating_record(latency_us);
                stats.acked += 1;
                stats.acked_bytes += bytes;
                stats.window_bytes += bytes;
            }
            Err((e, _)) => {
                stats.errors += 1;
                if stats.last_error.is_none() {
                    eprintln!("delivery failed: {e}");
                }
                stats.last_error = Some(e.to_string());
            }
        }
    }
}

fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.bootstrap_server);
    apply_props(&mut config, &args.producer_props)?;
    let start = Instant::now();
    let context = PerfProducerContext {
        start,
        stats: Mutex::new(Stats {
            total: new_histogram(),
            window: new_histogram(),
            window_bytes: 0,
            acked: 0,
            acked_bytes: 0,
            errors: 0,
            last_error: None,
        }),
    };
    if let Some(id) = &args.transactional_id {
        config.set("transactional.id", id);
    }
    let producer: BaseProducer<PerfProducerContext> = config.create_with_context(context)?;
    // Fail at once on an unreachable cluster, rather than after message.timeout.ms of queued
    // records.
    producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", args.bootstrap_server))?;
    let producer = Arc::new(producer);
    let txn_timeout = Duration::from_secs(60);
    let txn_every = Duration::from_millis(args.transaction_duration_ms.max(1));
    let mut txn_start = Instant::now();
    let mut commits = 0u64;
    if args.transactional_id.is_some() {
        producer.init_transactions(txn_timeout)?;
        producer.begin_transaction()?;
    }
    // A BaseProducer serves delivery reports only when polled, so flush before committing.
    let commit = |producer: &BaseProducer<PerfProducerContext>| -> anyhow::Result<()> {
        producer.flush(txn_timeout)?;
        producer.commit_transaction(txn_timeout)?;
        Ok(())
    };

    // Payload: printable pseudo-random bytes like Kafka's perf test (content is irrelevant
    // without compression, but keeps compressed runs honest).
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let payload: Vec<u8> = (0..args.record_size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'A' + (seed % 26) as u8
        })
        .collect();

    // Progress reporter.
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::new());
    let reporter = {
        let producer = producer.clone();
        let done = done.clone();
        let progress = progress.clone();
        let interval = Duration::from_secs(args.reporting_interval.max(1));
        std::thread::spawn(move || {
            let mut last = Instant::now();
            loop {
                let mut slept = Duration::ZERO;
                while slept < interval && !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    slept += Duration::from_millis(50);
                }
                if done.load(Ordering::Relaxed) {
                    return;
                }
                let secs = last.elapsed().as_secs_f64();
                last = Instant::now();
                let mut s = producer.context().stats.lock().unwrap();
                let n = s.window.len();
                progress.update(&format!(
                    "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms p99",
                    n,
                    n as f64 / secs,
                    s.window_bytes as f64 / MB / secs,
                    s.window.mean() / 1000.0,
                    ms(s.window.max()),
                    ms(s.window.value_at_quantile(0.99)),
                ));
                s.window.reset();
                s.window_bytes = 0;
            }
        })
    };

    let throttle = args.throughput > 0.0;
    let ns_per_record = if throttle { 1e9 / args.throughput } else { 0.0 };
    let send_start = Instant::now();
    for i in 0..args.num_records {
        if throttle {
            // Sleep when ahead of schedule by 1 ms or more (bursts of at most ~1 ms).
            let due = Duration::from_nanos((i as f64 * ns_per_record) as u64);
            let elapsed = send_start.elapsed();
            if due > elapsed + Duration::from_millis(1) {
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - elapsed);
            }
        }
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(
            &args.topic,
            start.elapsed().as_nanos() as usize,
        )
        .payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // Serve the delivery reports that are ready, then let the broker run: rdkafka's
                    // poll with a timeout does not return early, it spins on the clock until the
                    // timeout (a fifth of this tool's CPU was clock reads).
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                    record = r;
                    // Like Kafka's tool (whose send() blocks while the buffer is full), the
                    // clock started before the wait: the original send time is kept.
                }
                Err((e, _)) => anyhow::bail!("send failed: {e}"),
            }
        }
        if i % 64 == 0 {
            producer.poll(Duration::ZERO);
        }
        if args.transactional_id.is_some() && txn_start.elapsed() >= txn_every {
            commit(&producer)?;
            commits += 1;
            producer.begin_transaction()?;
            txn_start = Instant::now();
        }
    }
    if args.transactional_id.is_some() {
        commit(&producer)?;
        commits += 1;
    }
    // Wait for every delivery report.
    let flush_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        producer.poll(Duration::from_millis(100));
        if producer.in_flight_count() == 0 || Instant::now() > flush_deadline {
            break;
        }
    }
    let elapsed = send_start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = reporter.join();
    progress.finish();
    let in_flight = producer.in_flight_count();

    let s = producer.context().stats.lock().unwrap();
    let h = &s.total;
    let rps = s.acked as f64 / elapsed;
    let mbps = s.acked_bytes as f64 / MB / elapsed;
    match args.output {
        Output::Text => {
            println!(
                "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
                s.acked,
                rps,
                mbps,
                h.mean() / 1000.0,
                ms(h.max()),
                ms(h.value_at_quantile(0.50)),
                ms(h.value_at_quantile(0.95)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
            );
            if commits > 0 {
                println!("{commits} transactions committed");
            }
            if s.errors > 0 || in_flight > 0 {
                println!(
                    "{} records failed ({}), {} still in flight",
                    s.errors,
                    s.last_error.as_deref().unwrap_or("-"),
                    in_flight
                );
            }
        }
        Output::Json => {
            let v = serde_json::json!({
                "records": s.acked,
                "errors": s.errors,
                "in_flight": in_flight,
                "record_size": args.record_size,
                "elapsed_s": elapsed,
                "records_per_sec": rps,
                "mb_per_sec": mbps,
                "avg_latency_ms": h.mean() / 1000.0,
                "max_latency_ms": ms(h.max()),
                "p50_ms": ms(h.value_at_quantile(0.50)),
                "p95_ms": ms(h.value_at_quantile(0.95)),
                "p99_ms": ms(h.value_at_quantile(0.99)),
                "p999_ms": ms(h.value_at_quantile(0.999)),
                "transactions": commits,
            });
            println!("{v}");
        }
    }
    if s.errors > 0 || in_flight > 0 {
        anyhow::bail!("{} records failed, {} not delivered", s.errors, in_flight);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// consume

struct PerfConsumerContext;

impl ClientContext for PerfConsumerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("consumer error: {error}: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for PerfConsumerContext {}

fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap_server)
        .set("group.id", "gregor-perf-consumer")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        // librdkafka stops fetching for fetch.queue.backoff.ms (default 1000 ms, "Local: Queue
        // full") whenever its local queue exceeds queued.max.messages.kbytes, which a fast broker
        // triggers at once; that measures the client's backoff, not the broker. Overridable.
        .set("fetch.queue.backoff.ms", "1");
    apply_props(&mut config, &args.consumer_props)?;
    let consumer: BaseConsumer<PerfConsumerContext> =
        config.create_with_context(PerfConsumerContext)?;

    let metadata = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(30))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic)
        .ok_or_else(|| anyhow::anyhow!("topic {} not in metadata", args.topic))?;
    if let Some(err) = topic.error() {
        anyhow::bail!("topic {}: {:?}", args.topic, err);
    }
    let mut tpl = TopicPartitionList::new();
    for p in topic.partitions() {
        tpl.add_partition_offset(&args.topic, p.id(), Offset::Beginning)?;
    }
    if tpl.count() == 0 {
        anyhow::bail!("topic {} has no partitions", args.topic);
    }
    consumer.assign(&tpl)?;

    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last_record = Instant::now();
    let mut records: u64 = 0;
    let mut bytes: u64 = 0;
    let interval = Duration::from_secs(args.reporting_interval.max(1));
    let (mut win_at, mut win_records, mut win_bytes) = (Instant::now(), 0u64, 0u64);
    let timeout = Duration::from_millis(args.timeout);
    let mut timed_out = false;
    let progress = Progress::new();
    while records < args.messages {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last_record = now;
                records += 1;
                let b = (msg.payload_len() + msg.key().map_or(0, |k| k.len())) as u64;
                bytes += b;
                win_records += 1;
                win_bytes += b;
            }
            Some(Err(e)) => eprintln!("consume error: {e}"),
            None => {
                if last_record.elapsed() > timeout {
                    timed_out = true;
                    break;
                }
            }
        }
        if win_records & 0x3ff == 0 && win_at.elapsed() >= interval {
            let secs = win_at.elapsed().as_secs_f64();
            progress.update(&format!(
                "{} records, {:.1} records/sec ({:.2} MB/sec)",
                win_records,
                win_records as f64 / secs,
                win_bytes as f64 / MB / secs
            ));
            (win_at, win_records, win_bytes) = (Instant::now(), 0, 0);
        }
    }
    progress.finish();
    let end = last_record;
    // Throughput over the whole run (assign to last record) and over the fetch phase only
    // (first to last record), like Kafka's "fetch" columns.
    let total_s = end.duration_since(start).as_secs_f64().max(1e-9);
    let fetch_s = first
        .map(|f| end.duration_since(f).as_secs_f64())
        .unwrap_or(0.0)
        .max(1e-9);
    let mb = bytes as f64 / MB;
    match args.output {
        Output::Text => {
            println!(
                "{} records, {:.2} MB, {:.2} MB/sec, {:.1} records/sec in {:.3} s (fetch phase: {:.2} MB/sec, {:.1} records/sec in {:.3} s)",
                records,
                mb,
                mb / total_s,
                records as f64 / total_s,
                total_s,
                mb / fetch_s,
                records as f64 / fetch_s,
                fetch_s
            );
            if timed_out {
                println!("timed out after {} ms without records", args.timeout);
            }
        }
        Output::Json => {
            let v = serde_json::json!({
                "records": records,
                "mb": mb,
                "elapsed_s": total_s,
                "mb_per_sec": mb / total_s,
                "records_per_sec": records as f64 / total_s,
                "fetch_elapsed_s": fetch_s,
                "fetch_mb_per_sec": mb / fetch_s,
                "fetch_records_per_sec": records as f64 / fetch_s,
                "timed_out": timed_out,
            });
            println!("{v}");
        }
    }
    if timed_out && records < args.messages {
        anyhow::bail!("only {records} of {} records read", args.messages);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// end-to-end latency

/// Sends one record to partition 0 and waits until the consumer has read it back and the
/// producer has its acknowledgement; the latency is from the send to the read. Both clients are
/// polled in one loop (a blocking `flush` would add its own polling interval to every sample).
fn round_trip(
    producer: &BaseProducer,
    consumer: &BaseConsumer<PerfConsumerContext>,
    topic: &str,
    payload: &[u8],
) -> anyhow::Result<Duration> {
    let sent = Instant::now();
    producer
        .send(
            BaseRecord::<(), [u8]>::to(topic)
                .partition(0)
                .payload(payload),
        )
        .map_err(|(e, _)| anyhow::anyhow!("send failed: {e}"))?;
    let deadline = sent + Duration::from_secs(30);
    let mut read = None;
    while read.is_none() || producer.in_flight_count() > 0 {
        producer.poll(Duration::ZERO);
        match consumer.poll(Duration::from_millis(1)) {
            Some(Ok(msg)) if msg.payload() == Some(payload) => read = Some(sent.elapsed()),
            Some(Ok(_)) => anyhow::bail!("read a record that was not the one just sent"),
            Some(Err(e)) => anyhow::bail!("consume failed: {e}"),
            None => {}
        }
        if Instant::now() > deadline {
            anyhow::bail!("the record was not read and acknowledged within 30 s");
        }
    }
    Ok(read.expect("the loop ends only once the record was read"))
}

fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    let mut producer_config = ClientConfig::new();
    producer_config
        .set("bootstrap.servers", &args.bootstrap_server)
        .set("acks", &args.acks)
        .set("linger.ms", "0");
    apply_props(&mut producer_config, &args.producer_props)?;
    let producer: BaseProducer = producer_config.create()?;
    let mut consumer_config = ClientConfig::new();
    consumer_config
        .set("bootstrap.servers", &args.bootstrap_server)
        .set("group.id", "gregor-perf-e2e")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "500");
    apply_props(&mut consumer_config, &args.consumer_props)?;
    let consumer: BaseConsumer<PerfConsumerContext> =
        consumer_config.create_with_context(PerfConsumerContext)?;
    // Metadata first: it creates the topic where auto-creation is on.
    consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(30))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&args.topic, 0, Offset::End)?;
    consumer.assign(&tpl)?;

    let mut payload = vec![b'x'; args.record_size.max(8)];
    // Untimed warm-up until one record makes the round trip: the consumer resolves its start
    // ("end") asynchronously, so the first records may land before it and never be read.
    let mut warm = false;
    for attempt in 0..10u64 {
        payload[..8].copy_from_slice(&(u64::MAX - attempt).to_be_bytes());
        producer
            .send(
                BaseRecord::<(), [u8]>::to(&args.topic)
                    .partition(0)
                    .payload(&payload[..]),
            )
            .map_err(|(e, _)| anyhow::anyhow!("send failed: {e}"))?;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && !warm {
            producer.poll(Duration::ZERO);
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(10)) {
                warm = true;
            }
        }
        if warm {
            break;
        }
    }
    if !warm {
        anyhow::bail!(
            "no record came back from topic {} during the warm-up",
            args.topic
        );
    }
    // Drain what else the warm-up sent, so every timed read is the record just sent.
    while producer.in_flight_count() > 0 {
        producer.poll(Duration::from_millis(1));
    }
    while consumer.poll(Duration::from_millis(200)).is_some() {}
    let mut histogram = new_histogram();
    let started = Instant::now();
    for i in 0..args.num_records {
        payload[..8].copy_from_slice(&i.to_be_bytes());
        let latency = round_trip(&producer, &consumer, &args.topic, &payload)?;
        histogram.saturating_record((latency.as_micros() as u64).max(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = &histogram;
    match args.output {
        Output::Text => println!(
            "{} records, avg latency {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({:.1} s)",
            args.num_records,
            h.mean() / 1000.0,
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            elapsed
        ),
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "records": args.num_records,
                "record_size": args.record_size,
                "acks": args.acks,
                "avg_latency_ms": h.mean() / 1000.0,
                "p50_ms": ms(h.value_at_quantile(0.50)),
                "p99_ms": ms(h.value_at_quantile(0.99)),
                "p999_ms": ms(h.value_at_quantile(0.999)),
                "max_latency_ms": ms(h.max()),
                "elapsed_s": elapsed,
            })
        ),
    }
    Ok(())
}
