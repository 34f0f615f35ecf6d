//! The metadata quorum's state machine: committed entries go to an [`Applier`] (the broker's
//! metadata loader, which holds the image). A snapshot is the image written as the records that
//! rebuild it, in `<offset>-<term>.checkpoint` beside the log (KRaft's naming); a restart loads
//! the newest one and Raft replays the committed entries after it, and a controller that is far
//! behind receives one from the leader instead of the whole history.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_storage::atomic_file;
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{Committed, ControllerNode, Entry, LogId, NodeId, StorageError, TypeConfig};

const SNAPSHOT_SUFFIX: &str = ".checkpoint";

/// Who applies committed metadata.
pub trait Applier: Send + Sync + 'static {
    /// The records of one committed entry, at `offset` in the metadata log.
    fn apply(&self, records: &[MetadataRecord], offset: i64);
    /// Replaces everything with a snapshot's image.
    fn install(&self, image: MetadataImage);
    /// The image as of the last entry applied.
    fn image(&self) -> Arc<MetadataImage>;
}

/// An applier that only keeps the image: a controller that is no broker has nothing else to
/// bring in line with the metadata.
#[derive(Default)]
pub struct ImageOnly(Mutex<Arc<MetadataImage>>);

impl Applier for ImageOnly {
    fn apply(&self, records: &[MetadataRecord], offset: i64) {
        let mut image = self.0.lock();
        let mut next = (**image).clone();
        next.apply_committed(records, offset);
        *image = Arc::new(next);
    }

    fn install(&self, image: MetadataImage) {
        *self.0.lock() = Arc::new(image);
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.0.lock().clone()
    }
}

type Meta = SnapshotMeta<NodeId, ControllerNode>;

/// A snapshot file's content.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: Meta,
    records: Vec<MetadataRecord>,
}

struct State {
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, ControllerNode>,
    /// The newest snapshot: its meta and its file's bytes.
    snapshot: Option<(Meta, Vec<u8>)>,
}

/// The state machine; clones share it (a clone is also its snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    applier: Arc<dyn Applier>,
    state: Arc<Mutex<State>>,
}

fn snapshot_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

fn snapshot_name(meta: &Meta) -> String {
    let (index, term) = meta
        .last_log_id
        .map_or((0, 0), |id| (id.index, id.leader_id.term));
    format!("{index:020}-{term:010}{SNAPSHOT_SUFFIX}")
}

/// Whether `name` is a snapshot's: `<offset>-<term>.checkpoint`, all digits (the log's own
/// `partition.checkpoint` is not one).
fn is_snapshot_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_suffix(SNAPSHOT_SUFFIX)
        .and_then(|stem| stem.split_once('-'))
        .is_some_and(|(offset, term)| digits(offset) && digits(term))
}

/// The snapshot files in `dir`, oldest first (their names sort by offset).
fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| is_snapshot_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// The image a snapshot file holds.
fn image_of(file: &SnapshotFile) -> MetadataImage {
    let mut image = MetadataImage::empty();
    let offset = file.meta.last_log_id.map_or(-1, |id| id.index as i64);
    image.apply_committed(&file.records, offset);
    image
}

impl StateMachine {
    /// A state machine over `dir` (the metadata log's directory) that applies through
    /// `applier`, starting from the newest snapshot there, if any.
    pub fn open(dir: &Path, applier: Arc<dyn Applier>) -> Result<StateMachine, StorageError> {
        let mut state = State {
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
        };
        if let Some(newest) = snapshot_files(dir).pop() {
            let started = std::time::Instant::now();
            let bytes =
                std::fs::read(&newest).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
            let file: SnapshotFile = serde_json::from_slice(&bytes)
                .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
            applier.install(image_of(&file));
            state.last_applied = file.meta.last_log_id;
            state.membership = file.meta.last_membership.clone();
            tracing::info!(
                bytes = bytes.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "metadata snapshot loaded"
            );
            state.snapshot = Some((file.meta, bytes));
        }
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            applier,
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// Writes a snapshot file durably and removes the older ones.
    fn keep(&self, meta: &Meta, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.dir.join(snapshot_name(meta));
        atomic_file::write(&path, bytes).map_err(snapshot_error)?;
        for old in snapshot_files(&self.dir) {
            if old != path {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = std::time::Instant::now();
        let (meta, bytes) = {
            let state = self.state.lock();
            let last = state.last_applied;
            let meta = Meta {
                last_log_id: last,
                last_membership: state.membership.clone(),
                snapshot_id: format!(
                    "{}-{}",
                    last.map_or(0, |id| id.index),
                    last.map_or(0, |id| id.leader_id.term)
                ),
            };
            let file = SnapshotFile {
                meta: meta.clone(),
                records: self.applier.image().to_records(),
            };
            (meta, serde_json::to_vec(&file).map_err(snapshot_error)?)
        };
        let this = self.clone();
        let (kept_meta, kept_bytes) = (meta.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || this.keep(&kept_meta, &kept_bytes))
            .await
            .map_err(snapshot_error)??;
        tracing::info!(
            last_offset = meta.last_log_id.map_or(-1, |id| id.index as i64),
            bytes = bytes.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "metadata snapshot written"
        );
        self.state.lock().snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, ControllerNode>), StorageError> {
        let state = self.state.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Committed>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Applying opens and deletes partition logs (the broker's publishers): on a blocking
        // thread, not on the runtime's workers.
        let entries: Vec<Entry> = entries.into_iter().collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = this.state.lock();
            let mut committed = Vec::with_capacity(entries.len());
            for entry in entries {
                let offset = entry.log_id.index as i64;
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(batch) => this.applier.apply(&batch.records, offset),
                    EntryPayload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    }
                }
                state.last_applied = Some(entry.log_id);
                committed.push(Committed { offset });
            }
            committed
        })
        .await
        .map_err(|e| StorageIOError::write_state_machine(&e).into())
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile =
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let this = self.clone();
        let (kept_meta, kept_bytes) = (meta.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || this.keep(&kept_meta, &kept_bytes))
            .await
            .map_err(snapshot_error)??;
        let mut state = self.state.lock();
        self.applier.install(image_of(&file));
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .state
            .lock()
            .snapshot
            .clone()
            .map(|(meta, bytes)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(bytes)),
            }))
    }
}
