//! Strait's mirror engine. MirrorMaker 2 compatible mode copies topics, topic configs and
//! consumer group offsets from a source to a target Kafka-compatible cluster, writing MM2's
//! internal topics (offset syncs, checkpoints, heartbeats) so MM2 tooling keeps working.
//! Linked mode keeps offsets: source batches are appended verbatim to read-only mirror topics
//! of a Strait target, group offsets copied 1:1, and `--failover` makes them writable.
//!
//! - [`config`]: the `mm2.properties` file;
//! - [`policy`]: MM2's replication policies and cycle detection;
//! - [`formats`]: MM2's binary record formats;
//! - [`wire`]: the Kafka calls, over `strait-client`;
//! - [`topics`]: topic selection, creation, partitions and config sync;
//! - [`acls`]: topic ACLs copied to the remote topics (MM2's `sync.topic.acls.*`);
//! - [`copy`]: record copy of one partition with progress commits and offset syncs;
//! - [`link`]: linked mode: verbatim batch copy of one partition, group offsets copied 1:1;
//! - [`failover`]: `--failover` of the linked flows' mirror topics;
//! - [`internal`]: MM2's internal topics written and read;
//! - [`checkpoint`], [`heartbeat`]: MM2's checkpoints (and group offset sync) and heartbeats;
//! - [`group`]: several processes sharing a flow's partitions through a group on the source;
//! - [`metrics`]: Prometheus metrics and `/metrics`;
//! - [`engine`]: the flows and their tasks.

pub mod acls;
pub mod checkpoint;
pub mod config;
pub mod copy;
pub mod engine;
pub mod failover;
pub mod formats;
pub mod group;
pub mod heartbeat;
pub mod internal;
pub mod link;
pub mod metrics;
pub mod policy;
pub mod topics;
pub mod wire;
