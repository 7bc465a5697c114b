//! Consumer groups: the classic group coordinator (Kafka's `GroupCoordinator` state machine) and
//! committed offsets, persisted as Kafka-format records in the compacted `__consumer_offsets`
//! topic. `coordinator` holds the classic state machine and the offsets, `consumer` the KIP-848
//! consumer groups with their server-side `assignor`s, `records` and `consumer_records` the
//! on-disk schemas, `store` the
//! bridge to the internal topic (append, load), `partitions` which groups this broker
//! coordinates in a cluster.

pub mod assignor;
pub mod consumer;
pub mod consumer_records;
pub mod coordinator;
pub mod partitions;
pub mod records;
pub mod store;

pub use coordinator::{Coordinator, GroupState};

/// Name of Kafka's internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
