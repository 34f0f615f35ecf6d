//! The transaction coordinator: request handlers and timers over all transactional ids.

use std::collections::BTreeMap;

use crate::errors;
use crate::metadata::{TxnMetadata, TxnState, TxnVersion};
use crate::records::TxnRecord;

/// The coordinator's settings, with Kafka's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// transaction.max.timeout.ms
    pub max_timeout_ms: i32,
    /// transactional.id.expiration.ms
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Commit or abort markers the runtime must write: one control batch of (`producer_id`,
/// `producer_epoch`) to each partition, then call [`TxnCoordinator::markers_written`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// What a handler decided: append `records` to `__transaction_state`; if `markers` is `Some`,
/// write them and then call [`TxnCoordinator::markers_written`] (appending its records) before
/// sending `response`.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision<R> {
    pub records: Vec<TxnRecord>,
    pub markers: Option<Markers>,
    pub response: R,
}

impl<R> Decision<R> {
    /// A response alone: nothing to persist, no markers.
    pub(crate) fn reply(response: R) -> Self {
        Decision {
            records: Vec::new(),
            markers: None,
            response,
        }
    }
}

/// The answer of InitProducerId and EndTxn: an error code, and the producer to carry on with
/// (-1/-1 where there is none to give).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerResult {
    pub error: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl ProducerResult {
    fn ok((producer_id, producer_epoch): (i64, i16)) -> Self {
        ProducerResult {
            error: errors::NONE,
            producer_id,
            producer_epoch,
        }
    }

    pub fn error(error: i16) -> Self {
        ProducerResult {
            error,
            producer_id: -1,
            producer_epoch: -1,
        }
    }
}

/// A transactional id as DescribeTransactions and ListTransactions report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

/// The transaction coordinator for the transactional ids of `__transaction_state`.
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
    /// Which transactional ids this coordinator serves (those whose `__transaction_state`
    /// partition this broker leads); the others are answered NOT_COORDINATOR. Every id until the
    /// runtime says otherwise.
    coordinates: Box<dyn Fn(&str) -> bool + Send>,
}

fn record(transactional_id: &str, metadata: &TxnMetadata) -> TxnRecord {
    TxnRecord {
        transactional_id: transactional_id.to_string(),
        metadata: Some(metadata.clone()),
    }
}

/// The markers still owed by a transaction in a Prepare state.
fn markers(transactional_id: &str, metadata: &TxnMetadata) -> Option<Markers> {
    metadata.state.is_prepare().then(|| Markers {
        transactional_id: transactional_id.to_string(),
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        commit: metadata.state == TxnState::PrepareCommit,
        partitions: metadata.partitions.iter().cloned().collect(),
    })
}

/// The decision of a transition into a Prepare state: persist it and write its markers.
fn prepared<R>(transactional_id: &str, metadata: &TxnMetadata, response: R) -> Decision<R> {
    Decision {
        records: vec![record(transactional_id, metadata)],
        markers: markers(transactional_id, metadata),
        response,
    }
}

fn describe(transactional_id: &str, metadata: &TxnMetadata) -> TxnDescription {
    TxnDescription {
        transactional_id: transactional_id.to_string(),
        state: metadata.state,
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        timeout_ms: metadata.timeout_ms,
        start_ms: metadata.start_ms,
        partitions: metadata.partitions.iter().cloned().collect(),
    }
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TxnCoordinator {
            config,
            txns: BTreeMap::new(),
            coordinates: Box::new(|_| true),
        }
    }

    /// Sets which transactional ids this coordinator serves (the others are answered
    /// NOT_COORDINATOR; their state goes with [`TxnCoordinator::unload`]).
    pub fn set_coordinated(&mut self, coordinates: impl Fn(&str) -> bool + Send + 'static) {
        self.coordinates = Box::new(coordinates);
    }

    /// Forgets every transactional id `owned` names, so it can be replayed from the log again
    /// (a partition of `__transaction_state` led no more, or led again in a new leader epoch).
    /// Returns how many were forgotten.
    pub fn unload(&mut self, owned: impl Fn(&str) -> bool) -> usize {
        let before = self.txns.len();
        self.txns.retain(|id, _| !owned(id));
        before - self.txns.len()
    }

    /// Whether `markers` are still owed: their transactional id is served here and is in the
    /// Prepare state of the same producer and outcome (a sender of markers stops otherwise).
    pub fn owes(&self, owed: &Markers) -> bool {
        let id = &owed.transactional_id;
        self.coordinates(id)
            && self
                .txns
                .get(id)
                .and_then(|metadata| markers(id, metadata))
                .is_some_and(|m| {
                    (m.producer_id, m.producer_epoch, m.commit)
                        == (owed.producer_id, owed.producer_epoch, owed.commit)
                })
    }

    /// Whether this coordinator serves `transactional_id`.
    pub fn coordinates(&self, transactional_id: &str) -> bool {
        (self.coordinates)(transactional_id)
    }

    /// The state of one transactional id, to put back with [`TxnCoordinator::restore`] when
    /// the records of a decision about it could not be appended.
    pub fn snapshot(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.txns.get(transactional_id).cloned()
    }

    /// Puts back a [`TxnCoordinator::snapshot`], so memory matches the log again.
    pub fn restore(&mut self, transactional_id: &str, snapshot: Option<TxnMetadata>) {
        match snapshot {
            Some(metadata) => {
                self.txns.insert(transactional_id.to_string(), metadata);
            }
            None => {
                self.txns.remove(transactional_id);
            }
        }
    }

    /// Rebuilds the state at start-up from one record of `__transaction_state`, in log order.
    /// A tombstone removes the id.
    pub fn replay(&mut self, record: TxnRecord) {
        match record.metadata {
            // Kafka never persists Dead; should one appear, it means "being expired": gone.
            Some(metadata) if metadata.state != TxnState::Dead => {
                self.txns.insert(record.transactional_id, metadata);
            }
            _ => {
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    /// After loading: the markers of transactions left in PrepareCommit/PrepareAbort, which must
    /// be (re)written before their transactions can complete.
    pub fn pending_markers(&self) -> Vec<Markers> {
        self.txns
            .iter()
            .filter_map(|(id, metadata)| markers(id, metadata))
            .collect()
    }

    /// InitProducerId with a transactional id (the runtime handles the non-transactional case).
    /// `expected` is the (producer id, epoch) a KIP-360 request (v3+) sends when it holds a
    /// producer id; `new_producer_id` allocates a fresh producer id (or fails with an error
    /// code); `version` is the cluster's transaction version, for fencing an ongoing
    /// transaction.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: TxnVersion,
        now_ms: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Decision<ProducerResult> {
        if transactional_id.is_empty() {
            return refuse(errors::INVALID_REQUEST);
        }
        if !self.coordinates(transactional_id) {
            return refuse(errors::NOT_COORDINATOR);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return refuse(errors::INVALID_TRANSACTION_TIMEOUT);
        }
        let Some(metadata) = self.txns.get_mut(transactional_id) else {
            let producer_id = match new_producer_id() {
                Ok(id) => id,
                Err(error) => return refuse(error),
            };
            let metadata = TxnMetadata::new(producer_id, timeout_ms, now_ms);
            let decision = Decision {
                records: vec![record(transactional_id, &metadata)],
                markers: None,
                response: ProducerResult::ok(metadata.current()),
            };
            self.txns.insert(transactional_id.to_string(), metadata);
            return decision;
        };
        match metadata.state {
            // The client backs off and retries once the markers are written.
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                refuse(errors::CONCURRENT_TRANSACTIONS)
            }
            TxnState::Ongoing => {
                if expected.is_some_and(|(id, _)| id != metadata.producer_id) {
                    return refuse(errors::PRODUCER_FENCED);
                }
                // A new instance of the producer: abort the old one's transaction under a bumped
                // epoch (fencing it) and let the client retry, which then bumps once more. The
                // fencing epoch is never handed out.
                tracing::info!(
                    transactional_id,
                    "fencing the ongoing transaction of a previous producer"
                );
                metadata.fence(version, now_ms);
                prepared(
                    transactional_id,
                    metadata,
                    ProducerResult::error(errors::CONCURRENT_TRANSACTIONS),
                )
            }
            // Empty, CompleteCommit, CompleteAbort (Dead is never held).
            _ => {
                if let Some(expected) = expected.filter(|e| *e != metadata.current()) {
                    return if metadata.is_retry_of_last_bump(expected) {
                        // The producer missed the answer to its bump: give it again.
                        Decision::reply(ProducerResult::ok(metadata.current()))
                    } else {
                        refuse(errors::PRODUCER_FENCED)
                    };
                }
                let fresh_id = match fresh_id_if_exhausted(metadata, new_producer_id) {
                    Ok(id) => id,
                    Err(error) => return refuse(error),
                };
                metadata.bump(timeout_ms, expected.is_some(), now_ms, fresh_id);
                Decision {
                    records: vec![record(transactional_id, metadata)],
                    markers: None,
                    response: ProducerResult::ok(metadata.current()),
                }
            }
        }
    }

    /// Whether the id's transaction is in PrepareCommit/PrepareAbort, its markers being written
    /// (Kafka's pending transition to the Complete state).
    fn is_ending(&self, transactional_id: &str) -> bool {
        self.txns
            .get(transactional_id)
            .is_some_and(|m| m.state.is_prepare())
    }

    /// The metadata of the transaction a request's producer owns, or the error code to answer.
    fn producer_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&mut TxnMetadata, i16> {
        if transactional_id.is_empty() {
            return Err(errors::INVALID_REQUEST);
        }
        let metadata = self
            .txns
            .get_mut(transactional_id)
            .ok_or(errors::INVALID_PRODUCER_ID_MAPPING)?;
        if metadata.producer_id != producer_id {
            Err(errors::INVALID_PRODUCER_ID_MAPPING)
        } else if metadata.producer_epoch != producer_epoch {
            Err(errors::PRODUCER_FENCED)
        } else {
            Ok(metadata)
        }
    }

    /// AddPartitionsToTxn, and AddOffsetsToTxn (whose single partition is the group's
    /// `__consumer_offsets` partition); under transaction version 2, also a partition leader
    /// adding the partition of a produce or TxnOffsetCommit. One error code answers for all
    /// partitions.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        partitions: &[(String, i32)],
        version: TxnVersion,
        now_ms: i64,
    ) -> Decision<i16> {
        if !self.coordinates(transactional_id) {
            return Decision::reply(errors::NOT_COORDINATOR);
        }
        // While a transaction is being ended the producer may already hold what it ends with
        // (a new producer id, on the last epoch): it retries once the markers are written.
        if self.is_ending(transactional_id) {
            return Decision::reply(errors::CONCURRENT_TRANSACTIONS);
        }
        let metadata = match self.producer_txn(transactional_id, producer_id, producer_epoch) {
            Ok(metadata) => metadata,
            Err(error) => return Decision::reply(error),
        };
        if metadata.state == TxnState::Ongoing
            && partitions.iter().all(|p| metadata.partitions.contains(p))
        {
            return Decision::reply(errors::NONE);
        }
        metadata.add_partitions(partitions, version, now_ms);
        Decision {
            records: vec![record(transactional_id, metadata)],
            markers: None,
            response: errors::NONE,
        }
    }

    /// EndTxn: commit or abort the ongoing transaction. Under transaction version 2 (EndTxn
    /// v5+) the epoch is bumped and the answer carries the producer to carry on with; a retry
    /// is recognised by the epoch the request still holds (Kafka's table: Empty: abort bumps,
    /// commit is INVALID_TXN_STATE; CompleteCommit/CompleteAbort: a retry of the same outcome
    /// succeeds again, a new abort bumps, anything else is INVALID_TXN_STATE).
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer: (i64, i16),
        commit: bool,
        version: TxnVersion,
        now_ms: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Decision<ProducerResult> {
        if !self.coordinates(transactional_id) {
            return refuse(errors::NOT_COORDINATOR);
        }
        if version.bumps_epoch() {
            return self.end_txn_bumping(
                transactional_id,
                producer,
                commit,
                now_ms,
                new_producer_id,
            );
        }
        let metadata = match self.producer_txn(transactional_id, producer.0, producer.1) {
            Ok(metadata) => metadata,
            Err(error) => return refuse(error),
        };
        match (metadata.state, commit) {
            // The markers are being written: the client retries (Kafka answers so whichever
            // outcome is asked).
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                refuse(errors::CONCURRENT_TRANSACTIONS)
            }
            (TxnState::Ongoing, _) => {
                metadata.prepare(commit, version, None, now_ms);
                prepared(
                    transactional_id,
                    metadata,
                    ProducerResult::error(errors::NONE),
                )
            }
            // A retry of the EndTxn that completed the transaction.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                refuse(errors::NONE)
            }
            _ => refuse(errors::INVALID_TXN_STATE),
        }
    }

    /// EndTxn under transaction version 2 (see [`TxnCoordinator::end_txn`]).
    fn end_txn_bumping(
        &mut self,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        commit: bool,
        now_ms: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Decision<ProducerResult> {
        if transactional_id.is_empty() {
            return refuse(errors::INVALID_REQUEST);
        }
        if self.is_ending(transactional_id) {
            return refuse(errors::CONCURRENT_TRANSACTIONS);
        }
        let Some(metadata) = self.txns.get_mut(transactional_id) else {
            return refuse(errors::INVALID_PRODUCER_ID_MAPPING);
        };
        // A retry of the EndTxn that bumped the epoch: of the last epoch of an id (now epoch 0
        // of a new id, until its next transaction starts), or of any other (now the next epoch).
        let completed = matches!(
            metadata.state,
            TxnState::CompleteCommit | TxnState::CompleteAbort
        );
        let retry_on_overflow = completed
            && metadata.last_producer_id == producer_id
            && producer_epoch == i16::MAX - 1
            && metadata.producer_epoch == 0;
        let retry_on_bump = i32::from(metadata.producer_epoch) == i32::from(producer_epoch) + 1;
        let retry = retry_on_overflow || retry_on_bump;
        if metadata.producer_id != producer_id && !retry_on_overflow {
            return refuse(errors::INVALID_PRODUCER_ID_MAPPING);
        }
        let current_epoch = producer_epoch == metadata.producer_epoch;
        let valid_epoch = if completed {
            retry || current_epoch
        } else {
            current_epoch
        };
        if !valid_epoch {
            return refuse(errors::PRODUCER_FENCED);
        }
        let ended_as_asked = (metadata.state == TxnState::CompleteCommit) == commit;
        match (metadata.state, commit) {
            (TxnState::CompleteCommit | TxnState::CompleteAbort, _) if retry => {
                if ended_as_asked {
                    Decision::reply(ProducerResult::ok(metadata.current()))
                } else {
                    refuse(errors::INVALID_TXN_STATE)
                }
            }
            // An abort needs no transaction: it bumps the epoch all the same.
            (TxnState::Ongoing, _)
            | (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) => {
                let next_producer_id = match fresh_id_if_exhausted(metadata, new_producer_id) {
                    Ok(id) => id,
                    Err(error) => return refuse(error),
                };
                metadata.prepare(commit, TxnVersion::V2, next_producer_id, now_ms);
                let response = ProducerResult::ok(metadata.completed_producer());
                prepared(transactional_id, metadata, response)
            }
            _ => refuse(errors::INVALID_TXN_STATE),
        }
    }

    /// The markers of a PrepareCommit/PrepareAbort are written: the transaction completes.
    /// Returns the records to append; empty if the id is not in a Prepare state.
    pub fn markers_written(&mut self, transactional_id: &str, now_ms: i64) -> Vec<TxnRecord> {
        match self.txns.get_mut(transactional_id) {
            Some(metadata) if metadata.state.is_prepare() => {
                metadata.complete(now_ms);
                vec![record(transactional_id, metadata)]
            }
            _ => Vec::new(),
        }
    }

    /// The ids [`TxnCoordinator::tick`] at `now_ms` would change (to snapshot them first).
    pub fn due(&self, now_ms: i64) -> Vec<String> {
        let expiration_ms = self.config.id_expiration_ms;
        self.txns
            .iter()
            .filter(|(_, m)| m.has_timed_out(now_ms) || m.has_expired(now_ms, expiration_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Timers. Every Ongoing transaction past its timeout is aborted under a bumped epoch
    /// (fencing its producer; `version` is the cluster's transaction version); idle ids not
    /// updated for `id_expiration_ms` are removed with a tombstone.
    pub fn tick(&mut self, now_ms: i64, version: TxnVersion) -> Vec<Decision<()>> {
        let mut decisions = Vec::new();
        for id in self.due(now_ms) {
            let Some(metadata) = self.txns.get_mut(&id) else {
                continue;
            };
            if metadata.has_timed_out(now_ms) {
                tracing::info!(transactional_id = %id, "aborting a timed-out transaction");
                metadata.fence(version, now_ms);
                decisions.push(prepared(&id, metadata, ()));
            } else {
                // Expired: idle longer than transactional.id.expiration.ms.
                tracing::debug!(transactional_id = %id, "expiring an idle transactional id");
                self.txns.remove(&id);
                decisions.push(Decision {
                    records: vec![TxnRecord {
                        transactional_id: id,
                        metadata: None,
                    }],
                    markers: None,
                    response: (),
                });
            }
        }
        decisions
    }

    /// KIP-890 verification of a transactional write (a produce, or offsets committed in a
    /// transaction): is `partition` part of the ongoing transaction of this producer? A batch
    /// that is not (a late retry after the transaction ended, or a client that skipped
    /// AddPartitionsToTxn) would open a transaction in the partition that no marker will ever
    /// end. Returns an error code: TRANSACTION_ABORTABLE when the partition is not in the
    /// transaction, CONCURRENT_TRANSACTIONS while the transaction is being ended.
    pub fn verify(
        &self,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        partition: &(String, i32),
    ) -> i16 {
        match self.txns.get(transactional_id) {
            _ if transactional_id.is_empty() => errors::INVALID_REQUEST,
            _ if !self.coordinates(transactional_id) => errors::NOT_COORDINATOR,
            None => errors::INVALID_PRODUCER_ID_MAPPING,
            Some(m) if m.producer_id != producer_id => errors::INVALID_PRODUCER_ID_MAPPING,
            Some(m) if m.producer_epoch != producer_epoch => errors::PRODUCER_FENCED,
            Some(m) if m.state.is_prepare() => errors::CONCURRENT_TRANSACTIONS,
            Some(m) if m.partitions.contains(partition) => errors::NONE,
            Some(_) => errors::TRANSACTION_ABORTABLE,
        }
    }

    /// The highest producer id any transactional id holds (or will move to).
    pub fn max_producer_id(&self) -> Option<i64> {
        self.txns
            .values()
            .flat_map(|m| [m.producer_id, m.next_producer_id, m.last_producer_id])
            .max()
            .filter(|&id| id >= 0)
    }

    /// DescribeTransactions; `None` answers TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe(&self, transactional_id: &str) -> Option<TxnDescription> {
        self.txns
            .get(transactional_id)
            .map(|metadata| describe(transactional_id, metadata))
    }

    /// ListTransactions, by transactional id. Filters: `states` by Kafka name (empty: all),
    /// `producer_ids` (empty: all), and `duration_filter_ms` (>= 0: only transactions running
    /// for longer than that at `now_ms`; -1: no filter).
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        duration_filter_ms: i64,
        now_ms: i64,
    ) -> Vec<TxnDescription> {
        self.txns
            .iter()
            .filter(|(_, m)| states.is_empty() || states.iter().any(|s| s == m.state.name()))
            .filter(|(_, m)| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|(_, m)| {
                duration_filter_ms < 0
                    || (m.start_ms >= 0 && now_ms.saturating_sub(m.start_ms) > duration_filter_ms)
            })
            .map(|(id, m)| describe(id, m))
            .collect()
    }
}

/// A refusal of InitProducerId or EndTxn: the error alone, nothing to persist.
fn refuse(error: i16) -> Decision<ProducerResult> {
    Decision::reply(ProducerResult::error(error))
}

/// A new producer id when the id's epochs are used up (the next bump moves to it), else `None`.
fn fresh_id_if_exhausted(
    metadata: &TxnMetadata,
    new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
) -> Result<Option<i64>, i16> {
    if metadata.epoch_exhausted() {
        new_producer_id().map(Some)
    } else {
        Ok(None)
    }
}
