//! Networking: the listener/connection loops (nothing here knows what a request means; it hands
//! frames to `api` and writes back what it returns) and the HTTP listener for metrics and health.
//! Framing (`crate::frame`) and TLS material (`crate::tls`) are leaves below it, shared with
//! `api` (response frames) and `node` (peer and quorum TLS). `sasl` is each SASL connection's
//! authentication state, which every frame passes before `api` sees it; `peer` names a TLS
//! client by its certificate.

pub mod http;
pub mod peer;
pub mod sasl;
pub mod server;
