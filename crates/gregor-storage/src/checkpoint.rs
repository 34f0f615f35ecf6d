//! `partition.checkpoint`: recovery point and log start offset, written atomically.

use std::fs;
use std::path::Path;

use crate::atomic_file;

pub(crate) const CHECKPOINT_FILE: &str = "partition.checkpoint";

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

/// Writes the checkpoint atomically and durably.
pub(crate) fn write(dir: &Path, cp: Checkpoint) -> std::io::Result<()> {
    let text = format!("0\n{} {}\n", cp.recovery_point, cp.log_start_offset);
    atomic_file::write(&dir.join(CHECKPOINT_FILE), text.as_bytes())
}

pub(crate) fn remove_tmp(dir: &Path) {
    atomic_file::remove_leftover(&dir.join(CHECKPOINT_FILE));
}
