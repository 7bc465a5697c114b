//! Strait's log engine: Kafka's on-disk log format (segments of RecordBatch v2 bytes as received,
//! sparse offset and time indexes, checkpoint files, leader epoch cache), crash recovery,
//! retention and flushing, and the partition side of transactions (markers, last stable offset,
//! transaction indexes). It knows nothing of sockets, async runtimes or Kafka request types.

mod batch;
mod checkpoint;
mod cleaner;
mod compression;
mod config;
mod dir_failure;
mod dir_move;
mod epoch_cache;
mod error;
mod index_file;
mod log;
mod manager;
mod offset_index;
mod producer_state;
mod reader;
mod records;
mod recovery;
mod region;
mod retention;
mod segment;
mod time_index;
mod topic_partition;
mod transaction;
mod txn_index;

pub use cleaner::CleanStats;
pub use config::{LogConfig, TimestampType};
pub use dir_failure::DirHealth;
pub use dir_move::{DirMove, MoveOutcome};
pub use error::LogError;
pub use log::{AppendInfo, ClosedSegment, PartitionLog, ReadResult, TimestampLookup};
pub use manager::{LogDirDescription, LogManager, METADATA_LOG_DIR, ReplicaDescription};
pub use records::first_record_in_batch;
pub use region::FileRegion;
pub use topic_partition::TopicPartition;
pub use transaction::{ControlType, ProducerInfo};
pub use txn_index::AbortedTxn;
