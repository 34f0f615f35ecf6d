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
        }
    }
}
