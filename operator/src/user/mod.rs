//! The `User` kind: credentials, ACLs and the admin steps a cluster allows as pure functions of
//! the spec, the status as a pure function of how a pass went, and the controller that writes
//! them through the Kafka admin API.

pub mod controller;
pub mod plan;
pub mod status;
