//! Strait's cluster layer, below the Kafka protocol and above nothing but Raft and the network.
//!
//! - `image` is the cluster metadata every broker works from (brokers, topics, partitions with
//!   replicas/ISR/leader/epochs, topic configs, producer-id blocks, SCRAM credentials, ACLs) and `record` the changes that
//!   build it. The image is a pure fold of records: the Raft state machine applies them in log
//!   order on every node, so every node holds the same image at the same log index.
//! - `placement` is Kafka's rack-aware replica assignment (pure).
//! - `quota` is client quotas by user and client id, with Kafka's precedence (pure).
//! - `acl` is the ACL model and StandardAuthorizer's decision over the image's bindings (pure).
//! - `remote` is tiered storage's remote segment metadata (KIP-405), folded like the rest.
//! - `controller` turns broker and admin requests into records, on the quorum leader only.
//! - `quorum` runs the replicated metadata log (openraft over tonic gRPC) and serves the
//!   controller RPCs brokers call.

pub mod acl;
pub mod controller;
pub mod image;
pub mod placement;
pub mod quorum;
pub mod quota;
pub mod record;
pub mod remote;
pub mod rpc;
