//! Errors as Kafka clients see them: a protocol error code plus a message, and the mapping from
//! storage and config errors to Kafka's codes.

use kafka_protocol::ResponseError;
use strait_config::ConfigError;
use strait_storage::LogError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub error: ResponseError,
    pub message: String,
    /// KIP-467: the records of a rejected batch that were invalid (index in the batch, why).
    pub record_errors: Vec<(i32, String)>,
    /// A mirror link's append refused below the log end: where the log ends, sent back as the
    /// partition's base offset so the link resumes there.
    pub resume_at: Option<i64>,
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            error,
            message: message.into(),
            record_errors: Vec::new(),
            resume_at: None,
        }
    }

    pub fn code(&self) -> i16 {
        self.error.code()
    }

    /// A controller answer of the wrong kind for the request (a bug, not the client's fault).
    pub fn unexpected_answer(answer: &strait_cluster::rpc::ControllerResponse) -> Self {
        ApiError::new(
            ResponseError::UnknownServerError,
            format!("unexpected controller answer {answer:?}"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        let error = match &e {
            LogError::Io(_) => ResponseError::KafkaStorageError,
            LogError::CorruptMessage(_) => ResponseError::CorruptMessage,
            LogError::InvalidRecord(_) | LogError::InvalidRecords { .. } => {
                ResponseError::InvalidRecord
            }
            LogError::InvalidTimestamps { .. } => ResponseError::InvalidTimestamp,
            LogError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            LogError::OffsetMovedToTieredStorage { .. } => {
                ResponseError::OffsetMovedToTieredStorage
            }
            LogError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
            LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            LogError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
            LogError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
            LogError::TransactionCoordinatorFenced { .. } => {
                ResponseError::TransactionCoordinatorFenced
            }
            // The partition went away under the request (topic deleted): clients refresh metadata.
            LogError::Deleted(_) => ResponseError::UnknownTopicOrPartition,
            // Only the follower append raises this; it never reaches a client.
            LogError::UnexpectedOffset { .. } => ResponseError::UnknownServerError,
            LogError::LogDir { .. } | LogError::CorruptFile { .. } | LogError::LogDirOffline(_) => {
                ResponseError::KafkaStorageError
            }
            LogError::LogDirNotFound(_) => ResponseError::LogDirNotFound,
        };
        let mut api = ApiError::new(error, e.to_string());
        if let LogError::InvalidRecords { records, .. }
        | LogError::InvalidTimestamps { records, .. } = e
        {
            api.record_errors = records;
        }
        api
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::new(ResponseError::InvalidConfig, e.to_string())
    }
}

impl From<&strait_cluster::rpc::ControllerError> for ApiError {
    fn from(e: &strait_cluster::rpc::ControllerError) -> Self {
        let code =
            ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError);
        ApiError::new(code, e.to_string())
    }
}
