//! Crash and restart: acknowledged records survive SIGKILL and a torn tail; SIGTERM is clean.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{newest_log_segment, send_ok, Gregor, Rec, DEADLINE};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const N: usize = 20_000;

fn value(i: usize) -> Vec<u8> {
    format!("record-{i:06}-{}", "v".repeat(i % 50)).into_bytes()
}

fn produce_acked(g: &Gregor, topic: &str, n: usize) -> Vec<(i32, i64)> {
    let producer = g.producer(&[("acks", "all"), ("linger.ms", "5")]);
    let recs: Vec<Rec> = (0..n).map(|i| Rec::value(value(i))).collect();
    let deliveries = send_ok(&producer, topic, &recs);
    deliveries.iter().map(|d| (d.partition, d.offset)).collect()
}

fn high_watermark(g: &Gregor, topic: &str) -> (i64, i64) {
    g.consumer(&[])
        .fetch_watermarks(topic, 0, Duration::from_secs(20))
        .expect("watermarks")
}

/// Every acknowledged record is at its offset with its value, and nothing else is there.
fn assert_all_present(g: &Gregor, topic: &str, acked: &[(i32, i64)]) {
    assert_eq!(high_watermark(g, topic), (0, acked.len() as i64));
    let got = g.consume(topic, &[0], acked.len());
    for (i, ((p, off), m)) in acked.iter().zip(&got).enumerate() {
        assert_eq!((m.partition(), m.offset()), (*p, *off), "record {i}");
        assert_eq!(m.payload(), Some(&value(i)[..]), "value of record {i}");
    }
}

/// Reading from an offset in the middle works (the offset index was rebuilt or kept).
fn assert_seek(g: &Gregor, topic: &str, offset: i64, expected: &[u8]) {
    let consumer = g.consumer(&[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "nothing read from offset {offset}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consumer error");
            assert_eq!(m.offset(), offset);
            assert_eq!(m.payload(), Some(expected));
            return;
        }
    }
}

fn append_to_newest_segment(g: &Gregor, topic: &str, garbage: &[u8]) {
    let seg = newest_log_segment(&g.data_dir().join(format!("{topic}-0")));
    let before = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(garbage).unwrap();
    f.sync_all().unwrap();
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        before + garbage.len() as u64
    );
}

fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

fn crash_with_tail(garbage: Vec<u8>) {
    let mut g = Gregor::start(&[]);
    let topic = "crashy";
    g.create_topic(topic, 1);
    let acked = produce_acked(&g, topic, N);
    for (i, (p, off)) in acked.iter().enumerate() {
        assert_eq!((*p, *off), (0, i as i64));
    }
    g.kill();
    append_to_newest_segment(&g, topic, &garbage);
    g.restart();

    assert_all_present(&g, topic, &acked);
    assert_seek(&g, topic, 12_345, &value(12_345));
    assert_seek(&g, topic, N as i64 - 1, &value(N - 1));

    // New records continue right after the acknowledged ones.
    let producer = g.producer(&[("acks", "all")]);
    let d = send_ok(&producer, topic, &[Rec::value("after the crash")]);
    assert_eq!(d[0].offset, N as i64);
    let got = g.consume(topic, &[0], N + 1);
    assert_eq!(got[N].offset(), N as i64);
    assert_eq!(got[N].payload(), Some(&b"after the crash"[..]));
}

#[test]
fn sigkill_with_random_garbage_tail() {
    crash_with_tail(pseudo_random(1000, 7));
}

#[test]
fn sigkill_with_torn_batch_tail() {
    // 1000 bytes that start like a plausible v2 batch header (next offset, a length that fits
    // in what follows, magic 2) but whose CRC and records are garbage.
    let mut g = Vec::new();
    g.extend_from_slice(&(N as i64).to_be_bytes()); // baseOffset
    g.extend_from_slice(&(1000i32 - 12).to_be_bytes()); // batchLength
    g.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
    g.push(2); // magic
    g.extend_from_slice(&0xdead_beefu32.to_be_bytes()); // crc
    g.extend_from_slice(&0i16.to_be_bytes()); // attributes
    g.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    g.extend(pseudo_random(1000 - g.len(), 11));
    assert_eq!(g.len(), 1000);
    crash_with_tail(g);
}

#[test]
fn sigterm_is_clean_and_loses_nothing() {
    let mut g = Gregor::start(&[]);
    let topic = "termed";
    g.create_topic(topic, 1);
    let acked = produce_acked(&g, topic, 5_000);
    let status = g.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    g.restart();
    assert_all_present(&g, topic, &acked);
    assert_seek(&g, topic, 4_321, &value(4_321));
    let producer = g.producer(&[("acks", "all")]);
    let d = send_ok(&producer, topic, &[Rec::value("after restart")]);
    assert_eq!(d[0].offset, 5_000);

    // And a second clean cycle with nothing new produced.
    let status = g.terminate(Duration::from_secs(10));
    assert!(status.success(), "second exit status: {status:?}");
    g.restart();
    assert_eq!(high_watermark(&g, topic), (0, 5_001));
}

/// SIGKILL while a producer is busy, with small segments so the log has many of them: every
/// acknowledged record survives at its offset, the log holds a gap-free prefix of what was sent,
/// and producing continues at the high watermark.
#[test]
fn sigkill_mid_production_with_many_segments() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    let mut g = Gregor::start(&["log.segment.bytes=100000", "log.index.interval.bytes=1024"]);
    let topic = "midway";
    g.create_topic(topic, 1);
    let acked: Mutex<Vec<(usize, i64)>> = Mutex::new(Vec::new());
    let acked_count = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let producer = g.producer(&[
        ("acks", "all"),
        ("linger.ms", "2"),
        ("message.timeout.ms", "3000"),
    ]);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut next = 0usize;
            while !stop.load(Ordering::SeqCst) && next < 200_000 {
                let recs: Vec<Rec> = (next..next + 1000).map(|i| Rec::value(value(i))).collect();
                let res = common::send_all(&producer, topic, &recs);
                let mut a = acked.lock().unwrap();
                for (i, r) in res.into_iter().enumerate() {
                    if let Ok(d) = r {
                        a.push((next + i, d.offset));
                    }
                }
                acked_count.store(a.len(), Ordering::SeqCst);
                next += 1000;
            }
        });
        let deadline = Instant::now() + DEADLINE;
        while acked_count.load(Ordering::SeqCst) < 10_000 {
            assert!(Instant::now() < deadline, "producer too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Kill while the next chunk is in flight.
        g.kill();
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
    });
    let acked = acked.into_inner().unwrap();
    let segments = std::fs::read_dir(g.data_dir().join(format!("{topic}-0")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments >= 3, "expected several segments, found {segments}");
    append_to_newest_segment(&g, topic, &pseudo_random(1000, 3));
    g.restart();

    let (low, high) = high_watermark(&g, topic);
    assert_eq!(low, 0);
    let max_acked = acked.iter().map(|a| a.1).max().unwrap();
    assert!(
        high > max_acked,
        "high watermark {high} below an acknowledged offset {max_acked}"
    );
    // The log is exactly records 0..high in send order (one producer, no retries possible
    // against a dead broker), so every acked record sits at its offset.
    let got = g.consume(topic, &[0], high as usize);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(&value(i)[..]), "offset {i}");
    }
    for (i, off) in &acked {
        assert_eq!(*off, *i as i64, "record {i} acknowledged at offset {off}");
    }
    assert_seek(&g, topic, max_acked / 2, &value(max_acked as usize / 2));
    let producer = g.producer(&[("acks", "all")]);
    let d = send_ok(&producer, topic, &[Rec::value("after")]);
    assert_eq!(d[0].offset, high);
}
