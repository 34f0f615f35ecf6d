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
        match self {
            StorageError::CorruptMessage(_) => 2,
            StorageError::MessageTooLarge(_) => 10,
            StorageError::UnsupportedForMessageFormat => 43,
            StorageError::InvalidRecord(_) => 87,
            StorageError::OutOfOrderSequence(_) => 45,
            StorageError::InvalidProducerEpoch(_) => 47,
            StorageError::OffsetOutOfRange { .. } => 1,
            StorageError::Io(_) => 56,
        }
    }
}

/// `Result` of the storage layer.
pub type Result<T> = std::result::Result<T, StorageError>;
