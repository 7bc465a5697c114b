//! The storage layer's error type; the server maps each variant to a Kafka error code.

use std::path::PathBuf;

use crate::TopicPartition;

#[derive(thiserror::Error, Debug)]
pub enum LogError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Kafka INVALID_RECORD with KIP-467's per-record errors: the invalid records of a batch (index
    /// within the batch, why), so clients fail only those; nothing of the batch was written.
    #[error("{message}")]
    InvalidRecords {
        message: String,
        records: Vec<(i32, String)>,
    },
    /// Kafka INVALID_TIMESTAMP with KIP-467's per-record errors: CreateTime timestamps outside
    /// `message.timestamp.before.max.ms` / `after.max.ms`; nothing of the batch was written.
    #[error("{message}")]
    InvalidTimestamps {
        message: String,
        records: Vec<(i32, String)>,
    },
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: u32 },
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// Kafka OFFSET_MOVED_TO_TIERED_STORAGE (109): the offset is in the partition's remote tier,
    /// below the local log start.
    #[error("offset {offset} is in remote storage (local log starts at {local_log_start})")]
    OffsetMovedToTieredStorage { offset: i64, local_log_start: i64 },
    #[error("partition {0} already exists")]
    AlreadyExists(TopicPartition),
    /// A log dir that cannot be created, listed, locked or written.
    #[error("log dir {}: {source}", path.display())]
    LogDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A checkpoint or metadata file that does not parse.
    #[error("corrupt file {}: {detail}", path.display())]
    CorruptFile { path: PathBuf, detail: String },
    /// Kafka INVALID_PRODUCER_EPOCH (47): a batch from a fenced (older) producer epoch.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// Kafka OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    #[error("out of order sequence for producer {producer_id}: {detail}")]
    OutOfOrderSequence { producer_id: i64, detail: String },
    /// Kafka INVALID_TXN_STATE (48): a batch that does not fit the producer's transaction state
    /// (a non-transactional batch while its transaction is ongoing).
    #[error("invalid transaction state for producer {producer_id}: {detail}")]
    InvalidTxnState { producer_id: i64, detail: String },
    /// Kafka TRANSACTION_COORDINATOR_FENCED (52): a marker from a coordinator epoch older than the
    /// last one this partition saw for the producer (a zombie coordinator).
    #[error(
        "marker for producer {producer_id} has coordinator epoch {coordinator_epoch}, older than {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
    /// Kafka UNKNOWN_PRODUCER_ID (59): no state for the producer and a non-zero sequence.
    #[error("unknown producer {producer_id} with sequence {sequence}")]
    UnknownProducerId { producer_id: i64, sequence: i32 },
    /// A follower append whose batch starts below the offset the log expects next (its log end,
    /// or the end of the previous batch of the same append): nothing was written.
    #[error("batch at offset {got} overlaps the log, which expects offset {expected} or above")]
    UnexpectedOffset { expected: i64, got: i64 },
    /// The partition's log dir failed (an I/O error on it): Kafka KAFKA_STORAGE_ERROR.
    #[error("log dir {} is offline", .0.display())]
    LogDirOffline(PathBuf),
    /// A log dir that is not one of `log.dirs` (or is offline): Kafka LOG_DIR_NOT_FOUND.
    #[error("log dir {} is not a configured, online log dir", .0.display())]
    LogDirNotFound(PathBuf),
    /// The partition was deleted while a caller still held its handle.
    #[error("partition {0} has been deleted")]
    Deleted(TopicPartition),
}
