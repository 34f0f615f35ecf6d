//! The leader-epoch cache (Kafka's `LeaderEpochFileCache`, KIP-101): for each leader epoch that
//! wrote to the log, the offset of its first batch, kept in `leader-epoch-checkpoint` in
//! Kafka's file format. It answers OffsetForLeaderEpoch (where an epoch's records end), which
//! a follower or a consumer uses after a leader change to find where its log and the leader's
//! part, so that they truncate there and never by the high watermark alone.
//!
//! Entries only grow at the end (a new epoch, at the log end); truncating the log removes the
//! entries past the new end, and moving the log start moves the first entry's offset. The file
//! is rewritten (atomically, with fsync) on every change: changes happen once per leader change
//! or log truncation, not per append. A missing or unreadable file is rebuilt from the batches
//! by the log when it opens.

use std::fs;
use std::path::Path;

use crate::atomic_file;

pub(crate) const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// No epoch (Kafka's UNDEFINED_EPOCH) and no offset (UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// (epoch, start offset) pairs, both strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// The cache saved in `dir`; `None` if there is none or it cannot be read.
    pub(crate) fn read(dir: &Path) -> Option<EpochCache> {
        let text = fs::read_to_string(dir.join(EPOCH_CHECKPOINT_FILE)).ok()?;
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut cache = EpochCache::default();
        for _ in 0..count {
            let mut parts = lines.next()?.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start: i64 = parts.next()?.parse().ok()?;
            if epoch < 0 || start < 0 {
                return None;
            }
            cache.assign(epoch, start);
        }
        Some(cache)
    }

    /// Saves the cache in `dir`, atomically and durably.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        let path = dir.join(EPOCH_CHECKPOINT_FILE);
        atomic_file::write(&path, text.as_bytes())
            .inspect_err(|e| crate::segment::note_open_failure(&path, e))
    }

    pub(crate) fn remove_tmp(dir: &Path) {
        atomic_file::remove_leftover(&dir.join(EPOCH_CHECKPOINT_FILE));
    }

    /// Whether [`EpochCache::assign`] would change the cache (checked on every append, where
    /// a change is rare).
    pub fn would_change(&self, epoch: i32, start_offset: i64) -> bool {
        epoch >= 0
            && start_offset >= 0
            && self
                .entries
                .last()
                .is_none_or(|&(e, s)| e != epoch || s > start_offset)
    }

    /// Records that `epoch` wrote from `start_offset` on; returns whether the cache changed.
    /// An epoch already known, at this or an earlier offset, changes nothing; entries that
    /// would break monotonicity (an epoch not older, or a start not earlier, than the new
    /// one) are dropped first, as Kafka does.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if !self.would_change(epoch, start_offset) {
            return false;
        }
        while let Some(&(e, s)) = self.entries.last() {
            if e >= epoch || s >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// The newest epoch that wrote to the log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Where the records of `requested` end, as OffsetForLeaderEpoch answers: the largest
    /// epoch not above `requested` and the start of the first epoch after it (the log end for
    /// the latest epoch); a requested epoch older than every known one ends where the first
    /// known begins. `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` when nothing is known.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(&(_, higher_start)) = self.entries.iter().find(|&&(e, _)| e > requested) else {
            return undefined;
        };
        match self.entries.iter().rev().find(|&&(e, _)| e <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }

    /// The epoch that wrote `offset` (`None` before the first known epoch).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .take_while(|&&(_, start)| start <= offset)
            .last()
            .map(|&(e, _)| e)
    }

    /// The log was truncated to end at `end_offset`: entries starting at or after it go;
    /// returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        while self.entries.last().is_some_and(|&(_, s)| s >= end_offset) {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// The log now starts at `start_offset`: entries wholly before it go, and the epoch in
    /// force there starts there; returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .iter()
            .take_while(|&&(_, s)| s <= start_offset)
            .count();
        if covered == 0 {
            return false;
        }
        let (epoch, start) = self.entries[covered - 1];
        if covered == 1 && start == start_offset {
            return false;
        }
        self.entries.drain(..covered - 1);
        self.entries[0] = (epoch, start_offset);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, s) in entries {
            assert!(c.assign(e, s));
        }
        c
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        // Known epoch at a later offset, or again: nothing changes.
        assert!(!c.assign(3, 15));
        assert!(!c.assign(3, 10));
        // An older epoch, or one starting before the last: the entries it contradicts go.
        assert!(c.assign(2, 10));
        assert_eq!(c.entries(), &[(1, 0), (2, 10)]);
        assert!(c.assign(4, 5));
        assert_eq!(c.entries(), &[(1, 0), (4, 5)]);
        assert!(!c.assign(-1, 20));
    }

    #[test]
    fn end_offsets_are_kafkas() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        let leo = 30;
        assert_eq!(
            c.end_offset_for(5, leo),
            (5, 30),
            "the latest epoch ends at the log end"
        );
        assert_eq!(c.end_offset_for(3, leo), (3, 20));
        assert_eq!(
            c.end_offset_for(4, leo),
            (3, 20),
            "an epoch that never wrote"
        );
        assert_eq!(c.end_offset_for(2, leo), (1, 10));
        assert_eq!(
            c.end_offset_for(0, leo),
            (0, 0),
            "older than every known epoch"
        );
        assert_eq!(
            c.end_offset_for(6, leo),
            (-1, -1),
            "newer than every known epoch"
        );
        assert_eq!(c.end_offset_for(-1, leo), (-1, -1));
        assert_eq!(EpochCache::default().end_offset_for(1, leo), (-1, -1));
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.epoch_for_offset(99), Some(5));
        assert_eq!(cache(&[(2, 5)]).epoch_for_offset(4), None);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!c.truncate_from_end(25));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        assert!(c.truncate_from_end(5));
        assert_eq!(c.entries(), &[(1, 0)]);

        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(3, 12), (5, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(c.entries(), &[(5, 20)]);
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_start(25));
        assert_eq!(c.entries(), &[(5, 25)]);
    }

    #[test]
    fn the_checkpoint_file_round_trips_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochCache::read(dir.path()), None);
        let c = cache(&[(1, 0), (3, 10)]);
        c.write(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n1 0\n3 10\n", "Kafka's format");
        assert_eq!(EpochCache::read(dir.path()), Some(c));
        for bad in [
            "1\n1\n1 0\n",
            "0\n2\n1 0\n",
            "0\n1\nx 0\n",
            "0\n1\n-2 0\n",
            "",
        ] {
            fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), bad).unwrap();
            assert_eq!(EpochCache::read(dir.path()), None, "{bad:?}");
        }
    }
}
