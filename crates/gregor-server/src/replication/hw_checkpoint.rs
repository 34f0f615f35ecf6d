//! `replication-offset-checkpoint`: the high watermarks of a log dir's partitions, in Kafka's
//! format (a version line `0`, a count, then `topic partition offset` lines), written whole and
//! atomically. Read at start, so a restarted leader does not show consumers records its
//! followers may not have (the high watermark is not the log end once replicas are involved).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use gregor_storage::atomic_file;
use parking_lot::Mutex;

pub const FILE: &str = "replication-offset-checkpoint";

/// One log dir's checkpoint: high watermarks by (topic, partition).
type Checkpoint = HashMap<(String, i32), i64>;

/// The checkpointed high watermarks by log dir, each taken once by the partition it belongs to.
#[derive(Default)]
pub struct HighWatermarks(Mutex<HashMap<PathBuf, Checkpoint>>);

impl HighWatermarks {
    /// Reads the checkpoint of each log dir; a missing or unreadable one counts as empty (the
    /// partitions then start from their log start), and an unreadable one is logged.
    pub fn read(dirs: &[PathBuf]) -> HighWatermarks {
        let mut all = HashMap::new();
        for dir in dirs {
            let path = dir.join(FILE);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read the high watermark checkpoint");
                    continue;
                }
            };
            match parse(&text) {
                Some(entries) => {
                    all.insert(dir.clone(), entries);
                }
                None => {
                    tracing::warn!(file = %path.display(), "the high watermark checkpoint is malformed; ignored")
                }
            }
        }
        HighWatermarks(Mutex::new(all))
    }

    /// The checkpointed high watermark of the partition in directory `partition_dir`.
    pub fn take(&self, partition_dir: &Path, topic: &str, index: i32) -> Option<i64> {
        let log_dir = partition_dir.parent()?;
        self.0
            .lock()
            .get_mut(log_dir)?
            .remove(&(topic.to_string(), index))
    }
}

fn parse(text: &str) -> Option<Checkpoint> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = HashMap::with_capacity(count.min(1 << 20));
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let topic = fields.next()?.to_string();
        let index: i32 = fields.next()?.parse().ok()?;
        let offset: i64 = fields.next()?.parse().ok()?;
        entries.insert((topic, index), offset);
    }
    (entries.len() == count).then_some(entries)
}

/// Writes `entries` (topic, partition, high watermark) as the log dir's checkpoint, durably.
pub fn write(log_dir: &Path, entries: &[(String, i32, i64)]) -> io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (topic, index, offset) in entries {
        text.push_str(&format!("{topic} {index} {offset}\n"));
    }
    atomic_file::write(&log_dir.join(FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_read_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![("a".to_string(), 0, 17), ("b.c".to_string(), 3, 0)];
        write(dir.path(), &entries).unwrap();
        let hws = HighWatermarks::read(&[dir.path().to_path_buf()]);
        assert_eq!(hws.take(&dir.path().join("a-0"), "a", 0), Some(17));
        assert_eq!(hws.take(&dir.path().join("a-0"), "a", 0), None, "taken");
        assert_eq!(hws.take(&dir.path().join("b.c-3"), "b.c", 3), Some(0));
    }

    #[test]
    fn a_malformed_checkpoint_is_ignored() {
        for text in ["1\n0\n", "0\n2\na 0 5\n", "0\n1\na x 5\n", ""] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        assert_eq!(parse("0\n0\n"), Some(HashMap::new()));
    }
}
