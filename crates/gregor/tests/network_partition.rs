//! Network partitions of three- and five-node clusters, each node (broker and controller) in
//! its own network namespace: the side without a majority of controllers decides nothing, the majority
//! elects a controller and goes on, and once healed every node holds one history. A writer
//! creates topics through every node all along; the checker then wants every acknowledged
//! topic on every node with one topic id, and the nodes' metadata logs identical batch for
//! batch up to the quorum's high watermark.
//!
//! Rounds (`GREGOR_PARTITION_ROUNDS`, default 3 with three nodes, 2 with five) take turns: the
//! active controller cut off from the others (with five nodes, together with one follower: a
//! minority of two), followers cut off (one of three, two of five), and the active controller
//! cut from one follower only (the other nodes still reaching both). Needs root (`ip netns`), as
//! CI has. The tests take turns: each runs writers flat out.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    brokers, cluster_overrides, create_topic, describe_quorum, topic_ids, wait_until,
};
use common::netns::Network;
use common::Gregor;

/// The tests of this file run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// Three election timeouts (`controller.quorum.election.timeout.ms`, 1 s).
const SETTLE: Duration = Duration::from_secs(3);

/// One CreateTopics the writer sent.
#[derive(Debug)]
struct Attempt {
    topic: String,
    /// The node (index) it went to.
    node: usize,
    sent: Instant,
    answered: Instant,
    /// The topic's error code, or why there was no answer.
    outcome: Result<i16, String>,
}

impl Attempt {
    fn acknowledged(&self) -> bool {
        self.outcome == Ok(0)
    }
}

/// The quorum as each node that answers sees it.
fn quorum_views(addresses: &[String]) -> Vec<(i32, i64)> {
    addresses
        .iter()
        .filter_map(|a| describe_quorum(a).ok())
        .map(|q| (q.leader, q.high_watermark))
        .collect()
}

/// The batches of a metadata log dir, in order: (base offset, leader epoch, CRC).
fn metadata_batches(log_dir: &Path) -> Vec<(i64, i32, u32)> {
    let dir = log_dir.join("__cluster_metadata-0");
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let mut batches = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(&segment).unwrap();
        let mut at = 0;
        while at + 21 <= bytes.len() {
            let field = |from: usize, len: usize| &bytes[at + from..at + from + len];
            let length = i32::from_be_bytes(field(8, 4).try_into().unwrap());
            if length <= 0 || at + 12 + length as usize > bytes.len() {
                break; // the end, or a torn tail
            }
            batches.push((
                i64::from_be_bytes(field(0, 8).try_into().unwrap()),
                i32::from_be_bytes(field(12, 4).try_into().unwrap()),
                u32::from_be_bytes(field(17, 4).try_into().unwrap()),
            ));
            at += 12 + length as usize;
        }
    }
    batches
}

/// How a round cuts the network.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// The active controller cut off from the others (with followers, up to a minority).
    Leader,
    /// Followers, as many as a minority, cut off from the others.
    Follower,
    /// The active controller and one follower cut from each other; the others reach both.
    LeaderFromOne,
}

#[test]
fn three_nodes_a_partitioned_minority_decides_nothing_and_one_history_remains() {
    partitions(3, 3);
}

#[test]
fn five_nodes_a_partitioned_minority_of_two_decides_nothing_and_one_history_remains() {
    partitions(5, 2);
}

/// Cuts a cluster of `nodes` nodes in `GREGOR_PARTITION_ROUNDS` rounds (default `rounds`).
fn partitions(nodes: usize, rounds: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rounds: usize = std::env::var("GREGOR_PARTITION_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(rounds);
    let network = Network::create(nodes);
    let root = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (0..nodes).map(|i| network.address(i)).collect();
    let places: Vec<(String, String)> = (0..nodes)
        .map(|i| (network.namespace(i), hosts[i].clone()))
        .collect();
    let mut cluster = Gregor::start_all_in(&cluster_overrides(root.path(), &hosts), &places);
    let addresses: Vec<String> = cluster.iter().map(Gregor::bootstrap).collect();
    wait_until("every broker unfenced", Duration::from_secs(30), || {
        addresses
            .iter()
            .all(|a| brokers(a).is_ok_and(|b| b.len() == nodes))
    });

    // The writers: one per node, each sending one CreateTopics after another through it (one
    // that hangs on a cut-off node holds up no other).
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..nodes)
        .map(|node| {
            let (attempts, stop) = (attempts.clone(), stop.clone());
            let address = addresses[node].clone();
            std::thread::spawn(move || {
                for seq in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let topic = format!("t-{}-{seq}", node + 1);
                    let sent = Instant::now();
                    let outcome = create_topic(&address, &topic);
                    attempts.lock().unwrap().push(Attempt {
                        topic,
                        node,
                        sent,
                        answered: Instant::now(),
                        outcome,
                    });
                    // Paced: the metadata log need not grow faster than the test can look.
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    let acknowledged_since = |since: Instant, through: &[usize]| {
        attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent > since && through.contains(&a.node) && a.acknowledged())
            .count()
    };
    let leader = || -> usize {
        let mut found = None;
        wait_until(
            "a leader every node agrees on",
            Duration::from_secs(30),
            || {
                let views = quorum_views(&addresses);
                let seen: BTreeSet<i32> = views.iter().map(|q| q.0).collect();
                found = (views.len() == nodes && seen.len() == 1).then(|| views[0].0);
                found.is_some_and(|l| l > 0)
            },
        );
        found.unwrap() as usize - 1
    };

    let everyone: Vec<usize> = (0..nodes).collect();
    let kinds = [Cut::Leader, Cut::Follower, Cut::LeaderFromOne];
    for round in 0..rounds {
        let kind = kinds[round % kinds.len()];
        let round_start = Instant::now();
        wait_until(
            "a topic acknowledged before the cut",
            Duration::from_secs(30),
            || acknowledged_since(round_start, &everyone) > 0,
        );
        let leader = leader();
        let followers: Vec<usize> = (1..nodes).map(|k| (leader + k) % nodes).collect();
        // The largest minority.
        let cut_off = (nodes - 1) / 2;
        // The nodes cut off from a majority, and those that keep one.
        let minority: Vec<usize> = match kind {
            Cut::Leader => std::iter::once(leader)
                .chain(followers[..cut_off - 1].iter().copied())
                .collect(),
            Cut::Follower => followers[..cut_off].to_vec(),
            Cut::LeaderFromOne => vec![],
        };
        let majority: Vec<usize> = match kind {
            Cut::LeaderFromOne => {
                network.cut(leader, followers[0]);
                followers[1..].to_vec()
            }
            _ => {
                network.split(&minority);
                everyone
                    .iter()
                    .copied()
                    .filter(|n| !minority.contains(n))
                    .collect()
            }
        };
        let cut_at = Instant::now();
        eprintln!("round {round}: {kind:?} (leader {}), cut", leader + 1);

        // The majority goes on deciding (a controller among it, elected anew if need be), and
        // fences the brokers it no longer hears from. Progress is counted from requests sent
        // once the cut-off nodes had time to stand for election a few times.
        wait_until(
            "topics acknowledged by the majority during the cut",
            Duration::from_secs(60),
            || acknowledged_since(cut_at + SETTLE, &majority) >= 3,
        );
        eprintln!(
            "round {round}: the majority decided again within {:?}",
            cut_at.elapsed()
        );
        for m in &minority {
            let id = *m as i32 + 1;
            wait_until(
                "the cut-off broker fenced by the majority",
                Duration::from_secs(60),
                || {
                    majority
                        .iter()
                        .all(|n| brokers(&addresses[*n]).is_ok_and(|b| !b.contains(&id)))
                },
            );
        }
        // Every node of the majority reaches a controller, and it is not a cut-off one.
        for n in &majority {
            let seen = describe_quorum(&addresses[*n]);
            assert!(
                seen.as_ref()
                    .is_ok_and(|q| q.leader > 0 && !minority.contains(&((q.leader - 1) as usize))),
                "node {}: {seen:?}",
                n + 1
            );
        }
        network.heal();
        let healed_at = Instant::now();
        eprintln!("round {round}: healed after {:?}", healed_at - cut_at);

        // Nothing sent to a cut-off node while it was cut off was acknowledged during the cut: it
        // could reach no majority to commit it.
        let decided_alone: Vec<String> = attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| minority.contains(&a.node) && a.sent > cut_at && a.answered < healed_at)
            .filter(|a| a.acknowledged())
            .map(|a| a.topic.clone())
            .collect();
        assert!(
            decided_alone.is_empty(),
            "decided by a minority: {decided_alone:?}"
        );

        // Healed, every node rejoins and is unfenced.
        wait_until(
            "every broker unfenced after healing",
            Duration::from_secs(60),
            || {
                addresses
                    .iter()
                    .all(|a| brokers(a).is_ok_and(|b| b.len() == nodes))
            },
        );
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }

    // One history: every node knows the same topics with the same ids, among them every
    // acknowledged one, and nothing no one asked for.
    let attempts = attempts.lock().unwrap();
    let asked: BTreeSet<&str> = attempts.iter().map(|a| a.topic.as_str()).collect();
    let acknowledged: Vec<&str> = attempts
        .iter()
        .filter(|a| a.acknowledged())
        .map(|a| a.topic.as_str())
        .collect();
    let mut views = Vec::new();
    wait_until(
        "every node with the same topics",
        Duration::from_secs(60),
        || {
            views = addresses.iter().map(|a| topic_ids(a)).collect::<Vec<_>>();
            views.iter().all(|v| v.is_ok() && v == &views[0])
        },
    );
    let topics = views[0].as_ref().unwrap();
    let lost: Vec<&&str> = acknowledged
        .iter()
        .filter(|t| !topics.contains_key(**t))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let phantoms: Vec<&String> = topics
        .keys()
        .filter(|t| !t.starts_with("__") && !asked.contains(t.as_str()))
        .collect();
    assert!(phantoms.is_empty(), "never asked for: {phantoms:?}");
    eprintln!(
        "{} creates sent, {} acknowledged, {} topics in the end",
        attempts.len(),
        acknowledged.len(),
        topics.len()
    );

    // The metadata logs agree batch for batch up to the high watermark, once every voter's log
    // reaches it (as the leader reports their progress).
    let mut high_watermark = 0;
    wait_until(
        "every voter's log at the high watermark",
        Duration::from_secs(30),
        || {
            describe_quorum(&addresses[0]).is_ok_and(|q| {
                high_watermark = q.high_watermark;
                q.log_ends.len() == nodes && q.log_ends.iter().all(|e| *e >= high_watermark)
            })
        },
    );
    for g in &mut cluster {
        g.terminate(Duration::from_secs(30));
    }
    let logs: Vec<Vec<(i64, i32, u32)>> = (0..nodes)
        .map(|i| {
            metadata_batches(&root.path().join(format!("node-{}", i + 1)))
                .into_iter()
                .filter(|b| b.0 < high_watermark)
                .collect()
        })
        .collect();
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(
            log.last().map(|b| b.0),
            logs[0].last().map(|b| b.0),
            "node {} ends elsewhere",
            i + 1
        );
        assert_eq!(
            log,
            &logs[0],
            "node {}'s metadata log diverges from node 1's",
            i + 1
        );
    }
    drop(cluster);
    drop(network);
}
