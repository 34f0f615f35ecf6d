//! `gregor`: one binary for the broker and, later, the command-line tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gregor_server::{Broker, BrokerConfig};

mod cli;
mod dev;
mod perf;
mod storage;

#[derive(Parser)]
#[command(name = "gregor", version, about = "Apache Kafka, rebuilt in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. With no arguments: a single-node cluster on PLAINTEXT://127.0.0.1:9092 with
    /// its data in ./gregor-data.
    #[command(
        after_help = "Examples:\n  gregor server\n  gregor server --config server.properties\n  gregor server --override log.dirs=/var/lib/gregor --override num.partitions=3"
    )]
    Server {
        /// A server.properties file (Kafka's property names).
        #[arg(long)]
        config: Option<PathBuf>,
        /// KEY=VALUE, applied after the file; repeatable.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// A local cluster in one command: N nodes on loopback, stopped together on Ctrl-C.
    Dev(dev::Args),
    /// Format log dirs for a cluster before a first start (like kafka-storage.sh).
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Load generators: `perf produce` and `perf consume` (like kafka-*-perf-test.sh).
    #[command(subcommand)]
    Perf(perf::PerfCommand),
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(cli::topics::Args),
    /// Describe and alter topic, broker and group configs (like kafka-configs.sh).
    Configs(cli::configs::Args),
    /// Brokers, controller, cluster id and API versions.
    Cluster(cli::cluster::Args),
    /// Console producer: records from stdin or a file (like kafka-console-producer.sh).
    Produce(cli::produce::Args),
    /// Console consumer (like kafka-console-consumer.sh and kcat -C).
    Consume(cli::consume::Args),
    /// Consumer groups: list, describe, reset offsets, delete (like kafka-consumer-groups.sh).
    Groups(cli::groups::Args),
    /// List and describe transactions (like kafka-transactions.sh).
    Transactions(cli::transactions::Args),
    /// Client metrics subscriptions: which metrics clients push (like kafka-client-metrics.sh).
    ClientMetrics(cli::client_metrics::Args),
    /// Describe, upgrade and downgrade the cluster's feature levels (like kafka-features.sh).
    Features(cli::features::Args),
    /// Log directories of the brokers and the partitions they hold (like kafka-log-dirs.sh).
    LogDirs(cli::log_dirs::Args),
    /// The metadata quorum: leader, epoch, voters and their progress (like
    /// kafka-metadata-quorum.sh).
    MetadataQuorum(cli::metadata_quorum::Args),
    /// Preferred or unclean leader elections (like kafka-leader-election.sh).
    LeaderElection(cli::leader_election::Args),
    /// Move partitions to other brokers, throttled if asked, and follow the moves (like
    /// kafka-reassign-partitions.sh).
    ReassignPartitions(cli::reassign_partitions::Args),
}

/// Exit status of a tool: 0, or 1 with a one-line error.
fn tool(name: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gregor {name}: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(file: Option<PathBuf>, overrides: Vec<String>) -> Result<BrokerConfig, String> {
    let mut pairs = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            gregor_server::properties::parse(&text)
        }
        None => vec![],
    };
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--override {item}: expected KEY=VALUE"))?;
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    BrokerConfig::from_pairs(pairs).map_err(|e| e.to_string())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, before the
/// broker starts listening, so a signal that arrives during start-up still shuts down cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,openraft=error,openraft::replication=off")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Topics(args) => tool("topics", cli::topics::run(args)),
        Command::Configs(args) => tool("configs", cli::configs::run(args)),
        Command::Cluster(args) => tool("cluster", cli::cluster::run(args)),
        Command::LeaderElection(args) => tool("leader-election", cli::leader_election::run(args)),
        Command::ReassignPartitions(args) => {
            tool("reassign-partitions", cli::reassign_partitions::run(args))
        }
        Command::Produce(args) => tool("produce", cli::produce::run(args)),
        Command::Consume(args) => tool("consume", cli::consume::run(args)),
        Command::Groups(args) => tool("groups", cli::groups::run(args)),
        Command::Transactions(args) => tool("transactions", cli::transactions::run(args)),
        Command::ClientMetrics(args) => tool("client-metrics", cli::client_metrics::run(args)),
        Command::Features(args) => tool("features", cli::features::run(args)),
        Command::LogDirs(args) => tool("log-dirs", cli::log_dirs::run(args)),
        Command::MetadataQuorum(args) => tool("metadata-quorum", cli::metadata_quorum::run(args)),
        Command::Dev(args) => match dev::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gregor dev: {e}");
                ExitCode::from(1)
            }
        },
        Command::Storage(command) => match storage::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gregor storage: {e}");
                ExitCode::from(1)
            }
        },
        Command::Perf(command) => match perf::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gregor perf: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Server { config, overrides } => {
            let config = match load_config(config, overrides) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("gregor: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async {
                let stop = shutdown_signal();
                match Broker::start(config).await {
                    Ok(running) => {
                        running.serve_until(stop).await;
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("gregor: cannot start: {e}");
                        ExitCode::from(1)
                    }
                }
            })
        }
    }
}
