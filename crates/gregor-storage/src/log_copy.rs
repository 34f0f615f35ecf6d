//! Copying a live partition log into another directory (AlterReplicaLogDirs), in passes: most
//! bytes are copied without the log's lock, from a snapshot of the segments' sizes (segments only
//! grow, or are replaced by compaction or deleted by retention, which give them a new inode or
//! none); the last pass, under the write lock, copies only what was appended or replaced since, plus
//! the checkpoint files. Index files are not copied: opening a log rebuilds its indexes.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::log::PartitionLog;
use crate::segment;

/// A copy of one partition directory in progress.
pub struct LogCopy {
    dst: PathBuf,
    /// Per file name: the source inode and the bytes of it already in `dst`.
    copied: HashMap<String, (u64, u64)>,
    /// The log end offset the copy has reached.
    end_offset: i64,
    bytes: u64,
}

/// What to copy: each segment file with the bytes it holds, and the log end offset they reach.
pub struct LogSnapshot {
    files: Vec<(PathBuf, u64)>,
    end_offset: i64,
}

impl PartitionLog {
    /// The segment files and their sizes now (take under the read lock; copy without it).
    pub fn snapshot(&self) -> LogSnapshot {
        LogSnapshot {
            files: self
                .segments()
                .map(|s| {
                    (
                        segment::file_path(self.dir(), s.base_offset, segment::LOG_EXT),
                        s.size,
                    )
                })
                .collect(),
            end_offset: self.log_end_offset(),
        }
    }
}

impl LogCopy {
    /// Starts a copy into `dst`, which must not exist yet.
    pub fn create(dst: PathBuf) -> io::Result<LogCopy> {
        fs::create_dir(&dst)?;
        Ok(LogCopy {
            dst,
            copied: HashMap::new(),
            end_offset: 0,
            bytes: 0,
        })
    }

    /// Brings the copy to `snapshot`: appends what grew, copies again what was replaced, removes
    /// what the log no longer has.
    pub fn sync(&mut self, snapshot: &LogSnapshot) -> io::Result<()> {
        let mut present = Vec::with_capacity(snapshot.files.len());
        for (src, len) in &snapshot.files {
            let name = file_name(src);
            self.copy_prefix(src, &name, *len)?;
            present.push(name);
        }
        let gone: Vec<String> = self
            .copied
            .keys()
            .filter(|k| is_segment(k) && !present.contains(k))
            .cloned()
            .collect();
        for name in gone {
            fs::remove_file(self.dst.join(&name))?;
            self.copied.remove(&name);
        }
        self.end_offset = snapshot.end_offset;
        Ok(())
    }

    /// The last pass, under the log's write lock: the log is checkpointed (so the copy needs no
    /// recovery), brought up to date with its checkpoint files, and made durable.
    pub fn finish(&mut self, log: &mut PartitionLog) -> crate::Result<()> {
        log.checkpoint()?;
        self.sync(&log.snapshot())?;
        for entry in fs::read_dir(log.dir())? {
            let path = entry?.path();
            let name = file_name(&path);
            if name.ends_with("checkpoint") || name == "partition.metadata" {
                let len = fs::metadata(&path)?.len();
                self.copied.remove(&name);
                self.copy_prefix(&path, &name, len)?;
            }
        }
        for name in self.copied.keys() {
            File::open(self.dst.join(name))?.sync_all()?;
        }
        File::open(&self.dst)?.sync_all()?;
        Ok(())
    }

    /// Where the copy is, and how far it has got.
    pub fn dir(&self) -> &Path {
        &self.dst
    }

    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn copy_prefix(&mut self, src: &Path, name: &str, len: u64) -> io::Result<()> {
        let mut from = File::open(src)?;
        let inode = from.metadata()?.ino();
        let done = match self.copied.get(name) {
            Some(&(ino, done)) if ino == inode && done <= len => done,
            _ => 0,
        };
        let mut to = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(done == 0)
            .open(self.dst.join(name))?;
        from.seek(SeekFrom::Start(done))?;
        to.seek(SeekFrom::Start(done))?;
        let n = io::copy(&mut (&mut from).take(len - done), &mut to)?;
        to.flush()?;
        if n != len - done {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than its segment", src.display()),
            ));
        }
        self.bytes += n;
        self.copied.insert(name.to_string(), (inode, len));
        Ok(())
    }
}

fn is_segment(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e == segment::LOG_EXT)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_batches::{batch_of, Spec};
    use crate::LogConfig;
    use bytes::Bytes;

    fn records(log: &PartitionLog) -> Vec<Bytes> {
        let mut out = Vec::new();
        log.replay(|_, _, value| {
            out.push(value.unwrap_or_default());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_copy_made_while_the_log_grows_and_rolls_reopens_equal() {
        let tmp = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(tmp.path().join("t-0"), config.clone()).unwrap();
        let append = |log: &mut PartitionLog, i: usize| {
            let value = Some(Bytes::from(format!("value-{i}")));
            log.append(&batch_of(&[(None, value)], &Spec::default()), 0, 1_000)
                .unwrap();
        };
        for i in 0..10 {
            append(&mut log, i);
        }
        let mut copy = LogCopy::create(tmp.path().join("t-0.x-future")).unwrap();
        copy.sync(&log.snapshot()).unwrap();
        let first_pass = copy.bytes();
        assert!(first_pass > 0);
        // Appends (and a roll) after the first pass reach the copy in the last one, which copies
        // only what is new.
        for i in 10..20 {
            append(&mut log, i);
        }
        copy.finish(&mut log).unwrap();
        assert!(copy.bytes() < first_pass + log.size_bytes());
        assert_eq!(copy.end_offset(), 20);
        let reopened = PartitionLog::open(copy.dir().to_path_buf(), config).unwrap();
        assert_eq!(reopened.log_end_offset(), 20);
        assert_eq!(records(&reopened), records(&log));
    }
}
