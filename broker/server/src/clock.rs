//! Wall-clock time as Kafka timestamps express it (milliseconds since the Unix epoch): a leaf that
//! every layer may use, so nothing reaches up into the request handlers for the time.

/// Current time in milliseconds since the epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
