//! Networking: Kafka framing and the listener/connection loops. Nothing here knows what a request
//! means; it hands frames to `api` and writes back what it returns.

pub mod frame;
pub mod server;
