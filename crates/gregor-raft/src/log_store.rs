//! The Raft log on a partition log, as KRaft keeps it: each entry is one record batch at the
//! entry's index as offset, with its term as partition leader epoch. Raft indexes count entries,
//! so a batch holds exactly one record: a normal entry's is the JSON of its metadata records (no
//! key); a blank entry (a new leader's first) and a membership change are keyed `raft:blank` and
//! `raft:membership`. The vote, the commit point and the last purged entry live in
//! `quorum-state` beside the log, written atomically and durably.
//!
//! Writes (appends, truncation, purges, the vote) fsync, so they run on blocking threads, never
//! on the async runtime's workers. Writes are serialized by one lock, as Raft requires.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gregor_storage::batch::BatchHeader;
use gregor_storage::records::{decode_records, encode_batch, split_batches};
use gregor_storage::{atomic_file, LogConfig, PartitionLog};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{EntryPayload, LogState, RaftLogReader, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{now_ms, Entry, LogId, MetadataBatch, NodeId, StorageError, TypeConfig};

/// The file of the vote, the commit point and the last purged entry (KRaft's name).
pub const QUORUM_STATE: &str = "quorum-state";
/// A file of [`RESERVE_BYTES`] kept beside the log: when the disk fills up it is deleted, so that
/// metadata still goes in (a topic deletion that frees space is metadata), and it is written
/// again at the next start that has room for it.
pub const RESERVE_FILE: &str = "disk-full.reserve";
const RESERVE_BYTES: usize = 4 << 20;
const BLANK: &[u8] = b"raft:blank";
const MEMBERSHIP: &[u8] = b"raft:membership";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
}

/// Writes the reserve file if it is not there whole; on a disk without room for it, says so.
fn ensure_reserve(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return;
    }
    if let Err(e) = atomic_file::write(path, &vec![0u8; RESERVE_BYTES]) {
        tracing::warn!(path = %path.display(), error = %e, "cannot set aside the metadata log's disk reserve");
    }
}

struct Inner {
    dir: PathBuf,
    log: PartitionLog,
    state: QuorumState,
    /// The id of the last entry in the log (`None`: the log holds none).
    last: Option<LogId>,
    /// Bytes appended since this node started or (the quorum's snapshot trigger resets it)
    /// since its last snapshot.
    appended_bytes: Arc<AtomicU64>,
}

/// The Raft log of the metadata quorum. Clones share it (a clone is also its reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

fn corrupt(offset: i64, why: impl std::fmt::Display) -> StorageError {
    let e = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("metadata log entry at offset {offset}: {why}"),
    );
    read_error(e)
}

fn json(value: &impl Serialize) -> Result<Bytes, StorageError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(write_error)
}

/// One entry as a batch of one record (its offset and leader epoch are set by the append).
/// Nothing in it depends on the node that writes it: a follower's batch is the leader's.
fn encode(entry: &Entry) -> Result<Bytes, StorageError> {
    let (record, timestamp) = match &entry.payload {
        EntryPayload::Blank => ((Some(Bytes::from_static(BLANK)), None), -1),
        EntryPayload::Membership(membership) => (
            (
                Some(Bytes::from_static(MEMBERSHIP)),
                Some(json(membership)?),
            ),
            -1,
        ),
        EntryPayload::Normal(batch) => ((None, Some(json(batch)?)), batch.appended_ms),
    };
    Ok(encode_batch(&[record], timestamp))
}

/// The entry a batch of the log holds.
fn decode(h: &BatchHeader, raw: Bytes) -> Result<Entry, StorageError> {
    let offset = h.base_offset;
    let term = u64::try_from(h.partition_leader_epoch).map_err(|_| corrupt(offset, "no term"))?;
    let mut records = decode_records(h, raw).map_err(read_error)?;
    if records.len() != 1 {
        return Err(corrupt(offset, format!("{} records", records.len())));
    }
    let (_, key, value) = records.remove(0);
    let value = value.unwrap_or_default();
    let payload = match key.as_deref() {
        Some(BLANK) => EntryPayload::Blank,
        Some(MEMBERSHIP) => EntryPayload::Membership(
            serde_json::from_slice(&value).map_err(|e| corrupt(offset, e))?,
        ),
        None => EntryPayload::Normal(
            serde_json::from_slice::<MetadataBatch>(&value).map_err(|e| corrupt(offset, e))?,
        ),
        Some(other) => {
            return Err(corrupt(
                offset,
                format!("unknown key {}", String::from_utf8_lossy(other)),
            ))
        }
    };
    Ok(Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(term, 0), offset as u64),
        payload,
    })
}

/// At a clean stop the log's checkpoint is written (indexes, recovery point), so the next start
/// does not check every batch's CRC again: appends only sync, they leave the recovery point
/// behind.
impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.log.checkpoint() {
            tracing::warn!(error = %e, "cannot write the metadata log's checkpoint");
        }
    }
}

impl Inner {
    /// The entries with offsets in `[from, to)`.
    fn entries(&self, from: i64, to: i64) -> Result<Vec<Entry>, StorageError> {
        let (from, to) = (
            from.max(self.log.log_start_offset()),
            to.min(self.log.log_end_offset()),
        );
        let mut out = Vec::new();
        let mut next = from;
        while next < to {
            let chunk = self.log.read(next, 1 << 20, to).map_err(read_error)?;
            if chunk.is_empty() {
                break;
            }
            for (h, raw) in split_batches(chunk).map_err(read_error)? {
                next = h.next_offset();
                if h.base_offset >= from {
                    out.push(decode(&h, raw)?);
                }
            }
        }
        Ok(out)
    }

    /// The id of the last entry in the log.
    fn find_last(&self) -> Result<Option<LogId>, StorageError> {
        let end = self.log.log_end_offset();
        if end <= self.log.log_start_offset() {
            return Ok(None);
        }
        Ok(self.entries(end - 1, end)?.pop().map(|e| e.log_id))
    }

    /// The disk is full: gives the reserve back to it, once. Whether there was one.
    fn use_reserve(&self) -> bool {
        let reserve = self.dir.join(RESERVE_FILE);
        let used = std::fs::remove_file(&reserve).is_ok();
        if used {
            tracing::error!(reserve = %reserve.display(), "the disk is full: the metadata log used its reserve; free space (delete topics, lower retention) before it runs out again");
        }
        used
    }

    fn save_state(&self) -> Result<(), StorageError> {
        let text = serde_json::to_vec(&self.state).map_err(|e| StorageIOError::write_vote(&e))?;
        let path = self.dir.join(QUORUM_STATE);
        match atomic_file::write(&path, &text) {
            Err(e) if is_disk_full(&e) && self.use_reserve() => atomic_file::write(&path, &text),
            written => written,
        }
        .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        for entry in &entries {
            let index = entry.log_id.index as i64;
            let empty = self.log.log_start_offset() == self.log.log_end_offset();
            if empty && index != self.log.log_end_offset() {
                // An empty log takes its first entry at any index (after a purge, or a snapshot).
                self.log.restart_at(index).map_err(write_error)?;
            }
            if index != self.log.log_end_offset() {
                let e = std::io::Error::other(format!(
                    "entry {index} would leave a hole after offset {}",
                    self.log.log_end_offset()
                ));
                return Err(write_error(e));
            }
            let term = i32::try_from(entry.log_id.leader_id.term)
                .map_err(|_| write_error(std::io::Error::other("term beyond i32")))?;
            let batch = encode(entry)?;
            let end = self.log.log_end_offset();
            match self.log.append(&batch, term, now_ms()) {
                // Retried only if the entry did not get in (a failed flush comes after).
                Err(gregor_storage::StorageError::Io(e))
                    if is_disk_full(&e)
                        && self.log.log_end_offset() == end
                        && self.use_reserve() =>
                {
                    self.log.append(&batch, term, now_ms())
                }
                appended => appended,
            }
            .map_err(write_error)?;
            self.appended_bytes
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.last = Some(entry.log_id);
        }
        match self.log.sync() {
            Err(gregor_storage::StorageError::Io(e)) if is_disk_full(&e) && self.use_reserve() => {
                self.log.sync()
            }
            synced => synced,
        }
        .map_err(write_error)
    }
}

impl LogStore {
    /// The count of bytes appended that no snapshot covers yet, shared with whoever decides
    /// when to take one.
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        self.inner.lock().appended_bytes.clone()
    }

    /// Opens (creating if missing) the Raft log in `dir`, the metadata log's directory.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        let config = LogConfig {
            // Synced once per append call, not per batch; the recovery point stays behind (a
            // restart checks the CRCs of what the log holds past it, a few batches).
            flush_messages: i64::MAX,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.to_path_buf(), config).map_err(read_error)?;
        let state = match std::fs::read(dir.join(QUORUM_STATE)) {
            Ok(text) => serde_json::from_slice(&text).map_err(|e| StorageIOError::read_vote(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => QuorumState::default(),
            Err(e) => return Err(StorageIOError::read_vote(&e).into()),
        };
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            log,
            state,
            last: None,
            appended_bytes: Arc::new(AtomicU64::new(0)),
        };
        inner.last = inner.find_last()?;
        // A log that lost its tail (a damaged disk) cannot have committed past its end.
        let end = inner.last.or(inner.state.last_purged).map(|id| id.index);
        if inner.state.committed.is_some_and(|c| Some(c.index) > end) {
            tracing::error!(
                committed = ?inner.state.committed,
                last = ?inner.last,
                "the metadata log ends before its recorded commit point: it lost its tail"
            );
            inner.state.committed = inner.last.or(inner.state.last_purged);
        }
        ensure_reserve(&dir.join(RESERVE_FILE));
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Runs a write on a blocking thread (it fsyncs), serialized with the other writes.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Inner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&mut inner.lock()))
            .await
            .map_err(write_error)?
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (i64, i64) {
    let from = match range.start_bound() {
        Bound::Included(&i) => i as i64,
        Bound::Excluded(&i) => i as i64 + 1,
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(&i) => i as i64 + 1,
        Bound::Excluded(&i) => i as i64,
        Bound::Unbounded => i64::MAX,
    };
    (from, to)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (from, to) = bounds(&range);
        self.inner.lock().entries(from, to)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock();
        let last_purged_log_id = inner.state.last_purged;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: inner.last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        self.write(move |inner| {
            inner.state.vote = Some(vote);
            inner.save_state()
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Only a hint for the next start (the leader says again what is committed): a failure
        // to save it must not stop the quorum.
        let saved = self
            .write(move |inner| {
                inner.state.committed = committed;
                inner.save_state()
            })
            .await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "cannot save the metadata log's commit point");
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let appended = self.write(move |inner| inner.append(entries)).await;
        let flushed = match &appended {
            Ok(()) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        callback.log_io_completed(flushed);
        appended
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |inner| {
            inner
                .log
                .truncate_to(log_id.index as i64)
                .map_err(write_error)?;
            inner.last = inner.find_last()?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |inner| {
            // The purge point is recorded first: a crash in between leaves entries that are
            // merely purged again.
            inner.state.last_purged = Some(log_id);
            inner.save_state()?;
            let start = log_id.index as i64 + 1;
            if start >= inner.log.log_end_offset() {
                // All of the log (a snapshot from the leader may reach past its end).
                inner.log.restart_at(start).map_err(write_error)?;
            } else {
                inner
                    .log
                    .delete_records_before(start)
                    .map_err(write_error)?;
            }
            inner.last = inner.find_last()?;
            Ok(())
        })
        .await
    }
}
