//! Unit tests of log compaction.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proto_kafka::records::{Compression, RecordBatchDecoder};

use crate::batch::{self, BatchHeader};
use crate::test_batches::{batch_of, Spec};
use crate::{LogConfig, PartitionLog, StorageError};

const NOW: i64 = 1_000_000;

/// One batch of `(key, value)` records (`None` value = tombstone).
fn kv_batch(entries: &[(&str, Option<&str>)], s: &Spec) -> Vec<u8> {
    let entries: Vec<_> = entries
        .iter()
        .map(|(k, v)| {
            (
                Some(Bytes::from(k.to_string())),
                v.map(|v| Bytes::from(v.to_string())),
            )
        })
        .collect();
    batch_of(&entries, s)
}

fn compact_config() -> LogConfig {
    LogConfig {
        compact: true,
        segment_bytes: 10, // one batch per segment
        index_interval_bytes: 1,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn dir_of(tmp: &Path) -> PathBuf {
    tmp.join("compact-0")
}

fn open(tmp: &Path, cfg: LogConfig) -> PartitionLog {
    PartitionLog::open(dir_of(tmp), cfg).unwrap()
}

/// Every stored batch: (header, raw bytes), read through `PartitionLog::read`.
fn all_batches(log: &PartitionLog) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = vec![];
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let data = log.read(offset, 1 << 20, i64::MAX).unwrap();
        if data.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < data.len() {
            let h = BatchHeader::parse(&data[pos..]).unwrap();
            let raw = data[pos..pos + h.total_len()].to_vec();
            batch::validate_stored(&raw).unwrap();
            offset = h.next_offset();
            pos += h.total_len();
            out.push((h, raw));
        }
    }
    out
}

/// Every data record: (offset, key, value), checking offsets strictly increase.
fn all_records(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out: Vec<(i64, String, Option<String>)> = vec![];
    for (h, raw) in all_batches(log) {
        if h.is_control() {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut Bytes::from(raw)).unwrap();
        assert_eq!(set.records.len() as i32, h.records_count);
        for r in set.records {
            assert!(r.offset >= h.base_offset && r.offset <= h.last_offset());
            if let Some(last) = out.last() {
                assert!(r.offset > last.0, "offsets must increase");
            }
            out.push((
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
            ));
        }
    }
    out
}

fn latest(records: &[(i64, String, Option<String>)]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

fn clean(log: &mut PartitionLog, now: i64, budget: usize) -> Option<crate::CleanStats> {
    let plan = log.cleaning_plan(now)?;
    let cleaned = plan.execute(now, budget, &mut |_| {}).unwrap();
    Some(log.install_cleaned(cleaned).unwrap())
}

/// Appends `batches` batches of 4 records over keys k0..k4 with values "v<n>", each in its own
/// segment (segment.bytes is small).
fn fill(log: &mut PartitionLog, batches: usize, compression: Compression) {
    let mut n = 0;
    for _ in 0..batches {
        let vals: Vec<String> = (0..4).map(|j| format!("v{}", n + j)).collect();
        let keys: Vec<String> = (0..4).map(|j| format!("k{}", (n + j) % 5)).collect();
        let entries: Vec<(&str, Option<&str>)> = keys
            .iter()
            .zip(&vals)
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        let b = kv_batch(
            &entries,
            &Spec {
                compression,
                ..Spec::default()
            },
        );
        log.append(&b, 0, 2_000).unwrap();
        n += 4;
    }
}

fn active_bytes(log: &PartitionLog) -> Vec<u8> {
    let base = log.segments.last().unwrap().base_offset;
    log.read(base, 1 << 20, i64::MAX).unwrap().to_vec()
}

#[test]
fn compaction_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), compact_config());
        fill(&mut log, 8, codec);
        assert!(log.segments.len() >= 3, "{codec:?}");
        let before = all_records(&log);
        let want = latest(&before);
        let active_before = active_bytes(&log);
        let end_before = log.log_end_offset();
        let active_base = log.segments.last().unwrap().base_offset;

        let stats = clean(&mut log, NOW, 1 << 20).expect("a plan");
        assert!(stats.records_removed > 0, "{codec:?}");
        assert!(!stats.map_full);
        assert_eq!(stats.clean_offset, active_base);
        assert_eq!(log.clean_offset(), active_base);
        assert_eq!(log.log_end_offset(), end_before);
        assert_eq!(
            active_bytes(&log),
            active_before,
            "{codec:?}: active untouched"
        );

        let after = all_records(&log);
        assert_eq!(latest(&after), want, "{codec:?}");
        // Below the active segment, one record per key: the latest one.
        let cleaned: Vec<_> = after.iter().filter(|r| r.0 < active_base).collect();
        let mut keys: Vec<_> = cleaned.iter().map(|r| r.1.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            cleaned.len(),
            "{codec:?}: duplicate keys remain"
        );
        for (off, k, v) in &cleaned {
            let newest = before.iter().rfind(|r| &r.1 == k).unwrap();
            assert!(
                before.iter().any(|r| r.0 == *off && &r.1 == k && &r.2 == v),
                "{codec:?}: record changed"
            );
            assert!(
                newest.0 >= active_base || newest.0 == *off,
                "{codec:?}: {k} not latest"
            );
        }
        // Rewritten batches keep their codec.
        for (h, _) in all_batches(&log) {
            assert_eq!(h.compression(), codec as i16);
        }
        // Reading from a removed offset returns the next batch.
        let removed = (0..active_base)
            .find(|o| !after.iter().any(|r| r.0 == *o))
            .expect("some offset removed");
        let data = log.read(removed, 1 << 20, i64::MAX).unwrap();
        let h = BatchHeader::parse(&data).unwrap();
        assert!(h.last_offset() >= removed);
        // Survives a reopen (recovery accepts batches with offset gaps).
        drop(log);
        fs::remove_file(dir_of(tmp.path()).join("partition.checkpoint")).ok();
        let log = open(tmp.path(), compact_config());
        assert_eq!(all_records(&log), after, "{codec:?}");
        assert_eq!(log.clean_offset(), active_base);
        assert!(log.cleaning_plan(NOW).is_none(), "clean log: no plan");
    }
}

#[test]
fn no_plan_for_non_compact_or_clean_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(
        tmp.path(),
        LogConfig {
            compact: false,
            ..compact_config()
        },
    );
    fill(&mut log, 4, Compression::None);
    assert!(log.cleaning_plan(NOW).is_none());
    log.update_config(compact_config());
    assert!(clean(&mut log, NOW, 1 << 20).is_some());
    assert!(log.cleaning_plan(NOW).is_none());
    // New dirty data: cleanable again (dirty ratio 0.5 reached).
    fill(&mut log, 4, Compression::None);
    assert!(log.cleaning_plan(NOW).is_some());
    log.update_config(LogConfig {
        min_cleanable_dirty_ratio: 0.99,
        ..compact_config()
    });
    assert!(log.cleaning_plan(NOW).is_none(), "dirty ratio too low");
    log.update_config(LogConfig {
        min_cleanable_dirty_ratio: 0.99,
        max_compaction_lag_ms: 10_000,
        ..compact_config()
    });
    assert!(log.cleaning_plan(NOW).is_some(), "max compaction lag");
}

#[test]
fn tombstones_kept_then_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_ms: 10_000,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg);
    let s = Spec::default(); // timestamps 1000..
    log.append(&kv_batch(&[("a", Some("1")), ("b", Some("1"))], &s), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("a", None), ("c", Some("1"))], &s), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("d", Some("1"))], &s), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("e", Some("1"))], &s), 0, 0)
        .unwrap();
    // Within delete.retention.ms: the tombstone stays, the value it deletes goes.
    let stats = clean(&mut log, 5_000, 1 << 20).unwrap();
    assert_eq!(stats.tombstones_removed, 0);
    let recs = all_records(&log);
    assert!(recs.iter().any(|r| r.1 == "a" && r.2.is_none()));
    assert_eq!(recs.iter().filter(|r| r.1 == "a").count(), 1);
    // More data so the log is dirty again; past the horizon the tombstone goes.
    log.append(&kv_batch(&[("f", Some("1"))], &s), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("g", Some("1"))], &s), 0, 0)
        .unwrap();
    let stats = clean(&mut log, 20_000, 1 << 20).unwrap();
    assert_eq!(stats.tombstones_removed, 1);
    let recs = all_records(&log);
    assert!(!recs.iter().any(|r| r.1 == "a"));
    assert!(recs.iter().any(|r| r.1 == "b"));
}

#[test]
fn min_compaction_lag_respected() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg);
    fill(&mut log, 4, Compression::None); // timestamps around 1000
    assert!(log.cleaning_plan(5_000).is_none());
    let plan = log.cleaning_plan(11_100).unwrap();
    assert_eq!(plan.segment_bases().len(), log.segments.len() - 1);
    // Newer segments are excluded: only the old prefix is planned.
    let s = Spec {
        ts: 50_000,
        ..Spec::default()
    };
    log.append(&kv_batch(&[("k0", Some("new"))], &s), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("k1", Some("new"))], &s), 0, 0)
        .unwrap();
    let plan = log.cleaning_plan(20_000).unwrap();
    let n = plan.segment_bases().len();
    assert!(n < log.segments.len() - 1);
    let cleaned = plan.execute(20_000, 1 << 20, &mut |_| {}).unwrap();
    log.install_cleaned(cleaned).unwrap();
    let recs = all_records(&log);
    // k0's old values in the planned range were not superseded by records outside it.
    assert!(recs
        .iter()
        .any(|r| r.1 == "k0" && r.2.as_deref() != Some("new")));
    assert!(recs
        .iter()
        .any(|r| r.1 == "k0" && r.2.as_deref() == Some("new")));
}

#[test]
fn transactions_compact_aborts_drop_and_markers_follow_their_data() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_ms: 0,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg.clone());
    let txn = |pid: i64, seq: i32, entries: &[(&str, Option<&str>)]| {
        let spec = Spec {
            pid,
            epoch: 0,
            seq,
            transactional: true,
            ..Spec::default()
        };
        kv_batch(entries, &spec)
    };
    log.append(&txn(7, 0, &[("a", Some("t1"))]), 0, 0).unwrap(); // 0
    log.append_marker(7, 0, true, 0, 0).unwrap(); // 1: commit
    log.append(&txn(8, 0, &[("c", Some("aborted"))]), 0, 0)
        .unwrap(); // 2
    log.append_marker(8, 0, false, 0, 0).unwrap(); // 3: abort
    log.append(&txn(7, 1, &[("e", Some("t2"))]), 0, 0).unwrap(); // 4
    log.append_marker(7, 0, true, 0, 0).unwrap(); // 5: commit
    log.append(&kv_batch(&[("a", Some("new"))], &Spec::default()), 0, 0)
        .unwrap(); // 6
    log.append(&txn(9, 0, &[("d", Some("open"))]), 0, 0)
        .unwrap(); // 7: stays open
    log.append(&kv_batch(&[("z", Some("after"))], &Spec::default()), 0, 0)
        .unwrap(); // 8
    let stats = clean(&mut log, NOW, 1 << 20).unwrap();
    assert_eq!(
        stats.clean_offset, 7,
        "the open transaction bounds the clean"
    );

    // Committed records compact like others (a=t1 superseded); aborted data is gone.
    let records = all_records(&log);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![4, 6, 7, 8], "{records:?}");
    assert_eq!(records[0].2.as_deref(), Some("t2"));
    // The first commit marker lost its data: this clean gives it a delete horizon (now +
    // delete.retention.ms, here 0), a clean after it removes it, even without new writes.
    // Producer 8's aborted batch is kept empty (its producer's last), so its marker stays.
    let markers = |log: &PartitionLog| -> Vec<i64> {
        all_batches(log)
            .iter()
            .filter(|(h, _)| h.is_control())
            .map(|(h, _)| h.base_offset)
            .collect()
    };
    assert_eq!(markers(&log), vec![1, 3, 5]);
    clean(&mut log, NOW + 1, 1 << 20).expect("a passed horizon makes the log cleanable");
    assert_eq!(markers(&log), vec![3, 5]);
    let empty: Vec<i64> = all_batches(&log)
        .iter()
        .filter(|(h, _)| h.records_count == 0)
        .map(|(h, _)| h.base_offset)
        .collect();
    assert_eq!(empty, vec![2]);

    // A reopened log sees the same transactions: only producer 9's is open.
    drop(log);
    let log = open(tmp.path(), cfg);
    assert_eq!(log.first_unstable_offset(), Some(7));
    assert_eq!(all_records(&log), records);
}

/// When a clean removes an abort marker (its transaction's records went before), the aborted
/// range goes from what read_committed fetches are told: no marker would ever close it, and
/// clients would drop every later record of the producer.
#[test]
fn a_removed_abort_marker_takes_its_aborted_range_along() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_ms: 0,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg);
    let txn = |seq: i32, key: &str, value: &str| {
        let spec = Spec {
            pid: 8,
            epoch: 0,
            seq,
            transactional: true,
            ..Spec::default()
        };
        kv_batch(&[(key, Some(value))], &spec)
    };
    log.append(&txn(0, "a", "aborted"), 0, 0).unwrap(); // 0
    log.append_marker(8, 0, false, 0, 0).unwrap(); // 1: abort
    log.append(&txn(1, "b", "kept"), 0, 0).unwrap(); // 2
    log.append_marker(8, 0, true, 0, 0).unwrap(); // 3: commit
    log.append(&kv_batch(&[("z", Some("last"))], &Spec::default()), 0, 0)
        .unwrap(); // 4
    assert_eq!(log.aborted_transactions(0, 5).len(), 1);
    // The first clean drops the aborted data and gives its marker a delete horizon; a clean
    // after the horizon removes the marker.
    clean(&mut log, NOW, 1 << 20).unwrap();
    clean(&mut log, NOW + 1, 1 << 20).expect("a passed horizon makes the log cleanable");
    let markers: Vec<i64> = all_batches(&log)
        .iter()
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| h.base_offset)
        .collect();
    assert!(
        !markers.contains(&1),
        "the abort marker is still there: {markers:?}"
    );
    assert_eq!(log.aborted_transactions(0, 5), vec![]);
}

#[test]
fn small_dedupe_budget_cleans_in_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg);
    // 12 batches of 4 distinct keys each, keys repeating every 3 batches.
    for round in 0..4 {
        for b in 0..3 {
            let keys: Vec<String> = (0..4).map(|j| format!("key{b}-{j}")).collect();
            let val = format!("r{round}");
            let entries: Vec<(&str, Option<&str>)> = keys
                .iter()
                .map(|k| (k.as_str(), Some(val.as_str())))
                .collect();
            log.append(&kv_batch(&entries, &Spec::default()), 0, 0)
                .unwrap();
        }
    }
    let want = latest(&all_records(&log));
    let active = log.segments.last().unwrap().base_offset;
    // Room for about one batch of keys.
    let budget = 4 * (6 + 48);
    let stats = clean(&mut log, NOW, budget).unwrap();
    assert!(stats.map_full);
    assert!(log.clean_offset() < active);
    assert_eq!(latest(&all_records(&log)), want);
    let mut passes = 1;
    while log.clean_offset() < active {
        clean(&mut log, NOW, budget).expect("still dirty");
        passes += 1;
        assert!(passes < 50);
    }
    assert!(passes > 1);
    assert!(log.cleaning_plan(NOW).is_none());
    let recs = all_records(&log);
    assert_eq!(latest(&recs), want);
    // Each key once below the active segment.
    let below: Vec<_> = recs.iter().filter(|r| r.0 < active).collect();
    let mut keys: Vec<_> = below.iter().map(|r| r.1.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), below.len());
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn strip(p: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(p.to_str().unwrap().strip_suffix(suffix).unwrap())
}

/// Crash at each step of the swap, then reopen.
#[test]
fn crash_at_each_swap_step() {
    // step 0: only .cleaned; 1: first .swap, rest .cleaned; 2: all .swap beside originals;
    // 3: all .swap, originals renamed .deleted; 4: first swap done, rest .swap + .deleted.
    for step in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_of(tmp.path());
        let mut log = open(tmp.path(), compact_config());
        fill(&mut log, 6, Compression::Lz4);
        // A tombstone so partial swaps would show resurrection.
        log.append(&kv_batch(&[("k0", None)], &Spec::default()), 0, 0)
            .unwrap();
        fill(&mut log, 1, Compression::None);
        log.checkpoint().unwrap();
        let want = latest(&all_records(&log));
        let plan = log.cleaning_plan(NOW).unwrap();
        let cleaned = plan.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
        assert!(cleaned.stats().segments_cleaned >= 2);
        std::mem::forget(cleaned); // crash: the files stay
        drop(log);
        let cleaned_files = files_with(&dir, ".cleaned");
        assert!(cleaned_files.len() >= 2);
        for (i, c) in cleaned_files.iter().enumerate() {
            let log_path = strip(c, ".cleaned");
            let swap = PathBuf::from(format!("{}.swap", log_path.display()));
            let deleted = PathBuf::from(format!("{}.deleted", log_path.display()));
            match step {
                0 => {}
                1 if i == 0 => fs::rename(c, &swap).unwrap(),
                1 => {}
                2 => fs::rename(c, &swap).unwrap(),
                3 => {
                    fs::rename(c, &swap).unwrap();
                    fs::rename(&log_path, &deleted).unwrap();
                }
                _ if i == 0 => {
                    fs::rename(&log_path, &deleted).unwrap();
                    fs::rename(c, &log_path).unwrap();
                }
                _ => {
                    fs::rename(c, &swap).unwrap();
                    fs::rename(&log_path, &deleted).unwrap();
                }
            }
        }
        let mut log = open(tmp.path(), compact_config());
        for suffix in [".cleaned", ".swap", ".deleted"] {
            assert!(files_with(&dir, suffix).is_empty(), "step {step}: {suffix}");
        }
        let recs = all_records(&log);
        assert_eq!(latest(&recs), want, "step {step}");
        // The log is usable and can be cleaned to completion.
        fill(&mut log, 2, Compression::None);
        let want = latest(&all_records(&log));
        log.update_config(LogConfig {
            min_cleanable_dirty_ratio: 0.0,
            ..compact_config()
        });
        let plan = log
            .cleaning_plan(NOW)
            .unwrap_or_else(|| panic!("step {step}: no plan at dirty ratio 0"));
        let c = plan.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
        let stats = log.install_cleaned(c).unwrap();
        assert!(stats.segments_cleaned > 0, "step {step}: {stats:?}");
        assert_eq!(latest(&all_records(&log)), want, "step {step}");
    }
}

#[test]
fn appends_during_clean_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), compact_config());
    fill(&mut log, 5, Compression::Snappy);
    let plan = log.cleaning_plan(NOW).unwrap();
    // Produce while the clean runs (rolling segments too).
    let s = Spec::default();
    for i in 0..5 {
        let v = format!("late{i}");
        log.append(&kv_batch(&[("k1", Some(&v)), ("late", Some(&v))], &s), 0, 0)
            .unwrap();
    }
    let want = latest(&all_records(&log));
    let end = log.log_end_offset();
    let cleaned = plan.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
    log.install_cleaned(cleaned).unwrap();
    assert_eq!(log.log_end_offset(), end);
    let recs = all_records(&log);
    assert_eq!(latest(&recs), want);
    assert_eq!(recs.iter().filter(|r| r.1 == "late").count(), 5);
    assert_eq!(want.get("k1").unwrap().as_deref(), Some("late4"));
}

#[test]
fn dropped_plan_result_leaves_no_files_and_stale_result_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_of(tmp.path());
    let mut log = open(tmp.path(), compact_config());
    fill(&mut log, 5, Compression::None);
    let plan = log.cleaning_plan(NOW).unwrap();
    let cleaned = plan.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
    assert!(!files_with(&dir, ".cleaned").is_empty());
    drop(cleaned);
    assert!(files_with(&dir, ".cleaned").is_empty());
    // Two plans: the second result to be installed is stale.
    let p1 = log.cleaning_plan(NOW).unwrap();
    let p2 = log.cleaning_plan(NOW).unwrap();
    let c1 = p1.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
    let c2 = p2.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
    log.install_cleaned(c1).unwrap();
    let want = all_records(&log);
    assert!(log.install_cleaned(c2).is_err());
    assert_eq!(all_records(&log), want);
    assert!(files_with(&dir, ".cleaned").is_empty());
}

#[test]
fn producer_last_batch_kept_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), compact_config());
    let idem = |seq: i32, v: &str| {
        kv_batch(
            &[("a", Some(v)), ("b", Some(v))],
            &Spec {
                pid: 9,
                epoch: 0,
                seq,
                ..Spec::default()
            },
        )
    };
    log.append(&idem(0, "1"), 0, 0).unwrap();
    log.append(&idem(2, "2"), 0, 0).unwrap();
    let s = Spec::default();
    log.append(&kv_batch(&[("a", Some("x")), ("b", Some("x"))], &s), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("c", Some("x"))], &s), 0, 0)
        .unwrap();
    clean(&mut log, NOW, 1 << 20).unwrap();
    let batches = all_batches(&log);
    // First producer batch dropped, the last one kept with no records.
    assert!(!batches.iter().any(|(h, _)| h.base_offset == 0));
    let (h, _) = batches.iter().find(|(h, _)| h.base_offset == 2).unwrap();
    assert_eq!(
        (h.records_count, h.last_offset_delta, h.base_sequence),
        (0, 1, 2)
    );
    assert_eq!(
        latest(&all_records(&log)).get("a").unwrap().as_deref(),
        Some("x")
    );
    // replay() steps over empty batches.
    let mut seen = vec![];
    log.replay(|o, _, _| {
        seen.push(o);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![4, 5, 6]);
    // After a reopen the producer's sequence state survives.
    drop(log);
    let mut log = open(tmp.path(), compact_config());
    assert!(matches!(
        log.append(&idem(7, "3"), 0, 0),
        Err(StorageError::OutOfOrderSequence(_))
    ));
    assert!(log.append(&idem(2, "2"), 0, 0).unwrap().duplicate);
    assert!(!log.append(&idem(4, "3"), 0, 0).unwrap().duplicate);
}

/// Only a producer's last batch is kept for its sequence state: an earlier one whose records
/// are all superseded goes entirely when the producer's last batch lies beyond the cleaned range.
#[test]
fn a_producers_earlier_batch_goes_when_its_last_is_beyond_the_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), compact_config());
    let idem = |seq: i32, key: &str| {
        kv_batch(
            &[(key, Some("p"))],
            &Spec {
                pid: 9,
                epoch: 0,
                seq,
                ..Spec::default()
            },
        )
    };
    log.append(&idem(0, "a"), 0, 0).unwrap(); // offset 0
    let s = Spec::default();
    log.append(&kv_batch(&[("a", Some("x"))], &s), 0, 0)
        .unwrap(); // 1: supersedes it
    log.append(&idem(1, "b"), 0, 0).unwrap(); // 2: the producer's last, in the active segment
    let stats = clean(&mut log, NOW, 1 << 20).unwrap();
    assert!(stats.segments_cleaned > 0, "{stats:?}");
    let bases: Vec<i64> = all_batches(&log)
        .iter()
        .map(|(h, _)| h.base_offset)
        .collect();
    assert_eq!(
        bases,
        vec![1, 2],
        "the superseded batch at 0 is gone, not kept empty"
    );
    assert!(log.append(&idem(1, "b"), 0, 0).unwrap().duplicate);
}

#[test]
fn corrupt_segment_aborts_clean_without_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_of(tmp.path());
    let mut log = open(tmp.path(), compact_config());
    fill(&mut log, 4, Compression::Gzip);
    let plan = log.cleaning_plan(NOW).unwrap();
    // Damage the compressed payload of the first segment (CRC no longer matches): the batch
    // is kept as is, nothing panics.
    let first = dir.join(format!("{:020}.log", 0));
    let mut bytes = fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    fs::write(&first, &bytes).unwrap();
    let cleaned = plan.execute(NOW, 1 << 20, &mut |_| {}).unwrap();
    log.install_cleaned(cleaned).unwrap();
    // Damage the framing: the clean fails with an error.
    let mut bytes = fs::read(&first).unwrap();
    bytes[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    fs::write(&first, &bytes).unwrap();
    log.update_config(LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    });
    fill(&mut log, 2, Compression::Gzip);
    let plan = log.cleaning_plan(NOW).unwrap();
    assert!(plan.execute(NOW, 1 << 20, &mut |_| {}).is_err());
    assert!(files_with(&dir, ".cleaned").is_empty());
}

#[test]
fn replaced_originals_removed_after_file_delete_delay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_of(tmp.path());
    let mut log = open(tmp.path(), compact_config());
    fill(&mut log, 5, Compression::None);
    let want = latest(&all_records(&log));
    let stats = clean(&mut log, NOW, 1 << 20).unwrap();
    assert!(stats.segments_cleaned > 0);
    // The originals wait as .log.deleted; reads see the cleaned segments.
    let pending = files_with(&dir, ".log.deleted").len();
    assert!(pending >= stats.segments_cleaned, "{pending}");
    assert_eq!(latest(&all_records(&log)), want);
    log.maybe_flush(NOW).unwrap(); // starts the 60 s default delay
    log.maybe_flush(NOW + 59_999).unwrap();
    assert_eq!(files_with(&dir, ".log.deleted").len(), pending);
    log.maybe_flush(NOW + 60_000).unwrap();
    assert!(files_with(&dir, ".deleted").is_empty());
    assert_eq!(latest(&all_records(&log)), want);
    // Closed when idle, the cleaned segments reopen at their final names.
    log.close_idle_files().unwrap();
    assert!(log.close_idle_files().unwrap() > stats.segments_cleaned);
    assert_eq!(latest(&all_records(&log)), want);
}

#[test]
fn many_small_transactions_keep_compacting() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 300,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg);
    let mut cleans = 0;
    for i in 0..60 {
        let spec = Spec {
            pid: 7,
            epoch: 0,
            transactional: true,
            ..Spec::default()
        };
        let value = format!("{i}");
        log.append(&kv_batch(&[("offset", Some(&value))], &spec), 0, 0)
            .unwrap();
        log.append_marker(7, 0, true, 0, 0).unwrap();
        if clean(&mut log, NOW, 1 << 20).is_some() {
            cleans += 1;
        }
    }
    assert!(cleans > 30, "{cleans} cleans");
    // What the latest clean saw is one record; the active segment holds at most two more.
    let records = all_records(&log);
    assert!(records.len() <= 3, "{records:?}");
    assert_eq!(latest(&records)["offset"].as_deref(), Some("59"));
}

/// KIP-534: a tombstone's delete.retention.ms counts from its first clean, not from its
/// timestamp; the rebased batch keeps every record's timestamp; a passed horizon alone makes
/// the log cleanable.
#[test]
fn tombstones_wait_for_the_delete_horizon_of_their_first_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_ms: 10_000,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let mut log = open(tmp.path(), cfg.clone());
    let old = Spec::default(); // timestamps 1000.., long past delete.retention.ms at NOW
    log.append(&kv_batch(&[("a", Some("1")), ("b", Some("1"))], &old), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("a", None), ("c", Some("1"))], &old), 0, 0)
        .unwrap();
    log.append(&kv_batch(&[("d", Some("1"))], &old), 0, 0)
        .unwrap();
    let timestamps = |log: &PartitionLog| -> Vec<(i64, i64)> {
        all_batches(log)
            .into_iter()
            .flat_map(|(_, raw)| {
                RecordBatchDecoder::decode(&mut Bytes::from(raw))
                    .unwrap()
                    .records
            })
            .map(|r| (r.offset, r.timestamp))
            .collect()
    };
    let stats = clean(&mut log, NOW, 1 << 20).unwrap();
    assert_eq!(
        stats.tombstones_removed, 0,
        "the first clean only starts the horizon"
    );
    let with_horizon: Vec<_> = all_batches(&log)
        .into_iter()
        .filter_map(|(h, _)| h.delete_horizon().map(|hz| (h.base_offset, hz)))
        .collect();
    assert_eq!(with_horizon, vec![(2, NOW + 10_000)]);
    assert_eq!(
        timestamps(&log),
        vec![(1, 1_001), (2, 1_000), (3, 1_001), (4, 1_000)],
        "records keep their timestamps"
    );
    assert!(
        log.cleaning_plan(NOW + 9_999).is_none(),
        "nothing new, horizon ahead"
    );
    // A restart finds the horizon in the batch headers.
    drop(log);
    let mut log = open(tmp.path(), cfg.clone());
    assert!(log.cleaning_plan(NOW + 9_999).is_none());
    let stats = clean(&mut log, NOW + 10_000, 1 << 20).expect("the horizon passed");
    assert_eq!(stats.tombstones_removed, 1);
    let records = all_records(&log);
    assert!(!records.iter().any(|r| r.1 == "a"), "{records:?}");
    assert!(log.cleaning_plan(NOW + 20_000).is_none(), "no horizon left");
    drop(log);
    let log = open(tmp.path(), cfg);
    assert_eq!(all_records(&log), records);
}
