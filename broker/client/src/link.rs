//! The mirror link's append, as the broker and `strait-mirror` agree on it: a ProduceRequest
//! with [`TRANSACTIONAL_ID`] carries a linked mirror topic's source batches, which the
//! partition leader appends verbatim (offsets, leader epochs and producer state kept), as a
//! follower takes its leader's. docs/mirroring.md ("Linked mode") has the whole contract.

/// The `transactional_id` that marks a ProduceRequest as a link append. Kafka reserves no such
/// id; a real transactional producer cannot use it, because the broker never treats it as one.
pub const TRANSACTIONAL_ID: &str = "__strait_mirror_link";

/// The topic config that makes a topic a linked mirror topic (`<alias>:<topic>`), given only at
/// creation; kept with an empty value once the topic is failed over. Only a failover (by
/// `strait-mirror --failover` or a `Mirror`'s `spec.failover`) removes it.
pub const MIRROR_SOURCE_CONFIG: &str = "strait.mirror.source";
