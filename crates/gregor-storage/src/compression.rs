//! Broker-side `compression.type`: when a topic names a codec, producer batches in another codec
//! are decompressed and re-encoded with it before they are appended, as Kafka does; with
//! `producer` (the default) batches are stored exactly as received.

use bytes::{Bytes, BytesMut};
use proto_kafka::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use crate::batch::BatchHeader;
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

/// Re-encodes every data batch of `records` (already validated, described by `headers`) whose codec
/// is not the topic's. `None` when every batch may be stored as it is.
pub fn recompress(
    records: &[u8],
    headers: &[BatchHeader],
    target: BrokerCompression,
) -> Result<Option<Vec<u8>>> {
    let Some(codec) = target.codec() else {
        return Ok(None);
    };
    let needs = |h: &BatchHeader| !h.is_control() && h.compression() != codec as i16;
    if !headers.iter().any(needs) {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    let mut pos = 0;
    for h in headers {
        let raw = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if !needs(h) {
            out.extend_from_slice(raw);
            continue;
        }
        let mut bytes = Bytes::copy_from_slice(raw);
        let set = RecordBatchDecoder::decode(&mut bytes)
            .map_err(|e| StorageError::CorruptMessage(format!("cannot decompress batch: {e}")))?;
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut out, &set.records, &options)
            .map_err(|e| StorageError::InvalidRecord(format!("cannot recompress batch: {e}")))?;
    }
    Ok(Some(out.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batches;
    use crate::records::encode_batch;

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
        let headers = validate_batches(&plain, usize::MAX).unwrap();
        assert!(recompress(&plain, &headers, BrokerCompression::Producer)
            .unwrap()
            .is_none());
        assert!(
            recompress(&plain, &headers, BrokerCompression::Uncompressed)
                .unwrap()
                .is_none()
        );
        for target in [
            BrokerCompression::Gzip,
            BrokerCompression::Snappy,
            BrokerCompression::Lz4,
            BrokerCompression::Zstd,
        ] {
            let packed = recompress(&plain, &headers, target).unwrap().unwrap();
            let packed_headers = validate_batches(&packed, usize::MAX).unwrap();
            assert_eq!(packed_headers.len(), 1, "one batch in, one batch out");
            assert_eq!(
                packed_headers[0].compression(),
                target.codec().unwrap() as i16
            );
            assert_eq!(packed_headers[0].records_count, 50);
            assert!(packed.len() < plain.len());
            let back = recompress(&packed, &packed_headers, BrokerCompression::Uncompressed)
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
}
