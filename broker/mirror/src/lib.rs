//! Strait's mirror engine in MirrorMaker 2 compatible mode: copies topics, topic configs and
//! consumer group offsets from a source to a target Kafka-compatible cluster, writing MM2's
//! internal topics (offset syncs, checkpoints, heartbeats) so MM2 tooling keeps working.
//!
//! - [`config`]: the `mm2.properties` file;
//! - [`policy`]: MM2's replication policies and cycle detection;
//! - [`formats`]: MM2's binary record formats.

pub mod config;
pub mod formats;
pub mod policy;
