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
    encode_entries(entries, timestamp, None)
}

/// One uncompressed batch of `entries` in the transaction of (producer id, epoch); no sequence
/// numbers, as Kafka's coordinators write theirs.
pub fn encode_transactional_batch(
    entries: &[Entry],
    timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
) -> Bytes {
    encode_entries(entries, timestamp, Some((producer_id, producer_epoch)))
}

fn encode_entries(entries: &[Entry], timestamp: i64, producer: Option<(i64, i16)>) -> Bytes {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp,
            key: key.clone(),
            value: value.clone(),
            headers: vec![],
        })
        .collect();
    encode_uncompressed(&records)
}

fn encode_uncompressed(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("an uncompressed batch of in-memory records always encodes");
    buf.freeze()
}

/// A transaction marker: one control record whose key is version 0 and the type (0 abort,
/// 1 commit) and whose value is version 0 and the coordinator epoch (0: one coordinator).
pub fn marker_batch(producer_id: i64, producer_epoch: i16, commit: bool, timestamp: i64) -> Bytes {
    let key = [0, 0, 0, u8::from(commit)];
    let value = [0u8; 6];
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon_ms: None,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::copy_from_slice(&key)),
        value: Some(Bytes::copy_from_slice(&value)),
        headers: vec![],
    };
    encode_uncompressed(&[record])
}

/// One step of [`PartitionLog::replay_transactional`].
#[derive(Debug)]
pub enum Replayed {
    /// A data record; `txn_producer` is its producer if it belongs to a transaction (it counts
    /// only once a commit marker of that producer follows).
    Record {
        offset: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        txn_producer: Option<i64>,
    },
    /// A transaction marker of `producer_id`.
    Marker { producer_id: i64, commit: bool },
}

impl PartitionLog {
    /// Calls `apply(offset, key, value)` for every data record from the log start to its end, in
    /// order (control records are skipped). Used to rebuild state at start-up.
    pub fn replay(
        &self,
        mut apply: impl FnMut(i64, Option<Bytes>, Option<Bytes>) -> Result<()>,
    ) -> Result<()> {
        self.replay_transactional(|step| match step {
            Replayed::Record {
                offset, key, value, ..
            } => apply(offset, key, value),
            Replayed::Marker { .. } => Ok(()),
        })
    }

    /// Like [`PartitionLog::replay`], but says which records are transactional and hands over
    /// the transaction markers, for state logs that hold transactional writes.
    pub fn replay_transactional(
        &self,
        mut apply: impl FnMut(Replayed) -> Result<()>,
    ) -> Result<()> {
        let mut offset = self.log_start_offset();
        let end = self.log_end_offset();
        while offset < end {
            let chunk = self.read(offset, 1 << 20, end)?;
            if chunk.is_empty() {
                break;
            }
            let before = offset;
            // Batch by batch: a compacted batch may have offset gaps or no records at all, so
            // the next offset comes from the batch header, not from the last record.
            for (h, one) in split_batches(chunk)? {
                if h.is_control() {
                    if let Some(commit) = batch::control_marker(&one) {
                        apply(Replayed::Marker {
                            producer_id: h.producer_id,
                            commit,
                        })?;
                    }
                } else {
                    let txn_producer = h.is_transactional().then_some(h.producer_id);
                    for (offset, key, value) in decode_records(&h, one)? {
                        apply(Replayed::Record {
                            offset,
                            key,
                            value,
                            txn_producer,
                        })?;
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

/// Splits whole batches read from a log into their headers and bytes.
pub fn split_batches(mut chunk: Bytes) -> Result<Vec<(BatchHeader, Bytes)>> {
    let mut out = Vec::new();
    while !chunk.is_empty() {
        let h = BatchHeader::parse(&chunk)?;
        let len = h.total_len();
        if len > chunk.len() || h.batch_length < batch::MIN_BATCH_LENGTH {
            return Err(StorageError::CorruptMessage(format!(
                "truncated batch at offset {}",
                h.base_offset
            )));
        }
        out.push((h, chunk.split_to(len)));
    }
    Ok(out)
}

/// A record's offset, key and value.
pub type OffsetEntry = (i64, Option<Bytes>, Option<Bytes>);

/// The records of one data batch.
pub fn decode_records(h: &BatchHeader, mut one: Bytes) -> Result<Vec<OffsetEntry>> {
    let set = RecordBatchDecoder::decode(&mut one).map_err(|e| {
        StorageError::CorruptMessage(format!("unreadable batch at offset {}: {e}", h.base_offset))
    })?;
    Ok(set
        .records
        .into_iter()
        .map(|r| (r.offset, r.key, r.value))
        .collect())
}
