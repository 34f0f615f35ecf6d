//! Producer state: per producer id its epoch, its last 5 batches (idempotence) and the first
//! offset of its open transaction; the partition's open transactions (which bound the last stable
//! offset) and its aborted transactions (which read_committed fetches return).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::{Result, StorageError};

/// How many batches per producer are remembered for duplicate detection.
pub(crate) const NUM_BATCHES_TO_RETAIN: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// First offset of the producer's open transaction in this partition.
    pub txn_first_offset: Option<i64>,
    /// The max timestamp of its newest batch (data or marker), for producer id expiration.
    pub last_timestamp: i64,
}

/// What DescribeProducers reports of a producer that has state in a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of its newest batch; -1 if it wrote none with sequences.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The first offset of its open transaction here; -1 if none.
    pub current_txn_start_offset: i64,
}

/// A transaction that ended with an abort marker: read_committed consumers drop the producer's
/// records in `first_offset..=last_offset` (the last offset is the marker's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

impl ProducerEntry {
    /// Records a batch (with its final offsets) as Kafka's replay does.
    pub fn replay(&mut self, h: &BatchHeader) {
        self.last_timestamp = self.last_timestamp.max(h.max_timestamp);
        if h.producer_epoch != self.epoch {
            if h.producer_epoch < self.epoch && !self.batches.is_empty() {
                // An older epoch in the log (should not happen); keep the newer state.
                return;
            }
            self.epoch = h.producer_epoch;
            self.batches.clear();
        }
        if h.is_transactional() && !h.is_control() && self.txn_first_offset.is_none() {
            self.txn_first_offset = Some(h.base_offset);
        }
        if h.is_control() || h.base_sequence < 0 {
            return;
        }
        self.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        });
        while self.batches.len() > NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Checks a producer batch against the producer's current state. `Ok(Some(meta))` means it is
/// a duplicate of a retained batch.
pub(crate) fn check(entry: Option<&ProducerEntry>, h: &BatchHeader) -> Result<Option<BatchMeta>> {
    if h.producer_id < 0 || h.is_control() {
        return Ok(None);
    }
    let Some(e) = entry else {
        // Unknown producer (new, or its state was removed with old segments): any sequence.
        return Ok(None);
    };
    if h.producer_epoch == e.epoch {
        let last_seq = h.last_sequence();
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(Some(*b));
        }
    }
    if h.producer_epoch < e.epoch {
        return Err(StorageError::InvalidProducerEpoch(format!(
            "producer {} epoch {} is older than the current epoch {}",
            h.producer_id, h.producer_epoch, e.epoch
        )));
    }
    if h.base_sequence < 0 {
        return Ok(None);
    }
    if h.producer_epoch > e.epoch {
        if h.base_sequence != 0 {
            return Err(StorageError::OutOfOrderSequence(format!(
                "producer {} new epoch {} must start at sequence 0, got {}",
                h.producer_id, h.producer_epoch, h.base_sequence
            )));
        }
        return Ok(None);
    }
    if let Some(last) = e.batches.back() {
        if !in_sequence(last.last_seq, h.base_sequence) {
            return Err(StorageError::OutOfOrderSequence(format!(
                "producer {} epoch {}: expected sequence {}, got {}",
                h.producer_id,
                h.producer_epoch,
                i64::from(last.last_seq) + 1,
                h.base_sequence
            )));
        }
    }
    Ok(None)
}

#[derive(Default, Debug)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions as (first offset, producer id).
    ongoing: BTreeSet<(i64, i64)>,
    /// Aborted transactions in marker order (so by last offset).
    aborted: Vec<AbortedTxn>,
    /// The longest aborted transaction (last - first offset): bounds the search for the
    /// aborted transactions that reach back into a range.
    max_aborted_span: i64,
}

impl ProducerStateManager {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        if let Some(first) = entry.txn_first_offset {
            self.ongoing.insert((first, producer_id));
        }
        self.producers.insert(producer_id, entry);
    }

    /// Replays a batch read from the log; `marker` is a control batch's commit (true) or abort.
    pub fn replay(&mut self, h: &BatchHeader, marker: Option<bool>) {
        if h.producer_id < 0 {
            return;
        }
        // A new entry takes the batch's epoch in replay.
        let entry = self.producers.entry(h.producer_id).or_default();
        entry.replay(h);
        if let Some(first) = entry.txn_first_offset {
            self.ongoing.insert((first, h.producer_id));
        }
        if let Some(commit) = marker {
            self.end_txn(h.producer_id, h.base_offset, commit);
        }
    }

    /// A commit or abort marker at `marker_offset` ends the producer's open transaction.
    pub fn end_txn(&mut self, producer_id: i64, marker_offset: i64, commit: bool) {
        let Some(entry) = self.producers.get_mut(&producer_id) else {
            return;
        };
        let Some(first) = entry.txn_first_offset.take() else {
            return;
        };
        self.ongoing.remove(&(first, producer_id));
        if !commit {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset: first,
                last_offset: marker_offset,
            });
            self.max_aborted_span = self.max_aborted_span.max(marker_offset - first);
        }
    }

    /// The first offset of the oldest open transaction: the last stable offset's bound.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|(offset, _)| *offset)
    }

    /// Aborted transactions that may hold records in `from..to`, oldest first.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        // Past `to + max span`, no aborted transaction can start before `to`.
        let horizon = to.saturating_add(self.max_aborted_span);
        self.aborted[start..]
            .iter()
            .take_while(|a| a.last_offset <= horizon)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets the aborted transactions whose abort markers (at `marker_offsets`) the cleaner
    /// removed together with all their records.
    pub fn forget_aborted(&mut self, marker_offsets: &[i64]) {
        if !marker_offsets.is_empty() {
            self.aborted
                .retain(|a| !marker_offsets.contains(&a.last_offset));
        }
    }

    /// The highest producer id with state here.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().max().copied()
    }

    /// Every producer with state here, by producer id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut active: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        active.sort_by_key(|p| p.producer_id);
        active
    }

    /// Per producer id, the last offset of its newest retained data batch (for the cleaner,
    /// which must keep each producer's last batch). Producers without one are absent.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(pid, e)| e.batches.back().map(|b| (*pid, b.last_offset)))
            .collect()
    }

    /// Forgets producers idle since before `now_ms - expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`), except those with an open transaction; returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let horizon = now_ms.saturating_sub(expiration_ms);
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.txn_first_offset.is_some() || e.last_timestamp >= horizon);
        before - self.producers.len()
    }

    /// Forgets producers none of whose retained batches remain in the log (unless their
    /// transaction is open) and aborted transactions wholly below the log start.
    pub fn evict_before(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.batches
                    .back()
                    .is_some_and(|b| b.last_offset >= log_start_offset)
        });
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }
}
