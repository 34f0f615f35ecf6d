//! AlterReplicaLogDirs: moving a partition to another of `log.dirs` while it serves traffic.
//!
//! A thread copies the log into `<dest>/<topic>-<n>.<id>-future` in passes without the lock
//! (`gregor_storage::LogCopy`), then, under the partition's write lock, copies the rest, renames the
//! old directory to `<topic>-<n>.<id>-delete`, the future one to `<topic>-<n>`, and swaps the
//! reopened log in; the old directory is removed after the lock is released. Every step is a
//! rename, so a crash leaves a state [`resolve_interrupted`] settles at the next start without
//! losing the partition.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use gregor_protocol::kafka::ResponseError;
use gregor_storage::{LogCopy, PartitionLog};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::partitions::Partition;

/// A pass that copied less than this is followed by the last one, under the lock.
const LAST_PASS_BYTES: u64 = 1 << 20;
/// Passes without the lock before the last one, whatever is left (a busy partition may never
/// fall below `LAST_PASS_BYTES`).
const MAX_PASSES: usize = 8;

const FUTURE_SUFFIX: &str = "-future";
const DELETE_SUFFIX: &str = "-delete";

/// A partition being copied into another log dir, as DescribeLogDirs reports it.
pub struct FutureReplica {
    pub topic: String,
    pub index: i32,
    /// The destination, one of `log.dirs`.
    pub log_dir: PathBuf,
    /// Bytes copied, and the log end offset the copy has reached.
    pub bytes: AtomicU64,
    pub end_offset: AtomicI64,
}

type MovesByPartition = HashMap<(String, i32), Arc<FutureReplica>>;

/// The moves in progress, one per partition.
#[derive(Default)]
pub struct LogDirMoves {
    moves: Arc<Mutex<MovesByPartition>>,
}

impl LogDirMoves {
    pub fn in_progress(&self) -> Vec<Arc<FutureReplica>> {
        self.moves.lock().values().cloned().collect()
    }

    /// Starts moving `partition` into `dest` on a thread of its own. A partition already moving
    /// elsewhere is REPLICA_NOT_AVAILABLE until that move ends.
    pub fn start(&self, partition: Arc<Partition>, dest: PathBuf) -> Result<(), i16> {
        let key = (partition.topic.clone(), partition.index);
        let progress = {
            let mut moves = self.moves.lock();
            if let Some(m) = moves.get(&key) {
                return if m.log_dir == dest {
                    Ok(())
                } else {
                    Err(ResponseError::ReplicaNotAvailable.code())
                };
            }
            let progress = Arc::new(FutureReplica {
                topic: key.0.clone(),
                index: key.1,
                log_dir: dest,
                bytes: AtomicU64::new(0),
                end_offset: AtomicI64::new(0),
            });
            moves.insert(key.clone(), progress.clone());
            progress
        };
        let moves = self.moves.clone();
        std::thread::Builder::new()
            .name(format!("move-{}-{}", key.0, key.1))
            .spawn(move || {
                match move_partition(&partition, &progress) {
                    Ok(()) => tracing::info!(topic = %key.0, partition = key.1, dir = %progress.log_dir.display(), "partition moved to another log dir"),
                    Err(e) => tracing::error!(topic = %key.0, partition = key.1, dir = %progress.log_dir.display(), error = %e, "partition move failed; it stays where it was"),
                }
                moves.lock().remove(&key);
            })
            .map(drop)
            .map_err(|_| ResponseError::KafkaStorageError.code())
    }
}

fn move_partition(partition: &Partition, progress: &FutureReplica) -> gregor_storage::Result<()> {
    let name = format!("{}-{}", partition.topic, partition.index);
    let id = Uuid::new_v4().simple().to_string();
    let future = progress.log_dir.join(format!("{name}.{id}{FUTURE_SUFFIX}"));
    let mut copy = LogCopy::create(future.clone())?;
    let copied = copy_then_swap(partition, progress, &mut copy, &name, &id);
    if copied.is_err() {
        let _ = fs::remove_dir_all(&future);
    }
    let deleted = copied?;
    fs::remove_dir_all(&deleted)?;
    Ok(())
}

/// The passes and the swap; returns the old directory, renamed for deletion.
fn copy_then_swap(
    partition: &Partition,
    progress: &FutureReplica,
    copy: &mut LogCopy,
    name: &str,
    id: &str,
) -> gregor_storage::Result<PathBuf> {
    let report = |copy: &LogCopy| {
        progress.bytes.store(copy.bytes(), Ordering::Relaxed);
        progress
            .end_offset
            .store(copy.end_offset(), Ordering::Relaxed);
    };
    for _ in 0..MAX_PASSES {
        let before = copy.bytes();
        copy.sync(&partition.with_log(PartitionLog::snapshot))?;
        report(copy);
        if copy.bytes() - before < LAST_PASS_BYTES {
            break;
        }
    }
    partition.with_log_mut(|log| {
        copy.finish(log)?;
        report(copy);
        let old = log.dir().to_path_buf();
        let deleted = old.with_file_name(format!("{name}.{id}{DELETE_SUFFIX}"));
        let live = progress.log_dir.join(name);
        fs::rename(&old, &deleted)?;
        if let Err(e) = fs::rename(copy.dir(), &live) {
            fs::rename(&deleted, &old)?;
            return Err(e.into());
        }
        match PartitionLog::open(live.clone(), log.config().clone()) {
            Ok(moved) => {
                *log = moved;
                Ok(deleted)
            }
            Err(e) => {
                // Back to where it was: the old log object still has its files open.
                fs::rename(&live, copy.dir())?;
                fs::rename(&deleted, &old)?;
                Err(e)
            }
        }
    })
}

/// `<topic>-<n>.<id><suffix>` → (`<topic>-<n>`, `<id>`).
fn split_name<'a>(name: &'a str, suffix: &str) -> Option<(&'a str, &'a str)> {
    name.strip_suffix(suffix)?.rsplit_once('.')
}

/// Settles moves a crash interrupted, before any partition is opened: a `-delete` directory
/// goes if its partition lives on; if not, its finished `-future` copy (the rename of the old
/// directory comes only after the copy is complete and synced) becomes the partition, or, with
/// no copy, the old directory is restored. Remaining `-future` copies are unfinished and go.
pub fn resolve_interrupted(log_dirs: &[PathBuf]) -> std::io::Result<()> {
    let entries = |suffix: &'static str| -> std::io::Result<Vec<(PathBuf, String, String)>> {
        let mut found = Vec::new();
        for dir in log_dirs {
            for entry in fs::read_dir(dir)? {
                let file_name = entry?.file_name().to_string_lossy().into_owned();
                if let Some((name, id)) = split_name(&file_name, suffix) {
                    found.push((dir.join(&file_name), name.to_string(), id.to_string()));
                }
            }
        }
        Ok(found)
    };
    let live = |name: &str| log_dirs.iter().any(|d| d.join(name).is_dir());
    for (deleted, name, id) in entries(DELETE_SUFFIX)? {
        if !live(&name) {
            let future = log_dirs
                .iter()
                .map(|d| (d, d.join(format!("{name}.{id}{FUTURE_SUFFIX}"))))
                .find(|(_, f)| f.is_dir());
            match future {
                Some((dir, future)) => {
                    tracing::info!(partition = name, dir = %dir.display(), "finishing an interrupted log dir move");
                    fs::rename(future, dir.join(&name))?;
                }
                None => {
                    tracing::warn!(
                        partition = name,
                        "restoring a partition whose move was interrupted"
                    );
                    fs::rename(&deleted, deleted.with_file_name(&name))?;
                    continue;
                }
            }
        }
        fs::remove_dir_all(&deleted)?;
    }
    for (future, name, _) in entries(FUTURE_SUFFIX)? {
        tracing::info!(
            partition = name,
            "removing the copy of an interrupted log dir move"
        );
        fs::remove_dir_all(future)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn partition_dir(path: &Path, marker: &str) {
        fs::create_dir_all(path).unwrap();
        fs::write(path.join("marker"), marker).unwrap();
    }

    fn marker(path: &Path) -> Option<String> {
        fs::read_to_string(path.join("marker")).ok()
    }

    #[test]
    fn interrupted_moves_settle_without_losing_the_partition() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        // Crashed during the copy: the copy goes, the partition stays.
        partition_dir(&a.join("t-0"), "old");
        partition_dir(&b.join("t-0.1-future"), "partial");
        // Crashed between the two renames: the finished copy becomes the partition.
        partition_dir(&a.join("t-1.2-delete"), "old");
        partition_dir(&b.join("t-1.2-future"), "copy");
        // Crashed after the swap: the old directory goes.
        partition_dir(&a.join("t-2.3-delete"), "old");
        partition_dir(&b.join("t-2"), "copy");
        // A -delete with neither a live directory nor a copy is put back.
        partition_dir(&a.join("t-3.4-delete"), "old");
        resolve_interrupted(&[a.clone(), b.clone()]).unwrap();

        assert_eq!(marker(&a.join("t-0")).as_deref(), Some("old"));
        assert_eq!(marker(&b.join("t-1")).as_deref(), Some("copy"));
        assert_eq!(marker(&b.join("t-2")).as_deref(), Some("copy"));
        assert_eq!(marker(&a.join("t-3")).as_deref(), Some("old"));
        let mut left: Vec<String> = [&a, &b]
            .iter()
            .flat_map(|d| fs::read_dir(d).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["t-0", "t-1", "t-2", "t-3"]);
    }
}
