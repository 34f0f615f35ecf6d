//! Key/value records for the broker's own state logs (the metadata log, `__consumer_offsets`):
//! built into v2 batches and replayed from a log. User data never goes through here; the broker
//! stores producers' batches as received.

use bytes::{Bytes, BytesMut};
use proto_kafka::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::batch::{self, BatchHeader};
use crate::error::{Result, StorageError};
use crate::log::PartitionLog;

/// A record's key and value.
pub type Entry = (Option<Bytes>, Option<Bytes>);

/// One uncompressed batch holding `entries` with `timestamp`.
pub fn encode_batch(entries: &[Entry], timestamp: i64) -> Bytes {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp,
            key: key.clone(),
            value: value.clone(),
            headers: vec![],
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("an uncompressed batch of in-memory records always encodes");
    buf.freeze()
}

impl PartitionLog {
    /// Calls `apply(offset, key, value)` for every data record from the log start to its end, in
    /// order (control records are skipped). Used to rebuild state at start-up.
    pub fn replay(
        &self,
        mut apply: impl FnMut(i64, Option<Bytes>, Option<Bytes>) -> Result<()>,
    ) -> Result<()> {
        let mut offset = self.log_start_offset();
        let end = self.log_end_offset();
        while offset < end {
            let mut chunk = self.read(offset, 1 << 20, end)?;
            if chunk.is_empty() {
                break;
            }
            let before = offset;
            // Batch by batch: a compacted batch may have offset gaps or no records at all, so
            // the next offset comes from the batch header, not from the last record.
            while !chunk.is_empty() {
                let h = BatchHeader::parse(&chunk)?;
                let len = h.total_len();
                if len > chunk.len() || h.batch_length < batch::MIN_BATCH_LENGTH {
                    return Err(StorageError::CorruptMessage(format!(
                        "truncated batch at offset {}",
                        h.base_offset
                    )));
                }
                let mut one = chunk.split_to(len);
                let set = RecordBatchDecoder::decode(&mut one).map_err(|e| {
                    StorageError::CorruptMessage(format!(
                        "unreadable batch at offset {}: {e}",
                        h.base_offset
                    ))
                })?;
                for record in set.records {
                    if !record.control {
                        apply(record.offset, record.key, record.value)?;
                    }
                }
                offset = offset.max(h.next_offset());
            }
            if offset == before {
                break;
            }
        }
        Ok(())
    }
}
