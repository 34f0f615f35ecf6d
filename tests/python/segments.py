"""Read Kafka v2 record batches straight out of a partition directory's .log files."""

import struct
from dataclasses import dataclass
from pathlib import Path

COMPRESSION_CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

# baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8, crc u32, attributes i16,
# lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64, producerId i64, producerEpoch i16,
# baseSequence i32, recordCount i32
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_LEN = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength


@dataclass
class Batch:
    file: str
    position: int
    base_offset: int
    length: int
    leader_epoch: int
    magic: int
    attributes: int
    last_offset_delta: int
    record_count: int
    producer_id: int

    @property
    def codec(self):
        return self.attributes & 0x7

    @property
    def last_offset(self):
        return self.base_offset + self.last_offset_delta


def log_files(partition_dir):
    return sorted(Path(partition_dir).glob("*.log"))


def batches_end(segment):
    """Where the last whole batch of a .log file ends: its data, without the zeros of space the
    broker allocated ahead of its writes (preallocate)."""
    end = 0
    for b in read_batches(Path(segment).parent):
        if b.file == str(segment):
            end = b.position + LOG_OVERHEAD + b.length
    return end


def write_after_batches(segment, data):
    """Writes `data` right after the last whole batch of a .log file, as a write torn by a crash
    leaves it (over the preallocated zeros, if any); returns where the batches end."""
    end = batches_end(segment)
    with open(segment, "r+b") as f:
        f.seek(end)
        f.write(data)
    return end


def read_batches(partition_dir, strict=True):
    """All batches in all segments, in file order. A torn tail (fewer bytes than the
    header or the batch claims) ends a file; with strict=True anything else that
    is not a v2 batch header raises ValueError."""
    out = []
    for f in log_files(partition_dir):
        data = f.read_bytes()
        pos = 0
        while pos + HEADER_LEN <= len(data):
            (base, length, epoch, magic, _crc, attrs, lod, _bts, _mts, pid, _pe, _bs,
             count) = HEADER.unpack_from(data, pos)
            if not any(data[pos:pos + HEADER_LEN]) and not any(data[pos:]):
                break  # preallocated zero tail
            if magic != 2 or length < HEADER_LEN - LOG_OVERHEAD:
                if strict:
                    raise ValueError(f"{f}@{pos}: not a v2 batch (magic {magic}, length {length})")
                break
            if pos + LOG_OVERHEAD + length > len(data):
                break
            out.append(Batch(str(f), pos, base, length, epoch, magic, attrs, lod, count, pid))
            pos += LOG_OVERHEAD + length
    return out
