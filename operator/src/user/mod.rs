//! The `User` kind: credentials and ACLs as pure functions of the spec, and the controller that
//! writes them through the Kafka admin API.

pub mod controller;
pub mod plan;
