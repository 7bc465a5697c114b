//! What can go wrong talking to a broker: [`ClientError`] for the connection and the bytes,
//! [`KafkaError`] for an error code the broker answered, typed through `kafka-protocol`'s
//! [`ResponseError`].

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

use crate::frame::FrameError;
use crate::tls::TlsError;

/// The step of a connection that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The TCP connect.
    Connect,
    /// The TLS handshake.
    Handshake,
    /// A request and its response (the API key as sent).
    Request(i16),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Connect => f.write_str("connect"),
            Step::Handshake => f.write_str("TLS handshake"),
            Step::Request(key) => write!(f, "{} request", api_name(*key)),
        }
    }
}

/// `Metadata` for 3, the number for a key this client does not know.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|()| format!("API {key}"), |k| format!("{k:?}"))
}

/// Errors of a connection or of one request on it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Address dialled.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TLS handshake failed (untrusted certificate, wrong host name, refused).
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        /// Address dialled.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS settings that cannot be used.
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// Reading or writing failed.
    #[error("i/o with {addr}: {source}")]
    Io {
        /// Peer address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A step did not finish within its deadline.
    #[error("{step} with {addr} timed out after {after:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// What was under way.
        step: Step,
        /// The deadline.
        after: Duration,
    },
    /// Bytes that are not the expected response, or a request that cannot be encoded.
    #[error("protocol error with {addr}: {source}")]
    Frame {
        /// Peer address.
        addr: String,
        /// What was wrong.
        source: FrameError,
    },
    /// An earlier request failed half-way, so the stream is out of step: dial again.
    #[error("the connection to {addr} is unusable after an earlier failure")]
    Broken {
        /// Peer address.
        addr: String,
    },
    /// The broker and this client share no version of an API.
    #[error("{addr} serves {api:?} at {}, this client speaks {ours}", theirs.map_or("no version".to_owned(), |r| r.to_string()))]
    UnsupportedVersion {
        /// Peer address.
        addr: String,
        /// The API.
        api: ApiKey,
        /// Versions this client can send.
        ours: VersionRange,
        /// Versions the broker advertised (`None`: it does not list the API).
        theirs: Option<VersionRange>,
    },
    /// The broker answered with an error code.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// SASL authentication failed on this side (the broker's own refusals are `Kafka`).
    #[error("SASL authentication with {addr}: {reason}")]
    Authentication {
        /// Peer address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// An empty bootstrap list.
    #[error("no bootstrap servers")]
    NoBootstrap,
    /// A node id the cluster's metadata does not list.
    #[error("broker {node} is not in the metadata {addr} answered")]
    UnknownNode {
        /// Broker asked.
        addr: String,
        /// Node id looked for.
        node: i32,
    },
}

impl ClientError {
    /// Whether the broker was never reached: connect or TLS handshake failed or timed out, or
    /// there was nobody to dial. Any other error came from a broker that answered the dial.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Tls { .. } | ClientError::NoBootstrap => {
                true
            }
            ClientError::Timeout { step, .. } => !matches!(step, Step::Request(_)),
            _ => false,
        }
    }

    /// The broker's error, when this is one.
    pub fn kafka(&self) -> Option<&KafkaError> {
        match self {
            ClientError::Kafka(e) => Some(e),
            _ => None,
        }
    }
}

/// An error code a broker answered, with what it was about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{api:?}{}: {} ({code}){}",
    resource.as_deref().map(|r| format!(" on {r}")).unwrap_or_default(),
    self.error(),
    message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct KafkaError {
    /// The API answered.
    pub api: ApiKey,
    /// The topic, user or other resource the code is about, when the response names it.
    pub resource: Option<String>,
    /// Kafka error code (never 0).
    pub code: i16,
    /// The broker's message.
    pub message: Option<String>,
}

impl KafkaError {
    /// `Ok` for code 0 (`NONE`), the typed error otherwise.
    pub fn check(
        api: ApiKey,
        resource: Option<&str>,
        code: i16,
        message: Option<&str>,
    ) -> Result<(), KafkaError> {
        if code == 0 {
            return Ok(());
        }
        Err(KafkaError {
            api,
            resource: resource.map(str::to_owned),
            code,
            message: message.map(str::to_owned),
        })
    }

    /// The error as `kafka-protocol` names it (`Unknown(code)` for codes it does not know).
    pub fn error(&self) -> ResponseError {
        ResponseError::try_from_code(self.code).unwrap_or(ResponseError::Unknown(self.code))
    }

    /// Whether Kafka defines the error as retriable (the same request may succeed later).
    pub fn is_retriable(&self) -> bool {
        self.error().is_retriable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_turn_into_typed_errors() {
        assert_eq!(
            KafkaError::check(ApiKey::CreateTopics, Some("t"), 0, None),
            Ok(())
        );
        let e = KafkaError::check(ApiKey::CreateTopics, Some("t"), 36, Some("exists")).unwrap_err();
        assert_eq!(e.error(), ResponseError::TopicAlreadyExists);
        assert!(!e.is_retriable());
        assert_eq!(
            e.to_string(),
            "CreateTopics on t: TopicAlreadyExists (36): exists"
        );
        let e = KafkaError::check(ApiKey::Fetch, None, 6, None).unwrap_err();
        assert!(e.is_retriable());
        assert_eq!(e.to_string(), "Fetch: NotLeaderOrFollower (6)");
        let e = KafkaError::check(ApiKey::Fetch, None, 9999, None).unwrap_err();
        assert_eq!(e.error(), ResponseError::Unknown(9999));
    }

    #[test]
    fn unreachable_is_connect_and_handshake_only() {
        let io = || std::io::Error::other("x");
        let addr = "a:1".to_owned();
        assert!(
            ClientError::Connect {
                addr: addr.clone(),
                source: io()
            }
            .is_unreachable()
        );
        let timeout = |step| ClientError::Timeout {
            addr: addr.clone(),
            step,
            after: Duration::from_secs(1),
        };
        assert!(timeout(Step::Handshake).is_unreachable());
        assert!(!timeout(Step::Request(1)).is_unreachable());
        assert_eq!(
            timeout(Step::Request(1)).to_string(),
            "Fetch request with a:1 timed out after 1s"
        );
        assert!(!ClientError::Io { addr, source: io() }.is_unreachable());
    }
}
