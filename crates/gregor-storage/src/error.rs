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
    /// A batch refused because of some of its records (KIP-467): which records and why, so that a
    /// client fails only those and reports the others as failed by a different record.
    #[error("{message}")]
    RecordErrors {
        /// INVALID_TIMESTAMP if any record's timestamp is out of range, else INVALID_RECORD.
        invalid_timestamp: bool,
        message: String,
        records: Vec<RecordError>,
    },
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
    /// Batches copied from a leader that do not continue this log (a follower must truncate
    /// first, or fetched from the wrong offset).
    #[error("batches from offset {first_offset} do not continue the log ending at {log_end}")]
    NotContiguous { first_offset: i64, log_end: i64 },
    /// An append to a replica that does not lead its partition (the leadership moved while the
    /// request was handled).
    #[error("this replica does not lead the partition")]
    NotLeader,
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
            StorageError::RecordErrors {
                invalid_timestamp: true,
                ..
            } => Kafka::InvalidTimestamp,
            StorageError::RecordErrors { .. } => Kafka::InvalidRecord,
            StorageError::OutOfOrderSequence(_) => Kafka::OutOfOrderSequenceNumber,
            StorageError::InvalidProducerEpoch(_) => Kafka::InvalidProducerEpoch,
            StorageError::OffsetOutOfRange { .. } => Kafka::OffsetOutOfRange,
            // Between replicas only; a client never sends such an append.
            StorageError::NotContiguous { .. } => Kafka::UnknownServerError,
            StorageError::NotLeader => Kafka::NotLeaderOrFollower,
            StorageError::Io(_) => Kafka::KafkaStorageError,
        }
        .code()
    }
}

/// One refused record: its index in its batch and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

impl StorageError {
    /// The batch of `errors` (all of one batch, in record order) is refused, worded as Kafka does.
    pub(crate) fn records(invalid_timestamp: bool, records: Vec<RecordError>) -> StorageError {
        let message = if invalid_timestamp {
            "One or more records have been rejected due to invalid timestamp".to_string()
        } else {
            let first: Vec<&str> = records.iter().take(3).map(|e| e.message.as_str()).collect();
            format!(
                "One or more records have been rejected due to {} record errors in total, and \
                 only showing the first three errors at most: {first:?}",
                records.len()
            )
        };
        StorageError::RecordErrors {
            invalid_timestamp,
            message,
            records,
        }
    }

    /// The refused records of a [`StorageError::RecordErrors`], empty for any other error.
    pub fn record_errors(&self) -> &[RecordError] {
        match self {
            StorageError::RecordErrors { records, .. } => records,
            _ => &[],
        }
    }
}

/// `Result` of the storage layer.
pub type Result<T> = std::result::Result<T, StorageError>;
