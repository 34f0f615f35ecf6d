//! The metadata log as gregor wrote it before the Raft quorum: batches of records, each the JSON
//! of one [`MetadataRecord`], with no `quorum-state` beside them. A node that finds one replays it
//! into an image (here), sets the directory aside and commits the image through the quorum as its
//! first decision, so an upgrade keeps every topic.

use std::path::Path;

use gregor_storage::{LogConfig, PartitionLog, StorageError};

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

/// Replays a metadata log written before the quorum (in `dir`, the log's own directory).
pub fn replay_pre_raft(dir: &Path) -> Result<MetadataImage, StoreError> {
    let config = LogConfig {
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.to_path_buf(), config)?;
    let mut image = MetadataImage::empty();
    let mut corrupt = None;
    log.replay(|offset, _key, value| {
        match serde_json::from_slice::<MetadataRecord>(value.as_deref().unwrap_or_default()) {
            Ok(record) => {
                image.offset = offset;
                image.apply(&record);
            }
            Err(e) => {
                corrupt.get_or_insert(StoreError::Corrupt {
                    offset,
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    })?;
    match corrupt {
        Some(e) => Err(e),
        None => Ok(image),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ConfigResource;
    use bytes::Bytes;
    use gregor_storage::records::encode_batch;

    #[test]
    fn a_pre_raft_log_replays_to_its_image() {
        let dir = tempfile::tempdir().unwrap();
        let records = [
            MetadataRecord::Cluster {
                cluster_id: "abc".into(),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Broker(None),
                name: "log.retention.ms".into(),
                value: Some("1000".into()),
            },
        ];
        let entries: Vec<_> = records
            .iter()
            .map(|r| (None, Some(Bytes::from(serde_json::to_vec(r).unwrap()))))
            .collect();
        let mut log = PartitionLog::open(dir.path().to_path_buf(), LogConfig::default()).unwrap();
        log.append(&encode_batch(&entries, 0), 0, 0).unwrap();
        log.checkpoint().unwrap();
        drop(log);
        let image = replay_pre_raft(dir.path()).unwrap();
        assert_eq!(image.cluster_id, "abc");
        assert_eq!(image.offset, 1);
        let mut expected = MetadataImage::empty();
        expected.apply_committed(&records, 1);
        assert_eq!(image, expected);
    }
}
