//! Partition reassignment on three brokers as separate processes: `gregor reassign-partitions`
//! moves partitions (one of them away from its leader) while an idempotent `acks=all`
//! producer writes, a throttle holds the copying back until it is raised, `--verify` lifts it
//! once the moves are done, and afterwards every acknowledged record is on the new replicas
//! exactly once, their logs are the same batch for batch, and the old replicas' logs are gone.
//! A move to a broker that is down stays under way until it is cancelled.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{cluster_overrides, loopback, wait_until};
use common::replication::{batches, replicas_of};
use common::{admin_opts, block_on, send_ok, Gregor, Rec};
use rdkafka::admin::{NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

/// `gregor reassign-partitions` against `g`: whether it succeeded, and what it printed.
fn reassign(g: &Gregor, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .arg("reassign-partitions")
        .args(["--bootstrap-server", &g.bootstrap(), "--timeout-secs", "20"])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn plan(dir: &Path, name: &str, moves: &[(i32, &[i32])]) -> String {
    let partitions: Vec<String> = moves
        .iter()
        .map(|(p, r)| format!(r#"{{"topic":"moved","partition":{p},"replicas":{r:?}}}"#))
        .collect();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(",")),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// The value of a config as `g` describes it.
fn config_value(g: &Gregor, resource: ResourceSpecifier, name: &str) -> String {
    let described = block_on(g.admin().describe_configs(&[resource], &admin_opts())).unwrap();
    let resource = described[0].as_ref().unwrap();
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} described"));
    entry.value.clone().unwrap_or_default()
}

#[test]
fn partitions_move_under_acknowledged_writes_and_throttles_lift_when_done() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(3));
    for node in &mut overrides {
        node.extend(
            [
                "broker.heartbeat.interval.ms=300",
                "replica.fetch.backoff.ms=200",
                "replica.fetch.max.bytes=65536",
            ]
            .map(String::from),
        );
    }
    let mut nodes = Gregor::start_all(&overrides);
    let assignment: &[&[i32]] = &[&[1, 2], &[2, 3]];
    let new = NewTopic::new("moved", 2, TopicReplication::Variable(assignment));
    let created = block_on(nodes[0].admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    wait_until(
        "both partitions on their replicas",
        Duration::from_secs(60),
        || replicas_of(&nodes[0], "moved") == [vec![1, 2], vec![2, 3]],
    );

    // 3 MiB to copy for partition 0, whose leader (1) leaves it.
    let preload: Vec<Rec> = (0..3072)
        .map(|i| Rec {
            partition: Some(0),
            ..Rec::value(format!("{i:06}-{}", "x".repeat(1017)))
        })
        .collect();
    send_ok(&nodes[0].producer(&[("acks", "all")]), "moved", &preload);

    // Writes go on throughout; each acknowledged value is remembered with its partition.
    let acked: Arc<Mutex<Vec<(i32, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let producer = nodes[1].producer(&[("acks", "all"), ("enable.idempotence", "true")]);
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Acquire) {
                let sends: Vec<_> = (0..20)
                    .map(|k| {
                        let value = format!("live-{}", i + k);
                        let partition = (i + k) % 2;
                        let record = FutureRecord::<(), _>::to("moved")
                            .payload(&value)
                            .partition(partition);
                        (
                            partition,
                            value.clone(),
                            producer.send_result(record).unwrap(),
                        )
                    })
                    .collect();
                for (partition, value, delivery) in sends {
                    if let Ok(Ok(_)) = block_on(delivery) {
                        acked.lock().unwrap().push((partition, value));
                    }
                }
                i += 20;
            }
        })
    };

    let plan_file = plan(root.path(), "plan.json", &[(0, &[2, 3]), (1, &[1, 3])]);
    let file = ["--reassignment-json-file", plan_file.as_str()];
    let (ok, out) = reassign(
        &nodes[0],
        &[&file[..], &["--execute", "--throttle", "1"]].concat(),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully started partition reassignments for moved-0,moved-1"),
        "{out}"
    );
    assert!(
        out.contains(
            r#"{"topic":"moved","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}"#
        ),
        "the rollback plan: {out}"
    );
    assert_eq!(
        config_value(
            &nodes[0],
            ResourceSpecifier::Topic("moved"),
            "follower.replication.throttled.replicas"
        ),
        "0:3,1:1"
    );
    // One byte a second lets broker 3 take at most one fetch of partition 0 (64 KiB) and then
    // nothing for the throttle's window (11 s): once it hosts the replica, its copy stays that
    // small for the next seconds. (Whether it gets that one fetch depends on whether the
    // in-sync follower's fetches, which count too, came first.)
    let node_dir = |n: i32| root.path().join(format!("node-{n}"));
    let copied = || -> usize {
        let exists = node_dir(3).join("moved-0").exists();
        let batches = if exists {
            batches(&node_dir(3), "moved", 0)
        } else {
            vec![]
        };
        batches.iter().map(Vec::len).sum()
    };
    wait_until(
        "broker 3 hosting the replica",
        Duration::from_secs(30),
        || node_dir(3).join("moved-0").exists(),
    );
    let held = (0..30).all(|_| {
        std::thread::sleep(Duration::from_millis(100));
        copied() < 1 << 20
    });
    assert!(held, "the throttle let {} bytes through", copied());
    let (ok, out) = reassign(&nodes[0], &[&file[..], &["--verify"]].concat());
    assert!(ok, "{out}");
    assert!(
        out.contains("Reassignment of partition moved-0 is still in progress."),
        "{out}"
    );
    assert!(
        !out.contains("Clearing"),
        "throttles stay while moves go on: {out}"
    );
    let (_, listed) = reassign(&nodes[2], &["--list"]);
    assert!(
        listed.contains("moved-0: replicas: 2,3,1. adding: 3. removing: 1."),
        "{listed}"
    );

    // Raised, the throttle lets the copy finish; --verify then lifts it.
    let (ok, out) = reassign(
        &nodes[0],
        &[
            &file[..],
            &["--execute", "--additional", "--throttle", "1000000000"],
        ]
        .concat(),
    );
    assert!(ok, "{out}");
    let mut verified = String::new();
    wait_until("both moves done", Duration::from_secs(90), || {
        verified = reassign(&nodes[0], &[&file[..], &["--verify"]].concat()).1;
        verified.contains("moved-0 is completed") && verified.contains("moved-1 is completed")
    });
    assert!(
        verified.contains("Clearing broker-level throttles on brokers 1,2,3"),
        "{verified}"
    );
    assert!(
        verified.contains("Clearing topic-level throttles on topic moved"),
        "{verified}"
    );
    assert_eq!(replicas_of(&nodes[2], "moved"), [vec![2, 3], vec![1, 3]]);
    assert_eq!(
        config_value(
            &nodes[0],
            ResourceSpecifier::Topic("moved"),
            "leader.replication.throttled.replicas"
        ),
        ""
    );
    assert_eq!(
        config_value(
            &nodes[0],
            ResourceSpecifier::Broker(2),
            "leader.replication.throttled.rate"
        ),
        i64::MAX.to_string()
    );
    let (_, listed) = reassign(&nodes[0], &["--list"]);
    assert!(
        listed.contains("No partition reassignments found."),
        "{listed}"
    );

    // Writes after the move are acknowledged by the new replicas too.
    let before = acked.lock().unwrap().len();
    wait_until(
        "writes acknowledged after the move",
        Duration::from_secs(60),
        || acked.lock().unwrap().len() >= before + 200,
    );
    stop.store(true, Ordering::Release);
    writer.join().unwrap();

    // Every acknowledged record, once, in the order written; the preload first.
    let acked = acked.lock().unwrap().clone();
    for partition in 0..2 {
        let live: Vec<String> = acked
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, v)| v.clone())
            .collect();
        let preloaded = if partition == 0 { preload.len() } else { 0 };
        let read: Vec<String> = nodes[2]
            .consume("moved", &[partition], preloaded + live.len())
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap()).to_string())
            .collect();
        let distinct: HashSet<&String> = read.iter().collect();
        assert_eq!(
            distinct.len(),
            read.len(),
            "partition {partition}: a duplicate"
        );
        let read_live: Vec<&String> = read.iter().filter(|v| v.starts_with("live-")).collect();
        let acked_set: HashSet<&String> = live.iter().collect();
        let missing = live.iter().filter(|v| !read.contains(v)).count();
        assert_eq!(
            missing, 0,
            "partition {partition}: acknowledged records lost"
        );
        let in_order: Vec<&String> = read_live
            .iter()
            .copied()
            .filter(|v| acked_set.contains(v))
            .collect();
        assert_eq!(
            in_order,
            live.iter().collect::<Vec<_>>(),
            "partition {partition}: order"
        );
        if partition == 0 {
            assert!(read[..preloaded]
                .iter()
                .zip(0..)
                .all(|(v, i)| v.starts_with(&format!("{i:06}-"))));
        }
    }

    // The new replicas hold the same batches; the old ones' logs are deleted.
    let logs: BTreeMap<(i32, i32), Vec<Vec<u8>>> = [(0, 2), (0, 3), (1, 1), (1, 3)]
        .into_iter()
        .map(|(p, n)| ((p, n), batches(&node_dir(n), "moved", p)))
        .collect();
    assert!(
        logs[&(0, 2)] == logs[&(0, 3)],
        "partition 0's replicas differ"
    );
    assert!(
        logs[&(1, 1)] == logs[&(1, 3)],
        "partition 1's replicas differ"
    );
    wait_until(
        "the old replicas' logs deleted",
        Duration::from_secs(30),
        || !node_dir(1).join("moved-0").exists() && !node_dir(2).join("moved-1").exists(),
    );

    // A move to a broker that is down cannot finish: it stays under way until cancelled.
    nodes[0].kill();
    let stuck = plan(root.path(), "stuck.json", &[(0, &[2, 3, 1])]);
    let file = ["--reassignment-json-file", stuck.as_str()];
    let (ok, out) = reassign(&nodes[1], &[&file[..], &["--execute"]].concat());
    assert!(ok, "{out}");
    let (_, listed) = reassign(&nodes[1], &["--list"]);
    assert!(
        listed.contains("moved-0: replicas: 2,3,1. adding: 1."),
        "{listed}"
    );
    let (ok, out) = reassign(&nodes[1], &[&file[..], &["--cancel"]].concat());
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully cancelled partition reassignment for: moved-0"),
        "{out}"
    );
    assert_eq!(replicas_of(&nodes[1], "moved")[0], vec![2, 3]);
    let (_, listed) = reassign(&nodes[1], &["--list"]);
    assert!(
        listed.contains("No partition reassignments found."),
        "{listed}"
    );
    let (ok, out) = reassign(&nodes[1], &[&file[..], &["--cancel"]].concat());
    assert!(ok, "{out}");
    assert!(
        out.contains("None of the specified partition reassignments are active."),
        "{out}"
    );

    // A broker that is not registered cannot be a target: the tool names the partition and
    // Kafka's code (INVALID_REPLICA_ASSIGNMENT) and fails.
    let bad = plan(root.path(), "bad.json", &[(0, &[2, 9])]);
    let (ok, out) = reassign(
        &nodes[1],
        &["--reassignment-json-file", bad.as_str(), "--execute"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("Error reassigning moved-0: error 39"), "{out}");
    assert_eq!(replicas_of(&nodes[1], "moved")[0], vec![2, 3]);
}
