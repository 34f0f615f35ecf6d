//! ListOffsets (by time, earliest, latest) and the long-poll Fetch.

mod common;

use std::time::{Duration, Instant};

use common::{admin_opts, block_on, send_ok, wait_for_partitions, Gregor, Rec, DEADLINE};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

fn offset_for_time(g: &Gregor, topic: &str, ts: i64) -> Offset {
    let consumer = g.consumer(&[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .unwrap();
    let res = consumer
        .offsets_for_times(tpl, Duration::from_secs(20))
        .expect("offsets_for_times");
    let elem = res.find_partition(topic, 0).expect("partition in result");
    assert!(elem.error().is_ok(), "ts {ts}: {:?}", elem.error());
    elem.offset()
}

#[test]
fn offsets_by_timestamp_and_watermarks() {
    let g = Gregor::start(&[]);
    let topic = "times";
    // Timestamps in 1970: keep retention from deleting them.
    let admin = g.admin();
    let res = block_on(admin.create_topics(
        &[NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("retention.ms", "-1")],
        &admin_opts(),
    ))
    .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    wait_for_partitions(&admin, topic, 1);

    // Empty partition first: watermarks 0/0, any timestamp -> End.
    let consumer = g.consumer(&[]);
    assert_eq!(
        consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(20))
            .unwrap(),
        (0, 0)
    );
    assert_eq!(offset_for_time(&g, topic, 0), Offset::End);

    // One record per send so each lands in its own batch.
    let producer = g.producer(&[("linger.ms", "0")]);
    for (i, ts) in [1000i64, 2000, 3000].into_iter().enumerate() {
        let d = send_ok(
            &producer,
            topic,
            &[Rec {
                value: Some(format!("at {ts}").into_bytes()),
                timestamp: Some(ts),
                ..Rec::default()
            }],
        );
        assert_eq!(d[0].offset, i as i64);
    }

    let got = g.consume(topic, &[0], 3);
    let stamps: Vec<Timestamp> = got.iter().map(|m| m.timestamp()).collect();
    assert_eq!(
        stamps,
        vec![
            Timestamp::CreateTime(1000),
            Timestamp::CreateTime(2000),
            Timestamp::CreateTime(3000)
        ]
    );

    for (ts, expected) in [
        (0, Offset::Offset(0)),
        (1000, Offset::Offset(0)),
        (1001, Offset::Offset(1)),
        (1500, Offset::Offset(1)),
        (2000, Offset::Offset(1)),
        (3000, Offset::Offset(2)),
        // Past the newest timestamp: Kafka answers -1, which librdkafka reports as End.
        (4000, Offset::End),
    ] {
        assert_eq!(offset_for_time(&g, topic, ts), expected, "timestamp {ts}");
    }

    let consumer = g.consumer(&[]);
    assert_eq!(
        consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(20))
            .unwrap(),
        (0, 3)
    );

    // Batched records (several per batch): the time index must still find the first record
    // with timestamp >= target inside a batch.
    let producer = g.producer(&[("linger.ms", "50")]);
    let recs: Vec<Rec> = (0..10)
        .map(|i| Rec {
            value: Some(format!("b{i}").into_bytes()),
            timestamp: Some(10_000 + i * 100),
            ..Rec::default()
        })
        .collect();
    let d = send_ok(&producer, topic, &recs);
    assert_eq!(d[0].offset, 3);
    assert_eq!(offset_for_time(&g, topic, 10_450), Offset::Offset(3 + 5));
    assert_eq!(offset_for_time(&g, topic, 10_900), Offset::Offset(3 + 9));
    assert_eq!(offset_for_time(&g, topic, 10_901), Offset::End);
    assert_eq!(offset_for_time(&g, topic, 2500), Offset::Offset(2));
}

#[test]
fn long_poll_fetch_is_woken_by_append() {
    let g = Gregor::start(&[]);
    let topic = "wake";
    g.create_topic(topic, 1);
    // Make sure the producer is connected and knows the leader before timing anything.
    let producer = g.producer(&[("linger.ms", "0")]);
    send_ok(&producer, "warmup", &[Rec::value("w")]);

    // A fetch parked for up to a minute, and half that for the record to arrive: in time only
    // if the append wakes it (no latency measured: a loaded machine cannot fail this).
    let consumer = g.consumer(&[
        ("fetch.wait.max.ms", "60000"),
        ("socket.timeout.ms", "180000"),
    ]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Let the consumer resolve the start offset and park its Fetch on the broker.
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            panic!("empty partition returned {:?}", m.map(|m| m.offset()));
        }
    }

    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            send_ok(&producer, topic, &[Rec::value("wake up")]);
        });
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(
                Instant::now() < deadline,
                "the record did not reach the parked fetch: the append did not wake it"
            );
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    assert_eq!(m.payload(), Some(&b"wake up"[..]));
                    assert_eq!(m.offset(), 0);
                    break;
                }
                Some(Err(e)) => panic!("consumer error: {e}"),
                None => {}
            }
        }
    });
}

/// Fetch v4 for one partition, encoded by hand.
fn fetch_v4(correlation: i32, topic: &str, offset: i64, max_wait_ms: i32) -> Vec<u8> {
    let mut b = vec![];
    b.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id
    b.extend_from_slice(&max_wait_ms.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // min_bytes
    b.extend_from_slice(&(1i32 << 20).to_be_bytes()); // max_bytes
    b.push(0); // isolation_level
    b.extend_from_slice(&1i32.to_be_bytes()); // topics
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // partitions
    b.extend_from_slice(&0i32.to_be_bytes()); // partition
    b.extend_from_slice(&offset.to_be_bytes()); // fetch_offset
    b.extend_from_slice(&(1i32 << 20).to_be_bytes()); // partition_max_bytes
    common::raw_frame(1, 4, correlation, false, &b)
}

/// (correlation id, error code, high watermark, records length) of a one-partition FetchResponse v4.
fn parse_fetch_v4(r: &[u8]) -> (i32, i16, i64, i32) {
    let i16_at = |p: usize| i16::from_be_bytes(r[p..p + 2].try_into().unwrap());
    let i32_at = |p: usize| i32::from_be_bytes(r[p..p + 4].try_into().unwrap());
    let i64_at = |p: usize| i64::from_be_bytes(r[p..p + 8].try_into().unwrap());
    let corr = i32_at(0);
    assert_eq!(i32_at(8), 1, "one topic");
    let name_len = i16_at(12) as usize;
    let mut p = 14 + name_len;
    assert_eq!(i32_at(p), 1, "one partition");
    p += 4;
    assert_eq!(i32_at(p), 0, "partition 0");
    let error = i16_at(p + 4);
    let hw = i64_at(p + 6);
    p += 6 + 8 + 8; // high watermark, last stable offset
    let aborted = i32_at(p);
    p += 4 + 16 * aborted.max(0) as usize;
    let records = i32_at(p);
    (corr, error, hw, records)
}

/// The broker holds a Fetch on an empty partition for max_wait_ms, and answers it as soon as a
/// record is appended.
#[test]
fn raw_fetch_waits_then_wakes_on_append() {
    use std::io::Write;
    let g = Gregor::start(&[]);
    let topic = "rawwait";
    g.create_topic(topic, 1);
    let producer = g.producer(&[("linger.ms", "0")]);
    send_ok(&producer, "warmup", &[Rec::value("w")]);

    let mut s = std::net::TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();

    // Nothing to read: the answer comes after max_wait_ms (1500), empty.
    let t = Instant::now();
    s.write_all(&fetch_v4(1, topic, 0, 1500)).unwrap();
    let r = common::read_raw_response(&mut s);
    let waited = t.elapsed();
    let (corr, error, hw, records) = parse_fetch_v4(&r);
    assert_eq!((corr, error, hw), (1, 0, 0));
    assert!(records <= 0, "records {records}");
    assert!(
        waited >= Duration::from_millis(1400),
        "empty fetch answered after {waited:?}, before max_wait_ms=1500"
    );

    // max_wait_ms 60 s, read timeout 30 s: a record appended 300 ms later must wake it.
    let parsed = std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            send_ok(&producer, topic, &[Rec::value("wake")]);
        });
        s.write_all(&fetch_v4(2, topic, 0, 60_000)).unwrap();
        parse_fetch_v4(&common::read_raw_response(&mut s))
    });
    let (corr, error, hw, records) = parsed;
    assert_eq!((corr, error, hw), (2, 0, 1));
    assert!(records > 0, "the woken fetch carries the record");
}
