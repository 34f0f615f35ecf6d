//! Three nodes as separate processes on loopback, each a broker and a controller of one Raft
//! metadata quorum: topics created through any node are seen by every node, partitions are led
//! by every broker and take records produced through one bootstrap node, and the loss of the
//! active controller (SIGKILL) elects another that goes on deciding.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{
    brokers_beyond_voters, cluster_overrides, create_topic, describe_quorum, listener_of, loopback,
    topic_ids, wait_until,
};
use common::{admin_opts, block_on, send_ok, Gregor, Rec};
use gregor_protocol::kafka::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use gregor_protocol::kafka::messages::metadata_request::MetadataRequestTopic;
use gregor_protocol::kafka::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use gregor_protocol::kafka::messages::{
    BrokerId, DescribeClusterRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, OffsetForLeaderEpochRequest,
    ProducerId, ResponseKind, TopicName, TransactionalId,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::{ApiKey, RequestKind};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::metadata::Metadata;
use rdkafka::Message;

/// The quorum leader a node named when it started (all nodes agree once one is elected).
fn leader_at_start(g: &Gregor) -> i32 {
    let log = g.log_tail(10_000);
    let line = log
        .lines()
        .find(|l| l.contains("the metadata quorum has a leader"))
        .expect("a leader was logged");
    line.rsplit("leader=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The active controller a node names in Metadata (v12): the node itself, as a KRaft broker
/// answers, so that a client's admin requests go to a live node that forwards them.
fn controller_id(g: &Gregor) -> i32 {
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let request = RequestKind::Metadata(MetadataRequest::default());
    match common::call(&mut s, ApiKey::Metadata, 12, 1, &request) {
        ResponseKind::Metadata(m) => m.controller_id.0,
        other => panic!("{other:?}"),
    }
}

fn metadata(g: &Gregor) -> Metadata {
    g.admin()
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata")
}

/// Creates a topic through `g`, retrying while the quorum elects a new leader.
fn create(g: &Gregor, topic: &str, partitions: i32) {
    create_with(g, topic, partitions, 1);
}

/// Creates a topic of `replicas` replicas per partition through `g`, retrying while the quorum
/// elects a new leader.
fn create_with(g: &Gregor, topic: &str, partitions: i32, replicas: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
        let result = block_on(g.admin().create_topics(&[new], &admin_opts()));
        match result.map(|mut r| r.remove(0)) {
            Ok(Ok(_)) => return,
            outcome => {
                assert!(
                    Instant::now() < deadline,
                    "cannot create {topic}: {outcome:?}\n{}",
                    g.log_tail(30)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// The node FindCoordinator (v3) on `g` names for `key`, retrying while it is not available.
fn find_coordinator(g: &Gregor, key_type: i8, key: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        let request = RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(key.to_string()))
                .with_key_type(key_type),
        );
        match common::call(&mut s, ApiKey::FindCoordinator, 3, 1, &request) {
            ResponseKind::FindCoordinator(r) if r.error_code == 0 => return r.node_id.0,
            other => assert!(Instant::now() < deadline, "{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The error code `g` answers a request only the coordinator of `key` serves: a Heartbeat of
/// an unknown member for a group, an InitProducerId for a transactional id.
fn coordinated_request(g: &Gregor, key_type: i8, key: &str) -> i16 {
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let key = StrBytes::from_string(key.to_string());
    if key_type == GROUP {
        let request = RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(GroupId(key))
                .with_member_id(StrBytes::from_static_str("nobody"))
                .with_generation_id(1),
        );
        match common::call(&mut s, ApiKey::Heartbeat, 4, 1, &request) {
            ResponseKind::Heartbeat(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    } else {
        let request = RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(key)))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        match common::call(&mut s, ApiKey::InitProducerId, 4, 1, &request) {
            ResponseKind::InitProducerId(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }
}

/// Waits until `g`'s metadata shows `topic` with `partitions` partitions, all led.
fn wait_for_topic(g: &Gregor, topic: &str, partitions: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = metadata(g);
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            let leaders: Vec<i32> = t.partitions().iter().map(|p| p.leader()).collect();
            if leaders.len() == partitions && leaders.iter().all(|l| *l >= 0) {
                return leaders;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never appeared on port {}",
            g.port
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_nodes_share_topics_and_survive_the_loss_of_the_active_controller() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = Gregor::start_all(&cluster_overrides(root.path(), &loopback(3)));

    // Every node knows all three brokers and one active controller.
    for g in &nodes {
        let md = metadata(g);
        let brokers: BTreeSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
        assert_eq!(brokers, BTreeSet::from([1, 2, 3]), "port {}", g.port);
    }

    // A topic created through node 3 is placed on every broker and known to node 1.
    create(&nodes[2], "spread", 3);
    let leaders = wait_for_topic(&nodes[0], "spread", 3);
    assert_eq!(
        leaders.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3])
    );

    // A broker asked for a partition another broker leads says so (the client then refreshes
    // its metadata), instead of calling the partition unknown.
    let elsewhere = leaders.iter().position(|&l| l != 1).unwrap() as i32;
    let mut s = TcpStream::connect(("127.0.0.1", nodes[0].port)).unwrap();
    let batch = common::record_batch(&[b"x"], -1, -1, -1, 1_700_000_000_000);
    s.write_all(&common::produce_v3_to(1, "spread", elsewhere, &batch))
        .unwrap();
    let (_, error, _) = common::parse_produce_v3_of(&common::read_raw_response(&mut s), elsewhere);
    assert_eq!(error, 6, "NOT_LEADER_OR_FOLLOWER");

    // Records produced through node 1 reach the partitions each broker leads.
    let producer = nodes[0].producer(&[("acks", "all")]);
    let records: Vec<Rec> = (0..30)
        .map(|i| Rec {
            partition: Some(i % 3),
            ..Rec::value(format!("v{i}"))
        })
        .collect();
    send_ok(&producer, "spread", &records);
    let got = nodes[1].consume("spread", &[0, 1, 2], 30);
    assert_eq!(got.len(), 30);

    // A group's and a transactional id's coordinator is the leader of their partition of
    // __consumer_offsets / __transaction_state: every node names the same one, and the other
    // brokers answer their requests NOT_COORDINATOR (16), so clients look again.
    for (key_type, key) in [(GROUP, "a-group"), (TRANSACTION, "a-transaction")] {
        let coordinator = find_coordinator(&nodes[0], key_type, key);
        for (i, g) in nodes.iter().enumerate() {
            assert_eq!(
                find_coordinator(g, key_type, key),
                coordinator,
                "node {}",
                i + 1
            );
            let expected = match (key_type, i as i32 + 1 == coordinator) {
                (_, false) => 16,
                (GROUP, true) => 25, // UNKNOWN_MEMBER_ID: the coordinator knows no such member
                (_, true) => 0,      // a producer id for the transactional id
            };
            assert_eq!(
                coordinated_request(g, key_type, key),
                expected,
                "node {}",
                i + 1
            );
        }
    }

    // DescribeQuorum through any node: the leader, the three voters and their progress, as
    // kafka-metadata-quorum.sh shows them.
    let controller = leader_at_start(&nodes[0]);
    let asked = &nodes[(controller % 3) as usize];
    let quorum = |what: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(["metadata-quorum", "--bootstrap-server", &asked.bootstrap()])
            .args(["describe", what])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let status = quorum("--status");
    assert!(
        status.contains(&format!("LeaderId:               {controller}\n")),
        "{status}"
    );
    for id in 1..=3 {
        assert!(status.contains(&format!("{{\"id\": {id}, ")), "{status}");
    }
    let high_watermark: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("HighWatermark:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(high_watermark > 0, "{status}");
    let replication = quorum("--replication");
    let roles: Vec<&str> = replication
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "Leader").count(),
        1,
        "{replication}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == "Follower").count(),
        2,
        "{replication}"
    );

    // SIGKILL the active controller: the other two elect one and go on deciding; a client's
    // admin request goes to the node it knows, which forwards it.
    for (i, g) in nodes.iter().enumerate() {
        assert_eq!(
            controller_id(g),
            i as i32 + 1,
            "Metadata names the node itself"
        );
    }
    assert!(nodes.iter().all(|g| leader_at_start(g) == controller));
    let index = (controller - 1) as usize;
    nodes[index].kill();
    let survivor = &nodes[(index + 1) % 3];
    let started = Instant::now();
    create(survivor, "after-failover", 1);
    eprintln!(
        "a topic created within {:?} of the active controller's loss",
        started.elapsed()
    );
    let other = &nodes[(index + 2) % 3];
    wait_for_topic(other, "after-failover", 1);

    // The killed node restarts, catches up, and knows the topic created without it.
    nodes[index].restart();
    wait_for_topic(&nodes[index], "after-failover", 1);
}

/// A node of a multi-node quorum whose dirs were never formatted refuses to start, saying how.
#[test]
fn an_unformatted_cluster_node_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = common::refused_start(
        dir.path(),
        &[
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
        ],
    );
    assert!(stderr.contains("gregor storage format"), "{stderr}");
}

/// Every acknowledged topic creation survives SIGKILLs of any node, the active controller
/// included: created through one node while another is down or just back, each topic ends up
/// known to every node. `GREGOR_CLUSTER_ROUNDS` (default 3) sets how many kill-and-restart
/// rounds run; the victim of each round follows from a seed printed at the start.
#[test]
fn acknowledged_topics_survive_repeated_kills() {
    let rounds: usize = std::env::var("GREGOR_CLUSTER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}, {rounds} rounds");
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift: enough to vary the victims between runs.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 3) as usize
    };
    let root = tempfile::tempdir().unwrap();
    let mut nodes = Gregor::start_all(&cluster_overrides(root.path(), &loopback(3)));
    let mut acknowledged = Vec::new();
    for round in 0..rounds {
        let victim = next();
        let topic = format!("before-kill-{round}");
        create(&nodes[(victim + 1) % 3], &topic, 1);
        acknowledged.push(topic);
        nodes[victim].kill();
        let topic = format!("while-down-{round}");
        create(&nodes[(victim + 2) % 3], &topic, 1);
        acknowledged.push(topic);
        nodes[victim].restart();
        let topic = format!("after-restart-{round}");
        create(&nodes[victim], &topic, 1);
        acknowledged.push(topic);
    }
    for g in &nodes {
        for topic in &acknowledged {
            wait_for_topic(g, topic, 1);
        }
    }
}

/// The brokers DescribeCluster v2 on `g` lists (fenced ones too when asked), each with
/// whether it is fenced.
fn described_brokers(g: &Gregor, include_fenced: bool) -> Vec<(i32, bool)> {
    let mut s = TcpStream::connect(g.bootstrap()).unwrap();
    let request = RequestKind::DescribeCluster(
        DescribeClusterRequest::default().with_include_fenced_brokers(include_fenced),
    );
    let ResponseKind::DescribeCluster(described) =
        common::call(&mut s, ApiKey::DescribeCluster, 2, 1, &request)
    else {
        panic!("not a DescribeCluster response");
    };
    described
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect()
}

/// The partitions' leaders in `g`'s metadata, once `want` holds for them.
fn wait_for_leaders(g: &Gregor, topic: &str, want: impl Fn(&[i32]) -> bool) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = metadata(g);
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            let leaders: Vec<i32> = t.partitions().iter().map(|p| p.leader()).collect();
            if want(&leaders) {
                return leaders;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: leaders never as wanted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn brokers_listed(g: &Gregor) -> BTreeSet<i32> {
    metadata(g).brokers().iter().map(|b| b.id()).collect()
}

/// Three nodes whose brokers are fenced 2 s after their last heartbeat.
fn start_with_short_sessions(root: &std::path::Path) -> Vec<Gregor> {
    let mut overrides = cluster_overrides(root, &loopback(3));
    for node in &mut overrides {
        node.push("broker.session.timeout.ms=2000".into());
        node.push("broker.heartbeat.interval.ms=300".into());
    }
    Gregor::start_all(&overrides)
}

/// The leader epoch of a partition in `g`'s Metadata (v12).
fn leader_epoch_of(g: &Gregor, topic: &str, partition: usize) -> i32 {
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let request = RequestKind::Metadata(
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))])),
    );
    match common::call(&mut s, ApiKey::Metadata, 12, 1, &request) {
        ResponseKind::Metadata(r) => r.topics[0].partitions[partition].leader_epoch,
        other => panic!("{other:?}"),
    }
}

/// ListOffsets (v7) on `g` for `timestamp` (-1 latest, -2 earliest): (error code, offset,
/// leader epoch).
fn list_offset(g: &Gregor, topic: &str, partition: usize, timestamp: i64) -> (i16, i64, i32) {
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let request = RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition as i32)
                    .with_timestamp(timestamp)])]),
    );
    match common::call(&mut s, ApiKey::ListOffsets, 7, 1, &request) {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.offset, p.leader_epoch)
        }
        other => panic!("{other:?}"),
    }
}

/// OffsetForLeaderEpoch (v4) on `g`: (error code, epoch, end offset) for `requested`, sent by
/// a client that knows `current` as the leader epoch.
fn epoch_end(
    g: &Gregor,
    topic: &str,
    partition: usize,
    current: i32,
    requested: i32,
) -> (i16, i32, i64) {
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let request = RequestKind::OffsetForLeaderEpoch(
        OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition as i32)
                .with_current_leader_epoch(current)
                .with_leader_epoch(requested)])]),
    );
    match common::call(&mut s, ApiKey::OffsetForLeaderEpoch, 4, 1, &request) {
        ResponseKind::OffsetForLeaderEpoch(r) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.leader_epoch, p.end_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// A broker the controller stops hearing from is fenced: Metadata stops listing it and its
/// partitions have no leader (their only in-sync replica is gone), while the others serve on.
/// Restarted, it is unfenced once caught up and leads its partitions again, its records intact,
/// in a newer leader epoch.
#[test]
fn a_killed_broker_is_fenced_and_leads_again_when_back() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_with_short_sessions(root.path());
    create(&nodes[0], "fenced", 3);
    let leaders = wait_for_topic(&nodes[0], "fenced", 3);
    let producer = nodes[0].producer(&[("acks", "all")]);
    let records: Vec<Rec> = (0..30)
        .map(|i| Rec {
            partition: Some(i % 3),
            ..Rec::value(format!("before-{i}"))
        })
        .collect();
    send_ok(&producer, "fenced", &records);

    // Not the active controller, so the fencing is the survivors' controller's doing alone.
    let controller = leader_at_start(&nodes[0]);
    let victim = (1..=3).find(|&n| n != controller).unwrap();
    let victim_partition = leaders.iter().position(|&l| l == victim).unwrap();
    let epoch_before = leader_epoch_of(&nodes[0], "fenced", victim_partition);
    nodes[(victim - 1) as usize].kill();
    let observer = (controller - 1) as usize;
    let fenced = wait_for_leaders(&nodes[observer], "fenced", |l| l[victim_partition] == -1);
    for (p, leader) in fenced.iter().enumerate() {
        if p != victim_partition {
            assert_eq!(*leader, leaders[p], "other partitions keep their leader");
        }
    }
    assert!(!brokers_listed(&nodes[observer]).contains(&victim));
    // DescribeCluster v2 shows it, marked, to a client that asks for fenced brokers (KIP-1073).
    for include in [false, true] {
        let described = described_brokers(&nodes[observer], include);
        let fenced: Vec<(i32, bool)> = described
            .iter()
            .copied()
            .filter(|(_, fenced)| *fenced)
            .collect();
        let expected = if include {
            vec![(victim, true)]
        } else {
            vec![]
        };
        assert_eq!(fenced, expected);
        assert_eq!(described.len(), if include { 3 } else { 2 });
    }
    // `gregor cluster` lists it as fenced, beside the quorum's three voters.
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["cluster", "--no-api-versions", "--output", "json"])
        .args(["--bootstrap-server", &nodes[observer].bootstrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<(i64, bool)> = json["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_i64().unwrap(), b["fenced"].as_bool().unwrap()))
        .collect();
    let expected: Vec<(i64, bool)> = (1..=3).map(|id| (id, id == victim as i64)).collect();
    assert_eq!(listed, expected, "{json}");
    assert_eq!(
        json["quorum"]["voters"],
        serde_json::json!([1, 2, 3]),
        "{json}"
    );
    // The partitions of live brokers take records meanwhile.
    let live: Vec<Rec> = (0..3)
        .filter(|&p| p as usize != victim_partition)
        .map(|p| Rec {
            partition: Some(p),
            ..Rec::value("while-fenced")
        })
        .collect();
    send_ok(
        &nodes[observer].producer(&[("acks", "all")]),
        "fenced",
        &live,
    );

    nodes[(victim - 1) as usize].restart();
    wait_for_leaders(&nodes[observer], "fenced", |l| l == leaders.as_slice());
    assert!(brokers_listed(&nodes[observer]).contains(&victim));
    let got = nodes[observer].consume("fenced", &[victim_partition as i32], 10);
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload().unwrap_or_default()).to_string())
        .collect();
    let expected: Vec<String> = (0..30)
        .filter(|i| i % 3 == victim_partition)
        .map(|i| format!("before-{i}"))
        .collect();
    assert_eq!(values, expected);

    // It leads in a newer epoch (KIP-320): clients that know an older one are fenced, ones
    // that know a newer one are told it is unknown here, and where each epoch's records end
    // is answered from the log's leader-epoch cache (OffsetForLeaderEpoch).
    let back = &nodes[(victim - 1) as usize];
    let epoch = leader_epoch_of(back, "fenced", victim_partition);
    assert!(epoch > epoch_before, "{epoch} after {epoch_before}");
    let p = victim_partition;
    // Its epoch begins at its log end before it wrote anything (a consumer validating its
    // position after the leader change must not see a truncation).
    assert_eq!(epoch_end(back, "fenced", p, epoch, epoch), (0, epoch, 10));
    assert_eq!(
        epoch_end(back, "fenced", p, epoch, epoch_before),
        (0, epoch_before, 10)
    );
    send_ok(
        &nodes[observer].producer(&[("acks", "all")]),
        "fenced",
        &[Rec {
            partition: Some(victim_partition as i32),
            ..Rec::value("after")
        }],
    );
    assert_eq!(
        epoch_end(back, "fenced", p, epoch, epoch_before),
        (0, epoch_before, 10)
    );
    assert_eq!(epoch_end(back, "fenced", p, epoch, epoch), (0, epoch, 11));
    assert_eq!(epoch_end(back, "fenced", p, -1, epoch + 5), (0, -1, -1));
    assert_eq!(
        epoch_end(back, "fenced", p, epoch_before, epoch).0,
        74,
        "FENCED_LEADER_EPOCH"
    );
    assert_eq!(
        epoch_end(back, "fenced", p, epoch + 1, epoch).0,
        75,
        "UNKNOWN_LEADER_EPOCH"
    );
    // ListOffsets names the epoch that wrote the offset it finds (the leader's for the latest).
    assert_eq!(list_offset(back, "fenced", p, -2), (0, 0, epoch_before));
    assert_eq!(list_offset(back, "fenced", p, -1), (0, 11, epoch));
    let other = &nodes[observer];
    assert_eq!(
        epoch_end(other, "fenced", p, epoch, epoch).0,
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
}

/// SIGTERM is a controlled shutdown: the broker has the controller fence it before it exits, so
/// its partition shows no leader at once, long before its session (60 s here) would have run
/// out; restarted, it leads again.
#[test]
fn a_sigtermed_broker_shuts_down_in_a_controlled_way() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(3));
    for node in &mut overrides {
        node.push("broker.session.timeout.ms=60000".into());
    }
    let mut nodes = Gregor::start_all(&overrides);
    create(&nodes[0], "controlled", 3);
    let leaders = wait_for_topic(&nodes[0], "controlled", 3);
    let controller = leader_at_start(&nodes[0]);
    let victim = (1..=3).find(|&n| n != controller).unwrap();
    let victim_partition = leaders.iter().position(|&l| l == victim).unwrap();
    let index = (victim - 1) as usize;
    let status = nodes[index].terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        nodes[index]
            .log_tail(200)
            .contains("controlled shutdown: the controller fenced this broker"),
        "{}",
        nodes[index].log_tail(30)
    );
    let observer = (controller - 1) as usize;
    wait_for_leaders(&nodes[observer], "controlled", |l| {
        l[victim_partition] == -1
    });
    assert!(!brokers_listed(&nodes[observer]).contains(&victim));

    nodes[index].restart();
    wait_for_leaders(&nodes[observer], "controlled", |l| l == leaders.as_slice());
}

/// A base port with its next two and their controller ports (100 higher) free.
fn free_port_block() -> u16 {
    loop {
        let base = common::free_port();
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if [1, 2, 100, 101, 102].iter().all(|d| free(base + d)) {
            return base;
        }
    }
}

/// `gregor dev` runs a three-node cluster in one command: it prints the bootstrap list, the
/// cluster takes topics on every broker, and Ctrl-C stops every node in a controlled way.
#[test]
fn gregor_dev_runs_a_cluster_until_ctrl_c() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["dev", "--nodes", "3", "--port", &port.to_string(), "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    let stdout = dev.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let bootstrap = loop {
        let line = printed
            .recv_timeout(Duration::from_secs(60))
            .expect("gregor dev printed its bootstrap servers");
        if let Some(list) = line.strip_prefix("bootstrap servers: ") {
            break list.to_string();
        }
    };
    let expected: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", port + i)).collect();
    assert_eq!(bootstrap, expected.join(","));

    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
    let new = NewTopic::new("dev", 3, TopicReplication::Fixed(1));
    let created = block_on(admin.create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        let leaders: BTreeSet<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == "dev")
            .flat_map(|t| t.partitions().iter().map(|p| p.leader()))
            .collect();
        if leaders == BTreeSet::from([1, 2, 3]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dev's partitions never led by 1, 2, 3: {leaders:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(admin);

    unsafe {
        libc::kill(dev.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = dev.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "gregor dev did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    for id in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("node-{id}.log"))).unwrap();
        assert!(log.contains("controlled shutdown"), "node {id}:\n{log}");
        assert!(!log.contains("panicked"), "node {id}:\n{log}");
    }
}

/// Controllers join and leave the voters at runtime (KIP-853) while topics are created: a
/// fourth node started with `controller.quorum.bootstrap.servers` waits until `gregor
/// metadata-quorum add-controller` adds it, then votes (the quorum survives losing a voter only
/// with its vote); a removed voter goes on as an observer; adding a voter twice or removing
/// one that is none is refused with Kafka's error codes; no acknowledged topic is lost.
#[test]
fn controllers_are_added_and_removed_while_topics_are_created() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(4));
    // Nodes 1-3 are the initial voters; node 4 joins through their controller listeners.
    let voters_of = |o: &[String]| -> Vec<String> {
        o.iter()
            .find_map(|l| l.strip_prefix("controller.quorum.voters="))
            .unwrap()
            .split(',')
            .map(String::from)
            .collect()
    };
    let voters = voters_of(&overrides[0]);
    for o in &mut overrides {
        o.retain(|l| !l.starts_with("controller.quorum.voters="));
    }
    for o in &mut overrides[..3] {
        o.push(format!(
            "controller.quorum.voters={}",
            voters[..3].join(",")
        ));
    }
    let bootstrap: Vec<&str> = voters[..3]
        .iter()
        .map(|v| v.split_once('@').unwrap().1)
        .collect();
    overrides[3].push(format!(
        "controller.quorum.bootstrap.servers={}",
        bootstrap.join(",")
    ));
    let mut nodes = Gregor::start_all(&overrides[..3]);
    let addresses: Vec<String> = nodes.iter().map(Gregor::bootstrap).collect();

    // Topics are created through the first three nodes all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, addresses) = (stop.clone(), addresses.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for seq in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return acknowledged;
                }
                let topic = format!("w-{seq}");
                if create_topic(&addresses[seq % 3], &topic) == Ok(0) {
                    acknowledged.push(topic);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            unreachable!()
        })
    };

    let joining = Gregor::start_later(&overrides[3]);
    assert!(
        joining
            .broker()
            .wait_for_log("waiting to be added to the metadata quorum"),
        "{}",
        joining.broker().log_tail(20)
    );
    let quorum_cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(["metadata-quorum", "--bootstrap-server", &addresses[1]])
            .args(args)
            .output()
            .unwrap()
    };
    let config = root.path().join("node-4-server.properties");
    std::fs::write(&config, overrides[3].join("\n")).unwrap();
    let config = config.to_str().unwrap();
    let added = quorum_cli(&["add-controller", "--config", config]);
    assert!(added.status.success(), "{added:?}");
    let node4 = joining.listening();
    let quorum_is = |voters: &[i32], observers: &[i32]| {
        let want = (
            voters.iter().copied().collect::<BTreeSet<_>>(),
            observers.iter().copied().collect::<BTreeSet<_>>(),
        );
        wait_until("the voters as wanted", Duration::from_secs(30), || {
            describe_quorum(&node4.bootstrap()).is_ok_and(|q| (q.voters, q.observers) == want)
        });
    };
    quorum_is(&[1, 2, 3, 4], &[]);
    let again = quorum_cli(&["add-controller", "--config", config]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("error 126"),
        "DUPLICATE_VOTER: {stderr}"
    );

    let removed = quorum_cli(&["remove-controller", "--controller-id", "1"]);
    assert!(removed.status.success(), "{removed:?}");
    quorum_is(&[2, 3, 4], &[1]);
    let unknown = quorum_cli(&["remove-controller", "--controller-id", "1"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && stderr.contains("error 127"),
        "VOTER_NOT_FOUND: {stderr}"
    );

    // Voters 2, 3 and 4: without node 1 (no voter) and node 2, nodes 3 and 4 are a majority,
    // which they are only if node 4 votes.
    nodes[0].kill();
    nodes[1].kill();
    create(&node4, "after-the-changes", 1);
    wait_for_topic(&nodes[2], "after-the-changes", 1);

    // Node 1 is gone for good: unregistered, it is no longer listed even among the fenced
    // brokers; unregistering it again is BROKER_ID_NOT_REGISTERED (102).
    let unregister = || {
        Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(["cluster", "--bootstrap-server", &node4.bootstrap()])
            .args(["unregister", "--id", "1"])
            .output()
            .unwrap()
    };
    let out = unregister();
    assert!(out.status.success(), "{out:?}");
    let listed: BTreeSet<i32> = described_brokers(&node4, true)
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(listed, BTreeSet::from([2, 3, 4]));
    // Nor is it a learner of the quorum any more: the log is no longer sent to it.
    quorum_is(&[2, 3, 4], &[]);
    let again = unregister();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("error 102"),
        "{stderr}"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged.len() > 10, "{acknowledged:?}");
    for g in [&nodes[2], &node4] {
        let lost = || -> Vec<String> {
            let topics = topic_ids(&g.bootstrap()).unwrap_or_default();
            acknowledged
                .iter()
                .filter(|t| !topics.contains_key(*t))
                .cloned()
                .collect()
        };
        // Each node sees a topic once it has applied its creation.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let missing = lost();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "port {}: lost {missing:?}",
                g.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `gregor leader-election` as kafka-leader-election.sh: the exit status and the lines a run
/// prints (stdout, then stderr).
fn leader_election(g: &Gregor, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .arg("leader-election")
        .args(["--bootstrap-server", &g.bootstrap()])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `gregor leader-election` of partition 0 of topic `elect`.
fn elect_first_partition(g: &Gregor, election: &str) -> (bool, String) {
    let args = [
        "--election-type",
        election,
        "--topic",
        "elect",
        "--partition",
        "0",
    ];
    leader_election(g, &args)
}

/// ElectLeaders end to end, with replication. The follower is killed (it leaves the ISR),
/// records go to the leader alone, then the leader is killed too: the partition has no leader
/// (its last in-sync replica is gone). The follower, back, is not in sync: a preferred election
/// cannot help (PREFERRED_LEADER_NOT_AVAILABLE), an unclean one makes it the leader and the
/// whole ISR, with the records only the old leader had lost, as Kafka's would. The old leader,
/// back, truncates its log to where the new leader's agrees (its lost records were of an older
/// leader epoch), copies the new records, rejoins the ISR, and a preferred election gives it
/// the lead again.
#[test]
fn leader_elections_preferred_and_unclean() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_with_short_sessions(root.path());
    let controller = leader_at_start(&nodes[0]);
    let mut others = (1..=3).filter(|&n| n != controller);
    let (first, second) = (others.next().unwrap(), others.next().unwrap());
    let observer = &nodes[(controller - 1) as usize];
    let assignment: &[&[i32]] = &[&[first, second]];
    let new = NewTopic::new("elect", 1, TopicReplication::Variable(assignment));
    let created = block_on(observer.admin().create_topics(&[new], &admin_opts())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    assert_eq!(
        wait_for_leaders(observer, "elect", |l| l == [first]),
        [first]
    );
    wait_for_isr(observer, "elect", &[first, second]);
    let before: Vec<Rec> = (0..5).map(|i| Rec::value(format!("before-{i}"))).collect();
    send_ok(&observer.producer(&[("acks", "all")]), "elect", &before);

    let (ok, out) = elect_first_partition(observer, "preferred");
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "Valid replica already elected for partitions elect-0"
    );
    // All partitions: those already led by their preferred replica are left out.
    let (ok, out) = leader_election(
        observer,
        &["--election-type", "PREFERRED", "--all-topic-partitions"],
    );
    assert!(ok && out.trim().is_empty(), "{out}");

    nodes[(second - 1) as usize].kill();
    let observer = &nodes[(controller - 1) as usize];
    wait_for_isr(observer, "elect", &[first]);
    let lost: Vec<Rec> = (0..3).map(|i| Rec::value(format!("lost-{i}"))).collect();
    send_ok(&observer.producer(&[("acks", "all")]), "elect", &lost);
    nodes[(first - 1) as usize].kill();
    nodes[(second - 1) as usize].restart();
    let observer = &nodes[(controller - 1) as usize];
    wait_until("the follower is back", Duration::from_secs(30), || {
        brokers_listed(observer).contains(&second)
    });
    assert_eq!(wait_for_leaders(observer, "elect", |l| l == [-1]), [-1]);
    let (ok, out) = elect_first_partition(observer, "preferred");
    assert!(!ok, "{out}");
    assert!(out.contains("for partition: elect-0: error 80"), "{out}");
    assert!(out.contains("1 replica(s) could not be elected"), "{out}");
    let partitions = root.path().join("partitions.json");
    std::fs::write(
        &partitions,
        r#"{"partitions": [{"topic": "elect", "partition": 0}, {"topic": "nope", "partition": 0}]}"#,
    )
    .unwrap();
    let path = partitions.to_str().unwrap();
    let (ok, out) = leader_election(
        observer,
        &["--election-type", "unclean", "--path-to-json-file", path],
    );
    assert!(!ok, "the unknown topic fails: {out}");
    assert!(
        out.contains("Successfully completed leader election (UNCLEAN) for partitions elect-0"),
        "{out}"
    );
    assert!(out.contains("for partition: nope-0: error 3"), "{out}");
    assert_eq!(
        wait_for_leaders(observer, "elect", |l| l == [second]),
        [second]
    );
    let (ok, out) = elect_first_partition(observer, "unclean");
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "Valid replica already elected for partitions elect-0"
    );

    // The new leader had the records both had, not those only the old leader took.
    let after: Vec<Rec> = (0..3).map(|i| Rec::value(format!("after-{i}"))).collect();
    send_ok(&observer.producer(&[("acks", "all")]), "elect", &after);
    let expected: Vec<(i64, String)> = (0..5)
        .map(|i| format!("before-{i}"))
        .chain((0..3).map(|i| format!("after-{i}")))
        .enumerate()
        .map(|(offset, value)| (offset as i64, value))
        .collect();
    let read = |g: &Gregor| -> Vec<(i64, String)> {
        g.consume("elect", &[0], 8)
            .iter()
            .map(|m| {
                let value = String::from_utf8_lossy(m.payload().unwrap()).to_string();
                (m.offset(), value)
            })
            .collect()
    };
    assert_eq!(read(observer), expected);

    // The old leader comes back, truncates what only it had, copies the rest and rejoins.
    nodes[(first - 1) as usize].restart();
    let observer = &nodes[(controller - 1) as usize];
    wait_for_isr(observer, "elect", &[first, second]);
    let (ok, out) = elect_first_partition(observer, "preferred");
    assert!(ok, "{out}");
    assert_eq!(
        wait_for_leaders(observer, "elect", |l| l == [first]),
        [first]
    );
    assert_eq!(read(observer), expected, "the old leader's log now");
}

/// The ISR of partition 0 of `topic` in `g`'s metadata, once it is `want`.
fn wait_for_isr(g: &Gregor, topic: &str, want: &[i32]) {
    wait_until(
        &format!("{topic}-0 has ISR {want:?}"),
        Duration::from_secs(60),
        || {
            let md = metadata(g);
            let isr = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| t.partitions().first().map(|p| p.isr().to_vec()));
            isr.is_some_and(|mut isr| {
                isr.sort_unstable();
                let mut want = want.to_vec();
                want.sort_unstable();
                isr == want
            })
        },
    );
}

/// A node with process.roles=controller and only a controller listener: it votes in the
/// metadata quorum (with it, two of three voters decide while a combined node is down) but is
/// no broker: never registered, listed or given a replica.
#[test]
fn a_controller_only_node_votes_but_is_no_broker() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(3));
    let controller = listener_of(&overrides[2], "CONTROLLER");
    overrides[2].push(format!("listeners={controller}"));
    overrides[2].push("process.roles=controller".into());
    let mut nodes = Gregor::start_all(&overrides);
    assert!(nodes[2]
        .log_tail(100)
        .contains("gregor started (a controller only)"));
    create_with(&nodes[0], "spread", 4, 2);
    let md = metadata(&nodes[0]);
    let brokers: BTreeSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
    assert_eq!(brokers, BTreeSet::from([1, 2]));
    let topic = md.topics().iter().find(|t| t.name() == "spread").unwrap();
    for p in topic.partitions() {
        let mut replicas: Vec<i32> = p.replicas().to_vec();
        replicas.sort();
        assert_eq!(replicas, vec![1, 2], "partition {}", p.id());
    }
    let quorum = describe_quorum(&nodes[0].bootstrap()).unwrap();
    assert_eq!(quorum.voters, BTreeSet::from([1, 2, 3]));

    // Node 1 down: nodes 2 and 3 are a majority and go on deciding.
    nodes[0].kill();
    create(&nodes[1], "decided-by-2-and-3", 1);
    let quorum = describe_quorum(&nodes[1].bootstrap()).unwrap();
    assert!([2, 3].contains(&quorum.leader), "{}", quorum.leader);
    // Node 3 down as well: no majority, so nothing is decided (the request may still be
    // carried out once a majority is back, as a timed-out request may be in Kafka).
    nodes[2].kill();
    let refused = create_topic(&nodes[1].bootstrap(), "no-majority");
    assert!(!matches!(refused, Ok(0)), "{refused:?}");
    nodes[2].restart();
    create(&nodes[1], "decided-again", 1);
    nodes[0].restart();
    wait_until("every topic on node 1", Duration::from_secs(30), || {
        let md = metadata(&nodes[0]);
        ["spread", "decided-by-2-and-3", "decided-again"]
            .iter()
            .all(|t| md.topics().iter().any(|m| m.name() == *t))
    });
}

/// Formats a directory `dup` under `root` for a second process with `node_id`, in the cluster
/// of `root`'s `node-<node_id>`.
fn format_duplicate(root: &std::path::Path, node_id: i32) -> std::path::PathBuf {
    let meta_path = root.join(format!("node-{node_id}/meta.properties"));
    let meta = std::fs::read_to_string(meta_path).unwrap();
    let cluster_id = meta
        .lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .unwrap();
    let dup_dir = root.join("dup");
    let dup_properties = root.join("dup.properties");
    std::fs::write(
        &dup_properties,
        format!("node.id={node_id}\nlog.dirs={}\n", dup_dir.display()),
    )
    .unwrap();
    let formatted = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["storage", "format", "-t", cluster_id, "-c"])
        .arg(&dup_properties)
        .output()
        .unwrap();
    assert!(formatted.status.success(), "{formatted:?}");
    dup_dir
}

/// A second process with a voter's node id (its own directory and ports) is never replicated
/// to: it says so, naming the duplicate, and the quorum goes on undisturbed.
#[test]
fn a_duplicate_voter_says_so_and_disturbs_nothing() {
    let root = tempfile::tempdir().unwrap();
    let overrides = cluster_overrides(root.path(), &loopback(3));
    let nodes = Gregor::start_all(&overrides);
    create(&nodes[0], "before", 1);
    let leader = describe_quorum(&nodes[0].bootstrap()).unwrap().leader;
    let dup_dir = format_duplicate(root.path(), 1);
    let mut dup = overrides[0].clone();
    dup.push(format!("log.dirs={}", dup_dir.display()));
    dup.push(format!(
        "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
        common::free_port(),
        common::free_port()
    ));
    let duplicate = Gregor::start_later(&dup);
    wait_until("the duplicate says so", Duration::from_secs(60), || {
        duplicate
            .broker()
            .log_tail(50)
            .contains("another process runs with node.id 1")
    });
    create(&nodes[1], "after", 1);
    wait_for_topic(&nodes[2], "after", 1);
    assert_eq!(
        describe_quorum(&nodes[0].bootstrap()).unwrap().leader,
        leader
    );
}

/// Sends a Raft frame (gregor's API key 32000, correlation id 7, an unreadable body) from
/// `source` to 127.0.0.1:`port`: the answer's correlation id, or `None` if the connection was
/// closed unanswered.
fn raft_frame_from(source: &str, port: &str) -> Option<i32> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let target = format!("127.0.0.1:{port}").parse().unwrap();
        let mut stream = socket.connect(target).await.unwrap();
        let body = b"{}";
        let mut frame = ((10 + body.len()) as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&32000i16.to_be_bytes());
        frame.extend_from_slice(&0i16.to_be_bytes());
        frame.extend_from_slice(&7i32.to_be_bytes());
        frame.extend_from_slice(&0i16.to_be_bytes()); // no client id
        frame.extend_from_slice(body);
        stream.write_all(&frame).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let _size = stream.read_i32().await.ok()?;
            stream.read_i32().await.ok()
        });
        answer.await.expect("an answer or a close within 10 s")
    })
}

/// A node with process.roles=broker and only a client listener: no voter, it follows the
/// metadata log as a learner the active controller replicates to, registers, is given
/// replicas and serves them; killed it is fenced, and back it follows the log again and leads
/// its partitions with their records.
#[test]
fn a_broker_only_node_follows_the_metadata_log_and_serves_its_partitions() {
    let root = tempfile::tempdir().unwrap();
    let mut overrides = cluster_overrides(root.path(), &loopback(4));
    brokers_beyond_voters(&mut overrides, 3);
    for node in &mut overrides {
        node.push("broker.session.timeout.ms=4000".into());
        node.push("broker.heartbeat.interval.ms=300".into());
    }
    let mut nodes = Gregor::start_all(&overrides);
    wait_until("four brokers", Duration::from_secs(30), || {
        brokers_listed(&nodes[0]) == BTreeSet::from([1, 2, 3, 4])
    });
    let quorum = describe_quorum(&nodes[0].bootstrap()).unwrap();
    assert_eq!(quorum.voters, BTreeSet::from([1, 2, 3]));
    assert!(quorum.observers.contains(&4), "{:?}", quorum.observers);

    // Raft's frames on its client port are taken from the voters' address alone (all on
    // 127.0.0.1 here): another loopback address gets the connection closed, unanswered.
    let port = nodes[3].bootstrap().rsplit(':').next().unwrap().to_string();
    assert_eq!(raft_frame_from("127.0.0.1", &port), Some(7));
    assert_eq!(raft_frame_from("127.0.0.2", &port), None);
    assert!(nodes[3].wait_for_log("Raft's frames come only from the metadata quorum's voters"));

    // Created through the broker only, which forwards to the active controller.
    create(&nodes[3], "learner", 8);
    let leaders = wait_for_topic(&nodes[0], "learner", 8);
    let led_by_4: Vec<i32> = (0..8).filter(|&p| leaders[p as usize] == 4).collect();
    assert!(!led_by_4.is_empty(), "{leaders:?}");
    let records: Vec<Rec> = (0..16)
        .map(|i| Rec {
            partition: Some(i % 8),
            ..Rec::value(format!("r-{i}"))
        })
        .collect();
    send_ok(&nodes[0].producer(&[("acks", "all")]), "learner", &records);
    assert_eq!(
        nodes[3]
            .consume("learner", &(0..8).collect::<Vec<_>>(), 16)
            .len(),
        16
    );

    nodes[3].kill();
    wait_for_leaders(&nodes[0], "learner", |l| {
        l.iter().all(|&leader| leader != 4)
    });
    nodes[3].restart();
    wait_for_leaders(&nodes[0], "learner", |l| l == leaders.as_slice());
    let again = nodes[3].consume("learner", &led_by_4, 2 * led_by_4.len());
    assert_eq!(again.len(), 2 * led_by_4.len());

    // A second process with node id 4 (its own formatted dir and port) is refused while the
    // first lives, and takes over once the first is gone for a session (as in Kafka). It
    // knows only a voter that is not the active controller, which names the leader to it.
    let dup_dir = format_duplicate(root.path(), 4);
    let mut dup = overrides[3].clone();
    dup.push(format!("log.dirs={}", dup_dir.display()));
    dup.push(format!(
        "listeners=PLAINTEXT://127.0.0.1:{}",
        common::free_port()
    ));
    let leader = describe_quorum(&nodes[0].bootstrap()).unwrap().leader;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let follower_controller = listener_of(&overrides[follower as usize - 1], "CONTROLLER");
    dup.push("controller.quorum.voters=".into());
    dup.push(format!(
        "controller.quorum.bootstrap.servers={}",
        follower_controller.trim_start_matches("CONTROLLER://")
    ));
    let duplicate = Gregor::start_later(&dup);
    wait_until("the duplicate is refused", Duration::from_secs(30), || {
        duplicate
            .broker()
            .log_tail(50)
            .contains("waiting for the other broker's session to end")
    });
    let port_of_4 = |g: &Gregor| {
        metadata(g)
            .brokers()
            .iter()
            .find(|b| b.id() == 4)
            .map(|b| b.port())
    };
    assert_eq!(port_of_4(&nodes[0]), Some(nodes[3].port as i32));
    nodes[3].kill();
    let duplicate = duplicate.listening();
    wait_until("the duplicate is broker 4", Duration::from_secs(30), || {
        port_of_4(&nodes[0]) == Some(duplicate.port as i32)
    });
    drop(duplicate);

    // Gone for good and unregistered, it is no longer a learner of the quorum either.
    let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["cluster", "unregister", "--id", "4"])
        .args(["--bootstrap-server", &nodes[0].bootstrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_until("node 4 no longer observes", Duration::from_secs(30), || {
        describe_quorum(&nodes[0].bootstrap()).is_ok_and(|q| !q.observers.contains(&4))
    });
}
