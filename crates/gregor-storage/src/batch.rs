//! The v2 RecordBatch header: parse, validate, patch.
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..end), attributes i16 @21,
//! lastOffsetDelta i32 @23, firstTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordsCount i32 @57, records @61.

use crate::config::TimestampType;
use crate::error::{Result, StorageError};

/// Size of the v2 batch header.
pub const HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the first byte covered by the CRC.
pub const CRC_START: usize = 21;
/// Smallest legal batchLength (a header without records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;

const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
/// KIP-534: the batch's first-timestamp field holds its delete horizon (set by the cleaner).
pub(crate) const ATTR_DELETE_HORIZON: i16 = 0x40;

/// A parsed v2 record batch header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf`. No validation beyond the length.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return Err(StorageError::CorruptMessage(format!(
                "record batch header needs {HEADER_LEN} bytes, got {}",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, 17) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            first_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// batchLength + 12: the batch's size in the log. Zero for a negative length.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record: baseOffset + lastOffsetDelta.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// When the cleaner may drop this batch's tombstones (or, for a marker, the marker itself):
    /// set the first time it cleaned the batch, delete.retention.ms later (KIP-534).
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.first_timestamp)
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Sequence number of the last record, wrapping past `i32::MAX` to 0 like Kafka.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let sum = i64::from(self.base_sequence) + i64::from(self.last_offset_delta.max(0));
        if sum > i64::from(i32::MAX) {
            (sum - i64::from(i32::MAX) - 1) as i32
        } else {
            sum as i32
        }
    }
}

/// CRC-32C of a whole batch as stored in its header (bytes 21..end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(CRC_START..).unwrap_or(&[]))
}

/// Checks the framing of the batch at the start of `buf` (length and magic) and returns its
/// total length. `Ok(None)` if fewer than the bytes needed are present (a truncated batch).
pub(crate) fn frame_len(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < 17 {
        return Ok(None);
    }
    let magic = buf[16] as i8;
    if magic != 2 {
        return Err(StorageError::UnsupportedForMessageFormat);
    }
    let batch_length = be_i32(buf, 8);
    if batch_length < MIN_BATCH_LENGTH {
        return Err(StorageError::CorruptMessage(format!(
            "batch length {batch_length} is smaller than the minimum {MIN_BATCH_LENGTH}"
        )));
    }
    Ok(Some(batch_length as usize + LOG_OVERHEAD))
}

/// Validates one complete batch (`buf` is exactly the batch): CRC and record counts.
pub(crate) fn validate_one(buf: &[u8]) -> Result<BatchHeader> {
    let h = BatchHeader::parse(buf)?;
    let crc = compute_crc(buf);
    if crc != h.crc {
        return Err(StorageError::CorruptMessage(format!(
            "record batch CRC mismatch: stored {:#010x}, computed {crc:#010x}",
            h.crc
        )));
    }
    if h.records_count <= 0 {
        return Err(StorageError::InvalidRecord(format!(
            "record batch has records_count {}",
            h.records_count
        )));
    }
    if h.last_offset_delta != h.records_count - 1 {
        return Err(StorageError::InvalidRecord(format!(
            "lastOffsetDelta {} does not match records_count {}",
            h.last_offset_delta, h.records_count
        )));
    }
    Ok(h)
}

/// Validates a batch read back from a segment: CRC, and a record count that fits the offset
/// range. Compaction leaves batches with offset gaps (fewer records than `lastOffsetDelta + 1`)
/// and, for a producer's last batch, no records at all.
pub(crate) fn validate_stored(buf: &[u8]) -> Result<BatchHeader> {
    let h = BatchHeader::parse(buf)?;
    let crc = compute_crc(buf);
    if crc != h.crc {
        return Err(StorageError::CorruptMessage(format!(
            "record batch CRC mismatch: stored {:#010x}, computed {crc:#010x}",
            h.crc
        )));
    }
    if h.records_count < 0
        || h.last_offset_delta < 0
        || i64::from(h.records_count) > i64::from(h.last_offset_delta) + 1
    {
        return Err(StorageError::InvalidRecord(format!(
            "records_count {} does not fit lastOffsetDelta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    Ok(h)
}

/// Validates every batch in `buf` (one or more concatenated v2 batches as a producer sent
/// them): sane length within the buffer, magic 2, size limit, CRC-32C, record count.
pub fn validate_batches(buf: &[u8], max_message_bytes: usize) -> Result<Vec<BatchHeader>> {
    if buf.is_empty() {
        return Err(StorageError::InvalidRecord(
            "no record batch in the request".into(),
        ));
    }
    let mut out = Vec::with_capacity(1);
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let len = match frame_len(rest)? {
            Some(len) => len,
            None => {
                return Err(StorageError::CorruptMessage(format!(
                    "truncated record batch: {} trailing bytes",
                    rest.len()
                )))
            }
        };
        if len > max_message_bytes {
            return Err(StorageError::MessageTooLarge(format!(
                "record batch of {len} bytes exceeds max.message.bytes {max_message_bytes}"
            )));
        }
        if len > rest.len() {
            return Err(StorageError::CorruptMessage(format!(
                "truncated record batch: needs {len} bytes, {} present",
                rest.len()
            )));
        }
        out.push(validate_one(&rest[..len])?);
        pos += len;
    }
    Ok(out)
}

/// The base offset of the first batch of `records` (`None`: no batch).
pub fn first_offset(records: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(records.get(..8)?.try_into().ok()?))
}

/// The (producer id, epoch) of the first batch of `records` if it is a transactional data
/// batch (a produce request carries at most one producer's). `None` also for unreadable input,
/// which the append refuses.
pub fn transactional_producer(records: &[u8]) -> Option<(i64, i16)> {
    let h = BatchHeader::parse(records).ok()?;
    (h.is_transactional() && !h.is_control()).then_some((h.producer_id, h.producer_epoch))
}

/// Appends `v` as a zig-zag varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Reads a zig-zag varint (the record fields of v2 batches) at `pos`, advancing it.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut result: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    Some(((result >> 1) as i64) ^ -((result & 1) as i64))
}

/// What the control batch `batch` (header included) marks: `Some(true)` a commit, `Some(false)`
/// an abort, `None` anything else. Control batches are never compressed; the marker is the first
/// record's key: version (i16), then type (i16: 0 abort, 1 commit).
pub fn control_marker(batch: &[u8]) -> Option<bool> {
    let body = batch.get(HEADER_LEN..)?;
    let mut pos = 0usize;
    read_varint(body, &mut pos)?; // record length
    pos += 1; // attributes
    read_varint(body, &mut pos)?; // timestamp delta
    read_varint(body, &mut pos)?; // offset delta
    if read_varint(body, &mut pos)? < 4 {
        return None;
    }
    let key = body.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Patches baseOffset and partitionLeaderEpoch of the batch at the start of `batch` (both lie
/// outside the CRC).
pub fn patch_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    if batch.len() >= 16 {
        batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
        batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    }
}

/// Marks the batch as LogAppendTime with `now_ms` as its first and max timestamp, and
/// recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_LEN {
        return;
    }
    let attrs = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[27..35].copy_from_slice(&now_ms.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_sequence_wraps() {
        let mut h = BatchHeader::parse(&[0u8; HEADER_LEN]).unwrap();
        h.base_sequence = i32::MAX - 1;
        h.last_offset_delta = 3;
        assert_eq!(h.last_sequence(), 1);
        h.base_sequence = 5;
        assert_eq!(h.last_sequence(), 8);
    }

    #[test]
    fn short_inputs() {
        assert!(BatchHeader::parse(&[0u8; 60]).is_err());
        assert!(matches!(
            validate_batches(&[0u8; 5], 1000),
            Err(StorageError::CorruptMessage(_))
        ));
        assert!(matches!(
            validate_batches(&[], 1000),
            Err(StorageError::InvalidRecord(_))
        ));
    }
}
