//! Sparse in-memory indexes of a segment, written to `.index` / `.timeindex` files.
//!
//! `.index` entries: relative offset u32 + file position u32 (big-endian), pointing at the start
//! of a batch whose base offset is `segment base + relative offset`.
//! `.timeindex` entries: timestamp i64 + relative offset u32: the largest batch max-timestamp
//! seen so far in the segment and the base offset of the batch that holds it.

use std::io::Write;
use std::path::Path;

#[derive(Default, Debug)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn push(&mut self, rel_offset: u32, position: u32) {
        self.entries.push((rel_offset, position));
    }

    /// Position of the last indexed batch whose base offset is <= `rel_offset` (0 if none).
    pub fn lookup(&self, rel_offset: u32) -> u32 {
        let n = self.entries.partition_point(|e| e.0 <= rel_offset);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].1
        }
    }

    /// Position of the last indexed batch starting at or before `position` (0 if none).
    pub fn position_at_or_before(&self, position: u32) -> u32 {
        let n = self.entries.partition_point(|e| e.1 <= position);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].1
        }
    }

    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * 8);
        for (o, p) in &self.entries {
            buf.extend_from_slice(&o.to_be_bytes());
            buf.extend_from_slice(&p.to_be_bytes());
        }
        write_file(path, &buf)
    }
}

#[derive(Default, Debug)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends an entry if `timestamp` is larger than the last one.
    pub fn maybe_push(&mut self, timestamp: i64, rel_offset: u32) {
        if self.entries.last().is_none_or(|e| timestamp > e.0) {
            self.entries.push((timestamp, rel_offset));
        }
    }

    /// Relative offset of a batch from which a scan for the first record with timestamp >= `ts`
    /// may start: every record before it has a smaller timestamp. 0 if none.
    pub fn lookup_before(&self, ts: i64) -> u32 {
        let n = self.entries.partition_point(|e| e.0 < ts);
        if n == 0 {
            0
        } else {
            self.entries[n - 1].1
        }
    }

    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(self.entries.len() * 12);
        for (t, o) in &self.entries {
            buf.extend_from_slice(&t.to_be_bytes());
            buf.extend_from_slice(&o.to_be_bytes());
        }
        write_file(path, &buf)
    }
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let mut oi = OffsetIndex::default();
        assert_eq!(oi.lookup(5), 0);
        oi.push(10, 100);
        oi.push(20, 200);
        assert_eq!(oi.lookup(5), 0);
        assert_eq!(oi.lookup(10), 100);
        assert_eq!(oi.lookup(19), 100);
        assert_eq!(oi.lookup(25), 200);
        assert_eq!(oi.position_at_or_before(99), 0);
        assert_eq!(oi.position_at_or_before(100), 100);
        assert_eq!(oi.position_at_or_before(199), 100);
        assert_eq!(oi.position_at_or_before(5000), 200);
        let mut ti = TimeIndex::default();
        ti.maybe_push(1000, 3);
        ti.maybe_push(900, 4);
        ti.maybe_push(2000, 8);
        assert_eq!(ti.len(), 2);
        assert_eq!(ti.lookup_before(1000), 0);
        assert_eq!(ti.lookup_before(1001), 3);
        assert_eq!(ti.lookup_before(5000), 8);
    }
}
