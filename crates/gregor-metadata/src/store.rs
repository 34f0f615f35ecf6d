//! The metadata log on disk and the image it replays to. Records are appended durably (fsync per
//! commit, as a Raft log would) before anyone applies them.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gregor_storage::records::encode_batch;
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

/// The metadata log: records appended durably, replayed at start. One writer owns it (the
/// controller); the image it replays to is published by the metadata loader.
pub struct MetadataStore {
    log: PartitionLog,
    /// Space set aside for the metadata log (see [`RESERVE_FILE`]).
    reserve: PathBuf,
}

/// A file of [`RESERVE_BYTES`] kept in the metadata log's directory: when the disk fills up, it
/// is deleted so that the metadata records still go through (a topic deletion that frees space
/// is one), and it is written again at the next start that has room for it.
pub const RESERVE_FILE: &str = "disk-full.reserve";
const RESERVE_BYTES: usize = 4 << 20;

fn is_disk_full(e: &StorageError) -> bool {
    matches!(e, StorageError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull)
}

/// Writes the reserve file if it is not there whole; on a disk without room for it, says so.
fn ensure_reserve(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return;
    }
    if let Err(e) = gregor_storage::atomic_file::write(path, &vec![0u8; RESERVE_BYTES]) {
        tracing::warn!(path = %path.display(), error = %e, "cannot set aside the metadata log's disk reserve");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn encode(records: &[MetadataRecord], timestamp: i64) -> Bytes {
    let entries: Vec<_> = records
        .iter()
        .map(|r| {
            let value = serde_json::to_vec(r).expect("metadata records always serialize");
            (None, Some(Bytes::from(value)))
        })
        .collect();
    encode_batch(&entries, timestamp)
}

impl MetadataStore {
    /// Opens the metadata log under `dir` and replays it into an image.
    pub fn open(dir: &Path) -> Result<(MetadataStore, MetadataImage), StoreError> {
        let config = LogConfig {
            flush_messages: 1,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.join(METADATA_LOG_DIR), config)?;
        let mut image = MetadataImage::empty();
        let mut corrupt = None;
        log.replay(|offset, _key, value| {
            match serde_json::from_slice::<MetadataRecord>(value.as_deref().unwrap_or_default()) {
                Ok(record) => {
                    image.apply(&record);
                    image.offset = offset;
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
        if let Some(e) = corrupt {
            return Err(e);
        }
        let reserve = dir.join(METADATA_LOG_DIR).join(RESERVE_FILE);
        ensure_reserve(&reserve);
        Ok((MetadataStore { log, reserve }, image))
    }

    /// Appends records durably (fsync) as one batch; returns the offset of the last one.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, StoreError> {
        let batch = encode(records, now_ms());
        let end = self.log.log_end_offset();
        let appended = match self.log.append(&batch, 0, now_ms()) {
            // Retried only if the records did not get in (a failed flush comes after).
            Err(e)
                if is_disk_full(&e) && self.log.log_end_offset() == end && self.use_reserve() =>
            {
                self.log.append(&batch, 0, now_ms())
            }
            appended => appended,
        }?;
        Ok(appended.last_offset)
    }

    /// The disk is full: gives the reserve back to it, once. Whether there was one.
    fn use_reserve(&self) -> bool {
        let used = std::fs::remove_file(&self.reserve).is_ok();
        if used {
            tracing::error!(reserve = %self.reserve.display(), "the disk is full: the metadata log used its reserve; free space (delete topics, lower retention) before it runs out again");
        }
        used
    }

    /// Writes the log's checkpoint; called on clean shutdown.
    pub fn close(&mut self) -> Result<(), StoreError> {
        Ok(self.log.checkpoint()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ConfigResource;

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut image) = MetadataStore::open(dir.path()).unwrap();
        let records = vec![
            MetadataRecord::Cluster {
                cluster_id: "abc".into(),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Broker(None),
                name: "log.retention.ms".into(),
                value: Some("1000".into()),
            },
        ];
        let last = store.append(&records).unwrap();
        assert_eq!(last, 1);
        image.apply_committed(&records, last);
        drop(store);
        let (_, reopened) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(reopened, image);
        assert_eq!(reopened.cluster_id, "abc");
    }
}
