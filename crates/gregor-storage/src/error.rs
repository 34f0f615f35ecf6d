/// Errors of the storage layer, each mapping to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Bad CRC, bad lengths, truncated batch.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// A batch larger than `max.message.bytes`.
    #[error("message too large: {0}")]
    MessageTooLarge(String),
    /// Magic byte other than 2.
    #[error("unsupported message format (only record batch v2 is supported)")]
    UnsupportedForMessageFormat,
    /// Structurally valid batch with invalid contents.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A CreateTime timestamp outside `message.timestamp.{before,after}.max.ms` of now.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// Idempotent producer sequence gap or reordering.
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    /// Producer epoch older than the current one.
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// Fetch offset outside `[log_start, log_end]`.
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// Any I/O failure.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// The Kafka protocol error code for this error.
    pub fn error_code(&self) -> i16 {
        use proto_kafka::ResponseError as Kafka;
        match self {
            StorageError::CorruptMessage(_) => Kafka::CorruptMessage,
            StorageError::MessageTooLarge(_) => Kafka::MessageTooLarge,
            StorageError::UnsupportedForMessageFormat => Kafka::UnsupportedForMessageFormat,
            StorageError::InvalidRecord(_) => Kafka::InvalidRecord,
            StorageError::InvalidTimestamp(_) => Kafka::InvalidTimestamp,
            StorageError::OutOfOrderSequence(_) => Kafka::OutOfOrderSequenceNumber,
            StorageError::InvalidProducerEpoch(_) => Kafka::InvalidProducerEpoch,
            StorageError::OffsetOutOfRange { .. } => Kafka::OffsetOutOfRange,
            StorageError::Io(_) => Kafka::KafkaStorageError,
        }
        .code()
    }
}

/// `Result` of the storage layer.
pub type Result<T> = std::result::Result<T, StorageError>;
