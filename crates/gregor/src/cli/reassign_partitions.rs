//! `gregor reassign-partitions` (like kafka-reassign-partitions.sh): proposes a new placement
//! of topics over a list of brokers (--generate), starts moving partitions to the replicas a
//! JSON file names (--execute, optionally throttled), reports their progress and lifts the
//! throttle once they are done (--verify), cancels moves (--cancel) and lists the moves under
//! way (--list). Requests go to the first bootstrap broker as AlterPartitionReassignments,
//! ListPartitionReassignments, Metadata and IncrementalAlterConfigs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use gregor_protocol::kafka::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use gregor_protocol::kafka::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use gregor_protocol::kafka::messages::metadata_request::MetadataRequestTopic;
use gregor_protocol::kafka::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;
use serde::{Deserialize, Serialize};

use super::metadata_quorum::first_bootstrap;
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor reassign-partitions --topics-to-move-json-file topics.json --broker-list 1,2,3 --generate
  gregor reassign-partitions --reassignment-json-file plan.json --execute --throttle 50000000
  gregor reassign-partitions --reassignment-json-file plan.json --verify
  gregor reassign-partitions --reassignment-json-file plan.json --cancel
  gregor reassign-partitions --list

The files are kafka-reassign-partitions.sh's:
  topics:      {\"version\":1,\"topics\":[{\"topic\":\"orders\"}]}
  reassignment: {\"version\":1,\"partitions\":[{\"topic\":\"orders\",\"partition\":0,\"replicas\":[2,3]}]}
A move copies the partition to its new replicas while producers and consumers go on; the old
replicas leave once every new one is in sync. --throttle caps the copying (bytes a second, on
each broker involved) until --verify finds every move done and lifts it. --generate places
replicas round-robin over --broker-list; it does not consider racks.";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("action").required(true)
    .args(["generate", "execute", "verify", "cancel", "list"])))]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Propose a placement of the topics in --topics-to-move-json-file over --broker-list.
    #[arg(long, requires_all = ["topics_to_move_json_file", "broker_list"])]
    pub generate: bool,
    /// Start the moves of --reassignment-json-file.
    #[arg(long, requires = "reassignment_json_file")]
    pub execute: bool,
    /// Report the moves of --reassignment-json-file; once all are done, lift the throttles.
    #[arg(long, requires = "reassignment_json_file")]
    pub verify: bool,
    /// Cancel the moves of --reassignment-json-file still under way (back to the old replicas).
    #[arg(long, requires = "reassignment_json_file")]
    pub cancel: bool,
    /// List the moves under way.
    #[arg(long)]
    pub list: bool,
    /// The topics to place (for --generate).
    #[arg(long, value_name = "FILE")]
    pub topics_to_move_json_file: Option<PathBuf>,
    /// The brokers to place them on, comma-separated (for --generate).
    #[arg(long, value_name = "IDS")]
    pub broker_list: Option<String>,
    /// The partitions and their new replicas.
    #[arg(long, value_name = "FILE")]
    pub reassignment_json_file: Option<PathBuf>,
    /// With --execute: bytes a second each involved broker may copy for the moves.
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    pub throttle: Option<u64>,
    /// With --execute: start these moves although others are under way.
    #[arg(long)]
    pub additional: bool,
    /// With --verify or --cancel: leave the throttles in place.
    #[arg(long)]
    pub preserve_throttles: bool,
    /// With --execute: refuse moves that change a partition's number of replicas (KIP-860).
    #[arg(long)]
    pub disallow_replication_factor_change: bool,
    /// Accepted for compatibility; --generate does not consider racks either way.
    #[arg(long)]
    pub disable_rack_aware: bool,
}

#[derive(Deserialize)]
struct TopicsFile {
    topics: Vec<TopicEntry>,
}

#[derive(Deserialize)]
struct TopicEntry {
    topic: String,
}

#[derive(Serialize, Deserialize)]
struct ReassignmentFile {
    version: i32,
    partitions: Vec<PartitionEntry>,
}

#[derive(Serialize, Deserialize)]
struct PartitionEntry {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default)]
    log_dirs: Vec<String>,
}

type Placement = BTreeMap<(String, i32), Vec<i32>>;

/// The moves under way: [replicas, adding, removing] by partition.
type Moves = BTreeMap<(String, i32), [Vec<i32>; 3]>;

/// The broker the tool talks to.
struct Cluster {
    address: (String, u16),
    timeout: Duration,
}

impl Cluster {
    fn call<Req, Resp>(&self, api: ApiKey, version: i16, request: &Req) -> anyhow::Result<Resp>
    where
        Req: gregor_protocol::kafka::protocol::Encodable,
        Resp: gregor_protocol::kafka::protocol::Decodable,
    {
        let (host, port) = &self.address;
        wire::call((host, *port), api, version, request, self.timeout)
    }

    /// The replicas of every partition of `topics` (`None`: all topics), and the broker ids.
    fn placement(
        &self,
        topics: Option<&BTreeSet<String>>,
    ) -> anyhow::Result<(Placement, Vec<i32>)> {
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }));
        let response: MetadataResponse = self.call(ApiKey::Metadata, 12, &request)?;
        let mut placement = Placement::new();
        for topic in &response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default();
            if topic.error_code != 0 {
                bail!("topic {name}: error {}", topic.error_code);
            }
            for p in &topic.partitions {
                let replicas = p.replica_nodes.iter().map(|b| b.0).collect();
                placement.insert((name.clone(), p.partition_index), replicas);
            }
        }
        let brokers = response.brokers.iter().map(|b| b.node_id.0).collect();
        Ok((placement, brokers))
    }

    fn ongoing(&self) -> anyhow::Result<Moves> {
        let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(self.millis());
        let response: ListPartitionReassignmentsResponse =
            self.call(ApiKey::ListPartitionReassignments, 0, &request)?;
        if response.error_code != 0 {
            bail!(
                "ListPartitionReassignments failed with error {}: {}",
                response.error_code,
                response.error_message.as_deref().unwrap_or("")
            );
        }
        let ids = |r: &[BrokerId]| r.iter().map(|b| b.0).collect();
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    let moves = [
                        ids(&p.replicas),
                        ids(&p.adding_replicas),
                        ids(&p.removing_replicas),
                    ];
                    ((t.name.to_string(), p.partition_index), moves)
                })
            })
            .collect())
    }

    /// Asks for `targets` (`None` cancels). Each partition refused is printed with why, as
    /// `Error <doing> <partition>: ...`, and fails the tool.
    fn reassign(
        &self,
        targets: &BTreeMap<(String, i32), Option<Vec<i32>>>,
        allow_rf_change: bool,
        doing: &str,
    ) -> anyhow::Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for ((topic, partition), target) in targets {
            by_topic.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(
                        target
                            .as_ref()
                            .map(|r| r.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.millis())
            .with_allow_replication_factor_change(allow_rf_change)
            .with_topics(topics);
        let response: AlterPartitionReassignmentsResponse = self.retrying(|| {
            let response: AlterPartitionReassignmentsResponse =
                self.call(ApiKey::AlterPartitionReassignments, 1, &request)?;
            let codes = response.responses.iter().flat_map(|t| &t.partitions);
            let codes = codes.map(|p| p.error_code).chain([response.error_code]);
            Ok((codes.collect(), response))
        })?;
        if response.error_code != 0 {
            bail!(
                "AlterPartitionReassignments failed with error {}: {}",
                response.error_code,
                response.error_message.as_deref().unwrap_or("")
            );
        }
        let refused = response.responses.iter().flat_map(|t| {
            let failed = t.partitions.iter().filter(|p| p.error_code != 0);
            failed.map(move |p| (t.name.as_str(), p))
        });
        let mut count = 0;
        for (topic, p) in refused {
            count += 1;
            eprintln!(
                "Error {doing} {topic}-{}: error {}: {}",
                p.partition_index,
                p.error_code,
                p.error_message.as_deref().unwrap_or("")
            );
        }
        if count > 0 {
            bail!("{doing} failed for {count} partition(s)");
        }
        Ok(())
    }

    /// IncrementalAlterConfigs of one resource (2 topic, 4 broker): `Some` sets, `None` deletes.
    fn alter_configs(
        &self,
        resource_type: i8,
        name: &str,
        configs: &[(&str, Option<String>)],
    ) -> anyhow::Result<()> {
        let configs = configs
            .iter()
            .map(|(key, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(if value.is_some() { 0 } else { 1 })
                    .with_value(value.clone().map(StrBytes::from_string))
            })
            .collect();
        let resource = AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs);
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let response: IncrementalAlterConfigsResponse = self.retrying(|| {
            let response: IncrementalAlterConfigsResponse =
                self.call(ApiKey::IncrementalAlterConfigs, 1, &request)?;
            Ok((
                response.responses.iter().map(|r| r.error_code).collect(),
                response,
            ))
        })?;
        if let Some(r) = response.responses.iter().find(|r| r.error_code != 0) {
            bail!(
                "cannot change the configs of {name}: error {}: {}",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            );
        }
        Ok(())
    }

    /// Calls `call` again while its answer carries an error worth retrying (no controller
    /// yet, a request timed out), as Kafka's admin client does, until the tool's timeout.
    fn retrying<T>(
        &self,
        mut call: impl FnMut() -> anyhow::Result<(Vec<i16>, T)>,
    ) -> anyhow::Result<T> {
        const RETRIABLE: [i16; 2] = [41, 7]; // NOT_CONTROLLER, REQUEST_TIMED_OUT
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let (codes, answer) = call()?;
            let retry = codes.iter().any(|c| RETRIABLE.contains(c));
            if !retry || std::time::Instant::now() >= deadline {
                return Ok(answer);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn millis(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }
}

const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

pub fn run(args: Args) -> anyhow::Result<()> {
    let cluster = Cluster {
        address: first_bootstrap(&args.client)?,
        timeout: args.client.timeout(),
    };
    if args.generate {
        generate(&cluster, &args)
    } else if args.execute {
        execute(&cluster, &args)
    } else if args.verify {
        verify(&cluster, &args)
    } else if args.cancel {
        cancel(&cluster, &args)
    } else {
        list(&cluster)
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// The reassignment file as targets by partition; log dirs other than "any" are refused.
fn targets(args: &Args) -> anyhow::Result<Placement> {
    let path = args
        .reassignment_json_file
        .as_deref()
        .expect("required by clap");
    let file: ReassignmentFile = read_json(path, "a reassignment file")?;
    let mut targets = Placement::new();
    for p in file.partitions {
        if p.log_dirs.iter().any(|d| d != "any") {
            bail!(
                "{}-{}: log_dirs other than \"any\" are not supported (move replicas between a broker's log dirs with `gregor log-dirs`)",
                p.topic, p.partition
            );
        }
        if targets
            .insert((p.topic.clone(), p.partition), p.replicas)
            .is_some()
        {
            bail!("{}-{} is named twice", p.topic, p.partition);
        }
    }
    if targets.is_empty() {
        bail!("{} names no partitions", path.display());
    }
    Ok(targets)
}

fn to_json(placement: &Placement) -> String {
    let partitions = placement
        .iter()
        .map(|((topic, partition), replicas)| PartitionEntry {
            topic: topic.clone(),
            partition: *partition,
            replicas: replicas.clone(),
            log_dirs: vec!["any".into(); replicas.len()],
        })
        .collect();
    serde_json::to_string(&ReassignmentFile {
        version: 1,
        partitions,
    })
    .expect("plain data serialises")
}

fn partition_names<'a>(keys: impl Iterator<Item = &'a (String, i32)>) -> String {
    keys.map(|(t, p)| format!("{t}-{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Round-robin over the brokers: partition p of a topic starts at broker `start + p`, where
/// `start` moves on with every topic, and its further replicas are the next brokers.
fn propose(current: &Placement, brokers: &[i32]) -> anyhow::Result<Placement> {
    let mut proposed = Placement::new();
    let mut start = 0usize;
    let mut topic_seen: Option<&str> = None;
    for ((topic, partition), replicas) in current {
        if topic_seen != Some(topic.as_str()) {
            if topic_seen.is_some() {
                start += 1;
            }
            topic_seen = Some(topic);
        }
        if replicas.len() > brokers.len() {
            bail!(
                "{topic}-{partition} has {} replicas, more than the {} brokers listed",
                replicas.len(),
                brokers.len()
            );
        }
        let first = start + *partition as usize;
        let target = (0..replicas.len())
            .map(|k| brokers[(first + k) % brokers.len()])
            .collect();
        proposed.insert((topic.clone(), *partition), target);
    }
    Ok(proposed)
}

fn generate(cluster: &Cluster, args: &Args) -> anyhow::Result<()> {
    let path = args
        .topics_to_move_json_file
        .as_deref()
        .expect("required by clap");
    let file: TopicsFile = read_json(path, "a topics-to-move file")?;
    let list = args.broker_list.as_deref().expect("required by clap");
    let brokers: Vec<i32> = list
        .split(',')
        .map(|b| b.trim().parse::<i32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--broker-list {list} is not a list of broker ids"))?;
    let distinct: BTreeSet<i32> = brokers.iter().copied().collect();
    if brokers.is_empty() || distinct.len() != brokers.len() {
        bail!("--broker-list {list} must name distinct brokers");
    }
    let topics: BTreeSet<String> = file.topics.into_iter().map(|t| t.topic).collect();
    let (current, known) = cluster.placement(Some(&topics))?;
    if let Some(unknown) = brokers.iter().find(|b| !known.contains(b)) {
        bail!("broker {unknown} of --broker-list is not in the cluster");
    }
    let proposed = propose(&current, &brokers)?;
    println!("Current partition replica assignment");
    println!("{}\n", to_json(&current));
    println!("Proposed partition reassignment configuration");
    println!("{}", to_json(&proposed));
    Ok(())
}

fn execute(cluster: &Cluster, args: &Args) -> anyhow::Result<()> {
    let targets = targets(args)?;
    let ongoing = cluster.ongoing()?;
    if !ongoing.is_empty() && !args.additional {
        bail!("Cannot execute because there is an existing partition assignment. Use --additional to override this and create a new partition assignment in addition to the existing one.");
    }
    let topics: BTreeSet<String> = targets.keys().map(|(t, _)| t.clone()).collect();
    let (placement, _) = cluster.placement(Some(&topics))?;
    let mut current = Placement::new();
    for key in targets.keys() {
        let replicas = placement
            .get(key)
            .with_context(|| format!("{}-{} does not exist", key.0, key.1))?;
        current.insert(key.clone(), replicas.clone());
    }
    println!("Current partition replica assignment\n");
    println!("{}\n", to_json(&current));
    println!("Save this to use as the --reassignment-json-file option during rollback");
    if let Some(rate) = args.throttle {
        // Every move, those under way included, copies from its original replicas (without
        // those being added) to its target (without those being removed).
        let without = |list: &[i32], taken: &[i32]| -> Vec<i32> {
            list.iter()
                .copied()
                .filter(|r| !taken.contains(r))
                .collect()
        };
        let mut sources = Placement::new();
        let mut moves = Placement::new();
        for (key, [replicas, adding, removing]) in &ongoing {
            sources.insert(key.clone(), without(replicas, adding));
            moves.insert(key.clone(), without(replicas, removing));
        }
        for (key, target) in &targets {
            sources
                .entry(key.clone())
                .or_insert_with(|| current[key].clone());
            moves.insert(key.clone(), target.clone());
        }
        throttle(cluster, &sources, &moves, rate)?;
    }
    let asked = targets
        .iter()
        .map(|(k, r)| (k.clone(), Some(r.clone())))
        .collect();
    let allow_rf_change = !args.disallow_replication_factor_change;
    cluster.reassign(&asked, allow_rf_change, "reassigning")?;
    println!(
        "Successfully started partition reassignment{} for {}",
        plural(targets.len()),
        partition_names(targets.keys())
    );
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn ids(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Kafka's throttle for a move: each broker of the old and new replica sets copies at most
/// `rate` bytes a second as leader and as follower, for the old replicas (which may lead) and
/// the new ones (which follow). The topic lists replace earlier ones.
fn throttle(
    cluster: &Cluster,
    current: &Placement,
    targets: &Placement,
    rate: u64,
) -> anyhow::Result<()> {
    let mut leaders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut followers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut brokers: BTreeSet<i32> = BTreeSet::new();
    for (key @ (topic, partition), target) in targets {
        let old = &current[key];
        brokers.extend(old.iter().chain(target));
        leaders
            .entry(topic)
            .or_default()
            .extend(old.iter().map(|b| format!("{partition}:{b}")));
        followers.entry(topic).or_default().extend(
            target
                .iter()
                .filter(|b| !old.contains(b))
                .map(|b| format!("{partition}:{b}")),
        );
    }
    for topic in leaders.keys() {
        let configs = [
            (LEADER_REPLICAS, Some(leaders[topic].join(","))),
            (FOLLOWER_REPLICAS, Some(followers[topic].join(","))),
        ];
        cluster.alter_configs(2, topic, &configs)?;
    }
    for broker in &brokers {
        let configs = [
            (LEADER_RATE, Some(rate.to_string())),
            (FOLLOWER_RATE, Some(rate.to_string())),
        ];
        cluster.alter_configs(4, &broker.to_string(), &configs)?;
    }
    println!("Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.");
    println!("The inter-broker throttle limit was set to {rate} B/s");
    Ok(())
}

/// Lifts the throttles: the rates on every broker (live or a target of the file), the replica
/// lists on the file's topics.
fn clear_throttles(cluster: &Cluster, targets: &Placement) -> anyhow::Result<()> {
    let (_, live) = cluster.placement(Some(&BTreeSet::new()))?;
    let brokers: BTreeSet<i32> = live
        .into_iter()
        .chain(targets.values().flatten().copied())
        .collect();
    let rates = [(LEADER_RATE, None), (FOLLOWER_RATE, None)];
    for broker in &brokers {
        cluster.alter_configs(4, &broker.to_string(), &rates)?;
    }
    let brokers: Vec<i32> = brokers.into_iter().collect();
    println!(
        "Clearing broker-level throttles on broker{} {}",
        plural(brokers.len()),
        ids(&brokers)
    );
    let topics: BTreeSet<&str> = targets.keys().map(|(t, _)| t.as_str()).collect();
    for topic in &topics {
        cluster.alter_configs(
            2,
            topic,
            &[(LEADER_REPLICAS, None), (FOLLOWER_REPLICAS, None)],
        )?;
    }
    let topics: Vec<&str> = topics.into_iter().collect();
    println!(
        "Clearing topic-level throttles on topic{} {}",
        plural(topics.len()),
        topics.join(",")
    );
    Ok(())
}

/// Each partition of the file: done once no move of it is under way (as Kafka, also when its
/// replicas are not the file's). The throttles are lifted once no move at all is under way in
/// the cluster, since they may serve moves of other files.
fn verify(cluster: &Cluster, args: &Args) -> anyhow::Result<()> {
    let targets = targets(args)?;
    let ongoing = cluster.ongoing()?;
    let topics: BTreeSet<String> = targets.keys().map(|(t, _)| t.clone()).collect();
    let (placement, _) = cluster.placement(Some(&topics))?;
    println!("Status of partition reassignment:");
    for (key @ (topic, partition), target) in &targets {
        let current = placement.get(key).map(Vec::as_slice).unwrap_or_default();
        if ongoing.contains_key(key) {
            println!("Reassignment of partition {topic}-{partition} is still in progress.");
        } else if current == target.as_slice() {
            println!("Reassignment of partition {topic}-{partition} is completed.");
        } else {
            println!(
                "There is no active reassignment of partition {topic}-{partition}, but replica set is {} rather than {}.",
                ids(current),
                ids(target)
            );
        }
    }
    if ongoing.is_empty() && !args.preserve_throttles {
        clear_throttles(cluster, &targets)?;
    }
    Ok(())
}

fn cancel(cluster: &Cluster, args: &Args) -> anyhow::Result<()> {
    let targets = targets(args)?;
    let ongoing = cluster.ongoing()?;
    let moving: BTreeMap<(String, i32), Option<Vec<i32>>> = targets
        .keys()
        .filter(|k| ongoing.contains_key(*k))
        .map(|k| (k.clone(), None))
        .collect();
    if moving.is_empty() {
        println!("None of the specified partition reassignments are active.");
    } else {
        cluster.reassign(&moving, true, "cancelling")?;
        println!(
            "Successfully cancelled partition reassignment{} for: {}",
            plural(moving.len()),
            partition_names(moving.keys())
        );
    }
    if !args.preserve_throttles {
        clear_throttles(cluster, &targets)?;
    }
    Ok(())
}

fn list(cluster: &Cluster) -> anyhow::Result<()> {
    let ongoing = cluster.ongoing()?;
    if ongoing.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    let clause = |name: &str, list: &[i32]| {
        if list.is_empty() {
            String::new()
        } else {
            format!(" {name}: {}.", ids(list))
        }
    };
    println!("Current partition reassignments:");
    for ((topic, partition), [replicas, adding, removing]) in &ongoing {
        println!(
            "{topic}-{partition}: replicas: {}.{}{}",
            ids(replicas),
            clause("adding", adding),
            clause("removing", removing)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_rotate_over_the_brokers_within_and_across_topics() {
        let current: Placement = [
            (("a".to_string(), 0), vec![1, 2]),
            (("a".to_string(), 1), vec![1, 2]),
            (("b".to_string(), 0), vec![1]),
        ]
        .into();
        let proposed = propose(&current, &[4, 5, 6]).unwrap();
        assert_eq!(proposed[&("a".to_string(), 0)], vec![4, 5]);
        assert_eq!(proposed[&("a".to_string(), 1)], vec![5, 6]);
        assert_eq!(proposed[&("b".to_string(), 0)], vec![5]);
        assert!(
            propose(&current, &[4]).is_err(),
            "two replicas on one broker"
        );
    }
}
