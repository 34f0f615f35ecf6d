//! What one client can take from the broker is bounded: memory held by requests being read (by
//! `queued.max.request.bytes`, whatever sizes are announced), time (a request must arrive whole
//! within `request.timeout.ms`), connections (`max.connections.per.ip`) and log lines; the
//! broker's open files follow the partitions in use, and running out of them is survived.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Gregor, DEADLINE};

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// An ApiVersions v0 request, and whether a whole answer came back on `s`.
fn answered(s: &mut TcpStream) -> bool {
    answered_within(s, Duration::from_secs(10))
}

fn answered_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    if s.write_all(&common::raw_frame(18, 0, 7, false, &[]))
        .is_err()
    {
        return false;
    }
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    s.read_exact(&mut body).is_ok()
}

/// Whether the broker closed `s` (a read sees the end) within DEADLINE.
fn closed_by_broker(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut byte = [0u8; 1];
    matches!(s.read(&mut byte), Ok(0) | Err(_))
}

#[test]
fn slow_and_never_finished_requests_hold_bounded_memory_and_are_dropped() {
    const BUDGET: u64 = 32 << 20;
    let g = Gregor::start(&[
        &format!("queued.max.request.bytes={BUDGET}"),
        "request.timeout.ms=3000",
    ]);
    let pid = g.pid();
    let rss_before = status_bytes(pid, "VmRSS");
    // 120 connections each announce a request of almost 100 MB, send 2 MB of it, and stall.
    let announced: i32 = 100 << 20;
    let port = g.port;
    let senders: Vec<_> = (0..120)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.write_all(&announced.to_be_bytes()).unwrap();
                // Blocks while the broker does not read (no room in its budget) until the
                // broker gives up on the request and closes the connection.
                s.set_write_timeout(Some(DEADLINE)).unwrap();
                let _ = s.write_all(&vec![0x55u8; 2 << 20]);
                s
            })
        })
        .collect();
    let mut stalled: Vec<TcpStream> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let grown = status_bytes(pid, "VmHWM").saturating_sub(rss_before);
    assert!(
        grown < 2 * BUDGET,
        "the broker grew by {} MB for 240 MB of unfinished requests",
        grown >> 20
    );
    // None of them finishes in time: all are closed, and the budget is back for others.
    let started = Instant::now();
    for s in &mut stalled {
        assert!(closed_by_broker(s), "a stalled request kept its connection");
    }
    assert!(started.elapsed() < DEADLINE);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    assert!(answered(&mut s));
    let grown = status_bytes(pid, "VmHWM").saturating_sub(rss_before);
    assert!(grown < 2 * BUDGET, "peak growth {} MB", grown >> 20);
    assert!(g.wait_for_log("request.timeout.ms"));
}

/// Connections that sent large requests and then stay idle do not keep their memory.
#[test]
fn idle_connections_do_not_keep_the_memory_of_large_requests() {
    const REQUEST: usize = 20 << 20;
    const CONNECTIONS: usize = 10;
    let g = Gregor::start(&[]);
    g.create_topic("t", 1);
    let pid = g.pid();
    let rss_before = status_bytes(pid, "VmRSS");
    // A 20 MB batch: read whole, then refused (over message.max.bytes).
    let big = vec![0x55u8; REQUEST];
    let batch = common::record_batch(&[&big], -1, -1, -1, 1_700_000_000_000);
    let request = common::produce_v3(1, "t", &batch);
    let idle: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
            s.write_all(&request).unwrap();
            let (_, error, _) = common::parse_produce_v3(&common::read_raw_response(&mut s));
            assert_eq!(error, 10, "MESSAGE_TOO_LARGE");
            s
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let grown = status_bytes(pid, "VmRSS").saturating_sub(rss_before);
        if grown < (CONNECTIONS * REQUEST / 4) as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{CONNECTIONS} idle connections hold {} MB",
            grown >> 20
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(idle);
}

/// A client that asks and never reads the answers is closed after `connections.max.idle.ms`.
#[test]
fn a_client_that_never_reads_its_answers_is_closed() {
    let g = Gregor::start(&["connections.max.idle.ms=1000"]);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    // Enough ApiVersions requests for answers (about 400 bytes each) to fill every socket
    // buffer; written by a thread, as the broker stops reading once its answers block.
    let mut writer = s.try_clone().unwrap();
    let asker = std::thread::spawn(move || {
        writer.set_write_timeout(Some(DEADLINE)).unwrap();
        let request = common::raw_frame(18, 0, 1, false, &[]);
        for _ in 0..200_000 {
            if writer.write_all(&request).is_err() {
                return;
            }
        }
    });
    assert!(g.wait_for_log("its answer was not read within connections.max.idle.ms"));
    asker.join().unwrap();
    // What the broker sent before it gave up is still readable, then the connection ends.
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    let mut fresh = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    assert!(answered(&mut fresh), "the broker serves others");
}

#[test]
fn connections_over_the_per_ip_quota_are_closed_at_once() {
    let g = Gregor::start(&["max.connections.per.ip=5"]);
    let mut admitted: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(("127.0.0.1", g.port)).unwrap())
        .collect();
    for s in &mut admitted {
        assert!(answered(s));
    }
    let mut over = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    assert!(closed_by_broker(&mut over));
    assert!(g.wait_for_log("over a connection quota"));
    // A closed connection frees its place.
    drop(admitted.pop());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        if answered(&mut s) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_input_cannot_flood_the_log() {
    let g = Gregor::start(&[]);
    for _ in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        // A negative frame size: the connection is closed.
        s.write_all(&(-5i32).to_be_bytes()).unwrap();
        assert!(closed_by_broker(&mut s));
    }
    // Lines arrive in order: once a later one is there, all the bad frames' lines are too.
    g.create_topic("after-the-bad-frames", 1);
    assert!(g.wait_for_log("after-the-bad-frames"));
    let lines = g
        .log_tail(100_000)
        .lines()
        .filter(|l| l.contains("bad frame"))
        .count();
    assert!(
        (1..=10).contains(&lines),
        "{lines} lines for 100 bad frames"
    );
}

/// Produces one record to `topic`/`partition` on `s`; the partition's error code.
fn produce_one(s: &mut TcpStream, topic: &str, partition: i32) -> i16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Stamped now: older records would go to retention.
    let batch = common::record_batch(&[b"x"], -1, -1, -1, now);
    s.write_all(&common::produce_v3_to(7, topic, partition, &batch))
        .unwrap();
    common::parse_produce_v3_of(&common::read_raw_response(s), partition).1
}

const KAFKA_STORAGE_ERROR: i16 = 56;

/// Out of file descriptors, the broker says so once, keeps serving the connections and
/// partitions it has open, serves the others again once descriptors are free, and stays up.
#[test]
fn at_the_open_files_limit_the_broker_keeps_serving_what_it_has_open() {
    let g = Gregor::start_with_open_files(&["log.segment.file.idle.ms=600000"], Some(128));
    let mut open = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    assert!(answered(&mut open));
    g.create_topic("early", 1);
    // A partition holds no file until it is used: 200 of them are created under 128.
    g.create_topic("many", 200);
    assert!(
        !g.log_contains("partition log is offline"),
        "{}",
        g.log_tail(20)
    );
    assert_eq!(produce_one(&mut open, "early", 0), 0);

    // New connections, kept open (each takes a descriptor), until one is not served.
    let mut held = Vec::new();
    let reached = (0..150).any(|_| {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], g.port));
        let Ok(mut s) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
            return true;
        };
        let served = answered_within(&mut s, Duration::from_millis(500));
        held.push(s);
        !served
    });
    assert!(reached, "the limit was never reached");
    assert!(answered(&mut open), "the open connection is still served");
    assert_eq!(
        produce_one(&mut open, "early", 0),
        0,
        "a partition whose file is open still takes writes"
    );
    // Each partition written keeps its file open (for 10 minutes): the descriptors run out.
    let refused: Vec<i32> = (0..200)
        .filter(|&p| produce_one(&mut open, "many", p) == KAFKA_STORAGE_ERROR)
        .collect();
    assert!(refused.len() > 100, "refused {refused:?}");
    assert_eq!(produce_one(&mut open, "early", 0), 0);

    // Descriptors free again (not for all: the written partitions keep theirs): refused
    // partitions take writes.
    drop(held);
    for &p in &refused[..20] {
        let deadline = Instant::now() + DEADLINE;
        while produce_one(&mut open, "many", p) != 0 {
            assert!(Instant::now() < deadline, "partition {p} still refused");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // A line logged after the failures: once it is there, theirs are too.
    open.write_all(&common::raw_frame(18, 99, 11, false, &[]))
        .unwrap();
    common::read_raw_response(&mut open);
    assert!(g.wait_for_log("ApiVersions version unsupported"));
    let log = g.log_tail(100_000);
    let accept_errors = log
        .lines()
        .filter(|l| l.contains("accept") && (l.contains("ERROR") || l.contains("WARN")))
        .count();
    assert_eq!(accept_errors, 1, "lines about failing accepts");
    let open_errors = log
        .lines()
        .filter(|l| l.contains("partitions whose files are open keep serving"))
        .count();
    assert_eq!(open_errors, 1, "lines about failing opens");
}

/// How many `.log` files of `topic` the process `pid` holds open.
fn open_segment_files(pid: i32, topic: &str) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| {
            let dir = target.parent().and_then(|d| d.file_name());
            dir.and_then(|d| d.to_str())
                .is_some_and(|d| d.starts_with(&format!("{topic}-")))
                && target.extension().is_some_and(|e| e == "log")
        })
        .count()
}

/// Waits until `pid` holds no `.log` file of `topic` open.
fn wait_for_no_open_segment_files(pid: i32, topic: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let open = open_segment_files(pid, topic);
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} segment files stay open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Open files follow the partitions in use, not the segments on disk: unused segment files
/// close (after `log.segment.file.idle.ms`), a restart opens none of them, and reading every
/// segment opens them only while they are read.
#[test]
fn open_files_do_not_grow_with_partitions_and_segments() {
    const PARTITIONS: i32 = 100;
    const BATCHES: usize = 3;
    let mut g = Gregor::start(&["log.segment.file.idle.ms=300"]);
    // segment.bytes=14: each batch rolls a segment of its own.
    let admin = g.admin();
    let wide = rdkafka::admin::NewTopic::new(
        "wide",
        PARTITIONS,
        rdkafka::admin::TopicReplication::Fixed(1),
    )
    .set("segment.bytes", "14");
    common::block_on(admin.create_topics(&[wide], &common::admin_opts())).unwrap()[0]
        .as_ref()
        .unwrap();
    common::wait_for_partitions(&admin, "wide", PARTITIONS as usize);
    drop(admin);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    for _ in 0..BATCHES {
        for p in 0..PARTITIONS {
            assert_eq!(produce_one(&mut s, "wide", p), 0);
        }
    }
    drop(s);
    let segments = walk_files(g.data_dir(), ".log");
    assert!(
        segments >= PARTITIONS as usize * BATCHES,
        "{segments} segment files"
    );
    wait_for_no_open_segment_files(g.pid(), "wide");

    g.terminate(Duration::from_secs(30));
    g.restart();
    assert_eq!(open_segment_files(g.pid(), "wide"), 0, "after a restart");
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let read = g.consume("wide", &all, PARTITIONS as usize * BATCHES);
    assert_eq!(read.len(), PARTITIONS as usize * BATCHES);
    wait_for_no_open_segment_files(g.pid(), "wide");
}

/// Files under `dir` (recursively) whose names end with `suffix`.
fn walk_files(dir: &std::path::Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk_files(&path, suffix)
            } else {
                usize::from(path.to_string_lossy().ends_with(suffix))
            }
        })
        .sum()
}
