//! KIP-392, fetch from follower, on three nodes in three racks as separate processes: a leader
//! sends a consumer that names its rack (Fetch v11+) to the in-sync follower in that rack, the
//! follower serves it up to its own high watermark, and librdkafka with `client.rack` reads a
//! whole partition from the follower (its statistics say which broker it fetched from), then
//! from the leader again once that follower is gone.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{cluster_overrides, loopback, wait_until};
use common::replication::{full_isr, partitions_of, wait_for};
use common::{admin_opts, block_on, send_ok, try_call, Gregor, Rec};
use gregor_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use gregor_protocol::kafka::messages::fetch_response::PartitionData;
use gregor_protocol::kafka::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const TOPIC: &str = "near";
const RACK_AWARE: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// Node n's rack.
fn rack(node: i32) -> String {
    format!("rack-{node}")
}

/// One partition's answer to a raw Fetch of `version` from `offset`, as a consumer in `rack`.
fn fetch(node: &Gregor, version: i16, rack: &str, offset: i64) -> PartitionData {
    let answer = fetch_in_session(node, version, rack, offset, (0, -1));
    answer.responses[0].partitions[0].clone()
}

/// The answer to a raw Fetch as [`fetch`]'s, in fetch session (id, epoch): (0, -1) for none,
/// (0, 0) to open one.
fn fetch_in_session(
    node: &Gregor,
    version: i16,
    rack: &str,
    offset: i64,
    (session_id, session_epoch): (i32, i32),
) -> FetchResponse {
    let request = FetchRequest::default()
        .with_session_id(session_id)
        .with_session_epoch(session_epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_rack_id(StrBytes::from_string(rack.to_string()))
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let address = format!("127.0.0.1:{}", node.port);
    let answer = try_call(
        &address,
        ApiKey::Fetch,
        version,
        &request.into(),
        Duration::from_secs(10),
    );
    let Ok(ResponseKind::Fetch(answer)) = answer else {
        panic!("not a Fetch response: {answer:?}");
    };
    answer
}

/// The offset after the last record of a fetched records field (0 for none).
fn next_offset(data: &PartitionData) -> i64 {
    let bytes = data.records.as_deref().unwrap_or_default();
    let (mut pos, mut next) = (0, 0);
    while pos + 27 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap());
        next = base + i64::from(delta) + 1;
        pos += 12 + len;
    }
    next
}

/// Keeps librdkafka's latest statistics.
#[derive(Clone, Default)]
struct Stats(Arc<Mutex<Option<Statistics>>>);

impl ClientContext for Stats {
    fn stats(&self, statistics: Statistics) {
        *self.0.lock().unwrap() = Some(statistics);
    }
}

impl ConsumerContext for Stats {}

impl Stats {
    /// (broker fetched from, leader) of partition 0, once statistics name both.
    fn fetching(&self) -> Option<(i32, i32)> {
        let stats = self.0.lock().unwrap();
        let p = stats.as_ref()?.topics.get(TOPIC)?.partitions.get(&0)?;
        (p.broker >= 0 && p.leader >= 0).then_some((p.broker, p.leader))
    }
}

/// Polls `consumer` until it has `n` more records, their values in order. Errors are
/// librdkafka's reports of a broker it lost (the killed one), not of records.
fn take(consumer: &BaseConsumer<Stats>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    wait_until("the records", Duration::from_secs(60), || {
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            if let Ok(m) = m {
                got.push(String::from_utf8_lossy(m.payload().unwrap()).to_string());
            }
        }
        got.len() >= n
    });
    got
}

#[test]
fn consumers_read_from_the_follower_in_their_rack() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(3));
    for (i, node) in overrides.iter_mut().enumerate() {
        node.push(format!("broker.rack={}", rack(i as i32 + 1)));
        node.push(format!("replica.selector.class={RACK_AWARE}"));
        node.push("broker.session.timeout.ms=2000".into());
        node.push("broker.heartbeat.interval.ms=300".into());
    }
    let mut nodes = Gregor::start_all(&overrides);
    let new = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3));
    let created = block_on(nodes[0].admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    wait_for(&nodes[0], TOPIC, "every replica in sync", full_isr);
    let leader = partitions_of(&nodes[0], TOPIC)[0].0;
    // Node n is nodes[n - 1]: the next one follows.
    let follower = leader % 3 + 1;
    let (at_leader, at_follower) = (
        &nodes[(leader - 1) as usize],
        &nodes[(follower - 1) as usize],
    );
    let records = |prefix: &str| -> Vec<Rec> {
        (0..100)
            .map(|i| Rec::value(format!("{prefix}-{i}")))
            .collect()
    };
    send_ok(
        &at_leader.producer(&[("acks", "all")]),
        TOPIC,
        &records("a"),
    );

    // The leader sends a consumer in the follower's rack there, with no records and the
    // leader's offsets; a consumer in its own rack, an unknown one or none reads here, as
    // does one too old to be sent elsewhere (v10).
    let sent = fetch(at_leader, 11, &rack(follower), 0);
    assert_eq!(
        (
            sent.error_code,
            sent.preferred_read_replica.0,
            sent.high_watermark
        ),
        (0, follower, 100)
    );
    assert_eq!(next_offset(&sent), 0, "no records with a preferred replica");
    // In an incremental fetch session too, though nothing else changed.
    let opened = fetch_in_session(at_leader, 12, &rack(follower), 0, (0, 0));
    assert_ne!(opened.session_id, 0, "a session");
    for epoch in 1..3 {
        let again = fetch_in_session(
            at_leader,
            12,
            &rack(follower),
            0,
            (opened.session_id, epoch),
        );
        let told: Vec<(i16, i32)> = again
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.error_code, p.preferred_read_replica.0))
            .collect();
        assert_eq!(told, [(0, follower)], "session epoch {epoch}");
    }
    for (version, client_rack) in [
        (11, rack(leader)),
        (12, "elsewhere".into()),
        (11, "".into()),
        (10, rack(follower)),
    ] {
        let here = fetch(at_leader, version, &client_rack, 0);
        assert_eq!(
            (
                here.error_code,
                here.preferred_read_replica.0,
                next_offset(&here)
            ),
            (0, -1, 100),
            "v{version} from rack {client_rack:?}"
        );
    }
    // The follower serves consumers of v11+ up to its high watermark, once it has learnt it,
    // and never sends them further; a fetch past its log is out of range.
    wait_until(
        "the follower's high watermark",
        Duration::from_secs(30),
        || fetch(at_follower, 11, &rack(follower), 0).high_watermark == 100,
    );
    let there = fetch(at_follower, 11, &rack(follower), 0);
    assert_eq!(
        (
            there.error_code,
            there.preferred_read_replica.0,
            next_offset(&there)
        ),
        (0, -1, 100)
    );
    let too_far = fetch(at_follower, 12, &rack(follower), 500);
    assert_eq!(too_far.error_code, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(
        fetch(at_follower, 10, &rack(follower), 0).error_code,
        6,
        "NOT_LEADER_OR_FOLLOWER before v11"
    );

    // librdkafka in the follower's rack is sent there and reads every record from it, the
    // ones produced while it reads too.
    let stats = Stats::default();
    let mut config = at_leader.client_config();
    config
        .set("group.id", "near-readers")
        .set("client.rack", rack(follower))
        .set("statistics.interval.ms", "100")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer<Stats> = config.create_with_context(stats.clone()).unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let expected =
        |prefix: &str| -> Vec<String> { (0..100).map(|i| format!("{prefix}-{i}")).collect() };
    assert_eq!(take(&consumer, 100), expected("a"));
    send_ok(
        &at_leader.producer(&[("acks", "all")]),
        TOPIC,
        &records("b"),
    );
    assert_eq!(take(&consumer, 100), expected("b"));
    wait_until(
        "statistics naming the follower",
        Duration::from_secs(30),
        || {
            consumer.poll(Duration::from_millis(50));
            stats.fetching() == Some((follower, leader))
        },
    );

    // The follower gone, the consumer goes back to the leader for what comes next.
    nodes[(follower - 1) as usize].kill();
    let at_leader = &nodes[(leader - 1) as usize];
    wait_for(at_leader, TOPIC, "the follower out of the ISR", |ps| {
        !ps[0].1.contains(&follower)
    });
    send_ok(
        &at_leader.producer(&[("acks", "all")]),
        TOPIC,
        &records("c"),
    );
    assert_eq!(take(&consumer, 100), expected("c"));
    wait_until(
        "statistics naming the leader",
        Duration::from_secs(30),
        || {
            consumer.poll(Duration::from_millis(50));
            stats.fetching() == Some((leader, leader))
        },
    );
}
