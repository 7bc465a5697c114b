//! The harness's error type: every helper reports failures as a `HarnessError` so a test can
//! print precisely what went wrong (with the broker's stderr when the process died).

use std::path::PathBuf;
use std::process::ExitStatus;

/// Result alias used by every harness helper.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// What went wrong while driving a broker or a client.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An I/O operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker binary is not where it was looked for.
    #[error(
        "broker binary not found at {0} (build it with `cargo build --release -p strait-broker` or set STRAIT_BROKER_BIN)"
    )]
    BrokerBinaryMissing(PathBuf),
    /// The broker process ended while it was expected to run.
    #[error("broker exited unexpectedly ({status}); stderr tail:\n{stderr_tail}")]
    BrokerExited {
        status: ExitStatus,
        stderr_tail: String,
    },
    /// A condition did not become true before its deadline.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A Kafka client call failed.
    #[error("kafka client: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Encoding or decoding a Kafka wire message failed, or the peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A condition the caller relies on did not hold.
    #[error("{0}")]
    Unexpected(String),
}

impl HarnessError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a Kafka client error with what was being done.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        HarnessError::Kafka {
            context: context.into(),
            source,
        }
    }
}
