//! `PartitionLog::append_as_follower`: a replica copies its leader's batches byte for byte,
//! with the leader's offsets and epochs, and ends up with the same log, epochs and producer
//! state; what does not continue its log, or is corrupt, changes nothing.

use bytes::Bytes;

use crate::test_batches::{batch_of, Spec};
use crate::{LogConfig, PartitionLog, StorageError};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

fn batch(n: usize, spec: &Spec) -> Vec<u8> {
    let entries: Vec<_> = (0..n)
        .map(|i| (None, Some(Bytes::from(vec![b'a' + (i % 26) as u8; 150]))))
        .collect();
    batch_of(&entries, spec)
}

/// The whole log, as bytes.
fn all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20, log.log_end_offset()).unwrap();
        let headers = crate::batch::validate_batches(&bytes, usize::MAX).unwrap();
        offset = headers.last().unwrap().next_offset();
        out.extend_from_slice(&bytes);
    }
    out
}

#[test]
fn a_follower_copies_its_leader_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = PartitionLog::open(dir.path().join("leader"), config()).unwrap();
    let mut follower = PartitionLog::open(dir.path().join("follower"), config()).unwrap();
    for _ in 0..4 {
        leader.append(&batch(3, &Spec::default()), 0, 10).unwrap();
    }
    for seq in [0, 2, 4] {
        let idempotent = Spec {
            pid: 7,
            epoch: 0,
            seq,
            ..Spec::default()
        };
        leader.append(&batch(2, &idempotent), 3, 20).unwrap();
    }
    let transactional = Spec {
        pid: 9,
        epoch: 1,
        seq: 0,
        transactional: true,
        ..Spec::default()
    };
    leader.append(&batch(2, &transactional), 3, 30).unwrap();
    leader.append_marker(9, 1, false, 4, 40).unwrap();
    leader
        .append(
            &batch(
                2,
                &Spec {
                    seq: 2,
                    ..transactional
                },
            ),
            4,
            50,
        )
        .unwrap();

    // Copied in fetches of a few batches each, as a replica fetcher does.
    while follower.log_end_offset() < leader.log_end_offset() {
        let from = follower.log_end_offset();
        let fetched = leader.read(from, 1000, leader.log_end_offset()).unwrap();
        let end = follower.append_as_follower(&fetched, 60).unwrap();
        assert!(end > from);
    }
    assert_eq!(all(&follower), all(&leader));
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    assert_eq!(follower.leader_epochs(), &[(0, 0), (3, 12), (4, 20)]);
    assert_eq!(follower.active_producers(), leader.active_producers());
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset()
    );
    assert!(
        follower.first_unstable_offset().is_some(),
        "a transaction is open"
    );

    // Batches it has already, or corrupt ones: refused, and the log is unchanged.
    let again = leader.read(0, 1 << 20, leader.log_end_offset()).unwrap();
    let end = follower.log_end_offset();
    assert!(matches!(
        follower.append_as_follower(&again, 70),
        Err(StorageError::NotContiguous {
            first_offset: 0,
            ..
        })
    ));
    leader.append(&batch(2, &Spec::default()), 5, 80).unwrap();
    let mut next = leader
        .read(end, 1 << 20, leader.log_end_offset())
        .unwrap()
        .to_vec();
    let last = next.len() - 1;
    next[last] ^= 0xff;
    assert!(follower.append_as_follower(&next, 90).is_err());
    assert_eq!(follower.log_end_offset(), end);
    assert_eq!(follower.leader_epochs(), &[(0, 0), (3, 12), (4, 20)]);

    // Restarted, the follower recovers the same log, epochs and producers.
    next[last] ^= 0xff;
    follower.append_as_follower(&next, 100).unwrap();
    let producers = follower.active_producers();
    drop(follower);
    let mut follower = PartitionLog::open(dir.path().join("follower"), config()).unwrap();
    assert_eq!(all(&follower), all(&leader));
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    assert_eq!(follower.active_producers(), producers);

    // A gap (a batch the leader's cleaner removed) is fine: the next batch continues the log.
    let gap_start = leader.log_end_offset();
    leader.append(&batch(2, &Spec::default()), 6, 110).unwrap();
    leader.append(&batch(2, &Spec::default()), 6, 120).unwrap();
    let after_gap = leader
        .read(gap_start + 2, 1 << 20, leader.log_end_offset())
        .unwrap();
    assert_eq!(
        follower.append_as_follower(&after_gap, 130).unwrap(),
        leader.log_end_offset()
    );
    assert_eq!(follower.leader_epochs().last(), Some(&(6, gap_start + 2)));
}
