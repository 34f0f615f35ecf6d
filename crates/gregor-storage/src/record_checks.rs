//! Every record of a produced batch is read whole before the batch is stored, as Kafka's log
//! validator does: a batch whose CRC is right but whose records cannot be read (lengths that leave
//! their record or batch, offset deltas out of order, truncated headers, bytes after the last
//! record, an unknown codec, data that does not decompress) is refused as CORRUPT_MESSAGE, since
//! consumers could not read past it. Checks of the records' contents report each bad record by
//! its index in its batch (KIP-467), so that a client fails only those records and knows the
//! others were refused because of a different record. Uncompressed records are read in place (a
//! few varints each, no allocation, no copy); compressed batches are read as they are
//! decompressed (`decompress.rs`), in bounded memory and up to a bounded size, as Kafka's
//! validator streams them.

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
    /// The most bytes a compressed batch may decompress to (a bomb is refused, not inflated).
    pub max_decompressed_bytes: u64,
}

/// Where a batch's records are read from: the batch's own bytes, or a decompressing stream.
trait RecordSource {
    fn byte(&mut self) -> Option<u8>;
    /// Skips `n` bytes; false if there are fewer.
    fn skip(&mut self, n: usize) -> bool;
    /// Whether every byte was read.
    fn at_end(&mut self) -> bool;
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

    fn at_end(&mut self) -> bool {
        self.is_empty()
    }
}

/// Decompressed bytes, read as they are inflated (the skipped ones too: that is the cost of a
/// compressed batch, as in Kafka), one byte past the size limit at most.
struct Inflating<'a>(io::Take<Box<dyn BufRead + 'a>>);

impl Inflating<'_> {
    /// Whether the data goes on past the limit.
    fn exceeded(&self) -> bool {
        self.0.limit() == 0
    }
}

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

    fn at_end(&mut self) -> bool {
        self.0.fill_buf().is_ok_and(|b| b.is_empty())
    }
}

/// A zig-zag varint of at most `max_bytes` (5 for Kafka's 32-bit varints, 10 for varlongs, as
/// Java's readers enforce) and how many bytes it took.
fn varint(src: &mut impl RecordSource, max_bytes: usize) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let b = src.byte()?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            let fits = max_bytes > 5 || i32::try_from(value).is_ok();
            return fits.then_some((value, i + 1));
        }
    }
    None
}

const VARINT: usize = 5;
const VARLONG: usize = 10;

/// The bytes of one record still to read: every field must fit in them.
struct Record<'s, S> {
    src: &'s mut S,
    left: usize,
}

impl<S: RecordSource> Record<'_, S> {
    fn varint(&mut self, max_bytes: usize) -> Option<i64> {
        let (value, read) = varint(self.src, max_bytes)?;
        self.left = self.left.checked_sub(read)?;
        Some(value)
    }

    fn byte(&mut self) -> Option<u8> {
        self.left = self.left.checked_sub(1)?;
        self.src.byte()
    }

    /// A length-prefixed field (`-1` is null where `nullable`); its bytes are skipped.
    fn field(&mut self, nullable: bool) -> Option<bool> {
        let len = self.varint(VARINT)?;
        if len == -1 && nullable {
            return Some(false);
        }
        let len = usize::try_from(len).ok()?;
        self.left = self.left.checked_sub(len)?;
        self.src.skip(len).then_some(true)
    }
}

/// Reads the `h.records_count` records of `src` whole, as Kafka's `DefaultRecord.readFrom` does
/// (each field within its record, the record's length exactly used, offset deltas counting up
/// from 0, nothing after the last record), calling `f(timestamp, has_key)` for each.
fn walk_records(
    h: &BatchHeader,
    src: &mut impl RecordSource,
    mut f: impl FnMut(i64, bool),
) -> Result<()> {
    for index in 0..h.records_count {
        let malformed = |what: &str| {
            // Kafka's answer to records that cannot be read (INVALID_RECORD: the client does not
            // retry a batch that can never succeed).
            StorageError::InvalidRecord(format!("record {index} of the batch is malformed: {what}"))
        };
        let (len, _) = varint(src, VARINT).ok_or_else(|| malformed("no length"))?;
        let left = usize::try_from(len).map_err(|_| malformed("negative length"))?;
        let mut record = Record { src, left };
        let read = (|| {
            record.byte()?; // attributes
            let timestamp_delta = record.varint(VARLONG)?;
            let offset_delta = record.varint(VARINT)?;
            let has_key = record.field(true)?;
            record.field(true)?; // value
            let headers = record.varint(VARINT)?;
            for _ in 0..headers {
                record.field(false)?; // key: never null
                record.field(true)?;
            }
            Some((timestamp_delta, offset_delta, has_key, headers >= 0))
        })();
        let Some((timestamp_delta, offset_delta, has_key, headers_ok)) = read else {
            return Err(malformed("a field runs past the record or the batch"));
        };
        if !headers_ok {
            return Err(malformed("negative header count"));
        }
        if record.left != 0 {
            return Err(malformed("bytes left over after its last field"));
        }
        if offset_delta != i64::from(index) {
            return Err(malformed(&format!("offset delta {offset_delta}")));
        }
        f(h.first_timestamp.wrapping_add(timestamp_delta), has_key);
    }
    if !src.at_end() {
        return Err(StorageError::InvalidRecord(format!(
            "bytes after the last of the batch's {} records",
            h.records_count
        )));
    }
    Ok(())
}

/// Calls `f(timestamp, has_key)` for each record of the (validated, non-control) batch `raw`.
fn for_each_record(
    h: &BatchHeader,
    raw: &[u8],
    max_decompressed_bytes: u64,
    f: impl FnMut(i64, bool),
) -> Result<()> {
    let records = &raw[HEADER_LEN..];
    match h.compression() {
        0 => walk_records(h, &mut { records }, f),
        codec => {
            let reader = records_reader(codec, records)?.take(max_decompressed_bytes + 1);
            let mut inflating = Inflating(reader);
            let walked = walk_records(h, &mut inflating, f);
            if inflating.exceeded() {
                return Err(StorageError::InvalidRecord(format!(
                    "the batch decompresses to more than {max_decompressed_bytes} bytes"
                )));
            }
            walked
        }
    }
}

/// Checks every record of the client batches in `records` against `rules`; the first batch with
/// bad records refuses the whole append, naming them (INVALID_TIMESTAMP if any timestamp is out
/// of range, else INVALID_RECORD).
pub fn check(records: &[u8], headers: &[BatchHeader], rules: &RecordRules) -> Result<()> {
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
        for_each_record(
            h,
            raw,
            rules.max_decompressed_bytes,
            |timestamp, has_key| {
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
            },
        )?;
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
            max_decompressed_bytes: u64::MAX - 1,
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
            max_decompressed_bytes: u64::MAX - 1,
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
