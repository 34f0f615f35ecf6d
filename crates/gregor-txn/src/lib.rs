//! The transaction coordinator of gregor: Kafka's InitProducerId (with a transactional id),
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions, plus
//! the timers that abort timed-out transactions and expire idle transactional ids.
//!
//! It is a pure state machine: no I/O, no clock reads (time comes in as `now_ms`). Each handler
//! updates the in-memory state at once and returns a [`Decision`]: the records to append to
//! `__transaction_state`, the commit/abort markers to write (if any) and the response. The runtime
//! must append the records before it answers, and write the markers before it calls
//! [`TxnCoordinator::markers_written`]. At start-up the runtime replays the topic with
//! [`TxnCoordinator::replay`] and resumes the markers of [`TxnCoordinator::pending_markers`].

mod coordinator;
pub mod errors;
mod metadata;
mod records;

pub use coordinator::{
    Decision, Markers, ProducerResult, TxnConfig, TxnCoordinator, TxnDescription,
};
pub use metadata::{TxnMetadata, TxnState, TxnVersion};
pub use records::{DecodeError, TxnRecord};

#[cfg(test)]
mod tests;
