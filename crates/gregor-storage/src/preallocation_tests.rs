//! Preallocated segment files (allocated ahead of their writes, written in place) and the
//! file slices fetches send from: what a crash leaves in a preallocated tail, trims, rolls.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::test_batches::{batch_of, headers, Spec};
use crate::{LogConfig, PartitionLog};

/// A batch of `n` records of 100-byte values.
fn batch(n: usize) -> Vec<u8> {
    let entries: Vec<_> = (0..n)
        .map(|i| (None, Some(Bytes::from(vec![b'0' + (i % 10) as u8; 100]))))
        .collect();
    batch_of(&entries, &Spec::default())
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        preallocate: true,
        ..LogConfig::default()
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// (base offset, record count) of every batch, read through the log.
fn all_batches(log: &PartitionLog) -> Vec<(i64, i32)> {
    headers(log)
        .iter()
        .map(|h| (h.base_offset, h.records_count))
        .collect()
}

#[test]
fn files_are_allocated_ahead_and_trimmed_to_their_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
    log.append(&b, 0, 1_000).unwrap();
    let active = &log_files(&dir)[0];
    // Allocated a step ahead (1 MiB), yet the log counts its data only.
    assert_eq!(file_len(active), 1 << 20);
    assert_eq!(log.size_bytes(), b.len() as u64);
    // The file grows in steps as the data does, never past segment.bytes.
    while log.size_bytes() < (3 << 20) {
        log.append(&b, 0, 1_000).unwrap();
    }
    let len = file_len(active);
    assert!(len >= log.size_bytes() && len <= 8 << 20, "{len}");
    assert!(len > log.size_bytes(), "allocated ahead of the data");
    // A roll gives the old segment's unused space back; a checkpoint the active one's.
    while log_files(&dir).len() < 2 {
        log.append(&b, 0, 1_000).unwrap();
    }
    let files = log_files(&dir);
    let sizes: u64 = files.iter().map(|f| file_len(f)).sum();
    assert!(
        file_len(&files[1]) > 0,
        "the new segment is allocated ahead"
    );
    log.checkpoint().unwrap();
    let trimmed: u64 = files.iter().map(|f| file_len(f)).sum();
    assert_eq!(trimmed, log.size_bytes());
    assert!(sizes > trimmed);
    let expected = all_batches(&log);
    drop(log);
    let log = PartitionLog::open(dir, config(8 << 20)).unwrap();
    assert_eq!(all_batches(&log), expected);
}

#[test]
fn recovery_ends_the_log_where_the_preallocated_zeros_begin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    {
        let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
        for _ in 0..5 {
            log.append(&b, 0, 1_000).unwrap();
        }
        // Dropped without a checkpoint, as by a crash: the zeros stay.
    }
    let file = log_files(&dir)[0].clone();
    assert_eq!(file_len(&file), 1 << 20);
    let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(all_batches(&log).len(), 5);
    // The tail is cut off at recovery; appends go on where the batches end.
    assert_eq!(file_len(&file), 5 * b.len() as u64);
    assert_eq!(log.append(&b, 0, 1_000).unwrap().base_offset, 50);
    assert_eq!(all_batches(&log).len(), 6);
}

#[test]
fn a_torn_batch_followed_by_zeros_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    {
        let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
        for _ in 0..3 {
            log.append(&b, 0, 1_000).unwrap();
        }
    }
    let file = log_files(&dir)[0].clone();
    // Half of a fourth batch reached the disk before the crash; zeros follow it.
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all_at(&b[..b.len() / 2], 3 * b.len() as u64)
        .unwrap();
    drop(f);
    let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(file_len(&file), 3 * b.len() as u64);
    assert_eq!(log.append(&b, 0, 1_000).unwrap().base_offset, 30);
    assert_eq!(
        all_batches(&log),
        vec![(0, 10), (10, 10), (20, 10), (30, 10)]
    );
}

#[test]
fn batches_past_zeros_never_come_back() {
    // An unsynced write whose first page was lost but whose later pages reached the disk: a
    // whole batch lies past the zeros. It is not the log's; recovery cuts it off, and later
    // appends and recoveries never see it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    {
        let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
        log.append(&b, 0, 1_000).unwrap();
        log.append(&b, 0, 1_000).unwrap();
    }
    let file = log_files(&dir)[0].clone();
    let mut stray = batch(10);
    // Offsets 30..40: plausible as the batch after the next one.
    stray[..8].copy_from_slice(&30i64.to_be_bytes());
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all_at(&stray, 3 * b.len() as u64).unwrap();
    drop(f);
    for round in 0..2 {
        let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
        assert_eq!(log.log_end_offset(), 20 + 10 * round);
        log.append(&batch(10), 0, 1_000).unwrap();
    }
    let log = PartitionLog::open(dir, config(8 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(
        all_batches(&log),
        vec![(0, 10), (10, 10), (20, 10), (30, 10)]
    );
}

#[test]
fn a_preallocated_file_without_batches_opens_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{:020}.log", 0));
    fs::File::create(&file).unwrap().set_len(4 << 20).unwrap();
    let mut log = PartitionLog::open(dir.clone(), config(8 << 20)).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(file_len(&file), 0);
    assert_eq!(log.append(&batch(1), 0, 1_000).unwrap().base_offset, 0);
    assert_eq!(all_batches(&log), vec![(0, 1)]);
}

#[test]
fn without_preallocation_files_hold_only_their_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    let mut log = PartitionLog::open(
        dir.clone(),
        LogConfig {
            preallocate: false,
            ..config(8 << 20)
        },
    )
    .unwrap();
    for _ in 0..3 {
        log.append(&b, 0, 1_000).unwrap();
        assert_eq!(file_len(&log_files(&dir)[0]), log.size_bytes());
    }
}

#[test]
fn a_slice_stays_readable_across_a_roll_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    let mut log = PartitionLog::open(
        dir,
        LogConfig {
            retention_bytes: 0,
            ..config(3 * b.len() as u64)
        },
    )
    .unwrap();
    log.append(&b, 0, 1_000).unwrap();
    log.append(&b, 0, 1_000).unwrap();
    // A consumer's fetch took the active segment's batches...
    let slice = log.read_slice(0, 1 << 20, i64::MAX).unwrap().unwrap();
    assert_eq!((slice.position, slice.len), (0, 2 * b.len()));
    assert_eq!(slice.end_offset, 20);
    let before = slice.read().unwrap();
    assert_eq!(before.len(), 2 * b.len());
    // ...then the segment rolls (trimmed) and retention deletes it while the send is on.
    for _ in 0..4 {
        log.append(&b, 0, 1_000).unwrap();
    }
    assert!(log.enforce_retention(2_000, i64::MAX).unwrap() > 0);
    assert!(log.log_start_offset() > 0);
    assert_eq!(slice.read().unwrap(), before);
}

#[test]
fn slices_end_at_batch_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let b = batch(10);
    let len = b.len();
    let mut log = PartitionLog::open(
        tmp.path().join("t-0"),
        LogConfig {
            index_interval_bytes: 2 * len,
            ..config(1 << 30)
        },
    )
    .unwrap();
    for _ in 0..20 {
        log.append(&b, 0, 1_000).unwrap();
    }
    let slice = |offset, max_bytes, max_offset| {
        log.read_slice(offset, max_bytes, max_offset)
            .unwrap()
            .map(|s| (s.position as usize / len, s.len / len, s.end_offset))
    };
    // (first batch, batches, offset after them)
    assert_eq!(slice(0, 1, i64::MAX), Some((0, 1, 10)));
    assert_eq!(slice(0, 3 * len - 1, i64::MAX), Some((0, 2, 20)));
    assert_eq!(slice(0, 3 * len, i64::MAX), Some((0, 3, 30)));
    assert_eq!(slice(55, 7 * len + 3, i64::MAX), Some((5, 7, 120)));
    assert_eq!(slice(55, usize::MAX / 2, i64::MAX), Some((5, 15, 200)));
    // max_offset: batches starting at or past it stay out; one containing it is in.
    assert_eq!(slice(0, usize::MAX / 2, 100), Some((0, 10, 100)));
    assert_eq!(slice(0, usize::MAX / 2, 95), Some((0, 10, 100)));
    assert_eq!(slice(0, 3 * len, 95), Some((0, 3, 30)));
    assert_eq!(slice(100, 1 << 20, 100), None);
    assert_eq!(slice(200, 1 << 20, i64::MAX), None);
}

#[test]
fn an_untrimmed_rolled_segment_keeps_the_segments_after_it() {
    // A crash right after a roll, before the old segment's trim reached the disk: its zeros
    // are the end of its data, not damage, so the segments after it stay.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let b = batch(10);
    let expected = {
        let mut log = PartitionLog::open(dir.clone(), config(3 * b.len() as u64)).unwrap();
        for _ in 0..7 {
            log.append(&b, 0, 1_000).unwrap();
        }
        all_batches(&log)
    };
    let files = log_files(&dir);
    assert_eq!(files.len(), 3);
    fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let log = PartitionLog::open(dir.clone(), config(3 * b.len() as u64)).unwrap();
    assert_eq!(all_batches(&log), expected);
    assert_eq!(file_len(&files[0]), 3 * b.len() as u64);
}
