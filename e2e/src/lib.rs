//! End-to-end test harness for Strait: starts real `strait-broker` processes on free loopback
//! ports and drives them with real Kafka clients (rdkafka, kcat, raw wire frames).
//!
//! Tests and the `strait-bench` program share these building blocks; nothing here knows broker
//! internals, only the command line, the log lines and the Kafka protocol it promises.

pub mod broker;
pub mod checker;
pub mod cluster;
pub mod dashboards;
pub mod error;
pub mod exposition;
pub mod failover;
pub mod group_member;
pub mod group_wire;
pub mod http;
pub mod kafka;
pub mod kcat;
pub mod load;
pub mod log_dirs;
pub mod mirror;
pub mod netns;
pub mod pki;
pub mod prometheus;
pub mod s3;
pub mod segments;
pub mod tmpfs;
pub mod txn_checker;
pub mod wait;
pub mod wire;

pub use broker::{Broker, BrokerOptions, broker_binary, free_port};
pub use error::{HarnessError, Result};
pub use kafka::{
    Admin, ConsumedMessage, Delivery, TestMessage, consumer_config, idempotent_producer_config,
    produce_all, producer_config, read_partition, read_range, topic_partitions, watermarks,
};
pub use wait::{wait_for, wait_until};
