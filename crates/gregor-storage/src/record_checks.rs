//! Checks that must read individual records, reporting each bad record by its index in its batch
//! (KIP-467), so that a client fails only those records and knows the others were refused because
//! of a different record. Uncompressed records are read in place (a few varints each, no
//! allocation); compressed batches are read as they are decompressed (`decompress.rs`), in
//! bounded memory, as Kafka's validator streams them.

use std::io::{self, BufRead, Read};
use std::path::Path;

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::decompress::records_reader;
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

/// Where a batch's records are read from: the batch's own bytes, or a decompressing stream.
trait RecordSource {
    fn byte(&mut self) -> Option<u8>;
    /// Skips `n` bytes; false if there are fewer.
    fn skip(&mut self, n: usize) -> bool;
}

impl RecordSource for &[u8] {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.split_first()?;
        *self = rest;
        Some(b)
    }

    fn skip(&mut self, n: usize) -> bool {
        match self.get(n..) {
            Some(rest) => {
                *self = rest;
                true
            }
            None => false,
        }
    }
}

/// Decompressed bytes, read as they are inflated (the skipped ones too: that is the cost of a
/// compressed batch, as in Kafka).
struct Inflating<'a>(Box<dyn BufRead + 'a>);

impl RecordSource for Inflating<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.0.fill_buf().ok()?.first()?;
        self.0.consume(1);
        Some(b)
    }

    fn skip(&mut self, n: usize) -> bool {
        let n = n as u64;
        io::copy(&mut (&mut self.0).take(n), &mut io::sink()).is_ok_and(|copied| copied == n)
    }
}

/// A zig-zag varint and how many bytes it took.
fn varint(src: &mut impl RecordSource) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = src.byte()?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

/// Calls `f(timestamp, has_key)` for each of the `h.records_count` records in `src`.
fn walk_records(
    h: &BatchHeader,
    src: &mut impl RecordSource,
    mut f: impl FnMut(i64, bool),
) -> Result<()> {
    let malformed = || StorageError::CorruptMessage("malformed record in batch".into());
    for _ in 0..h.records_count {
        let (len, _) = varint(src).ok_or_else(malformed)?;
        let len = usize::try_from(len).map_err(|_| malformed())?;
        src.byte().ok_or_else(malformed)?; // attributes
        let (delta, a) = varint(src).ok_or_else(malformed)?;
        let (_, b) = varint(src).ok_or_else(malformed)?; // offset delta
        let (key_len, c) = varint(src).ok_or_else(malformed)?;
        let read = 1 + a + b + c;
        if read > len || !src.skip(len - read) {
            return Err(malformed());
        }
        f(h.first_timestamp.wrapping_add(delta), key_len >= 0);
    }
    Ok(())
}

/// Calls `f(timestamp, has_key)` for each record of the (validated, non-control) batch `raw`.
fn for_each_record(h: &BatchHeader, raw: &[u8], f: impl FnMut(i64, bool)) -> Result<()> {
    let records = &raw[HEADER_LEN..];
    match h.compression() {
        0 => walk_records(h, &mut { records }, f),
        codec => walk_records(h, &mut Inflating(records_reader(codec, records)?), f),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batches;
    use crate::records::encode_batch;
    use crate::test_batches::{batch_of, Spec};
    use bytes::Bytes;
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
        let rules = |earliest, latest| RecordRules {
            partition: Path::new("/data/t-0"),
            compacted: false,
            timestamps: Some((earliest, latest)),
        };
        let invalid_timestamp = proto_kafka::ResponseError::InvalidTimestamp.code();
        // Timestamps go down as well as up, so the header's first and max do not bound them;
        // compressed batches are read record by record too, in every codec.
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let spec = Spec {
                compression,
                ts: 300,
                ts_step: -100,
                ..Spec::default()
            };
            let batch = batch_of(
                &[(None, None), (None, None), (None, None), (None, None)],
                &spec,
            );
            let headers = validate_batches(&batch, usize::MAX).unwrap();
            check(&batch, &headers, &rules(0, 300)).unwrap();
            assert_eq!(
                refused(check(&batch, &headers, &rules(50, 250))),
                (invalid_timestamp, vec![0, 3]),
                "{compression:?}"
            );
        }
    }
}
