//! The partitions this broker hosts: each is a log plus the offsets and waiters that the request
//! handlers share. Which partitions exist is decided by the metadata image alone; `apply_delta`
//! opens, reconfigures and deletes logs to match it.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor_metadata::configs::throttles;
use gregor_metadata::{
    ConfigLayers, ConfigResource, IsrProposal, MetadataDelta, MetadataImage, PartitionImage,
    TopicImage,
};
use gregor_protocol::kafka::ResponseError;
use gregor_storage::{
    atomic_file, batch, AbortedTxn, AppendResult, FileSlice, PartitionLog, Result as StorageResult,
    StorageError,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::log_dir_moves::{self, FutureReplica, LogDirMoves};
use crate::replication::hw_checkpoint::{self, HighWatermarks};
use crate::replication::leader::LeaderState;
use crate::replication::read_replica::{self, ReadCandidate, ReplicaSelector};
use crate::replication::throttle::Throttles;
use crate::services::now_ms;

/// The file in a partition directory naming the topic id it belongs to, so a directory left by a
/// deleted topic is never mistaken for a new topic of the same name.
const PARTITION_METADATA: &str = "partition.metadata";

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    log: RwLock<PartitionLog>,
    leader_epoch: AtomicI32,
    /// Whether this broker is the partition's leader: only then does it serve clients (a
    /// fenced broker's partitions have no leader until it is back).
    leads: AtomicBool,
    /// Below it every record is on every in-sync replica: what consumers may read and
    /// `acks=all` waits for. A leader moves it forward from its followers' fetches; a follower
    /// takes its leader's (never past its own log end).
    high_watermark: AtomicI64,
    /// The partition as the metadata last stated it, and what its leader knows of followers.
    /// Locked after the log when both are.
    state: Mutex<ReplicaState>,
    /// The topic's `min.insync.replicas`: below it `acks=all` is refused and, as in Kafka 4
    /// (KIP-966), the high watermark stays where it is.
    min_insync_replicas: AtomicI64,
    /// What the leader needs of the cluster to judge its followers.
    cluster: Arc<ClusterView>,
    /// Delayed operations (fetches, acks=all produces) waiting for this partition to change.
    waiters: Mutex<Vec<Arc<Notify>>>,
    /// When a failed write (a full disk) was last logged: one line per interval, not per batch.
    write_failure_logged: Mutex<Option<Instant>>,
    /// Whether the topic's `leader.replication.throttled.replicas` and
    /// `follower.replication.throttled.replicas` name this broker's replica (`replication::throttle`).
    leader_throttled: AtomicBool,
    follower_throttled: AtomicBool,
    /// KIP-890 verification guards by producer id: taken before a transactional batch that
    /// would open a transaction here is verified with the coordinator, dropped by the
    /// producer's next marker. A batch is appended only if its guard survived, so a
    /// transaction that ended while its batch was being verified is not reopened.
    verification_guards: Mutex<HashMap<i64, u64>>,
}

/// What every partition's leader reads of the cluster: which brokers may be in an ISR
/// (registered and unfenced, KIP-841), `replica.lag.time.max.ms`, and the clock the lag is
/// measured by.
pub struct ClusterView {
    eligible: RwLock<HashSet<i32>>,
    max_lag_ms: i64,
    clock: Clock,
}

/// Milliseconds since the epoch: the wall clock ([`now_ms`]), or a simulation's.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl ClusterView {
    fn is_eligible(&self, broker: i32) -> bool {
        self.eligible.read().contains(&broker)
    }

    fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

struct ReplicaState {
    meta: PartitionImage,
    /// While this broker leads the partition.
    leader: Option<LeaderState>,
}

/// What a leader makes of a follower's fetch.
pub enum FollowerFetch {
    /// Served from the fetch offset; the follower's progress may let it join the ISR.
    Accepted(Option<IsrProposal>),
    /// Its log and the leader's differ from the epoch and offset given (KIP-320's
    /// DivergingEpoch): it truncates before it fetches again.
    Diverging(i32, i64),
    /// Its fetch offset is below this log's start, or its last epoch older than any here:
    /// OFFSET_OUT_OF_RANGE, with this log's start and high watermark to start again from.
    OutOfRange,
    /// Refused with this error code.
    Refused(i16),
}

/// Makes verification guards unique across partitions and producers.
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// How often a partition logs that its writes fail.
const WRITE_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The leader epoch of a partition whose topic was deleted: no fetch or produce matches it.
const RETIRED_EPOCH: i32 = i32::MIN;

impl Partition {
    pub fn append(&self, records: &[u8], now_ms: i64) -> StorageResult<AppendResult> {
        self.append_if(records, now_ms, |_| true)
            .expect("an unconditional append happens")
    }

    /// Appends a transactional batch only if its producer's transaction is already open in this
    /// partition, checked under the same lock as the append, so that no marker can end the
    /// transaction in between (the batch would open a new one that no marker ends). `None`
    /// when it is not open: the transaction coordinator must admit the batch first.
    pub fn append_to_open_transaction(
        &self,
        producer_id: i64,
        records: &[u8],
        now_ms: i64,
    ) -> Option<StorageResult<AppendResult>> {
        self.append_if(records, now_ms, |log| log.has_open_transaction(producer_id))
    }

    /// The producer's verification guard: the one already taken (a batch of the same
    /// transaction is being verified), else a new one.
    pub fn verification_guard(&self, producer_id: i64) -> u64 {
        *self
            .verification_guards
            .lock()
            .entry(producer_id)
            .or_insert_with(|| NEXT_GUARD.fetch_add(1, Ordering::Relaxed))
    }

    /// Appends a transactional batch whose partition the coordinator verified (or added) under
    /// `guard`, unless a marker of the producer came in between (the transaction ended): then
    /// `None`. A batch of a transaction already open here goes in as well.
    pub fn append_verified(
        &self,
        producer_id: i64,
        guard: u64,
        records: &[u8],
        now_ms: i64,
    ) -> Option<StorageResult<AppendResult>> {
        let result = self.append_if(records, now_ms, |log| {
            log.has_open_transaction(producer_id)
                || self.verification_guards.lock().get(&producer_id) == Some(&guard)
        });
        if matches!(result, Some(Ok(_))) {
            // The transaction is open in the log now, which admits its next batches.
            let mut guards = self.verification_guards.lock();
            if guards.get(&producer_id) == Some(&guard) {
                guards.remove(&producer_id);
            }
        }
        result
    }

    fn append_if(
        &self,
        records: &[u8],
        now_ms: i64,
        condition: impl FnOnce(&PartitionLog) -> bool,
    ) -> Option<StorageResult<AppendResult>> {
        // Checked under the shared lock: reading every record (decompressing, re-encoding)
        // runs beside fetches and other producers; only the append itself is exclusive.
        let prepared = self.log.read().prepare(records, now_ms);
        let result = match prepared {
            Err(e) => Err(e),
            Ok(prepared) => {
                let mut log = self.log.write();
                // Checked under the lock that a change of leadership takes too: a replica that
                // just became a follower must not write into its leader's epoch.
                if !self.leads.load(Ordering::Acquire) {
                    return Some(Err(StorageError::NotLeader));
                }
                if !condition(&log) {
                    return None;
                }
                let result = log.append_prepared(prepared, self.leader_epoch(), now_ms);
                self.advance_high_watermark(log.log_end_offset());
                result
            }
        };
        match &result {
            Ok(appended) if !appended.duplicate => self.wake_waiters(),
            Err(StorageError::Io(e)) => self.log_write_failure(e),
            _ => {}
        }
        Some(result)
    }

    /// Writes a transaction marker of the producer, which ends its transaction here.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> StorageResult<AppendResult> {
        let result = {
            let mut log = self.log.write();
            if !self.leads.load(Ordering::Acquire) {
                return Err(StorageError::NotLeader);
            }
            self.verification_guards.lock().remove(&producer_id);
            let result = log.append_marker(
                producer_id,
                producer_epoch,
                commit,
                self.leader_epoch(),
                now_ms,
            )?;
            self.advance_high_watermark(log.log_end_offset());
            result
        };
        self.wake_waiters();
        Ok(result)
    }

    /// Moves a leader's high watermark as far as its ISR allows, with its log ending at
    /// `log_end`; waiting fetches and `acks=all` produces are woken when it moves.
    fn advance_high_watermark(&self, log_end: i64) {
        let state = self.state.lock();
        let Some(leader) = &state.leader else {
            return;
        };
        if self.under_min_isr(&state) {
            return;
        }
        let eligible = |r: i32| self.cluster.is_eligible(r);
        let now = self.cluster.now_ms();
        let allowed = leader.high_watermark(log_end, now, self.cluster.max_lag_ms, &eligible);
        if allowed > self.high_watermark() {
            self.high_watermark.store(allowed, Ordering::Release);
            drop(state);
            self.wake_waiters();
        }
    }

    /// The metadata's new state of the partition, on broker `node_id`: it leads, follows or
    /// neither. A new leadership starts from the log's end with its followers unknown; taken
    /// under the log's lock, so no append straddles the change.
    fn take_state(&self, meta: &PartitionImage, node_id: i32, now_ms: i64) {
        let log = self.log.write();
        let log_end = log.log_end_offset();
        let mut state = self.state.lock();
        let leads = meta.leader == node_id;
        let same_leadership = state.leader.is_some() && meta.leader_epoch == self.leader_epoch();
        match (&mut state.leader, leads) {
            (Some(leader), true) if same_leadership => leader.update(meta, now_ms),
            (_, true) => state.leader = Some(LeaderState::new(node_id, meta, log_end, now_ms)),
            (_, false) => state.leader = None,
        }
        state.meta = meta.clone();
        self.leader_epoch
            .store(meta.leader_epoch, Ordering::Release);
        self.leads.store(leads, Ordering::Release);
        if !leads {
            // A follower's high watermark never passes its own log.
            self.high_watermark.fetch_min(log_end, Ordering::AcqRel);
        }
        drop(state);
        drop(log);
        if leads {
            self.advance_high_watermark(log_end);
        }
        // Parked fetches and acks=all produces look again: the leadership or ISR changed.
        self.wake_waiters();
    }

    /// Reads whether the topic's throttled-replicas configs name this broker's replica.
    fn take_throttles(&self, config: &BrokerConfig, layers: ConfigLayers, node_id: i32) {
        let names = |config_name: &str| {
            let value = config.topic_value(config_name, layers);
            throttles(&value, self.index, node_id)
        };
        let leader = names("leader.replication.throttled.replicas");
        let follower = names("follower.replication.throttled.replicas");
        self.leader_throttled.store(leader, Ordering::Release);
        self.follower_throttled.store(follower, Ordering::Release);
    }

    /// Whether the topic names this broker's replica in `leader.replication.throttled.replicas`:
    /// what it sends followers counts against its leader throttle.
    pub fn leader_throttled(&self) -> bool {
        self.leader_throttled.load(Ordering::Acquire)
    }

    /// Whether the topic names this broker's replica in
    /// `follower.replication.throttled.replicas`: what it fetches counts against its follower
    /// throttle.
    pub fn follower_throttled(&self) -> bool {
        self.follower_throttled.load(Ordering::Acquire)
    }

    /// Whether the leader throttle may hold back what this leader sends `replica`: the
    /// partition is throttled and `replica` is not in the ISR (one in sync never waits).
    pub fn leader_throttles(&self, replica: i32) -> bool {
        self.leader_throttled() && !self.state.lock().meta.isr.contains(&replica)
    }

    /// Whether the follower throttle may hold back this broker's fetches of the partition:
    /// it is throttled and this broker is not in the ISR.
    pub fn follower_throttles(&self, node_id: i32) -> bool {
        self.follower_throttled() && !self.state.lock().meta.isr.contains(&node_id)
    }

    /// The partition left this broker (its topic deleted, or moved off): nothing fetched for
    /// it is written any more.
    fn retire(&self) {
        let _log = self.log.write();
        self.state.lock().leader = None;
        self.leads.store(false, Ordering::Release);
        self.leader_epoch.store(RETIRED_EPOCH, Ordering::Release);
        drop(_log);
        self.wake_waiters();
    }

    /// Whether this broker leads the partition in `leader_epoch`.
    pub fn leads_in(&self, leader_epoch: i32) -> bool {
        self.leads.load(Ordering::Acquire) && self.leader_epoch() == leader_epoch
    }

    /// Whether the ISR is smaller than `min.insync.replicas`, or than the replicas when there
    /// are fewer (Kafka's effective minimum: an RF=1 topic is never under it).
    pub fn is_under_min_isr(&self) -> bool {
        self.under_min_isr(&self.state.lock())
    }

    fn under_min_isr(&self, state: &ReplicaState) -> bool {
        let replicas = state.meta.replicas.len() as i64;
        let min = self
            .min_insync_replicas
            .load(Ordering::Acquire)
            .min(replicas);
        (state.meta.isr.len() as i64) < min
    }

    /// Leader side of a fetch from follower `replica` in `leader_epoch` (the one it knows;
    /// -1: not given) at `fetch_offset`, whose log starts at `log_start` and whose last batch
    /// is of `last_fetched_epoch` (-1: unknown). Checked, under the locks a leadership change takes, against this
    /// leadership and this log's range and epochs (Kafka's `validateLastFetchedEpoch`); if
    /// they agree, recorded as the follower's progress, which may move the high watermark and
    /// let the follower join the ISR.
    pub fn follower_fetch(
        &self,
        replica: i32,
        leader_epoch: i32,
        fetch_offset: i64,
        log_start: i64,
        last_fetched_epoch: i32,
        now_ms: i64,
    ) -> FollowerFetch {
        let log = self.log.read();
        let mut state = self.state.lock();
        let current = self.leader_epoch();
        let Some(leader) = state.leader.as_mut() else {
            return FollowerFetch::Refused(ResponseError::NotLeaderOrFollower.code());
        };
        if leader_epoch != -1 && leader_epoch != current {
            let stale = leader_epoch < current;
            return FollowerFetch::Refused(if stale {
                ResponseError::FencedLeaderEpoch.code()
            } else {
                ResponseError::UnknownLeaderEpoch.code()
            });
        }
        if !leader.is_follower(replica) {
            return FollowerFetch::Refused(ResponseError::NotLeaderOrFollower.code());
        }
        let log_end = log.log_end_offset();
        // In Kafka's order: a follower past this log's end with epochs is diverging (it
        // truncates by epochs), not out of range (which would cut it to the high watermark).
        if fetch_offset < log.log_start_offset() {
            return FollowerFetch::OutOfRange;
        }
        if last_fetched_epoch >= 0 {
            let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch, current);
            if epoch < 0 || end < 0 {
                return FollowerFetch::OutOfRange;
            }
            if epoch < last_fetched_epoch || end < fetch_offset {
                return FollowerFetch::Diverging(epoch, end);
            }
        } else if fetch_offset > log_end {
            return FollowerFetch::OutOfRange;
        }
        leader.follower_fetched(replica, fetch_offset, log_end, now_ms);
        leader.follower_log_start(replica, log_start);
        let eligible = |r: i32| self.cluster.is_eligible(r);
        let max_lag = self.cluster.max_lag_ms;
        let allowed = leader.high_watermark(log_end, now_ms, max_lag, &eligible);
        let high_watermark = self.high_watermark().max(allowed);
        let proposal = leader
            .expansion(replica, high_watermark, eligible(replica))
            .map(|new_isr| {
                leader.proposed(new_isr.clone());
                IsrProposal {
                    topic_id: self.topic_id,
                    partition: self.index,
                    leader_epoch: current,
                    partition_epoch: leader.partition_epoch(),
                    new_isr,
                }
            });
        drop(state);
        drop(log);
        self.advance_high_watermark(log_end);
        FollowerFetch::Accepted(proposal)
    }

    /// KIP-392: the follower a consumer in `client_rack` fetching from `fetch_offset` should
    /// read from, if this broker leads the partition and `selector` prefers one to itself.
    /// `rack_of` gives a broker's rack, `None` for one that is fenced or unknown.
    pub fn preferred_read_replica(
        &self,
        selector: ReplicaSelector,
        client_rack: &str,
        fetch_offset: i64,
        rack_of: &dyn Fn(i32) -> Option<Option<String>>,
    ) -> Option<i32> {
        let log_end = self.log.read().log_end_offset();
        let state = self.state.lock();
        let leader = state.leader.as_ref()?;
        let now = self.cluster.now_ms();
        let followers = leader.read_candidates(fetch_offset, now, rack_of);
        let this = ReadCandidate {
            id: leader.node_id(),
            rack: rack_of(leader.node_id()).flatten(),
            log_end_offset: log_end,
            since_caught_up_ms: 0,
        };
        read_replica::select(selector, client_rack, &this, &followers)
    }

    /// The ISR without the followers that have not caught up for `max_lag_ms`, to propose,
    /// if this broker leads and some have not.
    pub fn shrink_proposal(&self, now_ms: i64, max_lag_ms: i64) -> Option<IsrProposal> {
        let log_end = self.log.read().log_end_offset();
        let mut state = self.state.lock();
        let leader = state.leader.as_mut()?;
        let new_isr = leader.shrink(log_end, now_ms, max_lag_ms)?;
        leader.proposed(new_isr.clone());
        Some(IsrProposal {
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: self.leader_epoch(),
            partition_epoch: leader.partition_epoch(),
            new_isr,
        })
    }

    /// The controller did not take `proposal`: the next fetch or check proposes again.
    pub fn proposal_failed(&self, proposal: &IsrProposal) {
        if let Some(leader) = self.state.lock().leader.as_mut() {
            leader.proposal_failed(proposal.partition_epoch);
        }
    }

    /// What a follower is sent: batches from `offset` up to the log's end (it copies what is
    /// not committed yet too), with the high watermark and log start.
    pub fn read_for_follower(&self, offset: i64, max_bytes: usize) -> FetchRead {
        let log = self.log.read();
        let records = if max_bytes == 0 {
            Ok(None)
        } else {
            log.read_slice(offset, max_bytes, log.log_end_offset())
        };
        FetchRead {
            records,
            high_watermark: self.high_watermark(),
            last_stable: last_stable(&log, self.high_watermark()),
            log_start: log.log_start_offset(),
            aborted: Vec::new(),
        }
    }

    /// Whether this replica still follows in `leader_epoch`: what its fetcher asked for is
    /// then still wanted.
    fn follows_in(&self, leader_epoch: i32) -> bool {
        !self.leads.load(Ordering::Acquire) && self.leader_epoch() == leader_epoch
    }

    /// Follower side: appends batches fetched from the leader of `leader_epoch` as they are
    /// and takes its high watermark (up to this log's end) and log start. Nothing happens if
    /// the partition changed leadership since the fetch was sent.
    pub fn append_from_leader(
        &self,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> StorageResult<()> {
        let mut log = self.log.write();
        if !self.follows_in(leader_epoch) {
            return Ok(());
        }
        if let Some(first) = batch::first_offset(records) {
            // A log started again at its leader's log start, which DeleteRecords may have put
            // inside a batch: it starts at that batch instead (Kafka does the same).
            let empty = log.log_end_offset() == log.log_start_offset();
            if empty && first < log.log_end_offset() {
                log.restart_at(first)?;
            }
            log.append_as_follower(records, now_ms)?;
        }
        // Records the leader deleted (retention, DeleteRecords) go here too.
        let start = leader_log_start.min(log.log_end_offset());
        if start > log.log_start_offset() {
            log.delete_records_before(start)?;
        }
        let end = log.log_end_offset();
        self.high_watermark
            .store(leader_high_watermark.min(end), Ordering::Release);
        drop(log);
        self.wake_waiters();
        Ok(())
    }

    /// Retention on this replica's log, never past its high watermark.
    pub fn enforce_retention(&self, now_ms: i64) -> StorageResult<()> {
        let mut log = self.log.write();
        // Read under the lock: a follower's truncation moves it.
        let high_watermark = self.high_watermark();
        log.enforce_retention(now_ms, high_watermark).map(drop)
    }

    /// Follower side: the leader of `leader_epoch` says the logs differ after `(epoch,
    /// end_offset)` (KIP-101/279). The log is cut where both agree: at the end of the last
    /// epoch both have, or, when the leader knows no epoch as old (-1), at the high watermark,
    /// which the leader has. Truncating by epochs, never by the high watermark alone, is what
    /// keeps two quick leader changes from forking the log.
    pub fn truncate_to_leader(
        &self,
        leader_epoch: i32,
        epoch: i32,
        end_offset: i64,
    ) -> StorageResult<()> {
        let mut log = self.log.write();
        if !self.follows_in(leader_epoch) {
            return Ok(());
        }
        let target = if epoch < 0 || end_offset < 0 {
            self.high_watermark()
        } else {
            match log.epoch_end(epoch) {
                (own, own_end) if own >= 0 => end_offset.min(own_end),
                _ => self.high_watermark(),
            }
        };
        self.truncate_follower(&mut log, target)
    }

    /// Follower side: the leader refused the fetch offset as out of its range. Below the
    /// leader's log start, the log starts again there (the records were deleted on the
    /// leader); past the leader's high watermark it is cut there, and the next fetch finds any
    /// divergence above. Otherwise the leader knows no epoch as old as this log's last: the
    /// log starts again at the leader's start, which always ends the exchange.
    pub fn reset_out_of_range(
        &self,
        leader_epoch: i32,
        leader_log_start: i64,
        leader_high_watermark: i64,
    ) -> StorageResult<()> {
        let mut log = self.log.write();
        if !self.follows_in(leader_epoch) {
            return Ok(());
        }
        let end = log.log_end_offset();
        if end > leader_high_watermark && leader_high_watermark >= leader_log_start {
            return self.truncate_follower(&mut log, leader_high_watermark);
        }
        tracing::info!(topic = %self.topic, partition = self.index, from = end, to = leader_log_start, "follower log starts again at its leader's log start");
        log.restart_at(leader_log_start)?;
        self.high_watermark
            .store(leader_log_start, Ordering::Release);
        Ok(())
    }

    fn truncate_follower(&self, log: &mut PartitionLog, target: i64) -> StorageResult<()> {
        let end = log.log_end_offset();
        if target >= end {
            return Ok(());
        }
        if target < self.high_watermark() {
            tracing::warn!(topic = %self.topic, partition = self.index, high_watermark = self.high_watermark(), to = target, "follower truncates below its high watermark");
        } else {
            tracing::info!(topic = %self.topic, partition = self.index, from = end, to = target, "follower truncates to where its leader's log agrees");
        }
        log.truncate_to(target)?;
        self.high_watermark
            .fetch_min(log.log_end_offset(), Ordering::AcqRel);
        Ok(())
    }

    /// What a fetch sees, under one lock: batches from `offset` (up to `max_bytes`, none for 0)
    /// below the high watermark, or with `read_committed` below the last stable offset, with the
    /// aborted transactions that have records in them.
    pub fn read(&self, offset: i64, max_bytes: usize, read_committed: bool) -> FetchRead {
        let log = self.log.read();
        let high_watermark = self.high_watermark();
        let last_stable = last_stable(&log, high_watermark);
        let bound = if read_committed {
            last_stable
        } else {
            high_watermark
        };
        let records = if max_bytes == 0 {
            Ok(None)
        } else {
            log.read_slice(offset, max_bytes, bound)
        };
        let aborted = match &records {
            // Only those with records in the data returned, as Kafka.
            Ok(Some(slice)) if read_committed => log.aborted_transactions(offset, slice.end_offset),
            _ => Vec::new(),
        };
        FetchRead {
            records,
            high_watermark,
            last_stable,
            log_start: log.log_start_offset(),
            aborted,
        }
    }

    /// The last stable offset: below it every transaction has ended.
    pub fn last_stable_offset(&self) -> i64 {
        last_stable(&self.log.read(), self.high_watermark())
    }

    fn log_write_failure(&self, error: &std::io::Error) {
        let mut logged = self.write_failure_logged.lock();
        if logged.is_none_or(|t| t.elapsed() >= WRITE_FAILURE_LOG_INTERVAL) {
            *logged = Some(Instant::now());
            tracing::error!(topic = %self.topic, partition = self.index, dir = %self.log_dir().display(), %error, "cannot write to the partition's log; producers get KAFKA_STORAGE_ERROR");
        }
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&PartitionLog) -> T) -> T {
        f(&self.log.read())
    }

    pub fn with_log_mut<T>(&self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        f(&mut self.log.write())
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.read().log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.read().log_end_offset()
    }

    /// The one of `log.dirs` that holds the partition's directory.
    pub fn log_dir(&self) -> PathBuf {
        self.with_log(|log| {
            log.dir()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
    }

    /// The bytes of the partition's segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.read().size_bytes()
    }

    /// How far this replica's log end is behind the high watermark (0 for a leader).
    pub fn offset_lag(&self) -> i64 {
        (self.high_watermark() - self.log.read().log_end_offset()).max(0)
    }

    /// Registers a delayed operation to be woken by the next change. Register before checking the
    /// condition: a wake-up between the check and the wait is then kept as a permit.
    pub fn watch(&self, waiter: &Arc<Notify>) {
        self.waiters.lock().push(waiter.clone());
    }

    #[cfg(test)]
    pub fn waiter_count(&self) -> usize {
        self.waiters.lock().len()
    }

    pub fn unwatch(&self, waiter: &Arc<Notify>) {
        self.waiters.lock().retain(|w| !Arc::ptr_eq(w, waiter));
    }

    fn wake_waiters(&self) {
        for waiter in self.waiters.lock().drain(..) {
            waiter.notify_one();
        }
    }
}

/// One partition's part of a fetch; see [`Partition::read`].
pub struct FetchRead {
    /// Where the batches to send lie (`None`: nothing to send).
    pub records: StorageResult<Option<FileSlice>>,
    pub high_watermark: i64,
    pub last_stable: i64,
    pub log_start: i64,
    pub aborted: Vec<AbortedTxn>,
}

fn last_stable(log: &PartitionLog, high_watermark: i64) -> i64 {
    log.first_unstable_offset()
        .map_or(high_watermark, |first| first.min(high_watermark))
}

/// One of `log.dirs`. A directory that cannot be used at start-up is offline: its partitions are
/// unavailable (KAFKA_STORAGE_ERROR) while every other directory keeps serving.
struct LogDir {
    path: PathBuf,
    online: bool,
}

/// One of `log.dirs` as DescribeLogDirs reports it.
pub struct LogDirReport {
    pub path: PathBuf,
    pub online: bool,
    pub partitions: Vec<Arc<Partition>>,
    /// Partitions being copied into this directory (AlterReplicaLogDirs).
    pub futures: Vec<Arc<FutureReplica>>,
    /// The file system's size and the bytes still free to gregor (-1 if unknown).
    pub total_bytes: i64,
    pub usable_bytes: i64,
}

pub struct ReplicaManager {
    log_dirs: Vec<LogDir>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Partitions that cannot be served: their directory is offline or their log did not open.
    offline: RwLock<HashSet<(String, i32)>>,
    /// Partitions of the cluster that other brokers host: asked here, they answer
    /// NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata), not UNKNOWN_TOPIC_OR_PARTITION.
    elsewhere: RwLock<HashSet<(String, i32)>>,
    /// The high watermarks checkpointed in each log dir, read at start.
    high_watermarks: HighWatermarks,
    /// One writer of the high watermark checkpoints at a time (the timer's and shutdown's).
    checkpointing: Mutex<()>,
    /// What the partitions' leaders read of the cluster.
    cluster: Arc<ClusterView>,
    /// Set once the first delta (the whole image) is applied: partitions that appear later are new and may be placed on
    /// any online directory, while at start-up a missing partition may sit on an offline one.
    started: AtomicBool,
    /// Partitions moving to another log dir.
    pub(crate) moves: LogDirMoves,
    /// The replication throttles' rates and what they measured.
    pub throttles: Throttles,
}

/// The effective `min.insync.replicas` of a topic with config `layers`.
fn min_insync_replicas(config: &BrokerConfig, layers: ConfigLayers) -> i64 {
    let value = config.topic_value("min.insync.replicas", layers);
    value.trim().parse().unwrap_or(1)
}

/// `<topic>-<index>`, the name of a partition directory (the metadata log's own excepted).
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    if name.starts_with("__cluster_metadata") {
        return None;
    }
    let (topic, index) = name.rsplit_once('-')?;
    let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    (!topic.is_empty() && digits)
        .then(|| index.parse().ok())
        .flatten()
        .map(|index| (topic, index))
}

/// The suffix of a partition directory set aside at start-up (Kafka's name for it).
const STRAY_SUFFIX: &str = "-stray";

/// Whether a directory named like a partition holds one: its identity file or a segment. Other
/// directories (a user's `backup-1/`) are not gregor's and are left alone.
fn holds_partition_log(dir: &Path) -> bool {
    dir.join(PARTITION_METADATA).exists()
        || std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
}

fn identity(topic_id: Uuid) -> String {
    format!("version: 0\ntopic_id: {topic_id}\n")
}

/// Partition directories whose topic ids the metadata log never recorded: it ends before what the
/// disk proves.
#[derive(Debug)]
pub struct UnknownPartitions(pub Vec<(PathBuf, Uuid)>);

impl std::fmt::Display for UnknownPartitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs: Vec<String> = self
            .0
            .iter()
            .map(|(dir, id)| format!("{} (topic id {id})", dir.display()))
            .collect();
        write!(
            f,
            "the metadata log does not know the topics of {} partition director{}: {}. The \
             metadata log (__cluster_metadata-0) is behind the data (lost or restored from an \
             older copy); starting would reissue producer ids and ignore this data. Restore the \
             metadata log, or move these directories out of the log dirs and start again \
             (README, \"Data safety\")",
            dirs.len(),
            if dirs.len() == 1 { "y" } else { "ies" },
            dirs.join(", ")
        )
    }
}

impl std::error::Error for UnknownPartitions {}

/// Renames a partition directory that cannot be matched out of the way, and says so loudly.
fn set_aside(dir: &Path, reason: &str) -> std::io::Result<()> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let aside = dir.with_file_name(format!("{name}.{}{STRAY_SUFFIX}", Uuid::new_v4().simple()));
    std::fs::rename(dir, &aside)?;
    if let Some(parent) = dir.parent() {
        atomic_file::sync_dir(parent);
    }
    tracing::error!(
        dir = %dir.display(),
        set_aside_as = %aside.display(),
        bytes = dir_bytes(&aside),
        "partition directory set aside, not deleted: {reason}; remove it once it is known to be unneeded"
    );
    Ok(())
}

/// The bytes a directory's files take, for the log line that reports it set aside.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn read_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

impl ReplicaManager {
    /// Checks every log dir; those that cannot be created or listed are offline. The first
    /// directory holds the metadata log and must be usable (the caller checks it).
    pub fn new(config: &BrokerConfig) -> ReplicaManager {
        ReplicaManager::with_clock(config, Arc::new(now_ms))
    }

    /// [`ReplicaManager::new`] whose partitions measure time by `clock`.
    pub fn with_clock(config: &BrokerConfig, clock: Clock) -> ReplicaManager {
        let log_dirs: Vec<LogDir> = config
            .log_dirs
            .iter()
            .map(|path| {
                let usable = std::fs::create_dir_all(path).and_then(|()| std::fs::read_dir(path).map(drop));
                if let Err(e) = &usable {
                    tracing::error!(dir = %path.display(), error = %e, "log dir is offline; its partitions are unavailable");
                }
                LogDir {
                    path: path.clone(),
                    online: usable.is_ok(),
                }
            })
            .collect();
        let online: Vec<PathBuf> = log_dirs
            .iter()
            .filter(|d| d.online)
            .map(|d| d.path.clone())
            .collect();
        if let Err(e) = log_dir_moves::resolve_interrupted(&online) {
            tracing::error!(error = %e, "cannot resolve an interrupted log dir move");
        }
        ReplicaManager {
            log_dirs,
            partitions: RwLock::new(HashMap::new()),
            offline: RwLock::new(HashSet::new()),
            elsewhere: RwLock::new(HashSet::new()),
            high_watermarks: HighWatermarks::read(&online),
            checkpointing: Mutex::new(()),
            cluster: Arc::new(ClusterView {
                eligible: RwLock::new(HashSet::new()),
                max_lag_ms: config.get_i64("replica.lag.time.max.ms"),
                clock,
            }),
            started: AtomicBool::new(false),
            moves: LogDirMoves::default(),
            throttles: Throttles::default(),
        }
    }

    /// The partition, if this broker leads it: what clients may read and write. Else the error
    /// a client gets: NOT_LEADER_OR_FOLLOWER (hosted elsewhere, or here without the lead),
    /// KAFKA_STORAGE_ERROR (offline) or UNKNOWN_TOPIC_OR_PARTITION.
    pub fn lookup(&self, topic: &str, index: i32) -> Result<Arc<Partition>, i16> {
        let key = (topic.to_string(), index);
        match self.get(topic, index) {
            Some(partition) if partition.leads.load(Ordering::Acquire) => Ok(partition),
            Some(_) => Err(ResponseError::NotLeaderOrFollower.code()),
            None if self.offline.read().contains(&key) => {
                Err(ResponseError::KafkaStorageError.code())
            }
            None if self.elsewhere.read().contains(&key) => {
                Err(ResponseError::NotLeaderOrFollower.code())
            }
            None => Err(ResponseError::UnknownTopicOrPartition.code()),
        }
    }

    /// [`ReplicaManager::lookup`], first checked (as Kafka's `getLocalLog`) against the leader
    /// epoch the client knows of a partition hosted here (KIP-320; -1: none):
    /// FENCED_LEADER_EPOCH when it is older than the partition's (the client refreshes its
    /// metadata), UNKNOWN_LEADER_EPOCH when newer (this broker has not applied that metadata
    /// yet; the client retries).
    pub fn lookup_in_epoch(
        &self,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, i16> {
        self.check_epoch(topic, index, current_leader_epoch)?;
        self.lookup(topic, index)
    }

    /// [`ReplicaManager::lookup_in_epoch`] that also gives a partition this broker follows:
    /// what a consumer may read from since KIP-392 (Fetch v11+), up to this replica's high
    /// watermark. One being retired here (moved away) is NOT_LEADER_OR_FOLLOWER.
    pub fn lookup_replica_in_epoch(
        &self,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, i16> {
        self.check_epoch(topic, index, current_leader_epoch)?;
        match self.get(topic, index) {
            Some(hosted) if hosted.leader_epoch() != RETIRED_EPOCH => Ok(hosted),
            _ => self.lookup(topic, index),
        }
    }

    /// The KIP-320 check of [`ReplicaManager::lookup_in_epoch`].
    fn check_epoch(&self, topic: &str, index: i32, current_leader_epoch: i32) -> Result<(), i16> {
        if let (Some(hosted), true) = (self.get(topic, index), current_leader_epoch != -1) {
            let epoch = hosted.leader_epoch();
            if current_leader_epoch < epoch {
                return Err(ResponseError::FencedLeaderEpoch.code());
            }
            if current_leader_epoch > epoch {
                return Err(ResponseError::UnknownLeaderEpoch.code());
            }
        }
        Ok(())
    }

    pub fn is_offline(&self, topic: &str, index: i32) -> bool {
        self.offline.read().contains(&(topic.to_string(), index))
    }

    /// Where a partition's directory is: the online log dir that already has it, else (for a
    /// partition new since start-up, or when no dir is offline) the online dir hosting the fewest
    /// partitions, as Kafka places them. `None`: it may be on an offline dir.
    fn place(
        &self,
        partitions: &HashMap<(String, i32), Arc<Partition>>,
        topic: &str,
        index: i32,
    ) -> Option<PathBuf> {
        let name = format!("{topic}-{index}");
        let online = || self.log_dirs.iter().filter(|d| d.online);
        if let Some(existing) = online().map(|d| d.path.join(&name)).find(|p| p.is_dir()) {
            return Some(existing);
        }
        let some_offline = self.log_dirs.iter().any(|d| !d.online);
        if some_offline && !self.started.load(Ordering::Acquire) {
            return None;
        }
        // Counting is a pass over every hosted partition: not for the common single dir, or
        // creating n partitions would cost O(n²) (most of a 10,000-partition creation's CPU).
        if online().count() == 1 {
            return online().next().map(|d| d.path.join(name));
        }
        online()
            .min_by_key(|d| {
                partitions
                    .values()
                    .filter(|p| p.log_dir() == d.path)
                    .count()
            })
            .map(|d| d.path.join(name))
    }

    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Starts moving a hosted partition into `dest`, one of `log.dirs` (AlterReplicaLogDirs); the
    /// error code if it cannot. A partition already there, or already moving there, is fine.
    pub fn alter_log_dir(&self, topic: &str, index: i32, dest: &Path) -> Result<(), i16> {
        let dir = self
            .log_dirs
            .iter()
            .find(|d| d.path == dest)
            .ok_or(ResponseError::LogDirNotFound.code())?;
        if !dir.online {
            return Err(ResponseError::KafkaStorageError.code());
        }
        let partition = self.lookup(topic, index)?;
        if partition.log_dir() == dest {
            return Ok(());
        }
        self.moves.start(partition, dest.to_path_buf())
    }

    /// Every log dir with the partitions it holds and its file system's space.
    pub fn log_dir_reports(&self) -> Vec<LogDirReport> {
        let partitions = self.partitions.read();
        let moves = self.moves.in_progress();
        self.log_dirs
            .iter()
            .map(|d| {
                let space = d
                    .online
                    .then(|| rustix::fs::statvfs(&d.path).ok())
                    .flatten();
                let bytes = |blocks: u64| {
                    space.as_ref().map_or(-1, |s| {
                        i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX)
                    })
                };
                LogDirReport {
                    path: d.path.clone(),
                    online: d.online,
                    partitions: partitions
                        .values()
                        .filter(|p| p.log_dir() == d.path)
                        .cloned()
                        .collect(),
                    futures: moves
                        .iter()
                        .filter(|m| m.log_dir == d.path)
                        .cloned()
                        .collect(),
                    total_bytes: bytes(space.as_ref().map_or(0, |s| s.f_blocks)),
                    usable_bytes: bytes(space.as_ref().map_or(0, |s| s.f_bavail)),
                }
            })
            .collect()
    }

    /// Brings the hosted partitions in line with a metadata change: deletes the logs of removed
    /// topics and of partitions moved off this node (a completed reassignment), opens the new
    /// partitions this node hosts, takes new leader epochs, and applies
    /// changed configs (a topic's own, or every topic's when the dynamic broker configs changed).
    /// The work follows the delta; the first delta, at start-up, is the whole image.
    pub fn apply_delta(
        &self,
        delta: &MetadataDelta,
        image: &MetadataImage,
        config: &BrokerConfig,
        node_id: i32,
    ) {
        if !delta.changed_brokers.is_empty() {
            *self.cluster.eligible.write() = image.unfenced_brokers().into_iter().collect();
        }
        let mut partitions = self.partitions.write();
        let mut deleted = Vec::new();
        for removed in &delta.removed_topics {
            for &index in &removed.partitions {
                let key = (removed.name.clone(), index);
                self.offline.write().remove(&key);
                self.elsewhere.write().remove(&key);
                // The name may already be a newer topic's (deleted and created again).
                let same_topic = partitions
                    .get(&key)
                    .is_some_and(|p| p.topic_id == removed.id);
                deleted.extend(same_topic.then(|| partitions.remove(&key)).flatten());
            }
        }
        for (topic_id, index) in &delta.changed_partitions {
            let Some(topic) = image.topic_by_id(topic_id) else {
                continue;
            };
            let moved_off = topic
                .partitions
                .get(index)
                .is_some_and(|meta| !meta.replicas.contains(&node_id));
            if !moved_off {
                continue;
            }
            let key = (topic.name.clone(), *index);
            self.offline.write().remove(&key);
            if partitions
                .get(&key)
                .is_some_and(|p| p.topic_id == *topic_id)
            {
                deleted.extend(partitions.remove(&key));
            }
        }
        // Deleted before anything is opened: a topic deleted and created again in one delta
        // must not find the old directory under its name. Outside the map's lock, since
        // retiring waits for the log's.
        if !deleted.is_empty() {
            drop(partitions);
            for partition in deleted {
                tracing::info!(topic = %partition.topic, partition = partition.index, "deleting partition log (topic deleted or replica moved off this broker)");
                partition.retire();
                let dir = partition.with_log(|log| log.dir().to_path_buf());
                drop(partition);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not delete partition directory");
                }
            }
            partitions = self.partitions.write();
        }
        // Existing partitions take their new state once the map is unlocked: that waits for
        // their logs' locks, which a follower's truncation may hold for a while.
        let mut changed = Vec::new();
        for (topic_id, index) in &delta.changed_partitions {
            let Some(topic) = image.topic_by_id(topic_id) else {
                continue;
            };
            let Some(meta) = topic.partitions.get(index) else {
                continue;
            };
            let key = (topic.name.clone(), *index);
            if meta.replicas.contains(&node_id) {
                self.elsewhere.write().remove(&key);
                match partitions.get(&key) {
                    Some(existing) => changed.push((existing.clone(), meta.clone())),
                    None => {
                        let layers = image.topic_configs(&topic.name);
                        self.open(
                            &mut partitions,
                            topic,
                            *index,
                            meta,
                            config,
                            layers,
                            node_id,
                        )
                    }
                }
            } else {
                self.elsewhere.write().insert(key);
            }
        }
        let first_delta = !self.started.load(Ordering::Acquire);
        if first_delta || delta.broker_configs_changed(node_id) {
            let rate = |name: &str| {
                let value = config.broker_value(name, image.broker_configs());
                value.trim().parse().unwrap_or(i64::MAX)
            };
            let throttles = &self.throttles;
            throttles
                .leader
                .set_rate(rate("leader.replication.throttled.rate"));
            throttles
                .follower
                .set_rate(rate("follower.replication.throttled.rate"));
        }
        let update = |p: &Arc<Partition>| {
            let layers = image.topic_configs(&p.topic);
            p.min_insync_replicas
                .store(min_insync_replicas(config, layers), Ordering::Release);
            p.take_throttles(config, layers, node_id);
            p.with_log_mut(|log| log.update_config(config.log_config(layers)));
            // A lower min.insync.replicas may let a frozen high watermark move now, not at the
            // next append or fetch.
            p.advance_high_watermark(p.log_end_offset());
        };
        if delta.broker_configs_changed(node_id) {
            partitions.values().for_each(update);
        } else {
            for resource in &delta.changed_configs {
                let ConfigResource::Topic(name) = resource else {
                    continue;
                };
                let Some(topic) = image.topics.get(name) else {
                    continue;
                };
                topic
                    .partitions
                    .keys()
                    .filter_map(|&index| partitions.get(&(name.clone(), index)))
                    .for_each(update);
            }
        }
        self.started.store(true, Ordering::Release);
        drop(partitions);
        let now = self.cluster.now_ms();
        for (partition, meta) in changed {
            partition.take_state(&meta, node_id, now);
        }
    }

    /// Opens a partition this node hosts, in the state `meta` gives it; a log that cannot be
    /// opened leaves the partition offline.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &self,
        partitions: &mut HashMap<(String, i32), Arc<Partition>>,
        topic: &TopicImage,
        index: i32,
        meta: &PartitionImage,
        config: &BrokerConfig,
        layers: ConfigLayers,
        node_id: i32,
    ) {
        let key = (topic.name.clone(), index);
        let now = self.cluster.now_ms();
        let log_config = config.log_config(layers);
        // A partition whose log dir failed stays offline whatever the metadata says of it next
        // (a new leader epoch): placed anew, it would serve an empty log for its records.
        if self.offline.read().contains(&key) {
            return;
        }
        let Some(dir) = self.place(partitions, &topic.name, index) else {
            self.offline.write().insert(key);
            return;
        };
        let opened = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                let path = dir.join(PARTITION_METADATA);
                atomic_file::write_if_changed(&path, identity(topic.id).as_bytes())
            })
            .map_err(gregor_storage::StorageError::from)
            .and_then(|_| PartitionLog::open(dir.clone(), log_config));
        let log = match opened {
            Ok(log) => log,
            Err(e) => {
                tracing::error!(topic = %topic.name, partition = index, dir = %dir.display(), error = %e, "partition log is offline");
                self.offline.write().insert(key);
                return;
            }
        };
        self.offline.write().remove(&key);
        // The checkpointed high watermark, within the log (none: the log start; a leader
        // alone in its ISR moves it to the log end at once).
        let high_watermark = self
            .high_watermarks
            .take(&dir, &topic.name, index)
            .unwrap_or(0)
            .clamp(log.log_start_offset(), log.log_end_offset());
        let partition = Arc::new(Partition {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            log: RwLock::new(log),
            leader_epoch: AtomicI32::new(-1),
            leads: AtomicBool::new(false),
            high_watermark: AtomicI64::new(high_watermark),
            state: Mutex::new(ReplicaState {
                meta: meta.clone(),
                leader: None,
            }),
            min_insync_replicas: AtomicI64::new(min_insync_replicas(config, layers)),
            leader_throttled: AtomicBool::new(false),
            follower_throttled: AtomicBool::new(false),
            cluster: self.cluster.clone(),
            waiters: Mutex::new(Vec::new()),
            write_failure_logged: Mutex::new(None),
            verification_guards: Mutex::new(HashMap::new()),
        });
        partition.take_throttles(config, layers, node_id);
        partition.take_state(meta, node_id, now);
        partitions.insert(key, partition);
    }

    /// Writes every log dir's `replication-offset-checkpoint` with its partitions' high
    /// watermarks (every `replica.high.watermark.checkpoint.interval.ms` and at shutdown).
    pub fn checkpoint_high_watermarks(&self) {
        let _one_writer = self.checkpointing.lock();
        let partitions = self.all();
        for dir in self.log_dirs.iter().filter(|d| d.online) {
            let entries: Vec<(String, i32, i64)> = partitions
                .iter()
                .filter(|p| p.log_dir() == dir.path)
                .map(|p| (p.topic.clone(), p.index, p.high_watermark()))
                .collect();
            if let Err(e) = hw_checkpoint::write(&dir.path, &entries) {
                tracing::error!(dir = %dir.path.display(), error = %e, "cannot write the high watermark checkpoint");
            }
        }
    }

    /// Checks, before the first delta is applied, every directory of the log dirs that holds a
    /// partition log against the image. Only the leftovers of a committed topic deletion (a
    /// crash between the deletion's record and its cleanup) are deleted. A partition the image
    /// has never heard of, by an identity file that names a topic id no record mentions, means
    /// the metadata log ends before what the disk proves (a lost tail, an old backup): the
    /// broker must not start, or it would reissue ids and lose track of that data. Otherwise
    /// nothing is deleted: an identity file that is missing or unreadable is rebuilt from the
    /// image when the directory's name is a partition this node hosts, and a directory that
    /// cannot be matched is set aside (renamed `<name>.<id>-stray`) and reported.
    pub fn check_partition_dirs(
        &self,
        image: &MetadataImage,
        node_id: i32,
    ) -> Result<(), UnknownPartitions> {
        let mut unknown = Vec::new();
        let online = self.log_dirs.iter().filter(|d| d.online);
        for entry in online
            .filter_map(|d| std::fs::read_dir(&d.path).ok())
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            let dir = entry.path();
            let Some((topic, index)) = parse_partition_dir(&name) else {
                continue;
            };
            if !dir.is_dir() || !holds_partition_log(&dir) {
                continue;
            }
            let hosted = image
                .topics
                .get(topic)
                .filter(|t| {
                    t.partitions
                        .get(&index)
                        .is_some_and(|p| p.replicas.contains(&node_id))
                })
                .map(|t| t.id);
            let outcome = match (read_topic_id(&dir), hosted) {
                (Some(id), Some(hosted)) if id == hosted => Ok(()),
                (Some(id), _) if image.removed_topics.contains(&id) => {
                    tracing::warn!(dir = %dir.display(), topic_id = %id, "deleting the directory of a deleted topic (the broker stopped before removing it)");
                    std::fs::remove_dir_all(&dir)
                }
                (Some(id), _) if image.topic_by_id(&id).is_none() => {
                    unknown.push((dir, id));
                    Ok(())
                }
                (None, Some(hosted)) => {
                    tracing::warn!(dir = %dir.display(), topic_id = %hosted, "partition.metadata is missing or unreadable; rebuilt from the metadata log, which names this partition");
                    atomic_file::write(&dir.join(PARTITION_METADATA), identity(hosted).as_bytes())
                }
                (Some(_), _) => set_aside(&dir, "its topic has no such partition on this broker"),
                (None, None) => set_aside(
                    &dir,
                    "its partition.metadata is unreadable and the metadata log has no such partition",
                ),
            };
            if let Err(e) = outcome {
                tracing::error!(dir = %entry.path().display(), error = %e, "cannot settle a partition directory");
            }
        }
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(UnknownPartitions(unknown))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::MetadataRecord;

    fn topic(name: &str, partitions: i32) -> (Uuid, Vec<MetadataRecord>) {
        let id = Uuid::new_v4();
        let mut records = vec![MetadataRecord::Topic {
            name: name.into(),
            topic_id: id,
        }];
        records.extend(
            (0..partitions)
                .map(|partition| PartitionImage::new(vec![1], vec![1], 1).record(id, partition)),
        );
        (id, records)
    }

    fn retention(resource: ConfigResource, ms: &str) -> MetadataRecord {
        let name = match resource {
            ConfigResource::Topic(_) => "retention.ms",
            _ => "log.retention.ms",
        };
        MetadataRecord::Config {
            resource,
            name: name.into(),
            value: Some(ms.into()),
        }
    }

    /// Commits `records` to `image` and applies them to broker `node`'s replicas.
    fn apply(
        image: &mut MetadataImage,
        (config, replicas): (&BrokerConfig, &ReplicaManager),
        node: i32,
        records: &[MetadataRecord],
    ) {
        let delta = image.apply_committed(records, image.offset + records.len() as i64);
        replicas.apply_delta(&delta, image, config, node);
    }

    /// A config with its log dir in `dir`, and a replica manager on it.
    fn replica_manager(dir: &Path) -> (BrokerConfig, ReplicaManager) {
        let log_dirs = dir.display().to_string();
        let config = BrokerConfig::from_pairs([("log.dirs".to_string(), log_dirs)]).unwrap();
        let replicas = ReplicaManager::new(&config);
        (config, replicas)
    }

    /// Every change goes through the delta: new partitions open, a topic's config reaches only
    /// its partitions, a broker-wide one every partition, a deleted topic's logs go and a topic
    /// created again under its name is a new log.
    #[test]
    fn logs_follow_the_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let (config, replicas) = replica_manager(dir.path());
        let mut image = MetadataImage::empty();
        let apply = |image: &mut MetadataImage, records: &[MetadataRecord]| {
            apply(image, (&config, &replicas), 1, records)
        };
        let (a, mut records) = topic("a", 2);
        records.extend(topic("b", 1).1);
        apply(&mut image, &records);
        assert_eq!(replicas.all().len(), 3);
        let retention_of = |topic: &str| {
            let p = replicas.get(topic, 0).unwrap();
            p.with_log(|log| log.config().retention_ms)
        };
        let default = retention_of("b");

        apply(
            &mut image,
            &[retention(ConfigResource::Topic("a".into()), "1000")],
        );
        assert_eq!(retention_of("a"), 1000);
        let a1 = replicas.get("a", 1).unwrap();
        assert_eq!(a1.with_log(|log| log.config().retention_ms), 1000);
        assert_eq!(retention_of("b"), default, "another topic's change");

        apply(
            &mut image,
            &[retention(ConfigResource::Broker(None), "2000")],
        );
        assert_eq!(
            retention_of("b"),
            2000,
            "a cluster-wide default reaches every topic"
        );
        assert_eq!(retention_of("a"), 1000, "under the topic's own");

        let (_, again) = topic("a", 1);
        let mut records = vec![MetadataRecord::RemoveTopic { topic_id: a }];
        records.extend(again);
        let old_dir = replicas.get("a", 1).unwrap().log_dir();
        apply(&mut image, &records);
        assert!(replicas.get("a", 1).is_none());
        assert!(
            !old_dir.join("a-1").exists(),
            "the deleted partition's directory"
        );
        let new = replicas.get("a", 0).unwrap();
        assert_ne!(new.topic_id, a);
        assert_eq!(
            retention_of("a"),
            2000,
            "the old topic's override went with it"
        );
    }

    /// KIP-890's verification guard: a batch verified with the coordinator is appended only if
    /// no marker of its producer came in between (the transaction ended meanwhile, and the batch
    /// would open one that no marker ends); batches verified at the same time share one guard,
    /// and once the transaction is open the next batches need none.
    #[test]
    fn a_marker_during_verification_stops_the_verified_batch() {
        use gregor_storage::records::encode_transactional_batch;
        let dir = tempfile::tempdir().unwrap();
        let (config, replicas) = replica_manager(dir.path());
        let mut image = MetadataImage::empty();
        let (_, records) = topic("t", 1);
        apply(&mut image, (&config, &replicas), 1, &records);
        let p = replicas.get("t", 0).unwrap();
        let batch = |epoch: i16| {
            let value = Some(bytes::Bytes::from_static(b"v"));
            encode_transactional_batch(&[(None, value)], 1_000, 7, epoch)
        };

        let guard = p.verification_guard(7);
        assert_eq!(
            p.verification_guard(7),
            guard,
            "a batch verified alongside shares it"
        );
        p.append_marker(7, 0, false, 1_000).unwrap();
        assert!(p.append_verified(7, guard, &batch(0), 1_000).is_none());
        let end = p.with_log(|log| log.log_end_offset());
        assert_eq!(end, 1, "only the marker is in the log");

        let guard = p.verification_guard(7);
        assert!(p
            .append_verified(7, guard, &batch(0), 1_000)
            .unwrap()
            .is_ok());
        assert!(p.with_log(|log| log.has_open_transaction(7)));
        // The guard went with the append; the open transaction admits the next batch.
        assert_ne!(p.verification_guard(7), guard);
        assert!(p
            .append_verified(7, guard, &batch(0), 1_000)
            .unwrap()
            .is_ok());
        assert_eq!(p.with_log(|log| log.log_end_offset()), 3);
    }

    /// Below min.insync.replicas the leader's high watermark stays; lowering the topic's
    /// min.insync.replicas lets it move at once, without another append or fetch.
    #[test]
    fn lowering_min_insync_replicas_moves_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (config, replicas) = replica_manager(dir.path());
        let mut image = MetadataImage::empty();
        let id = Uuid::new_v4();
        let records = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            PartitionImage::new(vec![1, 2], vec![1], 1).record(id, 0),
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "min.insync.replicas".into(),
                value: Some("2".into()),
            },
        ];
        apply(&mut image, (&config, &replicas), 1, &records);
        let p = replicas.get("t", 0).unwrap();
        let batch = gregor_storage::records::encode_batch(&[(None, None)], 1_000);
        p.append(&batch, 1_000).unwrap();
        assert_eq!(p.high_watermark(), 0, "frozen under min.insync.replicas");
        let lowered = MetadataRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            name: "min.insync.replicas".into(),
            value: Some("1".into()),
        };
        apply(&mut image, (&config, &replicas), 1, &[lowered]);
        assert_eq!(p.high_watermark(), 1);
    }

    /// KIP-392: a consumer may read a partition this broker follows, in the leader epoch it
    /// knows, up to this replica's high watermark, and with read_committed up to its last
    /// stable offset; every other request finds no leader here.
    #[test]
    fn consumers_read_a_follower_up_to_its_high_watermark() {
        use gregor_storage::batch::patch_offset_and_epoch;
        use gregor_storage::records::{encode_batch, encode_transactional_batch};
        let dir = tempfile::tempdir().unwrap();
        let (config, replicas) = replica_manager(dir.path());
        let mut image = MetadataImage::empty();
        let id = Uuid::new_v4();
        let mut state = PartitionImage::new(vec![1, 2], vec![1, 2], 1);
        state.leader_epoch = 4;
        let records = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            state.record(id, 0),
        ];
        apply(&mut image, (&config, &replicas), 2, &records);
        let p = replicas.get("t", 0).unwrap();
        let code = |r: Result<Arc<Partition>, i16>| r.err().unwrap_or(0);
        let not_leader = ResponseError::NotLeaderOrFollower.code();
        assert_eq!(code(replicas.lookup_in_epoch("t", 0, 4)), not_leader);
        assert_eq!(code(replicas.lookup_replica_in_epoch("t", 0, 4)), 0);
        assert_eq!(code(replicas.lookup_replica_in_epoch("t", 0, -1)), 0);
        let fenced = ResponseError::FencedLeaderEpoch.code();
        assert_eq!(code(replicas.lookup_replica_in_epoch("t", 0, 3)), fenced);
        let unknown = ResponseError::UnknownLeaderEpoch.code();
        assert_eq!(code(replicas.lookup_replica_in_epoch("t", 0, 5)), unknown);

        // Offsets 0 and 2 plain, 1 of a transaction still open; the leader says 2 are committed.
        let value = || Some(bytes::Bytes::from_static(b"v"));
        let mut fetched = Vec::new();
        for (offset, batch) in [
            encode_batch(&[(None, value())], 1_000),
            encode_transactional_batch(&[(None, value())], 1_000, 7, 0),
            encode_batch(&[(None, value())], 1_000),
        ]
        .into_iter()
        .enumerate()
        {
            let mut batch = batch.to_vec();
            patch_offset_and_epoch(&mut batch, offset as i64, 4);
            fetched.extend(batch);
        }
        p.append_from_leader(4, &fetched, 2, 0, 1_000).unwrap();
        assert_eq!((p.log_end_offset(), p.high_watermark()), (3, 2));
        let end = |read: FetchRead| read.records.unwrap().map(|slice| slice.end_offset);
        assert_eq!(
            end(p.read(0, 1 << 20, false)),
            Some(2),
            "up to the high watermark"
        );
        assert_eq!(end(p.read(2, 1 << 20, false)), None, "nothing at it");
        let committed = p.read(0, 1 << 20, true);
        assert_eq!(committed.last_stable, 1);
        assert_eq!(end(committed), Some(1), "up to the last stable offset");
    }

    /// A partition another broker hosts answers NOT_LEADER_OR_FOLLOWER here; one no broker has
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[test]
    fn partitions_of_other_brokers_are_not_led_here() {
        let dir = tempfile::tempdir().unwrap();
        let (config, replicas) = replica_manager(dir.path());
        let mut image = MetadataImage::empty();
        let id = Uuid::new_v4();
        let mut records = vec![MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        }];
        records.extend((0..2).map(|partition| {
            let replica = vec![partition + 1];
            PartitionImage::new(replica.clone(), replica, partition + 1).record(id, partition)
        }));
        apply(&mut image, (&config, &replicas), 1, &records);
        assert!(replicas.lookup("t", 0).is_ok());
        let not_here = ResponseError::NotLeaderOrFollower.code();
        assert_eq!(replicas.lookup("t", 1).err(), Some(not_here));
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(replicas.lookup("t", 2).err(), Some(unknown));
        let removed = MetadataRecord::RemoveTopic { topic_id: id };
        apply(&mut image, (&config, &replicas), 1, &[removed]);
        assert_eq!(replicas.lookup("t", 1).err(), Some(unknown));
    }
}
