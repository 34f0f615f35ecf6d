//! Partition logs for gregor: v2 record batches, segments, sparse indexes, crash recovery,
//! retention and idempotent-producer state.

pub mod batch;
mod checkpoint;
pub mod compression;
mod config;
mod error;
mod index;
pub mod log;
mod producer_state;
pub mod records;
mod segment;

pub use config::{LogConfig, TimestampType};
pub use error::{Result, StorageError};
pub use log::cleaner::{CleanStats, CleanedSegments, CleaningPlan};
pub use log::{AppendResult, PartitionLog};
pub use producer_state::AbortedTxn;

#[cfg(test)]
mod tests;
