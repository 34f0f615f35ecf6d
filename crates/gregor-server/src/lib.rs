//! The gregor broker: accepts Kafka connections, decodes requests with `gregor-protocol`, and
//! answers them from the metadata image (`gregor-metadata`), the partition logs
//! (`gregor-storage`) and the group and transaction coordinators (`gregor-group`, `gregor-txn`),
//! whose runtimes (`groups.rs`, `transactions.rs`) persist their records.

pub mod broker;
mod cleaner;
pub mod config;
mod delayed;
mod fetch_session;
mod groups;
mod handlers;
mod internal_topics;
pub mod listeners;
mod log_dir_moves;
pub mod meta_properties;
mod metadata;
mod network;
mod partitions;
mod producer_ids;
pub mod properties;
mod telemetry;
mod transactions;

pub use broker::Broker;
pub use config::{BrokerConfig, ConfigError};
