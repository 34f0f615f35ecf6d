//! The group and transaction coordinators' runtimes. The coordinators themselves are state
//! machines (`gregor-group`, `gregor-txn`); these shells persist their records in the internal
//! topics (`__consumer_offsets`, `__transaction_state`), release responses once the records are
//! appended, drive their timers, and load or unload the coordinator state of each internal
//! partition as this broker gains or loses its leadership. They use the broker's
//! [`crate::services::Services`] only.

pub mod groups;
pub mod internal_topics;
pub mod transactions;
