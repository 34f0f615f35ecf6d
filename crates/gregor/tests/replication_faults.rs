//! Jepsen-style faults against replicated partitions: three brokers (each also a controller),
//! each in its own network namespace; a topic with replication factor 3 and
//! `min.insync.replicas=2`; idempotent `acks=all` producers writing all along; a schedule of
//! faults that takes turns: SIGKILL and restart of the broker leading the most partitions,
//! SIGSTOP then SIGCONT of one broker, one broker cut off the network then healed. Then the
//! checker reads every partition and counts acknowledged records lost or found at another
//! offset, records duplicated, out of their producer's order or never sent, and replicas whose
//! logs differ. Zero of each is the only pass.
//!
//! CI runs it for `GREGOR_REPLICATION_FAULT_SECONDS` (default 30); `scripts/replication-faults
//! --minutes N` runs it longer. Needs root (`ip netns`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{cluster_overrides, wait_until};
use common::netns::Network;
use common::replication::{batches, full_isr, partitions_of, wait_for};
use common::{admin_opts, block_on, Gregor};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 3;
const PRODUCERS: usize = 2;

/// What the producers were told: each acknowledged value's partition and offset.
type Acked = Arc<Mutex<HashMap<String, (i32, i64)>>>;

struct Recorder(Acked);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            self.0
                .lock()
                .unwrap()
                .insert(value, (m.partition(), m.offset()));
        }
    }
}

/// `<producer>-<sequence>`: order is checked per producer.
fn value(producer: usize, sequence: u64) -> String {
    format!("p{producer}-{sequence:09}")
}

fn is_producer(name: &str) -> bool {
    (0..PRODUCERS).any(|i| name == format!("p{i}"))
}

fn parse(value: &str) -> Option<(String, u64)> {
    let (producer, sequence) = value.rsplit_once('-')?;
    Some((producer.to_string(), sequence.parse().ok()?))
}

#[derive(Debug, Default)]
struct Report {
    lost: Vec<String>,
    diverging: Vec<String>,
    duplicated: Vec<String>,
    unexpected: Vec<String>,
    reordered: Vec<(String, i32)>,
}

impl Report {
    fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.diverging.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.reordered.is_empty()
    }
}

/// Compares what was acknowledged (value → partition, offset) with what was read
/// ((partition, offset, value), in offset order per partition).
fn check(acked: &HashMap<String, (i32, i64)>, sent: u64, read: &[(i32, i64, String)]) -> Report {
    let at: HashMap<(i32, i64), &str> = read
        .iter()
        .map(|(p, o, v)| ((*p, *o), v.as_str()))
        .collect();
    let mut report = Report::default();
    for (v, place) in acked {
        match at.get(place) {
            None => report.lost.push(v.clone()),
            Some(found) if found != v => report.diverging.push(v.clone()),
            Some(_) => {}
        }
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut by_producer: BTreeMap<(String, i32), Vec<u64>> = BTreeMap::new();
    for (p, _, v) in read {
        *counts.entry(v).or_default() += 1;
        match parse(v) {
            Some((producer, sequence)) if sequence < sent && is_producer(&producer) => by_producer
                .entry((producer, *p))
                .or_default()
                .push(sequence),
            _ => report.unexpected.push(v.clone()),
        }
    }
    report.duplicated = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(v, _)| v.to_string())
        .collect();
    for ((producer, p), sequences) in by_producer {
        if sequences.windows(2).any(|w| w[0] >= w[1]) {
            report.reordered.push((producer, p));
        }
    }
    report
}

/// Every record of the topic, read from its leaders up to each high watermark.
fn read_all(bootstrap: &str) -> Vec<(i32, i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "fault-checker")
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4")
        .create()
        .unwrap();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
            .unwrap();
        ends.insert(p, high);
        if high > 0 {
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut position: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let mut out = Vec::new();
    // A long run has millions of records to read back.
    let total: i64 = ends.values().sum();
    let deadline = Instant::now() + Duration::from_secs(180 + total as u64 / 20_000);
    while position.iter().any(|(p, at)| *at < ends[p]) {
        assert!(
            Instant::now() < deadline,
            "read stalled at {position:?} of {ends:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.expect("consumer error");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            out.push((m.partition(), m.offset(), v));
            position.insert(m.partition(), m.offset() + 1);
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Pause,
    Cut,
}

#[test]
fn acknowledged_records_survive_kills_pauses_and_partitions() {
    let seconds: u64 = std::env::var("GREGOR_REPLICATION_FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let network = Network::create(3);
    let root = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (0..3).map(|i| network.address(i)).collect();
    let places: Vec<(String, String)> = (0..3)
        .map(|i| (network.namespace(i), hosts[i].clone()))
        .collect();
    let mut overrides = cluster_overrides(root.path(), &hosts);
    for node in &mut overrides {
        node.extend(
            [
                "broker.session.timeout.ms=3000",
                "broker.heartbeat.interval.ms=500",
                "replica.lag.time.max.ms=4000",
                "replica.fetch.backoff.ms=200",
            ]
            .map(String::from),
        );
    }
    let mut nodes = Gregor::start_all_in(&overrides, &places);
    let bootstrap = nodes
        .iter()
        .map(Gregor::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    let new = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    let created = block_on(nodes[0].admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    wait_for(&nodes[0], TOPIC, "every replica in sync", full_isr);

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let (acked, stop, bootstrap) = (acked.clone(), stop.clone(), bootstrap.clone());
            std::thread::spawn(move || {
                let producer: ThreadedProducer<Recorder> = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("broker.address.family", "v4")
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "5")
                    .set("message.timeout.ms", "300000")
                    .set("log_level", "3")
                    .create_with_context(Recorder(acked))
                    .unwrap();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v = value(i, sent);
                    let record = BaseRecord::to(TOPIC).key(&v).payload(&v);
                    match producer.send(record) {
                        Ok(()) => sent += 1,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err((e, _)) => panic!("cannot enqueue: {e}"),
                    }
                    if sent.is_multiple_of(100) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                let unflushed = producer.flush(Duration::from_secs(300));
                (sent, unflushed.is_ok() && producer.in_flight_count() == 0)
            })
        })
        .collect();

    let faults = [Fault::Kill, Fault::Pause, Fault::Cut];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut done = Vec::new();
    let mut round = 0;
    while Instant::now() < deadline || round < faults.len() {
        let fault = faults[round % faults.len()];
        round += 1;
        // The broker leading the most partitions, as any live node reports it.
        let observer = round % 3;
        let leaders = partitions_of(&nodes[observer], TOPIC);
        let mut counts = [0; 3];
        for (leader, _) in &leaders {
            if (1..=3).contains(leader) {
                counts[(*leader - 1) as usize] += 1;
            }
        }
        let victim = (0..3).max_by_key(|&n| (counts[n], n)).unwrap();
        let acked_before = acked.lock().unwrap().len();
        eprintln!(
            "round {round}: {fault:?} node {} ({acked_before} acknowledged)",
            victim + 1
        );
        match fault {
            Fault::Kill => {
                nodes[victim].kill();
                std::thread::sleep(Duration::from_secs(4));
                nodes[victim].restart();
            }
            Fault::Pause => {
                nodes[victim].signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_secs(5));
                nodes[victim].signal(libc::SIGCONT);
            }
            Fault::Cut => {
                network.split(&[victim]);
                std::thread::sleep(Duration::from_secs(6));
                network.heal();
            }
        }
        done.push(fault);
        // Healed: every replica back in sync, and producers getting acknowledgements again,
        // before the next fault.
        let other = (victim + 1) % 3;
        wait_for(&nodes[other], TOPIC, "every replica back in sync", full_isr);
        wait_until(
            "acknowledgements after the fault",
            Duration::from_secs(60),
            || acked.lock().unwrap().len() > acked_before + 100,
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for producer in producers {
        let (n, flushed) = producer.join().unwrap();
        assert!(flushed, "deliveries never reported");
        sent = sent.max(n);
    }

    let read = read_all(&bootstrap);
    let acked = acked.lock().unwrap();
    let report = check(&acked, sent, &read);
    eprintln!(
        "replication faults: {done:?} in {seconds} s; {} acknowledged, {} read; {report:?}",
        acked.len(),
        read.len()
    );
    assert!(report.clean(), "{report:?}");
    assert!(acked.len() > 1000, "too few acknowledged: {}", acked.len());
    // Every replica holds the same log, batch for batch.
    let dir = |n: usize| root.path().join(format!("node-{n}"));
    for p in 0..PARTITIONS {
        wait_until("replicas identical", Duration::from_secs(60), || {
            let first = batches(&dir(1), TOPIC, p);
            (2..=3).all(|n| batches(&dir(n), TOPIC, p) == first)
        });
    }
    drop(nodes);
    drop(network);
}

/// The checker itself finds what it is meant to.
#[test]
fn the_checker_counts_each_kind_of_problem() {
    let acked: HashMap<String, (i32, i64)> = [
        (value(0, 0), (0, 0)),
        (value(0, 1), (0, 1)),
        (value(0, 2), (0, 2)),
        (value(1, 0), (1, 0)),
    ]
    .into_iter()
    .collect();
    let read = vec![
        (0, 0, value(0, 0)),
        (0, 1, value(1, 5)),
        (0, 2, value(0, 1)),
        (0, 3, value(0, 1)),
        (1, 1, "nobody-000000001".to_string()),
    ];
    let report = check(&acked, 10, &read);
    assert_eq!(report.lost, vec![value(1, 0)]);
    assert_eq!(report.diverging.len(), 2, "{report:?}");
    assert_eq!(report.duplicated, vec![value(0, 1)]);
    assert_eq!(report.unexpected, vec!["nobody-000000001".to_string()]);
    assert_eq!(report.reordered, vec![("p0".to_string(), 0)]);
    assert!(!report.clean());
    assert!(check(&HashMap::new(), 0, &[]).clean());
}
