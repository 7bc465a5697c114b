//! The `Topic` kind: a pure plan from spec and observed topic, the status as a pure function of
//! how a pass went, and the controller that carries the plan out through the Kafka admin API.

pub mod controller;
pub mod plan;
pub mod status;
