//! Produce with rdkafka's FutureProducer, read back with an assigned BaseConsumer.

mod common;

use std::collections::BTreeMap;

use common::{batch_codecs, headers_of, send_all, send_ok, Gregor, Rec};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;

#[test]
fn keys_values_headers_partitions_round_trip() {
    let g = Gregor::start(&[]);
    let topic = "kv";
    g.create_topic(topic, 4);

    let mut recs = Vec::new();
    for i in 0..200usize {
        let p = (i % 4) as i32;
        let mut r = Rec {
            partition: Some(p),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i}-{}", "x".repeat(i % 37)).into_bytes()),
            headers: vec![],
            timestamp: None,
        };
        match i % 10 {
            // Repeated header key, order must be preserved; a header with a null value.
            0 => {
                r.headers = vec![
                    ("h".into(), Some(b"first".to_vec())),
                    ("other".into(), Some(vec![])),
                    ("h".into(), Some(b"second".to_vec())),
                    ("nullh".into(), None),
                    ("h".into(), Some(format!("third-{i}").into_bytes())),
                ]
            }
            // Tombstone: null value.
            1 => r.value = None,
            // Empty (not null) key.
            2 => r.key = Some(vec![]),
            // Null key, empty value.
            3 => {
                r.key = None;
                r.value = Some(vec![]);
            }
            // Binary key and value with every byte.
            4 => {
                r.key = Some((0..=255u8).collect());
                r.value = Some((0..=255u8).rev().collect());
            }
            _ => r.headers = vec![("n".into(), Some(i.to_string().into_bytes()))],
        }
        recs.push(r);
    }

    let producer = g.producer(&[]);
    let deliveries = send_ok(&producer, topic, &recs);
    // Deliveries: the partition asked for, dense offsets per partition in send order.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (r, d) in recs.iter().zip(&deliveries) {
        assert_eq!(d.partition, r.partition.unwrap());
        let n = next.entry(d.partition).or_insert(0);
        assert_eq!(d.offset, *n, "delivery offset in partition {}", d.partition);
        *n += 1;
    }

    let got = g.consume(topic, &[0, 1, 2, 3], recs.len());
    let mut by_partition: BTreeMap<i32, Vec<_>> = BTreeMap::new();
    for m in got {
        assert_eq!(m.topic(), topic);
        by_partition.entry(m.partition()).or_default().push(m);
    }
    assert_eq!(by_partition.len(), 4);
    for (p, msgs) in &by_partition {
        let expected: Vec<&Rec> = recs.iter().filter(|r| r.partition == Some(*p)).collect();
        assert_eq!(msgs.len(), expected.len(), "partition {p}");
        for (i, (m, r)) in msgs.iter().zip(expected).enumerate() {
            assert_eq!(m.offset(), i as i64, "dense offsets in partition {p}");
            assert_eq!(m.key(), r.key.as_deref(), "key at {p}/{i}");
            assert_eq!(m.payload(), r.value.as_deref(), "value at {p}/{i}");
            assert_eq!(headers_of(m), r.headers, "headers at {p}/{i}");
        }
    }
}

#[test]
fn every_compression_codec_round_trips() {
    let g = Gregor::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        g.create_topic(&topic, 1);
        let producer = g.producer(&[("compression.type", codec), ("linger.ms", "20")]);
        let recs: Vec<Rec> = (0..1000)
            .map(|i| Rec {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(
                    format!("{codec} record {i} ")
                        .repeat(1 + i % 20)
                        .into_bytes(),
                ),
                headers: vec![("i".into(), Some(i.to_string().into_bytes()))],
                ..Rec::default()
            })
            .collect();
        let deliveries = send_ok(&producer, &topic, &recs);
        for (i, d) in deliveries.iter().enumerate() {
            assert_eq!(d.offset, i as i64, "{codec}: delivery offset");
        }
        let got = g.consume(&topic, &[0], recs.len());
        for (i, (m, r)) in got.iter().zip(&recs).enumerate() {
            assert_eq!(m.offset(), i as i64, "{codec}");
            assert_eq!(m.key(), r.key.as_deref(), "{codec} key {i}");
            assert_eq!(m.payload(), r.value.as_deref(), "{codec} value {i}");
            assert_eq!(headers_of(m), r.headers, "{codec} headers {i}");
        }
    }
}

/// librdkafka silently sends uncompressed batches when it believes the broker lacks a codec: LZ4
/// needs FindCoordinator (API key 10) in ApiVersions (librdkafka rdkafka_feature.c,
/// RD_KAFKA_FEATURE_LZ4), ZSTD needs Produce v7 / Fetch v10, and all of them need Produce min
/// version 0 (KAFKA-18659). This checks the batch attributes on disk.
#[test]
fn compression_codec_reaches_the_log() {
    let g = Gregor::start(&[]);
    let mut wrong = vec![];
    for (codec, id) in [("gzip", 1u8), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("ondisk-{codec}");
        g.create_topic(&topic, 1);
        let producer = g.producer(&[("compression.type", codec), ("linger.ms", "20")]);
        let recs: Vec<Rec> = (0..500)
            .map(|i| Rec::value(format!("{codec} record {i} ").repeat(10)))
            .collect();
        send_ok(&producer, &topic, &recs);
        g.consume(&topic, &[0], recs.len());
        let codecs = batch_codecs(&g.data_dir().join(format!("{topic}-0")));
        assert!(!codecs.is_empty(), "{codec}: no batches found on disk");
        if !codecs.iter().all(|c| *c == id) {
            wrong.push(format!(
                "{codec}: batch codecs on disk {codecs:?}, expected all {id}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn acks_0_1_all_all_land() {
    let g = Gregor::start(&[]);
    let topic = "acks";
    g.create_topic(topic, 1);
    let mut expected = Vec::new();
    for acks in ["0", "1", "all"] {
        let producer = g.producer(&[("acks", acks)]);
        let recs: Vec<Rec> = (0..300)
            .map(|i| Rec::value(format!("acks={acks} #{i}")))
            .collect();
        let deliveries = send_ok(&producer, topic, &recs);
        if acks != "0" {
            let base = expected.len() as i64;
            for (i, d) in deliveries.iter().enumerate() {
                assert_eq!(d.offset, base + i as i64, "acks={acks}");
            }
        }
        expected.extend(recs);
    }
    let got = g.consume(topic, &[0], expected.len());
    for (i, (m, r)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), r.value.as_deref(), "record {i}");
    }
}

#[test]
fn idempotent_producer_exactly_once_in_order() {
    // Every 7th answer is lost on the way back: the producer resends batches the broker has
    // already written, which it must recognise by their sequence numbers.
    let proxy = common::lossy_proxy::LossyProxy::listen(7);
    let advertised = format!("advertised.listeners=PLAINTEXT://127.0.0.1:{}", proxy.port);
    let g = Gregor::start(&[&advertised]);
    proxy.forward_to(g.port);
    let topic = "idem";
    g.create_topic(topic, 1);
    let producer: rdkafka::producer::FutureProducer = g
        .client_config()
        .set("bootstrap.servers", format!("127.0.0.1:{}", proxy.port))
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "500")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .unwrap();
    let n = 20_000usize;
    let recs: Vec<Rec> = (0..n).map(|i| Rec::value(format!("idem-{i}"))).collect();
    let deliveries = send_ok(&producer, topic, &recs);
    assert!(proxy.cuts() > 0, "no answer was lost");
    proxy.stop_cutting();
    for (i, d) in deliveries.iter().enumerate() {
        assert_eq!(d.offset, i as i64, "delivery {i}");
    }
    let got = g.consume(topic, &[0], n);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(
            m.payload(),
            Some(format!("idem-{i}").as_bytes()),
            "record at offset {i}"
        );
    }
}

/// The broker remembers each producer's last five batches, as Kafka does: any of them resent is
/// answered with its original offsets and not written again; an older one, or one that reuses
/// a sequence with other records, is OUT_OF_ORDER_SEQUENCE_NUMBER.
#[test]
fn idempotent_window_of_five_batches_raw() {
    use common::{init_producer_id, parse_produce_v3, produce_v3, read_raw_response, record_batch};
    use rdkafka::consumer::Consumer;
    use std::io::Write;
    use std::net::TcpStream;

    let g = Gregor::start(&[]);
    let topic = "window";
    g.create_topic(topic, 1);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let (error, pid, epoch) = init_producer_id(&mut s);
    assert_eq!(error, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut corr = 0;
    let mut send = |s: &mut TcpStream, batch: &[u8]| {
        corr += 1;
        s.write_all(&produce_v3(corr, topic, batch)).unwrap();
        let (c, error, base) = parse_produce_v3(&read_raw_response(s));
        assert_eq!(c, corr);
        (error, base)
    };
    // Eight batches of two records: sequences 0, 2, ..., 14 at offsets 0, 2, ..., 14.
    let batches: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let values = [format!("r{}", 2 * i), format!("r{}", 2 * i + 1)];
            let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            record_batch(&values, pid, epoch, 2 * i, now)
        })
        .collect();
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(send(&mut s, b), (0, 2 * i as i64), "batch {i}");
    }
    // The last five, resent in any order: their original offsets, nothing written.
    for i in [7usize, 3, 5, 4, 6] {
        assert_eq!(
            send(&mut s, &batches[i]),
            (0, 2 * i as i64),
            "resent batch {i}"
        );
    }
    // Older than the last five: out of order.
    assert_eq!(send(&mut s, &batches[2]).0, 45, "resent batch 2");
    // The sequence of batch 6 with one record instead of two: not a duplicate.
    let changed = record_batch(&[b"other"], pid, epoch, 12, now);
    assert_eq!(
        send(&mut s, &changed).0,
        45,
        "sequence reused by other records"
    );
    let (_, end) = g
        .consumer(&[])
        .fetch_watermarks(topic, 0, std::time::Duration::from_secs(20))
        .unwrap();
    assert_eq!(end, 16, "something was written twice");
    let got = g.consume(topic, &[0], 16);
    let values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    assert_eq!(values, (0..16).map(|i| format!("r{i}")).collect::<Vec<_>>());
}

#[test]
fn message_max_bytes_enforced() {
    let g = Gregor::start(&["message.max.bytes=100000"]);
    let topic = "big";
    g.create_topic(topic, 1);
    let producer = g.producer(&[("message.max.bytes", "1000000"), ("retries", "0")]);
    // Incompressible-ish payloads (compression is off anyway).
    let payload = |n: usize| -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    };
    let res = send_all(&producer, topic, &[Rec::value(payload(200_000))]);
    match &res[0] {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("200 KB record: expected MessageSizeTooLarge, got {other:?}"),
    }
    let small = payload(50_000);
    let res = send_ok(&producer, topic, &[Rec::value(small.clone())]);
    assert_eq!(
        res[0].offset, 0,
        "the rejected record must not take an offset"
    );
    let got = g.consume(topic, &[0], 1);
    assert_eq!(got[0].payload(), Some(&small[..]));
}

/// Idempotence on the wire: a resent batch is not appended twice (answered NONE with its
/// original offset, as Kafka does), a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45), and the
/// producer state survives a restart.
#[test]
fn idempotent_duplicates_and_gaps_raw() {
    use common::{init_producer_id, parse_produce_v3, produce_v3, read_raw_response, record_batch};
    use rdkafka::consumer::Consumer;
    use std::io::Write;
    use std::net::TcpStream;

    let mut g = Gregor::start(&[]);
    let topic = "rawidem";
    g.create_topic(topic, 1);
    let connect = |g: &Gregor| {
        let s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        s.set_read_timeout(Some(common::DEADLINE)).unwrap();
        s
    };
    let hw = |g: &Gregor| {
        g.consumer(&[])
            .fetch_watermarks(topic, 0, std::time::Duration::from_secs(20))
            .unwrap()
            .1
    };
    let mut s = connect(&g);
    let (error, pid, epoch) = init_producer_id(&mut s);
    assert_eq!(error, 0);
    assert!(pid >= 0 && epoch >= 0, "pid {pid} epoch {epoch}");
    // Current time: old timestamps would let retention (7 days) delete the records on restart.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let send = |s: &mut TcpStream, corr: i32, batch: &[u8]| {
        s.write_all(&produce_v3(corr, topic, batch)).unwrap();
        let (c, error, base) = parse_produce_v3(&read_raw_response(s));
        assert_eq!(c, corr);
        (error, base)
    };
    let first = record_batch(&[b"a", b"b", b"c"], pid, epoch, 0, now);
    let second = record_batch(&[b"d", b"e", b"f"], pid, epoch, 3, now);
    assert_eq!(send(&mut s, 10, &first), (0, 0));
    assert_eq!(send(&mut s, 11, &first), (0, 0), "resent batch");
    assert_eq!(hw(&g), 3, "duplicate appended");
    assert_eq!(send(&mut s, 12, &second), (0, 3));
    // A gap in the sequence.
    let gap = record_batch(&[b"x"], pid, epoch, 10, now);
    assert_eq!(send(&mut s, 13, &gap).0, 45, "sequence gap");
    assert_eq!(hw(&g), 6);

    // After a crash the broker still knows the producer's last sequences.
    drop(s);
    g.kill();
    g.restart();
    let mut s = connect(&g);
    assert_eq!(
        send(&mut s, 20, &second),
        (0, 3),
        "resent batch after restart"
    );
    assert_eq!(send(&mut s, 21, &gap).0, 45, "sequence gap after restart");
    let third = record_batch(&[b"g"], pid, epoch, 6, now);
    assert_eq!(send(&mut s, 22, &third), (0, 6));
    let got = g.consume(topic, &[0], 7);
    let values: Vec<&[u8]> = got.iter().map(|m| m.payload().unwrap()).collect();
    assert_eq!(values, vec![&b"a"[..], b"b", b"c", b"d", b"e", b"f", b"g"]);
}

/// A partition's produce answer says what happened: appended records get their base offset,
/// the log start and -1 for the append time (CreateTime); refused ones -1 for all three, with
/// the error and its message: a corrupt batch, no records, an unknown topic (by name, or by id
/// from Produce v13 on), an internal topic.
#[test]
fn produce_answers_carry_offsets_only_for_appended_records() {
    use bytes::Bytes;
    use common::{call, record_batch};
    use gregor_protocol::kafka::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use gregor_protocol::kafka::messages::produce_response::PartitionProduceResponse;
    use gregor_protocol::kafka::messages::{ProduceRequest, ResponseKind, TopicName};
    use gregor_protocol::kafka::protocol::StrBytes;
    use gregor_protocol::ApiKey;
    use rdkafka::consumer::Consumer;

    let g = Gregor::start(&[]);
    g.create_topic("answers", 1);
    // A committed offset brings __consumer_offsets into being.
    let consumer = g.consumer(&[]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("answers", 0, rdkafka::Offset::Offset(0))
        .unwrap();
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    let mut s = std::net::TcpStream::connect(g.bootstrap()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut correlation = 0;
    let mut produce = |version: i16, topic: TopicProduceData, records: Option<Vec<u8>>| {
        correlation += 1;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![topic.with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(records.map(Bytes::from)),
            ])]);
        let ResponseKind::Produce(r) = call(
            &mut s,
            ApiKey::Produce,
            version,
            correlation,
            &request.into(),
        ) else {
            panic!("not a produce response");
        };
        r.responses[0].partition_responses[0].clone()
    };
    let named = |name: &str| {
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(name.into())))
    };
    let now = 1_700_000_000_000;
    for i in 0..2 {
        let batch = record_batch(&[b"a", b"b"], -1, -1, -1, now);
        let ok = produce(9, named("answers"), Some(batch));
        assert_eq!(
            (
                ok.error_code,
                ok.base_offset,
                ok.log_append_time_ms,
                ok.log_start_offset
            ),
            (0, 2 * i, -1, 0)
        );
    }
    let refused = |r: &PartitionProduceResponse, code: i16, message: &str| {
        assert_eq!(r.error_code, code, "{:?}", r.error_message);
        assert_eq!(
            (r.base_offset, r.log_append_time_ms, r.log_start_offset),
            (-1, -1, -1)
        );
        let said = r
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(said.contains(message), "{said}");
    };
    let mut corrupt = record_batch(&[b"c"], -1, -1, -1, now);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    refused(&produce(9, named("answers"), Some(corrupt)), 2, "");
    refused(&produce(9, named("answers"), None), 2, "no records");
    let batch = || Some(record_batch(&[b"d"], -1, -1, -1, now));
    refused(
        &produce(9, named("no-such-topic"), batch()),
        3,
        "does not host this topic-partition",
    );
    let unknown_id = TopicProduceData::default().with_topic_id(uuid::Uuid::from_u128(7));
    refused(&produce(13, unknown_id, batch()), 100, "does not host");
    refused(
        &produce(9, named("__consumer_offsets"), batch()),
        17,
        "internal topic",
    );
}
