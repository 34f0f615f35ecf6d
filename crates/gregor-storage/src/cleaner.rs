//! Log compaction (`cleanup.policy=compact`): keep the latest record per key in the inactive
//! part of the log, in the manner of Kafka's LogCleaner.
//!
//! Three phases, so produce and fetch are never blocked for long:
//! 1. [`PartitionLog::cleaning_plan`] (under the log's lock, cheap): picks the inactive segments
//!    old enough to clean and clones their file handles.
//! 2. [`CleaningPlan::execute`] (no lock): builds the key → latest offset map over the dirty
//!    part (from the clean offset on) within a memory budget, then rewrites every planned segment
//!    below the map's end into `NNN.log.cleaned`, fsynced.
//! 3. [`PartitionLog::install_cleaned`] (under the write lock, renames only): swaps them in.
//!
//! Batches keep their base offset, last offset delta, producer fields, sequence and timestamps;
//! removed records leave offset gaps. The last data batch of each producer id is kept (empty if
//! all its records are superseded) so producer state survives a restart.
//!
//! Tombstones, as in Kafka since KIP-534: the first clean that keeps a batch with tombstones
//! gives it a delete horizon (now + `delete.retention.ms`, stored in the batch's first-timestamp
//! field with attribute bit 6; the records' timestamp deltas are rebased so their timestamps do
//! not change); a later clean past the horizon drops them. So a consumer that reads the log
//! within `delete.retention.ms` of a tombstone's first clean sees it, whatever its timestamp. A
//! passed horizon makes the log cleanable even without new writes.
//!
//! Transactions, as in Kafka: only the log below the first open transaction is cleaned (so every
//! transaction in range has ended); batches of aborted transactions are removed; records of
//! committed ones are compacted like any other; a transaction marker stays while any batch of its
//! transaction does; once none is left it gets a delete horizon like a tombstone and goes after
//! it (so a reader can never see transactional data without its marker).
//!
//! Crash safety: `.cleaned` files are renamed to `.swap` in ascending base-offset order (each
//! rename made durable before the next), then each original `.log` is renamed `.deleted`, its
//! `.swap` renamed into place and the `.deleted` file scheduled for removal after
//! `file.delete.delay.ms` (like segments deleted by retention). On open, `.cleaned` files are
//! discarded, `.swap` files completed and (by the log) `.deleted` files removed. Any prefix of swapped
//! segments leaves every key's latest value (a cleaned segment only drops records superseded by
//! later ones, which both the original and the cleaned later segments keep).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use proto_kafka::compression::{self as cmpr, Compressor, Decompressor};

use super::PartitionLog;
use crate::atomic_file;
use crate::batch::{self, read_varint, BatchHeader, HEADER_LEN};
use crate::config::TimestampType;
use crate::error::{Result, StorageError};
use crate::segment::{self, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, LOG_EXT, SWAP_SUFFIX};

/// File holding the clean offset (`0\n<offset>\n`).
const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";
/// Estimated map memory per entry besides the key bytes (hash table slot, offset, `Bytes`).
const MAP_ENTRY_OVERHEAD: usize = 48;

/// The log's cleaner state.
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// Offset below which the log is clean (every key's record is its latest in that range).
    clean_offset: i64,
    /// When tombstones or markers in the clean range become removable (on open: the earliest
    /// horizon any batch header carries).
    next_delete_horizon: Option<i64>,
}

impl CleanerState {
    pub(crate) fn load(
        dir: &Path,
        log_end_offset: i64,
        next_delete_horizon: Option<i64>,
    ) -> CleanerState {
        let clean_offset = read_clean_offset(dir).unwrap_or(0);
        CleanerState {
            clean_offset: clean_offset.clamp(0, log_end_offset.max(0)),
            next_delete_horizon,
        }
    }
}

fn read_clean_offset(dir: &Path) -> Option<i64> {
    let text = fs::read_to_string(dir.join(CLEANER_CHECKPOINT_FILE)).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    lines.next()?.trim().parse().ok().filter(|o: &i64| *o >= 0)
}

fn write_clean_offset(dir: &Path, offset: i64) -> std::io::Result<()> {
    let text = format!("0\n{offset}\n");
    atomic_file::write(&dir.join(CLEANER_CHECKPOINT_FILE), text.as_bytes())
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Resolves what an interrupted clean left behind (called by `PartitionLog::open` before it
/// lists the segments): `.cleaned` files are deleted, `.swap` files replace their originals.
/// (`.deleted` files, of the cleaner and of retention alike, are removed by the log's open.)
pub(crate) fn recover_dir(dir: &Path) -> Result<()> {
    atomic_file::remove_leftover(&dir.join(CLEANER_CHECKPOINT_FILE));
    let mut swaps = Vec::new();
    let mut junk = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            junk.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Some(base) = segment::parse_file_name(stem, LOG_EXT) {
                swaps.push(base);
            } else {
                junk.push(entry.path());
            }
        }
    }
    swaps.sort_unstable();
    for base in swaps {
        tracing::info!(
            "{}: completing interrupted swap of cleaned segment {base}",
            dir.display()
        );
        fs::rename(
            segment::log_path_with(dir, base, SWAP_SUFFIX),
            segment::file_path(dir, base, LOG_EXT),
        )?;
    }
    for path in junk {
        remove_if_exists(&path)?;
    }
    atomic_file::sync_dir(dir);
    Ok(())
}

/// Statistics of one clean.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes read from segment files (map building and rewriting).
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Bytes of the original segments that were replaced.
    pub bytes_replaced: u64,
    /// Records removed (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Of those, expired tombstones.
    pub tombstones_removed: u64,
    /// Batches removed entirely.
    pub batches_removed: u64,
    /// Distinct keys in the offset map.
    pub map_keys: u64,
    /// True if the offset map filled before the end of the dirty range (a partial clean).
    pub map_full: bool,
    /// Segments rewritten.
    pub segments_cleaned: usize,
    /// The clean offset after this clean.
    pub clean_offset: i64,
    /// The earliest delete horizon still to come in the cleaned range: when it passes, the
    /// log is worth cleaning again even without new writes.
    pub next_delete_horizon: Option<i64>,
}

struct PlannedSegment {
    base_offset: i64,
    size: u64,
    file: Arc<File>,
}

/// The segments to clean and the range to clean, from [`PartitionLog::cleaning_plan`].
pub struct CleaningPlan {
    dir: PathBuf,
    segments: Vec<PlannedSegment>,
    /// Start of the dirty range (where the offset map starts).
    first_dirty: i64,
    /// Offset after the last planned segment.
    end_offset: i64,
    delete_retention_ms: i64,
    index_interval: usize,
    /// Producer id → last offset of its newest data batch anywhere in the log.
    producer_last: HashMap<i64, i64>,
    /// Producer id → (first, last offset) of its aborted transactions in the plan.
    aborted: HashMap<i64, Vec<(i64, i64)>>,
}

impl std::fmt::Debug for CleaningPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleaningPlan")
            .field("dir", &self.dir)
            .field(
                "segments",
                &self
                    .segments
                    .iter()
                    .map(|s| s.base_offset)
                    .collect::<Vec<_>>(),
            )
            .field("first_dirty", &self.first_dirty)
            .field("end_offset", &self.end_offset)
            .finish()
    }
}

struct CleanedSegment {
    original_size: u64,
    segment: Option<Segment>,
    /// Offsets of the abort markers this clean removed (their transactions' records are gone).
    dropped_aborts: Vec<i64>,
}

/// Cleaned segment files written by [`CleaningPlan::execute`], to be installed with
/// [`PartitionLog::install_cleaned`]. Dropping it without installing deletes the files.
pub struct CleanedSegments {
    dir: PathBuf,
    segments: Vec<CleanedSegment>,
    stats: CleanStats,
}

impl std::fmt::Debug for CleanedSegments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanedSegments")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl CleanedSegments {
    pub fn stats(&self) -> &CleanStats {
        &self.stats
    }
}

impl Drop for CleanedSegments {
    fn drop(&mut self) {
        for c in &mut self.segments {
            if let Some(s) = c.segment.take() {
                let path = segment::log_path_with(&self.dir, s.base_offset, CLEANED_SUFFIX);
                drop(s);
                let _ = fs::remove_file(path);
            }
        }
    }
}

impl PartitionLog {
    /// The offset up to which the log is clean.
    pub fn clean_offset(&self) -> i64 {
        self.cleaner.clean_offset.max(self.log_start_offset)
    }

    /// A plan if the log is compacted and worth cleaning: dirty ratio >=
    /// `min_cleanable_dirty_ratio`, or a dirty record older than `max_compaction_lag_ms`. The
    /// plan covers the inactive segments from the log start whose records are all older than
    /// `min_compaction_lag_ms` (never the active segment). Cheap: no data is read.
    pub fn cleaning_plan(&self, now_ms: i64) -> Option<CleaningPlan> {
        let cfg = &self.config;
        if !cfg.compact || self.segments.len() < 2 {
            return None;
        }
        let lag_limit = now_ms.saturating_sub(cfg.min_compaction_lag_ms.max(0));
        let inactive = &self.segments[..self.segments.len() - 1];
        // Open transactions are not cleaned: whether their data stays is not decided yet.
        let unstable = self.producers.first_unstable_offset().unwrap_or(i64::MAX);
        let n = inactive
            .iter()
            .take_while(|s| s.max_timestamp <= lag_limit && s.next_offset <= unstable)
            .count();
        let cleanable = &inactive[..n];
        let end_offset = cleanable.last()?.next_offset;
        let first_dirty = self.clean_offset();
        // Tombstones or markers whose delete horizon passed: clean even without new writes.
        let horizon_passed = self
            .cleaner
            .next_delete_horizon
            .is_some_and(|h| h <= now_ms);
        if first_dirty >= end_offset && !horizon_passed {
            return None;
        }
        let total: u64 = cleanable.iter().map(|s| s.size).sum();
        let clean: u64 = cleanable
            .iter()
            .filter(|s| s.next_offset <= first_dirty)
            .map(|s| s.size)
            .sum();
        let dirty = total - clean;
        if dirty == 0 && !horizon_passed {
            return None;
        }
        let ratio = dirty as f64 / total as f64;
        let overdue = cfg.max_compaction_lag_ms < i64::MAX
            && self
                .first_dirty_timestamp(cleanable, first_dirty)
                .is_some_and(|ts| now_ms.saturating_sub(ts) > cfg.max_compaction_lag_ms);
        if ratio < cfg.min_cleanable_dirty_ratio && !overdue && !horizon_passed {
            return None;
        }
        let mut segments = Vec::with_capacity(cleanable.len());
        for s in cleanable {
            match s.log_file() {
                Ok(file) => segments.push(PlannedSegment {
                    base_offset: s.base_offset,
                    size: s.size,
                    file,
                }),
                Err(e) => {
                    tracing::warn!("{}: cannot plan a clean: {e}", self.dir.display());
                    return None;
                }
            }
        }
        Some(CleaningPlan {
            dir: self.dir.clone(),
            segments,
            first_dirty,
            end_offset,
            delete_retention_ms: cfg.delete_retention_ms,
            index_interval: cfg.index_interval_bytes,
            producer_last: self.producers.last_batch_offsets(),
            aborted: self
                .producers
                .aborted_between(self.log_start_offset, end_offset)
                .into_iter()
                .fold(HashMap::new(), |mut by_producer, a| {
                    by_producer
                        .entry(a.producer_id)
                        .or_insert_with(Vec::new)
                        .push((a.first_offset, a.last_offset));
                    by_producer
                }),
        })
    }

    /// Timestamp of the first dirty batch (one header read).
    fn first_dirty_timestamp(&self, cleanable: &[Segment], first_dirty: i64) -> Option<i64> {
        let seg = cleanable.iter().find(|s| s.next_offset > first_dirty)?;
        let (_, h) = seg.find_batch(first_dirty).ok()??;
        Some(if h.timestamp_type() == TimestampType::LogAppendTime {
            h.max_timestamp
        } else {
            h.first_timestamp
        })
    }

    /// Installs a finished clean: renames the cleaned files over their originals (crash-safely,
    /// see the module docs) and replaces the in-memory segments. Segments deleted meanwhile (by
    /// retention) are skipped; if an original changed size (another clean), nothing is installed.
    pub fn install_cleaned(&mut self, mut cleaned: CleanedSegments) -> Result<CleanStats> {
        if cleaned.dir != self.dir {
            return Err(StorageError::InvalidRecord(
                "cleaned segments belong to another log".into(),
            ));
        }
        let active_base = self.segments.last().map_or(i64::MAX, |s| s.base_offset);
        let mut targets: Vec<(usize, CleanedSegment)> = Vec::new();
        for c in std::mem::take(&mut cleaned.segments) {
            let Some(base) = c.segment.as_ref().map(|s| s.base_offset) else {
                continue;
            };
            let found = self.segments.binary_search_by_key(&base, |s| s.base_offset);
            match found {
                Ok(i) if base != active_base => {
                    if self.segments[i].size != c.original_size {
                        cleaned.segments.push(c);
                        for (_, t) in targets {
                            cleaned.segments.push(t);
                        }
                        return Err(StorageError::InvalidRecord(format!(
                            "segment {base} changed since it was cleaned; clean discarded"
                        )));
                    }
                    targets.push((i, c));
                }
                // Deleted by retention meanwhile (or became active, which cannot happen):
                // dropping `c` inside `cleaned` removes its file.
                _ => cleaned.segments.push(c),
            }
        }
        let dir = self.dir.clone();
        // Phase 1: .cleaned → .swap, ascending, each durable before the next.
        for (_, c) in &targets {
            if let Some(s) = &c.segment {
                fs::rename(
                    segment::log_path_with(&dir, s.base_offset, CLEANED_SUFFIX),
                    segment::log_path_with(&dir, s.base_offset, SWAP_SUFFIX),
                )?;
                atomic_file::sync_dir(&dir);
            }
        }
        // Phase 2: original → .deleted, .swap → original name, .deleted removed after the delay.
        for (i, c) in &mut targets {
            let Some(mut new_seg) = c.segment.take() else {
                continue;
            };
            let base = new_seg.base_offset;
            let final_path = segment::file_path(&dir, base, LOG_EXT);
            let deleted = segment::log_path_with(&dir, base, DELETED_SUFFIX);
            fs::rename(&final_path, &deleted)?;
            fs::rename(segment::log_path_with(&dir, base, SWAP_SUFFIX), &final_path)?;
            atomic_file::sync_dir(&dir);
            new_seg.write_indexes()?;
            cleaned.stats.bytes_replaced += self.segments[*i].size;
            // The old segment's handle closes here; readers holding clones keep reading it.
            self.segments[*i] = new_seg;
            // A read_committed fetch must not hear of an aborted range no marker closes.
            self.producers.forget_aborted(&c.dropped_aborts);
            self.schedule_file_delete(deleted, None);
        }
        // Empty segments between others are dropped (the first one stays: it keeps offsets
        // below it out of range).
        let last = self.segments.len() - 1;
        let mut i = 1;
        let mut end = last;
        while i < end {
            if self.segments[i].size == 0 {
                let s = self.segments.remove(i);
                self.schedule_segment_delete(s, None)?;
                end -= 1;
            } else {
                i += 1;
            }
        }
        let new_clean = cleaned.stats.clean_offset.max(self.cleaner.clean_offset);
        self.cleaner.clean_offset = new_clean;
        self.cleaner.next_delete_horizon = cleaned.stats.next_delete_horizon;
        write_clean_offset(&dir, new_clean)?;
        Ok(cleaned.stats.clone())
    }
}

/// One record of a decoded batch, as byte ranges into the decompressed records.
struct RawRecord {
    offset: i64,
    /// The timestamp delta as stored (relative to the batch's first-timestamp field).
    ts_delta: i64,
    /// Key range, `None` for a null key.
    key: Option<(usize, usize)>,
    null_value: bool,
    /// The whole record including its length prefix.
    raw: (usize, usize),
    /// Where the attributes byte is, and where the fields after the timestamp delta start.
    attr_pos: usize,
    after_ts: usize,
}

impl RawRecord {
    fn is_tombstone(&self) -> bool {
        self.key.is_some() && self.null_value
    }
}

fn read_bytes_field(buf: &[u8], pos: &mut usize, end: usize) -> Option<Option<(usize, usize)>> {
    let len = read_varint(buf, pos)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let start = *pos;
    let stop = start.checked_add(len)?;
    if stop > end {
        return None;
    }
    *pos = stop;
    Some(Some((start, stop)))
}

fn decompress(codec: i16, payload: &[u8]) -> Option<Vec<u8>> {
    fn run<D: Decompressor<Bytes>>(payload: &[u8]) -> Option<Vec<u8>> {
        let mut b = Bytes::copy_from_slice(payload);
        D::decompress(&mut b, |d| Ok(d.copy_to_bytes(d.remaining()).to_vec())).ok()
    }
    match codec {
        0 => Some(payload.to_vec()),
        1 => run::<cmpr::Gzip>(payload),
        2 => run::<cmpr::Snappy>(payload),
        3 => run::<cmpr::Lz4>(payload),
        4 => run::<cmpr::Zstd>(payload),
        _ => None,
    }
}

fn compress(codec: i16, raw: &[u8]) -> Option<Vec<u8>> {
    fn run<C: Compressor<Vec<u8>>>(raw: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        C::compress(&mut out, |b| {
            b.put_slice(raw);
            Ok(())
        })
        .ok()?;
        Some(out)
    }
    match codec {
        0 => Some(raw.to_vec()),
        1 => run::<cmpr::Gzip>(raw),
        2 => run::<cmpr::Snappy>(raw),
        3 => run::<cmpr::Lz4>(raw),
        4 => run::<cmpr::Zstd>(raw),
        _ => None,
    }
}

/// Decompresses and parses the records of a whole stored batch. `None` if anything about it is
/// inconsistent (bad CRC, codec, framing, counts or offsets): such a batch is kept untouched.
fn decode_records(data: &[u8], h: &BatchHeader) -> Option<(Vec<u8>, Vec<RawRecord>)> {
    if data.len() < HEADER_LEN || batch::compute_crc(data) != h.crc || h.records_count < 0 {
        return None;
    }
    let body = decompress(h.compression(), &data[HEADER_LEN..])?;
    let count = usize::try_from(h.records_count).ok()?;
    let mut records = Vec::with_capacity(count.min(body.len()));
    let mut pos = 0usize;
    let mut prev_delta = -1i64;
    for _ in 0..count {
        let start = pos;
        let len = usize::try_from(read_varint(&body, &mut pos)?).ok()?;
        let end = pos.checked_add(len)?;
        if end > body.len() {
            return None;
        }
        let attr_pos = pos;
        pos = pos.checked_add(1)?; // attributes
        let ts_delta = read_varint(&body, &mut pos)?;
        let after_ts = pos;
        let offset_delta = read_varint(&body, &mut pos)?;
        if offset_delta <= prev_delta || offset_delta > i64::from(h.last_offset_delta) {
            return None;
        }
        prev_delta = offset_delta;
        let key = read_bytes_field(&body, &mut pos, end)?;
        let value = read_bytes_field(&body, &mut pos, end)?;
        if pos > end {
            return None;
        }
        records.push(RawRecord {
            offset: h.base_offset.checked_add(offset_delta)?,
            ts_delta,
            key,
            null_value: value.is_none(),
            raw: (start, end),
            attr_pos,
            after_ts,
        });
        pos = end;
    }
    if pos != body.len() {
        return None;
    }
    Some((body, records))
}

/// A batch with the header fields of `h` (and `data`'s attributes) holding `records`
/// (already encoded, uncompressed), compressed with the batch's codec. With no records the
/// batch is written uncompressed and empty, as Kafka keeps a producer's last batch.
fn build_batch(
    data: &[u8],
    h: &BatchHeader,
    records: &[u8],
    count: i32,
    horizon: Option<i64>,
) -> Option<Vec<u8>> {
    let (mut attributes, payload) = if count == 0 {
        (h.attributes & !0x07, Vec::new())
    } else {
        (h.attributes, compress(h.compression(), records)?)
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(data.get(..HEADER_LEN)?);
    out.extend_from_slice(&payload);
    let batch_length = i32::try_from(out.len() - batch::LOG_OVERHEAD).ok()?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    if let Some(horizon) = horizon {
        // The records' timestamp deltas must already be relative to the horizon.
        attributes |= batch::ATTR_DELETE_HORIZON;
        out[27..35].copy_from_slice(&horizon.to_be_bytes());
    }
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Some(out)
}

/// `records` re-encoded with their timestamp deltas relative to `new_base` instead of the
/// batch's first timestamp `old_base` (their timestamps do not change).
fn rebased(body: &[u8], records: &[&RawRecord], old_base: i64, new_base: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8 * records.len());
    let mut fields = Vec::new();
    for r in records {
        fields.clear();
        fields.push(body[r.attr_pos]);
        let timestamp = old_base.wrapping_add(r.ts_delta);
        batch::write_varint(&mut fields, timestamp.wrapping_sub(new_base));
        fields.extend_from_slice(&body[r.after_ts..r.raw.1]);
        batch::write_varint(&mut out, fields.len() as i64);
        out.extend_from_slice(&fields);
    }
    out
}

/// What happens to one batch.
enum Outcome {
    Keep,
    Replace(Vec<u8>),
    Drop,
}

struct Filter<'a> {
    map: &'a HashMap<Bytes, i64>,
    map_end: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    remove_tombstones: bool,
}

impl PlannedSegment {
    /// Headers (with positions) of every batch; an error on broken framing.
    fn scan(&self) -> Result<Vec<(u64, BatchHeader)>> {
        let mut out = Vec::new();
        let mut pos = 0u64;
        let mut hdr = [0u8; HEADER_LEN];
        while pos < self.size {
            if self.size - pos < HEADER_LEN as u64 {
                return Err(StorageError::CorruptMessage(format!(
                    "torn batch at position {pos} of segment {}",
                    self.base_offset
                )));
            }
            self.file.read_exact_at(&mut hdr, pos)?;
            let h = BatchHeader::parse(&hdr)?;
            if h.magic != 2
                || h.batch_length < batch::MIN_BATCH_LENGTH
                || pos + h.total_len() as u64 > self.size
                || h.last_offset_delta < 0
            {
                return Err(StorageError::CorruptMessage(format!(
                    "bad batch at position {pos} of segment {}",
                    self.base_offset
                )));
            }
            pos += h.total_len() as u64;
            out.push((pos - h.total_len() as u64, h));
        }
        Ok(out)
    }

    fn read(&self, pos: u64, h: &BatchHeader) -> Result<Vec<u8>> {
        segment::read_at(&self.file, pos, h.total_len())
    }
}

impl CleaningPlan {
    /// Base offsets of the planned segments.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    /// Runs the clean without any lock: builds the offset map over the dirty range within
    /// `map_budget_bytes` (stopping at a batch boundary when full; the first keyed batch is
    /// always taken so a clean always progresses), then writes fsynced `.cleaned` files for the
    /// planned segments below the map's end that change. `throttle` gets the bytes read.
    pub fn execute(
        self,
        now_ms: i64,
        map_budget_bytes: usize,
        throttle: &mut dyn FnMut(usize),
    ) -> Result<CleanedSegments> {
        let mut stats = CleanStats::default();
        let mut out = CleanedSegments {
            dir: self.dir.clone(),
            segments: Vec::new(),
            stats: CleanStats::default(),
        };

        let scans = self
            .segments
            .iter()
            .map(PlannedSegment::scan)
            .collect::<Result<Vec<_>>>()?;

        // Last data batch (by base offset) of each producer within the plan.
        let mut last_in_plan: HashMap<i64, i64> = HashMap::new();
        for h in scans.iter().flatten().map(|(_, h)| h) {
            if h.producer_id >= 0 && !h.is_control() {
                last_in_plan.insert(h.producer_id, h.base_offset);
            }
        }
        let aborted = |h: &BatchHeader| {
            h.is_transactional()
                && !h.is_control()
                && self.aborted.get(&h.producer_id).is_some_and(|ranges| {
                    ranges
                        .iter()
                        .any(|&(first, last)| (first..=last).contains(&h.base_offset))
                })
        };

        // Phase 1: the offset map over [first_dirty, end).
        let mut map: HashMap<Bytes, i64> = HashMap::new();
        let mut used = 0usize;
        let mut map_end = self.end_offset;
        let mut undecodable = false;
        'build: for (seg, batches) in self.segments.iter().zip(&scans) {
            for (pos, h) in batches {
                if h.next_offset() <= self.first_dirty || h.is_control() || aborted(h) {
                    continue;
                }
                let data = seg.read(*pos, h)?;
                throttle(data.len());
                stats.bytes_read += data.len() as u64;
                let Some((body, records)) = decode_records(&data, h) else {
                    undecodable = true;
                    continue;
                };
                let mut cost = 0usize;
                for r in &records {
                    if let Some((a, b)) = r.key {
                        if !map.contains_key(&body[a..b]) {
                            cost = cost.saturating_add(b - a + MAP_ENTRY_OVERHEAD);
                        }
                    }
                }
                if !map.is_empty() && used.saturating_add(cost) > map_budget_bytes {
                    map_end = h.base_offset;
                    stats.map_full = true;
                    break 'build;
                }
                used = used.saturating_add(cost);
                // Keys are copied out: a slice would keep the whole decompressed batch alive, and
                // the map would outgrow log.cleaner.dedupe.buffer.size.
                for r in &records {
                    if let Some((a, b)) = r.key {
                        match map.get_mut(&body[a..b]) {
                            Some(offset) => *offset = r.offset,
                            None => {
                                map.insert(Bytes::copy_from_slice(&body[a..b]), r.offset);
                            }
                        }
                    }
                }
            }
        }
        stats.map_keys = map.len() as u64;

        // Phase 2: rewrite the planned segments below map_end.
        let filter = Filter {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: self.delete_retention_ms.max(0),
            // A tombstone may go only if no record of its key can hide where the cleaner
            // cannot see (undecodable batches).
            remove_tombstones: !undecodable,
        };
        // Producers whose current transaction still has a batch in the output (its marker stays).
        let mut txn_data_kept: HashSet<i64> = HashSet::new();
        for (seg, batches) in self.segments.iter().zip(&scans) {
            if seg.base_offset >= map_end {
                break;
            }
            let mut new_seg = Segment::create_cleaned(&self.dir, seg.base_offset)?;
            // From here on, dropping `out` removes this file on any error.
            let mut changed = false;
            let mut dropped_aborts = Vec::new();
            let mut seg_stats = CleanStats::default();
            let result = (|| -> Result<()> {
                for (pos, h) in batches {
                    let data = seg.read(*pos, h)?;
                    throttle(data.len());
                    seg_stats.bytes_read += data.len() as u64;
                    let protected = h.producer_id >= 0
                        && last_in_plan.get(&h.producer_id) == Some(&h.base_offset)
                        && self
                            .producer_last
                            .get(&h.producer_id)
                            .is_none_or(|&l| l <= h.last_offset());
                    let outcome = if h.is_control() {
                        filter.marker(&data, h, &mut txn_data_kept, &mut seg_stats)
                    } else if aborted(h) {
                        seg_stats.records_removed += h.records_count.max(0) as u64;
                        if protected {
                            build_batch(&data, h, &[], 0, None)
                                .map_or(Outcome::Keep, Outcome::Replace)
                        } else {
                            Outcome::Drop
                        }
                    } else {
                        filter.batch(&data, h, protected, &mut seg_stats)
                    };
                    if h.is_transactional() && !h.is_control() && !matches!(outcome, Outcome::Drop)
                    {
                        txn_data_kept.insert(h.producer_id);
                    }
                    let bytes = match &outcome {
                        Outcome::Keep => &data[..],
                        Outcome::Replace(b) => &b[..],
                        Outcome::Drop => {
                            changed = true;
                            seg_stats.batches_removed += 1;
                            if h.is_control() && batch::control_marker(&data) == Some(false) {
                                dropped_aborts.push(h.base_offset);
                            }
                            continue;
                        }
                    };
                    if matches!(outcome, Outcome::Replace(_)) {
                        changed = true;
                    }
                    let nh = BatchHeader::parse(bytes)?;
                    new_seg.append(
                        &mut [std::io::IoSlice::new(bytes)],
                        bytes.len(),
                        std::slice::from_ref(&nh),
                        now_ms,
                        self.index_interval,
                    )?;
                    seg_stats.bytes_written += bytes.len() as u64;
                }
                Ok(())
            })();
            let path = segment::log_path_with(&self.dir, seg.base_offset, CLEANED_SUFFIX);
            if let Err(e) = result {
                drop(new_seg);
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            stats.bytes_read += seg_stats.bytes_read;
            stats.records_removed += seg_stats.records_removed;
            stats.tombstones_removed += seg_stats.tombstones_removed;
            stats.batches_removed += seg_stats.batches_removed;
            stats.next_delete_horizon =
                match (stats.next_delete_horizon, seg_stats.next_delete_horizon) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            if !changed {
                drop(new_seg);
                remove_if_exists(&path)?;
                continue;
            }
            new_seg.roll_base_ms = None;
            if let Err(e) = new_seg.sync_all() {
                drop(new_seg);
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            stats.bytes_written += seg_stats.bytes_written;
            stats.segments_cleaned += 1;
            out.segments.push(CleanedSegment {
                original_size: seg.size,
                segment: Some(new_seg),
                dropped_aborts,
            });
        }
        stats.clean_offset = map_end;
        out.stats = stats;
        Ok(out)
    }
}

impl Filter<'_> {
    /// The delete horizon this clean gives a batch that keeps tombstones (or a marker).
    fn new_horizon(&self) -> i64 {
        self.now_ms.saturating_add(self.delete_retention_ms)
    }

    /// Remembers a horizon, so the log is cleaned again when it passes. (A horizon that had
    /// passed before this clean and still kept its batch, e.g. beyond the map, is not one.)
    fn pending(&self, horizon: i64, stats: &mut CleanStats) {
        stats.next_delete_horizon = Some(
            stats
                .next_delete_horizon
                .map_or(horizon, |h| h.min(horizon)),
        );
    }

    /// A transaction marker stays while a batch of its transaction is kept (it tells readers
    /// whether that data counts). Without any, it gets a delete horizon on its first clean and
    /// goes in a clean after it (KIP-534), so a reader has delete.retention.ms to see it.
    fn marker(
        &self,
        data: &[u8],
        h: &BatchHeader,
        txn_data_kept: &mut HashSet<i64>,
        stats: &mut CleanStats,
    ) -> Outcome {
        if txn_data_kept.remove(&h.producer_id) {
            return Outcome::Keep;
        }
        match h.delete_horizon() {
            Some(horizon) if horizon <= self.now_ms => Outcome::Drop,
            Some(horizon) => {
                self.pending(horizon, stats);
                Outcome::Keep
            }
            None => {
                let Some((body, records)) = decode_records(data, h) else {
                    return Outcome::Keep;
                };
                let horizon = self.new_horizon();
                self.pending(horizon, stats);
                let all: Vec<&RawRecord> = records.iter().collect();
                let rebased = rebased(&body, &all, h.first_timestamp, horizon);
                build_batch(data, h, &rebased, h.records_count, Some(horizon))
                    .map_or(Outcome::Keep, Outcome::Replace)
            }
        }
    }

    /// A data batch (of no transaction, or of a committed one): superseded records go;
    /// tombstones get a delete horizon on their first clean and go in a clean after it.
    fn batch(
        &self,
        data: &[u8],
        h: &BatchHeader,
        protected: bool,
        stats: &mut CleanStats,
    ) -> Outcome {
        if h.records_count == 0 {
            return Outcome::Keep;
        }
        let Some((body, records)) = decode_records(data, h) else {
            return Outcome::Keep;
        };
        let horizon = h.delete_horizon();
        let horizon_passed = horizon.is_some_and(|hz| hz <= self.now_ms);
        let mut kept: Vec<&RawRecord> = Vec::with_capacity(records.len());
        let mut removed = 0u64;
        for r in &records {
            let key = r.key.map(|(a, b)| &body[a..b]);
            let superseded = key
                .and_then(|k| self.map.get(k))
                .is_some_and(|&latest| r.offset < latest);
            let expired_tombstone = self.remove_tombstones
                && r.is_tombstone()
                && r.offset < self.map_end
                && horizon_passed;
            if superseded || expired_tombstone {
                removed += 1;
                if expired_tombstone && !superseded {
                    stats.tombstones_removed += 1;
                }
            } else {
                kept.push(r);
            }
        }
        let keeps_tombstones = kept.iter().any(|r| r.is_tombstone());
        // Tombstones in the cleaned range (below the map's end) start their delete.retention.ms.
        let set_horizon = horizon.is_none() && keeps_tombstones && h.base_offset < self.map_end;
        if let Some(hz) = horizon.filter(|&hz| keeps_tombstones && hz > self.now_ms) {
            self.pending(hz, stats);
        }
        if removed == 0 && !set_horizon {
            return Outcome::Keep;
        }
        let count = kept.len() as i32;
        if count == 0 && !protected {
            stats.records_removed += removed;
            return Outcome::Drop;
        }
        let (bytes, new_horizon) = if set_horizon {
            let hz = self.new_horizon();
            self.pending(hz, stats);
            (rebased(&body, &kept, h.first_timestamp, hz), Some(hz))
        } else {
            let mut raw = Vec::with_capacity(body.len());
            for r in &kept {
                raw.extend_from_slice(&body[r.raw.0..r.raw.1]);
            }
            (raw, None)
        };
        match build_batch(data, h, &bytes, count, new_horizon) {
            Some(b) => {
                stats.records_removed += removed;
                Outcome::Replace(b)
            }
            None => Outcome::Keep,
        }
    }
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
