//! Fetch responses whose records the broker sends from segment files (`sendfile`): a reader
//! slower than the broker (partial sends), a client gone in the middle of a response, a segment
//! deleted by retention while it is being sent. Every byte a client gets is checked.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{admin_opts, block_on, send_ok, Gregor, Rec};
use gregor_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use gregor_protocol::kafka::messages::{FetchRequest, ResponseHeader, ResponseKind, TopicName};
use gregor_protocol::kafka::protocol::{Decodable, StrBytes};
use gregor_protocol::kafka::records::RecordBatchDecoder;
use gregor_protocol::ApiKey;
use rdkafka::admin::{AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};

const FETCH_VERSION: i16 = 12;

/// Record `i`'s value: 1 KiB that names it.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:08}").into_bytes();
    v.resize(1024, b'a' + (i % 26) as u8);
    v
}

/// Creates `topic` (one partition, `configs`) and produces records `0..count` to it.
fn fill(g: &Gregor, topic: &str, configs: &[(&str, &str)], count: usize) {
    let admin = g.admin();
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    block_on(admin.create_topics(&[new], &admin_opts())).unwrap()[0]
        .as_ref()
        .expect("topic created");
    common::wait_for_partitions(&admin, topic, 1);
    let producer = g.producer(&[("acks", "all"), ("linger.ms", "20")]);
    let recs: Vec<Rec> = (0..count).map(|i| Rec::value(value(i))).collect();
    send_ok(&producer, topic, &recs);
}

/// A connection whose receive buffer is small, so a large response cannot sit in socket
/// buffers: the broker must send it piece by piece as the client reads.
fn connect(g: &Gregor) -> TcpStream {
    let s = TcpStream::connect(g.bootstrap()).unwrap();
    let size: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on a socket this function owns, with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn fetch(s: &mut TcpStream, topic: &str, offset: i64, max_bytes: i32) {
    let request = FetchRequest::default()
        .with_replica_id(gregor_protocol::kafka::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    common::send(s, ApiKey::Fetch, FETCH_VERSION, 1, &request.into());
}

/// Reads the response's size and its first `n` bytes.
fn read_start(s: &mut TcpStream, n: usize) -> (usize, Vec<u8>) {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let size = i32::from_be_bytes(size) as usize;
    let mut start = vec![0u8; n.min(size)];
    s.read_exact(&mut start).unwrap();
    (size, start)
}

/// Reads the rest of a response of `size` bytes, in small reads.
fn read_rest(s: &mut TcpStream, size: usize, mut body: Vec<u8>) -> Vec<u8> {
    let mut chunk = vec![0u8; 16 * 1024];
    while body.len() < size {
        let want = chunk.len().min(size - body.len());
        let n = s.read(&mut chunk[..want]).unwrap();
        assert!(n > 0, "the broker closed the connection mid-response");
        body.extend_from_slice(&chunk[..n]);
    }
    body
}

/// The (offset, value) of each record a fetch response carries for its one partition,
/// checking the rest of the response.
fn records(body: Vec<u8>) -> Vec<(usize, Vec<u8>)> {
    let mut buf = Bytes::from(body);
    let header = ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(12))
        .expect("response header");
    assert_eq!(header.correlation_id, 1);
    let ResponseKind::Fetch(response) =
        ResponseKind::decode(ApiKey::Fetch, &mut buf, FETCH_VERSION).expect("a fetch response")
    else {
        unreachable!()
    };
    assert!(buf.is_empty(), "bytes after the response");
    assert_eq!(response.error_code, 0);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().expect("records");
    let mut out = Vec::new();
    while !records.is_empty() {
        let set = RecordBatchDecoder::decode(&mut records).expect("whole, valid batches");
        for r in set.records {
            out.push((r.offset as usize, r.value.expect("a value").to_vec()));
        }
    }
    out
}

/// Records `0..`, each with its value, at least `at_least` of them.
fn assert_records_from_zero(records: &[(usize, Vec<u8>)], at_least: usize) {
    assert!(records.len() >= at_least, "{} records", records.len());
    for (i, (offset, v)) in records.iter().enumerate() {
        assert_eq!(*offset, i, "offsets in order");
        assert!(*v == value(i), "record {i} differs");
    }
}

#[test]
fn a_slow_reader_gets_every_byte() {
    let g = Gregor::start(&[]);
    fill(&g, "slow", &[], 12 * 1024);
    let mut s = connect(&g);
    fetch(&mut s, "slow", 0, 64 << 20);
    let (size, start) = read_start(&mut s, 1024);
    assert!(
        size > 12 << 20,
        "one response with all the records: {size} bytes"
    );
    let body = read_rest(&mut s, size, start);
    assert_records_from_zero(&records(body), 12 * 1024);
    // The connection serves the next request as usual.
    fetch(&mut s, "slow", 12 * 1024 - 1, 1 << 20);
    let (size, start) = read_start(&mut s, 0);
    let last = records(read_rest(&mut s, size, start));
    assert_eq!(last.last(), Some(&(12 * 1024 - 1, value(12 * 1024 - 1))));
}

#[test]
fn a_client_gone_mid_response_leaves_the_broker_serving() {
    let g = Gregor::start(&[]);
    fill(&g, "gone", &[], 8 * 1024);
    for _ in 0..5 {
        let mut s = connect(&g);
        fetch(&mut s, "gone", 0, 64 << 20);
        let _ = read_start(&mut s, 1000);
        // Closed with most of the response unread (a reset, as the unread bytes are dropped).
        drop(s);
    }
    let mut s = connect(&g);
    fetch(&mut s, "gone", 0, 64 << 20);
    let (size, start) = read_start(&mut s, 0);
    assert_records_from_zero(&records(read_rest(&mut s, size, start)), 8 * 1024);
    // Drop checks that no connection task panicked.
}

#[test]
fn a_segment_deleted_during_its_send_is_sent_whole() {
    let g = Gregor::start(&["log.retention.check.interval.ms=100"]);
    let segment = (16 << 20).to_string();
    fill(
        &g,
        "retained",
        &[
            ("segment.bytes", segment.as_str()),
            ("file.delete.delay.ms", "0"),
        ],
        20 * 1024,
    );
    let dir = g.data_dir().join("retained-0");
    let first = dir.join(format!("{:020}.log", 0));
    assert!(first.exists());
    let mut s = connect(&g);
    fetch(&mut s, "retained", 0, 64 << 20);
    let (size, start) = read_start(&mut s, 1024);
    assert!(
        size > 15 << 20,
        "the first segment in one response: {size} bytes"
    );

    // Retention deletes the segment being sent: the file is renamed, then removed.
    let admin = g.admin();
    // (AlterConfigs replaces the topic's whole config.)
    let change = AlterConfig::new(ResourceSpecifier::Topic("retained"))
        .set("segment.bytes", &segment)
        .set("file.delete.delay.ms", "0")
        .set("retention.bytes", "1");
    block_on(admin.alter_configs(&[change], &admin_opts())).unwrap()[0]
        .as_ref()
        .expect("retention.bytes set");
    wait_for_no_file(&dir, &first);

    assert_records_from_zero(&records(read_rest(&mut s, size, start)), 15 * 1024);
}

/// Waits until neither `file` nor its `.deleted` rename is in `dir`.
fn wait_for_no_file(dir: &Path, file: &Path) {
    let deleted = dir.join(format!(
        "{}.deleted",
        file.file_name().unwrap().to_string_lossy()
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while file.exists() || deleted.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was never deleted",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
