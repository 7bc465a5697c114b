//! Kafka's framing, client side, with no I/O: a request frame is an `i32` big-endian length,
//! the request header (at the header version the request's version implies) and the body; a
//! response frame is a length, the response header (whose version also follows the request's
//! version: ApiVersions always answers with header v0) and the body. Decoding checks the
//! correlation id and that the body is used up, and a length is checked against a cap before
//! anything is allocated for it.

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Size of the length prefix.
pub const LENGTH_BYTES: usize = 4;
/// Default cap on a response frame.
pub const DEFAULT_MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// Smallest response frame: every response header holds at least its correlation id.
pub const MIN_RESPONSE: usize = 4;

/// A frame that cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// `kafka-protocol` refused to encode (a field the version cannot carry, for example).
    #[error("encode {what}: {detail}")]
    Encode {
        /// `request header` or `request body`.
        what: &'static str,
        /// Cause.
        detail: String,
    },
    /// A request larger than an `i32` length can describe.
    #[error("a request of {0} bytes does not fit a frame")]
    TooLarge(usize),
    /// A response length below [`MIN_RESPONSE`], negative, or above the cap.
    #[error("response frame of {len} bytes (accepted: {MIN_RESPONSE} to {max})")]
    BadLength {
        /// Length as announced.
        len: i64,
        /// Cap in force.
        max: usize,
    },
    /// Bytes that do not decode at the version asked.
    #[error("decode {what}: {detail}")]
    Decode {
        /// `response header` or `response body`.
        what: &'static str,
        /// Cause.
        detail: String,
    },
    /// Bytes left over once the body is decoded: the version does not match what was sent.
    #[error("{0} bytes left after the response")]
    Trailing(usize),
    /// A response to another request.
    #[error("correlation id {got} answers request {expected}")]
    Correlation {
        /// Correlation id of the request sent.
        expected: i32,
        /// Correlation id the response carries.
        got: i32,
    },
}

/// The header of a request: `api_key` and `version` as they will be claimed on the wire.
pub fn request_header(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|id| StrBytes::from_string(id.to_owned())))
}

/// A complete request frame for `request` at `version`: length, header, body.
pub fn encode_request<R: Request>(
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    request: &R,
) -> Result<Vec<u8>, FrameError> {
    let header = request_header(R::KEY, version, correlation_id, client_id);
    encode_frame(&header, R::header_version(version), request, version)
}

/// A request frame from its parts, each at the version given: the header may claim an API or
/// version the body is not encoded at (tests of hostile input send exactly that).
pub fn encode_frame<M: Encodable>(
    header: &RequestHeader,
    header_version: i16,
    body: &M,
    body_version: i16,
) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| FrameError::Encode {
            what: "request header",
            detail: format!("{e:#}"),
        })?;
    body.encode(&mut buf, body_version)
        .map_err(|e| FrameError::Encode {
            what: "request body",
            detail: format!("{e:#}"),
        })?;
    let payload = buf.len() - LENGTH_BYTES;
    let len = i32::try_from(payload).map_err(|_| FrameError::TooLarge(payload))?;
    buf[..LENGTH_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// `payload` behind its `i32` big-endian length, whatever it holds.
pub fn with_length(payload: &[u8]) -> Vec<u8> {
    let len = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    let mut out = Vec::with_capacity(payload.len() + LENGTH_BYTES);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The size of the response frame whose length prefix is `prefix`, if within `MIN_RESPONSE..=max`.
pub fn response_length(prefix: [u8; LENGTH_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(prefix);
    usize::try_from(len)
        .ok()
        .filter(|l| (MIN_RESPONSE..=max).contains(l))
        .ok_or(FrameError::BadLength {
            len: len.into(),
            max,
        })
}

/// Decodes a response frame (without its length prefix) to a request sent at `version` with
/// `correlation_id`.
pub fn decode_response<R: Decodable + HeaderVersion>(
    frame: Bytes,
    correlation_id: i32,
    version: i16,
) -> Result<R, FrameError> {
    decode_response_as(frame, correlation_id, R::header_version(version), version)
}

/// Decodes a response frame with explicit header and body versions (a broker answering an
/// unsupported ApiVersions version answers in v0, whatever was asked).
pub fn decode_response_as<R: Decodable>(
    frame: Bytes,
    correlation_id: i32,
    header_version: i16,
    body_version: i16,
) -> Result<R, FrameError> {
    decode_body(
        response_body(frame, correlation_id, header_version)?,
        body_version,
    )
}

/// The body of a response frame, once its header is read and its correlation id checked.
pub fn response_body(
    mut frame: Bytes,
    correlation_id: i32,
    header_version: i16,
) -> Result<Bytes, FrameError> {
    let header =
        ResponseHeader::decode(&mut frame, header_version).map_err(|e| FrameError::Decode {
            what: "response header",
            detail: format!("{e:#}"),
        })?;
    if header.correlation_id != correlation_id {
        return Err(FrameError::Correlation {
            expected: correlation_id,
            got: header.correlation_id,
        });
    }
    Ok(frame)
}

/// Decodes a whole response body at `version`; bytes left over are an error.
pub fn decode_body<M: Decodable>(mut body: Bytes, version: i16) -> Result<M, FrameError> {
    let message = M::decode(&mut body, version).map_err(|e| FrameError::Decode {
        what: "response body",
        detail: format!("{e:#}"),
    })?;
    if body.has_remaining() {
        return Err(FrameError::Trailing(body.remaining()));
    }
    Ok(message)
}

/// A response frame as a broker writes it (length prefix included): for fakes in tests, here
/// and in the crates using this one.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(64);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| FrameError::Encode {
            what: "response header",
            detail: format!("{e:#}"),
        })?;
    response
        .encode(&mut buf, version)
        .map_err(|e| FrameError::Encode {
            what: "response body",
            detail: format!("{e:#}"),
        })?;
    let payload = buf.len() - LENGTH_BYTES;
    let len = i32::try_from(payload).map_err(|_| FrameError::TooLarge(payload))?;
    buf[..LENGTH_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
        TopicName,
    };
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    #[test]
    fn request_frames_carry_length_header_and_body() {
        let request = CreateTopicsRequest::default().with_timeout_ms(5);
        let frame = encode_request(7, 42, Some("me"), &request).unwrap();
        let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(usize::try_from(len).ok(), Some(frame.len() - LENGTH_BYTES));
        // Api key 19 (CreateTopics), version 7, correlation id 42.
        assert_eq!(&frame[4..12], &[0, 19, 0, 7, 0, 0, 0, 42]);
        let mut rest = Bytes::copy_from_slice(&frame[LENGTH_BYTES..]);
        let header = decode_request_header_from_buffer(&mut rest).unwrap();
        assert_eq!(header.client_id.as_deref(), Some("me"));
        let body = CreateTopicsRequest::decode(&mut rest, 7).unwrap();
        assert_eq!(body, request);
        assert!(!rest.has_remaining());
    }

    #[test]
    fn a_header_may_claim_what_the_body_is_not() {
        let header = request_header(ApiKey::Produce as i16, 99, 3, None);
        let frame = encode_frame(&header, 1, &ApiVersionsRequest::default(), 0).unwrap();
        assert_eq!(&frame[4..8], &[0, 0, 0, 99]);
        assert_eq!(with_length(&frame[4..]), frame);
    }

    fn created(code: i16) -> CreateTopicsResponse {
        CreateTopicsResponse::default().with_topics(vec![
            CreatableTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_error_code(code),
        ])
    }

    #[test]
    fn responses_decode_at_the_version_asked_and_check_the_correlation_id() {
        let response = created(36);
        let frame = Bytes::from(encode_response(9, 7, &response).unwrap().split_off(4));
        let back: CreateTopicsResponse = decode_response(frame.clone(), 9, 7).unwrap();
        assert_eq!(back, response);
        assert!(matches!(
            decode_response::<CreateTopicsResponse>(frame.clone(), 8, 7),
            Err(FrameError::Correlation {
                expected: 8,
                got: 9
            })
        ));
        // Cut short, or decoded at an older version that leaves bytes over.
        assert!(matches!(
            decode_response::<CreateTopicsResponse>(frame.slice(..6), 9, 7),
            Err(FrameError::Decode { .. })
        ));
        let v4 = Bytes::from(encode_response(1, 4, &response).unwrap().split_off(4));
        let mut padded = v4.to_vec();
        padded.push(0);
        assert!(matches!(
            decode_response::<CreateTopicsResponse>(Bytes::from(padded), 1, 4),
            Err(FrameError::Trailing(1))
        ));
    }

    #[test]
    fn api_versions_answers_with_header_v0_at_every_version() {
        let response = ApiVersionsResponse::default().with_error_code(35);
        let frame = Bytes::from(encode_response(1, 0, &response).unwrap().split_off(4));
        // Read as a v0 answer whatever version the request had.
        let back: ApiVersionsResponse = decode_response_as(frame, 1, 0, 0).unwrap();
        assert_eq!(back.error_code, 35);
    }

    #[test]
    fn response_lengths_are_capped_before_allocation() {
        assert_eq!(response_length([0, 0, 0, 4], 100).unwrap(), 4);
        assert_eq!(response_length([0, 0, 0, 100], 100).unwrap(), 100);
        for prefix in [
            [0, 0, 0, 101],
            [0xff; 4],
            [0, 0, 0, 3],
            [0x7f, 0xff, 0xff, 0xff],
        ] {
            assert!(
                matches!(
                    response_length(prefix, 100),
                    Err(FrameError::BadLength { max: 100, .. })
                ),
                "{prefix:?}"
            );
        }
    }
}
