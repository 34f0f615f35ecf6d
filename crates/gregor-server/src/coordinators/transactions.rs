//! The runtime around the transaction coordinator (`gregor-txn`): it appends the coordinator's
//! records to `__transaction_state`, writes the commit/abort markers a decision asks for into
//! the transaction's partitions (telling the group coordinator when `__consumer_offsets` got
//! one), replays the partitions of the topic this broker leads and finishes transactions a
//! crash left half-ended, and drives the timers that abort timed-out transactions.
//!
//! As in Kafka, an EndTxn is answered once its PrepareCommit/PrepareAbort record is appended.
//! Markers for partitions led here are written at once; those led by other brokers go to them
//! as WriteTxnMarkers from a task that retries until they are written, and the Complete record
//! follows when every marker is. A marker that cannot be written (an offline log directory, a
//! broker that is down) leaves the transaction in its Prepare state, which the producer sees
//! as CONCURRENT_TRANSACTIONS, and the timer retries it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use gregor_metadata::features::TRANSACTION_VERSION;
use gregor_metadata::{MetadataDelta, MetadataImage};
use gregor_protocol::kafka::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use gregor_protocol::kafka::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use gregor_protocol::kafka::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TopicName, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::{str_bytes, ApiKey};
use gregor_storage::records::{encode_batch, Entry};
use gregor_storage::StorageError;
use gregor_txn::{
    errors, Decision, Markers, TxnConfig, TxnCoordinator, TxnMetadata, TxnRecord, TxnVersion,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::groups::GroupRuntime;
use super::internal_topics::{
    self, coordinator_of, partition_for, CoordinatorState, Followed, OFFSETS, TRANSACTIONS,
};
use crate::delayed::{
    once_replicated, replicated, Unreplicated, Written, COORDINATOR_WRITE_TIMEOUT,
};
use crate::network::peers;
use crate::partitions::Partition;
use crate::services::{now_ms, Services};

/// The AddPartitionsToTxn version a partition leader sends a transaction's coordinator (the
/// batched, broker-to-broker form of KIP-890) and the WriteTxnMarkers version it answers.
const ADD_PARTITIONS_BROKER_VERSION: i16 = 5;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// Between two tries to write markers on another broker: doubling from the first to the last.
const MARKER_RETRY_FIRST: Duration = Duration::from_millis(50);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(2);

/// A transaction's markers on their way: those written here, to be replicated, then those for
/// partitions other brokers lead, to be sent; then the transaction completes.
struct MarkerJob {
    /// All of the transaction's markers.
    markers: Markers,
    remote: Markers,
    local: Vec<Written>,
}

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("cannot create __transaction_state: {0}")]
    Topic(String),
    #[error("cannot append to __transaction_state: {0}")]
    Append(#[from] StorageError),
    #[error("__transaction_state partition {0} does not exist or is not hosted here")]
    Missing(i32),
    #[error("the transaction's state did not reach every in-sync replica in time")]
    NotReplicated,
}

/// A decision's answer, once its records are on every in-sync replica of
/// `__transaction_state` (a leader change before that may have lost them).
async fn settled<R>(outcome: Result<(R, Vec<Written>), TxnError>) -> Result<R, TxnError> {
    let (response, written) = outcome?;
    let deadline = tokio::time::Instant::now() + COORDINATOR_WRITE_TIMEOUT;
    if !replicated(&written, deadline).await {
        return Err(TxnError::NotReplicated);
    }
    Ok(response)
}

/// The transaction coordinator as [`Followed::follow`] moves it between partitions.
struct Loading<'a> {
    coordinator: &'a mut TxnCoordinator,
    services: &'a Services,
}

impl CoordinatorState for Loading<'_> {
    type Error = TxnError;

    fn unload(&mut self, owned: &dyn Fn(&str) -> bool) {
        self.coordinator.unload(owned);
    }

    fn serve(&mut self, coordinated: Box<dyn Fn(&str) -> bool + Send>) {
        self.coordinator.set_coordinated(coordinated);
    }

    fn load(&mut self, index: i32) -> Result<(usize, Option<Arc<Partition>>), TxnError> {
        let Some(partition) = self.services.replicas.get(TRANSACTIONS.name, index) else {
            return Ok((0, None));
        };
        let mut loaded = 0;
        partition.with_log(|log| {
            log.replay(|offset, key, value| {
                match TxnRecord::decode(key.as_deref().unwrap_or_default(), value.as_deref()) {
                    Ok(record) => {
                        self.coordinator.replay(record);
                        loaded += 1;
                    }
                    Err(e) => tracing::warn!(partition = index, offset, error = %e, "skipping unreadable transaction record"),
                }
                Ok(())
            })
        })?;
        Ok((loaded, Some(partition)))
    }
}

pub struct TxnRuntime {
    services: Arc<Services>,
    /// Told when a marker lands in `__consumer_offsets`.
    groups: Arc<GroupRuntime>,
    coordinator: Mutex<TxnCoordinator>,
    /// The partitions of `__transaction_state` this broker leads, whose transactional ids it
    /// has loaded and serves. Changed only with the coordinator's lock held.
    led: Mutex<Followed>,
    /// Markers being replicated here or for partitions other brokers lead, to the task that
    /// waits for them and sends them.
    remote_markers: mpsc::UnboundedSender<MarkerJob>,
    remote_markers_queue: Mutex<Option<mpsc::UnboundedReceiver<MarkerJob>>>,
    /// Transactional ids whose markers are being replicated or sent to other brokers.
    sending: Mutex<HashSet<String>>,
    /// Records written and not replicated yet.
    unreplicated: Unreplicated,
}

impl TxnRuntime {
    pub fn new(services: Arc<Services>, groups: Arc<GroupRuntime>) -> TxnRuntime {
        let config = TxnConfig {
            max_timeout_ms: services.config.get_i64("transaction.max.timeout.ms") as i32,
            id_expiration_ms: services.config.get_i64("transactional.id.expiration.ms"),
        };
        let mut coordinator = TxnCoordinator::new(config);
        coordinator.set_coordinated(|_| false);
        let (remote_markers, queue) = mpsc::unbounded_channel();
        TxnRuntime {
            services,
            groups,
            coordinator: Mutex::new(coordinator),
            led: Mutex::new(Followed::default()),
            remote_markers,
            remote_markers_queue: Mutex::new(Some(queue)),
            sending: Mutex::new(HashSet::new()),
            unreplicated: Unreplicated::default(),
        }
    }

    /// Starts the task that writes markers on other brokers (once, at broker start).
    pub fn start_marker_sender(self: &Arc<Self>) {
        if let Some(queue) = self.remote_markers_queue.lock().take() {
            tokio::spawn(send_remote_markers(Arc::downgrade(self), queue));
        }
    }

    /// Creates `__transaction_state` on first use, as Kafka does.
    pub async fn ensure_topic(&self) -> Result<i32, TxnError> {
        internal_topics::ensure(&self.services, &TRANSACTIONS)
            .await
            .map_err(TxnError::Topic)
    }

    /// Serves the transactional ids of the `__transaction_state` partitions this broker leads
    /// in `image`: replays each partition it just became the leader of and finishes the
    /// transactions found between Prepare and Complete; forgets the ids of partitions it no
    /// longer leads. At start it runs after the groups are loaded (markers in
    /// `__consumer_offsets` complete their pending offsets) and before the broker accepts
    /// connections. Returns the records replayed.
    pub fn follow_leadership(&self, image: &MetadataImage) -> Result<usize, TxnError> {
        let mut coordinator = self.coordinator.lock();
        let mut current = self.led.lock();
        let Some(leadership) = current.change(
            image,
            &TRANSACTIONS,
            self.services.node_id,
            &self.services.replicas,
        ) else {
            return Ok(0);
        };
        let mut state = Loading {
            coordinator: &mut coordinator,
            services: &self.services,
        };
        let (lost, loaded) =
            current.follow(image.offset, leadership, &mut state, &self.unreplicated)?;
        if !lost.is_empty() {
            tracing::info!(partitions = ?lost, "no longer the transaction coordinator of these partitions (or again in a new leader epoch)");
        }
        self.retry_markers(&mut coordinator)?;
        Ok(loaded)
    }

    /// A metadata change: serves the `__transaction_state` partitions this broker leads now.
    pub fn on_metadata_change(&self, delta: &MetadataDelta, image: &MetadataImage) {
        if !delta.topics_changed() {
            return;
        }
        if let Err(e) = self.follow_leadership(image) {
            tracing::error!(error = %e, "cannot load the transactions of a __transaction_state partition");
        }
    }

    /// Follows leadership up to the newest image before a request is served: a client that
    /// found this broker as the coordinator through that image must be served, not told
    /// NOT_COORDINATOR while the metadata publishers are still running.
    pub fn catch_up(&self) {
        if let Err(e) = self.follow_leadership(&self.services.metadata.image()) {
            tracing::error!(error = %e, "cannot load a coordinator partition");
        }
    }

    /// Runs a decision of the coordinator about `transactional_id` and carries it out: its
    /// records appended, its markers written. The response is returned only once the records are
    /// appended; if they cannot be, the id's state in memory is put back as the log has it.
    pub async fn decide<R>(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(&mut TxnCoordinator, i64) -> Decision<R>,
    ) -> Result<R, TxnError> {
        self.catch_up();
        let outcome = {
            let mut coordinator = self.coordinator.lock();
            self.carry_out(&mut coordinator, transactional_id, decide)
        };
        settled(outcome).await
    }

    fn carry_out<R>(
        &self,
        coordinator: &mut TxnCoordinator,
        transactional_id: &str,
        decide: impl FnOnce(&mut TxnCoordinator, i64) -> Decision<R>,
    ) -> Result<(R, Vec<Written>), TxnError> {
        let before = coordinator.snapshot(transactional_id);
        let decision = decide(coordinator, now_ms());
        let written = match self.persist(decision.records) {
            Ok(written) => written,
            Err(e) => {
                coordinator.restore(transactional_id, before);
                return Err(e);
            }
        };
        if let Some(markers) = decision.markers {
            // The Prepare record is in the log: the response may go; completion is retried.
            if let Err(e) = self.complete(coordinator, &markers) {
                tracing::error!(error = %e, transactional_id, "transaction completion deferred");
            }
        }
        Ok((decision.response, written))
    }

    /// KIP-890: whether a transactional write to `partition` may go ahead, as an error code
    /// (NONE when it may). The partition must be part of the producer's ongoing transaction:
    /// verified, or with `add` (a client of transaction version 2, which leaves it to the
    /// partition leader) added first. Asked of this broker's coordinator when it serves
    /// `transactional_id`, else of the broker that does (AddPartitionsToTxn, as Kafka's
    /// partition leaders do). The caller holds a verification guard on the partition so that a
    /// marker written meanwhile (the transaction ended) still stops the write.
    pub async fn verify_or_add(
        &self,
        transactional_id: &str,
        producer: (i64, i16),
        partition: &(String, i32),
        add: bool,
    ) -> i16 {
        self.catch_up();
        let added = {
            let mut coordinator = self.coordinator.lock();
            if !coordinator.coordinates(transactional_id) {
                None
            } else if !add {
                // Answered once the state verified is replicated, like any read.
                let verified = coordinator.verify(transactional_id, producer, partition);
                Some(Ok((verified, self.unreplicated.pending())))
            } else {
                Some(
                    self.carry_out(&mut coordinator, transactional_id, |c, now| {
                        let partitions = std::slice::from_ref(partition);
                        c.add_partitions(
                            transactional_id,
                            producer,
                            partitions,
                            TxnVersion::V2,
                            now,
                        )
                    }),
                )
            }
        };
        if let Some(added) = added {
            return settled(added).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, transactional_id, "transactional write neither verified nor added");
                errors::COORDINATOR_NOT_AVAILABLE
            });
        }
        let image = self.services.metadata.image();
        let Some(node) = coordinator_of(&image, &TRANSACTIONS, transactional_id) else {
            return errors::COORDINATOR_NOT_AVAILABLE;
        };
        if node == self.services.node_id {
            // This broker leads the partition but has not loaded it yet.
            return errors::NOT_COORDINATOR;
        }
        let (topic, index) = partition;
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(transactional_id)))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_verify_only(!add)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(vec![*index])]),
        ]);
        let answer: Result<AddPartitionsToTxnResponse, _> = peers::call(
            &image,
            node,
            ApiKey::AddPartitionsToTxn,
            ADD_PARTITIONS_BROKER_VERSION,
            &request,
        )
        .await;
        match answer {
            Ok(response) if response.error_code != errors::NONE => response.error_code,
            Ok(response) => response
                .results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code)
                .next()
                .unwrap_or(errors::COORDINATOR_NOT_AVAILABLE),
            Err(e) => {
                tracing::warn!(error = %e, transactional_id, "cannot verify a transactional write with its coordinator");
                errors::COORDINATOR_NOT_AVAILABLE
            }
        }
    }

    /// Reads state without deciding anything, answered once every record that state rests on
    /// is on every in-sync replica ([`once_replicated`]); `None` if they cannot be in time.
    pub async fn read<T>(&self, f: impl FnOnce(&TxnCoordinator) -> T) -> Option<T> {
        self.catch_up();
        let (value, pending) = {
            let coordinator = self.coordinator.lock();
            (f(&coordinator), self.unreplicated.pending())
        };
        once_replicated(value, pending).await
    }

    /// Memory as it is, decisions not replicated yet included: for the broker's own use, never
    /// for a client's answer.
    pub fn peek<T>(&self, f: impl FnOnce(&TxnCoordinator) -> T) -> T {
        f(&self.coordinator.lock())
    }

    /// Aborts timed-out transactions, expires idle transactional ids, and retries markers that
    /// could not be written before.
    pub fn tick(&self) {
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
        for d in coordinator.tick(now, cluster_version(&self.services.metadata.image())) {
            let id = d.records.first().map(|r| r.transactional_id.clone());
            if let Err(e) = self.persist(d.records) {
                tracing::error!(error = %e, "transaction timer decision not appended; undone");
                if let Some(id) = id {
                    let snapshot = before.remove(&id).flatten();
                    coordinator.restore(&id, snapshot);
                }
                continue;
            }
            if let Some(markers) = d.markers {
                if let Err(e) = self.complete(&mut coordinator, &markers) {
                    tracing::error!(error = %e, "transaction completion deferred");
                }
            }
        }
        if let Err(e) = self.retry_markers(&mut coordinator) {
            tracing::error!(error = %e, "transaction markers not completed");
        }
    }

    fn retry_markers(&self, coordinator: &mut TxnCoordinator) -> Result<(), TxnError> {
        for markers in coordinator.pending_markers() {
            self.complete(coordinator, &markers)?;
        }
        Ok(())
    }

    /// Writes the markers of a prepared transaction and appends its Complete record. Markers
    /// for partitions other brokers lead go to the marker sender, which completes the
    /// transaction once they are written. If the Complete record cannot be appended, memory
    /// stays Prepare (as the log is) and the timer retries.
    fn complete(
        &self,
        coordinator: &mut TxnCoordinator,
        markers: &Markers,
    ) -> Result<(), TxnError> {
        if self.sending.lock().contains(&markers.transactional_id) {
            return Ok(());
        }
        let image = self.services.metadata.image();
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            markers
                .partitions
                .iter()
                .cloned()
                .partition(|(topic, index)| {
                    leader_of(&image, topic, *index)
                        .is_none_or(|leader| leader == self.services.node_id)
                });
        let local = Markers {
            partitions: here,
            ..markers.clone()
        };
        let (outcomes, local_written) = self.write_markers(&local);
        if !all_written(&outcomes) {
            return Ok(());
        }
        let replicated_here = local_written.iter().all(|w| w.replicated() == Some(true));
        if !elsewhere.is_empty() || !replicated_here {
            // The transaction completes once every marker is on every in-sync replica of its
            // partition (a marker lost in a failover would leave the transaction open there).
            self.sending.lock().insert(markers.transactional_id.clone());
            let job = MarkerJob {
                markers: markers.clone(),
                remote: Markers {
                    partitions: elsewhere,
                    ..markers.clone()
                },
                local: local_written,
            };
            if self.remote_markers.send(job).is_err() {
                // The sender stopped with the broker: the next start finishes the transaction.
                self.sending.lock().remove(&markers.transactional_id);
            }
            return Ok(());
        }
        self.markers_done(coordinator, &markers.transactional_id)
    }

    /// Every marker of the transaction is written: appends its Complete record.
    fn markers_done(
        &self,
        coordinator: &mut TxnCoordinator,
        transactional_id: &str,
    ) -> Result<(), TxnError> {
        let prepared = coordinator.snapshot(transactional_id);
        let done = coordinator.markers_written(transactional_id, now_ms());
        self.persist(done)
            .map(drop)
            .inspect_err(|_| coordinator.restore(transactional_id, prepared))
    }

    /// Whether `markers` are still owed (see [`TxnCoordinator::owes`]).
    fn still_owed(&self, markers: &Markers) -> bool {
        self.coordinator.lock().owes(markers)
    }

    /// The marker sender saw `markers` replicated here and written on the brokers that lead
    /// their other partitions (or gave up: they are no longer owed, or were not replicated).
    fn remote_markers_written(&self, markers: &Markers, written: bool) {
        let mut coordinator = self.coordinator.lock();
        self.sending.lock().remove(&markers.transactional_id);
        if !written || !coordinator.owes(markers) {
            return;
        }
        if let Err(e) = self.markers_done(&mut coordinator, &markers.transactional_id) {
            tracing::error!(error = %e, transactional_id = markers.transactional_id, "transaction completion deferred");
        }
    }

    /// Writes one marker per partition of `markers`, returning each partition's error code (0 when
    /// written): UNKNOWN_TOPIC_OR_PARTITION for a partition deleted since, INVALID_PRODUCER_EPOCH
    /// where a newer epoch of the producer was seen (both need no marker), KAFKA_STORAGE_ERROR for an
    /// offline log directory. Tells the group coordinator when `__consumer_offsets` got one.
    pub fn write_markers(&self, markers: &Markers) -> (Vec<i16>, Vec<Written>) {
        let now = now_ms();
        let mut offsets_written = Vec::new();
        let mut written = Vec::new();
        let outcomes = markers
            .partitions
            .iter()
            .map(|(topic, index)| {
                let partition = self.services.replicas.lookup(topic, *index)?;
                match partition.append_marker(
                    markers.producer_id,
                    markers.producer_epoch,
                    markers.commit,
                    now,
                ) {
                    Ok(appended) => {
                        let marker = Written {
                            partition,
                            leader_epoch: appended.leader_epoch,
                            end: appended.last_offset + 1,
                        };
                        if topic == OFFSETS.name {
                            offsets_written.push(marker.clone());
                        }
                        written.push(marker);
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
        if !offsets_written.is_empty() {
            let (id, commit) = (markers.producer_id, markers.commit);
            self.groups.end_txn(id, commit, offsets_written);
        }
        (outcomes, written)
    }

    /// Appends records, each to the partition its transactional id lives on: every write not
    /// replicated yet, these included (an answer waits for them all).
    fn persist(&self, records: Vec<TxnRecord>) -> Result<Vec<Written>, TxnError> {
        if records.is_empty() {
            return Ok(self.unreplicated.pending());
        }
        let partitions = internal_topics::partition_count(&self.services, &TRANSACTIONS);
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
        let mut written = Vec::new();
        for (index, entries) in by_partition {
            let partition = self
                .services
                .replicas
                .get(TRANSACTIONS.name, index)
                .ok_or(TxnError::Missing(index))?;
            let appended = partition.append(&encode_batch(&entries, now), now)?;
            written.push(Written {
                partition,
                leader_epoch: appended.leader_epoch,
                end: appended.last_offset + 1,
            });
        }
        Ok(self.unreplicated.add(written))
    }
}

/// The leader of a partition in `image` (`None` for a partition that does not exist).
fn leader_of(image: &MetadataImage, topic: &str, index: i32) -> Option<i32> {
    Some(image.topics.get(topic)?.partitions.get(&index)?.leader)
}

/// The marker sender: writes each transaction's markers on the brokers that lead their
/// partitions, retrying (leaders looked up anew each time) while the markers are still owed,
/// then completes the transaction. Ends with the broker.
async fn send_remote_markers(
    runtime: Weak<TxnRuntime>,
    mut queue: mpsc::UnboundedReceiver<MarkerJob>,
) {
    while let Some(job) = queue.recv().await {
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let markers = &job.markers;
            // Written here: replicated, or the timer writes them again.
            let deadline = tokio::time::Instant::now() + COORDINATOR_WRITE_TIMEOUT;
            if !replicated(&job.local, deadline).await {
                runtime.remote_markers_written(markers, false);
                return;
            }
            let mut backoff = MARKER_RETRY_FIRST;
            let mut stop = runtime.services.shutdown_signal();
            loop {
                if !runtime.still_owed(markers) {
                    runtime.remote_markers_written(markers, false);
                    return;
                }
                if write_remote_markers(&runtime.services, &job.remote).await {
                    runtime.remote_markers_written(markers, true);
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MARKER_RETRY_MAX);
            }
        });
    }
}

/// Sends WriteTxnMarkers to the leader of each partition of `markers`; true when every marker
/// is done (see [`all_written`]).
async fn write_remote_markers(services: &Services, markers: &Markers) -> bool {
    let image = services.metadata.image();
    let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for (topic, index) in &markers.partitions {
        match leader_of(&image, topic, *index) {
            // Deleted since: no marker needed.
            None => {}
            Some(leader) if leader < 0 => return false,
            Some(leader) => by_leader
                .entry(leader)
                .or_default()
                .entry(topic)
                .or_default()
                .push(*index),
        }
    }
    let mut written = true;
    for (leader, topics) in by_leader {
        let topics = topics
            .into_iter()
            .map(|(topic, partitions)| {
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partition_indexes(partitions)
            })
            .collect();
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(markers.producer_id))
                .with_producer_epoch(markers.producer_epoch)
                .with_transaction_result(markers.commit)
                .with_topics(topics)]);
        let answer: Result<WriteTxnMarkersResponse, _> = peers::call(
            &image,
            leader,
            ApiKey::WriteTxnMarkers,
            WRITE_TXN_MARKERS_VERSION,
            &request,
        )
        .await;
        let codes: Vec<i16> = match answer {
            Ok(response) => response
                .markers
                .iter()
                .flat_map(|m| &m.topics)
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, transactional_id = markers.transactional_id, "transaction markers not written");
                written = false;
                continue;
            }
        };
        if !all_written(&codes) {
            tracing::warn!(
                leader,
                ?codes,
                transactional_id = markers.transactional_id,
                "transaction markers refused"
            );
            written = false;
        }
    }
    written
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
pub(crate) fn cluster_version(image: &MetadataImage) -> TxnVersion {
    TxnVersion(image.feature_level(TRANSACTION_VERSION))
}
