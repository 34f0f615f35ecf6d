//! Record batches for the storage tests, encoded by proto-kafka as a producer would send them.

use bytes::{Bytes, BytesMut};
use proto_kafka::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// The batch-wide fields. Record `i` gets timestamp `ts + i * ts_step` and, if `seq >= 0`,
/// sequence `seq + i`.
#[derive(Clone)]
pub(crate) struct Spec {
    pub compression: Compression,
    pub pid: i64,
    pub epoch: i16,
    pub seq: i32,
    pub transactional: bool,
    pub ts: i64,
    pub ts_step: i64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            compression: Compression::None,
            pid: -1,
            epoch: -1,
            seq: -1,
            transactional: false,
            ts: 1_000,
            ts_step: 1,
        }
    }
}

/// One batch of `(key, value)` records (a `None` value is a tombstone).
pub(crate) fn batch_of(entries: &[(Option<Bytes>, Option<Bytes>)], s: &Spec) -> Vec<u8> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: s.transactional,
            control: false,
            delete_horizon_ms: None,
            partition_leader_epoch: -1,
            producer_id: s.pid,
            producer_epoch: s.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if s.seq >= 0 { s.seq + i as i32 } else { -1 },
            timestamp: s.ts + s.ts_step * i as i64,
            key: key.clone(),
            value: value.clone(),
            headers: vec![],
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: s.compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

/// The header of every batch of `log`, read through it from its start to its end.
pub(crate) fn headers(log: &crate::PartitionLog) -> Vec<crate::batch::BatchHeader> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let data = log.read(next, usize::MAX / 2, i64::MAX).unwrap();
        let mut pos = 0;
        while pos < data.len() {
            let h = crate::batch::BatchHeader::parse(&data[pos..]).unwrap();
            next = h.next_offset();
            pos += h.total_len();
            out.push(h);
        }
    }
    out
}
