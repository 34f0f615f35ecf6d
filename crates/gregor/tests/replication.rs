//! Replication between brokers, three nodes as separate processes on loopback: followers copy
//! their leaders' logs byte for byte, `acks=all` waits for every in-sync replica and is refused
//! below `min.insync.replicas`, a killed leader's partitions move to an in-sync follower with
//! every acknowledged record, a paused follower leaves the ISR after `replica.lag.time.max.ms`
//! and rejoins once caught up, and replicas' logs are the same in the end.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::cluster::{brokers, brokers_beyond_voters, cluster_overrides, loopback, wait_until};
use common::replication::{batches, full_isr, partitions_of, wait_for};
use common::{
    admin_opts, block_on, parse_produce_v3_of, produce_v3_within, read_raw_response, record_batch,
    send_ok, try_call, Gregor, Rec,
};
use gregor_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use gregor_protocol::kafka::messages::metadata_request::MetadataRequestTopic;
use gregor_protocol::kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use gregor_protocol::kafka::messages::offset_fetch_request::OffsetFetchRequestTopic;
use gregor_protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use gregor_protocol::kafka::messages::{
    FetchRequest, FindCoordinatorRequest, GroupId, MetadataRequest, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, ResponseKind, TopicName,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::Message;

/// Three nodes with `extra` overrides each.
fn start(root: &Path, extra: &[&str]) -> Vec<Gregor> {
    let mut overrides = cluster_overrides(root, &loopback(3));
    for node in &mut overrides {
        node.extend(extra.iter().map(|o| o.to_string()));
    }
    Gregor::start_all(&overrides)
}

/// Creates `topic` with `partitions` partitions on all three brokers and `configs`.
fn create_replicated(g: &Gregor, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(3));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let created = block_on(g.admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
}

/// The error code of an `acks=all` Produce v3 of one record "held" to partition 0 of `topic`
/// on `g`, waiting up to `timeout_ms` for replication.
fn produce(g: &Gregor, topic: &str, timeout_ms: i32) -> i16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let batch = record_batch(&[b"held"], -1, -1, -1, 0);
    let frame = produce_v3_within(7, topic, 0, &batch, timeout_ms);
    std::io::Write::write_all(&mut s, &frame).unwrap();
    parse_produce_v3_of(&read_raw_response(&mut s), 0).1
}

fn values(g: &Gregor, topic: &str, partition: i32, expected: usize) -> Vec<String> {
    g.consume(topic, &[partition], expected)
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).to_string())
        .collect()
}

/// Records acknowledged with `acks=all` by an idempotent producer survive the SIGKILL of the
/// leader of their partition: another in-sync replica leads with all of them, the producer's
/// later records follow them once each, and the killed broker, back, catches up and rejoins
/// every ISR with a log equal, batch for batch, to the other replicas'.
#[test]
fn acknowledged_records_survive_the_leaders_kill() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start(
        root.path(),
        &[
            "broker.session.timeout.ms=2000",
            "broker.heartbeat.interval.ms=300",
        ],
    );
    create_replicated(&nodes[0], "rf3", 3, &[("min.insync.replicas", "2")]);
    wait_for(&nodes[0], "rf3", "every replica in sync", full_isr);
    let records = |prefix: &str| -> Vec<Rec> {
        (0..300)
            .map(|i| Rec {
                partition: Some(i % 3),
                ..Rec::value(format!("{prefix}-{i}"))
            })
            .collect()
    };
    let idempotent = [("acks", "all"), ("enable.idempotence", "true")];
    send_ok(&nodes[0].producer(&idempotent), "rf3", &records("a"));

    let leaders: Vec<i32> = partitions_of(&nodes[0], "rf3")
        .iter()
        .map(|p| p.0)
        .collect();
    let victim = leaders[0];
    let survivor = (1..=3).find(|&n| n != victim).unwrap();
    nodes[(victim - 1) as usize].kill();
    let observer = &nodes[(survivor - 1) as usize];
    wait_for(
        observer,
        "rf3",
        "the victim's partitions led elsewhere",
        |ps| {
            ps.iter()
                .all(|(l, isr)| *l > 0 && *l != victim && !isr.contains(&victim))
        },
    );
    send_ok(&observer.producer(&idempotent), "rf3", &records("b"));
    for p in 0..3 {
        let expected: Vec<String> = ["a", "b"]
            .iter()
            .flat_map(|prefix| {
                (0..300)
                    .filter(move |i| i % 3 == p)
                    .map(move |i| format!("{prefix}-{i}"))
            })
            .collect();
        assert_eq!(values(observer, "rf3", p, 200), expected, "partition {p}");
    }

    nodes[(victim - 1) as usize].restart();
    let observer = &nodes[(survivor - 1) as usize];
    wait_for(observer, "rf3", "the victim back in every ISR", full_isr);
    let logs: BTreeMap<(i32, i32), Vec<Vec<u8>>> = (1..=3)
        .flat_map(|node| (0..3).map(move |p| (node, p)))
        .map(|(node, p)| {
            let dir = root.path().join(format!("node-{node}"));
            ((node, p), batches(&dir, "rf3", p))
        })
        .collect();
    for p in 0..3 {
        let first = &logs[&(1, p)];
        let records: usize = first.len();
        assert!(records > 0, "partition {p} has batches");
        for node in 2..=3 {
            assert!(
                &logs[&(node, p)] == first,
                "partition {p}: node {node}'s log differs from node 1's"
            );
        }
    }
}

/// A follower that stops fetching (SIGSTOP) holds `acks=all` back while it is in the ISR; its
/// broker keeps its session (longer than the test), yet it leaves the ISR after
/// `replica.lag.time.max.ms`, and `acks=all` completes without it. `acks=1` is taken all
/// along, and `min.insync.replicas` above the ISR refuses `acks=all` before anything is
/// appended (NOT_ENOUGH_REPLICAS). Resumed, the follower catches up and rejoins.
#[test]
fn the_isr_shrinks_and_grows_and_bounds_acks_all() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start(
        root.path(),
        &[
            "replica.lag.time.max.ms=2000",
            "broker.session.timeout.ms=120000",
            "broker.heartbeat.interval.ms=300",
        ],
    );
    create_replicated(&nodes[0], "lag", 1, &[]);
    create_replicated(&nodes[0], "strict", 1, &[("min.insync.replicas", "3")]);
    wait_for(&nodes[0], "lag", "in sync", full_isr);
    wait_for(&nodes[0], "strict", "in sync", full_isr);
    let leader = partitions_of(&nodes[0], "lag")[0].0;
    let strict_leader = partitions_of(&nodes[0], "strict")[0].0;
    // A follower of both partitions.
    let follower = (1..=3)
        .find(|&n| n != leader && n != strict_leader)
        .unwrap();

    nodes[(follower - 1) as usize].signal(libc::SIGSTOP);
    let observer = &nodes[(leader - 1) as usize];
    // At once, well within the lag time: the paused follower is still in the ISR.
    assert_eq!(
        produce(observer, "lag", 300),
        7,
        "REQUEST_TIMED_OUT: not replicated"
    );
    // acks=1 needs the leader alone. (A partition that takes no records keeps a stopped
    // follower in its ISR, as Kafka's does: it is not behind.)
    let strict = &nodes[(strict_leader - 1) as usize];
    send_ok(
        &strict.producer(&[("acks", "1")]),
        "strict",
        &[Rec::value("one")],
    );
    wait_for(
        observer,
        "lag",
        "the paused follower out of the ISR",
        |ps| !ps[0].1.contains(&follower),
    );
    let acked = send_ok(
        &observer.producer(&[("acks", "all")]),
        "lag",
        &[Rec::value("while-paused")],
    );
    assert_eq!(acked.len(), 1);

    // The strict topic's leader refuses acks=all once its ISR lost the paused follower.
    wait_for(strict, "strict", "the strict ISR shrunk", |ps| {
        ps[0].1.len() == 2
    });
    // The leader learns its ISR a moment after the metadata shows it: until then the produce
    // is appended and waits (REQUEST_TIMED_OUT).
    wait_until("NOT_ENOUGH_REPLICAS", Duration::from_secs(30), || {
        produce(strict, "strict", 300) == 19
    });

    nodes[(follower - 1) as usize].signal(libc::SIGCONT);
    let observer = &nodes[(leader - 1) as usize];
    wait_for(observer, "lag", "the follower back in the ISR", full_isr);
    wait_for(observer, "strict", "the strict follower back", full_isr);
    let dir = |n: i32| root.path().join(format!("node-{n}"));
    wait_until("the follower's copy", Duration::from_secs(30), || {
        batches(&dir(follower), "lag", 0) == batches(&dir(leader), "lag", 0)
    });
    // The record that timed out was in the leader's log all along: it is committed too.
    let expected = ["held", "while-paused"].map(String::from);
    assert_eq!(values(observer, "lag", 0, 2), expected);
}

/// KIP-966 with real processes: three voters and broker-only node 4, a partition on brokers 3
/// and 4 with min.insync.replicas=2. Node 4 stopped (SIGTERM, a clean shutdown) leaves the ISR
/// for the eligible replicas, and `acks=all` is refused from then on (the high watermark
/// stops); node 3 killed (SIGKILL) empties the ISR. Node 3 back first came from an unclean
/// shutdown (it may have lost what it acknowledged): it is in neither the ISR nor the ELR and
/// does not lead. Node 4 back is eligible and leads at once (without ELR the partition would
/// wait for node 3's data), and takes `acks=1` records; below min.insync.replicas its high
/// watermark stays (as Kafka's). Node 3, running, follows it (truncating to its log), rejoins
/// the ISR, and every acknowledged record is there, the logs equal.
#[test]
fn an_eligible_replica_leads_once_the_isr_is_empty() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(4));
    brokers_beyond_voters(&mut overrides, 3);
    for node in &mut overrides {
        node.push("broker.session.timeout.ms=2000".into());
        node.push("broker.heartbeat.interval.ms=300".into());
    }
    let mut nodes = Gregor::start_all(&overrides);
    wait_until("four brokers", Duration::from_secs(30), || {
        brokers(&nodes[0].bootstrap()).is_ok_and(|b| b.len() == 4)
    });
    let new = NewTopic::new("elr", 1, TopicReplication::Variable(&[&[3, 4]]))
        .set("min.insync.replicas", "2");
    let created = block_on(nodes[0].admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let state = |want: (i32, Vec<i32>)| move |ps: &[(i32, Vec<i32>)]| ps[0] == want;
    wait_for(&nodes[0], "elr", "both in sync", state((3, vec![3, 4])));
    let expected: Vec<String> = (0..50).map(|i| format!("r-{i}")).collect();
    let records: Vec<Rec> = expected.iter().map(|v| Rec::value(v.as_str())).collect();
    let producer = nodes[0].producer(&[("acks", "all"), ("enable.idempotence", "true")]);
    send_ok(&producer, "elr", &records);

    nodes[3].terminate(Duration::from_secs(30));
    wait_for(&nodes[0], "elr", "4 out of the ISR", state((3, vec![3])));
    // The leader learns its ISR a moment after the metadata shows it: until then a produce is
    // appended and waits (REQUEST_TIMED_OUT), never acknowledged.
    wait_until("NOT_ENOUGH_REPLICAS", Duration::from_secs(30), || {
        produce(&nodes[2], "elr", 300) == 19
    });
    nodes[2].kill();
    wait_for(&nodes[0], "elr", "no leader", state((-1, vec![])));
    nodes[2].restart();
    wait_until("3 serving", Duration::from_secs(30), || {
        brokers(&nodes[0].bootstrap()).is_ok_and(|b| b.contains(&3))
    });
    // Its unfencing and what it leads are one metadata change: this is the outcome.
    assert_eq!(
        partitions_of(&nodes[0], "elr"),
        [(-1, vec![])],
        "3 does not lead"
    );
    nodes[3].restart();
    wait_for(&nodes[0], "elr", "eligible 4 leads", state((4, vec![4])));
    let one = nodes[0].producer(&[("acks", "1")]);
    send_ok(&one, "elr", &[Rec::value("after")]);

    wait_for(&nodes[0], "elr", "3 back in sync", state((4, vec![3, 4])));
    let mut expected = expected;
    expected.push("after".into());
    assert_eq!(values(&nodes[0], "elr", 0, 51), expected);
    let dir = |n: i32| root.path().join(format!("node-{n}"));
    wait_until("equal logs", Duration::from_secs(30), || {
        batches(&dir(3), "elr", 0) == batches(&dir(4), "elr", 0)
    });
}

/// A coordinator answers only with state whose records are on every in-sync replica: an
/// offset commit that cannot be replicated (both followers of `__consumer_offsets` paused,
/// still in its ISR) is not acknowledged, and OffsetFetch does not show it either (a failover
/// now would lose it) until it is replicated; resumed, the followers copy it and it shows.
#[test]
fn coordinators_show_only_replicated_state() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start(
        root.path(),
        &[
            "replica.lag.time.max.ms=120000",
            "broker.session.timeout.ms=120000",
            "broker.heartbeat.interval.ms=300",
            "offsets.topic.num.partitions=1",
            "offsets.topic.replication.factor=3",
        ],
    );
    create_replicated(&nodes[0], "t", 1, &[]);
    let address = |node: i32| format!("127.0.0.1:{}", nodes[(node - 1) as usize].port);
    let timeout = Duration::from_secs(15);
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    let coordinator = wait_until_some("a group coordinator", || {
        match try_call(
            &address(1),
            ApiKey::FindCoordinator,
            3,
            &find.clone().into(),
            timeout,
        ) {
            Ok(ResponseKind::FindCoordinator(r)) if r.error_code == 0 => Some(r.node_id.0),
            _ => None,
        }
    });
    wait_for(&nodes[0], "__consumer_offsets", "in sync", full_isr);
    let commit = |offset: i64| -> Result<i16, String> {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(offset);
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![partition])]);
        match try_call(
            &address(coordinator),
            ApiKey::OffsetCommit,
            8,
            &request.into(),
            timeout,
        )? {
            ResponseKind::OffsetCommit(r) => Ok(r.topics[0].partitions[0].error_code),
            other => panic!("{other:?}"),
        }
    };
    let committed = || -> Result<i64, String> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0])]));
        match try_call(
            &address(coordinator),
            ApiKey::OffsetFetch,
            7,
            &request.into(),
            timeout,
        )? {
            ResponseKind::OffsetFetch(r) => Ok(r.topics[0].partitions[0].committed_offset),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(commit(5), Ok(0));
    assert_eq!(committed(), Ok(5));

    let followers: Vec<i32> = (1..=3).filter(|&n| n != coordinator).collect();
    for &n in &followers {
        nodes[(n - 1) as usize].signal(libc::SIGSTOP);
    }
    // Appended by the leader, never replicated: no answer (the connection is closed after the
    // coordinator's 5 s write timeout, and a client retries).
    let unreplicated = commit(42);
    assert!(
        unreplicated.is_err(),
        "acknowledged unreplicated: {unreplicated:?}"
    );
    let read = committed();
    assert!(read.is_err(), "an unreplicated offset was shown: {read:?}");

    for &n in &followers {
        nodes[(n - 1) as usize].signal(libc::SIGCONT);
    }
    // The commit was in the leader's log all along: replicated now, it shows.
    wait_until("the replicated commit", Duration::from_secs(30), || {
        committed() == Ok(42)
    });
}

/// Polls `f` until it gives a value (60 s at most).
fn wait_until_some<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut got = None;
    wait_until(what, Duration::from_secs(60), || {
        got = f();
        got.is_some()
    });
    got.unwrap()
}

/// KIP-951: a broker that does not lead a partition answers Produce (v10+) and Fetch (v16+)
/// NOT_LEADER_OR_FOLLOWER naming the current leader and its epoch, with the leader's endpoint
/// (Produce v10+, Fetch v16+), so clients move without asking for metadata.
#[test]
fn brokers_name_the_leader_they_are_not() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start(root.path(), &[]);
    let new = NewTopic::new("moved", 1, TopicReplication::Fixed(1));
    let created = block_on(nodes[0].admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    wait_for(&nodes[0], "moved", "a leader", |ps| ps[0].0 > 0);
    let leader = partitions_of(&nodes[0], "moved")[0].0;
    // Node n is nodes[n - 1]: this is the next one.
    let other = &nodes[(leader % 3) as usize];
    let address = format!("127.0.0.1:{}", other.port);
    let timeout = Duration::from_secs(10);
    let leader_port = i32::from(nodes[(leader - 1) as usize].port);

    let name = TopicName(StrBytes::from_static_str("moved"));
    let batch = record_batch(&[b"x"], -1, -1, -1, 0);
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name.clone())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.into()))])]);
    let ResponseKind::Produce(answer) =
        try_call(&address, ApiKey::Produce, 10, &produce.into(), timeout).unwrap()
    else {
        panic!("not a Produce response");
    };
    let p = &answer.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(p.current_leader.leader_id.0, leader);
    assert!(p.current_leader.leader_epoch >= 0);
    let endpoints: Vec<(i32, i32)> = answer
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    assert_eq!(endpoints, [(leader, leader_port)]);

    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name)),
    ]));
    let ResponseKind::Metadata(described) =
        try_call(&address, ApiKey::Metadata, 12, &metadata.into(), timeout).unwrap()
    else {
        panic!("not a Metadata response");
    };
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(described.topics[0].topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(answer) =
        try_call(&address, ApiKey::Fetch, 16, &fetch.into(), timeout).unwrap()
    else {
        panic!("not a Fetch response");
    };
    let p = &answer.responses[0].partitions[0];
    assert_eq!(p.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(p.current_leader.leader_id.0, leader);
    let endpoints: Vec<(i32, i32)> = answer
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    assert_eq!(endpoints, [(leader, leader_port)]);
}
