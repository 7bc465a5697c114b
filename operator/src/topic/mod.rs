//! The `Topic` kind: a pure plan from spec and observed topic, and the controller that carries
//! it out through the Kafka admin API.

pub mod controller;
pub mod plan;
