//! One segment: a `.log` file of whole batches plus its sparse indexes (kept in memory).

use std::fs::{self, File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::{Result, StorageError};
use crate::index::{OffsetIndex, TimeIndex};

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

pub(crate) fn file_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Parses `00000000000000000123.log` into 123.
pub(crate) fn parse_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A segment's `.log` file handle, opened on first use and closed by
/// [`Segment::close_if_idle`] when a sweep finds it unused, so the files a broker holds open
/// follow the partitions in use, not every segment on disk.
struct LogFile {
    handle: Mutex<Option<Arc<File>>>,
    /// Set by every use; cleared by each idle sweep.
    used: AtomicBool,
}

impl LogFile {
    fn open(file: File) -> LogFile {
        LogFile {
            handle: Mutex::new(Some(Arc::new(file))),
            used: AtomicBool::new(true),
        }
    }

    /// The open handle, reopening `path` if it was closed.
    fn get(&self, path: impl FnOnce() -> PathBuf) -> Result<Arc<File>> {
        self.used.store(true, Ordering::Relaxed);
        let mut handle = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = &*handle {
            return Ok(file.clone());
        }
        let file = Arc::new(reopen(&path())?);
        *handle = Some(file.clone());
        Ok(file)
    }

    /// The handle for a writer (who holds the segment exclusively).
    fn get_mut(&mut self, path: impl FnOnce() -> PathBuf) -> Result<&File> {
        self.used.store(true, Ordering::Relaxed);
        let handle = self
            .handle
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if handle.is_none() {
            *handle = Some(Arc::new(reopen(&path())?));
        }
        Ok(handle.as_deref().expect("opened above"))
    }

    fn is_open(&mut self) -> bool {
        self.handle
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn close(&mut self) {
        *self
            .handle
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// How often running out of file descriptors is logged.
const OPEN_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Reopens a closed segment file.
fn reopen(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| {
            note_open_failure(path, &e);
            e.into()
        })
}

/// A file of a log could not be opened (a segment, or the leader-epoch checkpoint written
/// when a partition's new epoch first appends). Failing for lack of file descriptors is logged
/// once a minute: the partitions whose files are open keep serving, the others answer
/// KAFKA_STORAGE_ERROR until descriptors free up.
pub(crate) fn note_open_failure(path: &Path, e: &std::io::Error) {
    static LOGGED: Mutex<Option<Instant>> = Mutex::new(None);
    if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) {
        let mut logged = LOGGED.lock().unwrap_or_else(PoisonError::into_inner);
        if logged.is_none_or(|t| t.elapsed() >= OPEN_FAILURE_LOG_INTERVAL) {
            *logged = Some(Instant::now());
            tracing::error!(
                "cannot open {}: {e}; partitions whose files are open keep serving, the others answer KAFKA_STORAGE_ERROR (raise the open files limit, ulimit -n)",
                path.display()
            );
        }
    }
}

/// errno values for "too many open files" (in the process, in the system).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

pub(crate) struct Segment {
    pub base_offset: i64,
    file: LogFile,
    dir: PathBuf,
    /// Bytes of batches in the `.log` file.
    pub size: u64,
    /// Length of the `.log` file: past `size` while space is allocated ahead of the writes
    /// (zeros until written), trimmed to `size` when the segment rolls, at a checkpoint and on
    /// recovery.
    file_len: u64,
    /// How far ahead of the writes the file is allocated: up to this length (segment.bytes),
    /// or 0 when the segment is not preallocated.
    allocate_up_to: u64,
    /// Offset after the last batch (base_offset when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index: usize,
    /// Largest batch max-timestamp (i64::MIN when empty).
    pub max_timestamp: i64,
    /// Base offset of the first batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    pub batch_count: u64,
    /// Time of the first append (or the first batch's timestamp after reopening).
    pub roll_base_ms: Option<i64>,
    /// Unsynced data.
    pub dirty: bool,
    index_dirty: bool,
}

/// What recovery of one segment found.
pub(crate) struct Recovered {
    pub segment: Segment,
    /// True if invalid data was found (and cut off).
    pub corrupt: bool,
}

impl Segment {
    /// Opens (creating if missing) a `.log` file for positional reads and writes.
    fn open_file(path: &Path, truncate: bool) -> Result<File> {
        Ok(OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(path)?)
    }

    fn empty(dir: &Path, base_offset: i64, file: File) -> Segment {
        Segment {
            base_offset,
            file: LogFile::open(file),
            dir: dir.to_path_buf(),
            size: 0,
            file_len: 0,
            allocate_up_to: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base_offset,
            batch_count: 0,
            roll_base_ms: None,
            dirty: false,
            index_dirty: true,
        }
    }

    /// Creates a new empty segment (replacing any file of that name). With `preallocate`
    /// (segment.bytes), its file is allocated ahead of the writes up to that length.
    pub fn create(dir: &Path, base_offset: i64, preallocate: Option<u64>) -> Result<Segment> {
        let file = Self::open_file(&file_path(dir, base_offset, LOG_EXT), true)?;
        let mut segment = Self::empty(dir, base_offset, file);
        segment.preallocate(preallocate);
        Ok(segment)
    }

    /// Sets how far ahead of its writes this segment's file is allocated (`None`: not at all).
    pub fn preallocate(&mut self, up_to: Option<u64>) {
        self.allocate_up_to = up_to.unwrap_or(0);
    }

    /// Opens an existing segment, scanning its batch headers to rebuild the indexes. Batches
    /// whose last offset is >= `recovery_point` are fully validated (CRC). The file is
    /// truncated after the last valid batch. `on_batch` sees every valid batch in order.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        min_offset: i64,
        upper_offset: i64,
        recovery_point: i64,
        index_interval: usize,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<bool>),
    ) -> Result<Recovered> {
        let file = Self::open_file(&file_path(dir, base_offset, LOG_EXT), false)?;
        let file_len = file.metadata()?.len();
        let mut seg = Self::empty(dir, base_offset, file);
        let log = seg.log_file()?;
        let mut pos: u64 = 0;
        let mut expected_min = min_offset.max(base_offset);
        let mut data: Vec<u8> = Vec::new();
        let mut corrupt = false;
        while pos < file_len {
            match seg.check_batch_at(
                &log,
                pos,
                file_len,
                (expected_min, upper_offset),
                recovery_point,
                &mut data,
            ) {
                Ok(h) => {
                    let len = h.total_len() as u64;
                    seg.track_batch(&h, pos, index_interval);
                    // Transaction markers: commit or abort (a few bytes, rare).
                    let marker = if h.is_control() {
                        batch::control_marker(&read_at(&log, pos, h.total_len())?)
                    } else {
                        None
                    };
                    on_batch(&h, marker);
                    expected_min = h.next_offset();
                    pos += len;
                }
                Err(StorageError::Io(e)) => return Err(StorageError::Io(e)),
                // Space allocated ahead of the writes: the batches end here.
                Err(_) if zeros_at(&log, pos, file_len)? => break,
                Err(e) => {
                    tracing::warn!(
                        "segment {} of {}: invalid data at position {pos} ({e}); truncating {} bytes",
                        base_offset,
                        dir.display(),
                        file_len - pos
                    );
                    corrupt = true;
                    break;
                }
            }
        }
        if pos < file_len {
            // Invalid data or a preallocated tail is cut off, durably, before anything is
            // written there: bytes left past the end (a torn write, pages of an unsynced write
            // that reached the disk out of order) must never read as batches later.
            log.set_len(pos)?;
            log.sync_all()?;
        }
        seg.size = pos;
        seg.file_len = pos;
        // Reopened when first used: a broker's open files follow the partitions in use.
        seg.file.close();
        Ok(Recovered {
            segment: seg,
            corrupt,
        })
    }

    /// Validates the framing (and, past the recovery point, the CRC) of the batch at `pos`.
    fn check_batch_at(
        &self,
        file: &File,
        pos: u64,
        file_len: u64,
        (expected_min, upper_offset): (i64, i64),
        recovery_point: i64,
        data: &mut Vec<u8>,
    ) -> Result<BatchHeader> {
        let remaining = file_len - pos;
        if remaining < HEADER_LEN as u64 {
            return Err(StorageError::CorruptMessage("torn batch header".into()));
        }
        let mut hdr = [0u8; HEADER_LEN];
        file.read_exact_at(&mut hdr, pos)?;
        let len = batch::frame_len(&hdr)?
            .ok_or_else(|| StorageError::CorruptMessage("short header".into()))?;
        if len as u64 > remaining {
            return Err(StorageError::CorruptMessage("torn batch".into()));
        }
        let h = BatchHeader::parse(&hdr)?;
        if h.base_offset < expected_min
            || h.last_offset_delta < 0
            || h.last_offset() >= upper_offset
            || h.records_count < 0
            || h.last_offset() - self.base_offset > i64::from(i32::MAX)
            || pos + len as u64 > u64::from(u32::MAX)
        {
            return Err(StorageError::CorruptMessage(format!(
                "batch offsets out of order: base {} (expected in [{expected_min}, {upper_offset})), delta {}",
                h.base_offset, h.last_offset_delta
            )));
        }
        if h.last_offset() >= recovery_point {
            data.resize(len, 0);
            file.read_exact_at(data, pos)?;
            // Stored batches may have been compacted (offset gaps, or empty; see cleaner.rs).
            batch::validate_stored(data)?;
        }
        Ok(h)
    }

    /// Updates indexes and metadata for a batch (with its final offsets) at `position`.
    fn track_batch(&mut self, h: &BatchHeader, position: u64, index_interval: usize) {
        if self.batch_count == 0 {
            self.roll_base_ms.get_or_insert(h.max_timestamp);
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.bytes_since_index >= index_interval {
            self.offset_index.push(rel, position as u32);
            let rel_max = (self.offset_of_max_timestamp - self.base_offset) as u32;
            self.time_index.maybe_push(self.max_timestamp, rel_max);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(h.total_len());
        self.next_offset = h.next_offset();
        self.batch_count += 1;
        self.index_dirty = true;
    }

    /// Appends whole, patched batches described by `headers`, given as `parts` in order
    /// (`len` bytes in all), with positional writes at the end of the batches.
    pub fn append(
        &mut self,
        parts: &mut [IoSlice<'_>],
        len: usize,
        headers: &[BatchHeader],
        now_ms: i64,
        index_interval: usize,
    ) -> Result<()> {
        let size = self.size;
        let end = size + len as u64;
        if end > self.file_len && self.allocate_up_to > 0 {
            self.allocate_ahead(end)?;
        }
        let file = self.writable_file()?;
        if let Err(e) = write_all_vectored_at(file, parts, size) {
            // Nothing of a failed write may stay past the end (nor space allocated ahead); if
            // even that fails, the file is known to be longer, and the next trim (roll,
            // checkpoint) or recovery cuts it.
            self.file_len = match file.set_len(size) {
                Ok(()) => size,
                Err(_) => self.file_len.max(end),
            };
            return Err(e.into());
        }
        self.file_len = self.file_len.max(end);
        if self.batch_count == 0 {
            self.roll_base_ms = Some(now_ms);
        }
        let mut pos = self.size;
        for h in headers {
            self.track_batch(h, pos, index_interval);
            pos += h.total_len() as u64;
        }
        self.size += len as u64;
        self.dirty = true;
        Ok(())
    }

    /// Allocates the file ahead of a write ending at `end`: as much again as the segment
    /// holds, between [`MIN_ALLOCATION_STEP`] and [`MAX_ALLOCATION_STEP`], so a busy segment
    /// allocates rarely and an idle one holds little unused space. A file system that cannot
    /// (no `fallocate`, or no room for the step) makes this segment grow with its writes, as
    /// without preallocation.
    fn allocate_ahead(&mut self, end: u64) -> Result<()> {
        let step = self.size.clamp(MIN_ALLOCATION_STEP, MAX_ALLOCATION_STEP);
        let target = (self.file_len + step).min(self.allocate_up_to).max(end);
        let from = self.file_len;
        let file = self.writable_file()?;
        match fallocate(file, from, target - from) {
            Ok(()) => self.file_len = target,
            Err(e) => {
                static LOGGED: AtomicBool = AtomicBool::new(false);
                if !LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot preallocate {} ({e}); segments on this file system grow with their writes instead (logged once)",
                        self.log_path().display()
                    );
                }
                self.allocate_up_to = 0;
            }
        }
        Ok(())
    }

    /// Gives back the space allocated past the batches (when the segment rolls or the log is
    /// checkpointed), so that a file's length is its data.
    pub fn trim(&mut self) -> Result<()> {
        if self.file_len > self.size {
            let size = self.size;
            self.writable_file()?.set_len(size)?;
            self.file_len = size;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        if self.dirty {
            self.writable_file()?.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Closes the `.log` file, syncing unsynced data first so that no write error can go
    /// unseen; the next use reopens it.
    pub fn close_file(&mut self) -> Result<()> {
        self.sync()?;
        self.file.close();
        Ok(())
    }

    /// Closes the `.log` file if nothing used it since the previous call; true if it did.
    pub fn close_if_idle(&mut self) -> Result<bool> {
        if self.file.used.swap(false, Ordering::Relaxed) || !self.file.is_open() {
            return Ok(false);
        }
        self.close_file()?;
        Ok(true)
    }

    #[cfg(test)]
    pub(crate) fn is_open(&mut self) -> bool {
        self.file.is_open()
    }

    /// The `.log` file's path: segments in a log always have their final name (a cleaned
    /// segment is renamed to it before it joins the log).
    fn log_path(&self) -> PathBuf {
        file_path(&self.dir, self.base_offset, LOG_EXT)
    }

    /// The `.log` file for reading (opened if it was closed). The handle is shared: it stays
    /// readable after the file is renamed or deleted.
    pub(crate) fn log_file(&self) -> Result<Arc<File>> {
        self.file.get(|| self.log_path())
    }

    fn writable_file(&mut self) -> Result<&File> {
        let path = self.log_path();
        self.file.get_mut(|| path)
    }

    /// Writes `.index` and `.timeindex` if they changed since last written.
    pub fn write_indexes(&mut self) -> Result<()> {
        if !self.index_dirty {
            return Ok(());
        }
        // The final time index entry records the segment's max timestamp (like Kafka on roll).
        if self.batch_count > 0 {
            let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
            self.time_index.maybe_push(self.max_timestamp, rel);
        }
        self.offset_index
            .write_to(&file_path(&self.dir, self.base_offset, INDEX_EXT))?;
        self.time_index
            .write_to(&file_path(&self.dir, self.base_offset, TIME_INDEX_EXT))?;
        self.index_dirty = false;
        Ok(())
    }

    /// Renames the segment's files to `*.deleted` (so no later open or read sees the segment)
    /// and returns the new paths, for removal after `file.delete.delay.ms`. Readers holding a
    /// clone of the file handle keep reading it.
    pub fn rename_to_deleted(self) -> Result<Vec<PathBuf>> {
        let mut renamed = Vec::with_capacity(3);
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let from = file_path(&self.dir, self.base_offset, ext);
            let to = deleted_path(&from);
            match fs::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(renamed)
    }

    /// Deletes the segment's files.
    pub fn delete_files(self) -> Result<()> {
        let Segment {
            dir, base_offset, ..
        } = self;
        remove_segment_files(&dir, base_offset)
    }

    /// Reads the header of the batch at `pos`; `None` at or past the end.
    pub(crate) fn header_at(&self, file: &File, pos: u64) -> Result<Option<BatchHeader>> {
        if pos >= self.size {
            return Ok(None);
        }
        if self.size - pos < HEADER_LEN as u64 {
            return Err(StorageError::CorruptMessage(format!(
                "torn batch at position {pos} of segment {}",
                self.base_offset
            )));
        }
        let mut hdr = [0u8; HEADER_LEN];
        file.read_exact_at(&mut hdr, pos)?;
        let h = BatchHeader::parse(&hdr)?;
        if h.batch_length < batch::MIN_BATCH_LENGTH || pos + h.total_len() as u64 > self.size {
            return Err(StorageError::CorruptMessage(format!(
                "bad batch length at position {pos} of segment {}",
                self.base_offset
            )));
        }
        Ok(Some(h))
    }

    /// Position and header of the batch containing `offset` (or the first batch after it).
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        self.find_batch_in(&*self.log_file()?, offset)
    }

    fn find_batch_in(&self, file: &File, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let mut pos = u64::from(self.offset_index.lookup(rel));
        while let Some(h) = self.header_at(file, pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// The whole batches to return for a read from `offset` (see [`PartitionLog::read`]):
    /// from the batch containing it, as many as fit in `max_bytes` (the first one always),
    /// none starting at or past `max_offset`. `None` if the segment has no batch at or after
    /// `offset`. Only batch headers are read; the data stays in the file.
    ///
    /// [`PartitionLog::read`]: crate::PartitionLog::read
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<FileSlice>> {
        let file = self.log_file()?;
        let Some((start, first)) = self.find_batch_in(&file, offset)? else {
            return Ok(None);
        };
        let slice = |end: u64, end_offset: i64| FileSlice {
            file: file.clone(),
            position: start,
            len: (end - start) as usize,
            end_offset,
        };
        if first.base_offset >= max_offset {
            return Ok(Some(slice(start, first.base_offset)));
        }
        // Where the batches at or past max_offset begin.
        let (mut end, mut end_offset) = (self.size, self.next_offset);
        if max_offset < self.next_offset {
            if let Some((pos, h)) = self.find_batch_in(&file, max_offset)? {
                end = if h.base_offset >= max_offset {
                    pos
                } else {
                    pos + h.total_len() as u64
                };
                end_offset = self.offset_at(&file, end)?;
            }
        }
        // The last batch boundary within max_bytes, past the first batch (KIP-74).
        let limit = start.saturating_add((max_bytes as u64).max(first.total_len() as u64));
        if limit < end {
            let indexed = u64::from(self.offset_index.position_at_or_before(limit as u32));
            let mut pos = indexed.max(start);
            loop {
                let h = self
                    .header_at(&file, pos)?
                    .ok_or_else(|| StorageError::CorruptMessage("batch past the end".into()))?;
                if pos + h.total_len() as u64 > limit {
                    end = pos;
                    end_offset = h.base_offset;
                    break;
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(Some(slice(end, end_offset)))
    }

    /// The base offset of the batch at `pos`, or the segment's next offset at its end.
    fn offset_at(&self, file: &File, pos: u64) -> Result<i64> {
        Ok(self
            .header_at(file, pos)?
            .map_or(self.next_offset, |h| h.base_offset))
    }

    /// Reads the whole batch at `pos`.
    pub fn read_batch(&self, pos: u64, h: &BatchHeader) -> Result<Vec<u8>> {
        read_at(&*self.log_file()?, pos, h.total_len())
    }

    /// Position from which to scan for the first record with timestamp >= `ts`.
    pub fn time_lookup_position(&self, ts: i64) -> u64 {
        let rel = self.time_index.lookup_before(ts);
        u64::from(self.offset_index.lookup(rel))
    }
}

/// Whole batches in a segment file, for a fetch: sent from the file as they are (`sendfile`)
/// or read into memory. The handle keeps the data readable after the segment is deleted.
#[derive(Clone, Debug)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
    /// The offset after the slice's batches: the base offset of the batch that follows.
    pub end_offset: i64,
}

impl FileSlice {
    /// Reads the slice into memory.
    pub fn read(&self) -> Result<Vec<u8>> {
        read_at(&self.file, self.position, self.len)
    }
}

/// The smallest and largest amounts a preallocated file is extended by at once.
const MIN_ALLOCATION_STEP: u64 = 1 << 20;
const MAX_ALLOCATION_STEP: u64 = 64 << 20;

/// Writes `parts` at `offset`, as many at a time as one `pwritev` takes.
fn write_all_vectored_at(
    file: &File,
    mut parts: &mut [IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    const IOV_MAX: usize = 1024;
    while !parts.is_empty() {
        let n = rustix::io::pwritev(file, &parts[..parts.len().min(IOV_MAX)], offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

/// Allocates `len` bytes of `file` from `offset` (extending it; the new bytes read as zeros).
fn fallocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len)?;
    Ok(())
}

/// Whether the bytes at `pos` (up to a batch header's length, or to `file_len`) are all zero:
/// the end of the batches in a file allocated ahead of its writes.
fn zeros_at(file: &File, pos: u64, file_len: u64) -> Result<bool> {
    let mut hdr = [0u8; HEADER_LEN];
    let n = (file_len - pos).min(HEADER_LEN as u64) as usize;
    file.read_exact_at(&mut hdr[..n], pos)?;
    Ok(hdr[..n].iter().all(|&b| b == 0))
}

/// Reads `len` bytes at `pos`.
pub(crate) fn read_at(file: &File, pos: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, pos)?;
    Ok(buf)
}

pub(crate) fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<()> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
        match fs::remove_file(file_path(dir, base_offset, ext)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

// ---- Log cleaner support (see cleaner.rs) ----

/// Suffix of a cleaned segment file being written (discarded on open).
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a complete cleaned segment file ready to replace the original (completed on open).
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// Suffix of a segment file awaiting deletion (after `file.delete.delay.ms`, or on open): of
/// segments deleted by retention or DeleteRecords and of originals replaced by the cleaner.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// `path` with [`DELETED_SUFFIX`] appended.
pub(crate) fn deleted_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(DELETED_SUFFIX);
    PathBuf::from(name)
}

/// Removes every `*.deleted` file left in `dir` (by a restart before their delay elapsed).
pub(crate) fn remove_deleted_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(DELETED_SUFFIX))
        {
            match fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// `NNN.log` followed by `suffix`.
pub(crate) fn log_path_with(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{LOG_EXT}{suffix}"))
}

impl Segment {
    /// Creates an empty segment writing to `NNN.log.cleaned`; once that file is renamed to
    /// `NNN.log` the segment is an ordinary one (its handle follows the rename).
    pub(crate) fn create_cleaned(dir: &Path, base_offset: i64) -> Result<Segment> {
        let f = Self::open_file(&log_path_with(dir, base_offset, CLEANED_SUFFIX), true)?;
        Ok(Self::empty(dir, base_offset, f))
    }

    /// fsyncs the `.log` file unconditionally.
    pub(crate) fn sync_all(&mut self) -> Result<()> {
        self.writable_file()?.sync_all()?;
        Ok(())
    }
}
