//! Kafka's rack-aware replica assignment for new topics and partitions.
