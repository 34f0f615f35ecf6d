//! `gregor metadata-quorum describe --status|--replication`: the metadata quorum as its leader
//! sees it (like kafka-metadata-quorum.sh), from DescribeQuorum sent to the first bootstrap
//! broker, which asks the active controller; `add-controller` and `remove-controller` change the
//! voters (AddRaftVoter, RemoveRaftVoter).

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand};
use gregor_protocol::kafka::messages::describe_quorum_request::{PartitionData, TopicData};
use gregor_protocol::kafka::messages::{add_raft_voter_request, describe_quorum_response};
use gregor_protocol::kafka::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    TopicName,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;
use gregor_server::config::BrokerConfig;
use std::path::{Path, PathBuf};

use super::common::table;
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor metadata-quorum describe --status
  gregor metadata-quorum --bootstrap-server broker1:9092 describe --replication
  gregor metadata-quorum --bootstrap-server broker1:9092 add-controller --config node4.properties
  gregor metadata-quorum --bootstrap-server broker1:9092 remove-controller --controller-id 1";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The quorum's leader, epoch, high watermark and voters, or each replica's progress.
    Describe {
        /// Leader, epoch, high watermark, largest follower lag, voters and observers.
        #[arg(
            long,
            conflicts_with = "replication",
            required_unless_present = "replication"
        )]
        status: bool,
        /// One row per replica: log end offset, lag, and whether leader, follower or observer.
        #[arg(long)]
        replication: bool,
    },
    /// Adds the controller a server config describes (its node.id and controller listener) to
    /// the voters, once it has copied the metadata log. The controller runs with
    /// controller.quorum.bootstrap.servers and waits to be added.
    AddController {
        /// The new controller's server.properties.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Removes a voter; it goes on copying the metadata log as an observer.
    RemoveController {
        #[arg(long)]
        controller_id: i32,
        /// Accepted for kafka-metadata-quorum.sh's sake; gregor does not check directory ids.
        #[arg(long)]
        controller_directory_id: Option<String>,
    },
}

/// host:port of the first bootstrap server.
pub(super) fn first_bootstrap(client: &ClientArgs) -> anyhow::Result<(String, u16)> {
    let first = client
        .bootstrap_server
        .split(',')
        .next()
        .unwrap_or_default()
        .trim();
    let (host, port) = first
        .rsplit_once(':')
        .with_context(|| format!("bootstrap server {first} is not host:port"))?;
    Ok((
        host.to_string(),
        port.parse().with_context(|| format!("port of {first}"))?,
    ))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (host, port) = first_bootstrap(&args.client)?;
    let timeout = args.client.timeout();
    let status = match args.command {
        Command::Describe { status, .. } => status,
        Command::AddController { config } => {
            let (voter_id, listener) = controller_of(&config)?;
            let request = AddRaftVoterRequest::default()
                .with_cluster_id(None)
                .with_timeout_ms(timeout.as_millis() as i32)
                .with_voter_id(voter_id)
                .with_listeners(vec![listener]);
            let response: AddRaftVoterResponse =
                wire::call((&host, port), ApiKey::AddRaftVoter, 0, &request, timeout)?;
            check_voter_change("AddRaftVoter", response.error_code, response.error_message)?;
            println!("Added controller {voter_id} to the voters.");
            return Ok(());
        }
        Command::RemoveController { controller_id, .. } => {
            let request = RemoveRaftVoterRequest::default()
                .with_cluster_id(None)
                .with_voter_id(controller_id);
            let response: RemoveRaftVoterResponse =
                wire::call((&host, port), ApiKey::RemoveRaftVoter, 0, &request, timeout)?;
            check_voter_change(
                "RemoveRaftVoter",
                response.error_code,
                response.error_message,
            )?;
            println!("Removed controller {controller_id} from the voters.");
            return Ok(());
        }
    };
    let (response, partition) = describe_quorum(&host, port, timeout)?;
    let partition = &partition;
    if status {
        let cluster: DescribeClusterResponse = wire::call(
            (&host, port),
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
            timeout,
        )?;
        print!(
            "{}",
            status_text(&cluster.cluster_id, partition, &response.nodes)
        );
    } else {
        print!("{}", replication_text(partition));
    }
    Ok(())
}

/// DescribeQuorum v2 sent to `host:port`: the response and its metadata partition.
pub(super) fn describe_quorum(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> anyhow::Result<(
    DescribeQuorumResponse,
    describe_quorum_response::PartitionData,
)> {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response: DescribeQuorumResponse =
        wire::call((host, port), ApiKey::DescribeQuorum, 2, &request, timeout)?;
    if response.error_code != 0 {
        bail!(
            "DescribeQuorum failed with error {}: {}",
            response.error_code,
            response.error_message.as_deref().unwrap_or("")
        );
    }
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .cloned()
        .context("DescribeQuorum answered without the metadata partition")?;
    if partition.error_code != 0 {
        bail!("DescribeQuorum failed with error {}", partition.error_code);
    }
    Ok((response, partition))
}

/// The node id and controller listener a server config gives.
fn controller_of(path: &Path) -> anyhow::Result<(i32, add_raft_voter_request::Listener)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = BrokerConfig::from_pairs(gregor_server::properties::parse(&text))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let listener = config.cluster.controller_listener.with_context(|| {
        format!(
            "{} names no controller listener (listeners and controller.listener.names)",
            path.display()
        )
    })?;
    let endpoint = add_raft_voter_request::Listener::default()
        .with_name(StrBytes::from_string(listener.name))
        .with_host(StrBytes::from_string(listener.advertised_host))
        .with_port(listener.advertised_port);
    Ok((config.node_id, endpoint))
}

fn check_voter_change(api: &str, code: i16, message: Option<StrBytes>) -> anyhow::Result<()> {
    if code != 0 {
        bail!(
            "{api} failed with error {code}: {}",
            message.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// The leader's log end offset minus each follower's (unknown offsets lag by the whole log).
fn lag(
    partition: &describe_quorum_response::PartitionData,
    replica: &describe_quorum_response::ReplicaState,
) -> i64 {
    let leader_end = partition
        .current_voters
        .iter()
        .find(|v| v.replica_id == partition.leader_id)
        .map_or(partition.high_watermark, |v| v.log_end_offset);
    (leader_end - replica.log_end_offset.max(0)).max(0)
}

fn replicas_json(
    replicas: &[describe_quorum_response::ReplicaState],
    nodes: &[describe_quorum_response::Node],
) -> String {
    let entries: Vec<String> = replicas
        .iter()
        .map(|r| {
            let endpoints: Vec<String> = nodes
                .iter()
                .filter(|n| n.node_id == r.replica_id)
                .flat_map(|n| &n.listeners)
                .map(|l| format!("\"{}://{}:{}\"", &*l.name, &*l.host, l.port))
                .collect();
            format!(
                "{{\"id\": {}, \"directoryId\": \"{}\", \"endpoints\": [{}]}}",
                r.replica_id.0,
                r.replica_directory_id,
                endpoints.join(", ")
            )
        })
        .collect();
    format!("[{}]", entries.join(", "))
}

fn status_text(
    cluster_id: &str,
    partition: &describe_quorum_response::PartitionData,
    nodes: &[describe_quorum_response::Node],
) -> String {
    let max_lag = partition
        .current_voters
        .iter()
        .map(|v| lag(partition, v))
        .max()
        .unwrap_or(0);
    format!(
        "ClusterId:              {cluster_id}\n\
         LeaderId:               {}\n\
         LeaderEpoch:            {}\n\
         HighWatermark:          {}\n\
         MaxFollowerLag:         {max_lag}\n\
         MaxFollowerLagTimeMs:   -1\n\
         CurrentVoters:          {}\n\
         CurrentObservers:       {}\n",
        partition.leader_id.0,
        partition.leader_epoch,
        partition.high_watermark,
        replicas_json(&partition.current_voters, nodes),
        replicas_json(&partition.observers, nodes),
    )
}

fn replication_text(partition: &describe_quorum_response::PartitionData) -> String {
    let row = |r: &describe_quorum_response::ReplicaState, role: &str| {
        vec![
            r.replica_id.0.to_string(),
            r.replica_directory_id.to_string(),
            r.log_end_offset.to_string(),
            lag(partition, r).to_string(),
            r.last_fetch_timestamp.to_string(),
            r.last_caught_up_timestamp.to_string(),
            role.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = partition
        .current_voters
        .iter()
        .map(|v| {
            let role = if v.replica_id == partition.leader_id {
                "Leader"
            } else {
                "Follower"
            };
            row(v, role)
        })
        .collect();
    rows.extend(partition.observers.iter().map(|o| row(o, "Observer")));
    table(
        &[
            "NodeId",
            "DirectoryId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status",
        ],
        &rows,
    )
}
