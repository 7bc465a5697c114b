//! Transactions: the transaction coordinator (Kafka's `TransactionCoordinator`) and the marker
//! writes it drives. A transactional id belongs to partition `partition_for(id)` of the
//! replicated `__transaction_state` topic, and that partition's leader is its coordinator, as for
//! groups (`crate::internal_topic`).
//!
//! `records` holds Kafka's schemas of the topic, `state` the pure state machine (what a request
//! does to a transaction), `coordinator` the transactions this broker coordinates and the one
//! write path to the topic (a transition is applied only once the partition's ISR has it),
//! `markers` the COMMIT/ABORT markers (sent to each partition's leader, locally or by
//! WriteTxnMarkers; written by `write_local` on the leader), `partitions` gaining and losing
//! coordinatorship when the topic's leadership moves, and `verify` KIP-890's check that a
//! transactional batch belongs to an ongoing transaction before a leader appends it.

pub mod coordinator;
pub mod markers;
pub mod partitions;
pub mod records;
pub mod state;
pub mod verify;

pub use coordinator::TxnCoordinator;

/// Name of Kafka's internal transaction log topic.
pub const TXN_TOPIC: &str = "__transaction_state";
