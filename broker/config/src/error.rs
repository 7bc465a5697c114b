//! The one error type of this crate: every failure names the key (or file and line) it is about.

/// A configuration problem. `reason` texts follow Kafka's wording where Kafka has one, so the
/// broker can hand them to clients unchanged (for example in CreateTopics responses).
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum ConfigError {
    #[error("invalid value for {key}: {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("unknown config {key}")]
    Unknown { key: String },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
