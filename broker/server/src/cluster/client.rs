//! A minimal Kafka-protocol client for broker-to-broker traffic (follower fetches and
//! OffsetForLeaderEpoch): one TCP (or TLS, when the inter-broker listener is SSL) connection, one
//! request in flight, typed requests and responses through `kafka-protocol`, every step under a
//! deadline.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Largest response accepted from another broker (a fetch response is bounded by
/// `replica.fetch.response.max.bytes`; this is a sanity cap against a corrupt length).
const MAX_RESPONSE: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0} timed out")]
    Timeout(String),
    #[error("protocol error from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// The TLS client for an SSL inter-broker listener (see `net::tls::connector`).
#[derive(Clone)]
pub struct PeerTls(pub TlsConnector);

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub struct BrokerConnection {
    addr: String,
    stream: Box<dyn Io>,
    client_id: String,
    next_correlation: i32,
}

impl BrokerConnection {
    /// Connects to `host:port`, over TLS when `tls` is set (the host is the name checked
    /// against the peer's certificate).
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        timeout: Duration,
        tls: Option<&PeerTls>,
    ) -> Result<BrokerConnection, ClientError> {
        let addr = strait_config::join_host_port(host, port);
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| ClientError::Timeout(format!("connect to {addr}")))?
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(PeerTls(connector)) => {
                let name =
                    ServerName::try_from(host.to_string()).map_err(|e| ClientError::Tls {
                        addr: addr.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                    })?;
                let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| ClientError::Timeout(format!("TLS handshake with {addr}")))?
                    .map_err(|source| ClientError::Tls {
                        addr: addr.clone(),
                        source,
                    })?;
                Box::new(tls)
            }
        };
        Ok(BrokerConnection {
            addr,
            stream,
            client_id: client_id.to_string(),
            next_correlation: 0,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| protocol(format!("encode header: {e}")))?;
        request
            .encode(&mut body, version)
            .map_err(|e| protocol(format!("encode request: {e}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_u32(body.len() as u32);
        frame.extend_from_slice(&body);
        let addr = self.addr.clone();
        let io = |source| ClientError::Io {
            addr: addr.clone(),
            source,
        };
        let exchange = async {
            self.stream.write_all(&frame).await.map_err(io)?;
            self.stream.flush().await.map_err(io)?;
            let len = self.stream.read_u32().await.map_err(io)? as usize;
            if !(4..=MAX_RESPONSE).contains(&len) {
                return Err(ClientError::Protocol {
                    addr: addr.clone(),
                    reason: format!("response frame of {len} bytes"),
                });
            }
            let mut buf = vec![0u8; len];
            self.stream.read_exact(&mut buf).await.map_err(io)?;
            Ok(buf)
        };
        let buf = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(format!("request {} to {addr}", R::KEY)))??;
        let mut buf = bytes::Bytes::from(buf);
        let response_header = kafka_protocol::messages::ResponseHeader::decode(
            &mut buf,
            R::Response::header_version(version),
        )
        .map_err(|e| protocol(format!("decode response header: {e}")))?;
        if response_header.correlation_id != correlation {
            return Err(protocol(format!(
                "correlation id {} for request {correlation}",
                response_header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut buf, version)
            .map_err(|e| protocol(format!("decode response: {e}")))?;
        if buf.has_remaining() {
            return Err(protocol(format!(
                "{} bytes left after the response",
                buf.remaining()
            )));
        }
        Ok(response)
    }
}
