//! The log store and state machine against openraft's own storage suite, and what the suite
//! does not cover: metadata records, restarts, snapshots, KRaft's on-disk form.

use std::sync::Arc;

use gregor_metadata::MetadataRecord;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;

use crate::{
    Applier, Entry, ImageOnly, LogId, LogStore, MetadataBatch, StateMachine, StorageError,
};

/// An applier that only keeps the image.
struct Builder;

impl StoreBuilder<crate::TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path())?;
        let sm = StateMachine::open(dir.path(), Arc::new(ImageOnly::default()))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    Suite::test_all(Builder).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn normal(term: u64, index: u64, records: Vec<MetadataRecord>) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataBatch {
            records,
            appended_ms: 1_700_000_000_000,
        }),
    }
}

fn cluster(id: &str) -> MetadataRecord {
    MetadataRecord::Cluster {
        cluster_id: id.into(),
    }
}

#[tokio::test]
async fn entries_vote_and_commit_point_survive_a_restart_in_kafka_form() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        let blank = Entry {
            log_id: log_id(1, 0),
            payload: EntryPayload::Blank,
        };
        let records = vec![cluster("c1"), cluster("c2")];
        log.blocking_append(vec![blank, normal(1, 1, records), normal(2, 2, vec![])])
            .await
            .unwrap();
        log.save_vote(&Vote::new(2, 7)).await.unwrap();
        log.save_committed(Some(log_id(2, 2))).await.unwrap();
        // A hole is refused.
        assert!(log
            .blocking_append(vec![normal(2, 9, vec![])])
            .await
            .is_err());
    }
    let mut log = LogStore::open(dir.path()).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 2)));
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 2)));
    let entries = log.try_get_log_entries(0..3).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert!(matches!(entries[0].payload, EntryPayload::Blank));
    match &entries[1].payload {
        EntryPayload::Normal(batch) => {
            assert_eq!(batch.records, vec![cluster("c1"), cluster("c2")])
        }
        other => panic!("{other:?}"),
    }
    match &entries[2].payload {
        EntryPayload::Normal(batch) => assert!(batch.records.is_empty()),
        other => panic!("{other:?}"),
    }

    // KRaft's form: the entry at index 1 is a batch at offset 1 with leader epoch 1 whose one
    // record is the metadata records' JSON.
    let plain =
        gregor_storage::PartitionLog::open(dir.path().to_path_buf(), Default::default()).unwrap();
    let mut values = Vec::new();
    plain
        .replay(|offset, key, value| {
            if key.is_none() {
                values.push((offset, value.unwrap()));
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        values.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let first: MetadataBatch = serde_json::from_slice(&values[0].1).unwrap();
    assert_eq!(first.records, vec![cluster("c1"), cluster("c2")]);

    // Truncation after a leader change: entries from index 2 go, the next append is index 2.
    log.truncate(log_id(2, 2)).await.unwrap();
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 1))
    );
    log.blocking_append(vec![normal(3, 2, vec![cluster("c3")])])
        .await
        .unwrap();
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(3, 2))
    );
}

#[tokio::test]
async fn applied_records_reach_the_applier_and_a_snapshot_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let applier = Arc::new(ImageOnly::default());
    let mut sm = StateMachine::open(dir.path(), applier.clone()).unwrap();
    let applied = sm
        .apply(vec![normal(1, 0, vec![cluster("a")]), normal(1, 1, vec![])])
        .await
        .unwrap();
    assert_eq!(
        applied.iter().map(|c| c.offset).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(applier.image().cluster_id, "a");
    assert_eq!(applier.image().offset, 1);
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1)));
    let file = dir
        .path()
        .join("00000000000000000001-0000000001.checkpoint");
    assert!(file.is_file());

    // A restart starts from the snapshot (the log's own checkpoint file is not one).
    std::fs::write(dir.path().join("partition.checkpoint"), "0\n0 0\n").unwrap();
    let restarted = Arc::new(ImageOnly::default());
    let mut sm = StateMachine::open(dir.path(), restarted.clone()).unwrap();
    assert_eq!(restarted.image().cluster_id, "a");
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 1)));

    // Another controller installs it from the bytes the leader sends.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Arc::new(ImageOnly::default());
    let mut follower = StateMachine::open(other_dir.path(), other.clone()).unwrap();
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    follower
        .install_snapshot(&current.meta, current.snapshot)
        .await
        .unwrap();
    assert_eq!(*other.image(), *restarted.image());
    assert_eq!(
        follower.applied_state().await.unwrap().0,
        Some(log_id(1, 1))
    );
}
