//! Per-log configuration, with Kafka's topic-level meanings and defaults.

/// How record timestamps are interpreted (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// segment.bytes: roll when the next append would exceed it.
    pub segment_bytes: u64,
    /// segment.ms / log.roll.ms: roll when the active segment's first batch is older.
    pub segment_ms: Option<u64>,
    /// segment.index.bytes: roll when the offset index would be full.
    pub segment_index_bytes: u64,
    /// index.interval.bytes.
    pub index_interval_bytes: u64,
    /// retention.ms; None = unlimited (-1).
    pub retention_ms: Option<i64>,
    /// retention.bytes; None = unlimited (-1).
    pub retention_bytes: Option<i64>,
    /// flush.messages: fsync after this many unflushed records.
    pub flush_messages: Option<u64>,
    /// flush.ms: fsync when the oldest unflushed data is older.
    pub flush_ms: Option<u64>,
    /// max.message.bytes: largest batch accepted.
    pub max_message_bytes: u32,
    /// message.timestamp.type.
    pub timestamp_type: TimestampType,
    /// producer.id.expiration.ms: idempotent producer state is dropped after this much silence.
    pub producer_id_expiration_ms: i64,
    /// cleanup.policy contains `compact`.
    pub cleanup_compact: bool,
    /// cleanup.policy contains `delete` (retention.ms / retention.bytes apply only then).
    pub cleanup_delete: bool,
    /// min.cleanable.dirty.ratio.
    pub min_cleanable_dirty_ratio: f64,
    /// min.compaction.lag.ms: records newer than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: dirty data older than this is compacted whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// delete.retention.ms: how long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// `message.timestamp.before.max.ms` (None = unbounded): how far a CreateTime timestamp may
    /// lie behind the broker's clock.
    pub timestamp_before_max_ms: Option<u64>,
    /// `message.timestamp.after.max.ms` (None = unbounded): how far ahead.
    pub timestamp_after_max_ms: Option<u64>,
    /// remote.storage.enable: closed segments are copied to the remote tier, and local
    /// retention applies locally instead of retention.*.
    pub remote_storage_enable: bool,
    /// local.retention.ms resolved (-2 → retention.ms); None = unlimited.
    pub local_retention_ms: Option<i64>,
    /// local.retention.bytes resolved (-2 → retention.bytes); None = unlimited.
    pub local_retention_bytes: Option<i64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 60 * 60 * 1000),
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            flush_messages: None,
            flush_ms: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            producer_id_expiration_ms: 86_400_000,
            cleanup_compact: false,
            cleanup_delete: true,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: None,
            remote_storage_enable: false,
            local_retention_ms: None,
            local_retention_bytes: None,
        }
    }
}

impl LogConfig {
    /// Index positions are 32-bit, so a segment can never grow past i32::MAX bytes (Kafka's
    /// segment.bytes is an int for the same reason).
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }

    pub(crate) fn offset_index_entries(&self) -> usize {
        ((self.segment_index_bytes / 8) as usize).max(1)
    }

    pub(crate) fn time_index_entries(&self) -> usize {
        ((self.segment_index_bytes / 12) as usize).max(1)
    }
}
