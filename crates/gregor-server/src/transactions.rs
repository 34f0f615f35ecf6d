//! The runtime around the transaction coordinator (`gregor-txn`): it appends the coordinator's
//! records to `__transaction_state`, writes the commit/abort markers a decision asks for into
//! the transaction's partitions (telling the group coordinator when `__consumer_offsets` got
//! one), replays the topic at start-up and finishes transactions a crash left half-ended, and
//! drives the timers that abort timed-out transactions.
//!
//! As in Kafka, an EndTxn is answered once its PrepareCommit/PrepareAbort record is appended; a
//! marker that cannot be written (an offline log directory) leaves the transaction in its
//! Prepare state, which the producer sees as CONCURRENT_TRANSACTIONS, and the timer retries it.

use std::collections::BTreeMap;

use bytes::Bytes;
use gregor_metadata::features::TRANSACTION_VERSION;
use gregor_protocol::kafka::ResponseError;
use gregor_storage::records::{encode_batch, Entry};
use gregor_storage::StorageError;
use gregor_txn::{
    Decision, Markers, TxnConfig, TxnCoordinator, TxnMetadata, TxnRecord, TxnVersion,
};
use parking_lot::Mutex;

use crate::broker::{now_ms, Broker};
use crate::config::BrokerConfig;
use crate::internal_topics::{self, partition_for, OFFSETS, TRANSACTIONS};

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("cannot create __transaction_state: {0}")]
    Topic(String),
    #[error("cannot append to __transaction_state: {0}")]
    Append(#[from] StorageError),
    #[error("__transaction_state partition {0} does not exist or is not hosted here")]
    Missing(i32),
}

pub struct TxnRuntime {
    coordinator: Mutex<TxnCoordinator>,
}

impl TxnRuntime {
    pub fn new(config: &BrokerConfig) -> TxnRuntime {
        let config = TxnConfig {
            max_timeout_ms: config.get_i64("transaction.max.timeout.ms") as i32,
            id_expiration_ms: config.get_i64("transactional.id.expiration.ms"),
        };
        TxnRuntime {
            coordinator: Mutex::new(TxnCoordinator::new(config)),
        }
    }

    /// Creates `__transaction_state` on first use, as Kafka does.
    pub async fn ensure_topic(&self, broker: &Broker) -> Result<i32, TxnError> {
        internal_topics::ensure(broker, &TRANSACTIONS)
            .await
            .map_err(TxnError::Topic)
    }

    /// Replays every hosted partition of `__transaction_state`, then writes the markers of
    /// transactions that were between Prepare and Complete when the broker stopped. Runs after
    /// the groups are loaded (markers in `__consumer_offsets` complete their pending offsets)
    /// and before the broker accepts connections.
    pub fn load(&self, broker: &Broker) -> Result<usize, TxnError> {
        let mut coordinator = self.coordinator.lock();
        let mut loaded = 0;
        for index in 0..internal_topics::partition_count(broker, &TRANSACTIONS) {
            let Some(partition) = broker.replicas.get(TRANSACTIONS.name, index) else {
                continue;
            };
            partition.with_log(|log| {
                log.replay(|offset, key, value| {
                    match TxnRecord::decode(key.as_deref().unwrap_or_default(), value.as_deref()) {
                        Ok(record) => {
                            coordinator.replay(record);
                            loaded += 1;
                        }
                        Err(e) => tracing::warn!(partition = index, offset, error = %e, "skipping unreadable transaction record"),
                    }
                    Ok(())
                })
            })?;
        }
        self.retry_markers(broker, &mut coordinator)?;
        Ok(loaded)
    }

    /// Runs a decision of the coordinator about `transactional_id` and carries it out: its
    /// records appended, its markers written. The response is returned only once the records are
    /// appended; if they cannot be, the id's state in memory is put back as the log has it.
    pub fn decide<R>(
        &self,
        broker: &Broker,
        transactional_id: &str,
        decide: impl FnOnce(&mut TxnCoordinator, i64) -> Decision<R>,
    ) -> Result<R, TxnError> {
        let mut coordinator = self.coordinator.lock();
        self.carry_out(broker, &mut coordinator, transactional_id, decide)
    }

    fn carry_out<R>(
        &self,
        broker: &Broker,
        coordinator: &mut TxnCoordinator,
        transactional_id: &str,
        decide: impl FnOnce(&mut TxnCoordinator, i64) -> Decision<R>,
    ) -> Result<R, TxnError> {
        let before = coordinator.snapshot(transactional_id);
        let decision = decide(coordinator, now_ms());
        if let Err(e) = self.persist(broker, decision.records) {
            coordinator.restore(transactional_id, before);
            return Err(e);
        }
        if let Some(markers) = decision.markers {
            // The Prepare record is in the log: the response may go; completion is retried.
            if let Err(e) = self.complete(broker, coordinator, &markers) {
                tracing::error!(error = %e, transactional_id, "transaction completion deferred");
            }
        }
        Ok(decision.response)
    }

    /// Runs `write` only once `partition` is part of the producer's ongoing transaction
    /// (KIP-890): verified, or with `add` (a client of transaction version 2, which leaves it
    /// to the partition leader) added first. The coordinator is held throughout, so the
    /// transaction cannot end in between. Else the coordinator's error code
    /// (COORDINATOR_NOT_AVAILABLE if the addition could not be stored).
    pub fn admitted<T>(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer: (i64, i16),
        partition: &(String, i32),
        add: bool,
        write: impl FnOnce() -> T,
    ) -> Result<T, i16> {
        let mut coordinator = self.coordinator.lock();
        let code = if add {
            let added = self.carry_out(broker, &mut coordinator, transactional_id, |c, now| {
                let partitions = std::slice::from_ref(partition);
                c.add_partitions(transactional_id, producer, partitions, TxnVersion::V2, now)
            });
            added.unwrap_or_else(|e| {
                tracing::error!(error = %e, transactional_id, "partition not added to its transaction");
                ResponseError::CoordinatorNotAvailable.code()
            })
        } else {
            coordinator.verify(transactional_id, producer, partition)
        };
        match code {
            gregor_txn::errors::NONE => Ok(write()),
            error => Err(error),
        }
    }

    /// Reads state without deciding anything.
    pub fn read<T>(&self, f: impl FnOnce(&TxnCoordinator) -> T) -> T {
        f(&self.coordinator.lock())
    }

    /// Aborts timed-out transactions, expires idle transactional ids, and retries markers that
    /// could not be written before.
    pub fn tick(&self, broker: &Broker) {
        let mut coordinator = self.coordinator.lock();
        let now = now_ms();
        let mut before: BTreeMap<String, Option<TxnMetadata>> = coordinator
            .due(now)
            .into_iter()
            .map(|id| {
                let snapshot = coordinator.snapshot(&id);
                (id, snapshot)
            })
            .collect();
        for d in coordinator.tick(now, cluster_version(broker)) {
            let id = d.records.first().map(|r| r.transactional_id.clone());
            if let Err(e) = self.persist(broker, d.records) {
                tracing::error!(error = %e, "transaction timer decision not appended; undone");
                if let Some(id) = id {
                    let snapshot = before.remove(&id).flatten();
                    coordinator.restore(&id, snapshot);
                }
                continue;
            }
            if let Some(markers) = d.markers {
                if let Err(e) = self.complete(broker, &mut coordinator, &markers) {
                    tracing::error!(error = %e, "transaction completion deferred");
                }
            }
        }
        if let Err(e) = self.retry_markers(broker, &mut coordinator) {
            tracing::error!(error = %e, "transaction markers not completed");
        }
    }

    fn retry_markers(
        &self,
        broker: &Broker,
        coordinator: &mut TxnCoordinator,
    ) -> Result<(), TxnError> {
        for markers in coordinator.pending_markers() {
            self.complete(broker, coordinator, &markers)?;
        }
        Ok(())
    }

    /// Writes the markers of a prepared transaction and appends its Complete record. If that
    /// record cannot be appended, memory stays Prepare (as the log is) and the timer retries.
    fn complete(
        &self,
        broker: &Broker,
        coordinator: &mut TxnCoordinator,
        markers: &Markers,
    ) -> Result<(), TxnError> {
        if !all_written(&write_markers(broker, markers)) {
            return Ok(());
        }
        let id = &markers.transactional_id;
        let prepared = coordinator.snapshot(id);
        let done = coordinator.markers_written(id, now_ms());
        self.persist(broker, done)
            .inspect_err(|_| coordinator.restore(id, prepared))
    }

    /// Appends records, each to the partition its transactional id lives on.
    fn persist(&self, broker: &Broker, records: Vec<TxnRecord>) -> Result<(), TxnError> {
        if records.is_empty() {
            return Ok(());
        }
        let partitions = internal_topics::partition_count(broker, &TRANSACTIONS);
        let mut by_partition: BTreeMap<i32, Vec<Entry>> = BTreeMap::new();
        for record in &records {
            by_partition
                .entry(partition_for(&record.transactional_id, partitions))
                .or_default()
                .push((
                    Some(Bytes::from(record.key())),
                    record.value().map(Bytes::from),
                ));
        }
        let now = now_ms();
        for (index, entries) in by_partition {
            let partition = broker
                .replicas
                .get(TRANSACTIONS.name, index)
                .ok_or(TxnError::Missing(index))?;
            partition.append(&encode_batch(&entries, now), now)?;
        }
        Ok(())
    }
}

/// Writes one marker per partition of `markers`, returning each partition's error code (0 when
/// written): UNKNOWN_TOPIC_OR_PARTITION for a partition deleted since, INVALID_PRODUCER_EPOCH
/// where a newer epoch of the producer was seen (both need no marker), KAFKA_STORAGE_ERROR for an
/// offline log directory. Tells the group coordinator when `__consumer_offsets` got one.
pub(crate) fn write_markers(broker: &Broker, markers: &Markers) -> Vec<i16> {
    let now = now_ms();
    let mut offsets_marked = false;
    let outcomes = markers
        .partitions
        .iter()
        .map(|(topic, index)| {
            let partition = broker.replicas.lookup(topic, *index)?;
            match partition.append_marker(
                markers.producer_id,
                markers.producer_epoch,
                markers.commit,
                now,
            ) {
                Ok(_) => {
                    offsets_marked |= topic == OFFSETS.name;
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(%topic, partition = index, error = %e, "transaction marker not written");
                    Err(e.error_code())
                }
            }
        })
        .map(|outcome: Result<(), i16>| outcome.err().unwrap_or(0))
        .collect();
    if offsets_marked {
        broker.groups.end_txn(markers.producer_id, markers.commit);
    }
    outcomes
}

/// Whether every marker of a transaction is done: written, or not needed (a partition deleted
/// since, or one that saw a newer epoch of the producer, as in Kafka).
fn all_written(outcomes: &[i16]) -> bool {
    outcomes.iter().all(|&code| {
        code == 0
            || code == ResponseError::UnknownTopicOrPartition.code()
            || code == ResponseError::InvalidProducerEpoch.code()
    })
}

/// The finalized `transaction.version` of the cluster: how the coordinator ends transactions
/// it decides on by itself (timeouts, fencing).
pub(crate) fn cluster_version(broker: &Broker) -> TxnVersion {
    TxnVersion(broker.metadata.image().feature_level(TRANSACTION_VERSION))
}
