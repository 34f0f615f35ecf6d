//! `partition.checkpoint`: recovery point and log start offset, written atomically.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

pub(crate) const CHECKPOINT_FILE: &str = "partition.checkpoint";
const TMP_SUFFIX: &str = ".tmp";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
}

/// Reads the checkpoint; `None` if missing or unreadable (then everything is recovered).
pub(crate) fn read(dir: &Path) -> Option<Checkpoint> {
    let text = fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let mut parts = lines.next()?.split_whitespace();
    let recovery_point: i64 = parts.next()?.parse().ok()?;
    let log_start_offset: i64 = parts.next()?.parse().ok()?;
    if recovery_point < 0 || log_start_offset < 0 {
        return None;
    }
    Some(Checkpoint {
        recovery_point,
        log_start_offset,
    })
}

/// Writes the checkpoint via a temporary file, fsync, rename and directory fsync.
pub(crate) fn write(dir: &Path, cp: Checkpoint) -> std::io::Result<()> {
    let tmp = dir.join(format!("{CHECKPOINT_FILE}{TMP_SUFFIX}"));
    {
        let mut f = File::create(&tmp)?;
        write!(f, "0\n{} {}\n", cp.recovery_point, cp.log_start_offset)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(crate) fn remove_tmp(dir: &Path) {
    let _ = fs::remove_file(dir.join(format!("{CHECKPOINT_FILE}{TMP_SUFFIX}")));
}
