//! `gregor storage random-uuid|format`: prepares log dirs before a first start, as
//! `kafka-storage.sh` does. A node of a multi-node cluster must be formatted with the cluster's
//! id; a single node formats itself on its first start.

use std::path::PathBuf;

use clap::Subcommand;
use gregor_server::meta_properties;

#[derive(Subcommand)]
pub enum StorageCommand {
    /// Print a new cluster id (a random UUID in Kafka's base64url form).
    RandomUuid,
    /// Write meta.properties (cluster id, node id, directory id) into every log dir of the config.
    #[command(
        after_help = "Example:\n  gregor storage format --cluster-id $(gregor storage random-uuid) --config server.properties"
    )]
    Format {
        /// The cluster's id (from `gregor storage random-uuid`).
        #[arg(short = 't', long)]
        cluster_id: String,
        /// The node's server.properties (its node.id and log.dirs).
        #[arg(short = 'c', long)]
        config: PathBuf,
        /// KEY=VALUE, applied after the file; repeatable.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Format the dirs that are not formatted yet instead of stopping at one that is.
        #[arg(short = 'g', long)]
        ignore_formatted: bool,
    },
}

/// Runs a storage command; the error is one line for the user.
pub fn run(command: StorageCommand) -> Result<(), String> {
    match command {
        StorageCommand::RandomUuid => {
            println!("{}", meta_properties::random_uuid());
            Ok(())
        }
        StorageCommand::Format {
            cluster_id,
            config,
            overrides,
            ignore_formatted,
        } => {
            let config = crate::load_config(Some(config), overrides)?;
            let written = meta_properties::format(
                &config.log_dirs,
                &cluster_id,
                config.node_id,
                ignore_formatted,
            )?;
            for dir in written {
                println!(
                    "Formatted {} for cluster {cluster_id}, node {}",
                    dir.display(),
                    config.node_id
                );
            }
            Ok(())
        }
    }
}
