//! A minimal blocking HTTP/1.0 GET client for loopback test servers (the broker's metrics
//! listener, Prometheus's API): one request per connection, bounded by a timeout, no
//! dependencies beyond `std`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{HarnessError, Result};

/// Largest response body accepted; guards tests against a runaway server.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// A response: status code, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET target` (path and query, already encoded) from `addr`; the whole exchange is bounded by
/// `timeout` per socket operation.
pub fn get(addr: SocketAddr, target: &str, timeout: Duration) -> Result<HttpResponse> {
    let context = format!("GET http://{addr}{target}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| HarnessError::io(context.clone(), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| HarnessError::io(context.clone(), e))?;
    // HTTP/1.0 with `Connection: close`: the server ends the body by closing, no keep-alive.
    let request = format!(
        "GET {target} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| HarnessError::io(context.clone(), e))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| HarnessError::io(context.clone(), e))?;
    parse_response(&raw).map_err(|e| HarnessError::Protocol(format!("{context}: {e}")))
}

/// Splits a raw response into status, headers and (de-chunked) body.
fn parse_response(raw: &[u8]) -> std::result::Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut rest: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Percent-encodes `text` for a URL query value (everything but RFC 3986 unreserved bytes).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{encode_query_value, parse_response};

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = parse_response(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello")
            .expect("plain");
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("content-type"), Some("text/plain"));
        assert_eq!(plain.body, b"hello");

        let chunked = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!(chunked.status, 404);
        assert_eq!(chunked.body, b"abcde");

        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab")
                .is_err()
        );
    }

    #[test]
    fn encodes_promql_for_a_query_string() {
        assert_eq!(
            encode_query_value(r#"sum(rate(x{a=~"b|c"}[1m])) > 0"#),
            "sum%28rate%28x%7Ba%3D~%22b%7Cc%22%7D%5B1m%5D%29%29%20%3E%200"
        );
    }
}
