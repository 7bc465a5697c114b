//! Networking: Kafka framing, TLS for SSL listeners and the listener/connection loops (nothing
//! here knows what a request means; it hands frames to `api` and writes back what it returns),
//! and the HTTP listener for metrics and health.

pub mod frame;
pub mod http;
pub mod server;
pub mod tls;
