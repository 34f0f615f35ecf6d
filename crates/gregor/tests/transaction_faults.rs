//! A committed transaction whose markers cannot be written (the partition's disk is full) stays
//! prepared, its records invisible to read_committed consumers, until a retry writes them; a
//! broker killed while the transaction is prepared completes it when it starts again.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::small_disk::SmallDisk;
use common::{Gregor, DEADLINE};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const TIMEOUT: Duration = Duration::from_secs(20);

/// (last stable offset, high watermark) of `topic`/0.
fn stable_and_end(g: &Gregor, topic: &str) -> (i64, i64) {
    let committed = g.consumer(&[("isolation.level", "read_committed")]);
    let (_, stable) = committed.fetch_watermarks(topic, 0, TIMEOUT).unwrap();
    let (_, end) = g
        .consumer(&[("isolation.level", "read_uncommitted")])
        .fetch_watermarks(topic, 0, TIMEOUT)
        .unwrap();
    (stable, end)
}

fn wait_until_stable(g: &Gregor, topic: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (stable, end) = stable_and_end(g, topic);
        if stable == end {
            return;
        }
        assert!(Instant::now() < deadline, "stuck at {stable} of {end}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Takes the last room of the disk, the partial page of the partition's segment and the space
/// allocated ahead of its writes included: small plain batches until one is refused (so no
/// marker fits either).
fn fill(disk: &SmallDisk, g: &Gregor, topic: &str) {
    disk.fill_rest();
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for correlation in 0..100_000 {
        let batch = common::record_batch(&[b"x"], -1, -1, -1, now);
        s.write_all(&common::produce_v3(correlation, topic, &batch))
            .unwrap();
        let (_, error, _) = common::parse_produce_v3(&common::read_raw_response(&mut s));
        if error != 0 {
            assert_eq!(error, 56, "KAFKA_STORAGE_ERROR");
            return;
        }
    }
    panic!("the disk never filled up");
}

/// Writes `values` to `topic`/0 in a new transaction (each acknowledged).
fn write_in_transaction(producer: &FutureProducer, topic: &str, values: &[&str]) {
    producer.begin_transaction().unwrap();
    for v in values {
        let record = FutureRecord::<(), str>::to(topic).partition(0).payload(*v);
        common::block_on(producer.send(record, TIMEOUT)).unwrap();
    }
}

fn committed_values(g: &Gregor, topic: &str, expected: usize) -> Vec<String> {
    let consumer = g.consumer(&[("isolation.level", "read_committed")]);
    common::consume_from(&consumer, topic, &[0], expected)
        .iter()
        .filter_map(|m| {
            use rdkafka::message::Message;
            let v = String::from_utf8_lossy(m.payload()?).into_owned();
            v.starts_with("tx").then_some(v)
        })
        .collect()
}

#[test]
fn markers_that_cannot_be_written_are_retried_also_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(8);
    // A fixed port, so the producer's broker is the same after the restart.
    let port = common::free_port();
    let mut g = Gregor::start(&[
        &format!("log.dirs={},{}", data.path().display(), disk.path.display()),
        &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        "transaction.state.log.num.partitions=1",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
    ]);
    // New partitions go to the dir with the fewest: the transaction log to the first dir, then
    // the topic to the small disk.
    let mut config = g.client_config();
    config.set("transactional.id", "faults");
    let producer: FutureProducer = config.create().unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    assert!(data.path().join("__transaction_state-0").is_dir());
    g.create_topic("t", 1);
    assert!(disk.path.join("t-0").is_dir());

    // The commit is prepared (its record is on the first dir), its marker cannot be written.
    write_in_transaction(&producer, "t", &["tx-a0", "tx-a1"]);
    fill(&disk, &g, "t");
    producer.commit_transaction(TIMEOUT).unwrap();
    assert!(g.wait_for_log("transaction marker not written"));
    let (stable, end) = stable_and_end(&g, "t");
    assert_eq!(
        stable, 0,
        "the prepared transaction holds back read_committed ({end})"
    );
    // Room again: a retry writes the marker.
    disk.free();
    wait_until_stable(&g, "t");
    // Every record below the marker: the transaction's and the plain ones that filled the disk.
    assert_eq!(committed_values(&g, "t", end as usize), ["tx-a0", "tx-a1"]);

    // Prepared again, then the broker dies before any marker could be written.
    write_in_transaction(&producer, "t", &["tx-b0", "tx-b1"]);
    fill(&disk, &g, "t");
    producer.commit_transaction(TIMEOUT).unwrap();
    assert!(g.wait_for_log("transaction marker not written"));
    drop(producer);
    g.kill();
    disk.free();
    g.restart();
    wait_until_stable(&g, "t");
    let (_, end) = stable_and_end(&g, "t");
    let values = committed_values(&g, "t", end as usize - 2); // two markers are not records
    assert_eq!(values, ["tx-a0", "tx-a1", "tx-b0", "tx-b1"]);
}
