//! Three controllers on loopback, each with its log in its own directory: a leader is elected,
//! decisions reach every node, a follower refuses to decide, the leader's loss elects another
//! that goes on, and the old leader restarts from its directory and catches up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor_metadata::MetadataRecord;
use gregor_raft::network::serve;
use gregor_raft::{
    Applier, ControllerNode, ImageOnly, MetadataQuorum, NodeId, QuorumConfig, QuorumError,
    RaftQuorum, SnapshotTriggers,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

struct Node {
    id: NodeId,
    dir: PathBuf,
    quorum: RaftQuorum,
    image: Arc<ImageOnly>,
    server: JoinHandle<()>,
}

impl Node {
    async fn start(
        id: NodeId,
        dir: PathBuf,
        listener: TcpListener,
        voters: &BTreeMap<NodeId, ControllerNode>,
    ) -> Node {
        let image = Arc::new(ImageOnly::default());
        let config = QuorumConfig {
            node_id: id,
            dir: dir.clone(),
            initial_voters: voters.clone(),
            election_timeout: Duration::from_millis(300),
            snapshots: SnapshotTriggers::default(),
        };
        let quorum = RaftQuorum::start(config, image.clone()).await.unwrap();
        let server = tokio::spawn(serve(listener, quorum.raft().clone()));
        Node {
            id,
            dir,
            quorum,
            image,
            server,
        }
    }

    async fn stop(self) -> PathBuf {
        self.server.abort();
        let _ = self.server.await;
        self.quorum.shutdown().await;
        self.dir
    }

    fn cluster_id(&self) -> String {
        self.image.image().cluster_id.clone()
    }
}

/// Waits up to 20 s for `done`, checking every 20 ms.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cluster(id: &str) -> Vec<MetadataRecord> {
    vec![MetadataRecord::Cluster {
        cluster_id: id.into(),
    }]
}

/// The leader all `nodes` agree on, other than `gone`.
async fn agreed_leader(nodes: &[&Node], gone: Option<NodeId>) -> NodeId {
    let mut leader = None;
    eventually("a leader all nodes know", || {
        let seen: Vec<_> = nodes.iter().map(|n| n.quorum.leader()).collect();
        leader = seen[0].filter(|l| seen.iter().all(|s| *s == Some(*l)) && Some(*l) != gone);
        leader.is_some()
    })
    .await;
    leader.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_decide_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        voters.insert(
            id,
            ControllerNode {
                host: "127.0.0.1".into(),
                port,
            },
        );
        listeners.push(listener);
    }
    let mut nodes = Vec::new();
    for (id, listener) in (1..=3).zip(listeners) {
        let dir = root.path().join(format!("node-{id}"));
        nodes.push(Node::start(id, dir, listener, &voters).await);
    }
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>(), None).await;
    let leader_index = nodes.iter().position(|n| n.id == leader).unwrap();

    let offset = nodes[leader_index]
        .quorum
        .append(cluster("a"))
        .await
        .unwrap();
    assert!(
        offset > 0,
        "after the membership and blank entries: {offset}"
    );
    assert_eq!(
        nodes[leader_index].cluster_id(),
        "a",
        "applied on the leader when answered"
    );
    eventually("every node applied the decision", || {
        nodes
            .iter()
            .all(|n| n.cluster_id() == "a" && n.image.image().offset == offset)
    })
    .await;
    nodes[leader_index].quorum.ensure_leader().await.unwrap();
    let follower = &nodes[(leader_index + 1) % 3];
    assert_eq!(
        follower.quorum.append(cluster("no")).await,
        Err(QuorumError::NotLeader {
            leader: Some(leader)
        })
    );
    assert!(matches!(
        follower.quorum.ensure_leader().await,
        Err(QuorumError::NotLeader { .. })
    ));
    let status = nodes[leader_index].quorum.status();
    assert_eq!(status.voters.len(), 3);
    assert_eq!(status.high_watermark, offset + 1);

    // The leader goes: the other two elect one of themselves and go on deciding.
    let old = nodes.remove(leader_index);
    let (old_id, old_dir) = (old.id, old.stop().await);
    let rest: Vec<&Node> = nodes.iter().collect();
    let new_leader = agreed_leader(&rest, Some(old_id)).await;
    let new = nodes.iter().find(|n| n.id == new_leader).unwrap();
    let later = new.quorum.append(cluster("b")).await.unwrap();
    assert!(later > offset);

    // The old leader restarts from its directory (same address) and catches up.
    let address = &voters[&old_id];
    let listener = TcpListener::bind((address.host.as_str(), address.port))
        .await
        .unwrap();
    let back = Node::start(old_id, old_dir, listener, &voters).await;
    eventually("the restarted node caught up", || {
        back.cluster_id() == "b" && back.image.image().offset == later
    })
    .await;
    nodes.push(back);
    for node in nodes {
        node.stop().await;
    }
}

/// Kafka's snapshot trigger by bytes: once more than `max_bytes` went into the metadata log a
/// snapshot is written, and a restart starts from it with the same image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_taken_after_max_bytes_and_a_restart_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let start = |max_bytes| {
        let image = Arc::new(ImageOnly::default());
        let config = QuorumConfig {
            node_id: 1,
            dir: dir.path().to_path_buf(),
            initial_voters: BTreeMap::from([(1, ControllerNode::default())]),
            election_timeout: Duration::from_millis(300),
            snapshots: SnapshotTriggers {
                max_bytes,
                max_interval: None,
            },
        };
        async move {
            (
                RaftQuorum::start(config, image.clone()).await.unwrap(),
                image,
            )
        }
    };
    // The offsets the snapshot files cover (`<offset>-<term>.checkpoint`).
    let snapshots = || -> Vec<i64> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let stem = name.strip_suffix(".checkpoint")?;
                stem.split('-').next()?.parse().ok()
            })
            .collect()
    };
    // A threshold no test writes reaches: no snapshot.
    let (quorum, _) = start(u64::MAX).await;
    quorum
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    quorum.append(cluster("a")).await.unwrap();
    // The trigger looks once a second: after 1.5 s it has looked at least once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        snapshots(),
        Vec::<i64>::new(),
        "a snapshot below the threshold"
    );
    quorum.shutdown().await;

    let (quorum, image) = start(1).await;
    quorum
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let last = quorum.append(cluster("b")).await.unwrap();
    eventually("a snapshot that covers the last entry", || {
        snapshots().iter().any(|&offset| offset >= last)
    })
    .await;
    assert_eq!(image.image().offset, last);
    quorum.shutdown().await;

    let (quorum, image) = start(u64::MAX).await;
    assert_eq!(image.image().cluster_id, "b");
    assert_eq!(image.image().offset, last);
    quorum.shutdown().await;
}
