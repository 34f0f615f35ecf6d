//! DeleteRecords: moving a partition's log start offset (low watermark) forward on request.
//! A child module of `log`, like the cleaner, so it works on the log's own state.

use crate::error::{Result, StorageError};
use crate::log::PartitionLog;

impl PartitionLog {
    /// Advances the log start offset to `offset`, which must not pass the log end (the high
    /// watermark on one node), deletes the segments entirely below it (never the active one) and
    /// records the new log start in the checkpoint. Returns the new low watermark; an offset at or
    /// below the current log start changes nothing.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        if offset < 0 || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        while self.segments.len() > 1 && self.segments[1].base_offset <= offset {
            self.delete_oldest_segment(None)?;
        }
        self.log_start_offset = offset;
        self.recovery_point = self.recovery_point.max(offset);
        self.producers.evict_before(offset);
        self.write_checkpoint()?;
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::records::encode_batch;
    use crate::{LogConfig, PartitionLog, StorageError};

    fn append(log: &mut PartitionLog, n: usize) {
        for _ in 0..n {
            let batch = encode_batch(&[(None, Some(Bytes::from_static(b"value")))], 1_000);
            log.append(&batch, 0, 1_000).unwrap();
        }
    }

    fn segment_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    }

    #[test]
    fn advances_log_start_deletes_segments_and_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("odd \"name\" \\ dir-0");
        let config = LogConfig {
            segment_bytes: 200,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(dir.clone(), config.clone()).unwrap();
        append(&mut log, 20);
        let segments = segment_files(&dir);
        assert!(segments > 3, "{segments} segments");

        assert_eq!(log.delete_records_before(0).unwrap(), 0);
        assert!(matches!(
            log.delete_records_before(21),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records_before(7).unwrap(), 7);
        assert_eq!(log.log_start_offset(), 7);
        assert!(segment_files(&dir) < segments);
        // Reads below the new log start are out of range; from it they work.
        assert!(log.read(6, 1 << 20, 20).is_err());
        assert!(!log.read(7, 1 << 20, 20).unwrap().is_empty());
        // Going back is a no-op; the log keeps taking appends.
        assert_eq!(log.delete_records_before(3).unwrap(), 7);
        append(&mut log, 1);
        assert_eq!(log.log_end_offset(), 21);
        drop(log);

        let mut log = PartitionLog::open(dir.clone(), config).unwrap();
        assert_eq!(log.log_start_offset(), 7);
        assert_eq!(log.delete_records_before(21).unwrap(), 21);
        assert_eq!(log.log_start_offset(), 21);
        assert_eq!(segment_files(&dir), 1);
        append(&mut log, 1);
        assert_eq!(log.log_end_offset(), 22);
    }
}
