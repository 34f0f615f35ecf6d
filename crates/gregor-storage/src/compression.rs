//! Broker-side `compression.type`: when a topic names a codec, producer batches in another codec
//! are decompressed and re-encoded with it (at the topic's `compression.<codec>.level`) before
//! they are appended, as Kafka does; with `producer` (the default) batches are stored exactly as
//! received.

use std::io::Write;

use proto_kafka::records::Compression;

use crate::batch::{compute_crc, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::decompress::{records_reader, XERIAL_HEADER};
use crate::error::{Result, StorageError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BrokerCompression {
    /// Keep the producer's codec.
    #[default]
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl BrokerCompression {
    /// Kafka's names for `compression.type`.
    pub fn parse(name: &str) -> Option<BrokerCompression> {
        Some(match name.trim() {
            "producer" => BrokerCompression::Producer,
            "uncompressed" | "none" => BrokerCompression::Uncompressed,
            "gzip" => BrokerCompression::Gzip,
            "snappy" => BrokerCompression::Snappy,
            "lz4" => BrokerCompression::Lz4,
            "zstd" => BrokerCompression::Zstd,
            _ => return None,
        })
    }

    fn codec(self) -> Option<Compression> {
        match self {
            BrokerCompression::Producer => None,
            BrokerCompression::Uncompressed => Some(Compression::None),
            BrokerCompression::Gzip => Some(Compression::Gzip),
            BrokerCompression::Snappy => Some(Compression::Snappy),
            BrokerCompression::Lz4 => Some(Compression::Lz4),
            BrokerCompression::Zstd => Some(Compression::Zstd),
        }
    }
}

/// Compression levels of the topic (`compression.gzip.level`, `compression.lz4.level`,
/// `compression.zstd.level`), used when batches are re-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionLevels {
    /// 1-9, or -1 for the codec's default (6).
    pub gzip: i32,
    pub lz4: u32,
    pub zstd: i32,
}

const LZ4_DEFAULT_LEVEL: u32 = 9;

impl Default for CompressionLevels {
    /// Kafka's defaults.
    fn default() -> Self {
        CompressionLevels {
            gzip: -1,
            lz4: LZ4_DEFAULT_LEVEL,
            zstd: 3,
        }
    }
}

/// Re-encodes every data batch of `records` (already validated, described by `headers`) whose codec
/// is not the topic's. `None` when every batch may be stored as it is. Records are streamed from
/// the decompressor into the compressor, and a batch that grows past `max_message_bytes` is
/// refused (MESSAGE_TOO_LARGE, as in Kafka) as soon as it does: memory stays bounded by that
/// whatever the producer's batch inflates to.
pub fn recompress(
    records: &[u8],
    headers: &[BatchHeader],
    target: BrokerCompression,
    levels: CompressionLevels,
    max_message_bytes: usize,
) -> Result<Option<Vec<u8>>> {
    let Some(codec) = target.codec() else {
        return Ok(None);
    };
    let needs = |h: &BatchHeader| !h.is_control() && h.compression() != codec as i16;
    if !headers.iter().any(needs) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut pos = 0;
    for h in headers {
        let raw = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if needs(h) {
            reencode(
                raw,
                h.compression(),
                codec,
                levels,
                max_message_bytes,
                &mut out,
            )?;
        } else {
            out.extend_from_slice(raw);
        }
    }
    Ok(Some(out))
}

/// Appends `batch` (with codec `from`) to `out`, its records re-encoded with `to`.
fn reencode(
    batch: &[u8],
    from: i16,
    to: Compression,
    levels: CompressionLevels,
    max_message_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let too_large = || {
        StorageError::MessageTooLarge(format!(
            "record batch re-encoded as {to:?} exceeds max.message.bytes {max_message_bytes}"
        ))
    };
    let records = &batch[HEADER_LEN..];
    let room = max_message_bytes
        .checked_sub(HEADER_LEN)
        .ok_or_else(too_large)?;
    let sink = Bounded {
        out: Vec::with_capacity(records.len().min(room)),
        room,
    };
    let mut writer = RecordsWriter::new(to, levels, sink).map_err(recompress_error)?;
    let copied = if from == 0 {
        writer.write_all(records)
    } else {
        std::io::copy(&mut records_reader(from, records)?, &mut writer).map(drop)
    };
    let compressed = copied
        .and_then(|()| writer.finish())
        .map_err(
            |e| match e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
                true => too_large(),
                false => recompress_error(e),
            },
        )?
        .out;
    let start = out.len();
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&compressed);
    let batch = &mut out[start..];
    let batch_length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) & !0x07 | to as i16;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn recompress_error(e: std::io::Error) -> StorageError {
    StorageError::CorruptMessage(format!("cannot recompress batch: {e}"))
}

/// The error a [`Bounded`] buffer gives when it is full.
#[derive(Debug, thiserror::Error)]
#[error("the re-encoded batch is over max.message.bytes")]
struct OverLimit;

/// A buffer that refuses to grow past `room` bytes.
struct Bounded {
    out: Vec<u8>,
    room: usize,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + data.len() > self.room {
            return Err(std::io::Error::other(OverLimit));
        }
        self.out.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Uncompressed records in, a batch's compressed records section out.
enum RecordsWriter {
    None(Bounded),
    Gzip(flate2::write::GzEncoder<Bounded>),
    Snappy(XerialWriter),
    Lz4(lz4::Encoder<Bounded>),
    Zstd(zstd::stream::write::Encoder<'static, Bounded>),
}

impl RecordsWriter {
    fn new(codec: Compression, levels: CompressionLevels, sink: Bounded) -> std::io::Result<Self> {
        Ok(match codec {
            Compression::None => RecordsWriter::None(sink),
            Compression::Gzip => {
                let level = match levels.gzip {
                    -1 => flate2::Compression::default(),
                    level => flate2::Compression::new(level.clamp(1, 9) as u32),
                };
                RecordsWriter::Gzip(flate2::write::GzEncoder::new(sink, level))
            }
            Compression::Snappy => RecordsWriter::Snappy(XerialWriter::new(sink)?),
            // Independent blocks, as Kafka's Java client writes them; Kafka's default level (9)
            // means lz4's fast compressor, the others its high-compression one.
            Compression::Lz4 => RecordsWriter::Lz4(
                lz4::EncoderBuilder::new()
                    .level(if levels.lz4 == LZ4_DEFAULT_LEVEL {
                        0
                    } else {
                        levels.lz4
                    })
                    .block_mode(lz4::BlockMode::Independent)
                    .build(sink)?,
            ),
            Compression::Zstd => {
                RecordsWriter::Zstd(zstd::stream::write::Encoder::new(sink, levels.zstd)?)
            }
        })
    }

    fn finish(self) -> std::io::Result<Bounded> {
        match self {
            RecordsWriter::None(sink) => Ok(sink),
            RecordsWriter::Gzip(w) => w.finish(),
            RecordsWriter::Snappy(w) => w.finish(),
            RecordsWriter::Lz4(w) => {
                let (sink, result) = w.finish();
                result.map(|()| sink)
            }
            RecordsWriter::Zstd(w) => w.finish(),
        }
    }
}

impl Write for RecordsWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            RecordsWriter::None(w) => w.write(data),
            RecordsWriter::Gzip(w) => w.write(data),
            RecordsWriter::Snappy(w) => w.write(data),
            RecordsWriter::Lz4(w) => w.write(data),
            RecordsWriter::Zstd(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Snappy in the Java client's framing (snappy-java's "xerial" stream): the header, then blocks
/// of up to 32 KiB of input, each compressed alone and prefixed by its big-endian length.
struct XerialWriter {
    sink: Bounded,
    pending: Vec<u8>,
}

const XERIAL_BLOCK: usize = 32 * 1024;

impl XerialWriter {
    fn new(mut sink: Bounded) -> std::io::Result<XerialWriter> {
        sink.write_all(XERIAL_HEADER)?;
        Ok(XerialWriter {
            sink,
            pending: Vec::with_capacity(XERIAL_BLOCK),
        })
    }

    fn write_block(&mut self) -> std::io::Result<()> {
        let block = snap::raw::Encoder::new()
            .compress_vec(&self.pending)
            .map_err(std::io::Error::other)?;
        self.sink.write_all(&(block.len() as u32).to_be_bytes())?;
        self.sink.write_all(&block)?;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Bounded> {
        if !self.pending.is_empty() {
            self.write_block()?;
        }
        Ok(self.sink)
    }
}

impl Write for XerialWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let take = data.len().min(XERIAL_BLOCK - self.pending.len());
        self.pending.extend_from_slice(&data[..take]);
        if self.pending.len() == XERIAL_BLOCK {
            self.write_block()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proto_kafka::records::RecordBatchDecoder;

    use super::*;
    use crate::batch::validate_batches;
    use crate::records::encode_batch;
    use crate::test_batches::{batch_of, Spec};

    const MAX: usize = 1 << 20;

    fn recompress_to(records: &[u8], target: BrokerCompression) -> Result<Option<Vec<u8>>> {
        let headers = validate_batches(records, usize::MAX).unwrap();
        recompress(records, &headers, target, CompressionLevels::default(), MAX)
    }

    fn keyed(n: usize) -> Vec<(Option<Bytes>, Option<Bytes>)> {
        (0..n)
            .map(|i| {
                (
                    Some(Bytes::from(format!("k{i}"))),
                    Some(Bytes::from(format!("value-{i}-").repeat(20))),
                )
            })
            .collect()
    }

    #[test]
    fn recompresses_to_the_topic_codec_and_back() {
        let plain = encode_batch(&keyed(50), 7);
        assert!(recompress_to(&plain, BrokerCompression::Producer)
            .unwrap()
            .is_none());
        assert!(recompress_to(&plain, BrokerCompression::Uncompressed)
            .unwrap()
            .is_none());
        for target in [
            BrokerCompression::Gzip,
            BrokerCompression::Snappy,
            BrokerCompression::Lz4,
            BrokerCompression::Zstd,
        ] {
            let packed = recompress_to(&plain, target).unwrap().unwrap();
            let packed_headers = validate_batches(&packed, usize::MAX).unwrap();
            assert_eq!(packed_headers.len(), 1, "one batch in, one batch out");
            assert_eq!(
                packed_headers[0].compression(),
                target.codec().unwrap() as i16
            );
            assert_eq!(packed_headers[0].records_count, 50);
            assert!(packed.len() < plain.len());
            let back = recompress_to(&packed, BrokerCompression::Uncompressed)
                .unwrap()
                .unwrap();
            let records = RecordBatchDecoder::decode(&mut Bytes::from(back))
                .unwrap()
                .records;
            assert_eq!(records.len(), 50);
            assert_eq!(records[49].key.as_deref(), Some(&b"k49"[..]));
            assert_eq!(records[49].timestamp, 7);
        }
    }

    #[test]
    fn a_batch_that_inflates_past_max_message_bytes_is_refused_as_it_grows() {
        // 64 MiB of zeros in a few KiB of zstd, with the producer's id and sequence.
        let zeros = Bytes::from(vec![0u8; 64 << 20]);
        let spec = Spec {
            compression: Compression::Zstd,
            pid: 7,
            epoch: 2,
            seq: 40,
            ..Spec::default()
        };
        let bomb = batch_of(&[(None, Some(zeros))], &spec);
        assert!(bomb.len() < MAX / 64, "{} bytes", bomb.len());
        assert!(matches!(
            recompress_to(&bomb, BrokerCompression::Uncompressed),
            Err(StorageError::MessageTooLarge(_))
        ));
        // Re-encoded small enough, it is kept, with the producer's fields.
        let packed = recompress_to(&bomb, BrokerCompression::Gzip)
            .unwrap()
            .unwrap();
        let h = &validate_batches(&packed, MAX).unwrap()[0];
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 2, 40)
        );
        assert_eq!(h.compression(), Compression::Gzip as i16);
        let records = RecordBatchDecoder::decode(&mut Bytes::from(packed))
            .unwrap()
            .records;
        assert_eq!(records[0].value.as_ref().map(Bytes::len), Some(64 << 20));
    }
}
