//! Strait's Kafka wire client: the one place that frames requests, reads responses, dials
//! brokers over TCP or TLS and agrees on API versions with them. The broker's replica fetcher,
//! the operator's admin client and the end-to-end harness all speak Kafka through it.
//!
//! - [`frame`]: pure encoding of request frames and decoding of response frames;
//! - [`connection`]: one async connection, one request in flight, every step under a deadline;
//! - [`versions`]: what a broker serves (ApiVersions) and the version both sides speak;
//! - [`codes`]: the error codes each response carries, checked in one call;
//! - [`tls`]: client TLS settings (trusted CAs, host name check, client certificate);
//! - [`sasl`]: the SASL login (SCRAM, PLAIN) after TCP/TLS, renewed before the session ends;
//! - [`read`]: reading a response body off the stream;
//! - [`client`]: a bootstrap list, and the connection to a broker of it or to a given node;
//! - [`error`]: [`ClientError`] and [`KafkaError`], a broker's error code made typed;
//! - [`link`]: how a mirror link's append is marked (shared with the broker).

pub mod client;
pub mod codes;
pub mod connection;
pub mod error;
pub mod frame;
pub mod link;
pub mod read;
pub mod sasl;
pub mod tls;
pub mod versions;

pub use client::Client;
pub use codes::ResponseErrors;
pub use connection::{ConnectOptions, Connection};
pub use error::{ClientError, KafkaError, Step};
pub use frame::FrameError;
pub use sasl::SaslLogin;
pub use tls::{ClientTls, TlsError};
pub use versions::SupportedApis;

/// Re-exported so users build requests with the same `kafka-protocol` as this crate.
pub use kafka_protocol;
