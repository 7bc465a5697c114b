//! The `Cluster` kind: validation, the controller quorum layout, the desired Kubernetes objects,
//! scale planning and the controller that applies them.

pub mod config;
pub mod controller;
pub mod quorum;
pub mod resources;
pub mod scale;
pub mod validate;
