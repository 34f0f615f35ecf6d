//! `PartitionLog::truncate_to`: what a follower (or a Raft log) does when it diverged from its
//! leader. Batches from the cut on are gone durably, the log goes on at the cut, and what is
//! left reads and recovers as before.

use bytes::Bytes;

use crate::test_batches::{batch_of, headers, Spec};
use crate::{LogConfig, PartitionLog};

/// A batch of `n` records; with `pid`, idempotent from `seq`.
fn batch(n: usize, pid: i64, seq: i32) -> Vec<u8> {
    let entries: Vec<_> = (0..n)
        .map(|i| (None, Some(Bytes::from(vec![b'a' + (i % 26) as u8; 200]))))
        .collect();
    let spec = Spec {
        pid,
        epoch: if pid >= 0 { 0 } else { -1 },
        seq: if pid >= 0 { seq } else { -1 },
        ..Spec::default()
    };
    batch_of(&entries, &spec)
}

/// (base offset, leader epoch) of every batch.
fn batches(log: &PartitionLog) -> Vec<(i64, i32)> {
    headers(log)
        .iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch))
        .collect()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

#[test]
fn truncation_cuts_whole_batches_across_segments_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let mut log = PartitionLog::open(path.clone(), small_segments()).unwrap();
    for i in 0..30 {
        log.append(&batch(2, -1, 0), i / 10, 0).unwrap();
    }
    assert_eq!(log.log_end_offset(), 60);
    let segments_before = log.segments().count();
    assert!(segments_before > 3, "{segments_before} segments");

    // Inside a batch (offsets 40 and 41): the whole batch goes.
    log.truncate_to(41).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    assert!(log.segments().count() < segments_before);
    let left = batches(&log);
    assert_eq!(left.len(), 20);
    assert_eq!(left.last(), Some(&(38, 1)));

    // Appends go on at the cut, with the new leader's epoch.
    let appended = log.append(&batch(2, -1, 0), 7, 0).unwrap();
    assert_eq!(appended.base_offset, 40);
    assert_eq!(batches(&log).last(), Some(&(40, 7)));

    // Durable: a reopen (no checkpoint written since) sees the same log.
    drop(log);
    let log = PartitionLog::open(path, small_segments()).unwrap();
    assert_eq!(log.log_end_offset(), 42);
    assert_eq!(batches(&log).len(), 21);
}

#[test]
fn truncating_at_or_past_the_end_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    log.append(&batch(3, -1, 0), 0, 0).unwrap();
    log.truncate_to(3).unwrap();
    log.truncate_to(100).unwrap();
    assert_eq!(batches(&log), vec![(0, 0)]);
}

#[test]
fn truncating_below_the_log_start_empties_the_log_which_starts_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let mut log = PartitionLog::open(path.clone(), small_segments()).unwrap();
    for _ in 0..10 {
        log.append(&batch(2, -1, 0), 0, 0).unwrap();
    }
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(batches(&log).is_empty());
    assert_eq!(log.append(&batch(1, -1, 0), 1, 0).unwrap().base_offset, 0);
    drop(log);
    let log = PartitionLog::open(path, small_segments()).unwrap();
    assert_eq!(batches(&log), vec![(0, 1)]);
}

#[test]
fn producer_state_follows_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    log.append(&batch(2, 5, 0), 0, 0).unwrap();
    log.append(&batch(2, 5, 2), 0, 0).unwrap();
    log.truncate_to(2).unwrap();
    // The batch from sequence 2 is gone: it is not a duplicate any more, it is appended again.
    let again = log.append(&batch(2, 5, 2), 1, 0).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 2);
    // The first batch still is one.
    assert!(log.append(&batch(2, 5, 0), 1, 0).unwrap().duplicate);
}

#[test]
fn a_log_restarts_empty_past_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let mut log = PartitionLog::open(path.clone(), small_segments()).unwrap();
    for _ in 0..10 {
        log.append(&batch(2, 9, 0), 0, 0).unwrap();
    }
    log.restart_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(log.append(&batch(1, -1, 0), 3, 0).unwrap().base_offset, 100);
    assert_eq!(
        log.max_producer_id(),
        None,
        "the producers went with their batches"
    );
    drop(log);
    let log = PartitionLog::open(path, small_segments()).unwrap();
    assert_eq!(batches(&log), vec![(100, 3)]);
}

/// The leader-epoch cache follows the log: a new epoch is recorded at its first batch (and
/// saved), truncation drops the epochs past the cut, a moved log start moves the first epoch,
/// and a log whose checkpoint file is lost rebuilds it from its batches.
#[test]
fn leader_epochs_follow_appends_truncation_and_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let mut log = PartitionLog::open(path.clone(), small_segments()).unwrap();
    for (epoch, batches) in [(0, 3), (2, 2), (5, 1)] {
        for _ in 0..batches {
            log.append(&batch(2, -1, 0), epoch, 0).unwrap();
        }
    }
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 6), (5, 10)]);
    assert_eq!(log.end_offset_for_epoch(2, 5), (2, 10));
    assert_eq!(
        log.end_offset_for_epoch(4, 5),
        (2, 10),
        "an epoch that never wrote here"
    );
    assert_eq!(
        log.end_offset_for_epoch(5, 5),
        (5, 12),
        "the latest ends at the log end"
    );
    assert_eq!(log.end_offset_for_epoch(9, 5), (-1, -1));
    // A leader in epoch 9 that has written nothing yet: its epoch starts at the log end.
    assert_eq!(log.end_offset_for_epoch(9, 9), (9, 12));
    assert_eq!(log.end_offset_for_epoch(5, 9), (5, 12));
    let file = path.join("leader-epoch-checkpoint");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "0\n3\n0 0\n2 6\n5 10\n"
    );

    // Reopened as saved; cut inside epoch 2: epoch 5 is gone, from the file too.
    drop(log);
    let mut log = PartitionLog::open(path.clone(), small_segments()).unwrap();
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 6), (5, 10)]);
    log.truncate_to(8).unwrap();
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 6)]);
    assert_eq!(log.end_offset_for_epoch(2, 2), (2, 8));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n0 0\n2 6\n");

    // A new leader appends at the cut.
    log.append(&batch(2, -1, 0), 7, 0).unwrap();
    assert_eq!(log.leader_epochs(), &[(0, 0), (2, 6), (7, 8)]);

    // The log start moves into epoch 2.
    log.delete_records_before(7).unwrap();
    assert_eq!(log.leader_epochs(), &[(2, 7), (7, 8)]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n2 7\n7 8\n");

    // A lost (or unreadable) file is rebuilt from the batches that are left.
    drop(log);
    std::fs::write(&file, "garbage").unwrap();
    let log = PartitionLog::open(path.clone(), small_segments()).unwrap();
    assert_eq!(log.leader_epochs(), &[(2, 7), (7, 8)]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n2 7\n7 8\n");
    drop(log);
    std::fs::remove_file(&file).unwrap();
    let mut log = PartitionLog::open(path, small_segments()).unwrap();
    assert_eq!(log.leader_epochs(), &[(2, 7), (7, 8)]);

    // A log started again empty (a replica taking its leader's snapshot) knows no epoch.
    log.restart_at(40).unwrap();
    assert_eq!(log.leader_epochs(), &[] as &[(i32, i64)]);
    assert!(!file.exists());
}
