//! The state of one transactional id and its transitions (Kafka's `TransactionMetadata`).
//!
//! The transitions here do no validation: the coordinator checks the request first.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// No producer id / epoch (Kafka's `RecordBatch.NO_PRODUCER_ID` and `NO_PRODUCER_EPOCH`).
pub(crate) const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

fn no_producer_id() -> i64 {
    NO_PRODUCER_ID
}

/// The transaction version (KIP-890) a request or the cluster speaks. From 2 on, every EndTxn
/// bumps the producer epoch (so a late write of a finished transaction is fenced by its epoch),
/// and a produce or TxnOffsetCommit adds its partition to the transaction itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TxnVersion(pub i16);

impl TxnVersion {
    /// Classic transactions (the client adds partitions; the epoch stays across transactions).
    pub const V0: TxnVersion = TxnVersion(0);
    /// KIP-890 part 2.
    pub const V2: TxnVersion = TxnVersion(2);

    pub fn bumps_epoch(self) -> bool {
        self.0 >= 2
    }
}

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
    /// The (producer id, epoch) before the last bump the producer itself caused (an
    /// InitProducerId of KIP-360, or an EndTxn or timeout under transaction version 2), so that
    /// a retry of that request gets the same answer; -1/-1 if none. Any other bump clears it,
    /// so a fenced producer cannot pass for the retrying one.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    /// The producer id the producer moves to when this transaction completes: set by an EndTxn
    /// of transaction version 2 that used the last epoch of the current id; -1 if none.
    #[serde(default = "no_producer_id")]
    pub next_producer_id: i64,
    /// The transaction version of the request that last added partitions or ended the
    /// transaction: whether its completion bumps (and may rotate) the producer.
    #[serde(default)]
    pub transaction_version: TxnVersion,
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
            next_producer_id: NO_PRODUCER_ID,
            transaction_version: TxnVersion::V0,
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

    /// Whether the next bump must move to a new producer id.
    pub(crate) fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }

    /// InitProducerId on an idle id: the next epoch, or epoch 0 of `fresh_id` once the epochs
    /// are exhausted. `kip360` records the previous producer so its retry is recognised.
    pub(crate) fn bump(
        &mut self,
        timeout_ms: i32,
        kip360: bool,
        now_ms: i64,
        fresh_id: Option<i64>,
    ) {
        let (old_id, old_epoch) = self.current();
        match fresh_id.filter(|_| epoch_exhausted(old_epoch)) {
            Some(id) => (self.producer_id, self.producer_epoch) = (id, 0),
            None => self.producer_epoch = old_epoch + 1,
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
    /// requests (and the markers' epoch) no longer match. Under transaction version 2 (the
    /// cluster's), the bump is the one every transaction end makes, so the producer's abort
    /// still finds it as a retry and carries on with the new epoch; the fence does not rotate
    /// the producer id.
    pub(crate) fn fence(&mut self, version: TxnVersion, now_ms: i64) {
        // Clients never get epoch i16::MAX (it is "exhausted"), so there is always room for
        // the fencing bump; saturating only guards records replayed from elsewhere.
        let old_epoch = self.producer_epoch;
        self.producer_epoch = old_epoch.saturating_add(1);
        (self.last_producer_id, self.last_producer_epoch) = if version.bumps_epoch() {
            (self.producer_id, old_epoch)
        } else {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        };
        self.transaction_version = version;
        self.state = TxnState::PrepareAbort;
        self.last_update_ms = now_ms;
    }

    pub(crate) fn add_partitions(
        &mut self,
        partitions: &[(String, i32)],
        version: TxnVersion,
        now_ms: i64,
    ) {
        if self.state != TxnState::Ongoing {
            self.start_ms = now_ms;
        }
        self.partitions.extend(partitions.iter().cloned());
        self.transaction_version = version;
        self.state = TxnState::Ongoing;
        self.last_update_ms = now_ms;
    }

    /// Commit or abort. Under transaction version 2 the epoch is bumped now (the markers carry
    /// the new one) and, if that was the id's last epoch, `next_producer_id` is where the
    /// producer moves on completion. An abort without a transaction (version 2 only) starts
    /// one with no partitions, to bump the epoch.
    pub(crate) fn prepare(
        &mut self,
        commit: bool,
        version: TxnVersion,
        next_producer_id: Option<i64>,
        now_ms: i64,
    ) {
        if version.bumps_epoch() {
            (self.last_producer_id, self.last_producer_epoch) = self.current();
            self.producer_epoch = self.producer_epoch.saturating_add(1);
            self.next_producer_id = next_producer_id.unwrap_or(NO_PRODUCER_ID);
        }
        if self.state != TxnState::Ongoing {
            self.start_ms = now_ms;
        }
        self.transaction_version = version;
        self.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.last_update_ms = now_ms;
    }

    /// What the producer holds once this prepared transaction completes.
    pub(crate) fn completed_producer(&self) -> (i64, i16) {
        if self.transaction_version.bumps_epoch() && self.next_producer_id != NO_PRODUCER_ID {
            (self.next_producer_id, 0)
        } else {
            self.current()
        }
    }

    /// The markers are written: the transaction is over (and the producer moved to its next id,
    /// if its epochs ran out).
    pub(crate) fn complete(&mut self, now_ms: i64) {
        self.state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        (self.producer_id, self.producer_epoch) = self.completed_producer();
        self.next_producer_id = NO_PRODUCER_ID;
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
