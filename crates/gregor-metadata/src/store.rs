//! The metadata log on disk and the image it replays to. Decisions run under the store's lock on
//! the newest image, their records are appended durably (fsync per commit, as a Raft log would),
//! and only then applied to the image that readers see.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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

pub struct MetadataStore {
    log: Mutex<PartitionLog>,
    image: RwLock<Arc<MetadataImage>>,
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
    /// Opens the metadata log under `dir` and replays it into the image.
    pub fn open(dir: &Path) -> Result<MetadataStore, StoreError> {
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
        Ok(MetadataStore {
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
            reserve,
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
            let batch = encode(&records, now_ms());
            let end = log.log_end_offset();
            let appended = match log.append(&batch, 0, now_ms()) {
                // Retried only if the records did not get in (a failed flush comes after).
                Err(e) if is_disk_full(&e) && log.log_end_offset() == end && self.use_reserve() => {
                    log.append(&batch, 0, now_ms())
                }
                appended => appended,
            }?;
            let mut next = (*current).clone();
            for record in &records {
                next.apply(record);
            }
            next.offset = appended.last_offset;
            *self.image.write().expect("image lock") = Arc::new(next);
        }
        Ok(Ok(outcome))
    }

    /// The disk is full: gives the reserve back to it, once. Whether there was one.
    fn use_reserve(&self) -> bool {
        let used = std::fs::remove_file(&self.reserve).is_ok();
        if used {
            tracing::error!(reserve = %self.reserve.display(), "the disk is full: the metadata log used its reserve; free space (delete topics, lower retention) before it runs out again");
        }
        used
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
