//! Clusters of gregor nodes as separate processes: each node's configuration, and the raw
//! requests that look at a node that may be cut off or down (each fails instead of hanging).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gregor_protocol::kafka::messages::create_topics_request::CreatableTopic;
use gregor_protocol::kafka::messages::describe_quorum_request::{PartitionData, TopicData};
use gregor_protocol::kafka::messages::{
    CreateTopicsRequest, DescribeQuorumRequest, MetadataRequest, MetadataResponse, ResponseKind,
    TopicName,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::{ApiKey, RequestKind};

/// A cluster of a node on each of `hosts`: their overrides (node ids 1.., client and controller
/// listeners on free ports of the node's host, log dirs `root/node-<id>` formatted with one
/// cluster id, as `gregor storage format` does).
pub fn cluster_overrides(root: &Path, hosts: &[String]) -> Vec<Vec<String>> {
    let gregor = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let cluster_id = gregor(&["storage", "random-uuid"]);
    let ports: Vec<(u16, u16)> = hosts
        .iter()
        .map(|_| (super::free_port(), super::free_port()))
        .collect();
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, controller))| format!("{}@{}:{controller}", i + 1, hosts[i]))
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, controller))| {
            let id = i + 1;
            let dir = root.join(format!("node-{id}"));
            let properties = root.join(format!("node-{id}.properties"));
            std::fs::write(
                &properties,
                format!("node.id={id}\nlog.dirs={}\n", dir.display()),
            )
            .unwrap();
            gregor(&[
                "storage",
                "format",
                "-t",
                &cluster_id,
                "-c",
                properties.to_str().unwrap(),
            ]);
            vec![
                format!("node.id={id}"),
                format!("log.dirs={}", dir.display()),
                format!(
                    "listeners=PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}",
                    host = hosts[i]
                ),
                format!("controller.quorum.voters={}", voters.join(",")),
            ]
        })
        .collect()
}

/// `listeners=` of a node's overrides, and the one listener of it named `name`.
pub fn listener_of(overrides: &[String], name: &str) -> String {
    let listeners = overrides
        .iter()
        .rev()
        .find_map(|o| o.strip_prefix("listeners="))
        .unwrap();
    let prefix = format!("{name}://");
    listeners
        .split(',')
        .find(|l| l.starts_with(&prefix))
        .unwrap()
        .to_string()
}

/// Makes the first `voters` nodes of a [`cluster_overrides`] cluster its metadata quorum and
/// the others broker-only nodes (`process.roles=broker`, only a client listener).
pub fn brokers_beyond_voters(overrides: &mut [Vec<String>], voters: usize) {
    let quorum = overrides[0]
        .iter()
        .find_map(|o| o.strip_prefix("controller.quorum.voters="))
        .unwrap()
        .split(',')
        .take(voters)
        .collect::<Vec<_>>()
        .join(",");
    for (i, node) in overrides.iter_mut().enumerate() {
        node.push(format!("controller.quorum.voters={quorum}"));
        if i >= voters {
            let client = listener_of(node, "PLAINTEXT");
            node.push(format!("listeners={client}"));
            node.push("process.roles=broker".into());
        }
    }
}

/// `nodes` nodes on loopback.
pub fn loopback(nodes: usize) -> Vec<String> {
    vec!["127.0.0.1".to_string(); nodes]
}

/// Creates `topic` (one partition) through `address`; the topic's error code.
pub fn create_topic(address: &str, topic: &str) -> Result<i16, String> {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let request = RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(5_000),
    );
    match super::try_call(
        address,
        ApiKey::CreateTopics,
        7,
        &request,
        Duration::from_secs(10),
    )? {
        ResponseKind::CreateTopics(r) => Ok(r.topics[0].error_code),
        other => Err(format!("{other:?}")),
    }
}

/// Metadata v12 from `address`: all topics, or none (`all_topics` false).
fn metadata(address: &str, all_topics: bool) -> Result<MetadataResponse, String> {
    let topics = if all_topics { None } else { Some(vec![]) };
    let request = RequestKind::Metadata(MetadataRequest::default().with_topics(topics));
    match super::try_call(
        address,
        ApiKey::Metadata,
        12,
        &request,
        Duration::from_secs(5),
    )? {
        ResponseKind::Metadata(m) => Ok(m),
        other => Err(format!("{other:?}")),
    }
}

/// Every topic `address` knows, with its id.
pub fn topic_ids(address: &str) -> Result<BTreeMap<String, String>, String> {
    Ok(metadata(address, true)?
        .topics
        .iter()
        .filter_map(|t| Some((t.name.as_ref()?.to_string(), t.topic_id.to_string())))
        .collect())
}

/// The brokers `address` lists in Metadata (the unfenced ones).
pub fn brokers(address: &str) -> Result<BTreeSet<i32>, String> {
    Ok(metadata(address, false)?
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .collect())
}

/// The metadata quorum as the active controller describes it (DescribeQuorum v2).
#[derive(Debug)]
pub struct Quorum {
    pub leader: i32,
    pub high_watermark: i64,
    pub voters: BTreeSet<i32>,
    /// Each voter's log end offset, as the leader knows it.
    pub log_ends: Vec<i64>,
    pub observers: BTreeSet<i32>,
}

/// The quorum as `address` (any node) describes it.
pub fn describe_quorum(address: &str) -> Result<Quorum, String> {
    let request = RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default()]),
    ]));
    match super::try_call(
        address,
        ApiKey::DescribeQuorum,
        2,
        &request,
        Duration::from_secs(5),
    )? {
        ResponseKind::DescribeQuorum(r) if r.error_code == 0 => {
            let p = &r.topics[0].partitions[0];
            Ok(Quorum {
                leader: p.leader_id.0,
                high_watermark: p.high_watermark,
                voters: p.current_voters.iter().map(|v| v.replica_id.0).collect(),
                log_ends: p.current_voters.iter().map(|v| v.log_end_offset).collect(),
                observers: p.observers.iter().map(|v| v.replica_id.0).collect(),
            })
        }
        other => Err(format!("{other:?}")),
    }
}

/// Waits up to `timeout` for `condition`, naming `what` on failure.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
