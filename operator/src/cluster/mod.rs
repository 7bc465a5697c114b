//! The `Cluster` kind: validation, the controller quorum layout, the desired Kubernetes objects,
//! the brokers' external addresses, scale planning, rolling restarts, what to delete once unused
//! and the controller that applies them.

pub mod config;
pub mod controller;
pub mod external;
pub mod prune;
pub mod quorum;
pub mod resources;
pub mod roll;
pub mod scale;
pub mod validate;
