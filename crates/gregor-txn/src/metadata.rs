//! The state of one transactional id and its transitions (Kafka's `TransactionMetadata`).
//!
//! The transitions here do no validation: the coordinator checks the request first.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// No producer id / epoch (Kafka's `RecordBatch.NO_PRODUCER_ID` and `NO_PRODUCER_EPOCH`).
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionState`; the discriminants are Kafka's state ids.
///
/// Kafka's transient `PrepareEpochFence` is absent: fencing bumps the epoch and moves to
/// `PrepareAbort` in one step here, so it is never observable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    /// Being expired. Never held by the coordinator: expiry removes the id at once.
    Dead = 6,
}

impl TxnState {
    /// The name Kafka reports in DescribeTransactions and filters on in ListTransactions.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    /// No transaction is open: the id may start one, be re-initialised, or expire.
    pub(crate) fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    pub(crate) fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// The state of one transactional id: the value of its `__transaction_state` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The (producer id, epoch) before the last bump asked for by the producer itself (KIP-360),
    /// so that a retry of that InitProducerId gets the same answer; -1/-1 if none. Any other
    /// bump clears it, so a fenced producer cannot pass for the retrying one.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions in the transaction, as (topic, partition).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction began (-1 if none).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// A newly initialised transactional id.
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            producer_id,
            producer_epoch: 0,
            last_producer_id: NO_PRODUCER_ID,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    pub(crate) fn current(&self) -> (i64, i16) {
        (self.producer_id, self.producer_epoch)
    }

    /// Is `expected` the producer of the last KIP-360 bump, retrying because it missed the answer?
    pub(crate) fn is_retry_of_last_bump(&self, expected: (i64, i16)) -> bool {
        let (last_id, last_epoch) = (self.last_producer_id, self.last_producer_epoch);
        last_id != NO_PRODUCER_ID
            && expected == (last_id, last_epoch)
            && self.current() == successor(last_id, last_epoch, self.producer_id)
    }

    /// InitProducerId on an idle id: the next epoch, or a new producer id once the epochs are
    /// exhausted. `kip360` records the previous producer so its retry is recognised.
    pub(crate) fn bump(
        &mut self,
        timeout_ms: i32,
        kip360: bool,
        now_ms: i64,
        new_producer_id: &mut dyn FnMut() -> i64,
    ) {
        let (old_id, old_epoch) = self.current();
        if epoch_exhausted(old_epoch) {
            self.producer_id = new_producer_id();
            self.producer_epoch = 0;
        } else {
            self.producer_epoch = old_epoch + 1;
        }
        (self.last_producer_id, self.last_producer_epoch) = if kip360 {
            (old_id, old_epoch)
        } else {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        };
        self.timeout_ms = timeout_ms;
        self.state = TxnState::Empty;
        self.partitions.clear();
        self.start_ms = -1;
        self.last_update_ms = now_ms;
    }

    /// Aborts the ongoing transaction under a bumped epoch, which fences its producer: its
    /// requests (and the markers' epoch) no longer match.
    pub(crate) fn fence(&mut self, now_ms: i64) {
        // Clients never get epoch i16::MAX (it is "exhausted"), so there is always room for
        // the fencing bump; saturating only guards records replayed from elsewhere.
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.last_producer_id = NO_PRODUCER_ID;
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
        self.state = TxnState::PrepareAbort;
        self.last_update_ms = now_ms;
    }

    pub(crate) fn add_partitions(&mut self, partitions: &[(String, i32)], now_ms: i64) {
        if self.state != TxnState::Ongoing {
            self.start_ms = now_ms;
        }
        self.partitions.extend(partitions.iter().cloned());
        self.state = TxnState::Ongoing;
        self.last_update_ms = now_ms;
    }

    pub(crate) fn prepare(&mut self, commit: bool, now_ms: i64) {
        self.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.last_update_ms = now_ms;
    }

    /// The markers are written: the transaction is over.
    pub(crate) fn complete(&mut self, now_ms: i64) {
        self.state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.partitions.clear();
        self.start_ms = -1;
        self.last_update_ms = now_ms;
    }

    pub(crate) fn has_timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms.saturating_add(i64::from(self.timeout_ms)) <= now_ms
    }

    pub(crate) fn has_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.state.is_idle() && now_ms.saturating_sub(self.last_update_ms) >= expiration_ms
    }
}

/// Kafka never hands out the last epochs of a producer id, so that the coordinator can always
/// fence the producer with one more bump.
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// What a bump of (id, epoch) yields: the next epoch, or epoch 0 of a new id (`current_id`).
fn successor(id: i64, epoch: i16, current_id: i64) -> (i64, i16) {
    if epoch_exhausted(epoch) {
        (current_id, 0)
    } else {
        (id, epoch + 1)
    }
}
