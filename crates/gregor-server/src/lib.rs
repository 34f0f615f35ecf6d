//! The gregor broker: accepts Kafka connections, decodes requests with `gregor-protocol`, and
//! answers them from the metadata image (`gregor-metadata`), the partition logs
//! (`gregor-storage`) and the group and transaction coordinators (`gregor-group`, `gregor-txn`),
//! whose runtimes (`coordinators/`) persist their records. `services.rs` holds what every part
//! of the process shares, `broker.rs` the state request handlers see, `process.rs` its life.

pub mod broker;
mod cleaner;
pub mod config;
mod coordinators;
mod delayed;
mod fetch_session;
mod handlers;
pub mod listeners;
mod log_dir_moves;
pub mod meta_properties;
mod metadata;
mod network;
mod partitions;
mod process;
mod producer_ids;
pub mod properties;
mod replication;
mod services;
mod telemetry;

pub use broker::Broker;
pub use config::{BrokerConfig, ConfigError};
pub use process::{RunningBroker, StartError};
