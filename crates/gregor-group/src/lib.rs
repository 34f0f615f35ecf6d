//! The consumer group coordinator of gregor: Kafka's classic group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), committed offsets, and the admin group APIs, as a state machine driven
//! by requests and `tick`s. Also KIP-848's consumer groups (ConsumerGroupHeartbeat with
//! server-side assignors, ConsumerGroupDescribe). Decisions return the records to append to `__consumer_offsets`;
//! responses are released (via [`GroupCoordinator::take_replies`]) only after the runtime appended
//! them. No I/O, no clock reads: time comes in as `now_ms`.

pub mod consumer;
mod consumer_coordinator;
pub mod consumer_protocol;
pub mod coordinator;
pub mod errors;
mod group;
pub mod records;
mod regex;
mod txn_offsets;

pub use consumer::{TopicCatalog, TopicInfo};
pub use coordinator::{GroupConfig, GroupCoordinator, GroupOverrides};
pub use records::{ConsumerGroupValue, DecodeError, GroupRecord, MemberRecord};

/// Where a handler sends its response.
pub type Responder<T> = tokio::sync::oneshot::Sender<T>;

#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod tests;
