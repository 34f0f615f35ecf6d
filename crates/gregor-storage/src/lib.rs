//! Partition logs for gregor: v2 record batches, segments, sparse indexes, crash recovery,
//! retention, compaction, and producer state (idempotence, transactions: last stable offset,
//! aborted transactions, markers).

pub mod atomic_file;
pub mod batch;
mod checkpoint;
pub mod compression;
mod config;
mod decompress;
pub mod epoch_cache;
mod error;
mod index;
pub mod log;
mod log_copy;
mod producer_state;
mod record_checks;
pub mod records;
mod segment;

pub use config::{LogConfig, TimestampType};
pub use decompress::decompress_bounded;
pub use error::{RecordError, Result, StorageError};
pub use log::cleaner::{CleanStats, CleanedSegments, CleaningPlan};
pub use log::{AppendResult, PartitionLog, Prepared};
pub use log_copy::{LogCopy, LogSnapshot};
pub use producer_state::{AbortedTxn, ActiveProducer};
pub use segment::FileSlice;

#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod preallocation_tests;
#[cfg(test)]
mod test_batches;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod truncation_tests;
