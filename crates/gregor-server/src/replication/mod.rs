//! Replication of partition logs between brokers, Kafka's way: followers fetch from leaders
//! with the Fetch API (`fetcher.rs`), the leader tracks their progress to move the high
//! watermark and proposes ISR changes (`leader.rs`, `isr_changes.rs`), and high watermarks are
//! checkpointed per log dir (`hw_checkpoint.rs`); consumers may read from a follower in their
//! rack (`read_replica.rs`, KIP-392). The partition itself (`partitions.rs`) holds
//! the state these act on, under its locks.

pub mod fetcher;
pub mod hw_checkpoint;
pub mod isr_changes;
pub mod leader;
pub mod read_replica;
#[cfg(test)]
mod simulation;
pub mod throttle;
