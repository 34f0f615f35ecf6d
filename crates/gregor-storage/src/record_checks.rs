//! Checks that must read individual records, reporting each bad record by its index in its batch
//! (KIP-467), so that a client fails only those records and knows the others were refused because
//! of a different record. Uncompressed records are read in place (a few varints each, no
//! allocation). Compressed batches are decompressed only for compacted topics, as before: the
//! codecs decompress a whole batch into memory with no bound (a small batch can claim gigabytes),
//! so until decompression is streamed with a bound (issue 10) other topics check a compressed
//! batch by its header's first and max timestamps and refuse it whole.

use std::path::Path;

use bytes::Bytes;
use proto_kafka::records::RecordBatchDecoder;

use crate::batch::{read_varint, BatchHeader, HEADER_LEN};
use crate::error::{RecordError, Result, StorageError};

/// What the broker requires of every record of a produced batch.
pub struct RecordRules<'a> {
    /// The partition's directory (named `topic-N`), for the messages.
    pub partition: &'a Path,
    /// Every record needs a key.
    pub compacted: bool,
    /// `[earliest, latest]` for CreateTime timestamps (`message.timestamp.{before,after}.max.ms`);
    /// -1 (no timestamp) is exempt, as in Kafka.
    pub timestamps: Option<(i64, i64)>,
}

/// Calls `f(timestamp, has_key)` for each record of the (validated, non-control) batch `raw`.
fn for_each_record(h: &BatchHeader, raw: &[u8], mut f: impl FnMut(i64, bool)) -> Result<()> {
    let malformed = || StorageError::CorruptMessage("malformed record in batch".into());
    if h.compression() != 0 {
        let set = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(raw))
            .map_err(|e| StorageError::CorruptMessage(format!("cannot read batch: {e}")))?;
        for r in &set.records {
            f(r.timestamp, r.key.is_some());
        }
        return Ok(());
    }
    let body = &raw[HEADER_LEN..];
    let mut pos = 0;
    for _ in 0..h.records_count {
        let len = read_varint(body, &mut pos).ok_or_else(malformed)?;
        let start = pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or_else(malformed)?;
        pos += 1; // attributes
        let delta = read_varint(body, &mut pos).ok_or_else(malformed)?;
        read_varint(body, &mut pos).ok_or_else(malformed)?; // offset delta
        let key_len = read_varint(body, &mut pos).ok_or_else(malformed)?;
        if pos > end {
            return Err(malformed());
        }
        f(h.first_timestamp.wrapping_add(delta), key_len >= 0);
        pos = end;
    }
    Ok(())
}

/// Checks every record of the client batches in `records` against `rules`; the first batch with
/// bad records refuses the whole append, naming them (INVALID_TIMESTAMP if any timestamp is out
/// of range, else INVALID_RECORD).
pub fn check(records: &[u8], headers: &[BatchHeader], rules: &RecordRules) -> Result<()> {
    if !rules.compacted && rules.timestamps.is_none() {
        return Ok(());
    }
    let mut pos = 0;
    for h in headers {
        let raw = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if h.is_control() {
            continue;
        }
        if h.compression() != 0 && !rules.compacted {
            check_header_timestamps(h, rules.timestamps)?;
            continue;
        }
        let mut errors = Vec::new();
        let mut invalid_timestamp = false;
        let mut index = 0;
        for_each_record(h, raw, |timestamp, has_key| {
            let message = match (rules.compacted, rules.timestamps) {
                (true, _) if !has_key => Some(format!(
                    "Compacted topic cannot accept message without key in topic partition \
                     {}",
                    rules
                        .partition
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                )),
                (_, Some((earliest, latest)))
                    if timestamp != -1 && (timestamp < earliest || timestamp > latest) =>
                {
                    invalid_timestamp = true;
                    Some(format!(
                        "Timestamp {timestamp} of message with offset {index} is out of range. \
                         The timestamp should be within [{earliest}, {latest}]"
                    ))
                }
                _ => None,
            };
            if let Some(message) = message {
                errors.push(RecordError {
                    batch_index: index,
                    message,
                });
            }
            index += 1;
        })?;
        if !errors.is_empty() {
            return Err(StorageError::records(invalid_timestamp, errors));
        }
    }
    Ok(())
}

/// A compressed batch's timestamps as its header bounds them (producers write them so).
fn check_header_timestamps(h: &BatchHeader, bounds: Option<(i64, i64)>) -> Result<()> {
    let Some((earliest, latest)) = bounds else {
        return Ok(());
    };
    for ts in [h.first_timestamp, h.max_timestamp] {
        if ts != -1 && (ts < earliest || ts > latest) {
            return Err(StorageError::RecordErrors {
                invalid_timestamp: true,
                message: format!(
                    "Timestamp {ts} of the compressed batch is out of range. The timestamp \
                     should be within [{earliest}, {latest}]"
                ),
                records: Vec::new(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batches;
    use crate::records::encode_batch;
    use crate::test_batches::{batch_of, Spec};
    use proto_kafka::records::Compression;

    fn refused(result: Result<()>) -> (i16, Vec<i32>) {
        let e = result.expect_err("refused");
        let indexes = e.record_errors().iter().map(|r| r.batch_index).collect();
        (e.error_code(), indexes)
    }

    #[test]
    fn compacted_topics_name_each_keyless_record() {
        let record = |i: usize| {
            let key = (i % 3 != 1).then(|| Bytes::from(format!("k{i}")));
            (key, Some(Bytes::from_static(b"v")))
        };
        let rules = RecordRules {
            partition: Path::new("/data/t-0"),
            compacted: true,
            timestamps: None,
        };
        let keyed = encode_batch(&[record(0), record(2)], 1);
        check(
            &keyed,
            &validate_batches(&keyed, usize::MAX).unwrap(),
            &rules,
        )
        .unwrap();
        let entries: Vec<_> = (0..8).map(record).collect();
        let invalid_record = proto_kafka::ResponseError::InvalidRecord.code();
        for compression in [Compression::None, Compression::Lz4, Compression::Gzip] {
            let spec = Spec {
                compression,
                ..Spec::default()
            };
            let mixed = batch_of(&entries, &spec);
            let headers = validate_batches(&mixed, usize::MAX).unwrap();
            assert_eq!(
                refused(check(&mixed, &headers, &rules)),
                (invalid_record, vec![1, 4, 7])
            );
        }
    }

    #[test]
    fn out_of_range_timestamps_are_named_by_record() {
        // Timestamps go down as well as up, so the header's first and max do not bound them.
        let spec = Spec {
            ts: 300,
            ts_step: -100,
            ..Spec::default()
        };
        let batch = batch_of(
            &[(None, None), (None, None), (None, None), (None, None)],
            &spec,
        );
        let headers = validate_batches(&batch, usize::MAX).unwrap();
        let rules = |earliest, latest| RecordRules {
            partition: Path::new("/data/t-0"),
            compacted: false,
            timestamps: Some((earliest, latest)),
        };
        check(&batch, &headers, &rules(0, 300)).unwrap();
        let invalid_timestamp = proto_kafka::ResponseError::InvalidTimestamp.code();
        assert_eq!(
            refused(check(&batch, &headers, &rules(50, 250))),
            (invalid_timestamp, vec![0, 3])
        );
        // A compressed batch is judged by its header (not decompressed) and refused whole.
        let lz4 = Spec {
            compression: Compression::Lz4,
            ts: 100,
            ts_step: 100,
            ..Spec::default()
        };
        let batch = batch_of(&[(None, None), (None, None), (None, None)], &lz4);
        let headers = validate_batches(&batch, usize::MAX).unwrap();
        check(&batch, &headers, &rules(100, 300)).unwrap();
        assert_eq!(
            refused(check(&batch, &headers, &rules(100, 250))),
            (invalid_timestamp, vec![])
        );
    }
}
