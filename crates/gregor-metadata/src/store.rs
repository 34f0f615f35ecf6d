//! The metadata log on disk and the image it replays to. Decisions run under the store's lock on
//! the newest image, their records are appended durably (fsync per commit, as a Raft log would),
//! and only then applied to the image that readers see.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use gregor_storage::{LogConfig, PartitionLog, StorageError};
use proto_kafka::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// The directory of the metadata log inside the first log dir, named as KRaft names it.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata log: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata log record at offset {offset} is unreadable: {reason}")]
    Corrupt { offset: i64, reason: String },
}

pub struct MetadataStore {
    log: Mutex<PartitionLog>,
    image: RwLock<Arc<MetadataImage>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn encode(records: &[MetadataRecord], timestamp: i64) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
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
            key: None,
            value: Some(Bytes::from(
                serde_json::to_vec(r).expect("metadata records always serialize"),
            )),
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
    .expect("an uncompressed batch always encodes");
    buf.freeze()
}

impl MetadataStore {
    /// Opens the metadata log under `dir` and replays it into the image.
    pub fn open(dir: &Path) -> Result<MetadataStore, StoreError> {
        let config = LogConfig {
            flush_messages: 1,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.join(METADATA_LOG_DIR), config)?;
        let mut image = MetadataImage::default();
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let mut chunk = log.read(offset, 1 << 20, end)?;
            let sets =
                RecordBatchDecoder::decode_all(&mut chunk).map_err(|e| StoreError::Corrupt {
                    offset,
                    reason: e.to_string(),
                })?;
            let before = offset;
            for record in sets.iter().flat_map(|s| &s.records) {
                let value = record.value.as_deref().unwrap_or_default();
                let parsed: MetadataRecord =
                    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
                        offset: record.offset,
                        reason: e.to_string(),
                    })?;
                image.apply(&parsed);
                offset = record.offset + 1;
            }
            if offset == before {
                break;
            }
        }
        Ok(MetadataStore {
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
        })
    }

    /// The current image; handlers read it without locks held.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().expect("image lock").clone()
    }

    /// Decides on the newest image and commits the decision's records before returning its result.
    pub fn decide<T, E>(
        &self,
        decision: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), E>,
    ) -> Result<Result<T, E>, StoreError> {
        let mut log = self.log.lock().expect("metadata log lock");
        let current = self.image();
        let (records, outcome) = match decision(&current) {
            Ok(decided) => decided,
            Err(e) => return Ok(Err(e)),
        };
        if !records.is_empty() {
            log.append(&encode(&records, now_ms()), 0, now_ms())?;
            let mut next = (*current).clone();
            for record in &records {
                next.apply(record);
            }
            *self.image.write().expect("image lock") = Arc::new(next);
        }
        Ok(Ok(outcome))
    }

    /// Commits records that need no decision.
    pub fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), StoreError> {
        self.decide(|_| Ok::<_, ()>((records, ()))).map(|_| ())
    }

    /// Writes the log's checkpoint; called on clean shutdown.
    pub fn close(&self) -> Result<(), StoreError> {
        Ok(self.log.lock().expect("metadata log lock").checkpoint()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ConfigResource;

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        store
            .commit(vec![
                MetadataRecord::Cluster {
                    cluster_id: "abc".into(),
                },
                MetadataRecord::Config {
                    resource: ConfigResource::Broker(None),
                    name: "log.retention.ms".into(),
                    value: Some("1000".into()),
                },
            ])
            .unwrap();
        let refused = store
            .decide(|_| Err::<(Vec<MetadataRecord>, ()), _>("no"))
            .unwrap();
        assert_eq!(refused, Err("no"));
        let before = store.image();
        drop(store);
        let reopened = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(*reopened.image(), *before);
        assert_eq!(reopened.image().cluster_id, "abc");
    }
}
