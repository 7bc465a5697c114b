//! Strait's remote storage engine for tiered storage (KIP-405): uploads a closed log segment
//! (log, offset and time indexes, transaction index, producer snapshot, leader-epoch
//! checkpoint) as objects to an S3-compatible store or a local directory through the
//! `object_store` crate, and serves it back: record batches from an offset, offsets by
//! timestamp, indexes. It knows nothing of the broker: which segments to upload, the remote
//! segment metadata and retention are the broker's (see `docs/architecture.md`).

mod cache;
mod config;
mod error;
mod format;
mod layout;
mod manifest;
mod stats;
mod store;
mod throttle;

pub use config::{Backend, DEFAULT_CACHE_BYTES, RemoteStorageConfig, system_enabled};
pub use error::TieredError;
pub use layout::{IndexKind, SegmentKey, kafka_uuid, parse_kafka_uuid};
pub use stats::StatsSnapshot;
pub use store::{CHUNK_BYTES, RemoteStore, SegmentFiles};
pub use throttle::Throttle;
