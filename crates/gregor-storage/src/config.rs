/// `message.timestamp.type`.
#[derive(Clone, Debug, PartialEq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Per-partition log configuration (Kafka topic-level names in the comments).
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms
    pub segment_ms: i64,
    /// retention.ms; -1 = unlimited
    pub retention_ms: i64,
    /// retention.bytes; -1 = unlimited
    pub retention_bytes: i64,
    /// max.message.bytes: max size of one batch including its 12-byte log overhead
    pub max_message_bytes: usize,
    /// message.timestamp.type
    pub timestamp_type: TimestampType,
    /// index.interval.bytes
    pub index_interval_bytes: usize,
    /// segment.index.bytes (roll when an index is full)
    pub segment_index_bytes: usize,
    /// flush.messages
    pub flush_messages: i64,
    /// flush.ms
    pub flush_ms: i64,
    /// cleanup.policy includes `compact`
    pub compact: bool,
    /// delete.retention.ms: how long tombstones survive compaction
    pub delete_retention_ms: i64,
    /// min.compaction.lag.ms
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms
    pub max_compaction_lag_ms: i64,
    /// min.cleanable.dirty.ratio
    pub min_cleanable_dirty_ratio: f64,
    /// compression.type: the codec batches are stored in
    pub compression: crate::compression::BrokerCompression,
    /// compression.gzip.level, compression.lz4.level, compression.zstd.level
    pub compression_levels: crate::compression::CompressionLevels,
    /// message.timestamp.before.max.ms: how far in the past a CreateTime timestamp may be
    pub timestamp_before_max_ms: i64,
    /// message.timestamp.after.max.ms: how far in the future a CreateTime timestamp may be
    pub timestamp_after_max_ms: i64,
    /// file.delete.delay.ms: how long a deleted segment's `.deleted` files stay on disk
    pub file_delete_delay_ms: i64,
    /// segment.jitter.ms: the largest random amount subtracted from `segment_ms` per segment
    pub segment_jitter_ms: i64,
    /// preallocate: the active segment's file is allocated ahead of its writes (in steps, up
    /// to segment.bytes) and written in place
    pub preallocate: bool,
    /// producer.id.expiration.ms (a broker config): producers idle this long are forgotten
    /// unless their transaction is open, so producer state does not grow without bound.
    pub producer_id_expiration_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            index_interval_bytes: 4096,
            segment_index_bytes: 10_485_760,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            compression: crate::compression::BrokerCompression::Producer,
            compression_levels: crate::compression::CompressionLevels::default(),
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            file_delete_delay_ms: 60_000,
            segment_jitter_ms: 0,
            preallocate: false,
            producer_id_expiration_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    /// How far ahead a new active segment's file is allocated, if at all.
    pub fn preallocation(&self) -> Option<u64> {
        self.preallocate.then_some(self.segment_bytes)
    }

    /// The time-based roll jitter of the segment starting at `base_offset`: a value in
    /// `[0, min(segment.jitter.ms, segment.ms))`, like Kafka's per-segment random jitter but
    /// derived from the base offset (a SplitMix64 hash), so it is deterministic and survives a
    /// restart.
    pub fn roll_jitter_ms(&self, base_offset: i64) -> i64 {
        let bound = self.segment_jitter_ms.min(self.segment_ms);
        if bound <= 0 {
            return 0;
        }
        let mut z = (base_offset as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % bound as u64) as i64
    }
}
