//! `gregor perf produce|consume|e2e` against a real broker: the numbers they print in JSON are the
//! records that really went through.

mod common;

use std::process::Command;

use common::Gregor;
use rdkafka::consumer::Consumer;

fn perf(g: &Gregor, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .arg("perf")
        .args(args)
        .args(["--bootstrap-server", &g.bootstrap(), "--output", "json"])
        .output()
        .expect("run gregor perf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gregor perf {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("valid JSON")
}

#[test]
fn produce_consume_and_end_to_end_report_what_went_through() {
    let g = Gregor::start(&[]);
    let produced = perf(
        &g,
        &[
            "produce",
            "--topic",
            "p",
            "--num-records",
            "20000",
            "--record-size",
            "100",
        ],
    );
    assert_eq!(produced["records"], 20000);
    assert_eq!(produced["errors"], 0);
    assert!(produced["p99_ms"].as_f64().unwrap() > 0.0);
    let (low, high) = g
        .consumer(&[])
        .fetch_watermarks("p", 0, std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 20000));

    let consumed = perf(&g, &["consume", "--topic", "p", "--messages", "20000"]);
    assert_eq!(consumed["records"], 20000);
    assert_eq!(consumed["timed_out"], false);

    let e2e = perf(
        &g,
        &[
            "e2e",
            "--topic",
            "lat",
            "--num-records",
            "200",
            "--acks",
            "all",
        ],
    );
    assert_eq!(e2e["records"], 200);
    let (p50, p99) = (
        e2e["p50_ms"].as_f64().unwrap(),
        e2e["p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{e2e}");
    // 200 timed records plus the warm-up ones landed in the topic.
    let (_, end) = g
        .consumer(&[])
        .fetch_watermarks("lat", 0, std::time::Duration::from_secs(10))
        .unwrap();
    assert!(end >= 201, "{end}");
}

#[test]
fn transactional_produce_commits_every_interval() {
    let g = Gregor::start(&[]);
    let produced = perf(
        &g,
        &[
            "produce",
            "--topic",
            "tx",
            "--num-records",
            "3000",
            "--record-size",
            "10",
            "--throughput",
            "10000",
            "--transactional-id",
            "perf-tx",
            "--transaction-duration-ms",
            "50",
        ],
    );
    assert_eq!(produced["records"], 3000);
    // ~300 ms at 10k records/s in 50 ms transactions: several commits.
    let commits = produced["transactions"].as_u64().unwrap();
    assert!(commits >= 3, "{produced}");
    // What the broker holds, independently of what the tool reported: no transaction left
    // open, one marker per transaction besides the 3000 records, and all of them committed.
    let consumer = g.consumer(&[("isolation.level", "read_committed")]);
    let (_, stable) = consumer
        .fetch_watermarks("tx", 0, std::time::Duration::from_secs(10))
        .unwrap();
    let (_, high) = g
        .consumer(&[])
        .fetch_watermarks("tx", 0, std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(stable, high, "a transaction is still open");
    let markers = high - 3000;
    assert!(markers >= 3, "{markers} transactions");
    assert_eq!(markers as u64, commits, "{produced}");
    let committed = common::consume_from(&consumer, "tx", &[0], 3000);
    assert_eq!(committed.len(), 3000);
}
