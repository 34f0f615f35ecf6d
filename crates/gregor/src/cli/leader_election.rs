//! `gregor leader-election` (like kafka-leader-election.sh): a preferred or unclean leader
//! election of some partitions or all, sent as ElectLeaders v2 to the first bootstrap broker,
//! which has the active controller decide it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};
use gregor_protocol::kafka::messages::elect_leaders_request::TopicPartitions;
use gregor_protocol::kafka::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;
use serde::Deserialize;

use super::metadata_quorum::first_bootstrap;
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor leader-election --election-type preferred --all-topic-partitions
  gregor leader-election --election-type preferred --topic orders --partition 0
  gregor leader-election --election-type unclean --topic orders --partition 3
  gregor leader-election --election-type preferred --path-to-json-file partitions.json

The JSON file is kafka-leader-election.sh's: {\"partitions\": [{\"topic\": \"orders\", \"partition\": 0}]}.
An unclean election makes a replica that is not in sync the leader of a partition that has
none: the records only the old in-sync replicas held are lost. Exits 1 when a partition could
not be elected.";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// preferred: the first replica leads again; unclean: a leaderless partition gets any
    /// live replica as leader.
    #[arg(long, value_enum, ignore_case = true)]
    pub election_type: Election,
    /// The topic of the partition to elect (with --partition).
    #[arg(long, requires = "partition", conflicts_with_all = ["all_topic_partitions", "path_to_json_file"])]
    pub topic: Option<String>,
    /// The partition to elect (with --topic).
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Every partition of every topic.
    #[arg(long, conflicts_with = "path_to_json_file")]
    pub all_topic_partitions: bool,
    /// A JSON file listing the partitions.
    #[arg(long, value_name = "FILE")]
    pub path_to_json_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Election {
    Preferred,
    Unclean,
}

impl Election {
    fn code(self) -> i8 {
        match self {
            Election::Preferred => 0,
            Election::Unclean => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Election::Preferred => "PREFERRED",
            Election::Unclean => "UNCLEAN",
        }
    }
}

#[derive(Deserialize)]
struct PartitionsFile {
    partitions: Vec<PartitionEntry>,
}

#[derive(Deserialize)]
struct PartitionEntry {
    topic: String,
    partition: i32,
}

/// The partitions asked for by topic (`None`: all).
fn requested(args: &Args) -> anyhow::Result<Option<BTreeMap<String, Vec<i32>>>> {
    let entries = match (&args.topic, args.partition, &args.path_to_json_file) {
        (Some(topic), Some(partition), _) => vec![(topic.clone(), partition)],
        (_, _, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: PartitionsFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a partitions file", path.display()))?;
            file.partitions
                .into_iter()
                .map(|e| (e.topic, e.partition))
                .collect()
        }
        _ if args.all_topic_partitions => return Ok(None),
        _ => bail!(
            "one of --topic with --partition, --all-topic-partitions or --path-to-json-file is required"
        ),
    };
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in entries {
        by_topic.entry(topic).or_default().push(partition);
    }
    Ok(Some(by_topic))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let requested = requested(&args)?;
    let topic_partitions = requested.map(|by_topic| {
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect()
    });
    let timeout = args.client.timeout();
    let (host, port) = first_bootstrap(&args.client)?;
    let request = ElectLeadersRequest::default()
        .with_election_type(args.election_type.code())
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(timeout.as_millis() as i32);
    let response: ElectLeadersResponse =
        wire::call((&host, port), ApiKey::ElectLeaders, 2, &request, timeout)?;
    let (mut elected, mut not_needed, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for topic in &response.replica_election_results {
        for p in &topic.partition_result {
            let name = format!("{}-{}", topic.topic.as_str(), p.partition_id);
            match p.error_code {
                0 => elected.push(name),
                84 => not_needed.push(name),
                code => failed.push((name, code, p.error_message.as_deref().unwrap_or(""))),
            }
        }
    }
    if response.error_code != 0 && failed.is_empty() {
        bail!("ElectLeaders failed with error {}", response.error_code);
    }
    let election = args.election_type.name();
    if !elected.is_empty() {
        println!(
            "Successfully completed leader election ({election}) for partitions {}",
            elected.join(", ")
        );
    }
    if !not_needed.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            not_needed.join(", ")
        );
    }
    for (name, code, message) in &failed {
        eprintln!(
            "Error completing leader election ({election}) for partition: {name}: error {code}: {message}"
        );
    }
    if !failed.is_empty() {
        bail!("{} replica(s) could not be elected", failed.len());
    }
    Ok(())
}
