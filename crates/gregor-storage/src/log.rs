//! The partition log: an ordered list of segments, the last one active.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io::IoSlice;
use std::path::PathBuf;

use bytes::Bytes;

use crate::batch::{self, BatchHeader};
use crate::checkpoint::{self, Checkpoint};
use crate::compression;
use crate::config::{LogConfig, TimestampType};
use crate::epoch_cache::EpochCache;
use crate::error::{Result, StorageError};
use crate::producer_state::{
    self, AbortedTxn, ActiveProducer, ProducerEntry, ProducerStateManager,
};
use crate::record_checks::{self, RecordRules};
use crate::segment::{self, FileSlice, Segment};

/// A produced batch may decompress to at most this many times `max.message.bytes` (about 1 GiB
/// by default): far beyond what real data compresses by, yet a bound on the work a small
/// compressed bomb can cause (its records are streamed, so memory stays bounded anyway).
const MAX_COMPRESSION_RATIO: u64 = 1024;

// Log compaction (cleanup.policy=compact): a child module so it can reach the log's fields.
#[path = "cleaner.rs"]
pub mod cleaner;
// DeleteRecords, likewise.
#[path = "delete_records.rs"]
mod delete_records;

/// Outcome of [`PartitionLog::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the first record appended (or of the duplicate's original).
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// An idempotent retry of one of the producer's last 5 batches; nothing was written.
    pub duplicate: bool,
    /// The leader epoch the append was made in.
    pub leader_epoch: i32,
}

/// Produced batches checked by [`PartitionLog::prepare`], ready for
/// [`PartitionLog::append_prepared`].
#[derive(Debug)]
pub struct Prepared<'a> {
    /// As produced, or re-encoded in the topic's codec.
    records: Cow<'a, [u8]>,
    headers: Vec<BatchHeader>,
}

/// One partition's log in its own directory.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset, never empty; the last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    recovery_point: i64,
    producers: ProducerStateManager,
    unflushed_messages: i64,
    last_flush_ms: Option<i64>,
    scratch: Vec<u8>,
    /// Log cleaner state (clean offset), see cleaner.rs.
    cleaner: cleaner::CleanerState,
    /// `*.deleted` files awaiting removal, with their due time (`None`: not yet stamped; the
    /// next [`PartitionLog::delete_expired_files`] stamps it with its `now_ms` plus the delay).
    pending_deletes: Vec<(Option<i64>, PathBuf)>,
    /// Where each leader epoch's batches begin (`leader-epoch-checkpoint`).
    epochs: EpochCache,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("log_end_offset", &self.log_end_offset)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl PartitionLog {
    /// Opens (creating if missing) the partition directory and recovers it.
    pub fn open(dir: PathBuf, config: LogConfig) -> Result<PartitionLog> {
        fs::create_dir_all(&dir)?;
        checkpoint::remove_tmp(&dir);
        EpochCache::remove_tmp(&dir);
        cleaner::recover_dir(&dir)?;
        segment::remove_deleted_files(&dir)?;
        let cp = checkpoint::read(&dir);
        let recovery_point = cp.map_or(0, |c| c.recovery_point);
        let mut log_start_offset = cp.map_or(0, |c| c.log_start_offset);

        let mut bases = Vec::new();
        let mut orphan_indexes = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = segment::parse_file_name(name, segment::LOG_EXT) {
                bases.push(base);
            } else if let Some(base) = segment::parse_file_name(name, segment::INDEX_EXT)
                .or_else(|| segment::parse_file_name(name, segment::TIME_INDEX_EXT))
            {
                orphan_indexes.push(base);
            }
        }
        bases.sort_unstable();
        for base in orphan_indexes {
            if bases.binary_search(&base).is_err() {
                segment::remove_segment_files(&dir, base)?;
            }
        }

        let mut producers = ProducerStateManager::default();
        // The earliest delete horizon in the log, so tombstones go on time after a restart too.
        let mut next_delete_horizon: Option<i64> = None;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let mut corrupt_seen = false;
        // Where the batches' leader epoch changes: the epoch cache is checked against them.
        let mut epoch_starts: Vec<(i32, i64)> = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let upper = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let prev_end = segments.last().map_or(i64::MIN, |s| s.next_offset);
            if corrupt_seen || base < prev_end {
                tracing::warn!(
                    "{}: deleting segment {base} after invalid data",
                    dir.display()
                );
                segment::remove_segment_files(&dir, base)?;
                corrupt_seen = true;
                continue;
            }
            let rec = Segment::recover(
                &dir,
                base,
                prev_end,
                upper,
                recovery_point,
                config.index_interval_bytes,
                &mut |h: &BatchHeader, marker| {
                    producers.replay(h, marker);
                    if epoch_starts
                        .last()
                        .is_none_or(|&(e, _)| e != h.partition_leader_epoch)
                    {
                        epoch_starts.push((h.partition_leader_epoch, h.base_offset));
                    }
                    if let Some(horizon) = h.delete_horizon() {
                        next_delete_horizon =
                            Some(next_delete_horizon.map_or(horizon, |n: i64| n.min(horizon)));
                    }
                },
            )?;
            corrupt_seen |= rec.corrupt;
            segments.push(rec.segment);
        }
        // A trailing empty segment that does not continue its predecessor is dropped.
        while segments.len() > 1 {
            let n = segments.len();
            if segments[n - 1].size == 0
                && segments[n - 1].base_offset != segments[n - 2].next_offset
            {
                if let Some(s) = segments.pop() {
                    s.delete_files()?;
                }
            } else {
                break;
            }
        }
        if segments.is_empty() {
            let mut segment = Segment::create(&dir, log_start_offset, None)?;
            // Like recovered ones, opened when first used.
            segment.close_file()?;
            segments.push(segment);
        }
        if let Some(active) = segments.last_mut() {
            active.preallocate(config.preallocation());
        }
        let log_end_offset = segments.last().map_or(0, |s| s.next_offset);
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        log_start_offset = log_start_offset.max(first_base).min(log_end_offset);
        producers.evict_before(log_start_offset);

        let cleaner = cleaner::CleanerState::load(&dir, log_end_offset, next_delete_horizon);
        let epochs = recover_epochs(&dir, epoch_starts, log_start_offset, log_end_offset);
        Ok(PartitionLog {
            dir,
            config,
            segments,
            log_start_offset,
            log_end_offset,
            recovery_point: recovery_point.min(log_end_offset),
            producers,
            unflushed_messages: 0,
            last_flush_ms: None,
            scratch: Vec::new(),
            cleaner,
            pending_deletes: Vec::new(),
            epochs,
        })
    }

    /// The partition's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(crate) fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    fn active(&mut self) -> &mut Segment {
        let n = self.segments.len();
        &mut self.segments[n - 1]
    }

    /// Appends one or more producer batches (all-or-nothing): [`PartitionLog::prepare`] and
    /// [`PartitionLog::append_prepared`] in one.
    pub fn append(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let prepared = self.prepare(records, now_ms)?;
        self.append_prepared(prepared, leader_epoch, now_ms)
    }

    /// Checks produced batches as Kafka does (framing, CRC, every record, the topic's rules)
    /// and re-encodes them in the topic's codec, without changing the log: it needs only a
    /// shared reference, so the costly part of a produce runs beside fetches and other
    /// producers. Control batches are the transaction coordinator's alone
    /// ([`PartitionLog::append_marker`]); a client's are refused.
    pub fn prepare<'a>(&self, records: &'a [u8], now_ms: i64) -> Result<Prepared<'a>> {
        let headers = batch::validate_batches(records, self.config.max_message_bytes)?;
        if headers.iter().any(BatchHeader::is_control) {
            return Err(StorageError::InvalidRecord(
                "control batches cannot be produced by clients".into(),
            ));
        }
        self.check_records(records, headers, now_ms)
    }

    /// Appends batches copied from this partition's leader as they are (Kafka's
    /// `appendAsFollower`): offsets, leader epochs, timestamps and every other byte kept. Each
    /// batch is checked (framing, CRC; no size limit: the leader took it) and they must continue
    /// this log: the first at or past its end (compaction leaves gaps between batches), each
    /// after the one before. The leader-epoch cache records the epochs they bring (durably, before
    /// they are written) and the producer state replays them, as recovery does: the leader made
    /// the sequence and transaction checks. All or nothing; returns the new log end offset.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<i64> {
        let headers = batch::validate_batches(records, usize::MAX)?;
        let mut expected = self.log_end_offset;
        for h in &headers {
            if h.base_offset < expected {
                return Err(StorageError::NotContiguous {
                    first_offset: h.base_offset,
                    log_end: self.log_end_offset,
                });
            }
            expected = h.next_offset();
        }
        self.record_epochs(
            headers
                .iter()
                .map(|h| (h.partition_leader_epoch, h.base_offset)),
        )?;
        self.maybe_roll(records.len(), headers.len(), expected - 1, now_ms)?;
        let index_interval = self.config.index_interval_bytes;
        let mut parts = vec![IoSlice::new(records)];
        self.active()
            .append(&mut parts, records.len(), &headers, now_ms, index_interval)?;
        let mut pos = 0usize;
        let mut messages: i64 = 0;
        for h in &headers {
            let marker = if h.is_control() {
                batch::control_marker(&records[pos..pos + h.total_len()])
            } else {
                None
            };
            self.producers.replay(h, marker);
            messages += i64::from(h.last_offset_delta) + 1;
            pos += h.total_len();
        }
        self.appended(expected, messages, now_ms)?;
        Ok(self.log_end_offset)
    }

    /// Records, durably, the leader epochs that `(epoch, first offset)` pairs about to be written
    /// bring (a write only when one is new: once per leader change, not per append).
    fn record_epochs(&mut self, starts: impl Iterator<Item = (i32, i64)>) -> Result<()> {
        let mut epochs = Cow::Borrowed(&self.epochs);
        for (epoch, start) in starts {
            if epochs.would_change(epoch, start) {
                epochs.to_mut().assign(epoch, start);
            }
        }
        if let Cow::Owned(epochs) = epochs {
            epochs.write(&self.dir)?;
            self.epochs = epochs;
        }
        Ok(())
    }

    /// Batches of `messages` records were written up to `log_end_offset`: flushed when
    /// `flush.messages` or `flush.ms` say so.
    fn appended(&mut self, log_end_offset: i64, messages: i64, now_ms: i64) -> Result<()> {
        self.log_end_offset = log_end_offset;
        self.unflushed_messages = self.unflushed_messages.saturating_add(messages);
        let last_flush = *self.last_flush_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= self.config.flush_messages
            || now_ms.saturating_sub(last_flush) >= self.config.flush_ms
        {
            self.flush(now_ms)?;
        }
        Ok(())
    }

    /// Writes a transaction marker (commit or abort) for `producer_id`, ending its transaction
    /// in this partition. A marker of an epoch older than the producer's is refused (fenced).
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult> {
        if let Some(e) = self.producers.get(producer_id) {
            if producer_epoch < e.epoch {
                return Err(StorageError::InvalidProducerEpoch(format!(
                    "marker of producer {producer_id} epoch {producer_epoch} is older than the current epoch {}",
                    e.epoch
                )));
            }
        }
        let marker = crate::records::marker_batch(producer_id, producer_epoch, commit, now_ms);
        let headers =
            batch::validate_batches(&marker, self.config.max_message_bytes.max(marker.len()))?;
        let prepared = self.check_records(&marker, headers, now_ms)?;
        let res = self.append_prepared(prepared, leader_epoch, now_ms)?;
        self.producers.end_txn(producer_id, res.base_offset, commit);
        Ok(res)
    }

    /// The first offset of the oldest open transaction, if any: read_committed consumers read
    /// up to it (the last stable offset).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// The highest producer id this partition holds state for: ids below it were handed out.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.max_producer_id()
    }

    /// The producers with state in this partition (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.producers.active()
    }

    /// Aborted transactions with records that may lie in `from..to` (for read_committed fetches).
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers.aborted_between(from, to)
    }

    /// Reads every record of validated batches against the topic's rules and re-encodes them
    /// in the topic's codec if it asks for one.
    fn check_records<'a>(
        &self,
        records: &'a [u8],
        headers: Vec<BatchHeader>,
        now_ms: i64,
    ) -> Result<Prepared<'a>> {
        let rules = RecordRules {
            partition: &self.dir,
            max_decompressed_bytes: (self.config.max_message_bytes as u64)
                .saturating_mul(MAX_COMPRESSION_RATIO),
            compacted: self.config.compact,
            timestamps: (self.config.timestamp_type == TimestampType::CreateTime).then(|| {
                (
                    now_ms.saturating_sub(self.config.timestamp_before_max_ms),
                    now_ms.saturating_add(self.config.timestamp_after_max_ms),
                )
            }),
        };
        // The records as the client sent them, before any recompression: a batch that cannot be
        // read (or would inflate without bound) is refused before it is re-encoded.
        record_checks::check(records, &headers, &rules)?;
        let recompressed = compression::recompress(
            records,
            &headers,
            self.config.compression,
            self.config.compression_levels,
            self.config.max_message_bytes,
        )?;
        Ok(match recompressed {
            Some(rewritten) => Prepared {
                headers: batch::validate_batches(&rewritten, self.config.max_message_bytes)?,
                records: Cow::Owned(rewritten),
            },
            None => Prepared {
                records: Cow::Borrowed(records),
                headers,
            },
        })
    }

    /// Appends batches that [`PartitionLog::prepare`] checked: the producer checks (sequence,
    /// epoch, duplicates), offsets, the write.
    pub fn append_prepared(
        &mut self,
        prepared: Prepared<'_>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let Prepared {
            records,
            mut headers,
        } = prepared;
        let records = &records[..];
        let log_append = self.config.timestamp_type == TimestampType::LogAppendTime;

        // Producer checks and offset assignment, staged until the write succeeds.
        let mut staged: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut next = self.log_end_offset;
        let mut messages: i64 = 0;
        for h in headers.iter_mut() {
            if h.producer_id >= 0 {
                let current = staged
                    .get(&h.producer_id)
                    .or_else(|| self.producers.get(h.producer_id));
                if let Some(dup) = producer_state::check(current, h)? {
                    return Ok(AppendResult {
                        base_offset: dup.first_offset,
                        last_offset: dup.last_offset,
                        log_append_time: if log_append { dup.max_timestamp } else { -1 },
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                        leader_epoch,
                    });
                }
            }
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            if log_append {
                h.attributes |= 0x08;
                h.first_timestamp = now_ms;
                h.max_timestamp = now_ms;
            }
            next = h.next_offset();
            messages += i64::from(h.last_offset_delta) + 1;
            if h.producer_id >= 0 {
                let entry = match staged.entry(h.producer_id) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(self.producers.get(h.producer_id).cloned().unwrap_or(
                            ProducerEntry {
                                epoch: h.producer_epoch,
                                ..ProducerEntry::default()
                            },
                        ))
                    }
                };
                entry.replay(h);
            }
        }

        // A new leader epoch is recorded (durably) before its first batch is written.
        self.record_epochs(std::iter::once((leader_epoch, self.log_end_offset)))?;
        self.maybe_roll(records.len(), headers.len(), next - 1, now_ms)?;

        // baseOffset and the leader epoch lie in each batch's first 16 bytes, outside the CRC:
        // those are written patched and the rest as produced, so the records are not copied.
        // LogAppendTime rewrites fields the CRC covers: such batches are patched in a copy.
        let mut copy = std::mem::take(&mut self.scratch);
        copy.clear();
        let mut heads: Vec<[u8; 16]> = Vec::with_capacity(headers.len());
        let mut parts: Vec<IoSlice<'_>> = Vec::with_capacity(2 * headers.len());
        if log_append {
            copy.extend_from_slice(records);
            let mut pos = 0usize;
            for h in &headers {
                let b = &mut copy[pos..pos + h.total_len()];
                batch::patch_offset_and_epoch(b, h.base_offset, leader_epoch);
                batch::set_log_append_time(b, now_ms);
                pos += h.total_len();
            }
            parts.push(IoSlice::new(&copy));
        } else {
            let mut pos = 0usize;
            for h in &headers {
                let mut head = [0u8; 16];
                head.copy_from_slice(&records[pos..pos + 16]);
                batch::patch_offset_and_epoch(&mut head, h.base_offset, leader_epoch);
                heads.push(head);
                pos += h.total_len();
            }
            let mut pos = 0usize;
            for (h, head) in headers.iter().zip(&heads) {
                parts.push(IoSlice::new(head));
                parts.push(IoSlice::new(&records[pos + 16..pos + h.total_len()]));
                pos += h.total_len();
            }
        }
        let index_interval = self.config.index_interval_bytes;
        let res = self
            .active()
            .append(&mut parts, records.len(), &headers, now_ms, index_interval);
        drop(parts);
        self.scratch = copy;
        res?;

        for (pid, entry) in staged {
            self.producers.insert(pid, entry);
        }
        let base_offset = self.log_end_offset;
        self.appended(next, messages, now_ms)?;
        Ok(AppendResult {
            base_offset,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
            leader_epoch,
        })
    }

    fn maybe_roll(
        &mut self,
        bytes: usize,
        batches: usize,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<()> {
        let cfg = &self.config;
        let seg = &self.segments[self.segments.len() - 1];
        if seg.size == 0 {
            return Ok(());
        }
        let max_index_entries = cfg.segment_index_bytes / 8;
        let max_time_entries = cfg.segment_index_bytes / 12;
        let new_size = seg.size.saturating_add(bytes as u64);
        let roll = new_size > cfg.segment_bytes
            || new_size > u64::from(u32::MAX)
            || seg.roll_base_ms.is_some_and(|t| {
                now_ms.saturating_sub(t) >= cfg.segment_ms - cfg.roll_jitter_ms(seg.base_offset)
            })
            || seg.offset_index.len().saturating_add(batches) > max_index_entries
            || seg.time_index.len().saturating_add(batches) > max_time_entries
            || last_offset - seg.base_offset > i64::from(i32::MAX);
        if roll {
            self.roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        let active = self.active();
        active.write_indexes()?;
        active.trim()?;
        let seg = Segment::create(&self.dir, self.log_end_offset, self.config.preallocation())?;
        tracing::debug!(
            "{}: rolled new segment {}",
            self.dir.display(),
            self.log_end_offset
        );
        self.segments.push(seg);
        Ok(())
    }

    /// fsyncs what was appended, without moving the recovery point (no checkpoint file is
    /// written, so a full disk's last free blocks go to the log itself).
    pub fn sync(&mut self) -> Result<()> {
        for s in &mut self.segments {
            s.sync()?;
        }
        Ok(())
    }

    /// fsyncs what was appended and moves the recovery point (and its checkpoint) to the end.
    fn flush(&mut self, now_ms: i64) -> Result<()> {
        self.sync()?;
        self.recovery_point = self.log_end_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = Some(now_ms);
        self.write_checkpoint()
    }

    fn write_checkpoint(&mut self) -> Result<()> {
        checkpoint::write(
            &self.dir,
            Checkpoint {
                recovery_point: self.recovery_point,
                log_start_offset: self.log_start_offset,
            },
        )?;
        // The log start may have moved (retention, DeleteRecords).
        let mut epochs = self.epochs.clone();
        if epochs.truncate_from_start(self.log_start_offset) {
            epochs.write(&self.dir)?;
            self.epochs = epochs;
        }
        Ok(())
    }

    /// Where the records of leader epoch `requested` end (OffsetForLeaderEpoch), for a leader in
    /// `leader_epoch`: the largest epoch not above it that wrote here and the offset after its
    /// last batch, or `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`; see
    /// [`EpochCache::end_offset_for`]. The leader's own epoch starts at the log end even before
    /// its first batch (Kafka records it when the broker becomes leader; here it is recorded,
    /// at the same offset, with that batch, which spares a file write per new leadership).
    pub fn end_offset_for_epoch(&self, requested: i32, leader_epoch: i32) -> (i32, i64) {
        if self
            .epochs
            .latest_epoch()
            .is_none_or(|latest| leader_epoch > latest)
        {
            let mut epochs = self.epochs.clone();
            epochs.assign(leader_epoch, self.log_end_offset);
            return epochs.end_offset_for(requested, self.log_end_offset);
        }
        self.epochs.end_offset_for(requested, self.log_end_offset)
    }

    /// Where the records of epoch `requested` end in this log as it is, with no epoch of its
    /// own beyond what its batches recorded (a follower's view): see [`EpochCache::end_offset_for`].
    pub fn epoch_end(&self, requested: i32) -> (i32, i64) {
        self.epochs.end_offset_for(requested, self.log_end_offset)
    }

    /// The leader epoch that wrote `offset` (`None` before the first known epoch).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.epoch_for_offset(offset)
    }

    /// The leader epochs that wrote to this log and where each began.
    pub fn leader_epochs(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }

    /// Index of the segment that may contain `offset`.
    fn segment_index_for(&self, offset: i64) -> usize {
        let n = self.segments.partition_point(|s| s.base_offset <= offset);
        n.saturating_sub(1)
    }

    /// Reads whole batches starting with the batch containing `offset` (see the crate docs)
    /// into memory: [`PartitionLog::read_slice`]'s batches.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<Bytes> {
        Ok(match self.read_slice(offset, max_bytes, max_offset)? {
            Some(slice) => Bytes::from(slice.read()?),
            None => Bytes::new(),
        })
    }

    /// Where the whole batches from the one containing `offset` lie: as many as fit in
    /// `max_bytes` (the first always, KIP-74), none at or past `max_offset`, within one
    /// segment. `None` when there is nothing to return.
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<FileSlice>> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        if offset == self.log_end_offset || offset >= max_offset {
            return Ok(None);
        }
        for seg in &self.segments[self.segment_index_for(offset)..] {
            if let Some(slice) = seg.read_slice(offset, max_bytes, max_offset)? {
                return Ok((slice.len > 0).then_some(slice));
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// First record (offset, timestamp) with timestamp >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        for seg in &self.segments {
            if seg.batch_count == 0
                || seg.max_timestamp < ts
                || seg.next_offset <= self.log_start_offset
            {
                continue;
            }
            let file = seg.log_file()?;
            let mut pos = seg.time_lookup_position(ts);
            while let Some(h) = seg.header_at(&file, pos)? {
                if h.max_timestamp >= ts && h.last_offset() >= self.log_start_offset {
                    let data = segment::read_at(&file, pos, h.total_len())?;
                    if let Some(found) = find_record(&h, data, self.log_start_offset, |t| t >= ts)?
                    {
                        return Ok(Some(found));
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the (earliest) record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if seg.batch_count == 0 || seg.next_offset <= self.log_start_offset {
                continue;
            }
            if best.is_none_or(|b| seg.max_timestamp > b.max_timestamp) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let max = seg.max_timestamp;
        let Some((pos, h)) = seg.find_batch(seg.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        let data = seg.read_batch(pos, &h)?;
        let found = find_record(&h, data, self.log_start_offset, |t| t >= max)?;
        Ok(Some(found.unwrap_or((
            h.base_offset.max(self.log_start_offset),
            max,
        ))))
    }

    /// Deletes old segments by time and size, only those wholly below `high_watermark` (a
    /// follower may not have copied the rest yet); returns how many were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64, high_watermark: i64) -> Result<usize> {
        let below = |log: &Self| {
            log.segments
                .get(1)
                .is_some_and(|s| s.base_offset <= high_watermark)
        };
        let expired = self
            .producers
            .expire(now_ms, self.config.producer_id_expiration_ms);
        if expired > 0 {
            tracing::debug!("{}: forgot {expired} idle producer ids", self.dir.display());
        }
        let mut deleted = 0usize;
        if self.config.retention_ms >= 0 {
            while below(self) {
                let s = &self.segments[0];
                let expired = s.batch_count == 0
                    || now_ms.saturating_sub(s.max_timestamp) > self.config.retention_ms;
                if !expired {
                    break;
                }
                self.delete_oldest_segment(Some(now_ms))?;
                deleted += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut diff = i64::try_from(self.size_bytes())
                .unwrap_or(i64::MAX)
                .saturating_sub(self.config.retention_bytes);
            while below(self) {
                let size = i64::try_from(self.segments[0].size).unwrap_or(i64::MAX);
                if diff < size {
                    break;
                }
                diff -= size;
                self.delete_oldest_segment(Some(now_ms))?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            self.producers.evict_before(self.log_start_offset);
            self.write_checkpoint()?;
        }
        Ok(deleted)
    }

    fn delete_oldest_segment(&mut self, now_ms: Option<i64>) -> Result<()> {
        let seg = self.segments.remove(0);
        let next_base = self
            .segments
            .first()
            .map_or(self.log_end_offset, |s| s.base_offset);
        self.log_start_offset = self.log_start_offset.max(next_base);
        self.recovery_point = self.recovery_point.max(self.log_start_offset);
        tracing::info!(
            "{}: deleting segment {} (below the new log start)",
            self.dir.display(),
            seg.base_offset
        );
        self.schedule_segment_delete(seg, now_ms)
    }

    /// Renames a removed segment's files to `*.deleted` at once and schedules their removal
    /// after `file.delete.delay.ms` from `now_ms` (or from the next
    /// [`PartitionLog::delete_expired_files`] call when the caller has no clock).
    fn schedule_segment_delete(&mut self, seg: Segment, now_ms: Option<i64>) -> Result<()> {
        for path in seg.rename_to_deleted()? {
            self.schedule_file_delete(path, now_ms);
        }
        Ok(())
    }

    fn schedule_file_delete(&mut self, path: PathBuf, now_ms: Option<i64>) {
        let due = now_ms.map(|now| now.saturating_add(self.config.file_delete_delay_ms.max(0)));
        // A new file of the same name (a cleaned segment deleted again) restarts the delay.
        self.pending_deletes.retain(|(_, p)| *p != path);
        self.pending_deletes.push((due, path));
    }

    /// Removes the `*.deleted` files whose `file.delete.delay.ms` has elapsed at `now_ms`
    /// (called from [`PartitionLog::maybe_flush`]); returns how many were removed.
    pub fn delete_expired_files(&mut self, now_ms: i64) -> usize {
        if self.pending_deletes.is_empty() {
            return 0;
        }
        let delay = self.config.file_delete_delay_ms.max(0);
        let mut removed = 0usize;
        let dir = &self.dir;
        self.pending_deletes.retain_mut(|(due, path)| {
            let due = *due.get_or_insert(now_ms.saturating_add(delay));
            if due > now_ms {
                return true;
            }
            match fs::remove_file(&*path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Left for the next open to remove.
                Err(e) => {
                    tracing::warn!("{}: cannot remove {}: {e}", dir.display(), path.display())
                }
            }
            false
        });
        removed
    }

    /// fsync if flush_ms elapsed since the last flush and there is unflushed data; also removes
    /// deleted segment files whose `file.delete.delay.ms` has elapsed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<()> {
        self.delete_expired_files(now_ms);
        if self.unflushed_messages == 0 {
            return Ok(());
        }
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(last) >= self.config.flush_ms {
            self.flush(now_ms)?;
        }
        Ok(())
    }

    /// Closes the segment files that nothing used since the previous call (syncing unsynced
    /// data first); the next use reopens them. Returns how many were closed.
    pub fn close_idle_files(&mut self) -> Result<usize> {
        let mut closed = 0;
        for s in &mut self.segments {
            closed += usize::from(s.close_if_idle()?);
        }
        Ok(closed)
    }

    /// How many segment files are open.
    #[cfg(test)]
    pub(crate) fn open_files(&mut self) -> usize {
        let mut n = 0;
        for s in &mut self.segments {
            n += usize::from(s.is_open());
        }
        n
    }

    /// Removes every batch from the first one that ends at or after `offset`, durably: what a
    /// follower or a Raft log does when it diverged from its leader. The log then ends at
    /// `offset` (below it if a batch spans it). Truncating to the log start or below empties
    /// the log, which then starts at `offset` ([`PartitionLog::restart_at`]). The log is
    /// reopened from disk afterwards, so indexes, producer state and the cleaner's state are
    /// rebuilt from what is left, as on a restart.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset {
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.restart_at(offset);
        }
        let mut kept = Vec::with_capacity(self.segments.len());
        for segment in std::mem::take(&mut self.segments) {
            if segment.base_offset >= offset && !kept.is_empty() {
                segment.delete_files()?;
            } else {
                kept.push(segment);
            }
        }
        if let Some(last) = kept.last_mut() {
            if let Some((position, _)) = last.find_batch(offset)? {
                let file = last.log_file()?;
                file.set_len(position)?;
                file.sync_all()?;
            }
        }
        drop(kept);
        self.reopen(self.recovery_point.min(offset), self.log_start_offset)
    }

    /// Deletes every batch; the log starts again, empty, at `offset`: what a replica does when
    /// it takes its leader's snapshot (or its leader's log starts past its own end).
    pub fn restart_at(&mut self, offset: i64) -> Result<()> {
        for segment in std::mem::take(&mut self.segments) {
            segment.delete_files()?;
        }
        // No epoch wrote to the empty log (Kafka's truncateFullyAndStartAt clears the cache).
        match fs::remove_file(self.dir.join(crate::epoch_cache::EPOCH_CHECKPOINT_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.reopen(offset, offset)
    }

    /// Writes a checkpoint of `recovery_point` and `log_start_offset`, then opens the log again.
    fn reopen(&mut self, recovery_point: i64, log_start_offset: i64) -> Result<()> {
        checkpoint::write(
            &self.dir,
            Checkpoint {
                recovery_point: recovery_point.max(log_start_offset),
                log_start_offset,
            },
        )?;
        *self = PartitionLog::open(self.dir.clone(), self.config.clone())?;
        Ok(())
    }

    /// fsyncs everything, writes indexes and the checkpoint (recovery point = log end offset);
    /// space allocated ahead of the writes is given back.
    pub fn checkpoint(&mut self) -> Result<()> {
        for s in &mut self.segments {
            s.write_indexes()?;
            s.trim()?;
            s.sync()?;
        }
        self.recovery_point = self.log_end_offset;
        self.unflushed_messages = 0;
        self.write_checkpoint()
    }

    /// Whether everything appended is flushed (the recovery point is the log end).
    pub fn is_flushed(&self) -> bool {
        self.recovery_point == self.log_end_offset
    }

    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Removes the partition directory and all its files.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

/// Decodes one stored batch and returns the first record at or after `min_offset` whose
/// timestamp satisfies `pred`. LogAppendTime batches give every record the batch max timestamp.
fn find_record(
    h: &BatchHeader,
    data: Vec<u8>,
    min_offset: i64,
    pred: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>> {
    if h.timestamp_type() == TimestampType::LogAppendTime {
        if pred(h.max_timestamp) {
            return Ok(Some((h.base_offset.max(min_offset), h.max_timestamp)));
        }
        return Ok(None);
    }
    let mut buf = Bytes::from(data);
    let set = proto_kafka::records::RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| StorageError::CorruptMessage(format!("cannot decode stored batch: {e}")))?;
    Ok(set
        .records
        .iter()
        .find(|r| r.offset >= min_offset && pred(r.timestamp))
        .map(|r| (r.offset, r.timestamp)))
}

/// The epoch cache of a log being opened: the saved one, cut at the log's end and start, with
/// the epochs of the batches past its last entry (appended before a crash) added; rebuilt from
/// the batches (`epoch_starts`, where each epoch's run of batches begins) when none was saved.
/// Written back when it changed (a failed write is only logged: the cache in memory is right,
/// and the next change writes it again).
fn recover_epochs(
    dir: &std::path::Path,
    epoch_starts: Vec<(i32, i64)>,
    log_start_offset: i64,
    log_end_offset: i64,
) -> EpochCache {
    let saved = EpochCache::read(dir);
    let mut epochs = saved.clone().unwrap_or_default();
    epochs.truncate_from_end(log_end_offset);
    let known_until = epochs
        .entries()
        .last()
        .map_or(i64::MIN, |&(_, start)| start);
    for (epoch, start) in epoch_starts {
        if start >= known_until {
            epochs.assign(epoch, start);
        }
    }
    epochs.truncate_from_start(log_start_offset);
    let unchanged = match &saved {
        Some(saved) => *saved == epochs,
        None => epochs.entries().is_empty(),
    };
    if !unchanged {
        if let Err(e) = epochs.write(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the leader-epoch checkpoint");
        }
    }
    epochs
}
