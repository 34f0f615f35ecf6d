//! The runtime around the group coordinator (`gregor-group`): the coordinator is a state machine;
//! this shell appends the records its decisions produce to `__consumer_offsets` (an ordinary
//! compacted topic of the same log as user data), releases responses only once those records are
//! appended, drives its timers, and replays the topic into it at start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use gregor_group::{
    GroupConfig, GroupCoordinator, GroupOverrides, GroupRecord, Responder, TopicCatalog, TopicInfo,
};
use gregor_metadata::{MetadataDelta, MetadataImage};
use gregor_storage::records::{encode_batch, encode_transactional_batch, Entry, Replayed};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::internal_topics::{self, partition_for, CoordinatorState, Followed, OFFSETS};
use crate::delayed::{
    once_replicated, replicated, Unreplicated, Written, COORDINATOR_WRITE_TIMEOUT,
};
use crate::partitions::Partition;
use crate::services::{now_ms, Services};

pub const OFFSETS_TOPIC: &str = OFFSETS.name;

/// The group configs of the image, as the coordinator applies them.
fn group_overrides(image: &MetadataImage) -> BTreeMap<String, GroupOverrides> {
    let int = |configs: &BTreeMap<String, String>, name: &str| {
        configs.get(name).and_then(|v| v.trim().parse().ok())
    };
    image
        .group_configs()
        .map(|(group, configs)| {
            let overrides = GroupOverrides {
                session_timeout_ms: int(configs, "consumer.session.timeout.ms"),
                heartbeat_interval_ms: int(configs, "consumer.heartbeat.interval.ms"),
            };
            (group.to_string(), overrides)
        })
        .collect()
}

/// Replays one partition of `__consumer_offsets` into the coordinator; returns the records read
/// and the partition (if hosted here). Transactional offsets stay pending until their marker.
fn replay_partition(
    services: &Services,
    coordinator: &mut GroupCoordinator,
    index: i32,
) -> Result<(usize, Option<Arc<Partition>>), GroupError> {
    let Some(partition) = services.replicas.get(OFFSETS_TOPIC, index) else {
        return Ok((0, None));
    };
    let mut loaded = 0;
    partition.with_log(|log| {
        log.replay_transactional(|step| {
            let (offset, key, value, txn_producer) = match step {
                Replayed::Record {
                    offset,
                    key,
                    value,
                    txn_producer,
                } => (offset, key, value, txn_producer),
                Replayed::Marker {
                    producer_id,
                    commit,
                } => {
                    coordinator.end_txn(producer_id, commit);
                    return Ok(());
                }
            };
            match GroupRecord::decode(key.as_deref().unwrap_or_default(), value.as_deref()) {
                Ok(record) => {
                    match txn_producer {
                        Some(producer_id) => coordinator.replay_pending(producer_id, record),
                        None => coordinator.replay(record),
                    }
                    loaded += 1;
                }
                Err(e) => tracing::warn!(partition = index, offset, error = %e, "skipping unreadable group record"),
            }
            Ok(())
        })
    })?;
    Ok((loaded, Some(partition)))
}

/// The metadata image as the coordinator's view of topics (KIP-848 assignors need partition counts).
pub struct Catalog<'a>(pub &'a MetadataImage);

impl TopicCatalog for Catalog<'_> {
    fn by_name(&self, name: &str) -> Option<TopicInfo> {
        self.0.topics.get(name).map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as i32,
        })
    }

    fn by_id(&self, id: &uuid::Uuid) -> Option<TopicInfo> {
        self.0.topic_by_id(id).and_then(|t| self.by_name(&t.name))
    }

    fn names(&self) -> Vec<String> {
        self.0.topics.keys().cloned().collect()
    }
}

/// The group coordinator as [`Followed::follow`] moves it between partitions.
struct Loading<'a> {
    coordinator: &'a mut GroupCoordinator,
    services: &'a Services,
}

impl CoordinatorState for Loading<'_> {
    type Error = GroupError;

    fn unload(&mut self, owned: &dyn Fn(&str) -> bool) {
        self.coordinator.unload(owned);
    }

    fn serve(&mut self, coordinated: Box<dyn Fn(&str) -> bool + Send>) {
        self.coordinator.set_coordinated(coordinated);
    }

    fn load(&mut self, index: i32) -> Result<(usize, Option<Arc<Partition>>), GroupError> {
        replay_partition(self.services, self.coordinator, index)
    }
}

pub struct GroupRuntime {
    services: Arc<Services>,
    coordinator: Mutex<GroupCoordinator>,
    /// The partitions of `__consumer_offsets` this broker leads, whose groups it has loaded and
    /// serves. Changed only with the coordinator's lock held.
    led: Mutex<Followed>,
    /// Records written and not replicated yet.
    unreplicated: Unreplicated,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("cannot create {OFFSETS_TOPIC}: {0}")]
    Topic(String),
    #[error("cannot append to {OFFSETS_TOPIC}: {0}")]
    Append(#[from] gregor_storage::StorageError),
    #[error("{OFFSETS_TOPIC} partition {0} does not exist or is not hosted here")]
    Missing(i32),
}

impl GroupRuntime {
    pub fn new(services: Arc<Services>) -> GroupRuntime {
        let get = |k: &str| services.config.get_i64(k);
        let config = GroupConfig {
            min_session_timeout_ms: get("group.min.session.timeout.ms") as i32,
            max_session_timeout_ms: get("group.max.session.timeout.ms") as i32,
            initial_rebalance_delay_ms: get("group.initial.rebalance.delay.ms") as i32,
            max_size: get("group.max.size") as i32,
            offsets_max_message_bytes: get("message.max.bytes").max(0) as usize,
            offsets_retention_ms: get("offsets.retention.minutes") * 60_000,
            consumer_session_timeout_ms: get("group.consumer.session.timeout.ms") as i32,
            consumer_heartbeat_interval_ms: get("group.consumer.heartbeat.interval.ms") as i32,
        };
        let mut coordinator = GroupCoordinator::new(config);
        coordinator.set_coordinated(|_| false);
        GroupRuntime {
            services,
            coordinator: Mutex::new(coordinator),
            led: Mutex::new(Followed::default()),
            unreplicated: Unreplicated::default(),
        }
    }

    /// Serves the groups of the `__consumer_offsets` partitions this broker leads in `image`:
    /// replays each partition it just became the leader of, and forgets the groups of those it
    /// no longer leads (their clients get NOT_COORDINATOR and find the new leader). At start it
    /// runs before the broker accepts connections, so no client sees a half-loaded group.
    /// Returns the records replayed.
    pub fn follow_leadership(&self, image: &MetadataImage) -> Result<usize, GroupError> {
        let mut coordinator = self.coordinator.lock();
        let mut current = self.led.lock();
        let Some(leadership) = current.change(
            image,
            &OFFSETS,
            self.services.node_id,
            &self.services.replicas,
        ) else {
            return Ok(0);
        };
        coordinator.set_group_overrides(group_overrides(image));
        let mut state = Loading {
            coordinator: &mut coordinator,
            services: &self.services,
        };
        let (lost, loaded) =
            current.follow(image.offset, leadership, &mut state, &self.unreplicated)?;
        if !lost.is_empty() {
            tracing::info!(partitions = ?lost, "no longer the group coordinator of these partitions (or again in a new leader epoch)");
        }
        Ok(loaded)
    }

    /// Follows leadership up to the newest image before a request is served: a client that
    /// found this broker as the coordinator through that image must be served, not told
    /// NOT_COORDINATOR while the metadata publishers are still running.
    pub fn catch_up(&self) {
        if let Err(e) = self.follow_leadership(&self.services.metadata.image()) {
            tracing::error!(error = %e, "cannot load a coordinator partition");
        }
    }

    /// After records of `partitions` could not be appended: drops their groups from memory and
    /// replays them from the log, as Kafka reloads a coordinator partition.
    fn reload(&self, coordinator: &mut GroupCoordinator, partitions: &BTreeSet<i32>) {
        let count = internal_topics::partition_count(&self.services, &OFFSETS);
        let dropped = coordinator.unload(|group| partitions.contains(&partition_for(group, count)));
        let led = self.led.lock().partitions.clone();
        for &index in partitions {
            match replay_partition(&self.services, coordinator, index) {
                Ok((records, log_end)) => {
                    let written = log_end.zip(led.get(&index));
                    let written = written.map(|(p, &epoch)| Written::log_end(p, epoch));
                    self.unreplicated.add(written.into_iter().collect());
                    tracing::warn!(
                        partition = index,
                        dropped,
                        records,
                        "reloaded groups from __consumer_offsets"
                    )
                }
                Err(e) => tracing::error!(partition = index, error = %e, "cannot reload groups"),
            }
        }
    }

    /// Creates `__consumer_offsets` on first use, as Kafka does.
    pub async fn ensure_topic(&self) -> Result<i32, GroupError> {
        internal_topics::ensure(&self.services, &OFFSETS)
            .await
            .map_err(GroupError::Topic)
    }

    /// Appends records, each to the partition its group lives on; in the transaction of
    /// `producer` (id, epoch) if given (TxnOffsetCommit): what was written, to be replicated
    /// before it is acknowledged. On failure, also the partitions the records were for (their
    /// groups must be reloaded).
    fn persist(
        &self,
        records: Vec<GroupRecord>,
        producer: Option<(i64, i16)>,
    ) -> Result<Vec<Written>, (GroupError, BTreeSet<i32>)> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // Created by `call` before the lock is taken: creating it here, under the coordinator's
        // lock, would re-enter the coordinator through the metadata change it causes.
        let partitions = internal_topics::partition_count(&self.services, &OFFSETS);
        let mut by_partition: BTreeMap<i32, Vec<Entry>> = BTreeMap::new();
        for record in &records {
            by_partition
                .entry(partition_for(record.group(), partitions))
                .or_default()
                .push((
                    Some(Bytes::from(record.key())),
                    record.value().map(Bytes::from),
                ));
        }
        let touched = || by_partition.keys().copied().collect::<BTreeSet<i32>>();
        let now = now_ms();
        let mut written = Vec::with_capacity(by_partition.len());
        for (index, entries) in &by_partition {
            let Some(partition) = self.services.replicas.get(OFFSETS_TOPIC, *index) else {
                return Err((GroupError::Missing(*index), touched()));
            };
            let batch = match producer {
                Some((id, epoch)) => encode_transactional_batch(entries, now, id, epoch),
                None => encode_batch(entries, now),
            };
            match partition.append(&batch, now) {
                Ok(appended) => written.push(Written {
                    partition,
                    leader_epoch: appended.leader_epoch,
                    end: appended.last_offset + 1,
                }),
                Err(e) => return Err((e.into(), touched())),
            }
        }
        Ok(written)
    }

    /// Runs a decision of the coordinator, appends its records, releases the responses that are
    /// ready, and waits for this request's own response (which may come from a later call).
    /// `None` if the response can never come (the records could not be appended).
    pub async fn call<R>(
        &self,
        decide: impl FnOnce(&mut GroupCoordinator, i64, Responder<R>) -> Vec<GroupRecord>,
    ) -> Option<R> {
        self.call_in(None, decide).await
    }

    /// [`GroupRuntime::call`] whose records are written in the transaction of `producer`.
    pub async fn call_in<R>(
        &self,
        producer: Option<(i64, i16)>,
        decide: impl FnOnce(&mut GroupCoordinator, i64, Responder<R>) -> Vec<GroupRecord>,
    ) -> Option<R> {
        if let Err(e) = self.ensure_topic().await {
            tracing::error!(error = %e, "cannot create the offsets topic");
            return None;
        }
        self.catch_up();
        let (reply, response) = oneshot::channel();
        {
            let mut coordinator = self.coordinator.lock();
            let records = decide(&mut coordinator, now_ms(), reply);
            self.settle_in(&mut coordinator, records, producer);
        }
        response.await.ok()
    }

    /// Reads state without deciding anything, answered once every record that state rests on
    /// is on every in-sync replica ([`once_replicated`]); `None` if they cannot be in time
    /// (the connection is closed and the client retries, as for a write).
    pub async fn read<T>(&self, f: impl FnOnce(&mut GroupCoordinator) -> T) -> Option<T> {
        self.catch_up();
        let (value, pending) = {
            let mut coordinator = self.coordinator.lock();
            (f(&mut coordinator), self.unreplicated.pending())
        };
        once_replicated(value, pending).await
    }

    fn settle(&self, coordinator: &mut GroupCoordinator, records: Vec<GroupRecord>) {
        self.settle_in(coordinator, records, None)
    }

    fn settle_in(
        &self,
        coordinator: &mut GroupCoordinator,
        records: Vec<GroupRecord>,
        producer: Option<(i64, i16)>,
    ) {
        let replies = coordinator.take_replies();
        match self.persist(records, producer) {
            Ok(written) => self.release_when_replicated(written, replies),
            // Dropping the replies closes those requests' connections; the clients retry, and
            // find the groups as the log has them.
            Err((e, partitions)) => {
                tracing::error!(error = %e, "group records not appended; dropping {} responses", replies.len());
                drop(replies);
                self.reload(coordinator, &partitions);
            }
        }
    }

    /// Sends `replies` once every record written so far is on every in-sync replica (at once
    /// when all are, as on a single node). If that cannot be (a leadership moved, or it took
    /// longer than [`COORDINATOR_WRITE_TIMEOUT`]), the replies are dropped, which closes those
    /// requests' connections: the clients retry, and find the groups as the new leader's log
    /// has them.
    fn release_when_replicated(
        &self,
        written: Vec<Written>,
        replies: Vec<Box<dyn FnOnce() + Send>>,
    ) {
        let pending = self.unreplicated.add(written);
        if pending.is_empty() {
            replies.into_iter().for_each(|reply| reply());
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + COORDINATOR_WRITE_TIMEOUT;
            if replicated(&pending, deadline).await {
                replies.into_iter().for_each(|reply| reply());
            }
        });
    }

    /// A transaction's marker is in `__consumer_offsets` (`written`, to be replicated): its
    /// offsets count, or are dropped. Only markers on partitions served here change state
    /// (another partition's is in its log when it is loaded).
    pub fn end_txn(&self, producer_id: i64, commit: bool, mut written: Vec<Written>) {
        let mut coordinator = self.coordinator.lock();
        coordinator.end_txn(producer_id, commit);
        let led = self.led.lock();
        written.retain(|w| led.partitions.get(&w.partition.index) == Some(&w.leader_epoch));
        self.unreplicated.add(written);
    }

    /// Gives consumer groups (KIP-848) new target assignments when topics changed, and takes
    /// changed group configs.
    pub fn on_metadata_change(&self, delta: &MetadataDelta, image: &MetadataImage) {
        if !delta.topics_changed() && !delta.group_configs_changed() {
            return;
        }
        if let Err(e) = self.follow_leadership(image) {
            tracing::error!(error = %e, "cannot load the groups of a __consumer_offsets partition");
        }
        let mut coordinator = self.coordinator.lock();
        coordinator.set_group_overrides(group_overrides(image));
        let records = coordinator.on_metadata_change(now_ms(), &Catalog(image));
        self.settle(&mut coordinator, records);
    }

    /// Session expiry, rebalance timeouts, delayed joins and offset expiry.
    pub fn tick(&self) {
        let mut coordinator = self.coordinator.lock();
        let records = coordinator.tick(now_ms());
        self.settle(&mut coordinator, records);
    }
}
