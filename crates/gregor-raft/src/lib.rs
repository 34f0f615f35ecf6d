//! The metadata quorum: the metadata log replicated among the controllers by Raft. This is the
//! only crate that touches the Raft engine (openraft, pinned in Cargo.toml); the rest of gregor
//! sees metadata records going in and committed records coming out.
//!
//! The log is KRaft's: `__cluster_metadata-0` is an ordinary partition log in which each Raft
//! entry is one record batch, its offset the entry's index and its partition leader epoch the
//! term ([`log_store`]). The Raft vote and the commit point live beside it in `quorum-state`.
//! Committed entries go to an [`Applier`] (the broker's metadata loader), and snapshots of the
//! image let a restart or a new controller skip the history ([`state_machine`]). Controllers
//! talk over TCP in Kafka's framing ([`network`]); the broker sees only [`MetadataQuorum`]
//! ([`quorum`]).

// openraft's storage traits return its `StorageError` (200+ bytes); the helpers share it.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod quorum;
pub mod state_machine;

use std::fmt;
use std::io::Cursor;

use gregor_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

pub use log_store::LogStore;
pub use quorum::{
    MetadataQuorum, QuorumConfig, QuorumError, QuorumStatus, RaftQuorum, SnapshotTriggers,
    VoterState,
};
pub use state_machine::{Applier, ImageOnly, StateMachine};

openraft::declare_raft_types!(
    /// Raft's types for the metadata log.
    pub TypeConfig:
        D = MetadataBatch,
        R = Committed,
        Node = ControllerNode,
);

pub type NodeId = u64;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;

/// A controller's address (its CONTROLLER listener).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ControllerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The records of one controller decision: one Raft entry, one batch of the metadata log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
    /// When the leader took it (ms since the epoch): the batch's timestamp in every
    /// controller's log, so that their logs are the same byte for byte (-1: unknown, in
    /// entries written before it was kept).
    #[serde(default = "no_timestamp")]
    pub appended_ms: i64,
}

fn no_timestamp() -> i64 {
    -1
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the quorum answers to an appended batch once it is committed and applied: its offset in
/// the metadata log (its Raft index).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
}

#[cfg(test)]
mod tests;
