//! The Kafka command-line tools, as `gregor` subcommands: they talk to any Kafka-compatible
//! cluster through librdkafka (rdkafka), with the flags Kafka's own scripts use.

pub mod client_metrics;
pub mod cluster;
mod common;
pub mod configs;
pub mod consume;
pub mod features;
pub mod groups;
pub mod leader_election;
mod librdkafka;
pub mod log_dirs;
pub mod metadata_quorum;
pub mod produce;
pub mod reassign_partitions;
pub mod topics;
pub mod transactions;
mod wire;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rdkafka::config::ClientConfig;

/// How to reach the cluster; shared by every tool.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// host:port of one or more brokers, comma-separated.
    #[arg(long, default_value = "localhost:9092", global = true)]
    pub bootstrap_server: String,
    /// A properties file of client settings (librdkafka names, as in `--command-config` of
    /// Kafka's tools).
    #[arg(long, value_name = "FILE", global = true)]
    pub command_config: Option<PathBuf>,
    /// A client property, KEY=VALUE; repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    pub property: Vec<String>,
    /// Seconds to wait for the cluster before giving up.
    #[arg(long, default_value_t = 30, global = true)]
    pub timeout_secs: u64,
}

impl ClientArgs {
    /// The rdkafka configuration: bootstrap servers, then the file, then `-X` pairs.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_server);
        if let Some(path) = &self.command_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (k, v) = line.split_once('=').with_context(|| {
                    format!("{}: expected KEY=VALUE, got {line}", path.display())
                })?;
                config.set(k.trim(), v.trim());
            }
        }
        for pair in &self.property {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("-X {pair}: expected KEY=VALUE"))?;
            config.set(k.trim(), v.trim());
        }
        // librdkafka's own log lines would interleave with the tools' one-line errors: keep them
        // off unless asked for (-X debug=... or -X log_level=N). Both the property (in force from
        // the client's creation) and rdkafka's level (applied just after) are set.
        if config.get("debug").is_none() && config.get("log_level").is_none() {
            config.set("log_level", "2");
            config.set_log_level(rdkafka::config::RDKafkaLogLevel::Critical);
        }
        Ok(config)
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }
}
