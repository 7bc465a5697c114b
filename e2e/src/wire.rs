//! Raw Kafka wire protocol over a blocking `TcpStream`, for tests that send valid, broken or
//! hostile bytes: valid frames are encoded and decoded by `strait_client::frame` (the framing
//! every Strait client uses), and anything else can be written as it is.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_client::frame as framing;

use crate::error::{HarnessError, Result};

/// Read timeout of a wire connection: a broker that answers nothing fails the test, not hangs it.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response frame the client accepts.
const MAX_RESPONSE: usize = framing::DEFAULT_MAX_RESPONSE;

fn protocol(context: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Protocol(format!("{context}: {e:#}"))
}

/// Encodes a complete request frame: length prefix, request header claiming `(api_key,
/// version)`, body encoded at `body_version` (the header at the header version that implies).
pub fn encode_request<R: Encodable + HeaderVersion>(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    request: &R,
    body_version: i16,
) -> Result<Vec<u8>> {
    let header = framing::request_header(api_key, version, correlation_id, Some("strait-e2e"));
    framing::encode_frame(
        &header,
        R::header_version(body_version),
        request,
        body_version,
    )
    .map_err(|e| protocol("encode request", e))
}

/// Prefixes `payload` with its i32 big-endian length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    framing::with_length(payload)
}

/// Encodes `values` as one uncompressed RecordBatch v2 (base offset 0, create time now).
pub fn record_batch(values: &[&[u8]]) -> Result<Bytes> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| protocol("encode record batch", e))?;
    Ok(buf.freeze())
}

/// A Produce request carrying `batch` for one partition.
pub fn produce_request(topic: &str, partition: i32, acks: i16, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ])
}

/// The single partition result of a one-partition Produce response: `(error_code, base_offset)`.
pub fn produce_result(response: &ProduceResponse) -> Result<(i16, i64)> {
    response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map(|p| (p.error_code, p.base_offset))
        .ok_or_else(|| HarnessError::Protocol("produce response without a partition".into()))
}

/// A blocking client connection speaking raw frames.
#[derive(Debug)]
pub struct WireClient {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl WireClient {
    /// Replaces the read timeout, for requests the broker may take long to answer (a voter
    /// change waits for the new voter to catch up).
    pub fn set_read_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| HarnessError::io("set_read_timeout", e))
    }

    /// Connects to `addr` with a read timeout.
    pub fn connect(addr: SocketAddr) -> Result<WireClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| HarnessError::io(format!("connect {addr}"), e))?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| HarnessError::io("set_read_timeout", e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| HarnessError::io("set_nodelay", e))?;
        Ok(WireClient {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Writes bytes as they are. A peer that already closed may surface here as an error.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| HarnessError::io("write to broker", e))
    }

    /// Closes the write half, telling the broker no more bytes come.
    pub fn shutdown_write(&mut self) -> Result<()> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| HarnessError::io("shutdown write", e))
    }

    /// Sends a request whose header claims `(api_key, version)` and whose body is encoded at
    /// `body_version`; returns the correlation id.
    pub fn send_request<R: Encodable + HeaderVersion>(
        &mut self,
        api_key: i16,
        version: i16,
        request: &R,
        body_version: i16,
    ) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let bytes = encode_request(api_key, version, correlation_id, request, body_version)?;
        self.send_raw(&bytes)?;
        Ok(correlation_id)
    }

    /// Reads one response frame; `Ok(None)` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        match read_exact_or_eof(&mut self.stream, &mut len)? {
            ReadOutcome::Closed => return Ok(None),
            ReadOutcome::Filled => {}
        }
        let len = framing::response_length(len, MAX_RESPONSE)
            .map_err(|e| protocol("read response", e))?;
        let mut body = vec![0u8; len];
        match read_exact_or_eof(&mut self.stream, &mut body)? {
            ReadOutcome::Closed => Err(HarnessError::Protocol(
                "connection closed inside a response frame".into(),
            )),
            ReadOutcome::Filled => Ok(Some(Bytes::from(body))),
        }
    }

    /// Sends a request at `version` and decodes its response.
    pub fn call<Req, Resp>(&mut self, api_key: ApiKey, version: i16, request: &Req) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation_id = self.send_request(api_key as i16, version, request, version)?;
        self.read_response(correlation_id, Resp::header_version(version), version)
    }

    /// Reads one response and decodes it with the given header and body versions.
    pub fn read_response<Resp: Decodable>(
        &mut self,
        correlation_id: i32,
        header_version: i16,
        body_version: i16,
    ) -> Result<Resp> {
        let response = self.read_frame()?.ok_or_else(|| {
            HarnessError::Protocol(format!(
                "connection closed before response {correlation_id}"
            ))
        })?;
        framing::decode_response_as(response, correlation_id, header_version, body_version)
            .map_err(|e| protocol("read response", e))
    }

    /// ApiVersions v0: api key -> (min, max) version the broker supports.
    pub fn api_versions(&mut self) -> Result<HashMap<i16, (i16, i16)>> {
        let response: ApiVersionsResponse =
            self.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
        if response.error_code != 0 {
            return Err(HarnessError::Protocol(format!(
                "ApiVersions error {}",
                response.error_code
            )));
        }
        Ok(response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    /// Waits (bounded) until the broker closes the connection; fails if it answers or stays open.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| HarnessError::io("set_read_timeout", e))?;
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    return Err(HarnessError::Unexpected(format!(
                        "expected the broker to close the connection, it sent {n} bytes"
                    )));
                }
                Err(e) if is_reset(&e) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted && Instant::now() < deadline => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(HarnessError::Timeout(
                        "the broker to close the connection".into(),
                    ));
                }
                Err(e) => return Err(HarnessError::io("read from broker", e)),
            }
        }
    }
}

enum ReadOutcome {
    Filled,
    Closed,
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Fills `buf` completely; a close or reset before the first byte is `Closed`.
fn read_exact_or_eof(stream: &mut TcpStream, buf: &mut [u8]) -> Result<ReadOutcome> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(ReadOutcome::Closed),
            Ok(0) => {
                return Err(HarnessError::Protocol(format!(
                    "connection closed after {filled} of {} bytes",
                    buf.len()
                )));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_reset(&e) && filled == 0 => return Ok(ReadOutcome::Closed),
            Err(e) => return Err(HarnessError::io("read from broker", e)),
        }
    }
    Ok(ReadOutcome::Filled)
}
